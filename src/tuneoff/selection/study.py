"""The optuna search (`select.search: optuna`): every method searched by one procedure with the same
number of trials, its training length a fidelity, and an edge rule.

- Each trial samples the space's ranges and lists (Optuna's TPE, seeded, or random sampling; a
  synchronous round is asked before any of its trials is scored, so its first round's values are
  TPE's random start-up draws) and trains the candidate on every fold with a schedule planned for
  the length's horizon; all held-out folds are scored at rungs (epochs low, low·factor, ...,
  horizon).
- `pruner: synchronous` (default, `tuning._Loop.run_round`): a round's trials are asked at once;
  every trial is scored at the first rung, the best third (at least one) trains from the start to
  the next rung, and so on. The choice is over the rungs of the trials that reached the last rung,
  ties to the lower mean held-out log-loss, then the longer length, then the earlier trial.
- `pruner: halving` (how docs/search-cells ran): trial after trial, each rung's mean reported to
  Optuna's asynchronous successive-halving pruner, which stops the trials that fall behind the
  trials before them; the choice is the best mean fold score over every (trial, rung) scored, ties
  to the lower loss, then the shorter length, then the earlier trial.
- Every (trial, rung) that was scored is a fully specified candidate (its values, trained that many
  epochs into its schedule).
- The edge rule: a choice in the outer tenth of a range, or at the length's last rung, extends that
  range by half its width (the length by its factor), never past the limits the method declares,
  and half as many trials again are run (a synchronous round that extends only the length trains
  the choice itself longer instead); at most `select.extensions` times. A choice still on an
  edge is flagged in the record (`edges`).
- A method that does not train (or `length: false`) has no rungs: a trial is the candidate fitted on
  every fold as the grid fits it; a finite space no larger than the trials is tried point by point.

Reproducible: the sampler's seed comes from the split and the training seed, so the same seeds give
the same trials. Resumable: every finished trial is kept in the fit cache under a key of its
candidate, folds and rungs; a search run again replays the kept trials in order (the sampler and
pruner see the same history, so they propose and decide the same) and trains only what is missing.
"""
from __future__ import annotations

import math

import numpy as np
import optuna

from tuneoff.config import label
from tuneoff.identity import digest, fit_ids
from tuneoff.space import Length, Range, as_spec, list_edge

optuna.logging.set_verbosity(optuna.logging.WARNING)

KEYS = ("train.epochs", "train.stop_epochs")  # what the length sets in a candidate


def study_seed(ref: int, seed: int) -> int:
    return int(np.random.SeedSequence([ref, seed, 28]).generate_state(1)[0])


def make_study(sampler: str, pruner: str, length: Length | None, seed: int, trials: int) -> optuna.Study:
    if sampler == "tpe":
        smp = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(4, trials // 3))
    else:
        smp = optuna.samplers.RandomSampler(seed=seed)
    if pruner == "halving" and length is not None:
        prn = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=length.factor)
    else:
        prn = optuna.pruners.NopPruner()
    return optuna.create_study(direction="maximize", sampler=smp, pruner=prn)


def suggest(trial: optuna.Trial, space: dict) -> dict:
    out = {}
    for key, spec in space.items():
        if isinstance(spec, Range):
            out[key] = spec.suggest(trial, key)
        else:
            out[key] = trial.suggest_categorical(key, spec)
    return out


def step_of(length: Length, rung: float) -> int:
    """The pruner's step of a rung: the rung in units of the first (1, factor, factor², ...)."""
    return max(1, int(round(rung / length.low)))


def best_point(trials: list[dict], survivors: bool = False) -> tuple[int, int] | None:
    """(trial index, rung index) of the choice over every scored (trial, rung); ties to the lower
    held-out loss, then the shorter length, then the earlier trial. `survivors` (the synchronous
    procedure): over the rungs of the trials that reached their round's last rung only (each was
    compared with every trial of its round at every rung), ties to the longer length: the choice is
    not the highest of many noisy early-rung scores of trials that lost later, nor, between equal
    scores, the least trained."""
    points = [(ti, ri) for ti, t in enumerate(trials) if t["state"] != "diverged"
              and (not survivors or t["state"] == "complete")
              for ri, r in enumerate(t["rungs"]) if r["mean_score"] is not None and math.isfinite(r["mean_score"])]
    if not points:
        return None
    sign = -1 if survivors else 1
    return min(points, key=lambda p: (-trials[p[0]]["rungs"][p[1]]["mean_score"],
                                      trials[p[0]]["rungs"][p[1]]["mean_loss"],
                                      sign * (trials[p[0]]["rungs"][p[1]]["length"] or 0), p[0]))


