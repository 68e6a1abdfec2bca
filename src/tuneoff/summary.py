"""The terminal/disk summary of a results folder: mean ± std over seeds per method, shots and eval set,
with the majority-class baseline beside it. (The full HTML report lives in `tuneoff.report`.)"""
from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from tuneoff.calibration import DEFINITION
from tuneoff.describe import DEFAULT_METRIC, labels
from tuneoff.escape import md as md_text
from tuneoff.escape import term, write_csv
from tuneoff.metrics import all_metric_names, direction, not_better, prob_metric_names
from tuneoff.record import load
from tuneoff.report.frame import aggregate, done_rows, to_frame
from tuneoff.report.runflags import COLLAPSED, NO_CHANCE, collapsed, top
from tuneoff.report.terminal import NAME, NUMBER, TEXT, Col, FitTable, say


def top_label(pred_dists: list[dict]) -> tuple[str, float] | None:
    """The most-predicted label over runs and the mean share of each run's most-predicted label
    (a run's own collapse shows even when seeds collapse onto different labels: "negative/positive")."""
    tops = [max(d.items(), key=lambda kv: kv[1]) for d in pred_dists if d]
    if not tops:
        return None
    names = sorted({name for name, _ in tops}, key=lambda n: (-sum(1 for t, _ in tops if t == n), n))
    return "/".join(names), statistics.fmean(share for _, share in tops)


# the flag of a score no better than the majority baseline, by the metric's direction
NOT_BETTER = {1: "≤ majority", -1: "≥ majority"}


def majority_flag(metric: str | None = None) -> str:
    return NOT_BETTER[direction(metric or DEFAULT_METRIC)]


def flags(score: float, majority: float | None, top_share, metric: str | None = None) -> list[str]:
    """What a reader must know about a score of `metric` (default accuracy): no better than the
    majority baseline (the direction is the metric's), or collapsed. `top_share`: the share of the
    most-predicted label of one run, or a list of each run's: every run is judged on its own, so
    one collapsed run among healthy ones reads "one label in 1 of 5 runs"."""
    out = []
    if majority is not None and not_better(metric or DEFAULT_METRIC, score, majority):
        out.append(majority_flag(metric))
    shares = [x for x in (top_share if isinstance(top_share, (list, tuple)) else [top_share]) if x is not None]
    k = sum(collapsed(x) for x in shares)
    if k:
        out.append("one label" if k == len(shares) else f"one label in {k} of {len(shares)} runs")
    return out


def chance_flag(above: list) -> list[str]:
    """The flag of a cell whose runs' selections found no candidate above chance on their folds
    (`above`: each run's `selection_above_chance`: True, False or unknown)."""
    k, n = sum(a is False for a in above), len(above)
    return [] if not k else [NO_CHANCE if k == n else f"{NO_CHANCE} in {k} of {n} runs"]


def flag_text(flagged: list[str], top: tuple[str, float] | None) -> str:
    """"≤ majority · 70% positive", "one label · 98% positive" (empty when nothing is flagged)."""
    if not flagged:
        return ""
    return ", ".join(flagged) + (f" · {top[1]:.0%} {top[0]}" if top else "")


def _fmt(mean: float, std: float, count: int) -> str:
    """mean ± std over seeds as the summary shows it; the mean alone for one run, "–" for none."""
    if not count:
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if count > 1 else f"{mean:.3f}"


def _fixed_into_title(rows: list[dict], candidates: tuple[str, ...], title: str) -> tuple[list[str], str]:
    """Columns among `candidates` that hold one value in every row, and `title` naming their values:
    the table shows them once, above it, and fits a narrow terminal."""
    fixed = [c for c in candidates if rows and len({r[c] for r in rows}) == 1]
    if fixed:
        title += ": " + " ".join(f"{c}={rows[0][c]}" for c in fixed if rows[0][c])
    return fixed, title


# The summary's cell: the report's aggregate over seeds (`report.frame.aggregate`) per these keys;
# `options` is the summary's name for a run's settings (`describe.Label.details`).
KEYS = ["task", "model", "method", "options", "main_metric", "shots", "eval_set", "domain", "subset"]
CELL = KEYS[:-1]


