"""Run records -> one flat table, and its aggregate over seeds.

`to_frame` gives one row per (run, eval set, subset); `subset` is "overall", "majority" (the
always-the-most-frequent-label baseline of that eval set) or one of the record's subsets
("label=X", "heuristic=Y", "heuristic=Y|label=X"). A failed run, or a run without metrics, is one
row with no eval set and no metrics, so nothing disappears silently.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tuneoff.describe import DEFAULT_METRIC, Label, labels, main_metric, method_name, method_options, record_field
from tuneoff.metrics import label_metric_names, prob_metric_names
from tuneoff.record import EvalSet, Overall, Record, Resources, Scores, load
from tuneoff.report.edges import to_json as edges_json
from tuneoff.report.runflags import above_chance, chance_level, collapsed, labels_seen, labels_why, top

RESOURCES = ("params_total", "params_trainable", "peak_memory_mb", "memory_baseline_mb", "memory_run_mb",
             "peak_cuda_mb", "load_time_s", "load_cpu_s", "setup_time_s", "setup_cpu_s", "train_time_s",
             "train_cpu_s", "eval_time_s", "eval_cpu_s", "train_steps", "train_examples", "train_tokens",
             "eval_examples", "eval_tokens", "train_flops_approx", "eval_flops_approx",
             # hyperparameter selection: its own cost, and training plus selection (= training alone
             # for a run without selection)
             "selection_time_s", "selection_cpu_s", "selection_fits", "selection_flops_approx", "adapt_time_s",
             "adapt_flops_approx", "forgetting_time_s",
             "peak_rss_mb")  # whole-process RSS: the memory figure of stores written before per-run memory
# The memory figure of a run: per-run peak memory; in older stores, whole-process peak RSS.
MEMORY = ("peak_memory_mb", "peak_rss_mb")


def memory_column(df: pd.DataFrame) -> str:
    """The first memory figure of MEMORY that `df` holds for some run."""
    return next((c for c in MEMORY if c in df.columns and df[c].notna().any()), MEMORY[0])

# What a method costs to get ready, the report's time axis: its set-up (distill's teacher pass, icl's
# prefix, peft wrapping) plus training plus any hyperparameter selection, in process CPU time, which
# moved less under load than the wall clock (benchmarks/RESULTS.md); the wall-clock sum is a column
# beside it. Model loading, the same for every method on a model, is left out.
METHOD_TIME = ("method_cpu_s", "set-up + training (+ selection) CPU time (s)")

RUN_COLUMNS = ["run_id", "status", "error", "created_at", "task", "model", "method", "method_options",
               "method_label", "variant", "pattern", "shots", "data_seed", "seed", "main_metric"]


def row_columns() -> list[str]:
    """The columns of one (eval set, subset) row: the label metrics of `tuneoff.metrics` on every
    row, its probability metrics (ece, brier) on overall rows only."""
    return ["eval_set", "domain", "subset", "n", *label_metric_names(), "majority_label", "pred_dist",
            "top_label", "top_share", "collapsed", *prob_metric_names(), "reliability"]


FORGETTING = ["lm_loss_before", "lm_loss_after", "lm_loss_delta", "forgetting_note"]  # per run (tuneoff.forgetting)
SPLIT_COLUMNS = ["split_checksum", "split_n", "train_pool"]
# per run (`report.runflags`): labelled examples seen (selection included) and where those beyond its
# split came from; whether its selection found a candidate above chance, and that chance level; the
# eval sets it collapsed on (a JSON list)
FLAG_COLUMNS = ["labels_seen", "labels_why", "selection_above_chance", "selection_chance", "collapsed_on"]

# what identifies one cell of a comparison; seeds (data_seed, seed) vary inside it
GROUP_KEYS = ["task", "model", "method_label", "variant", "pattern", "shots", "eval_set", "domain", "subset"]


def frame_metric(frame: pd.DataFrame, task) -> str:
    """The main metric of `task` in `frame`: the one its runs recorded (`describe.main_metric`:
    e.g. mcc for CoLA, or whatever a custom task file names), else accuracy."""
    m = frame.loc[frame["task"] == task, "main_metric"].dropna() if "main_metric" in frame else []
    return str(m.mode().iloc[0]) if len(m) else DEFAULT_METRIC


def method_labels(records: list[dict]) -> dict[str, str]:
    """run_id -> method label: the method name plus the settings that differ among the runs of
    that method (`describe.labels`, as the summary names them), e.g. "lora(r=8)" and "lora(r=16)";
    just "lora" when all its runs share their settings."""
    return {rec.get("run_id"): lab.method_label for rec, lab in zip(records, labels(records))}


def _run_fields(rec: Record, label: Label) -> dict:
    split, fg = rec.split, rec.forgetting
    losses = rec.train.losses if rec.train else []
    row = {
        "run_id": rec.run_id, "status": rec.status, "error": rec.error,
        "created_at": rec.created_at, "task": record_field(rec, "task"), "model": record_field(rec, "model"),
        "method": method_name(rec), "method_options": json.dumps(method_options(rec), sort_keys=True),
        "method_label": label.method_label, "variant": label.variant, "pattern": record_field(rec, "pattern"),
        "shots": record_field(rec, "shots"), "data_seed": record_field(rec, "data_seed"), "seed": record_field(rec, "seed"),
        "main_metric": main_metric(rec),
        "split_checksum": split.checksum if split else None, "split_n": split.n if split else None,
        "train_pool": split.train_pool if split else None,
        "final_loss": float(losses[-1]) if losses else np.nan,
        "notes": " | ".join(str(n) for n in rec.notes or []),
        "selection_edges": edges_json(rec.selection),  # choices on an edge of their search (`report.edges`)
        "labels_seen": labels_seen(rec), "labels_why": labels_why(rec),
        "selection_above_chance": above_chance(rec), "selection_chance": chance_level(rec),
        "collapsed_on": json.dumps([es for es, m in (rec.metrics or {}).items()
                                    if m.overall and collapsed((top(m.overall.pred_dist) or ("", None))[1])]),
    }
    for k in FORGETTING[:3]:
        row[k] = fg.get(k, np.nan) if fg else np.nan
    row["forgetting_note"] = (f"n/a: {fg.reason}" if fg.status == "n/a" else fg.head) if fg else None
    res = rec.resources or Resources()
    for k in RESOURCES:
        row[k] = res.get(k, np.nan)
    for total, part in (("adapt_time_s", "train_time_s"), ("adapt_flops_approx", "train_flops_approx")):
        if total not in res:
            row[total] = res.get(part, np.nan)
    row["method_cpu_s"] = (res.get("setup_cpu_s", np.nan) + res.get("train_cpu_s", np.nan)
                           + res.get("selection_cpu_s", 0.0))
    row["method_time_s"] = (res.get("setup_time_s", np.nan) + res.get("train_time_s", np.nan)
                            + res.get("selection_time_s", 0.0))
    for k, v in res.to_dict().items():  # resources this module does not know yet
        if k not in row and isinstance(v, (int, float)):
            row[k] = v
    return row


def _metric_rows(metrics: dict[str, EvalSet] | None) -> list[dict]:
    rows = []
    for es, m in (metrics or {}).items():
        base = {"eval_set": es, "domain": m.domain}
        overall = m.overall or Overall()
        cal = {k: float(v) if (v := overall.get(k)) is not None else np.nan for k in prob_metric_names()}
        label, share = top(overall.pred_dist) or (None, np.nan)
        rows.append({**base, "subset": "overall", **_scores(overall, m.n), **cal,
                     "pred_dist": json.dumps(overall.pred_dist or {}, sort_keys=True),
                     "top_label": label, "top_share": share, "collapsed": collapsed(share) if label else None,
                     "reliability": json.dumps(overall.reliability.to_dict()) if overall.reliability else None})
        if m.majority is not None:
            rows.append({**base, "subset": "majority", **_scores(m.majority, m.n), "majority_label": m.majority.label})
        for name, s in (m.subsets or {}).items():
            rows.append({**base, "subset": name, **_scores(s, None)})
    return rows


def _scores(s: Scores, n_default) -> dict:
    """n (the eval set's where `s` lacks it) and each label metric, by name (`tuneoff.metrics`)."""
    out = {"n": s.n if s.n is not None else n_default}
    for k in label_metric_names():
        v = s.get(k)
        out[k] = float(v) if v is not None else np.nan
    return out


def to_frame(records: list[Record | dict]) -> pd.DataFrame:
    """One row per (run, eval set, subset); failed runs are one row with their error and no metrics.
    `records`: `tuneoff.record.Record`s, or their dicts (validated here)."""
    rows = []
    records = [load(r) for r in records]
    for rec, label in zip(records, labels(records)):
        run = _run_fields(rec, label)
        metric_rows = _metric_rows(rec.metrics) if rec.status == "done" else []
        if not metric_rows:
            rows.append({**run})
        for mr in metric_rows:
            rows.append({**run, **mr})
    cols = (RUN_COLUMNS + row_columns() + SPLIT_COLUMNS + ["final_loss", "notes", "selection_edges"] + FLAG_COLUMNS
            + list(RESOURCES) + FORGETTING)
    frame = pd.DataFrame(rows)
    for c in cols:
        if c not in frame.columns:
            frame[c] = np.nan
    frame = frame[cols + [c for c in frame.columns if c not in cols]]
    frame["pattern"] = frame["pattern"].astype(object).where(frame["pattern"].notna(), None)
    for c in ("shots", "data_seed", "seed", "n", "labels_seen"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("Int64")
    return frame


def done_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["status"] == "done") & frame["eval_set"].notna()]


