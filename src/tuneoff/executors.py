"""Where a sweep's runs execute: here, one at a time (`local`), or as Ray tasks (`ray`).

An executor takes the driver's work queue (`tuneoff.workqueue`: each run it hands out is claimed
in the store, so no other process computes it too) and yields `(run, record, seconds)` as each
finishes; the driver writes the record to the one store. A Ray
worker therefore never touches the results store, and runs the same `runner.run_record` as the
local executor, so a run's record is the same whichever executor ran it. (Only `save: true` writes
on the worker: the weights go to the run folder's path on the machine that ran it.)
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator

from tuneoff.config import RunConfig

# Environment a Ray worker needs to behave like this process (offline hub, quiet tokenizers, how
# waiting threads wait: `tuneoff.threads`).
FORWARD_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
               "OMP_WAIT_POLICY")
# Paths, forwarded only to a local Ray cluster (they mean nothing on another machine).
FORWARD_LOCAL_ENV = ("HF_HOME", "HF_HUB_CACHE", "TUNEOFF_CACHE")


class ExecutorError(RuntimeError):
    """An executor that cannot start; the message says what to install or pass."""


RunDir = Callable[[str], Path]


class LocalExecutor:
    """Runs in this process, one at a time, with the runner's progress callbacks, on one toolbox
    (`tuneoff.pipeline.Toolbox`: data read once; default: the process's own)."""

    name = "local"
    slots = 1

    def __init__(self, toolbox=None):
        self.toolbox = toolbox

    def run(self, queue, run_dir: RunDir, observer) -> Iterator[tuple[RunConfig, dict, float]]:
        from tuneoff.runner import run_record

        while (run := queue.next(block=True)) is not None:
            observer.started(run)
            t0 = time.perf_counter()
            record = run_record(run, run_dir(run.run_id()), observer.progress, self.toolbox)
            yield run, record, time.perf_counter() - t0

    def close(self) -> None:
        pass


def _ray_task(config: dict, run_dir: str, cpus: int | None = None) -> tuple[dict, float]:
    """The body of one Ray task: rebuild the config, run it, return its record (no store here).
    `cpus`: what Ray gave the task, the threads of a run whose `threads` is auto."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    from tuneoff import threads
    from tuneoff.config import config_from_dict
    from tuneoff.runner import run_record

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    threads.allot(cpus)
    t0 = time.perf_counter()
    record = run_record(config_from_dict(config), Path(run_dir))
    return record, time.perf_counter() - t0


def _session_dir(ray) -> str:
    """The session folder of the local cluster just started (every one of its daemons names it)."""
    try:
        return ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:  # a Ray release that moved it: the registry of pids still covers it
        return ""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("the ray executor needs Ray: pip install 'tuneoff[ray]'") from None
    return ray


class RayExecutor:
    """Each run is a Ray task asking for one GPU (device cuda/auto on a cluster with GPUs) or
    `cpus_per_run` CPUs, and computing on that many threads where its `threads` is auto. `address` joins an existing cluster; without it a local one is started
    with `num_cpus` CPUs (default: all). At most as many runs are submitted as can run at once,
    and results are collected with `ray.wait` as they finish. Interrupted, the runs in flight
    are stopped: cancelled on a joined cluster, ended with a started one by `close`."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_run: int = 1):
        if cpus_per_run < 1:
            raise ExecutorError(f"cpus_per_run must be >= 1, got {cpus_per_run}")
        self.ray = _import_ray()
        self.address, self.cpus_per_run = address, cpus_per_run
        self.env = {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}
        self.env.setdefault("TOKENIZERS_PARALLELISM", "false")
        if address is None:
            self.env.update({k: os.environ[k] for k in FORWARD_LOCAL_ENV if k in os.environ})
        self.started_ray, self.watchdog = False, None
        if not self.ray.is_initialized():
            import logging

            kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                          runtime_env={"env_vars": self.env})
            try:
                if address:
                    self.ray.init(address=address, **kwargs)
                else:
                    from tuneoff import raywatch

                    raywatch.clean_stale()  # what a crashed driver (and its watchdog) left behind
                    self.ray.init(num_cpus=num_cpus, **kwargs)
                    self.watchdog = raywatch.start_watchdog(_session_dir(self.ray))
            except Exception as e:  # noqa: BLE001 - say which cluster could not be reached
                where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
                raise ExecutorError(f"could not start {where}: {type(e).__name__}: {e}") from None
            self.started_ray = True
        resources = self.ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.cpus = int(resources.get("CPU", 0))
        if self.cpus < cpus_per_run:
            raise ExecutorError(f"each run asks for {cpus_per_run} CPU(s) but the Ray cluster has {self.cpus}")
        self.slots = max(1, self.cpus // cpus_per_run)
        self._remote = self.ray.remote(_ray_task)

    def wants_gpu(self, run: RunConfig) -> bool:
        return run.device in ("cuda", "auto") and self.gpus > 0

    def _submit(self, run: RunConfig, run_dir: RunDir):
        gpu = self.wants_gpu(run)
        opts = dict(num_cpus=self.cpus_per_run, num_gpus=1 if gpu else 0, max_retries=0,
                    runtime_env={"env_vars": self.env})
        return self._remote.options(**opts).remote(run.resolved(), str(run_dir(run.run_id()).resolve()),
                                                   self.cpus_per_run)

    def run(self, queue, run_dir: RunDir, observer) -> Iterator[tuple[RunConfig, dict, float]]:
        from tuneoff.claims import POLL_S
        from tuneoff.runner import base_record

        ray = self.ray
        slots = self.gpus if self.gpus and any(self.wants_gpu(r) for r in queue.pending) else self.slots
        flight: dict = {}  # ObjectRef -> (run, submitted at)
        try:
            while True:
                # claim only as many runs as can start now; wait for others' runs only when idle
                while len(flight) < slots and (run := queue.next(block=not flight)) is not None:
                    flight[self._submit(run, run_dir)] = (run, time.perf_counter())
                    observer.started(run)
                if not flight:
                    break
                ready, _ = ray.wait(list(flight), num_returns=1, timeout=POLL_S if queue.waiting else None)
                for ref in ready:
                    run, t0 = flight.pop(ref)
                    try:
                        record, seconds = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a crashed worker fails this run only
                        record, seconds = base_record(run), time.perf_counter() - t0
                        record.update(status="failed", error=f"{type(e).__name__} (Ray task): {e}"[:4000])
                    yield run, record, seconds
        finally:  # interrupted (`tuneoff.signals`): do not leave work running that nobody will collect
            self._abandon(list(flight))

    def _abandon(self, refs: list) -> None:
        """Cancel the tasks of `refs` still running. On a cluster this executor started, `close`, which
        follows, ends them with the cluster: a cancel there would only race Ray's completion of a
        task that has just finished, a race that ends the driver (Ray 2.60: "Tried to complete task
        that was not pending")."""
        if self.started_ray or not refs:
            return
        try:
            _, refs = self.ray.wait(refs, num_returns=len(refs), timeout=0)  # those not finished
        except Exception:  # noqa: BLE001 - cancel them all
            pass
        for ref in refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task or cluster already gone has nothing to stop
                pass

    def close(self) -> None:
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False
        if self.watchdog is not None:
            from tuneoff.raywatch import stop_watchdog

            stop_watchdog(self.watchdog)
            self.watchdog = None


def check_executor(name: str, address: str | None = None) -> None:
    """An unknown executor, or an option of another executor's, is an error before anything starts."""
    if name not in ("local", "ray"):
        raise ExecutorError(f"unknown executor {name!r}; use local or ray")
    if address and name != "ray":
        raise ExecutorError("--address is for the ray executor; add --executor ray")


def make_executor(name: str, address: str | None = None, num_cpus: int | None = None,
                  cpus_per_run: int = 1):
    check_executor(name, address)
    if name == "local":
        return LocalExecutor()
    return RayExecutor(address=address, num_cpus=num_cpus, cpus_per_run=cpus_per_run)
