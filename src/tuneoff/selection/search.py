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

from tuneoff.config import RunConfig
from tuneoff.data import checksum
from tuneoff.evaluate import eval_metrics, predict
from tuneoff.resources import Timer, approx_flops, count_parameters, train_cost
from tuneoff.selection.cache import FitCache, NoCache, fit_id
from tuneoff.selection.folds import Fold, cv_folds, dev_split
from tuneoff.selection.options import candidates, label


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


def fit(cand: RunConfig, task, pool: list[dict], fold: Fold, metric: str) -> dict:
    """Train one candidate on a fold's training part and score it on the held-out part."""
    from tuneoff import runner  # late: the runner imports this module
    from tuneoff.train import TrainingDiverged, train

    held = set(_ids(fold.heldout))
    method = runner.build_method(cand, task, [ex for ex in pool if ex["id"] not in held], fold.train)
    accelerator = runner.accelerator_for(method.ctx.device)
    out: dict = {"diverged": False, "error": None, "train_tokens": 0, "eval_tokens": 0}
    stats = None
    try:
        with Timer() as t_train:
            if method.trains:
                stats = train(method, method.train_examples(fold.train), cand.train, cand.seed, accelerator)
        with Timer() as t_eval:
            probs, out["eval_tokens"] = predict(method, fold.heldout, cand.eval.batch_size, method.ctx.device)
        out["train_time_s"], out["eval_time_s"] = round(t_train.seconds, 3), round(t_eval.seconds, 3)
        out["train_cpu_s"], out["eval_cpu_s"] = round(t_train.cpu_seconds, 3), round(t_eval.cpu_seconds, 3)
        if not np.isfinite(probs).all():
            raise TrainingDiverged("non-finite class scores on the held-out fold")
        m = eval_metrics(fold.heldout, probs, task.label_names)
        gold = probs[np.arange(len(probs)), [ex["label"] for ex in fold.heldout]]
        out["score"] = float(m["overall"][metric])
        out["loss"] = float(-np.mean(np.log(np.clip(gold, 1e-12, None))))
        out["pred_dist"] = m["overall"]["pred_dist"]
    except TrainingDiverged as e:
        out.update(diverged=True, error=str(e), score=None, loss=None)
        out.setdefault("train_time_s", round(t_train.seconds, 3))
        out.setdefault("train_cpu_s", round(t_train.cpu_seconds, 3))
        out.setdefault("eval_time_s", 0.0)
        out.setdefault("eval_cpu_s", 0.0)
    params = count_parameters(method.model)
    out["train_tokens"], train_flops = train_cost(params, stats)
    out["flops_approx"] = train_flops + approx_flops(params["params_total"], 0, out["eval_tokens"], False)
    runner.release(accelerator)  # the shared accelerator would otherwise keep every fit's model alive
    return out


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


def _folds(cfg: RunConfig, task, pool, few, seed: int) -> tuple[list[Fold], list[dict]]:
    """The folds to score on, and the extra labelled examples they cost (the dev split)."""
    if cfg.select.protocol == "cv":
        return cv_folds(few, cfg.folds(), seed), []
    from tuneoff.data import DataError

    try:
        dev = dev_split(pool, few, cfg.shots, seed, task)
    except DataError as e:
        raise SelectionError(f"select.protocol=dev draws {cfg.shots} more per class outside the few-shot set: "
                             f"{e}; use select.protocol=cv") from None
    return [Fold(few, dev)], dev


def select(cfg: RunConfig, cache: FitCache | NoCache | None = None, progress=None) -> Selection:
    """Choose `cfg`'s hyperparameters on its (or, frugal, the reference split's) few-shot set."""
    from tuneoff import runner

    s = cfg.select
    ref = s.reference_seed if s.budget == "frugal" and s.reference_seed is not None else cfg.data_seed
    cache = cache if cache is not None else NoCache()
    task, pool, few = runner.load_split(cfg, data_seed=ref)
    folds, dev = _folds(cfg, task, pool, few, ref)
    space = cfg.search_space()
    cands = candidates(space)
    rows, fits_total, reused, cost = [], 0, 0, {"time_s": 0.0, "cpu_s": 0.0, "train_tokens": 0, "eval_tokens": 0,
                                       "flops_approx": 0.0}
    for ci, values in enumerate(cands):
        cand = cfg.candidate(values, data_seed=ref)
        resolved = cand.resolved()
        fits = []
        for fi, fold in enumerate(folds):
            if progress:
                progress("select", ci * len(folds) + fi, len(cands) * len(folds))
            key = fit_id(resolved, _ids(fold.train), _ids(fold.heldout), cfg.method_version)
            got = cache.get(key)
            was_cached = got is not None
            if got is None:
                try:
                    got = fit(cand, task, pool, fold, task.main_metric)
                except ValueError as e:  # MethodError, DataError: every candidate would fail alike
                    raise SelectionError(f"selection fit of {label(values)} on fold {fi + 1} of {len(folds)} "
                                         f"({len(fold.train)} training examples): {type(e).__name__}: {e}") from None
                cache.put(key, got)
            fits.append({**got, "reused": was_cached})
            fits_total += 1
            reused += was_cached
            cost["time_s"] += got["train_time_s"] + got["eval_time_s"]
            # fits cached before CPU time was recorded count their wall time
            cost["cpu_s"] += got.get("train_cpu_s", got["train_time_s"]) + got.get("eval_cpu_s", got["eval_time_s"])
            for k in ("train_tokens", "eval_tokens", "flops_approx"):
                cost[k] += got[k]
            if got["diverged"]:
                break  # never chosen: its other folds are not needed
        rows.append(_summary(values, fits))
    best = choose(rows)
    labelled = set(_ids(few)) | set(_ids(dev))
    cost = {**cost, "time_s": round(cost["time_s"], 3), "cpu_s": round(cost["cpu_s"], 3), "fits": fits_total, "fits_reused": reused}
    record = {
        "protocol": s.protocol, "budget": s.budget, "metric": task.main_metric,
        "folds": len(folds) if s.protocol == "cv" else None, "fold_seed": ref,
        "reference_data_seed": ref, "shared": ref != cfg.data_seed,
        "space": space, "candidates": rows, "chosen": rows[best]["values"], "chosen_label": rows[best]["label"],
        "fold_sets": [f.describe() for f in folds],
        "dev": {"ids": _ids(dev), "checksum": checksum(_ids(dev)), "n": len(dev)} if dev else None,
        "labels_used": len(labelled), "cost": cost,
    }
    return Selection(rows[best]["values"], record, cost, labelled)
