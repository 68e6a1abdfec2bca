"""Choosing a run's hyperparameters from its few-shot labels alone, the same way for every method.

Every candidate of the method's search space is trained on each fold's training part (or the
whole few-shot set, under the dev protocol) with the run's own training settings and seed, and
scored by the one evaluator on the held-out part, on the task's main metric. The choice is the
best mean fold score; ties go to the lower mean held-out log-loss, then to the earlier candidate.
A candidate whose training diverges (a NaN or infinite loss or score) is recorded and never chosen.
No eval set is loaded before the choice is made: only the train pool is read here.

Under the frugal budget the choice is made on the reference split (the first data seed) and every
other split of the same task, model, method and shots reuses it: its fits are found in the fit
cache, so they cost nothing again. The cost recorded with each run is the whole selection's (the
wall and CPU time its fits took when they ran), so every split of a method carries the same cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tuneoff.config import RunConfig, candidates, label
from tuneoff.data import DataError, checksum
from tuneoff.identity import fit_ids
from tuneoff.pipeline import RunData, Scored, Toolbox, fit_and_score
from tuneoff.selection.cache import FitCache, NoCache
from tuneoff.selection.folds import Fold, cv_folds, dev_split


class SelectionError(RuntimeError):
    """Selection could not choose (every candidate diverged, or a fold cannot be built)."""


@dataclass
class Selection:
    chosen: dict      # the chosen values, dotted keys
    record: dict      # the whole trace, stored with the run under "selection"
    cost: dict        # time_s, cpu_s, train_tokens, eval_tokens, flops_approx, fits, fits_reused
    labelled: set     # ids of every labelled example the choice used (few-shot split, dev split)


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


def _summary(values: dict, fits: list[dict]) -> dict:
    diverged = any(f["diverged"] for f in fits)
    scores = [f["score"] for f in fits if not f["diverged"]]
    losses = [f["loss"] for f in fits if not f["diverged"]]
    return {"values": values, "label": label(values), "diverged": diverged,
            "error": next((f["error"] for f in fits if f["diverged"]), None),
            "fold_scores": [f["score"] for f in fits], "fold_losses": [f["loss"] for f in fits],
            "mean_score": None if diverged else float(np.mean(scores)),
            "mean_loss": None if diverged else float(np.mean(losses)),
            "fits_reused": sum(f["reused"] for f in fits)}


def choose(rows: list[dict]) -> int:
    """Index of the best candidate: highest mean fold score, then lowest mean loss, then first."""
    ok = [i for i, r in enumerate(rows) if not r["diverged"] and r["mean_score"] is not None
          and math.isfinite(r["mean_score"])]
    if not ok:
        raise SelectionError("every candidate diverged during selection: "
                             + "; ".join(f"{r['label']}: {r['error']}" for r in rows)
                             + ". Give smaller values in select (e.g. select.train.lr=[...])")
    return min(ok, key=lambda i: (-rows[i]["mean_score"], rows[i]["mean_loss"], i))


def _folds(cfg: RunConfig, data: RunData, seed: int) -> tuple[list[Fold], list[dict]]:
    """The folds to score on, and the extra labelled examples they cost (the dev split)."""
    if cfg.select.protocol == "cv":
        return cv_folds(data.few, cfg.folds(), seed), []
    try:
        dev = dev_split(data.pool, data.few, cfg.shots, seed, data.task)
    except DataError as e:
        raise SelectionError(f"select.protocol=dev draws {cfg.shots} more per class outside the few-shot set: "
                             f"{e}; use select.protocol=cv") from None
    return [Fold(data.few, dev)], dev


class _Cost:
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
class _Search:
    """One selection under way: what every candidate is fitted on, and where fits are kept."""

    toolbox: Toolbox
    cfg: RunConfig
    ref: int
    data: RunData
    folds: list[Fold]
    cache: FitCache | NoCache
    cost: _Cost
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
        return _summary(values, fits)


def select(cfg: RunConfig, cache: FitCache | NoCache | None = None, progress=None,
           toolbox: Toolbox | None = None) -> Selection:
    """Choose `cfg`'s hyperparameters on its (or, frugal, the reference split's) few-shot set."""
    s = cfg.select
    ref = s.reference_seed if s.budget == "frugal" and s.reference_seed is not None else cfg.data_seed
    toolbox = toolbox or Toolbox.shared()
    data = toolbox.split(cfg, data_seed=ref)
    folds, dev = _folds(cfg, data, ref)
    space = cfg.search_space()
    cands = candidates(space)
    search = _Search(toolbox, cfg, ref, data, folds, cache if cache is not None else NoCache(), _Cost(), progress)
    rows = [search.row(ci, values, len(cands)) for ci, values in enumerate(cands)]
    best = choose(rows)
    labelled = set(_ids(data.few)) | set(_ids(dev))
    cost = search.cost.total()
    record = {
        "protocol": s.protocol, "budget": s.budget, "metric": data.task.main_metric,
        "folds": len(folds) if s.protocol == "cv" else None, "fold_seed": ref,
        "reference_data_seed": ref, "shared": ref != cfg.data_seed,
        "space": space, "candidates": rows, "chosen": rows[best]["values"], "chosen_label": rows[best]["label"],
        "fold_sets": [f.describe() for f in folds],
        "dev": {"ids": _ids(dev), "checksum": checksum(_ids(dev)), "n": len(dev)} if dev else None,
        "labels_used": len(labelled), "cost": cost,
    }
    return Selection(rows[best]["values"], record, cost, labelled)
