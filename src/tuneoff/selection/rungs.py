"""One trial of the optuna search on every fold at once: each fold's model trains on the fold's
training part with a schedule planned for the length's horizon, and at each rung (a length in
epochs) every fold's held-out part is scored; after a rung the caller may stop the trial (pruning).

With several rungs the folds advance together, rung by rung, so that a trial's mean fold score at a
rung is known before any fold trains past it (the asynchronous pruner decides there): all of a
trial's fold models are in memory at once. With one rung (every fit of the synchronous pruner,
which retrains a promoted trial from the start) nothing is decided inside the fit, so the folds
train one after another and one fold's model is in memory at a time: each fold then trains exactly
as its plain fit would (`fits.fit`), and the peak memory is one fold's, not one per fold. Scoring
at a rung draws no random number, so a trial scored at rungs trains exactly as one that is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuneoff.config import RunConfig
from tuneoff.identity import digest, fit_ids
from tuneoff.pipeline import RunData, Scored, Toolbox, build_method, pick_device, score
from tuneoff.resources import Timer, approx_flops, count_parameters, train_cost
from tuneoff.selection.folds import Fold
from tuneoff.resume import ResumePoint, point_under
from tuneoff.train import Training, TrainingDiverged, epoch_steps


@dataclass
class _FoldRun:
    fold: Fold
    method: object
    training: Training
    examples: list[dict]
    params: dict


FOLD_PARTS = ("train_s", "train_cpu_s", "eval_s", "eval_cpu_s", "eval_tokens", "eval_flops")  # additive


@dataclass
class TrialCost:
    train_s: float = 0.0
    train_cpu_s: float = 0.0
    eval_s: float = 0.0
    eval_cpu_s: float = 0.0
    eval_tokens: int = 0
    eval_flops: float = 0.0
    runs: list = field(default_factory=list)
    counted: list = field(default_factory=list)  # (tokens, FLOPs) of training not held in `runs`

    def parts(self) -> dict:
        """The cost as parts that add up over folds (as a fold is kept in the fit cache)."""
        counts = [train_cost(r.params, r.training.stats) for r in self.runs] + self.counted
        return {**{p: getattr(self, p) for p in FOLD_PARTS}, "train_tokens": sum(c[0] for c in counts),
                "train_flops": sum(c[1] for c in counts)}

    def add(self, parts: dict) -> None:
        """Add another's `parts` (a fold's) to this cost."""
        for p in FOLD_PARTS:
            setattr(self, p, getattr(self, p) + parts[p])
        self.counted.append((parts["train_tokens"], parts["train_flops"]))

    def record(self) -> dict:
        got = self.parts()
        return {"train_tokens": got["train_tokens"], "eval_tokens": self.eval_tokens,
                "train_time_s": round(self.train_s, 3), "eval_time_s": round(self.eval_s, 3),
                "train_cpu_s": round(self.train_cpu_s, 3), "eval_cpu_s": round(self.eval_cpu_s, 3),
                "flops_approx": got["train_flops"] + self.eval_flops}


def _fold_score(r: _FoldRun, metric: str, batch_size: int, cost: TrialCost) -> tuple[float, float]:
    """A fold's held-out score and log-loss now."""
    with Timer() as t:
        metrics, probs, tokens = score(r.method, {"heldout": Scored(r.fold.heldout)}, batch_size)
    cost.eval_s += t.seconds
    cost.eval_cpu_s += t.cpu_seconds
    cost.eval_tokens += tokens
    cost.eval_flops += approx_flops(r.params["params_total"], 0, tokens, False)
    p = probs["heldout"]
    if not np.isfinite(p).all():
        raise TrainingDiverged("non-finite class scores on the held-out fold")
    gold = p[np.arange(len(p)), [ex["label"] for ex in r.fold.heldout]]
    return float(metrics["heldout"]["overall"][metric]), float(-np.mean(np.log(np.clip(gold, 1e-12, None))))


def _rung(length, scored: list[tuple[float, float]]) -> dict:
    """A rung's record from every fold's (score, log-loss): the fold scores and their means."""
    scores, losses = [s for s, _ in scored], [x for _, x in scored]
    return {"length": length, "fold_scores": scores, "fold_losses": losses, "mean_score": float(np.mean(scores)),
            "mean_loss": float(np.mean(losses))}


def _start(toolbox: Toolbox, cand: RunConfig, data: RunData, folds: list[Fold],
           resume: ResumePoint | None = None) -> list[_FoldRun]:
    device = pick_device(cand.device)
    runs = []
    for fold in folds:
        held = {ex["id"] for ex in fold.heldout}
        pool = [ex for ex in data.pool if ex["id"] not in held]
        method, _ = build_method(cand, data, fold.train, device, pool)
        examples = method.train_examples(fold.train)
        training = Training(method, examples, cand.train, cand.seed, toolbox.accelerator(device), resume=resume)
        runs.append(_FoldRun(fold, method, training, examples, count_parameters(method.model)))
    return runs


