"""The runs one process still has to do, handed out one claim at a time (`tuneoff.claims`), so
that several processes on one results folder share the plan: a run that another live process
holds is left to it, a run that another process finished meanwhile is not computed again, and
when only others' runs are left, `next(block=True)` waits for them (taking over a run whose
owner died) until every run of the plan is recorded.
"""
from __future__ import annotations

import time
from typing import Callable

from tuneoff import claims
from tuneoff.config import RunConfig
from tuneoff.repair import adopt


class WorkQueue:
    def __init__(self, store, runs: list[RunConfig], retry_failed: bool = False,
                 rerun: Callable[[RunConfig], bool] | None = None,
                 on_wait: Callable[[int], None] | None = None):
        self.store, self.pending = store, list(runs)
        self.retry_failed = retry_failed
        self.rerun = rerun or (lambda run: False)  # rerun a done run (force, missing saved weights)
        self.on_wait = on_wait                     # called with the number of runs others hold
        self.since = time.time()
        self.elsewhere: list[tuple[RunConfig, str]] = []  # (run, status) recorded by another process
        self.adopted: list[RunConfig] = []  # found finished in their manifest: not run again

    @property
    def waiting(self) -> bool:
        """Runs are left that this process has not claimed (others hold them)."""
        return bool(self.pending)

    def next(self, block: bool = True) -> RunConfig | None:
        """The next run this process may compute (claimed), or None: with `block`, only when
        every run of the plan is recorded; without, also when only others' runs are left."""
        while self.pending:
            busy = 0
            for run in list(self.pending):
                rid, rerun = run.run_id(), self.rerun(run)
                got = claims.claim(self.store, rid, self.since, rerun, self.retry_failed)
                if got == "busy":
                    busy += 1
                    continue
                self.pending.remove(run)
                if got != "claimed":
                    self.elsewhere.append((run, got))
                elif not rerun and adopt(self.store, rid, failed_too=not self.retry_failed):
                    self.adopted.append(run)
                else:
                    return run
            if not busy or not block:
                return None
            if self.on_wait:
                self.on_wait(busy)
            time.sleep(claims.POLL_S)
        return None

    def release(self) -> None:
        """Give back what this process claimed but did not record (an interrupt)."""
        claims.release(self.store)
