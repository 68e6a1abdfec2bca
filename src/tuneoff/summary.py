"""The terminal/disk summary of a results folder: mean ± std over seeds per method, shots and eval set,
with the majority-class baseline beside it. (The full HTML report lives in `tuneoff.report`.)"""
from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

from rich.table import Table

def main_metric(record: dict) -> str:
    """The task's main metric, as recorded with the run (older records: accuracy)."""
    return record.get("main_metric", "accuracy")


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else None
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


IGNORED = {"data_seed", "seed", "output_dir", "device", "save", "eval.batch_size"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _settings(records: list[dict]) -> list[str]:
    """Config keys (beyond task, model, method, shots) whose values differ among the records:
    runs that differ in them are different settings, never pooled as if they were seeds."""
    flats = [_flat(r.get("config") or {}) for r in records]
    keys = sorted({k for f in flats for k in f} - IGNORED - {"task", "model", "method.name", "shots"})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


def summarise(records: list[dict]) -> list[dict]:
    """Rows: task, model, method, options, shots, eval_set, domain, metric, score (mean ± std over
    seeds), runs, majority. `options` names the method options and any other setting that differs
    between the runs, so only runs that differ by seed alone are averaged."""
    done = [r for r in records if r.get("status") == "done"]
    varying = _settings(done)
    groups: dict[tuple, dict] = defaultdict(lambda: {"scores": [], "majority": [], "other": defaultdict(list)})
    for r in done:
        metric = main_metric(r)
        flat = _flat(r.get("config") or {})
        opts = ",".join(f"{k.removeprefix('method.')}={flat[k]}" for k in varying if k in flat)
        for es, m in r["metrics"].items():
            key = (r["task"], r["model"], r["method"], opts, r["shots"], es, m["domain"], metric)
            g = groups[key]
            g["scores"].append(m["overall"][metric])
            g["majority"].append(m["majority"][metric])
            for other in ("accuracy", "mcc", "f1"):
                g["other"][other].append(m["overall"][other])
    rows = []
    for (task, model, method, opts, shots, es, domain, metric), g in groups.items():
        rows.append({"task": task, "model": model, "method": method, "options": opts, "shots": shots,
                     "eval_set": es, "domain": domain, "metric": metric, "score": _fmt(g["scores"]),
                     "runs": len(g["scores"]), "majority": _fmt(g["majority"]),
                     **{k: _fmt(v) for k, v in g["other"].items()}})
    rows.sort(key=lambda r: (r["task"], r["model"], r["method"], r["options"], r["shots"], r["domain"], r["eval_set"]))
    return rows


def rich_table(rows: list[dict], failed: list[dict]) -> Table:
    """Columns that hold one value for every row (task, model, ...) move into the title."""
    fixed = [c for c in ("task", "model", "method", "options") if rows and len({r[c] for r in rows}) == 1]
    title = "tuneoff results, mean ± std over seeds"
    if fixed:
        title += ": " + " ".join(f"{c}={rows[0][c]}" for c in fixed if rows[0][c])
    t = Table(title=title)
    cols = [c for c in ("task", "model", "method", "options") if c not in fixed]
    cols += ["shots", "eval_set", "domain", "metric", "score", "majority", "runs"]
    for col in cols:
        t.add_column(col.replace("_", " "), justify="right" if col in ("shots", "runs") else "left")
    for r in rows:
        t.add_row(*[str(r[c]) for c in cols])
    if failed:
        t.caption = f"{len(failed)} failed run(s): " + "; ".join(
            f"{f['run_id']}: {(f.get('error') or '')[:160]}" for f in failed[:5])
    return t


def write_summary(rows: list[dict], folder: Path) -> tuple[Path, Path]:
    md, csv_path = folder / "summary.md", folder / "summary.csv"
    cols = ["task", "model", "method", "options", "shots", "eval_set", "domain", "metric", "score", "majority",
            "accuracy", "mcc", "f1", "runs"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    md.write_text("# tuneoff results (mean ± std over seeds)\n\n" + "\n".join(lines) + "\n")
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return md, csv_path
