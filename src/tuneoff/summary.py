"""The terminal/disk summary of a results folder: mean ± std over seeds per method, shots and eval set,
with the majority-class baseline beside it. (The full HTML report lives in `tuneoff.report`.)"""
from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

from rich.table import Table

from tuneoff.calibration import DEFINITION
from tuneoff.config import with_current_keys
from tuneoff.escape import md as md_text
from tuneoff.escape import term

COLLAPSED = 0.95  # a run that gives one label to at least this share of an eval set has collapsed


def top_label(pred_dists: list[dict]) -> tuple[str, float] | None:
    """The most-predicted label over runs and the mean share of each run's most-predicted label
    (a run's own collapse shows even when seeds collapse onto different labels: "negative/positive")."""
    tops = [max(d.items(), key=lambda kv: kv[1]) for d in pred_dists if d]
    if not tops:
        return None
    names = sorted({name for name, _ in tops}, key=lambda n: (-sum(1 for t, _ in tops if t == n), n))
    return "/".join(names), statistics.fmean(share for _, share in tops)


def flags(score: float, majority: float | None, top_share: float | None) -> list[str]:
    """What a reader must know about a score: at or below the majority baseline, or collapsed."""
    out = []
    if majority is not None and score <= majority + 1e-9:
        out.append("≤ majority")
    if top_share is not None and top_share >= COLLAPSED:
        out.append("one label")
    return out


def flag_text(flagged: list[str], top: tuple[str, float] | None) -> str:
    """"≤ majority · 70% positive", "one label · 98% positive" (empty when nothing is flagged)."""
    if not flagged:
        return ""
    return ", ".join(flagged) + (f" · {top[1]:.0%} {top[0]}" if top else "")


def main_metric(record: dict) -> str:
    """The task's main metric, as recorded with the run (older records: accuracy)."""
    return record.get("main_metric", "accuracy")


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else None
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


# settings that cannot change a score (the forgetting measure runs beside the evaluation)
IGNORED = {"data_seed", "seed", "output_dir", "device", "save", "eval.batch_size",
           "forgetting.enabled", "forgetting.text", "forgetting.max_tokens"}


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
    flats = [_flat(with_current_keys(r.get("config") or {})) for r in records]  # old records: old key names
    keys = sorted({k for f in flats for k in f} - IGNORED - {"task", "model", "method.name", "shots"})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


def _done_with_options(records: list[dict]):
    """(record, options label) for each done record: the label names the method options and any other
    setting that differs between the done records, so only runs that differ by seed share one."""
    done = [r for r in records if r.get("status") == "done"]
    varying = _settings(done)
    versions: dict[str, set] = defaultdict(set)  # a method's version shows where old and new runs share a folder
    for r in done:
        versions[r.get("method")].add(r.get("method_version", 1))
    for r in done:
        flat = _flat(with_current_keys(r.get("config") or {}))
        if len(versions[r.get("method")]) > 1:
            flat, varying_r = {**flat, "version": r.get("method_version", 1)}, [*varying, "version"]
        else:
            varying_r = varying
        yield r, ",".join(f"{k.removeprefix('method.')}={flat[k]}" for k in varying_r if k in flat)


def _fixed_into_title(rows: list[dict], candidates: tuple[str, ...], title: str) -> tuple[list[str], str]:
    """Columns among `candidates` that hold one value in every row, and `title` naming their values:
    the table shows them once, above it, and fits a narrow terminal."""
    fixed = [c for c in candidates if rows and len({r[c] for r in rows}) == 1]
    if fixed:
        title += ": " + " ".join(f"{c}={rows[0][c]}" for c in fixed if rows[0][c])
    return fixed, title


