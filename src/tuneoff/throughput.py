"""How fast this machine does a run's work (`tuneoff.pricing.Work`), and the price from work that
`tuneoff.estimate.Costs` falls back on (`Pricer`).

Seconds = loads × a load + steps × a step's overhead + trainable parameters stepped × AdamW's time
per parameter + training FLOPs / a training rate + forward FLOPs / a scoring rate (`Machine`).

- With finished runs of the same model on the same device ("scaled"), `fit` sets the figures from
  their records: a load their mean load, the scoring rate their forward FLOPs over their evaluation
  seconds, and training the non-negative least-squares split of their training seconds over their
  steps, trainable parameters stepped and FLOPs, where these vary enough (runs of several methods
  and shot counts); else `DEFAULT`'s (or the given machine's) split scaled to their training
  seconds. Seconds are CPU seconds on the CPU where fewer, as `estimate.part_seconds`.
- With none ("first principles"), a short calibration (`calibrate`): the run's model loaded with a
  classification head, a warm-up step, then forward and backward passes on one example and on a
  training batch of the task's own inputs (up to `CALIBRATION_BATCH`), which split a pass's cost into
  a part per step (reading every weight, whatever the tokens) and a part per token; an AdamW update
  timed apart; and one scoring pass (up to `CALIBRATION_EVAL`), the faster of two each: seconds to
  tens of seconds (more on a busy machine), once per model and device in a process. (Calibrating on
  a small batch alone priced smollm2-135m at 2 GFLOP/s where its runs did about 45 per CPU second.) A tiny test model gets `TINY` (its cost is negligible);
  a model whose weights a dry run does not load (an embedded GGUF model not dequantised yet, a hub
  id) gets `DEFAULT`, said as not calibrated.

Checked on docs/cola-mnli-cpu (230 runs of smollm2-135m on one CPU thread): its MNLI runs priced from
its CoLA runs alone, by tokens per example and steps, came to 0.86 of their measured seconds in all,
each (method, shots) group within 0.4-1.5 (the 0.4: a run that waited behind other work).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from tuneoff import models
from tuneoff.estimate import part_seconds
from tuneoff.pricing import Inputs, Unknown, Work, inputs, run_work, selection_work, task_data
from tuneoff.resources import Timer, approx_flops, count_parameters

CALIBRATION_BATCH = 8
CALIBRATION_EVAL = 16
STEP_S = 0.003  # a step's overhead outside the passes and the optimizer (scheduler, loss bookkeeping)


@dataclass(frozen=True)
class Machine:
    load_s: float        # seconds per model load
    step_s: float        # seconds per optimizer step, besides what follows
    param_step_s: float  # seconds per trainable parameter per step (AdamW, clipping, zeroing)
    train_rate: float    # training FLOPs per second (forward and backward, padding and tokenizing included)
    eval_rate: float     # forward FLOPs per second when scoring
    how: str             # where the figures come from, in words

    def seconds(self, w: Work) -> float:
        return (w.loads * self.load_s + w.steps * self.step_s + w.step_params * self.param_step_s
                + w.train_flops / self.train_rate + w.eval_flops / self.eval_rate)


TINY = Machine(0.05, 0.005, 0.0, 1e9, 1e9, "a fixed speed for a tiny test model (its cost is negligible)")
# Rough speeds for a model that cannot be calibrated here; the CPU's are of the order of the 1-thread
# runs of docs/cola-mnli-cpu (smollm2-135m: ~0.4 s per step, ~4e-9 s per trainable parameter stepped,
# ~100 GFLOP/s), halved
DEFAULT = {"cpu": Machine(0.5, 0.4, 4e-9, 5e10, 5e10, "a default CPU speed (not calibrated: rough)"),
           "cuda": Machine(2.0, 0.02, 1e-10, 3e13, 1e14, "a default GPU speed (not calibrated: rough)")}


def _texts(task, examples: list[dict], decoder: bool):
    """(first segments, second segments or None) as `ClassifierMethod` gives them (a decoder: joined)."""
    fields = task.text_fields
    if decoder or len(fields) == 1:
        return [" ".join(ex[f] for f in fields) for ex in examples], None
    return [ex[fields[0]] for ex in examples], [" ".join(ex[f] for f in fields[1:]) for ex in examples]


def _timed(fn, device, on_cpu: bool):
    """fn()'s result and its seconds (CPU seconds on the CPU where fewer, as a run's parts)."""
    import torch

    with Timer() as t:
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return out, min(t.seconds, t.cpu_seconds) if on_cpu else t.seconds


def _best(fn, device, on_cpu: bool, times: int = 2):
    """fn()'s result and its fewest seconds over `times` calls (a busy machine's hiccups left out)."""
    runs = [_timed(fn, device, on_cpu) for _ in range(times)]
    return runs[-1][0], min(s for _, s in runs)


def calibrate(cfg, task, examples: list[dict]) -> Machine:
    """The speed of `cfg`'s model on `cfg`'s device, measured on `examples` (the task's own inputs),
    with the threads a run of `cfg` would take now (`threads.applied`): on a CPU that other work
    shares, torch's default of a thread per core prices smollm2-135m at 10 GFLOP/s where the 1-thread
    runs beside it did 24 (benchmarks/RESULTS.md, "Threads on a shared CPU")."""
    from tuneoff import threads

    with threads.applied(cfg.threads) as chosen:
        return _calibrate(cfg, task, examples, chosen.threads)


def _calibrate(cfg, task, examples: list[dict], n_threads: int) -> Machine:
    import torch

    from tuneoff.evaluate import AutoBatch
    from tuneoff.pipeline import pick_device
    from tuneoff.train import optimizer_options

    device = pick_device(cfg.device)
    on_cpu = device.type == "cpu"
    loaded, load_s = _timed(lambda: models.load(cfg.model, "classifier", task.num_labels,
                                                trust_remote_code=cfg.trust_remote_code), device, on_cpu)
    model, tokenizer = loaded.model.to(device), loaded.tokenizer
    n = count_parameters(model)["params_total"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7, **optimizer_options(cfg.train.optimizer))

    def encode(k: int) -> dict:
        first, second = _texts(task, examples[:k], loaded.is_decoder)
        enc = tokenizer(first, second, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")
        return {key: v.to(device) for key, v in enc.items()}

    def passes(k: int) -> int:
        enc = encode(k)
        model(**enc, labels=torch.zeros(len(enc["input_ids"]), dtype=torch.long, device=device)).loss.backward()
        return int(enc["attention_mask"].sum())

    def update() -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def score(k: int) -> int:
        enc = encode(k)
        with torch.no_grad():
            model(**enc)
        return int(enc["attention_mask"].sum())

    model.train()
    passes(2), update()  # warm-up: the first step allocates
    big = max(2, min(cfg.train.batch_size, CALIBRATION_BATCH))
    # a pass costs a part that does not grow with the tokens (reading every weight) and a part that
    # does: timed on one example and on a training batch, the faster of two each, they split apart
    (tok1, s1), (tok2, s2) = (_best(lambda k=k: passes(k), device, on_cpu) for k in (1, big))
    _, opt_s = _best(update, device, on_cpu)
    per_token = max((s2 - s1) / max(tok2 - tok1, 1), 1e-9) if tok2 > tok1 else s2 / max(tok2, 1)
    fixed = max(s1 - per_token * tok1, 0.0)
    model.eval()
    eval_size = AutoBatch.of(cfg.eval.batch_size, device).size
    scored, eval_s = _best(lambda: score(min(eval_size, CALIBRATION_EVAL)), device, on_cpu)
    train_rate = approx_flops(n, n, 1, True) / per_token
    eval_rate = approx_flops(n, 0, scored, False) / max(eval_s, 1e-6)
    return Machine(load_s, STEP_S + fixed, opt_s / n, train_rate, eval_rate,
                   f"the speed calibrated here ({cfg.model} on {device.type}: {train_rate / 1e9:.0f} GFLOP/s "
                   f"training, {eval_rate / 1e9:.0f} scoring, {n_threads} thread{'s' if n_threads > 1 else ''})")


@dataclass(frozen=True)
class Seen:
    """A finished run's load, training and evaluation: their seconds and their recorded work."""

    device: str | None
    load_s: float
    train_s: float
    eval_s: float
    work: Work


def record_work(rec) -> tuple[str, Seen] | None:
    """(model, its parts) of a finished run, from its record (None where it lacks the counts)."""
    res, c = rec.resources, rec.config or {}
    if res is None:
        return None
    counts = (res.train_steps, res.params_trainable, res.train_flops_approx, res.eval_flops_approx)
    if any(x is None for x in counts):
        return None
    device = str((rec.env or {}).get("device") or "").split(":")[0] or None
    try:
        load_s, train_s, eval_s = (part_seconds(res, p, device == "cpu") for p in ("load", "train", "eval"))
    except (TypeError, ValueError):
        return None
    steps = 0.0 if (c.get("method") or {}).get("name") == "head" else float(res.train_steps)  # (pricing.training)
    work = Work(loads=1, steps=steps, step_params=steps * res.params_trainable,
                train_flops=float(res.train_flops_approx), eval_flops=float(res.eval_flops_approx))
    return c.get("model"), Seen(device, load_s, train_s, eval_s, work)


def fit(seen: list[Seen], shape: Machine, how: str) -> Machine:
    """The machine that prices finished runs' parts as they took: a load their mean load; scoring their
    forward FLOPs over their evaluation seconds; training the non-negative least-squares split of their
    training seconds over steps, trainable parameters stepped and FLOPs where their work varies in all
    three (at least 4 runs), else `shape`'s split scaled to their training seconds."""
    import numpy as np
    from scipy.optimize import nnls

    load_s = sum(x.load_s for x in seen) / len(seen)
    flops, secs = sum(x.work.eval_flops for x in seen), sum(x.eval_s for x in seen)
    eval_rate = flops / secs if flops > 0 and secs > 0 else shape.eval_rate
    trained = [x for x in seen if x.work.steps > 0]
    X = np.array([[x.work.steps, x.work.step_params, x.work.train_flops] for x in trained]).reshape(-1, 3)
    y = np.array([x.train_s for x in trained])
    scale = np.where(X.max(0) > 0, X.max(0), 1.0)
    if len(trained) >= 4 and np.linalg.matrix_rank(X / scale, tol=1e-3) == 3:
        coef = nnls(X / scale, y)[0] / scale
        if coef[2] > 0:
            return Machine(load_s, float(coef[0]), float(coef[1]), float(1 / coef[2]), eval_rate, how)
    predicted = sum(shape.seconds(Work(steps=x.work.steps, step_params=x.work.step_params,
                                       train_flops=x.work.train_flops)) for x in trained)
    k = float(y.sum()) / predicted if predicted > 0 and y.sum() > 0 else 1.0
    return Machine(load_s, shape.step_s * k, shape.param_step_s * k, shape.train_rate / k, eval_rate, how)


class Pricer:
    """First-principles prices for `estimate.Costs`: a run's work (`pricing.run_work`,
    `pricing.selection_work`) at this machine's speed for its model: fitted to the finished runs of
    the model on the device (`learn`, `fit`) where there are any, else calibrated here once per model
    and device (`calibrate`; `TINY` for a tiny test model). `machine` fixes the speed (tests); with
    finished runs it is the shape that `fit` scales. `calibrate=False` takes the default speed of
    the device instead of calibrating (the time left a running sweep prints: no model is loaded in
    its process to price the next)."""

    def __init__(self, machine: Machine | None = None, calibrate: bool = True):
        self.fixed, self.calibrates = machine, calibrate
        self.calibrated: dict[tuple, Machine] = {}
        self.seen: dict[str, list[Seen]] = defaultdict(list)
        self.fitted: dict[tuple, Machine] = {}

    def learn(self, rec) -> None:
        got = record_work(rec)
        if got is not None:
            self.seen[got[0]].append(got[1])
            self.fitted = {k: m for k, m in self.fitted.items() if k[0] != got[0]}

    def machine(self, cfg) -> tuple[Machine, int]:
        """The speed `cfg`'s work is priced at, and the number of finished runs it was fitted to."""
        from tuneoff.pipeline import pick_device

        device = pick_device(cfg.device).type
        seen = [x for x in self.seen.get(cfg.model, []) if x.device in (None, device)]
        if not seen:
            return self.fixed or self._calibrated(cfg, device), 0
        if (cfg.model, device) not in self.fitted:
            shape = self.fixed or (TINY if cfg.model in models.TINY else DEFAULT[device])
            self.fitted[(cfg.model, device)] = fit(seen, shape, f"the speed of {len(seen)} finished run(s) of "
                                                                 f"{cfg.model}")
        return self.fitted[(cfg.model, device)], len(seen)

    def _calibrated(self, cfg, device: str) -> Machine:
        key = (cfg.model, device, cfg.threads)
        if key not in self.calibrated:
            self.calibrated[key] = self._measure(cfg, device)
        return self.calibrated[key]

    def _measure(self, cfg, device: str) -> Machine:
        if cfg.model in models.TINY:
            return TINY
        if not self.calibrates:
            return DEFAULT[device]
        if cfg.model in models.EMBEDDED and models.needs_dequantising(cfg.model):
            return DEFAULT[device]  # calibrating would dequantise it first (some 20 s), which a dry run does not
        if cfg.model not in models.EMBEDDED and not Path(models.resolve(cfg.model)).is_dir():
            return DEFAULT[device]  # a hub id: loading its weights could download them, which a dry run does not
        task, pool, _ = task_data(cfg.task, cfg.data_dir, (), None)
        try:
            return calibrate(cfg, task, pool[:max(CALIBRATION_BATCH, CALIBRATION_EVAL)])
        except Exception as e:  # noqa: BLE001 - a price is never worth failing a dry run for
            return replace(DEFAULT[device], how=f"{DEFAULT[device].how}; calibration failed: {e}"[:200])

    def _price(self, cfg, work: Work, what: str) -> tuple[float, str]:
        """Seconds of `work` and how they were priced (`what`: the work in words)."""
        machine, runs = self.machine(cfg)
        kind = "scaled" if runs else "first principles"
        return machine.seconds(work), f"{kind}: {what} at {machine.how}"

    def parts(self, run) -> tuple[float, str]:
        """The run's own parts (load, set-up, training, evaluation, forgetting): seconds and basis."""
        inp = inputs(run)
        work = run_work(run, inp)
        return self._price(run, work, _what(inp, work))

    def selection(self, run) -> tuple[float, str, float]:
        """The run's selection, made in full: seconds, basis, up to how many times more (edge rule)."""
        inp = inputs(run)
        work, extra = selection_work(run, inp)
        seconds, how = self._price(run, work, f"{work.loads:.0f} fits, {_what(inp, work)}")
        more = 1.0 + (self._price(run, extra, "")[0] / seconds if extra.loads and seconds > 0 else 0.0)
        return seconds, how, more


def _what(inp: Inputs, work: Work) -> str:
    steps = f", {work.steps:.0f} steps" if work.steps else ""
    return f"its work ({inp.tokens:.0f} tokens per example{steps}, {work.flops:.2g} FLOPs)"


__all__ = ["Machine", "Pricer", "TINY", "DEFAULT", "Unknown", "calibrate", "record_work"]
