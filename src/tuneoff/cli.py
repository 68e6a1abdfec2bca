"""The command line: thin; it parses, builds a config and calls the same functions as the Python API."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tuneoff.config import ConfigError, load_config
from tuneoff.escape import term

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="tuneoff: which way of adapting a language model works best with a few labels, and at what cost.")
console = Console()
err = Console(stderr=True)


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {term(msg)}", highlight=False)
    raise typer.Exit(code)


class Interrupted(BaseException):
    """Ctrl-C. Not a KeyboardInterrupt, which the CLI framework turns into a bare exit before
    tuneoff could say what was kept."""


def _on_sigint(signum, frame):
    raise Interrupted()


def _open_store(folder, for_writing: bool = True):
    """The results store of `folder`, checked (damaged, unwritable) before any run starts."""
    from tuneoff.store import Store, StoreError, check_writable

    from tuneoff.claims import lease_seconds

    try:
        if for_writing:
            check_writable(folder)
            lease_seconds()  # a malformed TUNEOFF_LEASE_S is an error now, not at the first claim
        return Store(folder)
    except StoreError as e:
        _fail(str(e))


def _warn_bad_rows(store) -> None:
    note = store.bad_rows_note()
    if note:
        err.print(f"[yellow]warning:[/] {term(note)}", highlight=False)


def _message(e: Exception) -> str:
    # str(KeyError) is the repr of its argument: quotes and escaped newlines
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)


def _split_args(config: Optional[str], overrides: Optional[list[str]]) -> tuple[Optional[str], list[str]]:
    overrides = list(overrides or [])
    if config and "=" in config and not Path(config).is_file():
        return None, [config, *overrides]
    return config, overrides


def _load(config: Optional[str], overrides: Optional[list[str]]):
    path, ov = _split_args(config, overrides)
    try:
        cfg = load_config(path, ov)
        from tuneoff.runner import preflight

        preflight(cfg)  # an unknown task, eval set, pattern or model is an error before any run starts
        return cfg
    except (ConfigError, ValueError, KeyError) as e:
        _fail(_message(e))


class _Progress:
    """Adapts runner progress callbacks to a rich progress bar. A phase without a count (model
    load, GGUF dequantising, a method's set-up) shows until the next phase starts."""

    def __init__(self, progress: Progress):
        self.p, self.tasks, self.steps = progress, {}, set()

    def __call__(self, phase: str, done: int, total: int | None, loss: float | None = None) -> None:
        if phase not in self.tasks:
            for old in [k for k in self.steps if k != phase]:  # a set-up step ends when the next phase starts
                self.p.remove_task(self.tasks.pop(old))
                self.steps.discard(old)
            self.tasks[phase] = self.p.add_task(phase, total=total)
            if total is None:
                self.steps.add(phase)
        desc = f"{phase}" + (f" loss {loss:.4f}" if loss is not None else "")
        self.p.update(self.tasks[phase], completed=done, total=total, description=desc)

    def reset(self) -> None:
        for t in self.tasks.values():
            self.p.remove_task(t)
        self.tasks, self.steps = {}, set()


LINE_EVERY_S = 30.0  # plain progress: a line per phase when it starts and ends, and at most this often


class _Lines:
    """Runner progress as plain lines, for output that is not a terminal (a log file, a pipe): each
    phase when it starts and ends, and in between at most every LINE_EVERY_S seconds with the time
    elapsed and about how long is left."""

    def __init__(self, out: Console):
        self.out, self.phases = out, {}

    def __call__(self, phase: str, done: int, total: int | None, loss: float | None = None) -> None:
        import time

        now = time.monotonic()
        if phase not in self.phases:
            self.phases[phase] = [now, now]
            self._say(f"{phase} …" if not total else f"{phase}: {done}/{total}")
            return
        start, last = self.phases[phase]
        if not total:
            return
        lost = f", loss {loss:.4f}" if loss is not None else ""
        if done >= total:
            self._say(f"{phase}: {done}/{total} done in {_duration(now - start)}{lost}")
        elif now - last >= LINE_EVERY_S and done:
            left = (now - start) / done * (total - done)
            self._say(f"{phase}: {done}/{total}, {_duration(now - start)} elapsed, about {_duration(left)} "
                      f"left{lost}")
        else:
            return
        self.phases[phase][1] = now

    def _say(self, text: str) -> None:
        self.out.print(f"  {text}", highlight=False, markup=False, soft_wrap=True)  # one line each in a log

    def reset(self) -> None:
        self.phases = {}


def _runner_progress(progress: Progress):
    """Bars on a terminal, plain lines elsewhere (rich draws nothing live where it cannot redraw)."""
    return _Progress(progress) if progress.console.is_terminal else _Lines(progress.console)


def _bar_columns() -> list:
    return [TextColumn("{task.description}"), _Bar(), _Count(), TimeElapsedColumn(), _Left()]


@app.command()
def run(
    config: Optional[str] = typer.Argument(None, help="YAML config (optional); then key=value overrides"),
    overrides: Optional[list[str]] = typer.Argument(None, help="e.g. task=mnli shots=16 train.lr=1e-4"),
    force: bool = typer.Option(False, help="rerun runs that are already done"),
):
    """Run the comparison runs of a config (default: the built-in demo task), record and print them."""
    from tuneoff.runner import execute
    from tuneoff.store import StoreError
    from tuneoff.summary import print_summary, write_folder_summary

    cfg = _load(config, overrides)
    runs = cfg.expand()
    store = _open_store(cfg.output_dir)
    console.print(f"[bold]{len(runs)} run(s)[/]: " + term(f"task={cfg.task} model={cfg.model} "
                                                       f"method={cfg.method.name} → {cfg.output_dir}/"))
    import time

    from tuneoff.sweep import eta_seconds

    records, durations = [], []
    with Progress(*_bar_columns(), console=console, transient=True) as progress:
        cb = _runner_progress(progress)
        for i, rc in enumerate(runs, 1):
            label = f"[{i}/{len(runs)}] shots={rc.shots} data_seed={rc.data_seed} seed={rc.seed}"
            waited = []

            def on_wait(busy, label=label):
                if not waited:
                    waited.append(busy)
                    console.print(f"{label}: another tuneoff process is running it; waiting for its result",
                                  highlight=False)
            started = time.monotonic()
            try:
                rec = execute(rc, store, progress=cb, force=force, on_wait=on_wait)
            except StoreError as e:
                _fail(str(e), code=1)
            cb.reset()
            skipped = rec.get("skipped")
            state = ("skipped (done)" if skipped == "done" else f"{rec['status']} ({skipped})" if skipped
                     else rec["status"])
            line = f"{label}: {state}"
            if rec["status"] == "failed":
                line += f" — [red]{term(rec['error'])}[/]"
            elif not skipped:
                line += f" — {_brief(rec)}"  # markup of its own, the data in it escaped
            if not skipped:
                durations.append(time.monotonic() - started)
                eta = eta_seconds(durations, len(runs) - i)
                line += f"; about {_duration(eta)} left" if eta and i < len(runs) else ""
            console.print(line, highlight=False)
            records.append(rec)
    failed = print_summary(console, records)
    md, csv_path = write_folder_summary(store)
    _warn_bad_rows(store)
    console.print(term(f"written: {md}, {csv_path} (every run in {cfg.output_dir}/), {store.path}"), highlight=False)
    if failed:
        raise typer.Exit(1)


def _brief(rec: dict) -> str:
    """One line on a finished run: its main metric per eval set (flagged at or below the majority
    baseline, or collapsed onto one label), and how long it took."""
    from tuneoff.summary import flag_text, flags, top_label

    metric = rec.get("main_metric", "accuracy")
    parts = []
    for name, m in rec.get("metrics", {}).items():
        score, maj = m["overall"][metric], m.get("majority", {}).get(metric)
        top = top_label([m["overall"].get("pred_dist") or {}])
        flagged = [f"{f} {maj:.3f}" if f == "≤ majority" else f for f in flags(score, maj, top[1] if top else None)]
        note = f" [red]({term(flag_text(flagged, top))})[/]" if flagged else ""
        parts.append(f"{term(name)} {score:.3f}{note}")
    res = rec.get("resources", {})
    chosen = (rec.get("selection") or {}).get("chosen_label")
    took = sum(res.get(f"{k}_time_s", 0) for k in ("load", "setup", "train", "eval", "selection"))
    return (f"{term(metric)}: {', '.join(parts)}" + (f"; chose {term(chosen)}" if chosen else "")
            + f" ({_duration(took)})")


class _SweepDisplay:
    """Draws a sweep: runs done/failed/left with the time left, the run(s) in progress and, for the
    local executor, the current run's train/eval bars. One line per finished run (kept in logs)."""

    def __init__(self, progress: Progress, plan, parallel: int, label):
        self.p, self.label, self.parallel = progress, label, parallel
        self.total, self.done, self.failed, self.durations = len(plan.todo), 0, 0, []
        self.overall = progress.add_task("", total=self.total, noleft=True)  # its line says the time left
        self.now = progress.add_task("", total=None, nobar=True)
        self.running: dict[str, str] = {}
        self.others, self.waited = 0, 0
        self.inner = _runner_progress(progress)
        self.progress = self.inner  # runner callbacks (local executor only)
        self._refresh()

    def _counts(self) -> str:
        from tuneoff.sweep import eta_seconds

        left = self.total - self.done - self.failed
        eta = eta_seconds(self.durations, left, self.parallel)
        return (f"{self.done} done, {self.failed} failed, {left} left"
                + (f", about {_duration(eta)} to go" if eta is not None else ""))

    def _refresh(self) -> None:
        self.p.update(self.overall, description=f"runs: {self._counts()}",
                      completed=self.done + self.failed, total=self.total)
        names = list(self.running.values())
        now = term("; ".join(names[:3]) + (f"; +{len(names) - 3} more" if len(names) > 3 else ""))
        self.p.update(self.now, description=f"now: {now}" if names else "", visible=bool(names))

    def elsewhere(self, run, status) -> None:
        self.total -= 1
        self.others += 1
        self.p.console.print(term(f"{self.label(run)}: {status}, recorded by another process"), highlight=False)
        self._refresh()

    def waiting(self, busy) -> None:
        if busy != self.waited:
            self.waited = busy
            self.p.console.print(f"waiting for {busy} run(s) that another tuneoff process is running "
                                 "(taken over if that process dies)", highlight=False)

    def started(self, run) -> None:
        if not self.running:
            self.p.reset(self.now)  # its clock shows how long the current run has taken
        self.running[run.run_id()] = self.label(run)
        self._refresh()

    def finished(self, run, record, seconds) -> None:
        self.running.pop(run.run_id(), None)
        self.inner.reset()
        ok = record["status"] == "done"
        self.done += ok
        self.failed += not ok
        self.durations.append(seconds)
        line = (term(f"[{self.done + self.failed}/{self.total}] {self.label(run)}: ")
                + ("[green]done[/]" if ok else f"[red]failed[/] — {term((record.get('error') or '')[:300])}")
                + f" ({_duration(seconds)}); {self._counts()}")
        self.p.console.print(line, highlight=False)
        self._refresh()


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _Bar(BarColumn):
    def render(self, task):
        return "" if task.fields.get("nobar") else super().render(task)


class _Left(TimeRemainingColumn):
    """Time left of a counted phase; nothing for a set-up step or the sweep's "now" line."""

    def render(self, task):
        from rich.text import Text

        hide = task.total is None or task.fields.get("nobar") or task.fields.get("noleft")
        return Text("") if hide else super().render(task)


class _Count(TextColumn):
    def __init__(self):
        super().__init__("")

    def render(self, task):
        from rich.text import Text

        return Text("" if task.total is None else f"{int(task.completed)}/{int(task.total)}")


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
):
    """Run a grid of runs (methods x grid values x shots x seeds) into one results store; resumable."""
    from tuneoff.executors import ExecutorError, make_executor
    from tuneoff.repair import restore_manifests
    from tuneoff.runner import preflight
    from tuneoff.store import StoreError
    from tuneoff.summary import print_summary, write_folder_summary
    from tuneoff.sweep import load_sweep, make_plan, run_sweep, sweep_records

    if executor not in ("local", "ray"):
        _fail(f"unknown executor {executor!r}; use local or ray")
    if address and executor != "ray":
        _fail("--address is for the ray executor; add --executor ray")
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
        _fail(_message(e))
    out = Path(sw.output_dir)
    exists = (out / "results.sqlite").is_file()
    if dry_run and not exists and out.is_dir():
        from tuneoff.store import check_file

        try:
            check_file(out)  # manifests without their store: damaged, say so (and create nothing)
        except StoreError as e:
            _fail(str(e))
    store = _open_store(out, for_writing=not dry_run) if exists or not dry_run else None
    plan = make_plan(sw.runs, store.statuses() if store else {}, retry_failed,
                     store.run_dir if store else None)
    dup = f" ({sw.duplicates} duplicate(s) merged)" if sw.duplicates else ""
    console.print(f"[bold]sweep {term(config)}[/]: {len(sw.runs)} run(s){dup} → {term(out)}/", highlight=False)
    failed_note = ("run again now (--retry-failed)" if retry_failed
                   else "skipped: --retry-failed reruns them") if plan.failed else ""
    console.print(f"already done: {len(plan.done)}; failed: {len(plan.failed)}"
                  + (f", {failed_note}" if failed_note else "") + f"; to run now: {len(plan.todo)}",
                  highlight=False)
    if dry_run:
        t = Table(title=term(f"runs of {config}"))
        for c in ("#", "run_id", "status", "method", *sw.varying):
            t.add_column(c, no_wrap=c == "run_id", min_width=16 if c == "run_id" else None)
        status = {**{r: "done" for r in plan.done}, **{r: "failed" for r in plan.failed}}
        for i, run in enumerate(sw.runs, 1):
            rid = run.run_id()
            t.add_row(str(i), rid, status.get(rid, "to run"), term(sw.method_label(run)),
                      *[term(v) for v in sw.describe(run).values()])
        console.print(t)
        return
    if plan.todo:
        try:
            ex = make_executor(executor, address, num_cpus, cpus_per_run)
        except ExecutorError as e:
            _fail(str(e))
        try:
            with Progress(*_bar_columns(), console=console, transient=True) as progress:
                display = _SweepDisplay(progress, plan, ex.slots, sw.label)
                records = run_sweep(plan, store, ex, display)
        except StoreError as e:
            _fail(str(e), code=1)
        finally:
            ex.close()
    else:
        try:
            restore_manifests(store, plan.done)  # a deleted manifest.json comes back on any sweep
        except OSError as e:
            _fail(f"could not restore the run manifests in {out}: {e}", code=1)
        records = sweep_records(store, sw.runs)
    failed = print_summary(console, records)
    md, csv_path = write_folder_summary(store)
    _warn_bad_rows(store)
    console.print(term(f"written: {md}, {csv_path} (every run in {out}/), {store.path}"), highlight=False)
    _print_recommendation(records, sw.budget)
    if failed:
        raise typer.Exit(1)


