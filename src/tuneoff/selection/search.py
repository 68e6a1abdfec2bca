"""Choosing a run's hyperparameters from its few-shot labels alone, the same way for every method.

Every candidate is trained on each fold's training part (or the whole few-shot set, under the dev
protocol) with the run's own training settings and seed, and scored by the one evaluator on the
held-out part, on the task's main metric. No eval set is loaded before the choice is made: only the
train pool is read here. Two searches (`select.search`):

- optuna (the default): ranges, the same number of trials for every method, the training length a
  fidelity with pruning, and the edge rule (`tuneoff.selection.study`);
- grid (the published protocol): every combination of the listed values at the configured length.
  The choice is the best mean fold score; ties go to the lower mean held-out log-loss, then to the
  earlier candidate.

A candidate whose training diverges (a NaN or infinite loss or score) is recorded and never chosen.
A selection whose every candidate scored at or below chance, the majority baseline on the same
held-out folds, still chooses, and its record says so (`chance`, `above_chance: false`, a `note`).
Under cross-validation on very small sets, several fold assignments (`select.repeats`) are scored, so
that one split does not decide.

Under the frugal budget the choice is made on the reference split (the first data seed) and every
other split of the same task, model, method and shots reuses it. The whole selection is kept in the
fit cache once made, and claimed while it is made, so several processes on one folder never compute
the same selection twice: the others wait for it (and take it over if its process dies; the trials
it finished are kept). The cost recorded with each run is the whole selection's (the wall and CPU
time its fits took when they ran), so every split of a method carries the same cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tuneoff.config import RunConfig, candidates
from tuneoff.data import DataError, checksum
from tuneoff.evaluate import majority_baseline
from tuneoff.metrics import not_better
from tuneoff.pipeline import RunData, Toolbox
from tuneoff.selection.cache import FitCache, NoCache
from tuneoff.selection.fits import Cost, Searcher, SelectionError
from tuneoff.selection.folds import Fold, cv_folds, dev_split
from tuneoff.selection.study import edges, spec_dict
from tuneoff.selection.tuning import optuna_search

__all__ = ["Selection", "SelectionError", "choose", "select"]


@dataclass
class Selection:
    chosen: dict      # the chosen values, dotted keys
    record: dict      # the whole trace, stored with the run under "selection"
    cost: dict        # time_s, cpu_s, train_tokens, eval_tokens, flops_approx, fits, fits_reused
    labelled: set     # ids of every labelled example the choice used (few-shot split, dev split)


def _ids(examples: list[dict]) -> list[str]:
    return [ex["id"] for ex in examples]


def choose(rows: list[dict]) -> int:
    """Index of the best candidate: highest mean fold score, then lowest mean loss, then first."""
    ok = [i for i, r in enumerate(rows) if not r["diverged"] and r["mean_score"] is not None
          and math.isfinite(r["mean_score"])]
    if not ok:
        raise SelectionError("every candidate diverged during selection: "
                             + "; ".join(f"{r['label']}: {r['error']}" for r in rows)
                             + ". Give smaller values in select (e.g. select.train.lr=[...])")
    return min(ok, key=lambda i: (-rows[i]["mean_score"], rows[i]["mean_loss"], i))


def _folds(cfg: RunConfig, data: RunData, seed: int) -> tuple[list[Fold], list[dict], int]:
    """The folds to score on (every repeat's), the extra labelled examples they cost (the dev split),
    and the number of fold assignments."""
    if cfg.select.protocol == "cv":
        repeats = cfg.select.repeats_for(cfg.shots)
        # the first assignment is the one a single split always drew; each further one has its own seed
        folds = [f for r in range(repeats) for f in cv_folds(data.few, cfg.folds(), seed if r == 0 else seed + 7919 * r)]
        return folds, [], repeats
    try:
        dev = dev_split(data.pool, data.few, cfg.shots, seed, data.task)
    except DataError as e:
        raise SelectionError(f"select.protocol=dev draws {cfg.shots} more per class outside the few-shot set: "
                             f"{e}; use select.protocol=cv") from None
    return [Fold(data.few, dev)], dev, 1


NO_CHANCE = "no candidate above chance on its folds"  # as the report and terminal say it (`report.runflags`)


def chance(found: dict, folds: list[Fold], metric: str, num_labels: int) -> dict:
    """Whether any candidate beat chance on its held-out folds: the majority baseline (always the most
    frequent label of each held-out fold) scored on the selection's metric, averaged over the folds as
    a candidate's score is. The record's `chance`, `above_chance` and, where none did, a `note`."""
    level = float(np.mean([majority_baseline([ex["label"] for ex in f.heldout], num_labels)[metric] for f in folds]))
    means = [r["mean_score"] for r in found["candidates"]
             if not r["diverged"] and r["mean_score"] is not None and math.isfinite(r["mean_score"])]
    above = any(not not_better(metric, m, level) for m in means)
    out = {"chance": level, "above_chance": above}
    if not above:
        out["note"] = (f"{NO_CHANCE}: every candidate's mean held-out {metric} was at or below {level:.3f}, the "
                       "majority baseline's on the same folds; the choice is the best of them, not a setting shown "
                       "to learn")
    return out


def _grid(search: Searcher) -> dict:
    space = search.cfg.search_space()
    cands = candidates(space)
    rows = [search.row(ci, values, len(cands)) for ci, values in enumerate(cands)]
    best = choose(rows)
    chosen = rows[best]["values"]
    trial = {"values": chosen}
    return {"candidates": rows, "chosen": chosen, "chosen_label": rows[best]["label"],
            "edges": {k: {"side": v, "value": chosen.get(k), "extendable": False}
                      for k, v in edges(space, None, trial, {}).items()}}


def selection_key(cfg: RunConfig, ref: int) -> str:
    """The key a whole selection is kept and claimed under: the reference split's run id."""
    return "selection:" + cfg.model_copy(update={"data_seed": ref}).run_id()


def select(cfg: RunConfig, cache: FitCache | NoCache | None = None, progress=None,
           toolbox: Toolbox | None = None) -> Selection:
    """Choose `cfg`'s hyperparameters on its (or, frugal, the reference split's) few-shot set."""
    s = cfg.select
    ref = s.reference_seed if s.budget == "frugal" and s.reference_seed is not None else cfg.data_seed
    cache = cache if cache is not None else NoCache()
    key = selection_key(cfg, ref)
    with cache.claimed(key, progress) as kept:
        if kept is not None:
            return _reused(kept, cfg, ref)
        made = _make(cfg, ref, cache, progress, toolbox or Toolbox.shared())
        cache.put(key, {"record": made.record, "chosen": made.chosen, "labelled": sorted(made.labelled)})
    return made


def _reused(kept: dict, cfg: RunConfig, ref: int) -> Selection:
    """A selection made before (by this run's reference split, or by another process)."""
    record = {**kept["record"], "shared": ref != cfg.data_seed}
    return Selection(kept["chosen"], record, record["cost"], set(kept["labelled"]))


def _make(cfg: RunConfig, ref: int, cache, progress, toolbox: Toolbox) -> Selection:
    s = cfg.select
    data = toolbox.split(cfg, data_seed=ref)
    folds, dev, repeats = _folds(cfg, data, ref)
    search = Searcher(toolbox, cfg, ref, data, folds, cache, Cost(), progress)
    if s.search == "grid":
        found = _grid(search)
    else:
        found = optuna_search(search, cfg.search_space(), cfg.search_length())
    labelled = set(_ids(data.few)) | set(_ids(dev))
    cost = search.cost.total()
    record = {
        "search": s.search, "protocol": s.protocol, "budget": s.budget, "metric": data.task.main_metric,
        "folds": cfg.folds() if s.protocol == "cv" else None, "repeats": repeats, "fold_seed": ref,
        "reference_data_seed": ref, "shared": ref != cfg.data_seed, "space": spec_dict(cfg.search_space()),
        **found, **chance(found, folds, data.task.main_metric, data.task.num_labels),
        "fold_sets": [f.describe() for f in folds],
        "dev": {"ids": _ids(dev), "checksum": checksum(_ids(dev)), "n": len(dev)} if dev else None,
        "labels_used": len(labelled), "cost": cost,
    }
    return Selection(found["chosen"], record, cost, labelled)
