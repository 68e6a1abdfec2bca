"""The optuna search's loop (see `tuneoff.selection.study` for the procedure): rounds of trials, each
trial replayed from the fit cache when it was finished before, else trained rung by rung on every
fold with the pruner deciding after each rung."""
from __future__ import annotations

from dataclasses import replace

import optuna

from tuneoff.config import finite_points, label
from tuneoff.selection.fits import SelectionError, Searcher
from tuneoff.selection.rungs import fit_rungs
from tuneoff.selection.study import (KEYS, best_point, candidate_row, chosen_values, edges, extend,
                                     make_study, spec_dict, step_of, study_seed, suggest, trial_key)
from tuneoff.space import Length, Range

# what the sampler and the pruner are told of a rung: the mean fold score, ties (frequent on a few
# held-out examples, e.g. every trial at MCC 0 before it learns) broken by the mean held-out log-loss,
# as the choice breaks them; too small to reorder two different scores
LOSS_TIE = 1e-6


# a fit's costs (`rungs.TrialCost.record`), summed over a synchronous trial's fits
COSTS = ("train_tokens", "eval_tokens", "train_time_s", "eval_time_s", "train_cpu_s", "eval_cpu_s", "flops_approx")


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
        def go_on(got: dict, last: bool) -> bool:
            trial.report(told(got), step_of(length, got["length"]))
            return True if last else not trial.should_prune()

        got = self._fitted(values, length, length.rungs(), go_on)
        if got["reused"]:
            self._replay(trial, got, length)
        return {**got, "horizon": length.high}

    def _fitted(self, values: dict, length: Length, rungs: list[float], go_on, on_fold=None) -> dict:
        """The candidate `values` trained on every fold with the horizon's schedule and scored at
        `rungs` (`fit_rungs`; `go_on` may stop it after a rung), or the same fit from the fit cache
        where it was made before; its cost counted either way, `reused` saying which. `on_fold` is
        passed on to a fit that is made (`fit_rungs`)."""
        search = self.search
        cand = search.cfg.candidate({**values, "train.epochs": length.high}, data_seed=search.ref)
        key = trial_key(cand, search.folds, rungs)
        kept = search.cache.get([key])
        if kept is not None:
            search.cost.add(kept, True)
            return {**kept, "reused": True}
        try:
            got = fit_rungs(search.toolbox, cand, search.data, search.folds, rungs, go_on, search.cache,
                            on_fold=on_fold)
        except ValueError as e:  # MethodError, DataError: every trial would fail alike
            raise SelectionError(f"selection trial {label(values)}: {type(e).__name__}: {e}") from None
        search.cache.put(key, got)
        search.cost.add(got, False)
        return {**got, "reused": False}

    def _fit_rung(self, values: dict, length: Length, rung: float, share: "_Share", got: dict) -> None:
        """One fit of a synchronous round (`values` trained to `rung` of the horizon's schedule on
        every fold), its rung, cost and state added to the trial's `got`, its progress told fold by
        fold: a fit taken whole from the cache, and the folds after a diverged one, leave the total."""
        folds, told_folds = len(self.search.folds), []

        def on_fold(reused: bool) -> None:
            told_folds.append(reused)
            share.fitted(rung / folds, reused)

        one = self._fitted(values, length, [rung], lambda got, last: True, on_fold)
        for k in COSTS:
            got[k] += one.get(k, 0)
        got["reused"] = got["reused"] and one["reused"]
        got["rungs"] += one["rungs"]
        if one["state"] == "diverged":
            got.update(state="diverged", error=one["error"])
        if not told_folds:  # the fit cache's whole trial
            share.fitted(rung, one["reused"])
        elif len(told_folds) < folds:  # the folds after a diverged one train nothing
            share.fitted(rung * (folds - len(told_folds)) / folds, True)

    def run_kept(self, values: dict, length: Length, above: float, round_no: int) -> None:
        """A round that extends the length trains the edge choice's `values` itself to the new
        horizon, at the rungs above the old one (`above`), outside the sampler: the round's new trials
        are compared at near-chance first rungs, so the trial they carry to the horizon is not the
        rate the edge was found at."""
        rungs = length.above(above)
        got = {"rungs": [], "state": "complete", "error": None, "reused": True, **dict.fromkeys(COSTS, 0)}
        share = _Share(self.search.progress, round_no, 0, length, extra=sum(rungs),
                       phase=f"select, extension round {round_no}: the choice trained longer (% of its training)")
        for rung in rungs:
            self._fit_rung(values, length, rung, share, got)
            if got["state"] == "diverged":
                break
        share.end()
        self.trials.append({**got, "horizon": length.high, "number": len(self.trials), "round": round_no,
                            "values": dict(values), "label": label(values), "kept": True})

    def run_round(self, space: dict, length: Length, round_no: int, n: int) -> None:
        """A round of the synchronous procedure (`select.pruner: synchronous`): `n` trials are asked
        of the sampler at once; rung by rung, every trial still in is trained to the rung (from the
        start, with the schedule of the horizon: the same training as going on would be) and scored,
        and the best third of them (at least one) goes on to the next rung. No trial is decided
        before every trial of its round was scored at the same rung: the first trial is not favoured
        by having no competitor yet. Then the trials are told to the sampler."""
        rungs = length.rungs()
        share = _Share(self.search.progress, round_no, n, length)
        asked = [self.study.ask() for _ in range(n)]
        values = [suggest(t, space) for t in asked]
        got = [{"rungs": [], "state": "pruned", "error": None, "reused": True, **dict.fromkeys(COSTS, 0)}
               for _ in range(n)]
        alive = list(range(n))
        for r, rung in enumerate(rungs):
            for i in alive:
                self._fit_rung(values[i], length, rung, share, got[i])
            alive = [i for i in alive if got[i]["state"] != "diverged"]
            last = r == len(rungs) - 1
            if last:
                share.end()
                for i in alive:
                    got[i]["state"] = "complete"
                break
            ranked = sorted(alive, key=lambda i: (-told(got[i]["rungs"][-1]), i))
            alive = ranked[:length.promoted(len(alive))]
        for i, trial in enumerate(asked):
            for one in got[i]["rungs"]:
                trial.report(told(one), step_of(length, one["length"]))
            state = got[i]["state"]
            if state == "diverged":
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif state == "pruned":
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(trial, max(told(one) for one in got[i]["rungs"]))
            self.trials.append({**got[i], "horizon": length.high, "number": len(self.trials), "round": round_no,
                                "values": values[i], "label": label(values[i])})

    @staticmethod
    def _replay(trial: optuna.Trial, kept: dict, length: Length) -> None:
        """Report a kept trial's rungs to the pruner again, asking it where the trial first asked, so
        the study's history (and every later proposal and decision) is what it was."""
        last = len(length.rungs()) - 1
        for i, got in enumerate(kept["rungs"]):
            trial.report(told(got), step_of(length, got["length"]))
            if i < last:
                trial.should_prune()


