"""The `select:` section of a run config: how hyperparameters are chosen, and over which values.

    select:
      protocol: cv        # cv: stratified k-fold inside the few-shot set; dev: a separate dev split
      folds: 2            # k of the k-fold (capped at the examples per class)
      repeats: null       # cv fold assignments (null: enough that >= 8 per class are held out; grid: 1)
      budget: frugal      # frugal: choose once on the reference split, reuse for the other splits
      oracle: false       # diagnostic: every candidate also scored on the eval sets, after the choice
      search: optuna      # optuna: ranges, the same trials for every method, pruning; grid: the lists crossed
      trials: 12          # optuna: trials per method (the edge rule adds half as many per extension)
      length: null        # optuna: the training length searched as a fidelity (null: the method's)
      train.lr: {low: 1.0e-5, high: 1.0e-3}   # any other key: a dotted config key -> a range or a
      method.r: [4, 8]                        #   list of values; it replaces the method's default

The method declares its default space next to its options (`Method.search_ranges_for` for the optuna
search, `search_space_for` for the grid; `tuneoff ls methods` shows both); keys given here replace or
extend it. The grid's candidates are the cross product of lists. `protocol: none` (or no `select:`)
is off. Records written before `search` existed ran the grid (`identity.ADDED_KEYS`).
"""
from __future__ import annotations

import itertools
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuneoff.config.base import ConfigError, as_list, as_number, did_you_mean
from tuneoff.identity import current_key
from tuneoff.space import Length, Range, parse

# keys a search space may not cover: they define the comparison, not a method's hyperparameters
FIXED_KEYS = ("task", "data_dir", "model", "shots", "data_seed", "seed", "eval", "output_dir", "save",
              "device", "trust_remote_code", "select", "method.name")


class SelectConfig(BaseModel):
    """Hyperparameter selection from the few-shot labels alone; extra keys are the search space."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    protocol: Literal["cv", "dev", "none"] = Field(
        "cv", description="cv: stratified k-fold inside the few-shot set; dev: a dev split of the same size "
                          "from the train pool (extra labels); none: off")
    folds: int = Field(2, ge=2, description="folds of the cross-validation (at most the examples per class)")
    budget: Literal["frugal", "full"] = Field(
        "frugal", description="frugal: select on the reference split only and reuse the choice for the other "
                              "data seeds; full: select on every split")
    reference_seed: int | None = Field(
        None, ge=0, description="frugal: the data seed whose split selects; null = the first data seed listed")
    oracle: bool = Field(False, description="diagnostic after the choice: score every candidate on the eval sets")
    search: Literal["optuna", "grid"] = Field(
        "optuna", description="optuna: ranges searched by Optuna with the same number of trials for every method, "
                              "the training length as a fidelity with pruning, and the edge rule; grid: every "
                              "combination of the listed values at the configured length (the published protocol)")
    trials: int = Field(12, ge=1, description="optuna: trials per selection, the same for every method")
    sampler: Literal["tpe", "random"] = Field("tpe", description="optuna: TPE (seeded) or uniform random sampling")
    pruner: Literal["synchronous", "halving", "none"] = Field(
        "synchronous", description="optuna: synchronous: successive halving over the length's rungs, every trial of "
                                   "a round scored at a rung before the best third goes on, the choice among the "
                                   "trials that reach the last rung; halving: Optuna's asynchronous successive "
                                   "halving, the choice over every trial and rung (docs/search-cells); none: every "
                                   "trial to the horizon")
    extensions: int = Field(2, ge=0, description="optuna: times the edge rule may extend a range whose choice sits "
                                                 "on its edge (each adds half the trials)")
    repeats: int | None = Field(None, ge=1, description="cv: fold assignments, each a different stratified split "
                                                        "(null: enough that 8 per class are held out, at most 4; "
                                                        "grid: 1)")
    length: dict | bool | None = Field(
        None, description="optuna: the training length searched, {low, high, limit, factor} in epochs (null: the "
                          "method's; false: train.epochs, not searched)")

    @model_validator(mode="after")
    def _space_keys(self) -> "SelectConfig":
        space = {current_key(k): v for k, v in _flat(dict(self.model_extra or {})).items()}
        for key, values in space.items():
            if any(key == f or key.startswith(f + ".") for f in FIXED_KEYS):
                raise ValueError(f"select key {key!r}: {key.split('.')[0]!r} defines the comparison and "
                                 "cannot be searched; search train.* or method.* keys (or pattern)")
            if not (key.startswith(("train.", "method.")) or key in ("pattern", "max_length")):
                hint = did_you_mean(key, [*type(self).model_fields, "pattern", "max_length"])
                raise ValueError(f"select key {key!r}{hint} is neither a selection setting (protocol, folds, budget, "
                                 "reference_seed, oracle) nor a train.* / method.* / pattern / max_length key "
                                 "to search")
            if isinstance(values, dict):
                if self.search == "grid":
                    raise ValueError(f"select key {key!r}: select.search=grid takes a list of values, not a range; "
                                     "use select.search=optuna to search a range")
                space[key] = parse(key, values).to_dict()
                continue
            if not isinstance(values, list) or not values:
                raise ValueError(f"select key {key!r} needs a non-empty list of candidate values or a range "
                                 f"{{low: ..., high: ...}}, got {values!r}")
            space[key] = [as_number(v) for v in values]
        self.__pydantic_extra__ = space  # one canonical (dotted) form
        if isinstance(self.length, dict):
            Length.parse(self.length)  # ValueError naming the key
        elif self.length is True:
            raise ValueError("select.length: give {low, high, limit, factor} in epochs, null for the method's, or "
                             "false to keep train.epochs")
        return self

    @property
    def space_overrides(self) -> dict[str, list | Range]:
        return {k: parse(k, v) for k, v in (self.model_extra or {}).items()}

    def repeats_for(self, shots: int) -> int:
        """Fold assignments at `shots` per class: `repeats`, else 1 for the grid or the dev protocol, else
        enough that 8 examples per class are held out over them (at most 4)."""
        if self.protocol != "cv":
            return 1
        if self.repeats is not None:
            return self.repeats
        return 1 if self.search == "grid" else min(4, -(-8 // max(1, shots)))


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested keys dotted, down to a list or a range (a mapping with low or high)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not ({"low", "high"} & set(v)):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def resolve_space(select: SelectConfig, method_cls, options) -> dict[str, list | Range]:
    """The method's default space (its ranges for the optuna search, its lists for the grid) with the
    config's keys replacing or adding to it."""
    if select.search == "grid":
        space = method_cls.search_space_for(options)
    else:
        space = method_cls.search_ranges_for(options)
    space.update(select.space_overrides)
    return space


