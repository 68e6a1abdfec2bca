"""`tuneoff run` and `tuneoff sweep`: both plan their runs and run them through the functions of the
Python API (`tuneoff.experiment`: the one driver, then the folder's summary written), drawn on the
terminal by `Shown`; the commands print the header lines, the results table and the answer."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from tuneoff.cli.base import app, console, err, fail, message, print_recommendation, say, split_args, warn
from tuneoff.cli.display import RunDisplay, SweepDisplay, bars
from tuneoff.config import ConfigError
from tuneoff.escape import term
from tuneoff.experiment import Front


class Shown(Front):
    """The runs drawn on `console`: bars on a terminal, plain lines in a log (`cli.display`), as
    `tuneoff run` draws them, or, given `label` (a run's name), as `tuneoff sweep` does."""

    def __init__(self, console, label=None):
        self.console, self.label = console, label

    @contextmanager
    def observe(self, plan, store, slots):
        with bars(self.console) as progress:
            yield (RunDisplay(progress, plan, store) if self.label is None
                   else SweepDisplay(progress, plan, slots, self.label, store))

    def say(self, text: str) -> None:
        say(self.console, term(text))


def _prepared(prepare, *args, **kwargs):
    """`prepare(...)`'s experiment; what it raises before any run starts is a clear error (exit 2)."""
    from tuneoff.executors import ExecutorError
    from tuneoff.store import StoreError

    try:
        return prepare(*args, **kwargs)
    except (ExecutorError, FileNotFoundError, StoreError) as e:
        fail(str(e))
    except (ConfigError, ValueError, KeyError) as e:
        fail(message(e))


def _ran(exp, front, **options):
    """The results of running `exp`. A store that fails while the runs go on is an error (exit 1);
    Ctrl-C, SIGTERM or SIGHUP stops the runs (`tuneoff.signals`): what was kept is said and the exit
    code is 128 + the signal's number."""
    from tuneoff.executors import ExecutorError
    from tuneoff.experiment import Interrupted
    from tuneoff.store import StoreError

    try:
        return exp.run(front, **options)
    except ExecutorError as e:
        fail(str(e))
    except StoreError as e:
        fail(str(e), code=1)
    except Interrupted as e:
        say(err, term(f"stopped by {e.name}: {e.kept}; run the same command again to resume"))
        raise typer.Exit(e.exit_code)


def _conclude(res, budget=None) -> None:
    """The results table of the runs planned, the summary files written and (a sweep) the answer
    for its budget over every run of the folder, earlier invocations' included, as `tuneoff
    recommend` gives it; exit 1 if a run failed."""
    from tuneoff.store import StoreError
    from tuneoff.summary import print_summary

    failed = print_summary(console, res.planned)
    warn(res.notes)
    if res.written:
        files = ", ".join(str(p) for p in res.written.values())
        say(console, term(f"written: {files} (every run in {res.folder}/), {res.store.path}"))
    if budget is not None:
        try:
            rec = res.recommend(budget)
        except StoreError as e:
            fail(str(e), code=1)
        print_recommendation(rec, scope=f"every run in {res.folder}/ ({len(res.records)}), as `tuneoff recommend` "
                                        "gives it")
    if failed:
        raise typer.Exit(1)


@app.command(short_help="Run a config's runs, print their table and the recommendation; with nothing "
                        "given, the main job on the built-in defaults.")
def run(
    config: Optional[str] = typer.Argument(None, help="YAML config (optional; a relative task, data_dir or "
                                                     "forgetting.text in it is read from its folder); then key=value "
                                                     "overrides"),
    overrides: Optional[list[str]] = typer.Argument(None, help="e.g. task=mnli shots=16 train.lr=1e-4"),
    force: bool = typer.Option(False, help="rerun runs that are already done"),
):
    """Run the comparison runs of a config, record and print them, and, where they compare several
    methods, the recommendation over the folder's runs. With nothing given, the main job
    (`tuneoff.config.MAIN_JOB`, written out in examples/demo.yaml): full fine-tuning against the
    linear probe on the built-in demo task; key=value settings without a file start from the config
    defaults."""
    from tuneoff.budget import Budget
    from tuneoff.config import MAIN_JOB
    from tuneoff.experiment import prepare_run

    path, ov = split_args(config, overrides)
    # a failed run is run again (a sweep asks for --retry-failed); --force reruns done ones too
    exp = _prepared(prepare_run, MAIN_JOB if path is None and not ov else path, ov, force=force)
    cfg, methods = exp.runs[0], list(dict.fromkeys(r.method.name for r in exp.runs))
    say(console, f"[bold]{len(exp.runs)} run(s)[/]: " + term(f"task={cfg.task} model={cfg.model} "
                                                          f"method={','.join(methods)} → {cfg.output_dir}/"))
    _conclude(_ran(exp, Shown(console)), Budget() if len(methods) > 1 else None)


@app.command()
def sweep(
    config: str = typer.Argument(..., help="sweep YAML (defaults, grid, methods; a relative task, data_dir or "
                                           "forgetting.text in it is read from its folder); then key=value overrides"),
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
    from tuneoff.experiment import prepare_sweep

    exp = _prepared(prepare_sweep, config, overrides or [], retry_failed=retry_failed, dry_run=dry_run,
                    executor=executor, address=address)
    sw, plan, out = exp.sweep, exp.plan, exp.output_dir
    dup = f" ({sw.duplicates} duplicate(s) merged)" if sw.duplicates else ""
    say(console, f"[bold]sweep {term(config)}[/]: {len(sw.runs)} run(s){dup} → {term(out)}/")
    failed_note = ("run again now (--retry-failed)" if retry_failed
                   else "skipped: --retry-failed reruns them") if plan.failed else ""
    console.print(f"already done: {len(plan.done)}; failed: {len(plan.failed)}"
                  + (f", {failed_note}" if failed_note else "") + f"; to run now: {len(plan.todo)}",
                  highlight=False)
    if dry_run:
        _list(config, sw, plan)
        _estimate(exp.store, plan, lambda run: " ".join(
            [sw.method_label(run), *(f"{k}={v}" for k, v in sw.describe(run).items()
                                     if k not in ("task", "model", "shots", "data_seed", "seed"))]),
                  max_seeds if until_decided else None)
        return
    res = _ran(exp, Shown(console, sw.label), executor=executor, address=address, num_cpus=num_cpus,
               cpus_per_run=cpus_per_run, until_decided=until_decided, max_seeds=max_seeds)
    _conclude(res, sw.budget)


GROUPS_SHOWN = 20  # the dry run's lines of prices: one per (task, model, method, shots), up to this many


def _estimate(store, plan, label=None, max_seeds: int | None = None) -> None:
    """The dry run's estimate of the time the runs to run will take, one at a time, and how each
    group of runs was priced: from finished runs like them, else from their work (`tuneoff.estimate`);
    with `max_seeds` (--until-decided), the most its rounds may add."""
    from tuneoff.estimate import Costs
    from tuneoff.throughput import Pricer

    records = store.records("done") if store is not None else []
    costs = Costs(records, Pricer())  # a model priced from its work is calibrated first: a few seconds
    if plan.todo:
        _runs_left(costs, records, plan, label)
    if max_seeds is not None:
        _until_decided_bound(costs, store, plan, max_seeds)


def _runs_left(costs, records, plan, label) -> None:
    """The estimate of the runs to run and how each group was priced."""
    from tuneoff.cli.display import duration, estimate_text
    from tuneoff.estimate import Left

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
    extra = sum(costs.price(run).extra for run in plan.todo)
    bound = f"; up to {duration(est.seconds + extra)} if every selection's edge rule extends" if extra > 0 else ""
    say(console, f"estimate: {estimate_text(est)}, one run at a time (each run priced from {source}: "
                 f"`tuneoff.estimate`){bound}")
    for key, runs, price, seconds in groups[:GROUPS_SHOWN]:
        task, model, method, shots, entry = key
        cost = duration(seconds) if seconds is not None else "not priced"
        say(console, f"  {term(Path(str(task)).stem)} · {term(model)} · {term(entry or method)} · {shots} shots: "
                     f"{len(runs)} run(s), {cost} — {term(price.basis)}", indent=6)
        if price.selection:
            more = f"; up to {price.more:.1f}× that if the edge rule extends" if price.more > 1 else ""
            say(console, f"    with its selection: {term(price.selection)}{more}", indent=6)
    if len(groups) > GROUPS_SHOWN:
        rest = groups[GROUPS_SHOWN:]
        runs, priced_rest = sum(len(g[1]) for g in rest), [g[3] for g in rest if g[3] is not None]
        cost = f", {duration(sum(priced_rest))}" + (" for those priced" if len(priced_rest) < len(rest) else "") \
            if priced_rest else ", not priced"
        console.print(f"  ... and {len(rest)} more group(s): {runs} run(s){cost}", highlight=False)


def _until_decided_bound(costs, store, plan, max_seeds: int) -> None:
    """The runs --until-decided may add at most (every cell to `max_seeds` splits, none decided
    sooner) and their price, one at a time; each reuses its cell's frugal choice."""
    from tuneoff.cli.display import duration
    from tuneoff.decide import cell_of, most_added

    done = store.statuses() if store is not None else {}
    more = [run for run in most_added(plan.runs, max_seeds) if done.get(run.run_id()) != "done"]
    if not more:
        console.print(f"--until-decided: no run to add: every cell holds --max-seeds {max_seeds} splits",
                      highlight=False)
        return
    prices = [costs.run_seconds(run)[0] for run in more]
    known = [p for p in prices if p is not None]
    cost = (f"about {duration(sum(known))} one run at a time" + (f" for the {len(known)} priced" if len(known) <
                                                                     len(more) else "")) if known else "not priced"
    console.print(f"--until-decided: at most {len(more)} more run(s), if none of the "
                  f"{len({cell_of(r) for r in more})} (task, shots) cell(s) below {max_seeds} splits is decided "
                  f"sooner: {cost}", highlight=False)


def _list(config: str, sw, plan) -> None:
    """The dry run's table: every run of the sweep, its status and the settings that vary."""
    from tuneoff.report.terminal import NAME, NUMBER, Col, FitTable

    # what a run is (method, task, model) names it: at 80 columns a heading over the runs that share it
    cols = [Col("#", NUMBER, justify="right"), Col("run_id", NAME), Col("status", NAME), Col("method", NAME, key=True),
            *[Col(term(c), NAME, key=c in ("task", "model")) for c in sw.varying]]
    status = {**{r: "done" for r in plan.done}, **{r: "failed" for r in plan.failed}}
    rows = [[str(i), run.run_id(), status.get(run.run_id(), "to run"), term(sw.method_label(run)),
             *[term(v) for v in sw.describe(run).values()]] for i, run in enumerate(sw.runs, 1)]
    FitTable(cols, rows, title=term(f"runs of {config}")).print(console)