class _Cells:
    """The done runs of `records` as the report's frame, and their aggregate over seeds per KEYS and
    metric, every metric of the registry. A run is known by its position in `records` (its `run_id`
    column here, as text): records need not carry a run id."""

    def __init__(self, records: list[dict]):
        details = {str(i): lab.details for i, lab in enumerate(labels(records))}
        frame = to_frame([{**r, "run_id": str(i)} for i, r in enumerate(records)])
        frame["options"] = frame["run_id"].map(details)
        self.rows = done_rows(frame)
        agg = aggregate(frame, all_metric_names(), keys=KEYS)
        self.stats = {tuple(k): (m, s, int(n)) for *k, m, s, n in agg[KEYS + ["metric", "mean", "std", "count"]]
                      .itertuples(index=False)}

    def stat(self, cell: tuple, subset: str, metric: str) -> tuple[float, float, int]:
        """(mean, std, count) over the runs of `cell` on `subset`; count 0 where none has `metric`."""
        return self.stats.get((*cell, subset, metric), (np.nan, np.nan, 0))

    def fmt(self, cell: tuple, subset: str, metric: str) -> str:
        return _fmt(*self.stat(cell, subset, metric))

    def groups(self, subsets):
        """(cell, its rows in record order) for the cells with rows of `subsets`."""
        rows = self.rows[self.rows["subset"].isin(subsets)] if subsets is not None else self.rows
        for cell, g in rows.groupby(CELL, dropna=False, sort=False):
            yield tuple(cell), g


def _pred_dists(records: list[dict]) -> dict[tuple, dict]:
    """(position in `records` as text, eval set) -> the share of each predicted label, in the order
    the record lists them."""
    return {(str(i), es): (m.overall.pred_dist if m.overall else None) or {}
            for i, r in enumerate(map(load, records)) if r.status == "done" for es, m in (r.metrics or {}).items()}


def summarise(records: list[dict]) -> list[dict]:
    """Rows: task, model, method, options, shots, eval_set, domain, metric, score (mean ± std over
    seeds), runs, majority. `options` names the method options and any other setting that differs
    between the runs, so only runs that differ by seed alone are averaged."""
    cells, dists, rows = _Cells(records), _pred_dists(records), []
    for cell, g in cells.groups(["overall"]):
        task, model, method, opts, metric, shots, es, domain = cell
        score, majority = cells.stat(cell, "overall", metric), cells.stat(cell, "majority", metric)
        if not score[2]:
            continue
        runs = [dists.get((rid, es), {}) for rid in g["run_id"]]
        shares = [t[1] for t in map(top, runs) if t]
        flagged = flags(score[0], majority[0] if majority[2] else None, shares, metric)
        flagged += chance_flag([bool(a) if isinstance(a, (bool, np.bool_)) else None
                                for a in g["selection_above_chance"]])
        top_all = top_label(runs)
        # the flag names the collapsed runs' label and share where some collapsed, else every run's
        shown = top_label([d for d in runs if collapsed((top(d) or ("", None))[1])]) or top_all
        rows.append({"task": task, "model": model, "method": method, "options": opts, "shots": shots,
                     "eval_set": es, "domain": domain, "metric": metric, "score": _fmt(*score),
                     "runs": score[2], "majority": cells.fmt(cell, "majority", metric),
                     "most_predicted": f"{top_all[1]:.0%} {top_all[0]}" if top_all else "–",
                     "flag": flag_text(flagged, shown),
                     **{k: cells.fmt(cell, "overall", k) for k in all_metric_names()}})
    rows.sort(key=lambda r: (r["task"], r["model"], r["method"], r["options"], r["shots"], r["domain"], r["eval_set"]))
    return rows


def _subset_labels(g, name: str) -> list[str]:
    """The gold labels of the runs in `g` that hold subset `name`, in the order their records list them."""
    ids = set(g.loc[g["subset"] == name, "run_id"])
    return list(dict.fromkeys(s.removeprefix("label=") for s, rid in zip(g["subset"], g["run_id"])
                              if s.startswith("label=") and rid in ids))