def _train(runs: list[_FoldRun], cand: RunConfig, rung: float, cost: TrialCost) -> None:
    with Timer() as t:
        for r in runs:
            r.training.run_until(epoch_steps(len(r.examples), cand.train, rung))
    cost.train_s += t.seconds
    cost.train_cpu_s += t.cpu_seconds


def fit_rungs(toolbox: Toolbox, cand: RunConfig, data: RunData, folds: list[Fold], rungs: list[float],
              go_on, kept=None, on_fold=None) -> dict:
    """Train `cand` (its `train.epochs` the horizon) on every fold, scoring all held-out folds at each
    of `rungs` (epochs); after each rung `go_on(rung_result, last)` says whether to go on (its answer
    after the last rung is not asked for a decision: it may only report).
    The trial's record: its rungs, its state (complete, pruned, diverged), its error and its cost.
    `kept` (a `cache.FitCache`) keeps each fold of a one-rung fit as it finishes (`fold_key`), so a
    trial stopped between its folds resumes from the folds it finished; `on_fold(reused)` is told as
    each of its folds is done (trained, or taken from `kept`), so progress moves within a long fit."""
    if len(rungs) == 1:
        return _one_rung(toolbox, cand, data, folds, rungs[0], go_on, kept, on_fold)
    cost, done = TrialCost(), []
    state, error = "complete", None
    runs: list[_FoldRun] = []
    metric, batch = data.task.main_metric, cand.eval.batch_size
    try:
        with Timer() as t:
            runs = _start(toolbox, cand, data, folds)
        cost.runs = runs
        cost.train_s, cost.train_cpu_s = t.seconds, t.cpu_seconds
        for i, rung in enumerate(rungs):
            _train(runs, cand, rung, cost)
            got = _rung(rung, [_fold_score(r, metric, batch, cost) for r in runs])
            done.append(got)
            if not go_on(got, i == len(rungs) - 1):
                state = "pruned"
                break
    except TrainingDiverged as e:
        state, error = "diverged", str(e)
    finally:
        if runs:
            runs[0].training.close()  # one accelerator holds every fold's model: drop them all
    return {"rungs": done, "state": state, "error": error, **cost.record()}


def fold_key(cand: RunConfig, fold: Fold, rung: float) -> str:
    """The fit-cache key of one fold of a one-rung fit: the fold's fit (`fit_ids`: the candidate, its
    method's version, the examples of both parts) trained to `rung` of its schedule."""
    fit = fit_ids(cand, [ex["id"] for ex in fold.train], [ex["id"] for ex in fold.heldout])[0]
    return "fold:" + digest({"fit": fit, "rung": rung}, 20)


def _resume_point(kept, key: str | None, cand: RunConfig) -> ResumePoint | None:
    """Where a one-rung fold's training keeps its state (`tuneoff.resume`): beside the fit cache,
    under the fold's key; none without a cache to keep the fold in."""
    folder = getattr(kept, "path", None)
    if key is None or folder is None:
        return None
    return point_under(folder.parent, key, cand.train.resume_every, key)


def _one_rung(toolbox: Toolbox, cand: RunConfig, data: RunData, folds: list[Fold], rung: float, go_on,
              kept=None, on_fold=None) -> dict:
    """`fit_rungs` at one rung: the folds one after another, each fold's model dropped before the
    next is built (nothing is decided between them); each finished fold kept in `kept`, and a fold
    found there taken from it at what it cost when it ran."""
    cost, scored = TrialCost(), []
    state, error = "complete", None
    for fold in folds:
        key = fold_key(cand, fold, rung) if kept is not None else None
        got = kept.get([key]) if key is not None else None
        reused = got is not None
        if got is None:
            one, runs = TrialCost(), []  # the last fold's model let go here, before this one's is built
            resume = _resume_point(kept, key, cand)
            try:
                with Timer() as t:
                    runs = one.runs = _start(toolbox, cand, data, [fold], resume)
                one.train_s, one.train_cpu_s = t.seconds, t.cpu_seconds
                _train(runs, cand, rung, one)
                stats = runs[0].training.stats
                if stats.resumed_step:
                    carried_s, carried_cpu_s = stats.carried
                    one.train_s, one.train_cpu_s = one.train_s + carried_s, one.train_cpu_s + carried_cpu_s
                fold_score, fold_loss = _fold_score(runs[0], data.task.main_metric, cand.eval.batch_size, one)
            except TrainingDiverged as e:
                if resume is not None:
                    resume.clear()  # kept as diverged: never trained again
                cost.add(one.parts())
                state, error = "diverged", str(e)
                if on_fold is not None:
                    on_fold(False)  # it trained until it diverged; the folds after it train nothing
                break
            finally:
                if runs:
                    runs[0].training.close()
            got = {"score": fold_score, "loss": fold_loss, **one.parts()}
            if key is not None:
                kept.put(key, got)
            if resume is not None:
                resume.clear()  # the fold is kept: its training's state is no longer needed
        cost.add(got)
        scored.append((got["score"], got["loss"]))
        if on_fold is not None:
            on_fold(reused)
    done = [] if state == "diverged" else [_rung(rung, scored)]
    if done:
        go_on(done[0], True)  # after the last rung: it may only report
    return {"rungs": done, "state": state, "error": error, **cost.record()}