def summarise(records: list[dict]) -> list[dict]:
    """Rows: task, model, method, options, shots, eval_set, domain, metric, score (mean ± std over
    seeds), runs, majority. `options` names the method options and any other setting that differs
    between the runs, so only runs that differ by seed alone are averaged."""
    groups: dict[tuple, dict] = defaultdict(lambda: {"scores": [], "majority": [], "dists": [],
                                                     "other": defaultdict(list)})
    for r, opts in _done_with_options(records):
        metric = main_metric(r)
        for es, m in r["metrics"].items():
            key = (r["task"], r["model"], r["method"], opts, r["shots"], es, m["domain"], metric)
            g = groups[key]
            g["scores"].append(m["overall"][metric])
            g["majority"].append(m["majority"][metric])
            g["dists"].append(m["overall"].get("pred_dist") or {})
            for other in ("accuracy", "mcc", "f1"):
                g["other"][other].append(m["overall"][other])
            for cal in ("ece", "brier"):  # calibration; absent from records written before it was measured
                if m["overall"].get(cal) is not None:
                    g["other"][cal].append(m["overall"][cal])
    rows = []
    for (task, model, method, opts, shots, es, domain, metric), g in groups.items():
        top = top_label(g["dists"])
        flagged = flags(statistics.fmean(g["scores"]), statistics.fmean(g["majority"]), top[1] if top else None)
        rows.append({"task": task, "model": model, "method": method, "options": opts, "shots": shots,
                     "eval_set": es, "domain": domain, "metric": metric, "score": _fmt(g["scores"]),
                     "runs": len(g["scores"]), "majority": _fmt(g["majority"]),
                     "most_predicted": f"{top[1]:.0%} {top[0]}" if top else "–", "flag": flag_text(flagged, top),
                     **{k: _fmt(g["other"].get(k, [])) for k in ("accuracy", "mcc", "f1", "ece", "brier")}})
    rows.sort(key=lambda r: (r["task"], r["model"], r["method"], r["options"], r["shots"], r["domain"], r["eval_set"]))
    return rows


def summarise_subsets(records: list[dict]) -> list[dict]:
    """Rows for eval sets reported per subset (HANS: per heuristic): task, model, method, options,
    shots, eval_set, subset ("heuristic=lexical_overlap"), accuracy (mean ± std over seeds), and the
    accuracy on each gold label within the subset ("acc | entailment"), which shows a model that
    answers one label for every input of a heuristic for what it is."""
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    labels: dict[tuple, list[str]] = defaultdict(list)
    for r, opts in _done_with_options(records):
        for es, m in r["metrics"].items():
            subsets = m.get("subsets") or {}
            for name, sc in subsets.items():
                if name.startswith("label=") or "|" in name:
                    continue
                key = (r["task"], r["model"], r["method"], opts, r["shots"], es, name)
                groups[key]["accuracy"].append(sc["accuracy"])
                for lab in (n.removeprefix("label=") for n in subsets if n.startswith("label=")):
                    if lab not in labels[key]:
                        labels[key].append(lab)
                    if f"{name}|label={lab}" in subsets:
                        groups[key][f"acc | {lab}"].append(subsets[f"{name}|label={lab}"]["accuracy"])
    rows = []
    for key, g in groups.items():
        task, model, method, opts, shots, es, name = key
        row = {"task": task, "model": model, "method": method, "options": opts, "shots": shots,
               "eval_set": es, "subset": name, "accuracy": _fmt(g["accuracy"]), "runs": len(g["accuracy"])}
        row.update({f"acc | {lab}": _fmt(g.get(f"acc | {lab}", [])) for lab in labels[key]})
        rows.append(row)
    rows.sort(key=lambda r: (r["task"], r["model"], r["method"], r["options"], r["shots"], r["eval_set"], r["subset"]))
    return rows


def rich_subset_table(rows: list[dict]) -> Table | None:
    """The per-subset rows as a terminal table (None when no eval set has subsets). Columns with
    one value for every row move into the title, so the table fits a narrow terminal."""
    if not rows:
        return None
    fixed, title = _fixed_into_title(rows, ("task", "model", "method", "options", "eval_set", "runs"),
                                     "per subset: accuracy overall and on each gold label")
    title = term(title)
    fields = {r["subset"].split("=", 1)[0] for r in rows}
    field = fields.pop() if len(fields) == 1 else None  # e.g. "heuristic": the column's name
    label_cols = list(dict.fromkeys(k for r in rows for k in r if k.startswith("acc | ")))
    cols = [c for c in ("task", "model", "method", "options", "eval_set") if c not in fixed]
    cols += ["shots", "subset", "accuracy", *label_cols, *(["runs"] if "runs" not in fixed else [])]
    t = Table(title=title)
    for col in cols:
        header = field if col == "subset" and field else col.removeprefix("acc | ").replace("_", " ")
        t.add_column(term(header), justify="right" if col in ("shots", "runs") else "left",
                     no_wrap=col not in ("options",) and not col.startswith("acc | "),
                     min_width=13 if col.startswith("acc | ") else None)
    for r in rows:
        cells = {**r, "subset": r["subset"].split("=", 1)[1] if field else r["subset"]}
        t.add_row(*[term(cells.get(c, "–")) for c in cols])
    return t