def summarise_subsets(records: list[dict]) -> list[dict]:
    """Rows for eval sets reported per subset (HANS: per heuristic): task, model, method, options,
    shots, eval_set, subset ("heuristic=lexical_overlap"), accuracy (mean ± std over seeds), and the
    accuracy on each gold label within the subset ("acc | entailment"), which shows a model that
    answers one label for every input of a heuristic for what it is."""
    cells, rows = _Cells(records), []
    for cell, g in cells.groups(None):
        task, model, method, opts, _, shots, es, _ = cell
        names = dict.fromkeys(s for s in g["subset"] if s not in ("overall", "majority")
                              and not s.startswith("label=") and "|" not in s)
        for name in names:
            acc = cells.stat(cell, name, "accuracy")
            row = {"task": task, "model": model, "method": method, "options": opts, "shots": shots,
                   "eval_set": es, "subset": name, "accuracy": _fmt(*acc), "runs": acc[2]}
            row.update({f"acc | {lab}": cells.fmt(cell, f"{name}|label={lab}", "accuracy")
                        for lab in _subset_labels(g, name)})
            rows.append(row)
    rows.sort(key=lambda r: (r["task"], r["model"], r["method"], r["options"], r["shots"], r["eval_set"], r["subset"]))
    return rows


def rich_subset_table(rows: list[dict]) -> FitTable | None:
    """The per-subset rows as a terminal table (None when no eval set has subsets). Columns with
    one value for every row move into the title, so the table fits a narrow terminal."""
    if not rows:
        return None
    fixed, title = _fixed_into_title(rows, ("task", "model", "method", "options", "eval_set", "runs"),
                                     "per subset: accuracy overall and on each gold label")
    fields = {r["subset"].split("=", 1)[0] for r in rows}
    field = fields.pop() if len(fields) == 1 else None  # e.g. "heuristic": the column's name
    label_cols = list(dict.fromkeys(k for r in rows for k in r if k.startswith("acc | ")))
    cols = [c for c in ("task", "model", "method", "options", "eval_set") if c not in fixed]
    cols += ["shots", "subset", "accuracy", *label_cols, *(["runs"] if "runs" not in fixed else [])]
    spec = [_col(c, {"task", "model", "method", "options", "eval_set"},
                 field if c == "subset" and field else c.removeprefix("acc | ")) for c in cols]
    body = [[term({**r, "subset": r["subset"].split("=", 1)[1] if field else r["subset"]}.get(c, "–")) for c in cols]
            for r in rows]
    return FitTable(spec, body, title=term(title))


def _col(col: str, keys: set[str], header: str | None = None) -> Col:
    """A summary field as a terminal column: names (and numbers: "0.653 ±" over "0.018" reads as two
    values) kept whole, options wrapped; `keys`: the fields that name a row."""
    kind = TEXT if col == "options" else NAME if col in ("task", "model", "method", "eval_set", "domain", "metric",
                                                          "subset") else NUMBER
    return Col(term((header or col).replace("_", " ")), kind, key=col in keys,
               justify="right" if col in ("shots", "runs") else "left")


def rich_table(rows: list[dict], failed: list[dict]) -> FitTable:
    """Columns that hold one value for every row (task, model, ...) move into the title."""
    fixed, title = _fixed_into_title(rows, ("task", "model", "method", "options", "metric"),
                                     "tuneoff results, mean ± std over seeds")
    cols = [c for c in ("task", "model", "method", "options") if c not in fixed]
    cols += ["shots", "eval_set", "domain", *(["metric"] if "metric" not in fixed else []), "score", "majority", "runs"]
    # the metric is the task's: a name of the row, so a narrow layout heads a group with it
    spec = [_col(c, {"task", "model", "method", "options", "metric"}) for c in cols]
    flagged, body = [], []
    for r in rows:  # a flagged score is marked "!" and explained under the table (fits 80 columns)
        cells = {**r, "score": r["score"] + (" !" if r["flag"] else "")}
        body.append([term(cells[c]) for c in cols])
        if r["flag"]:
            where = " ".join(str(r[c]) for c in cols if c in ("task", "model", "method", "options", "eval_set") and r[c])
            flagged.append(f"! {where} at {r['shots']} shots: {r['flag']}")
    notes = []
    if flagged:
        extra = len(flagged) - MAX_FLAGGED
        notes += flagged[:MAX_FLAGGED] + ([f"… and {extra} more (summary.md lists all)"] if extra > 0 else [])
        notes.append(flag_note(rows))
    if failed:
        notes.append(f"{len(failed)} failed run(s): " + "; ".join(
            f"{f.run_id}: {(f.error or '')[:160]}" for f in map(load, failed[:5])))
    return FitTable(spec, body, title=term(title), caption=term("\n".join(notes)) if notes else None,
                    styles=["red" if r["flag"] else None for r in rows])