@app.command()
def validate(
    config: str = typer.Argument(..., help="YAML config"),
    overrides: Optional[list[str]] = typer.Argument(None),
):
    """Check a config (types, keys, task, eval sets, pattern, model, method options) without running it."""
    import json

    cfg = _load(config, overrides)
    console.print_json(json.dumps(cfg.resolved()))
    console.print(f"[green]valid[/]: {len(cfg.expand())} run(s)")
    if cfg.select is not None:
        from tuneoff.selection.options import candidates, label

        cands = candidates(cfg.search_space())
        how = f"{cfg.select.folds}-fold cv (capped at the shots per class)" if cfg.select.protocol == "cv" \
            else "a dev split of the same size"
        console.print(f"selection ({cfg.select.budget}): {len(cands)} candidate(s) on {how}: "
                      + "; ".join(label(c) for c in cands), highlight=False)


def _data_of(task) -> str:
    """Where a task's splits come from: the hub datasets, or the local files under data_dir."""
    sources = [task.train, *(e.source for e in task.eval_sets)]
    hub = list(dict.fromkeys(" ".join(x for x in s.hub[:2] if x) for s in sources if s.hub))
    local = list(dict.fromkeys(s.local.split("/")[0] + "/" for s in sources if s.local))
    if not hub and not local:
        return "built in"
    parts = [f"hub {', '.join(hub)}"] if hub else []
    if local:
        parts.append(f"or data_dir=FOLDER with {', '.join(local)}")
    return "; ".join(parts)


