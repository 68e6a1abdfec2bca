"""Label budgets: the labelled examples each method of a comparison saw (the frame's `labels_seen`:
its few-shot split plus any its selection used, `report.runflags`), and where a comparison (a task
at one shot count, every method on every model) mixes budgets, by how much and from where: "icl
saw 2× the labels of finetune (32 vs 16: its dev split)"."""
from __future__ import annotations

import pandas as pd

from tuneoff.report.blocks import Table, cells

COLUMNS = ["task", "shots", "variant", "low", "high", "why", "times"]


def label_budgets(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, shots, method variant) of the done runs: the labels its runs saw (`low`,
    `high`), where those beyond their split came from (`why`), and `high` over the fewest any method
    of the comparison saw (`times`)."""
    d = runs[(runs["status"] == "done") & runs["labels_seen"].notna()] if "labels_seen" in runs else runs.iloc[:0]
    if d.empty:
        return pd.DataFrame(columns=COLUMNS)
    t = (d.groupby(["task", "shots", "variant"], sort=True, dropna=False)
         .agg(low=("labels_seen", "min"), high=("labels_seen", "max"),
              why=("labels_why", lambda s: " / ".join(sorted({str(x) for x in s if isinstance(x, str) and x}))))
         .reset_index())
    t["low"], t["high"] = t["low"].astype(int), t["high"].astype(int)
    t["times"] = t["high"] / t.groupby(["task", "shots"])["low"].transform("min")
    return t[COLUMNS]


def times_text(x: float) -> str:
    return f"{x:.3g}×"


def _seen(r) -> str:
    return str(r.low) if r.low == r.high else f"{r.low}–{r.high}"


def mixed(t: pd.DataFrame) -> list[str]:
    """A phrase per method that saw more labels than the fewest of its comparison."""
    out = []
    for (task, shots), g in t.groupby(["task", "shots"], sort=True):
        base = g.loc[g["low"].idxmin()]
        for r in g.itertuples(index=False):
            if r.high > base["low"]:
                more = ("up to " if r.low != r.high else "") + times_text(r.times)
                out.append(f"{task} at {int(shots)} shots: {r.variant} saw {more} the labels of {base['variant']} "
                           f"({_seen(r)} vs {base['low']}" + (f": {r.why})" if r.why else ")"))
    return out


def labels_warning(runs: pd.DataFrame) -> list[str]:
    items = mixed(label_budgets(runs))
    return ["Unequal label budgets: these methods saw more labelled examples than others of the same comparison "
            "(their selection's dev split, or under frugal selection the reference split's too), so their scores "
            "are not from the same labels: " + "; ".join(items)] if items else []


def labels_table(runs: pd.DataFrame) -> list:
    t = label_budgets(runs)
    if t.empty:
        return []
    rows = [cells([r.task, int(r.shots), r.variant, _seen(r), times_text(r.times), r.why or "its split"])
            for r in t.itertuples(index=False)]
    return [Table(["task", "shots", "method", "labels seen", "× the fewest", "from"], rows,
                  title="Labels seen per comparison",
                  note="labels seen: the labelled examples a run's result depended on, its few-shot split plus any "
                       "its selection used (a dev split; under frugal selection the reference split's); × the "
                       "fewest: against the method of the same task and shots that saw the fewest. A comparison "
                       "above 1× mixes label budgets (listed under Warnings).")]
