"""A selection's fits: one candidate trained on a fold's training part and scored on its held-out
part (`fit`), a candidate over every fold (`Searcher.row`, a kept fit reused), and what they cost."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneoff.config import RunConfig, label
from tuneoff.identity import fit_ids
from tuneoff.pipeline import RunData, Scored, Toolbox, fit_and_score
from tuneoff.selection.cache import FitCache, NoCache
from tuneoff.selection.folds import Fold


class SelectionError(RuntimeError):
    """Selection could not choose (every candidate diverged, or a fold cannot be built)."""


def _ids(examples: list[dict]) -> list[str]:
    return [ex["id"] for ex in examples]


def fit(toolbox: Toolbox, cand: RunConfig, data: RunData, fold: Fold, metric: str) -> dict:
    """Train one candidate on a fold's training part and score it on the held-out part: the fit's
    record (score, held-out log-loss, predicted labels, its time and compute)."""
    held = {ex["id"] for ex in fold.heldout}
    pool = [ex for ex in data.pool if ex["id"] not in held]
    got = fit_and_score(toolbox, cand, data, fold.train, {"heldout": Scored(fold.heldout)}, pool=pool)
    t_train, t_eval = got.timers["train"], got.timers["eval"]
    out: dict = {"diverged": False, "error": None, "train_tokens": got.train_tokens,
                 "eval_tokens": got.eval_tokens, "train_time_s": round(t_train.seconds, 3),
                 "eval_time_s": round(t_eval.seconds, 3), "train_cpu_s": round(t_train.cpu_seconds, 3),
                 "eval_cpu_s": round(t_eval.cpu_seconds, 3), "flops_approx": got.train_flops + got.eval_flops}
    probs = got.probs.get("heldout")
    if got.diverged is None and not np.isfinite(probs).all():
        got.diverged = "non-finite class scores on the held-out fold"
    if got.diverged is not None:
        return {**out, "diverged": True, "error": str(got.diverged), "score": None, "loss": None}
    overall = got.metrics["heldout"]["overall"]
    gold = probs[np.arange(len(probs)), [ex["label"] for ex in fold.heldout]]
    return {**out, "score": float(overall[metric]), "loss": float(-np.mean(np.log(np.clip(gold, 1e-12, None)))),
            "pred_dist": overall["pred_dist"]}


def summary(values: dict, fits: list[dict]) -> dict:
    diverged = any(f["diverged"] for f in fits)
    scores = [f["score"] for f in fits if not f["diverged"]]
    losses = [f["loss"] for f in fits if not f["diverged"]]
    return {"values": values, "label": label(values), "diverged": diverged,
            "error": next((f["error"] for f in fits if f["diverged"]), None),
            "fold_scores": [f["score"] for f in fits], "fold_losses": [f["loss"] for f in fits],
            "mean_score": None if diverged else float(np.mean(scores)),
            "mean_loss": None if diverged else float(np.mean(losses)),
            "fits_reused": sum(f["reused"] for f in fits)}


class Cost:
    """What a selection's fits cost, added up as they come (reused ones at what they cost when they ran)."""

    def __init__(self):
        self.sums = {"time_s": 0.0, "cpu_s": 0.0, "train_tokens": 0, "eval_tokens": 0, "flops_approx": 0.0}
        self.fits = self.reused = 0

    def add(self, got: dict, reused: bool) -> None:
        self.fits += 1
        self.reused += reused
        self.sums["time_s"] += got["train_time_s"] + got["eval_time_s"]
        # fits cached before CPU time was recorded count their wall time
        self.sums["cpu_s"] += got.get("train_cpu_s", got["train_time_s"]) + got.get("eval_cpu_s", got["eval_time_s"])
        for k in ("train_tokens", "eval_tokens", "flops_approx"):
            self.sums[k] += got[k]

    def total(self) -> dict:
        return {**self.sums, "time_s": round(self.sums["time_s"], 3), "cpu_s": round(self.sums["cpu_s"], 3),
                "fits": self.fits, "fits_reused": self.reused}


@dataclass
class Searcher:
    """One selection under way: what every candidate is fitted on, and where fits are kept."""

    toolbox: Toolbox
    cfg: RunConfig
    ref: int
    data: RunData
    folds: list[Fold]
    cache: FitCache | NoCache
    cost: Cost
    progress: object = None

    def row(self, ci: int, values: dict, n_cands: int) -> dict:
        """The candidate `values` fitted on every fold (a cached fit reused), summarised."""
        cand, fits, folds = self.cfg.candidate(values, data_seed=self.ref), [], self.folds
        for fi, fold in enumerate(folds):
            if self.progress:
                self.progress("select", ci * len(folds) + fi, n_cands * len(folds))
            keys = fit_ids(cand, _ids(fold.train), _ids(fold.heldout))
            got = self.cache.get(keys)
            was_cached = got is not None
            if got is None:
                try:
                    got = fit(self.toolbox, cand, self.data, fold, self.data.task.main_metric)
                except ValueError as e:  # MethodError, DataError: every candidate would fail alike
                    raise SelectionError(f"selection fit of {label(values)} on fold {fi + 1} of {len(folds)} "
                                         f"({len(fold.train)} training examples): {type(e).__name__}: {e}") from None
                self.cache.put(keys[0], got)
            fits.append({**got, "reused": was_cached})
            self.cost.add(got, was_cached)
            if got["diverged"]:
                break  # never chosen: its other folds are not needed
        return summary(values, fits)