@app.command("ls")
def ls(what: str = typer.Argument(..., help="tasks | methods | models")):
    """List the registered tasks, methods or models."""
    if what == "tasks":
        from tuneoff.tasks import list_tasks

        # one block per task: readable at any terminal width
        for task in list_tasks():
            evals = ", ".join(
                f"{e.name} ({e.domain}{', per ' + '/'.join(e.subset_fields) + ' and label' if e.subset_fields else ''}"
                f"{', if present' if e.optional else ''})" for e in task.eval_sets)
            g = Table.grid(padding=(0, 2), pad_edge=True)
            g.add_column(style="dim", no_wrap=True, min_width=10)
            g.add_column()
            g.add_row("labels", term(", ".join(task.label_names)))
            g.add_row("splits", term(f"train; eval: {evals}"))
            g.add_row("data", term(_data_of(task)))
            others = ", ".join(m for m in task.metrics if m != task.main_metric)
            g.add_row("metric", f"{task.main_metric} (also {others}; the majority baseline beside each)")
            g.add_row("patterns", term(", ".join(task.patterns) + (f" (default {task.default_pattern})"
                                                                    if task.default_pattern else "")))
            console.print(f"[bold]{term(task.name)}[/]: {term(task.description)}", highlight=False)
            console.print(Padding(g, (0, 0, 1, 2)), highlight=False)
        console.print("[dim]or a custom task: the path of a task YAML file (see the README)[/]")
        return
    elif what == "methods":
        from tuneoff.methods import list_methods

        t = Table(title="methods")
        for c in ("name", "trains", "head", "options", "search space (select)", "description"):
            t.add_column(c)
        for m in list_methods():
            opts = ", ".join(f"{k}={f.default!r}" if isinstance(f.default, str) else f"{k}={f.default}"
                             for k, f in m.Options.model_fields.items())
            space = "; ".join(f"{k}: {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vs)}"
                              for k, vs in m.search_space_for(m.Options()).items())
            t.add_row(m.name, "yes" if m.trains else "no", m.head, opts, space, m.description)
    elif what == "models":
        from tuneoff.models import EMBEDDED, MODEL_DESCRIPTIONS

        t = Table(title="models (or any hub id / local folder)")
        for c in ("alias", "installed", "description"):
            t.add_column(c)
        import importlib.util

        for alias, desc in MODEL_DESCRIPTIONS.items():
            emb = EMBEDDED.get(alias)
            ok = "yes" if emb is None or importlib.util.find_spec(emb.package) else f"no: {emb.install}"
            t.add_row(alias, ok, desc)
    else:
        _fail(f"unknown list {what!r}; use one of: tasks, methods, models")
    console.print(t)


