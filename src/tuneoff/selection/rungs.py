"""One trial of the optuna search on every fold at once: each fold's model trains on the fold's
training part with a schedule planned for the length's horizon, and at each rung (a length in
epochs) every fold's held-out part is scored; after a rung the caller may stop the trial (pruning).

The folds advance together, rung by rung, so that a trial's mean fold score at a rung is known
before any fold trains past it: all of a trial's fold models are in memory at once. Scoring at a
rung draws no random number, so a trial scored at rungs trains exactly as one that is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuneoff.config import RunConfig
from tuneoff.pipeline import RunData, Scored, Toolbox, build_method, pick_device, score
from tuneoff.resources import Timer, approx_flops, count_parameters, train_cost
from tuneoff.selection.folds import Fold
from tuneoff.train import Training, TrainingDiverged, epoch_steps


@dataclass
class _FoldRun:
    fold: Fold
    method: object
    training: Training
    examples: list[dict]
    params: dict


@dataclass
class TrialCost:
    train_s: float = 0.0
    train_cpu_s: float = 0.0
    eval_s: float = 0.0
    eval_cpu_s: float = 0.0
    eval_tokens: int = 0
    eval_flops: float = 0.0
    runs: list = field(default_factory=list)

    def record(self) -> dict:
        tokens = sum(train_cost(r.params, r.training.stats)[0] for r in self.runs)
        flops = sum(train_cost(r.params, r.training.stats)[1] for r in self.runs) + self.eval_flops
        return {"train_tokens": tokens, "eval_tokens": self.eval_tokens, "train_time_s": round(self.train_s, 3),
                "eval_time_s": round(self.eval_s, 3), "train_cpu_s": round(self.train_cpu_s, 3),
                "eval_cpu_s": round(self.eval_cpu_s, 3), "flops_approx": flops}


def _rung_scores(runs: list[_FoldRun], metric: str, batch_size: int, cost: TrialCost) -> dict:
    """Every fold's held-out score and log-loss now; their means."""
    scores, losses = [], []
    with Timer() as t:
        for r in runs:
            metrics, probs, tokens = score(r.method, {"heldout": Scored(r.fold.heldout)}, batch_size)
            p = probs["heldout"]
            if not np.isfinite(p).all():
                raise TrainingDiverged("non-finite class scores on the held-out fold")
            gold = p[np.arange(len(p)), [ex["label"] for ex in r.fold.heldout]]
            scores.append(float(metrics["heldout"]["overall"][metric]))
            losses.append(float(-np.mean(np.log(np.clip(gold, 1e-12, None)))))
            cost.eval_tokens += tokens
            cost.eval_flops += approx_flops(r.params["params_total"], 0, tokens, False)
    cost.eval_s += t.seconds
    cost.eval_cpu_s += t.cpu_seconds
    return {"fold_scores": scores, "fold_losses": losses, "mean_score": float(np.mean(scores)),
            "mean_loss": float(np.mean(losses))}


def _start(toolbox: Toolbox, cand: RunConfig, data: RunData, folds: list[Fold]) -> list[_FoldRun]:
    device = pick_device(cand.device)
    runs = []
    for fold in folds:
        held = {ex["id"] for ex in fold.heldout}
        pool = [ex for ex in data.pool if ex["id"] not in held]
        method, _ = build_method(cand, data, fold.train, device, pool)
        examples = method.train_examples(fold.train)
        training = Training(method, examples, cand.train, cand.seed, toolbox.accelerator(device))
        runs.append(_FoldRun(fold, method, training, examples, count_parameters(method.model)))
    return runs


def fit_rungs(toolbox: Toolbox, cand: RunConfig, data: RunData, folds: list[Fold], rungs: list[float],
              go_on) -> dict:
    """Train `cand` (its `train.epochs` the horizon) on every fold, scoring all held-out folds at each
    of `rungs` (epochs); after each rung `go_on(rung_result, last)` says whether to go on (its answer
    after the last rung is not asked for a decision: it may only report).
    The trial's record: its rungs, its state (complete, pruned, diverged), its error and its cost."""
    cost, done = TrialCost(), []
    state, error = "complete", None
    runs: list[_FoldRun] = []
    try:
        with Timer() as t:
            runs = _start(toolbox, cand, data, folds)
        cost.runs = runs
        cost.train_s, cost.train_cpu_s = t.seconds, t.cpu_seconds
        for i, rung in enumerate(rungs):
            with Timer() as t:
                for r in runs:
                    r.training.run_until(epoch_steps(len(r.examples), cand.train, rung))
            cost.train_s += t.seconds
            cost.train_cpu_s += t.cpu_seconds
            got = {"length": rung, **_rung_scores(runs, data.task.main_metric, cand.eval.batch_size, cost)}
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
