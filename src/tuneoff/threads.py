"""How many threads a run computes with, on a CPU that other work may share (`threads`).

torch starts one thread per physical core and splits each operator among them; every thread waits
for the slowest at the end of each operator. On a shared machine a core busy with another process
makes one of those threads the slowest for every operator, so a run slows far more than its share
of the machine (benchmarks/RESULTS.md, "Threads on a shared CPU"). `threads=auto` therefore gives
a run as many threads as there are cores not busy with other work when it starts: the busy time of
this process's cores over a short sample (or since the previous run of the process), less this
process's own, niced work left out where the scheduler puts the run before it (`_unyielding`: not
where Linux's autogroup gives it a session of its own). An integer is that many threads. Either
way, never more than torch's own default (the physical cores, or OMP_NUM_THREADS), and the number
chosen is recorded with the run (its `env.threads`). A run that a scheduler gave its CPUs (a Ray
task, `allot`) takes that many, its config unchanged.

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


def _sample(cpus: list[int]) -> tuple[float, float, dict, float]:
    """(now, the cores' busy seconds outside niced processes and this one, the CPU seconds so far of
    each niced process that does not give way to this one (`_unyielding`), this process's CPU
    seconds outside them). Linux books a niced process's user time as the cores' `nice`, not `user`."""
    per_cpu = psutil.cpu_times(percpu=True)
    busy = 0.0
    for i in cpus:
        t = per_cpu[i] if i < len(per_cpu) else None
        if t is not None:  # idle, I/O wait and niced work are not counted here
            busy += t.user + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) + getattr(t, "steal", 0.0)
    me = psutil.Process()
    own = me.cpu_times()
    in_busy = own.system + (own.user if me.nice() <= 0 else 0.0)
    return time.monotonic(), busy, _unyielding(cpus, me), in_busy


def _autogroup(pid: int | str) -> tuple[str, int] | None:
    """(group, its nice) of a process under Linux's autogroup, from /proc/PID/autogroup (empty for the
    root group); None where it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text().split()
        return ("/", 0) if not text else (text[0], int(text[-1]))
    except (OSError, ValueError):
        return None


def _autogroup_on() -> bool:
    """Whether Linux's autogroup schedules this process: on (/proc/sys/kernel/sched_autogroup_enabled)
    and the process in the root cpu cgroup (a container's or a systemd slice's cpu cgroup is
    scheduled by its own weights instead, which this does not read: nice then orders the processes)."""
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
            return False
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if (controllers == "" or "cpu" in controllers.split(",")) and path.strip() != "/":
                return False
        return True
    except (OSError, ValueError):
        return False


def _unyielding(cpus: list[int], me) -> dict[tuple, float]:
    """The CPU seconds so far of each niced process (nice above 0) that may run on `cpus` and does not
    give way to this one, keyed by (pid, start time). A nice weighs a process against the others of
    its scheduling group only: without autogroup, or in this process's group, a niced process gives
    way where its nice is above this one's; under autogroup (`_autogroup_on`) each session (a
    terminal, a `setsid` job, a tmux pane) is a group, the groups share the CPU by their own nice
    (0 unless set in /proc/PID/autogroup), and a process in another group gives way where its
    group's nice is above this one's. Measured on 2 cores beside two 1-thread sweeps started with
    `setsid nice -n 10`: smollm2-135m's passes ran at 10 GFLOP/s on 2 threads and 24 on 1; with the
    sweeps' groups niced (`echo 10 > /proc/PID/autogroup`), at 31-38 on 2."""
    own_nice = me.nice()
    own_group = _autogroup("self") if _autogroup_on() else None
    out, mine = {}, set(cpus)
    attrs = ["nice", "cpu_times", "create_time"] + (["cpu_affinity"] if hasattr(psutil.Process, "cpu_affinity") else [])
    for proc in psutil.process_iter(attrs):  # (macOS has no cpu_affinity: asking for it is an error)
        info = proc.info
        nice, used = info.get("nice"), info.get("cpu_times")
        if proc.pid == me.pid or nice is None or nice <= 0 or used is None:
            continue  # an un-niced process's time is in the cores' busy time
        if info.get("cpu_affinity") is not None and not mine & set(info["cpu_affinity"]):
            continue
        group = _autogroup(proc.pid) if own_group is not None else None
        if group is None or group[0] == own_group[0]:
            gives_way = nice > own_nice
        else:  # the root group's processes weigh by their own nice, an autogroup by its group's
            gives_way = (nice if group[0] == "/" else group[1]) > (own_nice if own_group[0] == "/" else own_group[1])
        if not gives_way:
            out[(proc.pid, info.get("create_time"))] = used.user + used.system
    return out


def busy_elsewhere(cpus: list[int] | None = None) -> float:
    """Cores' worth of CPU time that other processes took on `cpus` (default: this process's) over
    the last look: since the previous call if that was `SAMPLE_S` to `STALE_S` ago, else over a
    fresh sample of `SAMPLE_S`. Niced work counts where it does not give way to this process
    (`_unyielding`), for the time it ran between the two looks."""
    cpus = cpus if cpus is not None else cores()
    now = _sample(cpus)
    if not _LAST or not SAMPLE_S <= now[0] - _LAST[0][0] <= STALE_S:
        time.sleep(SAMPLE_S)
        then, now = now, _sample(cpus)
    else:
        then = _LAST[0]
    _LAST[:] = [now]
    wall = max(now[0] - then[0], 1e-6)
    niced = sum(max(0.0, used - then[2][key]) for key, used in now[2].items() if key in then[2])
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