def _read_store(results_dir: str):
    """The store of a finished results folder, for reading (a missing or damaged one is a clear error)."""
    from tuneoff.store import StoreError, open_store

    try:
        return open_store(results_dir, must_exist=True)
    except (FileNotFoundError, StoreError) as e:
        _fail(str(e))


@app.command()
def show(results_dir: str = typer.Argument(..., help="a results folder")):
    """Print the results table (and the per-subset table) of a results folder."""
    from tuneoff.summary import print_summary

    store = _read_store(results_dir)
    print_summary(console, store.records())
    _warn_bad_rows(store)
    console.print(f"runs: {store.counts()}")


def _print_recommendation(records: list[dict], budget) -> None:
    """The answer, within `budget`, for these records (as `tuneoff recommend` and the report give it)."""
    from tuneoff.report.answer import recommendation_blocks
    from tuneoff.report.frame import to_frame
    from tuneoff.report.terminal import print_blocks

    console.rule("recommendation")
    print_blocks(console, recommendation_blocks(to_frame(records), budget)[0])


def _budget(max_train_time, max_memory, max_trainable_params, shots, domain):
    from tuneoff.budget import BudgetError, budget_from

    try:
        return budget_from(max_train_time=max_train_time, max_memory=max_memory,
                           max_trainable_params=max_trainable_params, shots=shots or None, domain=domain)
    except BudgetError as e:
        _fail(str(e))


