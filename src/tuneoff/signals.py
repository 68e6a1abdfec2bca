"""How a command that computes runs stops when it is told to: Ctrl-C (SIGINT), `kill` or a batch
scheduler's time limit (SIGTERM) and a closed terminal (SIGHUP) take one path.

- While runs are computed (`handled`), each of these signals raises `Stopped` in the main thread: a
  KeyboardInterrupt that names its signal, so the run in flight stops as on Ctrl-C, the driver
  gives back its claims on the way out (`tuneoff.plan.run_plan`), the Ray executor cancels its
  tasks, and the command says what was kept and exits with 128 + the signal's number.
- Where a record is being written (`deferred`), a signal is held until the block ends, and then
  goes to the handler that was in place, so a run's manifest never stands without its row.

A signal the process ignores (`nohup` ignores SIGHUP, a shell's background job SIGINT) stays
ignored. Only the main thread can set handlers; elsewhere both blocks run as they are.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

# the signals that stop a run, those of them this platform has
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop signal that arrived while runs were computed (`handled`)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process the signal ended: 130 SIGINT, 143 SIGTERM, 129 SIGHUP."""
        return 128 + self.signum


@contextmanager
def replaced(handler):
    """Inside the block every stop signal that is not ignored goes to `handler`; after it, the
    handlers that were in place come back. Yields {signal: handler replaced} (empty where
    handlers cannot be set)."""
    previous: dict = {}
    if threading.current_thread() is threading.main_thread():
        try:
            for signum in SIGNALS:
                if signal.getsignal(signum) != signal.SIG_IGN:
                    previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main interpreter
            _restore(previous)
            previous = {}
    try:
        yield previous
    finally:
        _restore(previous)


def _restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: not set from Python


@contextmanager
def handled():
    """Inside the block a stop signal raises `Stopped` (in the main thread). A library that turns
    it into a KeyboardInterrupt of its own (Ray does while it waits for tasks) does not lose it: a
    KeyboardInterrupt leaving the block is the `Stopped` of the last signal received (SIGINT if none)."""
    received: list[int] = []

    def stop(signum, frame):
        received.append(signum)
        raise Stopped(signum)

    try:
        with replaced(stop):
            yield
    except KeyboardInterrupt as e:
        if isinstance(e, Stopped):
            raise
        raise Stopped(received[-1] if received else signal.SIGINT) from e


@contextmanager
def deferred():
    """Hold the stop signals that arrive inside the block; once it ends, deliver each (the first
    of its kind, in the order they came) to the handler that was in place: `Stopped` where
    `handled` is on, KeyboardInterrupt for SIGINT by default, and the default action of SIGTERM
    or SIGHUP ends the process as the signal would have."""
    held: dict = {}
    try:
        with replaced(lambda signum, frame: held.setdefault(signum, frame)) as previous:
            yield
    finally:
        for signum, frame in held.items():
            _deliver(signum, frame, previous[signum])


def _deliver(signum: int, frame, handler) -> None:
    if callable(handler):
        handler(signum, frame)
    elif handler != signal.SIG_IGN:  # the default action (None: a handler not set from Python)
        os.kill(os.getpid(), signum)
