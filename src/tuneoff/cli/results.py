"""The commands that read a results folder: show, recommend, report, repair, evaluate."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tuneoff.cli.base import app, console, err, fail, print_recommendation, reading, warn_bad_rows
from tuneoff.escape import term


@app.command()
def show(results_dir: str = typer.Argument(..., help="a results folder")):
    """Print the results table (and the per-subset table) of a results folder."""
    from tuneoff.summary import print_summary

    with reading(results_dir) as store:
        print_summary(console, store.records())
        warn_bad_rows(store)
        console.print(f"runs: {store.counts()}")


def _budget(max_train_time, max_memory, max_trainable_params, shots, domain, margin=None):
    from tuneoff.budget import BudgetError, budget_from

    extra = {} if margin is None else {"margin": margin}
    try:
        return budget_from(max_train_time=max_train_time, max_memory=max_memory,
                           max_trainable_params=max_trainable_params, shots=shots or None, domain=domain, **extra)
    except BudgetError as e:
        fail(str(e))


_TIME = typer.Option(None, "--max-train-time", help="training time per run, e.g. 90s, 10m, 1h30m")
_MEMORY = typer.Option(None, "--max-memory", help="peak memory per run, e.g. 4GB, 512MB")
_PARAMS = typer.Option(None, "--max-trainable-params", help="trainable parameters, e.g. 1M, 250k")
_SHOTS = typer.Option(None, "--shots", help="answer for this shot count (repeatable); default every one")
_DOMAIN = typer.Option(None, "--domain", help="in | out; default both")
_MARGIN = typer.Option(None, "--margin", help="equivalence margin, absolute on the main metric (default 0.02): "
                                              "'equivalent' needs TOST inside it")


@app.command()
def recommend(
    results_dir: str = typer.Argument(..., help="a results folder"),
    max_train_time: Optional[str] = _TIME, max_memory: Optional[str] = _MEMORY,
    max_trainable_params: Optional[str] = _PARAMS, shots: Optional[list[int]] = _SHOTS,
    domain: Optional[str] = _DOMAIN, margin: Optional[float] = _MARGIN,
):
    """Which method to use within a budget, per task and shot count: the best when the data separate
    it from every other fitting method, the methods shown equivalent to it (TOST within the margin),
    those not separated from it (with the smallest difference the cell could detect), and the cheapest
    of the best and its equivalents by CPU time; the same answer as the report's first section."""
    budget = _budget(max_train_time, max_memory, max_trainable_params, shots, domain, margin)
    with reading(results_dir) as store:
        print_recommendation(store.records(), budget)
        warn_bad_rows(store)


@app.command()
def report(
    results_dir: str = typer.Argument(..., help="a results folder"),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="HTML path (default RESULTS_DIR/report.html)"),
    markdown: Optional[str] = typer.Option(None, "--md", help="Markdown path (default beside the HTML)"),
    csv: Optional[str] = typer.Option(None, "--csv", help="CSV of all runs (default RESULTS_DIR/runs.csv)"),
    max_train_time: Optional[str] = _TIME, max_memory: Optional[str] = _MEMORY,
    max_trainable_params: Optional[str] = _PARAMS, shots: Optional[list[int]] = _SHOTS,
    domain: Optional[str] = _DOMAIN, margin: Optional[float] = _MARGIN,
):
    """Write the comparison report: self-contained HTML, Markdown with the same tables, CSV of all runs."""
    from tuneoff.report import write_report

    budget = _budget(max_train_time, max_memory, max_trainable_params, shots, domain, margin)
    with reading(results_dir) as store:
        _writable_defaults(results_dir, output, csv)
        md = markdown or (str(Path(output).with_suffix(".md")) if output else None)
        try:
            paths = write_report(results_dir, html_path=output, md_path=md, csv_path=csv, store=store, budget=budget)
        except OSError as e:
            where = f" to {e.filename}" if e.filename else ""
            fail(f"the report could not be written{where} ({e.strerror}); give paths elsewhere with -o, --md and --csv")
        warn_bad_rows(store)
    for kind, path in paths.items():
        console.print(term(f"{kind}: {path}"), highlight=False)


def _writable_defaults(results_dir: str, output: Optional[str], csv: Optional[str]) -> None:
    """The report goes into the results folder unless -o (and --csv) say where: a folder that
    cannot be written (a published store) is an error that names them."""
    left = [flag for flag, given in (("-o", output), ("--csv", csv)) if not given]
    if left and not os.access(results_dir, os.W_OK):
        fail(f"{results_dir} cannot be written (read-only), and the report is written there unless told "
             f"otherwise: give {' and '.join(f'{flag} PATH' for flag in left)} to write it elsewhere")


@app.command()
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
        console.print(term(f"the store was damaged: {rep.damaged.split(': nothing')[0]}"), highlight=False)
        for p in rep.moved_to:
            console.print(term(f"  kept aside as {p}"), highlight=False)
        console.print(f"attempts read back from it (the log of what was computed): {rep.attempts}", highlight=False)
    console.print(f"rows written from manifests: {len(rep.imported)}; rows read back from the damaged store: "
                  f"{len(rep.salvaged)}; manifests restored: {len(rep.restored)}; broken manifests rewritten "
                  f"from their rows: {len(rep.rewritten)}", highlight=False)
    if rep.selection_cpu:
        console.print(f"runs given their frugal choice's selection CPU time: {len(rep.selection_cpu)}")
    for p in rep.bad_files:
        err.print(term(f"warning: {p} holds no usable run record; left as it is"), highlight=False)
    for rid in rep.unreadable_rows:
        err.print(term(f"warning: run {rid}: its row cannot be read and it has no manifest; "
                       f"`tuneoff sweep --retry-failed` cannot bring it back, run it again"), highlight=False)
    from tuneoff.store import Store

    console.print(f"runs: {Store(results_dir).counts()}")


@app.command()
def evaluate(run_dir: str = typer.Argument(..., help="a run folder saved with save=true")):
    """Re-evaluate a saved run and compare with its recorded metrics."""
    from tuneoff.runner import evaluate_saved

    try:
        before, after = evaluate_saved(run_dir)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    t = Table(title=term(f"re-evaluation of {run_dir}"))
    for c in ("eval set", "recorded accuracy", "now accuracy", "same"):
        t.add_column(c)
    same_all = True
    for name, m in after.items():
        old = before.get(name, {}).get("overall", {}).get("accuracy")
        new = m["overall"]["accuracy"]
        same = old is not None and abs(old - new) < 1e-9
        same_all &= same
        t.add_row(term(name), f"{old:.4f}" if old is not None else "–", f"{new:.4f}", "yes" if same else "NO")
    console.print(t)
    if not same_all:
        raise typer.Exit(1)