def chosen_values(trial: dict, rung: dict) -> dict:
    """The candidate a (trial, rung) stands for: its values, and its length if searched."""
    values = dict(trial["values"])
    if trial.get("horizon") is not None:
        values["train.epochs"] = trial["horizon"]
        if rung["length"] < trial["horizon"]:
            values["train.stop_epochs"] = rung["length"]
    return values


def edges(space: dict, length: Length | None, trial: dict, rung: dict, trials: list[dict] = ()) -> dict:
    """Where a choice sits on an edge: key -> side ("low" or "high"). A choice at its trial's horizon
    is not on the length's edge when its values were trained to a longer horizon among `trials`
    (the longer length was tried, and lost)."""
    out = {}
    for key, spec in space.items():
        value = trial["values"].get(key)
        if isinstance(spec, Range):
            side = spec.edge(value)
        else:
            side = list_edge(spec, value)
        if side:
            out[key] = side
    if length is not None and trial.get("horizon") is not None and len(length.rungs()) > 1:
        longer = any(t["values"] == trial["values"] and (t.get("horizon") or 0) > trial["horizon"]
                     and t["state"] != "diverged" for t in trials)
        if rung["length"] >= trial["horizon"] and not longer:
            out["length"] = "high"
    return out


def extend(space: dict, length: Length | None, sides: dict, round_no: int) -> tuple[dict, Length | None, list]:
    """The space and length with every edge that can be extended pushed out; what was extended."""
    space, done = dict(space), []
    for key, side in sides.items():
        if key == "length":
            new = length.extended() if side == "high" and length is not None else None
            if new is not None:
                done.append({"round": round_no, "key": "length", "side": side, "from": length.to_dict(),
                             "to": new.to_dict()})
                length = new
            continue
        spec = space.get(key)
        new = spec.extended(side) if isinstance(spec, Range) else None
        if new is not None:
            done.append({"round": round_no, "key": key, "side": side, "from": spec.to_dict(), "to": new.to_dict()})
            space[key] = new
    return space, length, done


def trial_key(cand, folds, rungs: list[float] | None) -> str:
    """The cache key of a trial: its candidate on every fold (`fit_ids`), and the rungs it is scored at.
    A one-rung trial's folds train one after another, each as its plain fit (`rungs.fit_rungs`); they
    trained together before, which gives the same fit for a model that draws no random number in
    training (smollm2-135m: the stores of docs/ hold no other one-rung fit) and another second fold
    for one with dropout, so such a fit cached by the earlier code is not the one made now."""
    fits = [fit_ids(cand, [ex["id"] for ex in f.train], [ex["id"] for ex in f.heldout])[0] for f in folds]
    return "trial:" + digest({"fits": fits, "rungs": rungs}, 20)


def candidate_row(trial: dict) -> dict:
    """A trial as a candidate row (as the grid writes them): its values at its best rung."""
    scored = [r for r in trial["rungs"] if r["mean_score"] is not None]
    best = min(scored, key=lambda r: (-r["mean_score"], r["mean_loss"], r["length"] or 0)) if scored else None
    values = chosen_values(trial, best) if best else dict(trial["values"])
    return {"values": values, "label": label(values), "diverged": trial["state"] == "diverged",
            "error": trial["error"], "fold_scores": best["fold_scores"] if best else [],
            "fold_losses": best["fold_losses"] if best else [],
            "mean_score": best["mean_score"] if best else None, "mean_loss": best["mean_loss"] if best else None,
            "fits_reused": len(best["fold_scores"]) if best and trial.get("reused") else 0}


def spec_dict(space: dict) -> dict:
    return {k: as_spec(v) for k, v in space.items()}
