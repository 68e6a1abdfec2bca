"""What `tuneoff run` and `tuneoff sweep` draw while a plan runs: a line per run as it ends, the
runs left and the time left, and the current run's phases (bars on a terminal, plain lines in a
log)."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from tuneoff.escape import term
from tuneoff.estimate import Costs
from tuneoff.plan import ELSEWHERE, Observer
from tuneoff.record import Record, Resources, load
from tuneoff.report.terminal import say


class _Bars:
    """Adapts runner progress callbacks to a rich progress bar. A phase without a count (model
    load, GGUF dequantising, a method's set-up) shows until the next phase starts."""

    def __init__(self, progress: Progress):
        self.p, self.tasks, self.steps = progress, {}, set()

    def __call__(self, phase: str, done: int, total: int | None, loss: float | None = None) -> None:
        if phase not in self.tasks:
            for old in [k for k in self.steps if k != phase]:  # a set-up step ends when the next phase starts
                self.p.remove_task(self.tasks.pop(old))
                self.steps.discard(old)
            self.tasks[phase] = self.p.add_task(term(phase), total=total)
            if total is None:
                self.steps.add(phase)
        desc = term(phase) + (f" loss {loss:.4f}" if loss is not None else "")  # a phase may name an eval set
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
            self._say(f"{phase}: {done}/{total} done in {duration(now - start)}{lost}")
        elif now - last >= LINE_EVERY_S and done:
            left = (now - start) / done * (total - done)
            self._say(f"{phase}: {done}/{total}, {duration(now - start)} elapsed, about {duration(left)} "
                      f"left{lost}")
        else:
            return
        self.phases[phase][1] = now

    def _say(self, text: str) -> None:
        self.out.print(f"  {term(text)}", highlight=False, soft_wrap=True)  # one line each in a log

    def reset(self) -> None:
        self.phases = {}


def duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _Bar(BarColumn):
    def render(self, task):
        return "" if task.fields.get("nobar") else super().render(task)


class _Left(TimeRemainingColumn):
    """Time left of a counted phase; nothing for a set-up step or the sweep's "now" line."""

    def render(self, task):
        hide = task.total is None or task.fields.get("nobar") or task.fields.get("noleft")
        return Text("") if hide else super().render(task)


class _Count(TextColumn):
    def __init__(self):
        super().__init__("")

    def render(self, task):
        return Text("" if task.total is None else f"{int(task.completed)}/{int(task.total)}")


def bars(console: Console) -> Progress:
    """The live area the runs' phases are drawn in (gone once the runs end)."""
    return Progress(TextColumn("{task.description}"), _Bar(), _Count(), TimeElapsedColumn(), _Left(),
                    console=console, transient=True)


class _Display(Observer):
    """Runner callbacks for the local executor: bars on a terminal, plain lines elsewhere (rich
    draws nothing live where it cannot redraw)."""

    def __init__(self, progress: Progress):
        self.p, self.waited = progress, 0
        self.progress = _Bars(progress) if progress.console.is_terminal else _Lines(progress.console)

    def say(self, line: str) -> None:
        say(self.p.console, line)

    def waiting(self, busy) -> None:
        if busy != self.waited:
            self.waited = busy
            self.say(f"waiting for {busy} run(s) that another tuneoff process is running "
                     "(taken over if that process dies)")


class RunDisplay(_Display):
    """`tuneoff run`: a line per run of the config, numbered in its order, as it ends or is found
    finished, with its scores and about how long the rest will take."""

    def __init__(self, progress: Progress, plan, store=None):
        super().__init__(progress)
        self.number = {r.run_id(): i for i, r in enumerate(plan.runs, 1)}
        self.total, self.left = len(plan.runs), _RunsLeft(plan, store)
        done = set(plan.done)
        for run in plan.runs:
            if run.run_id() in done:
                self.say(f"{self.label(run)}: skipped (done)")

    def label(self, run) -> str:
        return f"[{self.number[run.run_id()]}/{self.total}] shots={run.shots} data_seed={run.data_seed} seed={run.seed}"

    def elsewhere(self, run, status, how=ELSEWHERE) -> None:
        self.left.met(run)
        self.say(f"{self.label(run)}: {status} ({how})")

    def finished(self, run, record, seconds) -> None:
        self.progress.reset()
        rec = load(record)
        self.left.ran(run, rec)
        line = f"{self.label(run)}: {rec.status}"
        if rec.status == "failed":
            line += f" — [red]{term(rec.error)}[/]"
        else:
            line += f" — {brief(rec)}"  # markup of its own, the data in it escaped
        eta = self.left.text(1)
        self.say(line + (f"; {eta} left" if eta else ""))


class _RunsLeft:
    """The runs of a plan still to come and the time they will take (`tuneoff.estimate`), from
    the store's finished runs and each one that finishes while the plan runs, priced as the dry run
    prices them: a run unlike any finished one by its work (`throughput.Pricer`) at the speed of the
    finished runs of its model, not by the mean of runs of other methods and shot counts, which put
    a 128-shot selection at the price of a 4-shot run. A model with no finished run is priced at the
    device's default speed, not calibrated: the dry run calibrates, a running sweep loads no model
    to print a time."""

    def __init__(self, plan, store=None):
        from tuneoff.throughput import Pricer

        self.store = store
        self.runs = {r.run_id(): r for r in plan.todo}
        try:
            self.costs = Costs(store.records("done") if store is not None else (), Pricer(calibrate=False))
        except Exception:  # an unreadable store is the plan's to report, not the display's
            self.costs = Costs()

    def ran(self, run, record: Record) -> None:
        self.runs.pop(run.run_id(), None)
        self.costs.add(record)

    def met(self, run) -> None:
        """A run recorded by another process or recovered: gone from the runs left, its cost learnt."""
        self.runs.pop(run.run_id(), None)
        if self.store is not None:
            try:
                self.costs.add(self.store.get(run.run_id()))
            except Exception:
                pass

    def others(self) -> int:
        from tuneoff.claims import others_running

        try:
            return others_running(self.store) if self.store is not None and self.runs else 0
        except Exception:
            return 0

    def text(self, slots: int) -> str:
        """'about 2h10m' (or 'over 2h10m' when a selection could not be priced), with the other
        processes on the folder counted as workers; '' with nothing to go by or nothing left."""
        if not self.runs:
            return ""
        others = self.others()
        try:
            est = self.costs.left(list(self.runs.values()), slots + others)
        except Exception:  # noqa: BLE001 - a time left is never worth failing a run for
            return ""
        if est is None:
            return ""
        shared = f" with {others} other process(es) on this folder" if others else ""
        return estimate_text(est) + shared


def estimate_text(est) -> str:
    """An estimate (`tuneoff.estimate.Left`) in words: 'about 2h10m', or 'over 2h10m' for a lower bound."""
    return f"{'over' if est.lower_bound else 'about'} {duration(est.seconds)}"


class SweepDisplay(_Display):
    """Draws a sweep: runs done/failed/left with the time left, the run(s) in progress and, for the
    local executor, the current run's train/eval bars. One line per finished run (kept in logs)."""

    def __init__(self, progress: Progress, plan, parallel: int, label, store=None):
        super().__init__(progress)
        self.label, self.parallel = label, parallel
        self.total, self.done, self.failed = len(plan.todo), 0, 0
        self.left = _RunsLeft(plan, store)
        self.eta = self.left.text(parallel)  # a resumed sweep has the store's runs to go by at once
        self.overall = progress.add_task("", total=self.total, noleft=True)  # its line says the time left
        self.now = progress.add_task("", total=None, nobar=True)
        self.running: dict[str, str] = {}
        self._refresh()

    def _counts(self) -> str:
        left = self.total - self.done - self.failed
        return f"{self.done} done, {self.failed} failed, {left} left" + (f", {self.eta} to go" if self.eta else "")

    def _refresh(self) -> None:
        self.p.update(self.overall, description=f"runs: {self._counts()}",
                      completed=self.done + self.failed, total=self.total)
        names = list(self.running.values())
        now = term("; ".join(names[:3]) + (f"; +{len(names) - 3} more" if len(names) > 3 else ""))
        self.p.update(self.now, description=f"now: {now}" if names else "", visible=bool(names))

    def elsewhere(self, run, status, how=ELSEWHERE) -> None:
        self.total -= 1
        self.left.met(run)
        self.eta = self.left.text(self.parallel)
        how = "recorded by another process" if how == ELSEWHERE else how
        self.say(term(f"{self.label(run)}: {status}, {how}"))
        self._refresh()

    def started(self, run) -> None:
        if not self.running:
            self.p.reset(self.now)  # its clock shows how long the current run has taken
        self.running[run.run_id()] = self.label(run)
        self._refresh()

    def finished(self, run, record, seconds) -> None:
        self.running.pop(run.run_id(), None)
        self.progress.reset()
        rec = load(record)
        ok = rec.status == "done"
        self.done += ok
        self.failed += not ok
        self.left.ran(run, rec)
        self.eta = self.left.text(self.parallel)
        line = (term(f"[{self.done + self.failed}/{self.total}] {self.label(run)}: ")
                + ("[green]done[/]" if ok else f"[red]failed[/] — {term((rec.error or '')[:300])}")
                + f" ({duration(seconds)}); {self._counts()}")
        self.say(line)
        self._refresh()


def brief(rec: Record | dict) -> str:
    """One line on a finished run: its main metric per eval set (flagged at or below the majority
    baseline, or collapsed onto one label), what its selection chose (flagged where no candidate
    beat chance on its folds), and how long it took."""
    from tuneoff.describe import main_metric
    from tuneoff.report.runflags import NO_CHANCE, above_chance
    from tuneoff.summary import flag_text, flags, majority_flag, top_label

    rec = load(rec)
    metric = main_metric(rec)
    parts = []
    for name, m in (rec.metrics or {}).items():
        score, maj = m.overall[metric], m.majority.get(metric) if m.majority else None
        top = top_label([m.overall.pred_dist or {}])
        flagged = [f"{f} {maj:.3f}" if f == majority_flag(metric) else f
                   for f in flags(score, maj, top[1] if top else None, metric)]
        note = f" [red]({term(flag_text(flagged, top))})[/]" if flagged else ""
        parts.append(f"{term(name)} {score:.3f}{note}")
    res = rec.resources or Resources()
    chosen = rec.selection.chosen_label if rec.selection else None
    if chosen and above_chance(rec) is False:
        chosen = f"{term(chosen)} [red]({NO_CHANCE})[/]"
    elif chosen:
        chosen = term(chosen)
    took = sum(res.get(f"{k}_time_s") or 0 for k in ("load", "setup", "train", "eval", "selection"))
    return (f"{term(metric)}: {', '.join(parts)}" + (f"; chose {chosen}" if chosen else "")
            + f" ({duration(took)})")
