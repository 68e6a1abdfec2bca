"""The one driver of `tuneoff run`, `tuneoff sweep` and `run_one` (one config): decide which runs still
need running (`make_plan`), then run them on an executor (`run_plan`), claiming each before it
starts and writing each record to the store as soon as it is back.

The skip rule, in one place: a run the store holds as `done` is skipped, unless it asks for saved
weights that its folder lacks or the plan is forced; a `failed` run is skipped unless the plan
retries failed runs (`tuneoff sweep --retry-failed`; `tuneoff run` always does). Several processes
on one folder share the plan through claims (`tuneoff.workqueue`): a run another process records
meanwhile is not computed again, and a manifest whose row is missing is taken in.
"""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tuneoff.config import ConfigError, RunConfig
from tuneoff.repair import restore_manifests
from tuneoff.signals import deferred
from tuneoff.store import StoreError, StoreUnwritable
from tuneoff.workqueue import WorkQueue

RECOVERED = "recovered from its manifest"
ELSEWHERE = "by another process"


@dataclass
class Plan:
    runs: list[RunConfig]
    done: list[str]          # run_ids already done (skipped)
    failed: list[str]        # run_ids recorded as failed
    todo: list[RunConfig]    # what this invocation runs
    retry_failed: bool
    force: bool = False      # rerun done runs too

    @property
    def skipped_failed(self) -> int:
        return 0 if self.retry_failed else len(self.failed)


def rerun_done(run: RunConfig, run_dir: Callable[[str], Path] | None, force: bool = False) -> bool:
    """Whether a run recorded as done is run again: forced, or it asks for saved weights that its
    folder (`run_dir(run_id)`, when known) lacks."""
    return force or (run.save and run_dir is not None and not (run_dir(run.run_id()) / "weights").is_dir())


def make_plan(runs: list[RunConfig], statuses: dict[str, str], retry_failed: bool = False,
              run_dir=None, force: bool = False) -> Plan:
    """Decide, in the driver and before anything is submitted, which runs still need running."""
    done, failed, todo = [], [], []
    for run in runs:
        rid = run.run_id()
        status = statuses.get(rid)
        if status == "done" and not rerun_done(run, run_dir, force):
            done.append(rid)
            continue
        if status == "failed":
            failed.append(rid)
            if not retry_failed:
                continue
        todo.append(run)
    return Plan(runs, done, failed, todo, retry_failed, force)


def plan_store(runs: list[RunConfig], store, retry_failed: bool = False, force: bool = False,
               looking: bool = False) -> Plan:
    """`make_plan` against what `store` holds (None: nothing yet), runs stored under the id they
    had before data entered ids by content included (`tuneoff.legacy`): moved to their id now, or,
    `looking` (a dry run, which writes nothing), seen as done where they are."""
    from tuneoff import legacy

    if store is None:
        return make_plan(runs, {}, retry_failed, None, force)
    statuses = store.statuses()
    links = legacy.find(store, runs, statuses)
    if links and not looking:
        legacy.move(store, runs, links)
        statuses = store.statuses()
    elif links:
        statuses = legacy.seen_as_done(statuses, links)
    return make_plan(runs, statuses, retry_failed, store.run_dir, force)


def check_reference(runs: list[RunConfig], store, implicit: set[str]) -> None:
    """Frugal selection chooses on `select.reference_seed`, by default the first data seed listed. A
    run whose reference came by that default (`implicit`: run ids), where the folder holds done runs
    of the same setting chosen on another data seed, one that none of these runs chooses on, would
    choose again and reuse nothing of the folder: a sweep of the seeds left, listed alone
    (`data_seed=[1,2,3,4]` after `data_seed=0`), makes a selection per setting again and runs that
    never join the first split's. An error before any run, naming the seed to set either way;
    setting `select.reference_seed` says which is meant and is never refused. (A grid over data
    seeds gives each run its own reference, its seed: the plan then chooses on every seed the folder
    chose on, and passes.)"""
    if store is None or not implicit:
        return
    statuses = store.statuses()
    pairs = sorted({(c.get("data_seed"), (c.get("select") or {}).get("reference_seed"))
                    for c in (r.config or {} for r in store.records("done"))
                    if isinstance(c.get("data_seed"), int)
                    and isinstance((c.get("select") or {}).get("reference_seed"), int)})
    if not pairs:
        return

    def seeded(run: RunConfig, seed: int, ref: int) -> str:  # the id of `run` on split `seed`, chosen on `ref`
        return run.model_copy(update={"data_seed": seed, "select": run.select.model_copy(
            update={"reference_seed": ref})}).run_id()

    def setting(run: RunConfig) -> str:  # the run with its seeds set aside
        return seeded(run, 0, 0)

    frugal = [r for r in runs if r.select is not None and r.select.budget == "frugal"]
    chosen_on: dict[str, set] = {}
    for run in frugal:
        chosen_on.setdefault(setting(run), set()).add(run.select.reference_seed)
    cells: list[str] = []
    refs, found = set(), set()
    for run in frugal:
        rid = run.run_id()
        if rid not in implicit or rid in statuses:
            continue
        mine = chosen_on[setting(run)]
        for seed, ref in pairs:
            if ref in mine:
                continue
            if statuses.get(seeded(run, seed, ref)) == "done":
                cell = f"{Path(str(run.task)).stem} · {run.model} · {run.method.name} · {run.shots} shots"
                cells += [cell] if cell not in cells else []
                refs.add(run.select.reference_seed)
                found.add(ref)
                break
    if not cells:
        return
    more = f" and {len(cells) - 1} other setting(s)" if len(cells) > 1 else ""
    listed, chose = sorted(refs), sorted(found)
    raise ConfigError(
        f"frugal selection would choose again: {cells[0]}{more} chose on data seed {', '.join(map(str, chose))} "
        f"in this folder, but these runs list data seed {', '.join(map(str, listed))} first and so would choose "
        f"on it: a new selection per setting, and runs that do not reuse the folder's choices. To reuse them, set "
        f"select.reference_seed={chose[0]}; to choose on data seed {listed[0]} on purpose, set "
        f"select.reference_seed={listed[0]} (where a method entry lists its own data seeds, in that entry's "
        f"overrides)")


