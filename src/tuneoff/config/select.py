"""The `select:` section of a run config: how hyperparameters are chosen, and over which values.

    select:
      protocol: cv        # cv: stratified k-fold inside the few-shot set; dev: a separate dev split
      folds: 2            # k of the k-fold (capped at the examples per class)
      budget: frugal      # frugal: choose once on the reference split, reuse for the other splits
      oracle: false       # diagnostic: every candidate also scored on the eval sets, after the choice
      train.lr: [1.0e-4, 1.0e-3]   # any other key: a dotted config key -> candidate values; it
      method.r: [4, 8]             #   replaces that key of the method's default search space

The method declares its default space (`Method.search_space_for`); keys given here replace or
extend it, and the candidates are the cross product. `protocol: none` (or no `select:`) is off.
"""
from __future__ import annotations

import itertools
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuneoff.config.base import ConfigError, as_list, as_number, did_you_mean
from tuneoff.describe import flatten
from tuneoff.identity import current_key

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

    @model_validator(mode="after")
    def _space_keys(self) -> "SelectConfig":
        space = {current_key(k): v for k, v in flatten(dict(self.model_extra or {})).items()}
        for key, values in space.items():
            if any(key == f or key.startswith(f + ".") for f in FIXED_KEYS):
                raise ValueError(f"select key {key!r}: {key.split('.')[0]!r} defines the comparison and "
                                 "cannot be searched; search train.* or method.* keys (or pattern)")
            if not (key.startswith(("train.", "method.")) or key in ("pattern", "max_length")):
                hint = did_you_mean(key, [*type(self).model_fields, "pattern", "max_length"])
                raise ValueError(f"select key {key!r}{hint} is neither a selection setting (protocol, folds, budget, "
                                 "reference_seed, oracle) nor a train.* / method.* / pattern / max_length key "
                                 "to search")
            if not isinstance(values, list) or not values:
                raise ValueError(f"select key {key!r} needs a non-empty list of candidate values, got {values!r}")
            space[key] = [as_number(v) for v in values]
        self.__pydantic_extra__ = space  # one canonical (dotted) form
        return self

    @property
    def space_overrides(self) -> dict[str, list]:
        return dict(self.model_extra or {})


def resolve_space(select: SelectConfig, method_cls, options) -> dict[str, list]:
    """The method's default space with the config's keys replacing or adding to it."""
    space = method_cls.search_space_for(options)
    space.update(select.space_overrides)
    return space


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
    for values in candidates(cfg.search_space()):  # every candidate is a valid run, checked now
        try:
            cfg.candidate(values)
        except ConfigError as e:
            raise ValueError(f"select: the candidate {values} is not a valid run: {e}") from None


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


def candidates(space: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the space's values, in a fixed order (keys as given, values as listed)."""
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]


def label(values: dict[str, Any]) -> str:
    """`train.lr=0.001, method.r=8` — a candidate in one line."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={json.dumps(v)}" for k, v in values.items())