def rich_table(rows: list[dict], failed: list[dict]) -> Table:
    """Columns that hold one value for every row (task, model, ...) move into the title."""
    fixed, title = _fixed_into_title(rows, ("task", "model", "method", "options", "metric"),
                                     "tuneoff results, mean ± std over seeds")
    t = Table(title=term(title), caption_justify="left")
    cols = [c for c in ("task", "model", "method", "options") if c not in fixed]
    cols += ["shots", "eval_set", "domain", *(["metric"] if "metric" not in fixed else []), "score", "majority", "runs"]
    for col in cols:  # numbers never wrap: "0.653 ±" over "0.018" reads as two values
        t.add_column(col.replace("_", " "), justify="right" if col in ("shots", "runs") else "left",
                     no_wrap=col in ("score", "majority", "shots", "runs", "eval_set"))
    flagged = []
    for r in rows:  # a flagged score is marked "!" and explained under the table (fits 80 columns)
        cells = {**r, "score": r["score"] + (" !" if r["flag"] else "")}
        t.add_row(*[term(cells[c]) for c in cols], style="red" if r["flag"] else None)
        if r["flag"]:
            where = " ".join(str(r[c]) for c in cols if c in ("method", "options", "eval_set") and r[c])
            flagged.append(f"! {where} at {r['shots']} shots: {r['flag']}")
    notes = []
    if flagged:
        extra = len(flagged) - MAX_FLAGGED
        notes += flagged[:MAX_FLAGGED] + ([f"… and {extra} more (summary.md lists all)"] if extra > 0 else [])
        notes.append(FLAG_NOTE)
    if failed:
        notes.append(f"{len(failed)} failed run(s): " + "; ".join(
            f"{f['run_id']}: {(f.get('error') or '')[:160]}" for f in failed[:5]))
    t.caption = term("\n".join(notes)) if notes else None
    return t


MAX_FLAGGED = 12
FLAG_NOTE = (f"flag: ≤ majority = no better than always predicting the most frequent label; one label = the "
             f"runs gave one label to ≥{COLLAPSED:.0%} of the inputs; then the most-predicted label and its share "
             "(mean over runs)")


def _md_table(rows: list[dict], cols: list[str]) -> list[str]:
    """A Markdown table; every cell and header escaped (dataset text, names, errors stay inert)."""
    lines = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(md_text(r.get(c, "")) for c in cols) + " |" for r in rows]


def write_summary(rows: list[dict], folder: Path, subset_rows: list[dict] | None = None,
                  failed: list[dict] | None = None) -> tuple[Path, Path]:
    md, csv_path = folder / "summary.md", folder / "summary.csv"
    cols = ["task", "model", "method", "options", "shots", "eval_set", "domain", "metric", "score", "majority",
            "most_predicted", "flag", "accuracy", "mcc", "f1", "ece", "brier", "runs"]
    text = ("# tuneoff results (mean ± std over seeds)\n\n" + "\n".join(_md_table(rows, cols)) + "\n\n"
            f"ece, brier: calibration of the class probabilities. {DEFINITION}\n")
    if any(r["flag"] for r in rows):
        text += f"\n{FLAG_NOTE}.\n"
    if subset_rows:
        sub_cols = ["task", "model", "method", "options", "shots", "eval_set", "subset", "accuracy",
                    *dict.fromkeys(k for r in subset_rows for k in r if k.startswith("acc | ")), "runs"]
        text += ("\n## Per subset (accuracy; accuracy on each gold label within the subset)\n\n"
                 + "\n".join(_md_table(subset_rows, sub_cols)) + "\n")
    if failed:
        text += f"\n## Failed runs ({len(failed)})\n\n" + "".join(
            "- " + md_text(f"{f['run_id']} {f.get('method', '')} shots={f.get('shots')} data_seed={f.get('data_seed')} "
                      f"seed={f.get('seed')}: {f.get('error') or ''}") + "\n" for f in failed)
    md.write_text(text)
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return md, csv_path


def print_summary(console, records: list[dict]) -> list[dict]:
    """Print the results table of `records` (and the per-subset table, when an eval set has
    subsets); returns the failed records."""
    rows, sub = summarise(records), summarise_subsets(records)
    failed = [r for r in records if r.get("status") != "done"]
    if rows:
        console.print(rich_table(rows, failed))
    else:
        console.print("[bold red]no run finished[/]" if records else "no runs")
        for f in failed:
            console.print(term(f"  {f['run_id']}: {f.get('error') or ''}"), highlight=False)
    if sub:
        console.print(rich_subset_table(sub))
    return failed


def write_folder_summary(store) -> tuple[Path, Path]:
    """summary.md and summary.csv of every run in a results folder (earlier invocations included),
    so that a run that adds to a folder never hides what the folder already held."""
    records = store.records()
    failed = [r for r in records if r.get("status") != "done"]
    return write_summary(summarise(records), store.folder, summarise_subsets(records), failed)
