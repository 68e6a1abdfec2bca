"""The commands that read a results folder: show, recommend, report, repair, evaluate."""
from __future__ import annotations

import os
from typing import Optional

import typer

from tuneoff.cli.base import app, console, err, fail, print_recommendation, reading, say, warn
from tuneoff.escape import term
from tuneoff.results import ReportPaths


@app.command()
def show(results_dir: str = typer.Argument(..., help="a results folder")):
    """Print the results table (and the per-subset table) of a results folder."""
    from tuneoff.results import counts_text
    from tuneoff.summary import print_summary

    with reading(results_dir) as res:
        print_summary(console, res.records)
        warn(res.notes)
        console.print(f"runs: {counts_text(res.counts())}", highlight=False)


def _budget(max_train_cpu, max_flops, max_memory, max_trainable_params, shots, domain, margin=None,
            max_train_time=None):
    from tuneoff.budget import BudgetError, budget_from

    extra = {} if margin is None else {"margin": margin}
    if max_train_time is not None:  # the old flag: the same limit, now read in CPU time
        say(err, "note: --max-train-time limits CPU time (set-up + training + selection, mean run), as "
                 "--max-train-cpu; wall time is shown beside it and limits nothing")
    try:
        return budget_from(max_train_cpu=max_train_cpu, max_train_time=max_train_time, max_flops=max_flops,
                           max_memory=max_memory, max_trainable_params=max_trainable_params, shots=shots or None,
                           domain=domain, **extra)
    except BudgetError as e:
        fail(str(e))


_CPU = typer.Option(None, "--max-train-cpu", help="CPU time a method takes to get ready (set-up + training + "
                                                  "selection), mean run, e.g. 90s, 10m, 1h30m")
_TIME = typer.Option(None, "--max-train-time", help="old name of --max-train-cpu (CPU time, not wall time)")
_FLOPS = typer.Option(None, "--max-flops", help="FLOPs of training + selection (approximate), mean run, e.g. 2e15, "
                                                  "500T")
_MEMORY = typer.Option(None, "--max-memory", help="peak memory, the worst run, e.g. 4GB, 512MB")
_PARAMS = typer.Option(None, "--max-trainable-params", help="trainable parameters, e.g. 1M, 250k")
_SHOTS = typer.Option(None, "--shots", help="answer for this shot count (repeatable); default every one")
_DOMAIN = typer.Option(None, "--domain", help="in | out; default both")
_MARGIN = typer.Option(None, "--margin", help="equivalence margin, absolute on the main metric (default 0.02): "
                                              "'equivalent' needs TOST inside it")


@app.command(short_help="Which method to use within a budget, per task and shot count, and how sure.")
def recommend(
    results_dir: str = typer.Argument(..., help="a results folder"),
    max_train_cpu: Optional[str] = _CPU, max_flops: Optional[str] = _FLOPS, max_memory: Optional[str] = _MEMORY,
    max_trainable_params: Optional[str] = _PARAMS, shots: Optional[list[int]] = _SHOTS,
    domain: Optional[str] = _DOMAIN, margin: Optional[float] = _MARGIN, max_train_time: Optional[str] = _TIME,
):
    """Which method to use within a budget, per task and shot count: the best when the data separate
    it from every other fitting method, the methods shown equivalent to it (TOST within the margin),
    those not separated from it (how far each trails, with its interval), and the cheapest of the best
    and its equivalents by CPU time; the same answer as the report's first section. Time and FLOPs
    limits read the mean run's CPU time and FLOPs (set-up + training + selection), as the
    leaderboard and the cost plot show them; memory and trainable parameters, the worst run."""
    budget = _budget(max_train_cpu, max_flops, max_memory, max_trainable_params, shots, domain, margin,
                     max_train_time)
    with reading(results_dir) as res:
        print_recommendation(res.recommend(budget))
        warn(res.notes)


