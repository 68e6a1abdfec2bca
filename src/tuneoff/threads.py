"""How many threads a run computes with, on a CPU that other work may share (`threads`).

torch starts one thread per physical core and splits each operator among them; every thread waits
for the slowest at the end of each operator. On a shared machine a core busy with another process
makes one of those threads the slowest for every operator, so a run slows far more than its share
of the machine (benchmarks/RESULTS.md, "Threads on a shared CPU"). `threads=auto` therefore gives
a run as many threads as there are cores not busy with other work when it starts: the busy time of
this process's cores over a short sample (or since the previous run of the process), less this
process's own, work at a positive nice level left out where the scheduler yields it to the run
(`niced_yields`: not where Linux's autogroup puts it in a session of its own). An integer is that
many threads. Either way, never more than torch's own default (the physical cores, or
OMP_NUM_THREADS), and the number chosen is recorded with the run (its `env.threads`). A run that a
scheduler gave its CPUs (a Ray task, `allot`) takes that many, its config unchanged.

The threads cannot change a score beyond float rounding (the order in which a sum's parts add up),
so they are no part of a run's id, like the device. Waiting threads spin before they sleep;
OMP_WAIT_POLICY=PASSIVE makes them sleep at once, which torch's OpenMP reads only when it starts,
so it is an environment variable of the process (forwarded to Ray workers), never a config key.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

SAMPLE_S = 0.2  # the shortest look at the machine's load; a longer gap since the last one is used whole
STALE_S = 120.0  # a previous look older than this says little about now: look again
_DEFAULT: list[int] = []  # torch's own thread count, as the process started
_LAST: list[tuple] = []  # (monotonic time, busy seconds of the cores, this process's CPU seconds)
_ALLOTTED: list[int] = []  # CPUs a scheduler gave this process's runs (a Ray task's): auto takes these


def allot(cpus: int | None) -> None:
    """The runs of this process were given `cpus` CPUs by a scheduler (`executors`: a Ray task's
    `--cpus-per-run`), so `auto` takes that many threads without looking at the load; None: look."""
    _ALLOTTED[:] = [cpus] if cpus else []


def default_threads() -> int:
    """torch's thread count before any run set one: the physical cores, or OMP_NUM_THREADS."""
    if not _DEFAULT:
        _DEFAULT.append(torch.get_num_threads())
    return _DEFAULT[0]


def cores() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _sample(cpus: list[int]) -> tuple[float, float, float, float]:
    """(now, the cores' busy seconds, their niced seconds, this process's CPU seconds)."""
    per_cpu = psutil.cpu_times(percpu=True)
    busy = niced = 0.0
    for i in cpus:
        t = per_cpu[i] if i < len(per_cpu) else None
        if t is not None:  # idle and I/O wait are no work
            busy += t.user + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) + getattr(t, "steal", 0.0)
            niced += getattr(t, "nice", 0.0)
    own = psutil.Process().cpu_times()
    return time.monotonic(), busy, niced, own.user + own.system


def _autogroup(pid: int | str) -> tuple[str, int] | None:
    """(group, its nice) of a process under Linux's autogroup, from /proc/PID/autogroup; None elsewhere."""
    try:
        group, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
        return group, int(nice)
    except (OSError, ValueError):
        return None


def _autogroup_on() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def niced_yields() -> bool:
    """Whether the niced processes running now yield the CPU to this one. A positive nice weighs a
    process against the others of its scheduling group only: where the kernel's autogroup is on
    (/proc/sys/kernel/sched_autogroup_enabled), each session (a terminal, a `setsid` job, a tmux
    pane) is a group, and the groups share the CPU equally whatever their processes' nice. Measured
    on 2 cores beside two 1-thread sweeps at nice 10 in their own sessions: smollm2-135m's passes ran
    at 10 GFLOP/s on 2 threads and 24 on 1; with the sweeps' groups niced (`echo 10 >
    /proc/PID/autogroup`), at 31-38 on 2. So a niced process running in another group whose own
    nice is not above this one's counts as busy."""
    own = _autogroup("self") if _autogroup_on() else None
    if own is None:
        return True  # not Linux, or no autogroup: nice orders all processes
    for proc in psutil.process_iter(["nice", "status"]):
        info = proc.info
        if (info.get("nice") or 0) <= 0 or info.get("status") != psutil.STATUS_RUNNING:
            continue
        theirs = _autogroup(proc.pid)
        if theirs is not None and theirs[0] != own[0] and theirs[1] <= own[1]:
            return False
    return True


def busy_elsewhere(cpus: list[int] | None = None) -> float:
    """Cores' worth of CPU time that other processes took on `cpus` (default: this process's) over
    the last look: since the previous call if that was `SAMPLE_S` to `STALE_S` ago, else over a
    fresh sample of `SAMPLE_S`."""
    cpus = cpus if cpus is not None else cores()
    now = _sample(cpus)
    if not _LAST or not SAMPLE_S <= now[0] - _LAST[0][0] <= STALE_S:
        time.sleep(SAMPLE_S)
        then, now = now, _sample(cpus)
    else:
        then = _LAST[0]
    _LAST[:] = [now]
    wall = max(now[0] - then[0], 1e-6)
    niced = 0.0 if niced_yields() else now[2] - then[2]
    return max(0.0, ((now[1] - then[1]) + niced - (now[3] - then[3])) / wall)


@dataclass(frozen=True)
class Choice:
    """The threads a run got, and why: what was asked, the cores, how many were busy elsewhere."""

    setting: str | int
    threads: int
    cores: int
    busy_elsewhere: float | None = None
    allotted: int | None = None

    def record(self) -> dict:
        out = {"setting": self.setting, "threads": self.threads, "cores": self.cores,
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
        if self.busy_elsewhere is not None:
            out["busy_elsewhere"] = round(self.busy_elsewhere, 2)
        if self.allotted is not None:
            out["allotted"] = self.allotted
        return out


def choose(setting: str | int) -> Choice:
    """The threads of a run for `threads` (auto or a number; see the module's docstring)."""
    cpus = cores()
    cap = min(default_threads(), len(cpus))
    if setting != "auto":
        return Choice(setting, max(1, min(int(setting), len(cpus))), len(cpus))
    if _ALLOTTED:
        return Choice(setting, max(1, min(_ALLOTTED[0], len(cpus))), len(cpus), allotted=_ALLOTTED[0])
    busy = busy_elsewhere(cpus)
    free = len(cpus) - math.floor(busy + 0.5)
    return Choice(setting, max(1, min(cap, free)), len(cpus), busy)


@contextlib.contextmanager
def applied(setting: str | int):
    """torch's threads set for a run (yields the `Choice`), and set back to what they were after it."""
    default_threads()
    before = torch.get_num_threads()
    choice = choose(setting)
    torch.set_num_threads(choice.threads)
    try:
        yield choice
    finally:
        torch.set_num_threads(before)