class Observer:
    """What a plan reports while it runs; the CLI draws it, tests may count it. `progress` (a
    runner progress callback) is used by executors that run in this process."""

    progress = None

    def started(self, run: RunConfig) -> None: ...

    def finished(self, run: RunConfig, record: dict, seconds: float) -> None: ...

    def elsewhere(self, run: RunConfig, status: str, how: str = ELSEWHERE) -> None:
        """A run of the plan that another process recorded meanwhile (ELSEWHERE), or whose
        manifest held its finished record (RECOVERED): not computed here."""

    def waiting(self, busy: int) -> None:
        """Only runs that other live processes hold are left; this one waits for them."""


class _Reporting(WorkQueue):
    """A work queue that tells the observer about runs recorded elsewhere as it meets them."""

    def __init__(self, observer: Observer, *args, **kwargs):
        super().__init__(*args, on_wait=observer.waiting, **kwargs)
        self.observer = observer

    def next(self, block: bool = True):
        seen = len(self.elsewhere) + len(self.adopted)
        run = super().next(block)
        met = [*((r, s, ELSEWHERE) for r, s in self.elsewhere), *((r, "done", RECOVERED) for r in self.adopted)]
        for other, status, how in met[seen:]:
            self.observer.elsewhere(other, status, how)
        return run


def run_plan(plan: Plan, store, executor, observer: Observer | None = None) -> list[dict]:
    """Run `plan.todo` on `executor`, claiming each run before it starts (so that other processes
    on the same folder never compute it too) and writing each record to `store` as soon as it is
    back. Returns the records of every run of the plan (done, failed, and just run), from the store.
    Interrupted (Ctrl-C, SIGTERM, SIGHUP: `tuneoff.signals`), the executor stops what is in flight
    and the claims of the runs not recorded are given back."""
    observer = observer or Observer()
    try:
        restore_manifests(store, plan.done)  # a deleted manifest.json comes back on any run
    except OSError as e:
        raise StoreUnwritable(f"could not restore the run manifests in {store.folder}: {e}") from None
    queue = _Reporting(observer, store, plan.todo, plan.retry_failed,
                       rerun=lambda r: rerun_done(r, store.run_dir, plan.force))
    try:  # closed at once, not when collected: what is in flight stops before its claim is given back
        with closing(executor.run(queue, store.run_dir, observer)) as results:
            for run, record, seconds in results:
                if record.run_id != run.run_id():  # a worker that built another config is a bug
                    raise RuntimeError(f"executor returned run {record.run_id} for {run.run_id()}")
                store.put(record)
                observer.finished(run, record, seconds)
    finally:
        _release(queue)
    return plan_records(store, plan.runs)


def _release(queue: WorkQueue) -> None:
    """Give back the claims this process holds without a record; a second signal meanwhile waits
    until they are given back."""
    try:
        with deferred():
            queue.release()
    except StoreError:
        pass  # the store that failed is named by the error on its way out


def plan_records(store, runs: list[RunConfig]) -> list[dict]:
    """The records the store holds for `runs`, in their order (an unreadable one left out)."""
    return [rec for run in runs if (rec := store.get(run.run_id())) is not None]


class _Outcome(Observer):
    """How one run ended: run here, or why not (`skipped`)."""

    def __init__(self, progress=None, on_wait=None):
        self.progress, self.on_wait = progress, on_wait
        self.record, self.skipped = None, "done"

    def finished(self, run, record, seconds) -> None:
        self.record, self.skipped = record, None

    def elsewhere(self, run, status, how=ELSEWHERE) -> None:
        self.skipped = how

    def waiting(self, busy) -> None:
        if self.on_wait is not None:
            self.on_wait(busy)


def run_one(cfg: RunConfig, store, progress=None, force: bool = False, on_wait=None) -> dict:
    """Run one config as `tuneoff run` does (a plan of one run on the local executor) and return
    its record. A run not computed here has `skipped`: "done" (recorded before), RECOVERED or
    ELSEWHERE. A failed run is run again; `force` reruns a done one. Never raises for a failed run."""
    from tuneoff.executors import LocalExecutor

    plan = plan_store([cfg], store, retry_failed=True, force=force)
    outcome = _Outcome(progress, on_wait)
    run_plan(plan, store, LocalExecutor(), outcome)
    if outcome.record is not None:
        return outcome.record
    rec = store.get(cfg.run_id())
    if rec is None:
        raise StoreError(store.bad_rows_note() or f"run {cfg.run_id()} has no readable record in {store.path}")
    rec["skipped"] = outcome.skipped
    return rec