def resolve_length(select: SelectConfig, method_cls, options) -> Length | None:
    """The training length the optuna search takes as its fidelity; None for the grid, for a method
    that does not train, or with `length: false`."""
    if select.search == "grid" or select.length is False or method_cls.search_length_for(options) is None:
        return None
    return Length.parse(select.length) if isinstance(select.length, dict) else method_cls.search_length_for(options)


def check_selection(cfg) -> None:
    """What would make a selection impossible, found before any run: cv on 1 example per class, a
    method needing more per class than a fold's training part holds, a candidate that is no valid run."""
    if cfg.select.protocol == "cv":
        need = cfg.method_class.needs_per_class(cfg.method_options)
        for n in as_list(cfg.shots):
            if n < 2:
                raise ValueError("select.protocol=cv needs at least 2 examples per class to hold one out "
                                 f"(shots={n}); use select.protocol=dev (a dev split of the same size from "
                                 "the train pool) or more shots")
            k = min(cfg.select.folds, n)
            left = n - -(-n // k)  # per class in the smallest fold-training part
            if need > left:
                raise ValueError(f"select.protocol=cv trains each candidate on {left} example(s) per class "
                                 f"(shots={n}, {k} folds), but {needs_text(cfg, need)}: lower method.k, use "
                                 "more shots, or select.protocol=dev")
    length = cfg.search_length()
    if length is not None and cfg.train.stop_epochs is not None:
        raise ValueError(f"train.stop_epochs is what select.search=optuna chooses (select.length: {length}); "
                         "remove it, or give select.length: false to keep a fixed length")
    if length is not None and cfg.train.max_steps:
        raise ValueError("train.max_steps fixes the training length, which select.search=optuna searches "
                         f"(select.length: {length}); remove train.max_steps, or give select.length: false "
                         "to train every trial for train.epochs")
    for values in corners(cfg.search_space()):  # every candidate is a valid run, checked now
        if length is not None:
            values = {**values, "train.epochs": length.high}
        try:
            cfg.candidate(values)
        except ConfigError as e:
            raise ValueError(f"select: the candidate {values} is not a valid run: {e}") from None


def corners(space: dict[str, list | Range]) -> list[dict[str, Any]]:
    """The candidates that stand for the whole space in a check: every combination of the lists, with
    each range at its low end, then at its high end."""
    lists = {k: v for k, v in space.items() if not isinstance(v, Range)}
    ranges = {k: v for k, v in space.items() if isinstance(v, Range)}
    combos = candidates(lists)
    if not ranges:
        return combos
    out = []
    for end in ("low", "high"):
        out += [{**c, **{k: (int if r.integer else float)(getattr(r, end)) for k, r in ranges.items()}} for c in combos]
    return out


def needs_text(cfg, need: int) -> str:
    k = getattr(cfg.method_options, "k", None)
    return f"{cfg.method.name} needs {need} per class" + (f" (method.k={k})" if k is not None else "")


def check_shots(cfg) -> None:
    """A method that needs more examples per class than the run's shots (icl, distill: method.k),
    found before any run, with or without selection."""
    need = cfg.method_class.needs_per_class(cfg.method_options)
    for n in as_list(cfg.shots):
        if n < need:
            raise ValueError(f"shots={n} per class, but {needs_text(cfg, need)}: lower method.k or use more shots")


def check_chosen_not_given(cfg, given: dict[str, str]) -> None:
    """A key given by hand (`given`: dotted key -> how it was given, e.g. "override 'train.lr=1e-4'")
    that the config's selection then chooses for some method would be overwritten by the choice
    without a word: a ValueError that says what to write instead."""
    if cfg.select is None:
        return
    chosen = {key for one in cfg.per_method() for key in one.search_space()}
    for key, how in given.items():
        if current_key(key) in chosen:
            raise ValueError(f"{how}: the selection (select.protocol={cfg.select.protocol}) chooses "
                             f"{current_key(key)} from the few labels, so this value would not be used; give "
                             f"candidates with select.{current_key(key)}=[...], or turn selection off with select=null")


def candidates(space: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the space's values, in a fixed order (keys as given, values as listed)."""
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]


def finite_points(space: dict[str, list | Range]) -> list[dict[str, Any]] | None:
    """Every point of a space of lists only (`candidates`); None if it has a range."""
    if any(isinstance(v, Range) for v in space.values()):
        return None
    return candidates(space)


def label(values: dict[str, Any]) -> str:
    """`train.lr=0.001, method.r=8` — a candidate in one line."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={json.dumps(v)}" for k, v in values.items())