@app.command()
def report(
    results_dir: str = typer.Argument(..., help="a results folder"),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="HTML path (default RESULTS_DIR/report.html); a path ending in .md is the Markdown's, the HTML beside it"),
    markdown: Optional[str] = typer.Option(None, "--md", help="Markdown path (default beside the HTML)"),
    csv: Optional[str] = typer.Option(None, "--csv", help="CSV of all runs (default RESULTS_DIR/runs.csv)"),
    max_train_cpu: Optional[str] = _CPU, max_flops: Optional[str] = _FLOPS, max_memory: Optional[str] = _MEMORY,
    max_trainable_params: Optional[str] = _PARAMS, shots: Optional[list[int]] = _SHOTS,
    domain: Optional[str] = _DOMAIN, margin: Optional[float] = _MARGIN, max_train_time: Optional[str] = _TIME,
):
    """Write the comparison report: self-contained HTML, Markdown with the same tables, CSV of all runs."""
    budget = _budget(max_train_cpu, max_flops, max_memory, max_trainable_params, shots, domain, margin,
                     max_train_time)
    with reading(results_dir) as res:
        _writable_defaults(results_dir, output, csv)
        try:
            paths = res.report(output, markdown=markdown, csv=csv, budget=budget)
        except OSError as e:
            where = f" to {e.filename}" if e.filename else ""
            fail(f"the report could not be written{where} ({e.strerror}); give paths elsewhere with -o, --md and --csv")
        except ReportPaths as e:
            fail(str(e))
        warn(res.notes)
    for kind, path in paths.items():
        say(console, term(f"{kind}: {path}"))


def _writable_defaults(results_dir: str, output: Optional[str], csv: Optional[str]) -> None:
    """The report goes into the results folder unless -o (and --csv) say where: a folder that
    cannot be written (a published store) is an error that names them."""
    left = [flag for flag, given in (("-o", output), ("--csv", csv)) if not given]
    if left and not os.access(results_dir, os.W_OK):
        fail(f"{results_dir} cannot be written (read-only), and the report is written there unless told "
             f"otherwise: give {' and '.join(f'{flag} PATH' for flag in left)} to write it elsewhere")


@app.command(short_help="Rebuild a results folder's store from its run manifests.")
def repair(
    results_dir: str = typer.Argument(..., help="a results folder"),
    records: Optional[list[str]] = typer.Argument(None, help="record files kept elsewhere to bring in"),
):
    """Rebuild a results folder's store from its run manifests: a damaged or missing results.sqlite
    (kept aside), runs whose row is missing or unreadable, deleted manifests. Run it while no other
    tuneoff process uses the folder."""
    from tuneoff.repair import repair as do_repair
    from tuneoff.store import StoreError

    try:
        rep = do_repair(results_dir, records or [])
    except (FileNotFoundError, StoreError) as e:
        fail(str(e))
    if rep.damaged:
        say(console, term(f"the store was damaged: {rep.damaged.split(': nothing')[0]}"))
        for p in rep.moved_to:
            say(console, term(f"  kept aside as {p}"))
        console.print(f"attempts read back from it (the log of what was computed): {rep.attempts}", highlight=False)
    console.print(f"rows written from manifests: {len(rep.imported)}; rows read back from the damaged store: "
                  f"{len(rep.salvaged)}; manifests restored: {len(rep.restored)}; broken manifests rewritten "
                  f"from their rows: {len(rep.rewritten)}", highlight=False)
    if rep.selection_cpu:
        console.print(f"runs given their frugal choice's selection CPU time: {len(rep.selection_cpu)}")
    for p in rep.bad_files:
        say(err, term(f"warning: {p} holds no usable run record; left as it is"))
    for rid in rep.unreadable_rows:
        say(err, term(f"warning: run {rid}: its row cannot be read and it has no manifest; "
                      f"`tuneoff sweep --retry-failed` cannot bring it back, run it again"))
    from tuneoff.results import counts_text
    from tuneoff.store import Store

    console.print(f"runs: {counts_text(Store(results_dir).counts())}", highlight=False)


@app.command()
def evaluate(run_dir: str = typer.Argument(..., help="a run folder saved with save=true")):
    """Re-evaluate a saved run and compare with its recorded metrics."""
    from tuneoff.runner import evaluate_saved

    try:
        before, after = evaluate_saved(run_dir)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    from tuneoff.report.terminal import NAME, NUMBER, Col, FitTable

    rows, same_all = [], True
    for name, m in after.items():
        old = before.get(name, {}).get("overall", {}).get("accuracy")
        new = m["overall"]["accuracy"]
        same = old is not None and abs(old - new) < 1e-9
        same_all &= same
        rows.append([term(name), f"{old:.4f}" if old is not None else "–", f"{new:.4f}", "yes" if same else "NO"])
    cols = [Col("eval set", NAME, key=True), Col("recorded accuracy", NUMBER), Col("now accuracy", NUMBER),
            Col("same", NAME)]
    FitTable(cols, rows, title=term(f"re-evaluation of {run_dir}")).print(console)
    if not same_all:
        raise typer.Exit(1)
