"""The toolbox below the runner and selection: where a run computes, its data, its method, and the
one function that fits a method and scores it (`fit_and_score`), which a run, every selection fit
and the oracle diagnostic all call, so they train, evaluate and count cost alike.

Nothing here imports the runner, selection or the store: they import this.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tuneoff import data as data_mod
from tuneoff import models, precision
from tuneoff.config import RunConfig
from tuneoff.evaluate import AutoBatch, eval_metrics, predict
from tuneoff.methods import Context, Method
from tuneoff.resources import Timer, approx_flops, count_parameters, train_cost
from tuneoff.tasks import Task, get_task
from tuneoff.resume import ResumePoint
from tuneoff.train import TrainingDiverged, TrainStats, count_earlier, resumed_note, train


def pick_device(name: str) -> torch.device:
    """The torch device of a config's `device` (the one place it is derived); ValueError for
    device=cuda without a visible GPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
                         "use device=auto or device=cpu, or a torch build with CUDA")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class RunData:
    """A run's data: the task, its training pool, the few-shot split, and the eval sets read (each
    capped as the config says), with notes on optional sets that were absent."""

    task: Task
    pool: list[dict]
    few: list[dict]
    evals: dict[str, list[dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Toolbox:
    """What a process keeps from one run to the next: data read once, and one accelerator per
    device. An executor holds one for as long as it runs; a test that needs fresh reads makes its own."""

    _shared: "Toolbox | None" = None

    def __init__(self):
        self._data: dict[tuple, object] = {}
        self._accelerators: dict[str, object] = {}

    @classmethod
    def shared(cls) -> "Toolbox":
        """The process's own toolbox, for callers that are given none."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def forget_data(self) -> None:
        """Read every file again at its next use (the files changed)."""
        self._data.clear()

    def _cached(self, key: tuple, fn):
        """Data loaded once. A DataError is remembered too: the next run of the same job fails at
        once with the same message instead of waiting out the hub's retries again."""
        if key not in self._data:
            try:
                self._data[key] = fn()
            except data_mod.DataError as e:
                self._data[key] = e
        got = self._data[key]
        if isinstance(got, data_mod.DataError):
            raise data_mod.DataError(str(got))
        return got

    def accelerator(self, device: torch.device):
        from accelerate import Accelerator

        if device.type not in self._accelerators:
            self._accelerators[device.type] = Accelerator(cpu=device.type == "cpu")
        return self._accelerators[device.type]

    def split(self, cfg: RunConfig, data_seed: int | None = None) -> RunData:
        """The task, its train pool and the few-shot split of `data_seed` (default: the run's); no
        eval set is read."""
        task = get_task(cfg.task)
        pool = self._cached((cfg.task, cfg.data_dir, "train"), lambda: data_mod.load_train(task, cfg.data_dir))
        few = data_mod.sample_few_shot(pool, cfg.shots, cfg.data_seed if data_seed is None else data_seed, task)
        return RunData(task, pool, few)

    def data(self, cfg: RunConfig) -> RunData:
        """The split and the eval sets of `cfg` (the files are read once per toolbox)."""
        run_data = self.split(cfg)
        task = run_data.task
        for name in cfg.eval.sets or [es.name for es in task.eval_sets]:
            es = task.eval_set(name)
            exs = self._cached((cfg.task, cfg.data_dir, "eval", name),
                               lambda es=es: data_mod.load_eval(task, es, cfg.data_dir))
            if exs is None:
                run_data.notes.append(f"optional eval set {name!r} not found under data_dir; skipped")
                continue
            run_data.evals[name] = data_mod.cap_eval(exs, cfg.eval.max_examples, es.subset_fields)
        return run_data


# -- the method ----------------------------------------------------------------------------------

def method_context(cfg: RunConfig, task: Task, loaded: models.Loaded, device: torch.device) -> Context:
    """What a method is given of its run: the task, the loaded model, the device and the few settings
    methods read (nothing else of the config)."""
    return Context(task=task, loaded=loaded, device=device, seed=cfg.seed, data_seed=cfg.data_seed,
                   max_length=cfg.max_length, eval_batch_size=AutoBatch.of(cfg.eval.batch_size, device).size,
                   pattern=cfg.pattern, dtype=precision.DTYPES[cfg.model_dtype])


def weights(cfg: RunConfig, device: torch.device) -> models.Weights:
    """How `cfg`'s model loads: its dtype (resolved from auto), quantization, attention."""
    return models.Weights(cfg.model_dtype, cfg.quantization, cfg.attn_implementation, str(device))


def tiny_vocabulary(cfg: RunConfig, task: Task, pool: list[dict], evals: dict[str, list[dict]]) -> list[str] | None:
    """The texts a tiny test model's word-level tokenizer is built from (the pool the method may
    draw from, the eval sets, the patterns and answer words); None for any real model, whose
    tokenizer is its own."""
    if cfg.model not in models.TINY:
        return None
    texts = [" ".join(ex[f] for f in task.text_fields) for ex in pool]
    texts += [" ".join(ex[f] for f in task.text_fields) for exs in evals.values() for ex in exs]
    texts += [p.template + " " + " ".join(p.verbalizer.values()) for p in task.patterns.values()]
    return texts + [task.instruction, " ".join(task.label_names)]


def phase(progress, name: str) -> None:
    """Tell a progress callback (if any) that a phase of unknown length starts."""
    if progress:
        progress(name, 0, None)


def build_method(cfg: RunConfig, data: RunData, train_set: list[dict], device: torch.device,
                 pool: list[dict] | None = None, progress=None, on_load=None) -> tuple[Method, dict[str, Timer]]:
    """Load the model and build the method on `train_set` (its `setup` done, with `pool`, by default
    the task's, as what it may draw from); the "load" (model) and "setup" timers. `on_load` is
    called with the loaded model before the method touches it (outside both timers)."""
    method_cls, options = cfg.method_class, cfg.method_options
    pool = data.pool if pool is None else pool
    with Timer() as t_load:
        phase(progress, f"load model {cfg.model}")
        loaded = models.load(cfg.model, method_cls.head_for(options), data.task.num_labels,
                             vocab_texts=tiny_vocabulary(cfg, data.task, pool, data.evals), seed=cfg.seed,
                             trust_remote_code=cfg.trust_remote_code, weights=weights(cfg, device))
        if cfg.quantization is None:  # a quantized model is placed as it loads, and cannot move
            loaded.model.to(device)
    if on_load is not None:
        on_load(loaded)
    with Timer() as t_setup:
        phase(progress, f"set up {cfg.method.name}")
        method = method_cls(options, method_context(cfg, data.task, loaded, device))
        method.progress = progress
        with precision.autocast(method.ctx.dtype, device):  # a set-up pass over 16-bit weights and new float32 ones
            method.setup(train_set, pool)
    return method, {"load": t_load, "setup": t_setup}


@dataclass
class Prepared:
    """A run's data and its method, built and set up, before training."""

    cfg: RunConfig
    data: RunData
    method: Method
    timers: dict[str, Timer]

    @property
    def task(self) -> Task:
        return self.data.task

    @property
    def few(self) -> list[dict]:
        return self.data.few

    @property
    def evals(self) -> dict[str, list[dict]]:
        return self.data.evals

    @property
    def device(self) -> torch.device:
        return self.method.ctx.device


def prepare(cfg: RunConfig, toolbox: Toolbox | None = None, progress=None) -> Prepared:
    """`cfg`'s data (eval sets included) and its method built on its few-shot split."""
    data = (toolbox or Toolbox.shared()).data(cfg)
    method, timers = build_method(cfg, data, data.few, pick_device(cfg.device), progress=progress)
    return Prepared(cfg, data, method, timers)


# -- fit and score -------------------------------------------------------------------------------

@dataclass
class Scored:
    """A set to score a fit on: its examples, the fields it is reported per, its domain."""

    examples: list[dict]
    subset_fields: tuple[str, ...] = ()
    domain: str = "in"


def eval_targets(data: RunData) -> dict[str, Scored]:
    """A run's eval sets as sets to score on."""
    return {name: Scored(exs, data.task.eval_set(name).subset_fields, data.task.eval_set(name).domain)
            for name, exs in data.evals.items()}


@dataclass
class Fit:
    """A method trained on a training set and scored on some sets: the method (trained), its
    training statistics, per set the metrics and the class probabilities, the timers (load, setup,
    train, eval: wall and CPU time), the parameter counts, and why training diverged, if it did."""

    method: Method
    stats: TrainStats | None
    metrics: dict[str, dict]
    probs: dict[str, np.ndarray]
    timers: dict[str, Timer]
    params: dict
    eval_examples: int = 0
    eval_tokens: int = 0
    diverged: TrainingDiverged | str | None = None
    eval_batch_size: int | None = None  # the size evaluation ended with (auto: after any halving)

    @property
    def train_tokens(self) -> int:
        return train_cost(self.params, self.stats)[0]

    @property
    def train_flops(self) -> float:
        return train_cost(self.params, self.stats)[1]

    @property
    def eval_flops(self) -> float:
        return approx_flops(self.params["params_total"], 0, self.eval_tokens, False)


def score(method: Method, targets: dict[str, Scored], batch_size: int | str | AutoBatch, progress=None):
    """Per set: its metrics (with its domain and size) and its class probabilities; the tokens scored.
    An automatic batch size (`AutoBatch`) carries what it backed off to from one set to the next."""
    batch_size = AutoBatch.of(batch_size, method.ctx.device)
    metrics, probs, tokens = {}, {}, 0
    for name, target in targets.items():
        cb = (lambda done, total, name=name: progress(f"eval {name}", done, total)) if progress else None
        probs[name], tok = predict(method, target.examples, batch_size, method.ctx.device, cb)
        tokens += tok
        m = eval_metrics(target.examples, probs[name], method.task.label_names, target.subset_fields)
        metrics[name] = {"domain": target.domain, "n": len(target.examples), **m}
    return metrics, probs, tokens


def fit_and_score(toolbox: Toolbox, cfg: RunConfig, data: RunData, train_set: list[dict],
                  targets: dict[str, Scored], pool: list[dict] | None = None, progress=None,
                  on_load=None, resume: ResumePoint | None = None) -> Fit:
    """Build `cfg`'s method on `train_set`, train it (if it trains) and score it on `targets`.
    A diverged training is returned in `diverged`, with nothing scored; any other error is raised.
    `resume`: where the training keeps its state and resumes from (`tuneoff.resume`); a resumed
    training's time counts the stopped processes' time up to the state it went on from, and says so
    in the method's notes."""
    device = pick_device(cfg.device)
    method, timers = build_method(cfg, data, train_set, device, pool, progress, on_load)
    if not method.trains:  # nothing may receive gradients, and none is counted as trainable
        method.model.requires_grad_(False)
    fit = Fit(method, None, {}, {}, timers, count_parameters(method.model),
              eval_examples=sum(len(t.examples) for t in targets.values()))
    with Timer() as timers["train"]:
        if method.trains:
            cb = (lambda s, total, loss: progress("train", s, total, loss)) if progress else None
            try:
                fit.stats = train(method, method.train_examples(train_set), cfg.train, cfg.seed,
                                  toolbox.accelerator(device), cb, resume)
            except TrainingDiverged as e:
                fit.diverged = e
    if fit.stats is not None and fit.stats.resumed_step:
        count_earlier(timers["train"], fit.stats)
        method.notes.append(resumed_note(fit.stats))
    with Timer() as timers["eval"]:  # wall and CPU time
        if fit.diverged is None:
            batch = AutoBatch.of(cfg.eval.batch_size, device)  # auto: one size carried across the sets
            fit.metrics, fit.probs, fit.eval_tokens = score(method, targets, batch, progress)
            fit.eval_batch_size = batch.size
    return fit
