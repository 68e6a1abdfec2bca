"""The one training loop: every gradient-based method is trained here, the same way."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_linear_schedule_with_warmup

from tuneoff.config import TrainConfig
from tuneoff.methods import Method
from tuneoff.methods.base import batch_to
from tuneoff.precision import autocast, bf16_supported, enable_checkpointing, master_weights
from tuneoff.resume import ResumePoint, fingerprint


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is recorded as failed with this message."""


@dataclass
class TrainStats:
    steps: int = 0
    examples: int = 0
    tokens: int = 0  # through the model forward and backward
    forward_tokens: int = 0  # forward only, once (a precomputed pass, e.g. the probe's features)
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step
    resumed_step: int = 0  # the step a kept state was loaded at (`tuneoff.resume`); 0: trained from the start
    earlier_s: float = 0.0  # wall and CPU seconds the stopped processes had trained up to that state
    earlier_cpu_s: float = 0.0
    redone_s: float = 0.0  # wall and CPU seconds the resuming process spent setting the training up again
    redone_cpu_s: float = 0.0

    @property
    def carried(self) -> tuple[float, float]:
        """Wall and CPU seconds a resumed training adds to its own process's time: the stopped
        processes' up to the state it went on from, less the set-up the resuming process did again
        (that, and the minutes after the state, are work lost to the stop, not the training's)."""
        return self.earlier_s - self.redone_s, self.earlier_cpu_s - self.redone_cpu_s


def check_precision(precision: str, device: torch.device) -> None:
    """ValueError naming `train.precision` if `device` cannot train in it."""
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"train.precision=bf16 but the {device.type} device has no native bfloat16 "
                         "(a CUDA GPU with bf16, or a CPU with AVX-512 BF16/AMX); use train.precision=fp32")


def optimizer_options(name: str) -> dict:
    """torch.optim.AdamW's keywords for `train.optimizer`: adamw keeps torch's default implementation
    (the one every run before the key used); adamw_fused its fused kernel."""
    return {"fused": True} if name == "adamw_fused" else {}


def total_steps(n_examples: int, cfg: TrainConfig) -> int:
    """Optimizer steps of the schedule (`max_steps`, else `epochs` passes over `n_examples`)."""
    if cfg.max_steps:
        return cfg.max_steps
    return epoch_steps(n_examples, cfg, cfg.epochs)


def epoch_steps(n_examples: int, cfg: TrainConfig, epochs: float) -> int:
    """Optimizer steps of `epochs` passes over `n_examples` (at least one)."""
    per_epoch = math.ceil(math.ceil(n_examples / cfg.batch_size) / cfg.grad_accum)
    return max(1, math.ceil(per_epoch * epochs))


def stop_step(n_examples: int, cfg: TrainConfig) -> int:
    """The step training stops at: the schedule's end, or `stop_epochs` into it (early stopping)."""
    steps = total_steps(n_examples, cfg)
    if cfg.stop_epochs is None:
        return steps
    return min(steps, epoch_steps(n_examples, cfg, cfg.stop_epochs))


def train(method: Method, examples: list[dict], cfg: TrainConfig, seed: int,
          accelerator: Accelerator, progress=None, resume: ResumePoint | None = None) -> TrainStats:
    """AdamW with linear warm-up/decay, gradient accumulation and clipping; `method.loss` decides
    what is minimised, under bfloat16 autocast with `cfg.precision` bf16 (the backward pass, the
    weights, gradients and optimizer state stay float32), and under autocast to the frozen weights'
    dtype where the model loaded in 16 bits (`tuneoff.precision`: the weights that train are float32). Stops at `stop_step` (the schedule's end
    unless `cfg.stop_epochs` stops it early). `progress` is an optional callable(step, total, loss).
    `resume`: where the training keeps its state as it goes and goes on from one kept before
    (`tuneoff.resume`); the caller clears it once the result is kept."""
    try:
        return Training(method, examples, cfg, seed, accelerator, progress, resume).run_until(
            stop_step(len(examples), cfg))
    finally:
        accelerator.free_memory()  # as `Training.close`, also when setting up failed


def count_earlier(timer, stats: TrainStats) -> None:
    """A `resources.Timer` of a resumed training made its time (`TrainStats.carried` added)."""
    seconds, cpu_seconds = stats.carried
    timer.seconds += seconds
    timer.cpu_seconds += cpu_seconds


def resumed_note(stats: TrainStats) -> str:
    return (f"training resumed at step {stats.resumed_step} from the state a stopped process kept "
            f"({stats.earlier_cpu_s:.0f} CPU s before it, counted in the training's time)")


