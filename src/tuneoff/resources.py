"""One way to count resources, shared by every method: parameters, peak memory, time, tokens, FLOPs."""
from __future__ import annotations

import threading
import time

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


class PeakMemory:
    """Peak memory over a block: process RSS sampled on CPU, max allocated on CUDA."""

    def __init__(self, device: torch.device, interval: float = 0.02):
        self.device, self.interval = device, interval
        self.peak_rss = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak_rss = self.start_rss = self._proc.memory_info().rss
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)

    def result(self) -> dict:
        # peak_rss_mb is the whole process; the delta is what this run added on top of what the
        # process already held (earlier runs' caches in a sweep), the fairer figure to compare.
        out = {"peak_rss_mb": round(self.peak_rss / 2**20, 1),
               "peak_rss_delta_mb": round((self.peak_rss - self.start_rss) / 2**20, 1)}
        if self.device.type == "cuda":
            out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return out


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def approx_flops(params_total: int, params_trainable: int, tokens: int, training: bool) -> float:
    """Transformer rule of thumb: 2·N FLOPs per token forward; backward ~2·N for activations plus
    2·N_trainable for weight gradients. An estimate, labelled as such in reports."""
    if not training:
        return 2.0 * params_total * tokens
    return (4.0 * params_total + 2.0 * params_trainable) * tokens
