"""Label budgets: the labelled examples each method of a comparison saw (the frame's `labels_seen`:
its few-shot split plus any its selection used, `report.runflags`), and where a comparison (a task
at one shot count, every method on every model) mixes budgets, by how much and from where. Methods
are set side by side on the same split (data seed, seed and split checksum), as a paired comparison
sets them: "icl saw 2× the labels of finetune on the same split (32 vs 16: its dev split)". Methods
that all reuse one reference split's choice (frugal selection) saw the same labels on each split,
however those differ from split to split."""
from __future__ import annotations

import pandas as pd

from tuneoff.report.blocks import Table, cells

COLUMNS = ["task", "shots", "variant", "low", "high", "why", "times", "fewest", "fewest_seen", "seen"]
SPLIT = ["data_seed", "seed", "split_checksum"]


def label_budgets(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, shots, method variant) of the done runs: the labels its runs saw (`low`,
    `high`), where those beyond their split came from (`why`), and the most it saw over the fewest
    any method saw on the same split (`times`; 1 where no other method ran that split), with that
    split's fewest (`fewest`: the method, `fewest_seen`: its labels) and its own there (`seen`)."""
    d = runs[(runs["status"] == "done") & runs["labels_seen"].notna()] if "labels_seen" in runs else runs.iloc[:0]
    if d.empty:
        return pd.DataFrame(columns=COLUMNS)
    d = d.assign(labels_seen=d["labels_seen"].astype(int)).sort_values(["labels_seen", "variant"], kind="stable")
    first = d.groupby(["task", "shots"] + [c for c in SPLIT if c in d], sort=False, dropna=False)
    d["fewest"], d["fewest_seen"] = first["variant"].transform("first"), first["labels_seen"].transform("first")
    d["ratio"] = d["labels_seen"] / d["fewest_seen"]
    # each method's split where it saw the most over the fewest (on ties, its most labels) comes first
    d = d.sort_values(["ratio", "labels_seen"], ascending=False, kind="stable")
    t = (d.groupby(["task", "shots", "variant"], sort=True, dropna=False)
         .agg(low=("labels_seen", "min"), high=("labels_seen", "max"),
              why=("labels_why", lambda s: " / ".join(sorted({str(x) for x in s if isinstance(x, str) and x}))),
              times=("ratio", "first"), fewest=("fewest", "first"), fewest_seen=("fewest_seen", "first"),
              seen=("labels_seen", "first"))
         .reset_index())
    return t[COLUMNS]


def times_text(x: float) -> str:
    return f"{x:.3g}×"


def _seen(r) -> str:
    return str(r.low) if r.low == r.high else f"{r.low}–{r.high}"


def mixed(t: pd.DataFrame) -> list[str]:
    """A phrase per method that saw more labels than another method on the same split."""
    return [f"{r.task} at {int(r.shots)} shots: {r.variant} saw {times_text(r.times)} the labels of {r.fewest} on "
            f"the same split ({r.seen} vs {r.fewest_seen}" + (f": {r.why})" if r.why else ")")
            for r in t.itertuples(index=False) if r.times > 1]


def labels_warning(runs: pd.DataFrame) -> list[str]:
    items = mixed(label_budgets(runs))
    return ["Unequal label budgets: these methods saw more labelled examples than another method on the same "
            "few-shot split (their selection's dev split, or under frugal selection the reference split's too), "
            "so their scores are not from the same labels: " + "; ".join(items)] if items else []


def labels_table(runs: pd.DataFrame) -> list:
    t = label_budgets(runs)
    if t.empty:
        return []
    rows = [cells([r.task, int(r.shots), r.variant, _seen(r), times_text(r.times), r.why or "its split"])
            for r in t.itertuples(index=False)]
    return [Table(["task", "shots", "method", "labels seen", "× the fewest", "from"], rows,
                  title="Labels seen per comparison",
                  note="labels seen: the labelled examples a run's result depended on, its few-shot split plus any "
                       "its selection used (a dev split; under frugal selection the reference split's), over its "
                       "runs; × the fewest: the most it saw on a split against the method that saw the fewest on "
                       "that split (the same data seed, seed and split checksum: the runs a paired comparison "
                       "sets side by side). A comparison above 1× mixes label budgets (listed under Warnings); "
                       "methods that all reuse a reference split's choice saw the same labels on each split.")]
