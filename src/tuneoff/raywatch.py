"""A local Ray cluster that tuneoff starts is one that tuneoff cleans up, even when its driver dies
without `ray.shutdown()` (SIGKILL, a crash), which leaves Ray's agents running (`ray::DashboardAgent`,
`ray::RuntimeEnvAgent`: about 200 MB).

When the ray executor starts a local cluster it starts a watchdog (`python -m tuneoff.raywatch`, in
its own session, so a signal to the driver's process group does not reach it). The watchdog keeps
a registry file (`$TUNEOFF_CACHE/ray-clusters/<driver pid>.json`) with the processes of that
cluster, and when the driver is gone it ends them. Should the watchdog die too, the next local
cluster that tuneoff starts ends what the registry of a dead driver lists. Only processes recorded
there (each checked by its start time, so a reused pid is left alone) or naming that cluster's
session folder are ended: never a cluster of a live tuneoff process, nor one the user started.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

POLL_S = 1.0


def registry_dir() -> Path:
    from tuneoff.models import cache_dir

    return cache_dir() / "ray-clusters"


def _alive(pid: int, start: float) -> psutil.Process | None:
    try:
        p = psutil.Process(pid)
        return p if abs(p.create_time() - start) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def _is_ray(p: psutil.Process) -> bool:
    """A process of Ray (its daemons, agents, workers), not some other child of the driver."""
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return cmd.startswith("ray::") or f"{os.sep}ray{os.sep}" in cmd


def end_cluster(pids: dict[int, float], session_dir: str | None, grace_s: float = 3.0) -> int:
    """End the recorded processes still alive and any naming `session_dir`; returns how many."""
    procs = [p for pid, start in pids.items() if (p := _alive(int(pid), start)) is not None]
    if session_dir:
        for p in psutil.process_iter(["pid", "cmdline"]):
            if p.pid != os.getpid() and p not in procs and session_dir in " ".join(p.info["cmdline"] or []):
                procs.append(p)
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(procs, timeout=grace_s)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    return len(procs)


def clean_stale() -> int:
    """End the clusters whose driver and watchdog are both gone; returns how many processes."""
    n = 0
    folder = registry_dir()
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            reg = json.loads(path.read_text())
            driver = _alive(reg["driver_pid"], reg["driver_start"])
            watcher = _alive(reg["watcher_pid"], reg["watcher_start"]) if reg.get("watcher_pid") else None
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours: leave it
        if driver is None and watcher is None:
            n += end_cluster({int(k): v for k, v in reg.get("pids", {}).items()}, reg.get("session_dir"))
            path.unlink(missing_ok=True)
    return n


def start_watchdog(session_dir: str) -> subprocess.Popen:
    """Watch this process (the driver) and its local cluster; see the module's docstring."""
    me = psutil.Process()
    return subprocess.Popen([sys.executable, "-m", "tuneoff.raywatch", str(me.pid), repr(me.create_time()),
                             session_dir], start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_watchdog(proc: subprocess.Popen | None) -> None:
    """After a clean `ray.shutdown()`: end what the cluster left behind, then the watchdog."""
    if proc is None:
        return
    path = registry_dir() / f"{os.getpid()}.json"
    try:
        reg = json.loads(path.read_text())
        end_cluster({int(k): v for k, v in reg.get("pids", {}).items() if int(k) != proc.pid},
                    reg.get("session_dir"), grace_s=2.0)
    except (OSError, ValueError):
        pass
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
    path.unlink(missing_ok=True)


def watch(driver_pid: int, driver_start: float, session_dir: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the driver shut its cluster down itself
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{driver_pid}.json"
    me = psutil.Process()
    known: dict[int, float] = {}
    while (driver := _alive(driver_pid, driver_start)) is not None:
        try:
            for p in driver.children(recursive=True):
                if p.pid != me.pid and p.pid not in known and _is_ray(p):
                    known[p.pid] = p.create_time()
        except psutil.Error:
            pass
        reg = {"driver_pid": driver_pid, "driver_start": driver_start, "watcher_pid": me.pid,
               "watcher_start": me.create_time(), "session_dir": session_dir, "pids": known}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(reg))
        os.replace(tmp, path)
        time.sleep(POLL_S)
    end_cluster(known, session_dir)
    path.unlink(missing_ok=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3])
