"""`tuneoff run` and `tuneoff sweep`: both make a plan of their runs and run it through the same
driver (`tuneoff.plan`), then print and write the summary of the results folder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tuneoff.cli.base import (app, console, err, fail, load, message, open_results, print_recommendation,
                              warn_bad_rows)
from tuneoff.cli.display import RunDisplay, SweepDisplay, bars
from tuneoff.config import ConfigError
from tuneoff.escape import term


def _drive(plan, store, display, executor: str = "local", *options) -> list[dict]:
    """Run `plan` on the executor (`options`: make_executor's), drawn by `display(progress,
    executor)`; the records of all its runs. Nothing to run starts no executor. A store that
    fails while the runs go on is an error (exit 1) that says what was kept; Ctrl-C, SIGTERM or
    SIGHUP stops the runs (`tuneoff.signals`) and exits 128 + the signal's number."""
    from tuneoff.executors import ExecutorError, make_executor
    from tuneoff.plan import run_plan
    from tuneoff.signals import Stopped, handled
    from tuneoff.store import StoreError

    try:
        ex = make_executor(executor, *options) if plan.todo else make_executor("local")
    except ExecutorError as e:
        fail(str(e))
    try:  # the handlers go on once the executor has started (ray.init sets its own for SIGTERM)
        with bars(console) as progress, handled():
            return run_plan(plan, store, ex, display(progress, ex))
    except StoreError as e:
        fail(str(e), code=1)
    except Stopped as e:
        _stopped(e, store, plan, ex.slots)
    finally:
        ex.close()


def _stopped(stop, store, plan, slots: int) -> None:
    """Say what a stop signal left (its claims are given back by then) and exit 128 + its number."""
    from tuneoff.store import StoreError

    try:
        recorded = store.statuses()
        kept = f"{sum(run.run_id() in recorded for run in plan.runs)} of {len(plan.runs)} run(s) finished and kept"
    except StoreError:
        kept = "the finished runs are kept"
    flight = "the run in flight was" if slots == 1 else "the runs in flight were"
    err.print(term(f"stopped by {stop.name}: {kept} in {store.folder}/; {flight} not recorded; "
                   "run the same command again to resume"), highlight=False, soft_wrap=True)
    raise typer.Exit(stop.exit_code)


def _conclude(store, records: list[dict], out, budget=None) -> None:
    """The results table of these runs, the folder's summary files and (a sweep) the answer for
    its budget over every run of the folder, earlier invocations' included, as `tuneoff recommend`
    gives it; exit 1 if a run failed."""
    from tuneoff.store import StoreError
    from tuneoff.summary import print_summary, write_folder_summary

    failed = print_summary(console, records)
    md, csv_path = write_folder_summary(store)
    warn_bad_rows(store)
    console.print(term(f"written: {md}, {csv_path} (every run in {out}/), {store.path}"), highlight=False)
    if budget is not None:
        try:
            every = store.records()
        except StoreError as e:
            fail(str(e), code=1)
        print_recommendation(every, budget, scope=f"every run in {out}/ ({len(every)}), as `tuneoff recommend` "
                                                  "gives it")
    if failed:
        raise typer.Exit(1)


@app.command()
def run(
    config: Optional[str] = typer.Argument(None, help="YAML config (optional); then key=value overrides"),
    overrides: Optional[list[str]] = typer.Argument(None, help="e.g. task=mnli shots=16 train.lr=1e-4"),
    force: bool = typer.Option(False, help="rerun runs that are already done"),
):
    """Run the comparison runs of a config (default: the built-in demo task), record and print them."""
    from tuneoff.plan import plan_store

    cfg = load(config, overrides)
    runs = cfg.expand()
    store = open_results(cfg.output_dir)
    console.print(f"[bold]{len(runs)} run(s)[/]: " + term(f"task={cfg.task} model={cfg.model} "
                                                       f"method={cfg.method.name} → {cfg.output_dir}/"))
    # a failed run is run again (a sweep asks for --retry-failed); --force reruns done ones too
    plan = plan_store(runs, store, retry_failed=True, force=force)
    records = _drive(plan, store, lambda progress, ex: RunDisplay(progress, plan, store))
    _conclude(store, records, cfg.output_dir)


@app.command()
def sweep(
    config: str = typer.Argument(..., help="sweep YAML (defaults, grid, methods); then key=value overrides"),
    overrides: Optional[list[str]] = typer.Argument(
        None, help=r"grid.train.lr=\[1e-4] or methods=\[finetune] edit the sweep; any other key (e.g. "
                   "train.max_steps=5) is set on every run, last"),
    executor: str = typer.Option("local", help="local (here, one run at a time) | ray (Ray tasks)"),
    address: Optional[str] = typer.Option(None, help="ray: address of an existing cluster (default: start one here)"),
    num_cpus: Optional[int] = typer.Option(None, help="ray: CPUs of the local cluster (default: all)"),
    cpus_per_run: int = typer.Option(1, help="ray: CPUs each run asks for when it gets no GPU"),
    retry_failed: bool = typer.Option(False, help="rerun runs recorded as failed (default: skip them)"),
    dry_run: bool = typer.Option(False, help="list the runs and their status; run nothing"),
    until_decided: bool = typer.Option(False, "--until-decided",
                                       help="then add data seeds to the cells whose recommendation is not decided, "
                                            "round by round, until each is or holds --max-seeds splits"),
    max_seeds: int = typer.Option(10, "--max-seeds", min=1, help="--until-decided: the most splits a cell may get"),
):
    """Run a grid of runs (methods x grid values x shots x seeds) into one results store; resumable."""
    from tuneoff.executors import ExecutorError, check_executor
    from tuneoff.plan import plan_store
    from tuneoff.runner import preflight
    from tuneoff.store import has_manifests
    from tuneoff.sweep import load_sweep

    try:
        check_executor(executor, address)
    except ExecutorError as e:
        fail(str(e))
    try:
        sw = load_sweep(config, overrides)
        checked = set()
        for run in sw.runs:  # what would fail every run alike is an error before any run starts
            key = (run.task, run.pattern, tuple(run.eval.sets or ()), run.data_dir, run.model,
                   run.trust_remote_code, run.output_dir, run.device)  # every field preflight reads
            if key not in checked:
                checked.add(key)
                preflight(run, read_model_config=not dry_run)
    except (ConfigError, ValueError, KeyError) as e:
        fail(message(e))
    out = Path(sw.output_dir)
    if not dry_run:
        store = open_results(out)
    else:  # read what is there, create nothing (manifests without their store: damaged, say so)
        store = open_results(out, write=False) if (out / "results.sqlite").is_file() or has_manifests(out) else None
    plan = plan_store(sw.runs, store, retry_failed, looking=dry_run)
    dup = f" ({sw.duplicates} duplicate(s) merged)" if sw.duplicates else ""
    console.print(f"[bold]sweep {term(config)}[/]: {len(sw.runs)} run(s){dup} → {term(out)}/", highlight=False)
    failed_note = ("run again now (--retry-failed)" if retry_failed
                   else "skipped: --retry-failed reruns them") if plan.failed else ""
    console.print(f"already done: {len(plan.done)}; failed: {len(plan.failed)}"
                  + (f", {failed_note}" if failed_note else "") + f"; to run now: {len(plan.todo)}",
                  highlight=False)
    if dry_run:
        _list(config, sw, plan)
        _estimate(store, plan, lambda run: " ".join(
            [sw.method_label(run), *(f"{k}={v}" for k, v in sw.describe(run).items()
                                     if k not in ("task", "model", "shots", "data_seed", "seed"))]))
        return
    records = _drive(plan, store, lambda progress, ex: SweepDisplay(progress, plan, ex.slots, sw.label, store),
                     executor, address, num_cpus, cpus_per_run)
    if until_decided:
        records = _until_decided(sw, store, out, max_seeds, executor, address, num_cpus, cpus_per_run)
    _conclude(store, records, out, sw.budget)


def cell_states(records, budget) -> dict[tuple, bool | None]:
    """Per (task, shots) cell of `records`: True where its answer (every domain's) is decided
    (`report.claims.decided`), False where it is not and more data seeds may decide it, None where
    they cannot (`claims.seeds_can_decide`: the differences left are below what the eval sample shows)."""
    from tuneoff.report.claims import decided, seeds_can_decide
    from tuneoff.report.frame import to_frame
    from tuneoff.report.recommend import recommend

    answers, _ = recommend(to_frame(records), budget)
    out: dict[tuple, bool | None] = {}
    for a in answers:
        cell = (a.task, int(a.shots))
        if decided(a):
            out.setdefault(cell, True)
        else:
            out[cell] = False if (out.get(cell) is False or seeds_can_decide(a)) else None
    return out


def _until_decided(sw, store, out, max_seeds: int, *options) -> list[dict]:
    """`--until-decided`: seeds added where the answer is not decided (`tuneoff.decide`); the records
    of every run the sweep planned, the added ones included."""
    from tuneoff.budget import Budget
    from tuneoff.decide import until_decided
    from tuneoff.plan import plan_store

    def drive(new) -> None:
        plan = plan_store(new, store, False)
        console.print(term(f"--until-decided: {len(new)} run(s) on new data seeds, {len(plan.todo)} to run"),
                      highlight=False)
        _drive(plan, store, lambda progress, ex: SweepDisplay(progress, plan, ex.slots, sw.label, store), *options)

    runs = until_decided(sw.runs, lambda: cell_states(store.records(), sw.budget or Budget()), drive, out,
                         max_seeds)
    ids = {r.run_id() for r in runs}
    return [r for r in store.records() if r.run_id in ids]


GROUPS_SHOWN = 20  # the dry run's lines of prices: one per (task, model, method, shots), up to this many


def _estimate(store, plan, label=None) -> None:
    """The dry run's estimate of the time the runs to run will take, one at a time, and how each
    group of runs was priced: from finished runs like them, else from their work (`tuneoff.estimate`)."""
    from tuneoff.cli.display import duration, estimate_text
    from tuneoff.estimate import Costs, Left
    from tuneoff.throughput import Pricer

    if not plan.todo:
        return
    records = store.records("done") if store is not None else []
    costs = Costs(records, Pricer())  # a model priced from its work is calibrated first: a few seconds
    groups = costs.groups(plan.todo, label)
    priced = [g for g in groups if g[3] is not None]
    if not priced:
        why = groups[0][2].basis.removeprefix("unknown").lstrip(": ")
        console.print(f"estimate: none yet: no run of this folder has finished to price the others by, and "
                      f"their work cannot be counted here ({term(why)})", highlight=False)
        return
    lower = len(priced) < len(groups) or any(not g[2].known for g in groups)
    est = Left(sum(g[3] for g in priced), lower)
    source = (f"the most similar of the {len(records)} finished run(s), else from its work" if records
              else "its work, as no run of this folder has finished yet")
    console.print(f"estimate: {estimate_text(est)}, one run at a time (each run priced from {source}: "
                  "`tuneoff.estimate`)", highlight=False)
    for key, runs, price, seconds in groups[:GROUPS_SHOWN]:
        task, model, method, shots, entry = key
        cost = duration(seconds) if seconds is not None else "not priced"
        console.print(f"  {term(Path(str(task)).stem)} · {term(model)} · {term(entry or method)} · {shots} shots: "
                      f"{len(runs)} run(s), {cost} — {term(price.basis)}", highlight=False, soft_wrap=True)
        if price.selection:
            more = f"; up to {price.more:g}× that if the edge rule extends" if price.more > 1 else ""
            console.print(f"    with its selection: {term(price.selection)}{more}", highlight=False, soft_wrap=True)
    if len(groups) > GROUPS_SHOWN:
        console.print(f"  ... and {len(groups) - GROUPS_SHOWN} more group(s)", highlight=False)


def _list(config: str, sw, plan) -> None:
    """The dry run's table: every run of the sweep, its status and the settings that vary."""
    t = Table(title=term(f"runs of {config}"))
    for c in ("#", "run_id", "status", "method", *sw.varying):
        t.add_column(c, no_wrap=c == "run_id", min_width=16 if c == "run_id" else None)
    status = {**{r: "done" for r in plan.done}, **{r: "failed" for r in plan.failed}}
    for i, run in enumerate(sw.runs, 1):
        rid = run.run_id()
        t.add_row(str(i), rid, status.get(rid, "to run"), term(sw.method_label(run)),
                  *[term(v) for v in sw.describe(run).values()])
    console.print(t)