class Training:
    """One training under way, that can stop at a step, be scored, and go on (a search's rungs):
    `run_until(step)` takes the optimizer steps up to `step` of the schedule planned for the whole
    of `cfg`; `close()` puts the model in eval mode and lets the accelerator drop it. With `resume`,
    its state is kept there as it trains, and one kept before is loaded first (`tuneoff.resume`)."""

    def __init__(self, method: Method, examples: list[dict], cfg: TrainConfig, seed: int,
                 accelerator: Accelerator, progress=None, resume: ResumePoint | None = None):
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        check_precision(cfg.precision, accelerator.device)
        set_seed(seed)
        self.method, self.examples, self.cfg, self.accelerator, self.progress = method, examples, cfg, accelerator, progress
        groups = method.param_groups(cfg.lr, cfg.weight_decay)
        if not groups:
            raise TrainingDiverged("no trainable parameters: the method froze everything")
        master_weights(method.model)  # 16-bit frozen weights, float32 trained ones
        if cfg.gradient_checkpointing:
            enable_checkpointing(method.model)
        self.steps = total_steps(len(examples), cfg)
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, **optimizer_options(cfg.optimizer))
        self.scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * self.steps), self.steps)
        self.model, self.optimizer = accelerator.prepare(method.model, optimizer)
        self.params = [p for g in groups for p in g["params"]]
        method.model = self.model
        self.order = torch.Generator().manual_seed(seed)
        self.stats = TrainStats()
        with self.autocast():
            self.stats.forward_tokens = method.start_training(examples)
        self.perm: list[int] = []  # this pass's order over the examples, and the next micro-batch's start in it
        self.pos = 0
        self.started = False
        self.resume = resume if resume is not None and self._resumable() else None
        self.saved_step = -1
        if self.resume is not None:
            self.resume.start()
            self.fingerprint = fingerprint(self.steps, seed, examples, self.model, cfg.model_dump(mode="json"),
                                           type(method).__name__, self.resume.identity)
            if self.resume.load(self, self.fingerprint):
                s = self.stats
                s.resumed_step, self.saved_step = s.steps, s.steps
                # the set-up this process did again (the first process's is in the state's time): lost work
                s.redone_s, s.redone_cpu_s = time.perf_counter() - self.t0, time.process_time() - self.cpu0

    def _resumable(self) -> bool:
        """Whether a kept state holds all that the next steps read: not for a method whose state
        between steps lies outside the model and optimizer (AdaLoRA's rank allocation), nor one that
        steps parameters the model does not hold."""
        held = {id(p) for p in self.model.parameters() if p.requires_grad}
        return getattr(self.method, "allocate", None) is None and all(id(p) in held for p in self.params)

    def _next_chunk(self) -> list[dict]:
        """The next micro-batch: passes over the examples, each in a new random order."""
        if self.pos >= len(self.perm):
            self.perm, self.pos = torch.randperm(len(self.examples), generator=self.order).tolist(), 0
        chunk = [self.examples[j] for j in self.perm[self.pos:self.pos + self.cfg.batch_size]]
        self.pos += self.cfg.batch_size
        return chunk

    def spent_s(self) -> float:
        """Wall seconds of this training: in this process, and in the stopped ones it resumed from."""
        return self.stats.earlier_s + time.perf_counter() - self.t0

    def spent_cpu_s(self) -> float:
        return self.stats.earlier_cpu_s + time.process_time() - self.cpu0

    def run_until(self, step: int) -> TrainStats:
        """Optimizer steps up to `step` (at most the schedule's); the model is left unwrapped, in eval mode."""
        method, cfg, accelerator, stats = self.method, self.cfg, self.accelerator, self.stats
        if self.started:  # scored at a rung: back to training as the method trains
            method.model = self.model
            with self.autocast():
                method.resume_training()
        self.started = True
        while stats.steps < min(step, self.steps):
            step_loss = 0.0
            for _ in range(cfg.grad_accum):
                chunk = self._next_chunk()
                batch = batch_to(method.collate(chunk), accelerator.device)
                with self.autocast():
                    loss = method.loss(batch)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"loss is {loss.item()} at step {stats.steps + 1}; lower train.lr "
                                           f"(now {cfg.lr}) or enable gradient clipping (train.max_grad_norm)")
                accelerator.backward(loss / cfg.grad_accum)
                step_loss += loss.item() / cfg.grad_accum
                stats.examples += len(chunk)
                if "attention_mask" in batch:
                    stats.tokens += int(batch["attention_mask"].sum())
            if cfg.max_grad_norm:
                accelerator.clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            stats.steps += 1
            method.after_optimizer_step(stats.steps, self.steps)  # this step's gradients still there
            self.optimizer.zero_grad(set_to_none=True)
            stats.losses.append(step_loss)
            if self.resume is not None and self.resume.due():
                self.keep()
            if self.progress:
                self.progress(stats.steps, min(step, self.steps), step_loss)
        if self.resume is not None and self.resume.kept and self.saved_step != stats.steps:
            self.keep()  # a long training's end too, until its caller keeps the result
        self.model.eval()
        method.model = accelerator.unwrap_model(self.model)
        with self.autocast():
            stats.forward_tokens += method.finish_training()  # inside the training's time, before any scoring
        return stats

    def keep(self) -> None:
        """Keep the state now (between two steps)."""
        self.resume.save(self)
        self.saved_step = self.stats.steps

    def autocast(self):
        """The context of every forward pass of this training (`tuneoff.precision.autocast`)."""
        return autocast(self.method.ctx.dtype, self.accelerator.device, self.cfg.precision)

    def close(self) -> None:
        """The accelerator keeps every prepared model and optimizer: drop them, diverged or not, or
        each training's weights and optimizer state stay resident for the rest of the process."""
        self.accelerator.free_memory()