MAX_FLAGGED = 12
FLAG_NOTE = (f"flag: ≤ majority = no better than always predicting the most frequent label; one label = each run "
             f"gave one label to ≥{COLLAPSED:.0%} of the inputs (in k of n runs: those runs did, each judged on its "
             f"own); {NO_CHANCE} = every candidate its selection tried scored at or below the majority baseline on "
             "the held-out folds, so the choice shows nothing learnt; then the most-predicted label and its share "
             "(mean over the collapsed runs, else over every run)")


def flag_note(rows: list[dict]) -> str:
    """FLAG_NOTE, and what "≥ majority" means where a row of a lower-is-better metric has it."""
    lower = any(r["flag"].startswith(NOT_BETTER[-1]) for r in rows)
    return FLAG_NOTE + ("; ≥ majority = the same for a metric where lower is better" if lower else "")


def _md_table(rows: list[dict], cols: list[str]) -> list[str]:
    """A Markdown table; every cell and header escaped (dataset text, names, errors stay inert)."""
    lines = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(md_text(r.get(c, "")) for c in cols) + " |" for r in rows]


def write_summary(rows: list[dict], folder: Path, subset_rows: list[dict] | None = None,
                  failed: list[dict] | None = None) -> tuple[Path, Path]:
    md, csv_path = folder / "summary.md", folder / "summary.csv"
    cols = ["task", "model", "method", "options", "shots", "eval_set", "domain", "metric", "score", "majority",
            "most_predicted", "flag", *all_metric_names(), "runs"]
    text = ("# tuneoff results (mean ± std over seeds)\n\n" + "\n".join(_md_table(rows, cols)) + "\n\n"
            f"{', '.join(prob_metric_names())}: calibration of the class probabilities. {DEFINITION}\n")
    if any(r["flag"] for r in rows):
        text += f"\n{flag_note(rows)}.\n"
    if subset_rows:
        sub_cols = ["task", "model", "method", "options", "shots", "eval_set", "subset", "accuracy",
                    *dict.fromkeys(k for r in subset_rows for k in r if k.startswith("acc | ")), "runs"]
        text += ("\n## Per subset (accuracy; accuracy on each gold label within the subset)\n\n"
                 + "\n".join(_md_table(subset_rows, sub_cols)) + "\n")
    if failed:
        text += f"\n## Failed runs ({len(failed)})\n\n" + "".join(
            "- " + md_text(f"{f.run_id} {f.method or ''} shots={f.shots} data_seed={f.data_seed} "
                      f"seed={f.seed}: {f.error or ''}") + "\n" for f in map(load, failed))
    md.write_text(text)
    write_csv(csv_path, cols, rows)
    return md, csv_path


def print_summary(console, records: list[dict]) -> list[dict]:
    """Print the results table of `records` (and the per-subset table, when an eval set has
    subsets); returns the failed records."""
    rows, sub = summarise(records), summarise_subsets(records)
    failed = [r for r in map(load, records) if r.status != "done"]
    if rows:
        rich_table(rows, failed).print(console)
    else:
        console.print("[bold red]no run finished[/]" if records else "no runs")
        for f in failed:
            say(console, term(f"  {f.run_id}: {f.error or ''}"))
    if sub:
        rich_subset_table(sub).print(console)
    return failed


def write_folder_summary(store) -> tuple[Path, Path]:
    """summary.md and summary.csv of every run in a results folder (earlier invocations included),
    so that a run that adds to a folder never hides what the folder already held."""
    records = store.records()
    failed = [r for r in records if r.status != "done"]
    return write_summary(summarise(records), store.folder, summarise_subsets(records), failed)