def aggregate(frame: pd.DataFrame, metrics=None, keys=GROUP_KEYS) -> pd.DataFrame:
    """mean, std (ddof=1; NaN for one run) and count over seeds (data_seed x seed) per `keys`
    (by default task, model, method label, pattern, shots, eval set, subset) and metric. `metrics`:
    names of `tuneoff.metrics`, by default its label metrics."""
    keys = list(keys)
    cols = keys + ["metric", "mean", "std", "count"]
    df = done_rows(frame)
    metrics = [m for m in (label_metric_names() if metrics is None else metrics) if m in df.columns]
    if df.empty or not metrics:
        return pd.DataFrame(columns=cols)
    long = df.melt(id_vars=keys + ["run_id"], value_vars=metrics, var_name="metric")
    long = long.dropna(subset=["value"])
    if long.empty:
        return pd.DataFrame(columns=cols)
    g = long.groupby(keys + ["metric"], dropna=False, sort=True)["value"]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=1), count="count").reset_index()
    out["count"] = out["count"].astype(int)
    return out[cols]


def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (eval-set columns dropped)."""
    row = row_columns()
    keep = [c for c in frame.columns if c not in row]
    return frame.drop_duplicates("run_id")[keep].reset_index(drop=True)


CELL = ["task", "model", "variant", "shots", "eval_set"]  # a cell as a table shows it


def collapse_counts(frame: pd.DataFrame, keys=CELL) -> pd.DataFrame:
    """Per cell of `keys` that holds a run whose predictions collapsed onto one label: its runs with
    predictions recorded (`runs`), the collapsed ones (`collapsed`), their label(s) and mean share."""
    d = done_rows(frame)
    d = d[(d["subset"] == "overall") & d["top_share"].notna()]
    rows = []
    for key, g in d.groupby(list(keys), dropna=False, sort=True):
        c = g[g["collapsed"].eq(True)]
        if len(c):
            rows.append({**dict(zip(keys, key)), "runs": g["run_id"].nunique(), "collapsed": c["run_id"].nunique(),
                         "label": "/".join(sorted(set(c["top_label"]))), "share": float(c["top_share"].mean())})
    return pd.DataFrame(rows, columns=[*keys, "runs", "collapsed", "label", "share"])


def collapsed_cells(runs: pd.DataFrame) -> dict[tuple, tuple[int, int]]:
    """(variant, shots, eval set) -> (its runs that collapsed on that eval set, its done runs), from the
    table of one row per run (`runs`), for a table built without eval-set rows (a leaderboard)."""
    done = runs[runs["status"] == "done"]
    out: dict[tuple, tuple[int, int]] = {}
    for (v, s), g in done.groupby(["variant", "shots"], dropna=False):
        sets = [es for c in g["collapsed_on"].dropna() for es in json.loads(c)]
        for es in dict.fromkeys(sets):
            out[(v, s, es)] = (sets.count(es), len(g))
    return out


def eval_sets_in_order(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(eval_set, domain) pairs, in-domain first, in the order the records list them."""
    df = frame[frame["eval_set"].notna()].drop_duplicates("eval_set")
    pairs = list(zip(df["eval_set"], df["domain"]))
    return sorted(pairs, key=lambda p: 0 if p[1] == "in" else 1)
