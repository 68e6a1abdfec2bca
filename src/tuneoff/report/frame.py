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

DEFAULT_METRIC = "accuracy"
METRICS = ("accuracy", "mcc", "f1")

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
CALIBRATION = ("ece", "brier")  # per eval set, overall rows only (tuneoff.calibration)
ROW_COLUMNS = ["eval_set", "domain", "subset", "n", *METRICS, "majority_label", "pred_dist", *CALIBRATION,
               "reliability"]
FORGETTING = ["lm_loss_before", "lm_loss_after", "lm_loss_delta", "forgetting_note"]  # per run (tuneoff.forgetting)
SPLIT_COLUMNS = ["split_checksum", "split_n", "train_pool"]

# what identifies one cell of a comparison; seeds (data_seed, seed) vary inside it
GROUP_KEYS = ["task", "model", "method_label", "variant", "pattern", "shots", "eval_set", "domain", "subset"]


def main_metric(task) -> str:
    """The metric a registered task is judged by (`Task.main_metric`: CoLA -> mcc), else accuracy.
    Records carry their own `main_metric`, which `to_frame` prefers."""
    from tuneoff.tasks import get_task

    try:
        return get_task(str(task)).main_metric
    except ValueError:
        return DEFAULT_METRIC


def _config(rec: dict) -> dict:
    return rec.get("config") or {}


def _method_name(rec: dict) -> str:
    m = rec.get("method") or (_config(rec).get("method") or {})
    return str(m.get("name", "?") if isinstance(m, dict) else m)


def _options(rec: dict) -> dict:
    opts = rec.get("method_options")
    if opts is None:
        m = _config(rec).get("method")
        opts = {k: v for k, v in m.items() if k != "name"} if isinstance(m, dict) else {}
    return dict(opts)


def _get(rec: dict, key: str):
    v = rec.get(key)
    return _config(rec).get(key) if v is None else v


def _fmt_value(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:g}"
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def method_labels(records: list[dict]) -> dict[str, str]:
    """run_id -> method label: the method name plus the options that differ among the runs of that
    method, e.g. "lora(r=8)" and "lora(r=16)"; just "lora" when all its runs share their options."""
    by_method: dict[str, list[dict]] = {}
    for rec in records:
        by_method.setdefault(_method_name(rec), []).append(rec)
    labels = {}
    for name, recs in by_method.items():  # a method's version shows where old and new runs share a store
        opts = [{**_options(r), **_selection_option(r), "version": r.get("method_version", 1)} for r in recs]
        keys = sorted({k for o in opts for k in o})
        differing = [k for k in keys
                     if len({json.dumps(o.get(k, None), sort_keys=True) for o in opts}) > 1]
        for rec, o in zip(recs, opts):
            inner = ", ".join(f"{k}={_fmt_value(o[k])}" for k in differing if k in o)  # absent keys left out
            labels[rec.get("run_id")] = f"{name}({inner})" if inner else name
    return labels


def _selection_option(rec: dict) -> dict:
    """How the run's hyperparameters were chosen, as a pseudo-option: it shows in the label only
    where runs of one method differ in it (e.g. `finetune(select=cv/frugal)` beside `finetune(select=off)`)."""
    s = _config(rec).get("select")
    return {"select": f"{s.get('protocol')}/{s.get('budget')}" if isinstance(s, dict) else "off"}


def _run_fields(rec: dict, label: str) -> dict:
    task = _get(rec, "task")
    split = rec.get("split") or {}
    losses = (rec.get("train") or {}).get("losses") or []
    row = {
        "run_id": rec.get("run_id"), "status": rec.get("status"), "error": rec.get("error"),
        "created_at": rec.get("created_at"), "task": task, "model": _get(rec, "model"),
        "method": _method_name(rec), "method_options": json.dumps(_options(rec), sort_keys=True),
        "method_label": label, "variant": label, "pattern": _get(rec, "pattern"),
        "shots": _get(rec, "shots"), "data_seed": _get(rec, "data_seed"), "seed": _get(rec, "seed"),
        "main_metric": rec.get("main_metric") or main_metric(task),
        "split_checksum": split.get("checksum"), "split_n": split.get("n"), "train_pool": split.get("train_pool"),
        "final_loss": float(losses[-1]) if losses else np.nan,
        "notes": " | ".join(str(n) for n in rec.get("notes") or []),
    }
    fg = rec.get("forgetting") or {}
    for k in FORGETTING[:3]:
        row[k] = fg.get(k, np.nan)
    row["forgetting_note"] = (f"n/a: {fg.get('reason')}" if fg.get("status") == "n/a"
                              else fg.get("head") if fg else None)
    res = rec.get("resources") or {}
    for k in RESOURCES:
        row[k] = res.get(k, np.nan)
    for total, part in (("adapt_time_s", "train_time_s"), ("adapt_flops_approx", "train_flops_approx")):
        if total not in res:
            row[total] = res.get(part, np.nan)
    row["method_cpu_s"] = (res.get("setup_cpu_s", np.nan) + res.get("train_cpu_s", np.nan)
                           + res.get("selection_cpu_s", 0.0))
    row["method_time_s"] = (res.get("setup_time_s", np.nan) + res.get("train_time_s", np.nan)
                            + res.get("selection_time_s", 0.0))
    for k, v in res.items():  # resources this module does not know yet
        if k not in row and isinstance(v, (int, float)):
            row[k] = v
    return row