class _Share:
    """A synchronous round's progress as the share of its training done, in percent: each fit counts
    its rung's length, so the fits of the later rungs, which train longer, count for more. (Counting
    trials decided put a 128-shot round's first rung, a sixth of its training, at two thirds.) A fit
    moves it fold by fold: a fold of a 128-shot selection's longest fit trains for tens of minutes. A fit or
    fold taken from the fit cache trains nothing: it leaves the total, so a resumed round's time
    left is read from the training it does."""

    def __init__(self, progress, round_no: int, n: int, length: Length, extra: float = 0.0, phase: str = ""):
        self.progress, self.done = progress, 0.0
        self.phase = phase or ("select (% of its training)" if round_no == 0 else
                               f"select, extension round {round_no} (% of its training)")
        self.total = extra
        for rung in length.rungs():
            self.total, n = self.total + n * rung, length.promoted(n)
        if progress:
            progress(self.phase, 0, 100)

    def fitted(self, rung: float, reused: bool = False) -> None:
        if reused:
            self.total -= rung
        else:
            self.done += rung
        if self.progress:
            share = self.done / self.total if self.total > 1e-12 else 1.0
            self.progress(self.phase, min(99, int(100 * share)), 100)

    def end(self) -> None:
        if self.progress:
            self.progress(self.phase, 100, 100)


def optuna_search(search: Searcher, space: dict, length: Length | None) -> dict:
    """Run the search; the record's parts that describe it and the choice."""
    s, loop = search.cfg.select, _Loop(search, length)
    synchronous = s.pruner == "synchronous"
    rounds, extended, points = [], [], finite_points(space) if length is None else None
    kept = None  # (values, the old horizon): the edge choice a length extension trains longer
    exhaustive = points is not None and len(points) <= s.trials
    n, round_no = (len(points) if exhaustive else s.trials), 0
    loop.planned = n
    while True:
        rounds.append({"round": round_no, "trials": n, "space": spec_dict(space),
                       "length": None if length is None else length.to_dict(),
                       **({} if kept is None else {"kept": label(kept[0])})})
        if synchronous and length is not None:
            if n:
                loop.run_round(beyond(space, extended, round_no), length, round_no, n)
            if kept is not None:
                loop.run_kept(kept[0], length, kept[1], round_no)
        else:
            for i in range(n):
                loop.run_trial(space, length, round_no, points[i] if exhaustive else None)
        best = best_point(loop.trials, survivors=synchronous and length is not None)
        if best is None:
            raise SelectionError("every trial diverged during selection: "
                                 + "; ".join(f"{t['label']}: {t['error']}" for t in loop.trials)
                                 + ". Give a lower range in select (e.g. select.train.lr={low: ..., high: ...})")
        trial, rung = loop.trials[best[0]], loop.trials[best[0]]["rungs"][best[1]]
        sides = edges(space, length, trial, rung, loop.trials)
        if not sides or round_no >= s.extensions or exhaustive:
            break
        old_high = length.high if length is not None else None
        space, length, done = extend(space, length, sides, round_no + 1)
        if not done:
            break
        extended += done
        longer = synchronous and any(d["key"] == "length" for d in done)
        kept = (trial["values"], old_high) if longer else None
        ranges = any(d["key"] != "length" for d in done)
        # a round that extends only the length trains the choice longer and samples nothing new
        round_no, n = round_no + 1, (max(1, s.trials // 2) if ranges or not longer else 0)
        loop.planned += n
    still = edges(space, length, trial, rung, loop.trials)
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


def beyond(space: dict, extended: list[dict], round_no: int) -> dict:
    """The space a synchronous round samples: a range this round extended is sampled in its new part
    only (from the old edge out), so the round looks beyond the edge it was run for; a sampler that
    has learnt where the best lay would otherwise stay near it, inside the old range."""
    out = dict(space)
    for e in extended:
        spec = out.get(e["key"])
        if e["round"] != round_no or not isinstance(spec, Range):
            continue
        old = e["from"]
        out[e["key"]] = replace(spec, low=old["high"]) if e["side"] == "high" else replace(spec, high=old["low"])
    return out


def _extendable(space: dict, length: Length | None, key: str, side: str) -> bool:
    if key == "length":
        return length is not None and side == "high" and length.extended() is not None
    spec = space.get(key)
    return hasattr(spec, "extended") and spec.extended(side) is not None