_TIME = typer.Option(None, "--max-train-time", help="training time per run, e.g. 90s, 10m, 1h30m")
_MEMORY = typer.Option(None, "--max-memory", help="peak memory per run, e.g. 4GB, 512MB")
_PARAMS = typer.Option(None, "--max-trainable-params", help="trainable parameters, e.g. 1M, 250k")
_SHOTS = typer.Option(None, "--shots", help="answer for this shot count (repeatable); default every one")
_DOMAIN = typer.Option(None, "--domain", help="in | out; default both")


@app.command()
def recommend(
    results_dir: str = typer.Argument(..., help="a results folder"),
    max_train_time: Optional[str] = _TIME, max_memory: Optional[str] = _MEMORY,
    max_trainable_params: Optional[str] = _PARAMS, shots: Optional[list[int]] = _SHOTS,
    domain: Optional[str] = _DOMAIN,
):
    """Which method to use within a budget, per task and shot count: the best, the methods tied with
    it (paired t-test, Holm), the cheapest of those; the same answer as the report's first section."""
    budget = _budget(max_train_time, max_memory, max_trainable_params, shots, domain)
    store = _read_store(results_dir)
    _print_recommendation(store.records(), budget)
    _warn_bad_rows(store)


@app.command()
def report(
    results_dir: str = typer.Argument(..., help="a results folder"),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="HTML path (default RESULTS_DIR/report.html)"),
    markdown: Optional[str] = typer.Option(None, "--md", help="Markdown path (default beside the HTML)"),
    csv: Optional[str] = typer.Option(None, "--csv", help="CSV of all runs (default RESULTS_DIR/runs.csv)"),
    max_train_time: Optional[str] = _TIME, max_memory: Optional[str] = _MEMORY,
    max_trainable_params: Optional[str] = _PARAMS, shots: Optional[list[int]] = _SHOTS,
    domain: Optional[str] = _DOMAIN,
):
    """Write the comparison report: self-contained HTML, Markdown with the same tables, CSV of all runs."""
    from tuneoff.report import write_report
    from tuneoff.store import StoreError

    budget = _budget(max_train_time, max_memory, max_trainable_params, shots, domain)
    store = _read_store(results_dir)
    try:
        md = markdown or (str(Path(output).with_suffix(".md")) if output else None)
        paths = write_report(results_dir, html_path=output, md_path=md, csv_path=csv, store=store, budget=budget)
    except (FileNotFoundError, StoreError) as e:
        _fail(str(e))
    _warn_bad_rows(store)
    for kind, path in paths.items():
        console.print(term(f"{kind}: {path}"), highlight=False)


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
        _fail(str(e))
    if rep.damaged:
        console.print(term(f"the store was damaged: {rep.damaged.split(': nothing')[0]}"), highlight=False)
        for p in rep.moved_to:
            console.print(term(f"  kept aside as {p}"), highlight=False)
    console.print(f"rows written from manifests: {len(rep.imported)}; rows read back from the damaged store: "
                  f"{len(rep.salvaged)}; manifests restored: {len(rep.restored)}", highlight=False)
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
        _fail(str(e))
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


def quiet_libraries() -> None:
    """Keep library messages that are not the user's to act on off their terminal: transformers'
    load reports (they go to the run record) and progress bars, and the FutureWarning transformers
    raises when peft reads `is_gradient_checkpointing`."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_libraries()
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        app()
    except (Interrupted, KeyboardInterrupt):
        err.print("interrupted; finished runs are in the results store: the same command goes on from there")
        sys.exit(130)


if __name__ == "__main__":
    main()
