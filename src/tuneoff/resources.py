"""One way to count resources, shared by every method: parameters, peak memory, time, tokens, FLOPs."""
from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch


def count_parameters(model: torch.nn.Module) -> dict:
    """Total parameters, and those that receive gradients (peft wrappers included)."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:  # tied weights count once
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"params_total": total, "params_trainable": trainable}


def release_memory() -> None:
    """Hand back what finished runs left: unreachable objects collected, free heap pages returned to
    the system (glibc `malloc_trim`), the CUDA cache emptied. Called before each run is measured."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()
_HWM = Path("/proc/self/clear_refs")
# What a fresh interpreter holds once tuneoff's run stack is imported and warmed up (see
# `environment.warm_up`), before any data or model of a run.
_BASELINE_CODE = ("import gc, ctypes, psutil, tuneoff.runner; from tuneoff.environment import warm_up; warm_up(); "
                  "gc.collect(); "
                  "ctypes.CDLL('libc.so.6').malloc_trim(0); print(psutil.Process().memory_info().rss)")
_baseline: dict[str, int | None] = {}


def _baseline_key() -> str:
    """What the baseline depends on: the interpreter, the platform, tuneoff's code and the libraries."""
    from importlib.metadata import PackageNotFoundError, version

    import tuneoff

    libs = []
    for dist in ("torch", "transformers", "tokenizers", "peft", "accelerate", "datasets", "safetensors"):
        try:
            libs.append(f"{dist}={version(dist)}")
        except PackageNotFoundError:
            libs.append(f"{dist}=-")
    blob = json.dumps([sys.executable, sys.version, platform.platform(), tuneoff.__file__, libs])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def process_baseline() -> int | None:
    """RSS in bytes of a fresh Python process with tuneoff's run stack imported (torch, transformers,
    accelerate, peft, the methods) and warmed up: measured once per environment in a child process
    and kept under the tuneoff cache folder (so a new process does not pay for it again); None if
    the measurement fails (then no per-run figure is given, rather than a wrong one)."""
    if "rss" in _baseline:
        return _baseline["rss"]
    from tuneoff.models import cache_dir

    path = cache_dir() / "memory-baseline" / f"{_baseline_key()}.json"
    try:
        _baseline["rss"] = int(json.loads(path.read_text())["rss"])
        return _baseline["rss"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        out = subprocess.run([sys.executable, "-c", _BASELINE_CODE], capture_output=True, text=True,
                             timeout=600, env=env, check=True)
        _baseline["rss"] = int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        _baseline["rss"] = None
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"rss": _baseline["rss"]}))
        tmp.replace(path)
    except OSError:
        pass  # an unwritable cache: measured again by the next process
    return _baseline["rss"]


def _hwm_reset() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux >= 4.0)."""
    try:
        _HWM.write_text("5")
        return True
    except OSError:
        return False


def _hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (shared storages counted once)."""
    seen, total = set(), 0
    for t in [*module.parameters(), *module.buffers()]:
        key = (t.device, t.untyped_storage().data_ptr())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


class PeakMemory:
    """A run's own peak memory, the same whichever runs came before it in the process.

    `peak_memory_mb` = a fixed process baseline (`process_baseline`: a fresh interpreter with the
    run stack imported) + the peak RSS during the block above the RSS at its start. Earlier runs'
    leftovers are released before the start (`release_memory`), the peak is the kernel's exact
    high-water mark (reset at the start; sampled every `interval` s where that is unavailable), and
    data loaded before the block (shared by every run of a task) is outside it. Whatever the run
    reuses from before its start, such as a model kept loaded across runs, must be `charge`d: the
    run's model counts toward its memory, other runs' leftovers do not. On CUDA, `peak_cuda_mb` is
    the maximum allocated during the block above what was allocated at its start (+ charged).
    """

    def __init__(self, device: torch.device, interval: float = 0.02, baseline: bool = True):
        self.device, self.interval, self.want_baseline = device, interval, baseline
        self.charged = self.charged_cuda = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def charge(self, module: torch.nn.Module) -> None:
        """Count a module that was resident before the block (e.g. a model reused from a cache)."""
        on_cuda = any(p.is_cuda for p in module.parameters())
        if on_cuda:
            self.charged_cuda += tensor_bytes(module)
        else:
            self.charged += tensor_bytes(module)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        if self.want_baseline:
            process_baseline()  # measured once, before the block (its child is no part of the run)
        release_memory()
        self.peak_rss = self.start_rss = self._proc.memory_info().rss
        self.exact = _hwm_reset()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_cuda = torch.cuda.memory_allocated(self.device)
        self._thread = None
        if not self.exact:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss, (self._hwm() or 0))
        if self.device.type == "cuda":
            self.peak_cuda = torch.cuda.max_memory_allocated(self.device) - self.start_cuda

    def _hwm(self) -> int | None:
        return _hwm() if self.exact else None

    @property
    def own_bytes(self) -> int:
        """What the block added to the process at its peak, plus what it was charged for."""
        return max(0, self.peak_rss - self.start_rss) + self.charged

    def result(self) -> dict:
        base = process_baseline() if self.want_baseline else 0
        out = {"peak_memory_mb": round(((base or 0) + self.own_bytes) / 2**20, 1) if base is not None else None,
               "memory_baseline_mb": round(base / 2**20, 1) if base is not None else None,
               "memory_run_mb": round(self.own_bytes / 2**20, 1)}
        if self.device.type == "cuda":
            out["peak_cuda_mb"] = round((self.peak_cuda + self.charged_cuda) / 2**20, 1)
        return out


class Timer:
    """Wall-clock and process CPU time (every thread of the process) over a block."""

    def __enter__(self) -> "Timer":
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.seconds = self.cpu_seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


def approx_flops(params_total: int, params_trainable: int, tokens: int, training: bool) -> float:
    """Transformer rule of thumb: 2·N FLOPs per token forward; backward ~2·N for activations plus
    2·N_trainable for weight gradients. An estimate, labelled as such in reports."""
    if not training:
        return 2.0 * params_total * tokens
    return (4.0 * params_total + 2.0 * params_trainable) * tokens


def train_cost(params: dict, stats) -> tuple[int, float]:
    """(tokens, approximate FLOPs) of a training (`train.TrainStats` or None): the steps' tokens,
    forward and backward, plus those a method ran forward only before the steps."""
    if stats is None:
        return 0, 0.0
    flops = (approx_flops(params["params_total"], params["params_trainable"], stats.tokens, True)
             + approx_flops(params["params_total"], 0, stats.forward_tokens, False))
    return stats.tokens + stats.forward_tokens, flops