def _metric_rows(metrics: dict) -> list[dict]:
    rows = []
    for es, m in (metrics or {}).items():
        base = {"eval_set": es, "domain": m.get("domain", "in")}
        overall = m.get("overall") or {}
        cal = {k: float(overall[k]) if overall.get(k) is not None else np.nan for k in CALIBRATION}
        rows.append({**base, "subset": "overall", **_scores(overall, m.get("n")), **cal,
                     "pred_dist": json.dumps(overall.get("pred_dist") or {}, sort_keys=True),
                     "reliability": json.dumps(overall["reliability"]) if overall.get("reliability") else None})
        maj = m.get("majority")
        if maj:
            rows.append({**base, "subset": "majority", **_scores(maj, m.get("n")),
                         "majority_label": maj.get("label")})
        for name, s in (m.get("subsets") or {}).items():
            rows.append({**base, "subset": name, **_scores(s, None)})
    return rows


def _scores(s: dict, n_default) -> dict:
    out = {"n": s.get("n", n_default)}
    for k in METRICS:
        v = s.get(k)
        out[k] = float(v) if v is not None else np.nan
    return out


def to_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (run, eval set, subset); failed runs are one row with their error and no metrics."""
    labels = method_labels(records)
    rows = []
    for rec in records:
        run = _run_fields(rec, labels.get(rec.get("run_id"), _method_name(rec)))
        metric_rows = _metric_rows(rec.get("metrics")) if rec.get("status") == "done" else []
        if not metric_rows:
            rows.append({**run})
        for mr in metric_rows:
            rows.append({**run, **mr})
    cols = RUN_COLUMNS + ROW_COLUMNS + SPLIT_COLUMNS + ["final_loss", "notes"] + list(RESOURCES) + FORGETTING
    frame = pd.DataFrame(rows)
    for c in cols:
        if c not in frame.columns:
            frame[c] = np.nan
    frame = frame[cols + [c for c in frame.columns if c not in cols]]
    frame["pattern"] = frame["pattern"].astype(object).where(frame["pattern"].notna(), None)
    for c in ("shots", "data_seed", "seed", "n"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("Int64")
    _set_variants(frame)
    return frame


def _set_variants(frame: pd.DataFrame) -> None:
    """variant = method label, plus the pattern where runs of that label on a task used several."""
    if frame.empty:
        return
    pat = frame["pattern"].map(lambda p: "default" if p is None else str(p))
    n_pat = pat.groupby([frame["task"].astype(str), frame["method_label"]]).transform("nunique")
    frame["variant"] = np.where(n_pat > 1, frame["method_label"] + " [" + pat + "]", frame["method_label"])


def done_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["status"] == "done") & frame["eval_set"].notna()]


def aggregate(frame: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """mean, std (ddof=1; NaN for one run) and count over seeds (data_seed x seed) per
    (task, model, method label, pattern, shots, eval set, subset, metric)."""
    cols = GROUP_KEYS + ["metric", "mean", "std", "count"]
    df = done_rows(frame)
    if df.empty:
        return pd.DataFrame(columns=cols)
    long = df.melt(id_vars=GROUP_KEYS + ["run_id"], value_vars=list(metrics), var_name="metric")
    long = long.dropna(subset=["value"])
    if long.empty:
        return pd.DataFrame(columns=cols)
    g = long.groupby(GROUP_KEYS + ["metric"], dropna=False, sort=True)["value"]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=1), count="count").reset_index()
    out["count"] = out["count"].astype(int)
    return out[cols]


def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (eval-set columns dropped)."""
    keep = [c for c in frame.columns if c not in ROW_COLUMNS]
    return frame.drop_duplicates("run_id")[keep].reset_index(drop=True)


def eval_sets_in_order(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(eval_set, domain) pairs, in-domain first, in the order the records list them."""
    df = frame[frame["eval_set"].notna()].drop_duplicates("eval_set")
    pairs = list(zip(df["eval_set"], df["domain"]))
    return sorted(pairs, key=lambda p: 0 if p[1] == "in" else 1)
