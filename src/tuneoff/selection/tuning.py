"""The optuna search's loop (see `tuneoff.selection.study` for the procedure): rounds of trials, each
trial replayed from the fit cache when it was finished before, else trained rung by rung on every
fold with the pruner deciding after each rung."""
from __future__ import annotations

import optuna

from tuneoff.config import finite_points, label
from tuneoff.selection.fits import SelectionError, Searcher
from tuneoff.selection.rungs import fit_rungs
from tuneoff.selection.study import (KEYS, best_point, candidate_row, chosen_values, edges, extend,
                                     make_study, spec_dict, step_of, study_seed, suggest, trial_key)
from tuneoff.space import Length

# what the sampler and the pruner are told of a rung: the mean fold score, ties (frequent on a few
# held-out examples, e.g. every trial at MCC 0 before it learns) broken by the mean held-out log-loss,
# as the choice breaks them; too small to reorder two different scores
LOSS_TIE = 1e-6


def told(rung: dict) -> float:
    return rung["mean_score"] - LOSS_TIE * rung["mean_loss"]


class _Loop:
    def __init__(self, search: Searcher, length: Length | None):
        s = search.cfg.select
        self.search, self.s, self.length = search, s, length
        self.study = make_study(s.sampler, s.pruner, length, study_seed(search.ref, search.cfg.seed), s.trials)
        self.trials: list[dict] = []
        self.planned = s.trials

    def progress(self) -> None:
        if self.search.progress:
            self.search.progress("select", len(self.trials), self.planned)

    def run_trial(self, space: dict, length: Length | None, round_no: int, fixed: dict | None = None) -> None:
        if fixed is not None:  # a point of a finite space, tried in turn
            self.study.enqueue_trial(fixed)
        trial = self.study.ask()
        values = suggest(trial, space)
        if length is None:
            got = self._fixed_trial(values)
        else:
            got = self._rung_trial(trial, values, length)
        got.update(number=len(self.trials), round=round_no, values=values, label=label(values))
        self.trials.append(got)
        if got["state"] == "diverged":
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif got["state"] == "pruned":
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, max(told(r) for r in got["rungs"]))
        self.progress()

    def _fixed_trial(self, values: dict) -> dict:
        """A trial without rungs: the candidate fitted on every fold as the grid fits it."""
        row = self.search.row(len(self.trials), values, self.planned)
        rung = {"length": None, "fold_scores": row["fold_scores"], "fold_losses": row["fold_losses"],
                "mean_score": row["mean_score"], "mean_loss": row["mean_loss"]}
        return {"horizon": None, "state": "diverged" if row["diverged"] else "complete", "error": row["error"],
                "rungs": [] if row["diverged"] else [rung], "reused": row["fits_reused"] == len(self.search.folds)}

    def _rung_trial(self, trial: optuna.Trial, values: dict, length: Length) -> dict:
        search, rungs = self.search, length.rungs()
        cand = search.cfg.candidate({**values, "train.epochs": length.high}, data_seed=search.ref)
        key = trial_key(cand, search.folds, rungs)
        kept = search.cache.get([key])
        if kept is not None:
            self._replay(trial, kept, length)
            search.cost.add(kept, True)
            return {**kept, "horizon": length.high, "reused": True}

        def go_on(got: dict, last: bool) -> bool:
            trial.report(told(got), step_of(length, got["length"]))
            return True if last else not trial.should_prune()

        try:
            got = fit_rungs(search.toolbox, cand, search.data, search.folds, rungs, go_on)
        except ValueError as e:  # MethodError, DataError: every trial would fail alike
            raise SelectionError(f"selection trial {label(values)}: {type(e).__name__}: {e}") from None
        search.cache.put(key, got)
        search.cost.add(got, False)
        return {**got, "horizon": length.high, "reused": False}

    @staticmethod
    def _replay(trial: optuna.Trial, kept: dict, length: Length) -> None:
        """Report a kept trial's rungs to the pruner again, asking it where the trial first asked, so
        the study's history (and every later proposal and decision) is what it was."""
        last = len(length.rungs()) - 1
        for i, got in enumerate(kept["rungs"]):
            trial.report(told(got), step_of(length, got["length"]))
            if i < last:
                trial.should_prune()


def optuna_search(search: Searcher, space: dict, length: Length | None) -> dict:
    """Run the search; the record's parts that describe it and the choice."""
    s, loop = search.cfg.select, _Loop(search, length)
    rounds, extended, points = [], [], finite_points(space) if length is None else None
    exhaustive = points is not None and len(points) <= s.trials
    n, round_no = (len(points) if exhaustive else s.trials), 0
    loop.planned = n
    while True:
        rounds.append({"round": round_no, "trials": n, "space": spec_dict(space),
                       "length": None if length is None else length.to_dict()})
        for i in range(n):
            loop.run_trial(space, length, round_no, points[i] if exhaustive else None)
        best = best_point(loop.trials)
        if best is None:
            raise SelectionError("every trial diverged during selection: "
                                 + "; ".join(f"{t['label']}: {t['error']}" for t in loop.trials)
                                 + ". Give a lower range in select (e.g. select.train.lr={low: ..., high: ...})")
        trial, rung = loop.trials[best[0]], loop.trials[best[0]]["rungs"][best[1]]
        sides = edges(space, length, trial, rung)
        if not sides or round_no >= s.extensions or exhaustive:
            break
        space, length, done = extend(space, length, sides, round_no + 1)
        if not done:
            break
        extended += done
        round_no, n = round_no + 1, max(1, s.trials // 2)
        loop.planned += n
    still = edges(space, length, trial, rung)
    chosen = chosen_values(trial, rung)
    return {"search": "optuna", "sampler": s.sampler, "pruner": s.pruner if length is not None else "none",
            "trials_budget": s.trials, "exhaustive": exhaustive, "rounds": rounds, "extended": extended,
            "length": None if length is None else rounds[0]["length"], "trials": loop.trials,
            "candidates": [candidate_row(t) for t in loop.trials],
            "edges": {k: {"side": v, "value": rung["length"] if k == "length" else trial["values"].get(k),
                          "extendable": _extendable(space, length, k, v)} for k, v in still.items()},
            "chosen": chosen, "chosen_label": label(chosen), "chosen_trial": trial["number"],
            "chosen_length": rung["length"], "pruned": sum(t["state"] == "pruned" for t in loop.trials),
            "length_keys": list(KEYS) if length is not None else []}


def _extendable(space: dict, length: Length | None, key: str, side: str) -> bool:
    if key == "length":
        return length is not None and side == "high" and length.extended() is not None
    spec = space.get(key)
    return hasattr(spec, "extended") and spec.extended(side) is not None
