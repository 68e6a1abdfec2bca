"""Assemble the report from run records, and write it: HTML (one self-contained file), Markdown
(same tables, figures as PNGs beside it), and every run flattened to CSV (and Parquet when pyarrow
is installed)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tuneoff.budget import Budget
from tuneoff.escape import write_csv
from tuneoff.report import decision_plots, plots
from tuneoff.report.answer import recommendation_blocks
from tuneoff.report.blocks import Bullets, Figure, Section, Text, slug
from tuneoff.metrics import all_metric_names, direction, label_metric_names
from tuneoff.report.frame import aggregate, done_rows, eval_sets_in_order, frame_metric, runs, to_frame
from tuneoff.report.quality import calibration_table, cross_model_leaderboard, forgetting_table
from tuneoff.report.protocol import protocol_blocks, warnings
from tuneoff.report.selection import selection_blocks
from tuneoff.report.stats import ALPHA, MIN_PAIRS, N_BOOT, claim_rule, paired_tests
from tuneoff.report.tables import col_label, leaderboard, paired_table, subset_table, variant_order

SECTIONS = [("recommendation", "Recommendation"), ("summary", "Warnings"), ("leaderboard", "Leaderboard"),
            ("selection", "Hyperparameter selection"),
            ("learning-curves", "Learning curves"), ("in-vs-out", "In-domain vs out-of-domain"),
            ("cost", "Score vs cost"), ("calibration", "Calibration"),
            ("forgetting", "Forgetting: the price of adaptation"), ("subsets", "Per-subset results"),
            ("paired", "Paired comparisons"), ("protocol", "Protocol")]

NO_RUNS = "No finished runs: nothing to show here."


_slug = slug  # a figure's file stem


def build_sections(records: list[dict], n_boot: int = N_BOOT, seed: int = 0,
                   store_notes: list[str] = (), budget: Budget | None = None,
                   splits: dict | None = None) -> tuple[list[Section], dict]:
    """The report as format-neutral sections, plus the tables it was built from
    ({"frame", "aggregate", "paired", "runs", "answers"}). `budget` limits the recommendation;
    `splits`: per (task, shots), how many splits `--until-decided` gave the cell and why."""
    frame = to_frame(records)
    agg = aggregate(frame, all_metric_names())
    run_df = runs(frame) if len(frame) else frame
    margin = (budget or Budget()).margin  # the one rule of `report.claims`, with the budget's margin
    tests = paired_tests(frame, n_boot=n_boot, seed=seed, margin=margin)
    sec = {sid: Section(sid, title) for sid, title in SECTIONS}

    warn = warnings(frame, agg, run_df) if len(run_df) else ["No runs recorded in this results folder."]
    warn = [*store_notes, *warn]  # rows of the store that could not be read come first
    sec["summary"].blocks.append(Bullets(warn, kind="warn") if warn else Text("No warnings."))
    tasks = sorted(run_df["task"].dropna().unique()) if len(run_df) else []
    if tasks:
        sec["summary"].blocks.append(Text("Main metric per task: " + ", ".join(
            f"{t}: {frame_metric(run_df, t)}" for t in tasks) + ". Other metrics are in the secondary tables."))

    answers = _recommendation(sec["recommendation"], frame, budget)
    for task in tasks if len(agg) else []:
        _cross_model_blocks(sec, frame, agg, run_df, task)
    combos = []
    if len(agg):
        combos = [k for k, _ in agg.groupby(["task", "model"], sort=True)]
    for task, model in combos:
        _task_blocks(sec, frame, agg, run_df, task, model)
    if not combos:
        for sid in ("leaderboard", "learning-curves", "in-vs-out", "cost", "calibration", "forgetting", "subsets"):
            sec[sid].blocks.append(Text(NO_RUNS))

    sec["paired"].blocks.append(Text(claim_rule(n_boot, seed, ALPHA, MIN_PAIRS, margin)))
    if len(tests):
        n_sig, n_eq = int(tests["significant"].sum()), int(tests["equivalent"].sum())
        sec["paired"].blocks.append(Text(
            f"{len(tests)} comparisons on each task's main metric (overall score of each eval set); {n_sig} "
            f"separated and {n_eq} equivalent within ±{margin:g} under this rule (split-only, old: "
            f"{int(tests['significant_old'].sum())} significant)."))
        sec["paired"].blocks.append(paired_table(tests))
    else:
        sec["paired"].blocks.append(Text("No comparisons: fewer than two methods with finished runs."))
    sec["selection"].blocks += selection_blocks(records)
    sec["protocol"].blocks += protocol_blocks(frame, run_df, records)
    if splits:  # `tuneoff sweep --until-decided`: where seeds were added, and why
        sec["protocol"].blocks += [Text("Splits per cell: `--until-decided` added data seeds where the answer was "
                                        "not decided (decisions.jsonl):"),
                                   Bullets([f"{t} at {n} shots: {why}" for (t, n), why in sorted(splits.items())])]
    return list(sec.values()), {"frame": frame, "aggregate": agg, "paired": tests, "runs": run_df,
                                "answers": answers}


def _recommendation(section: Section, frame, budget: Budget | None) -> list:
    budget = budget or Budget()
    if not len(frame):
        section.blocks.append(Text(NO_RUNS))
        return []
    blocks, answers = recommendation_blocks(frame, budget)
    section.blocks += blocks
    for a in answers:
        png, notes = decision_plots.recommendation_front(a, budget.limits())
        _figure(section, png, notes, _slug("front", a.task, a.shots, a.domain),
                f"{a.task}, {a.shots} shots, {a.domain}-domain: {a.metric} (mean ± std over splits) against each "
                "budget figure (CPU time and FLOPs: the mean run; memory and parameters: the worst run); star = "
                "best that fits, orange = not separated from it, blue = no test (no recommendation), x = over budget; "
                "the line is the Pareto front of the methods that fit.")
    return answers


def _cross_model_blocks(sec, frame, agg, run_df, task) -> None:
    """What spans the models of a task: the cross-model leaderboard, calibration, forgetting."""
    f = frame[frame["task"] == task]
    metric, eval_sets = frame_metric(f, task), eval_sets_in_order(f)
    if f["model"].nunique() > 1:
        sec["leaderboard"].blocks.append(cross_model_leaderboard(agg, run_df, task, metric, eval_sets))
    cal = calibration_table(frame, task, eval_sets)
    if cal is None:
        sec["calibration"].blocks.append(Text(f"{task}: no calibration figures recorded (runs written before "
                                              "tuneoff measured calibration)."))
    else:
        sec["calibration"].blocks.append(cal)
        target = next((e for e, d in eval_sets if d == "in"), eval_sets[0][0] if eval_sets else None)
        png, notes = decision_plots.reliability(done_rows(f), target)
        _figure(sec["calibration"], png, notes, _slug("reliability", task, target),
                f"{task}: reliability diagrams on {target} (bins pooled over seeds); dotted = perfectly "
                "calibrated; grey bars = share of examples per confidence bin (largest shot count).")
    fg = forgetting_table(run_df, task)
    sec["forgetting"].blocks.append(fg if fg is not None else Text(
        f"{task}: no forgetting figures recorded (runs written before tuneoff measured forgetting)."))


def _task_blocks(sec, frame, agg, run_df, task, model) -> None:
    a = agg[(agg["task"] == task) & (agg["model"] == model)]
    f = frame[(frame["task"] == task) & (frame["model"] == model)]
    r = run_df[(run_df["task"] == task) & (run_df["model"] == model)]
    metric = frame_metric(f, task)
    eval_sets = eval_sets_in_order(f)
    variants, higher = variant_order(a, metric), direction(metric) > 0
    head = f"{task} · {model}"
    sec["leaderboard"].blocks.append(leaderboard(a, r, metric, eval_sets, title=f"{head} — {metric}"))
    for other in (m for m in label_metric_names() if m != metric):
        sec["leaderboard"].blocks.append(
            leaderboard(a, r, other, eval_sets, title=f"{head} — secondary metric: {other}", with_costs=False))

    png, notes = plots.learning_curves(a, metric, eval_sets, variants)
    shots = sorted({int(s) for s in a.loc[a["metric"] == metric, "shots"].dropna()})
    _figure(sec["learning-curves"], png, notes, _slug("curves", task, model),
            f"{head}: {metric} per method at {shots[0]} training examples per class (the only shot count); error "
            "bar = ±1 std over seeds; dashed = majority baseline." if len(shots) == 1 else
            f"{head}: {metric} vs training examples per class; band = ±1 std over seeds (a method at one shot count: "
            "its point and error bar); dashed = majority baseline.")
    png, notes = plots.in_vs_out(a, metric, eval_sets, variants)
    _figure(sec["in-vs-out"], png, notes, _slug("in_vs_out", task, model),
            f"{head}: mean {metric} per method and shots; points {'under' if higher else 'over'} the dotted diagonal "
            "lose out of domain.")
    target = next((e for e, d in eval_sets if d == "in"), eval_sets[0][0] if eval_sets else None)
    if target is not None:
        png, notes = plots.score_vs_cost(a, r[r["status"] == "done"], metric, target, variants)
        _figure(sec["cost"], png, notes, _slug("cost", task, model),
                f"{head}: {metric} on {target} against cost (mean over seeds, error bar ±1 std; number = shots). "
                f"The line is the Pareto front: no other point has a {'higher' if higher else 'lower'} score at a "
                "lower cost. " + COST_NOTE)
    for es, dom in eval_sets:
        t = subset_table(a, f, es, title=f"{head} — {col_label(es, dom)}")
        if t is not None:
            sec["subsets"].blocks.append(t)


COST_NOTE = ("Peak memory per run = a fixed process baseline (a fresh interpreter with tuneoff's libraries "
             "loaded, measured once) + the run's own peak resident memory above its start (its model, "
             "training and evaluation; the task's data and earlier runs are not counted), so it does not depend "
             "on which runs came before; on a GPU, the peak allocated during the run. Time = the method's set-up "
             "(e.g. distill's teacher pass, icl's prefix) + training (+ hyperparameter selection), in process "
             "CPU time (all threads; it moves less than wall time when other work loads the machine); model "
             "loading is left out.")


def _figure(section: Section, png, notes, name: str, caption: str) -> None:
    if png is None:
        section.blocks.append(Text(f"{caption.split(':')[0]}: " + "; ".join(notes)))
        return
    section.blocks.append(Figure(name, png, caption + (" Note: " + "; ".join(notes) if notes else "")))


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or broken: skip Parquet
        return False
    return True


def write_report(results_dir, html_path=None, md_path=None, csv_path=None,
                 n_boot: int = N_BOOT, seed: int = 0, store=None, budget: Budget | None = None) -> dict[str, Path]:
    """Write report.html, report.md (+ its PNGs in report_figures/) and runs.csv (+ runs.parquet if
    pyarrow is importable) for the results folder; returns {kind: path}."""
    from tuneoff.report.html import render_html
    from tuneoff.report.markdown import render_markdown
    from tuneoff.store import open_store

    results_dir = Path(results_dir)
    store = store or open_store(results_dir, must_exist=True)
    records = store.records()
    html_path = Path(html_path) if html_path else results_dir / "report.html"
    md_path = Path(md_path) if md_path else results_dir / "report.md"
    csv_path = Path(csv_path) if csv_path else results_dir / "runs.csv"
    note = store.bad_rows_note()
    from tuneoff.decide import cell_lines, read_log

    sections, tables = build_sections(records, n_boot=n_boot, seed=seed, store_notes=[note] if note else [],
                                      budget=budget, splits=cell_lines(read_log(results_dir)))
    title = f"tuneoff report — {results_dir.resolve().name}"
    written: dict[str, Path] = {}

    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(sections, title), encoding="utf-8")
    written["html"] = html_path

    fig_dir = md_path.parent / f"{md_path.stem}_figures"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_text, figures = render_markdown(sections, title, fig_dir.name)
    if figures:
        fig_dir.mkdir(exist_ok=True)
        for name, png in figures.items():
            (fig_dir / name).write_bytes(png)
        written["figures"] = fig_dir
    md_path.write_text(md_text, encoding="utf-8")
    written["md"] = md_path

    csv_path.parent.mkdir(parents=True, exist_ok=True)
    frame: pd.DataFrame = tables["frame"]
    cells = frame.astype(object).where(frame.notna(), None)  # a missing value: an empty cell, as pandas writes it
    written["csv"] = write_csv(csv_path, list(frame.columns), cells.itertuples(index=False, name=None), "\n")
    if _has_pyarrow():
        pq = csv_path.with_suffix(".parquet")
        frame.to_parquet(pq, index=False)
        written["parquet"] = pq
    return written
