"""The one training loop: every gradient-based method is trained here, the same way."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_linear_schedule_with_warmup

from tuneoff.config import TrainConfig
from tuneoff.methods import Method
from tuneoff.methods.base import batch_to
from tuneoff.precision import autocast, bf16_supported, enable_checkpointing, master_weights


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is recorded as failed with this message."""


@dataclass
class TrainStats:
    steps: int = 0
    examples: int = 0
    tokens: int = 0  # through the model forward and backward
    forward_tokens: int = 0  # forward only, once (a precomputed pass, e.g. the probe's features)
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step


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
          accelerator: Accelerator, progress=None) -> TrainStats:
    """AdamW with linear warm-up/decay, gradient accumulation and clipping; `method.loss` decides
    what is minimised, under bfloat16 autocast with `cfg.precision` bf16 (the backward pass, the
    weights, gradients and optimizer state stay float32), and under autocast to the frozen weights'
    dtype where the model loaded in 16 bits (`tuneoff.precision`: the weights that train are float32). Stops at `stop_step` (the schedule's end
    unless `cfg.stop_epochs` stops it early). `progress` is an optional callable(step, total, loss)."""
    try:
        return Training(method, examples, cfg, seed, accelerator, progress).run_until(stop_step(len(examples), cfg))
    finally:
        accelerator.free_memory()  # as `Training.close`, also when setting up failed


class Training:
    """One training under way, that can stop at a step, be scored, and go on (a search's rungs):
    `run_until(step)` takes the optimizer steps up to `step` of the schedule planned for the whole
    of `cfg`; `close()` puts the model in eval mode and lets the accelerator drop it."""

    def __init__(self, method: Method, examples: list[dict], cfg: TrainConfig, seed: int,
                 accelerator: Accelerator, progress=None):
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
        self.stream = self._micro_batches()
        self.started = False

    def _micro_batches(self):
        examples, size = self.examples, self.cfg.batch_size
        while True:
            perm = torch.randperm(len(examples), generator=self.order).tolist()
            for i in range(0, len(perm), size):
                yield [examples[j] for j in perm[i:i + size]]

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
                chunk = next(self.stream)
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
            if self.progress:
                self.progress(stats.steps, min(step, self.steps), step_loss)
        self.model.eval()
        method.model = accelerator.unwrap_model(self.model)
        with self.autocast():
            stats.forward_tokens += method.finish_training()  # inside the training's time, before any scoring
        return stats

    def autocast(self):
        """The context of every forward pass of this training (`tuneoff.precision.autocast`)."""
        return autocast(self.method.ctx.dtype, self.accelerator.device, self.cfg.precision)

    def close(self) -> None:
        """The accelerator keeps every prepared model and optimizer: drop them, diverged or not, or
        each training's weights and optimizer state stay resident for the rest of the process."""
        self.accelerator.free_memory()
