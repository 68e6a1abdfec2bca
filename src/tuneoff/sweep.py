"""Sweeps: a grid of runs from one YAML file, run resumably into one results store.

A sweep config has three keys (anything else is an error naming the key):

    defaults:          # any RunConfig keys (nested, or dotted like `train.lr`), shared by every run
      task: demo
      shots: [8, 32]   # shots / data_seed / seed may be lists: each value is a run
      data_seed: [0, 1, 2]
    grid:              # RunConfig keys (dotted allowed) -> lists of values; the cross product is run
      train.lr: [1e-5, 3e-5]
      tasks: [demo]    # plural aliases: tasks, models, patterns, seeds, data_seeds
    methods:           # the method axis: a name, or {name, <method options>, overrides: {key: value}}
      - finetune
      - {name: lora, r: 8}
      - {name: head, overrides: {train.lr: 1e-3}}

Runs = methods x grid values x shots x data_seed x seed, run split by split (every method at the
first data seed, then the next). Each run's settings are layered
defaults < grid value < method entry < the entry's `overrides` < command-line key=value overrides,
and validated by `tuneoff.config` (the one validator). Runs with the same run_id are kept once.

Running is keyed by run_id and goes through `tuneoff.plan`, as `tuneoff run` does: what the store
holds as `done` is skipped before anything is submitted, `failed` runs are skipped unless asked to
retry, each run is claimed before it starts (several processes on one folder share the plan), and
every finished run is written by the driver as soon as it is back (manifest, then its row in one
SQLite transaction), so killing a sweep loses only the runs in flight.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tuneoff.budget import Budget
from tuneoff.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    parse_override,
    read_yaml,
    set_key,
)
from tuneoff.config.base import format_errors
from tuneoff.config.paths import sweep_file
from tuneoff.describe import Label, flatten, fmt, varying

# what a sweep config holds, said when it holds something else
SWEEP_HOLDS = ("defaults: the settings every run shares, grid: keys with lists of values, and/or methods: the "
               "methods to compare")
GRID_ALIASES = {"tasks": "task", "models": "model", "patterns": "pattern", "seeds": "seed",
                "data_seeds": "data_seed"}


# -- the sweep config ----------------------------------------------------------------------------

class MethodEntry(BaseModel):
    """One value of the method axis: `name`, the method's options, and run settings it overrides."""

    model_config = ConfigDict(extra="allow")
    name: str
    overrides: dict[str, Any] = {}

    @field_validator("overrides")
    @classmethod
    def _flat_overrides(cls, v: dict) -> dict:
        flat = flatten(v)
        bad = [k for k in flat if k == "method" or k.startswith("method.")]
        if bad:
            raise ValueError(f"{bad[0]!r} cannot be overridden: give method options in the entry itself "
                             f"(e.g. {{name: lora, r: 8}})")
        return flat

    def options(self) -> dict:
        return dict(self.model_extra or {})

    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options().items())
        return self.name + (f"({opts})" if opts else "")


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    methods: list[MethodEntry] = []
    recommend: Budget = Budget()  # the budget the sweep's closing recommendation is for

    @field_validator("defaults")
    @classmethod
    def _nest_defaults(cls, v: dict) -> dict:
        out: dict = {}
        for key, value in flatten(v).items():  # dotted keys (train.lr: 1e-4) merge into sections
            if value != {}:
                set_key(out, key.split("."), value, f"defaults key {key!r}")
        return out

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_keys(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for key, values in v.items():
            key = GRID_ALIASES.get(str(key), str(key))
            if key in out:
                raise ValueError(f"grid key {key!r} is given twice (once by its plural alias)")
            if key == "method" or key.startswith("method."):
                raise ValueError(f"grid key {key!r}: list methods (with their options) under `methods:`")
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid key {key!r} needs a non-empty list of values, got {values!r}")
            out[key] = values
        return out

    @field_validator("methods", mode="before")
    @classmethod
    def _method_strings(cls, v: Any) -> Any:
        if isinstance(v, (str, dict)):
            v = [v]
        if isinstance(v, list):
            return [{"name": m} if isinstance(m, str) else m for m in v]
        return v


def parse_sweep(data: dict, source: str = "sweep config") -> SweepConfig:
    try:
        return SweepConfig(**data)
    except ValidationError as e:
        msg = format_errors(e, model=SweepConfig).replace("config key", "sweep key")
        raise ConfigError(f"{source}: {msg}\n(a sweep config holds `defaults:`, `grid:`, `methods:` and `recommend:`; "
                          f"run settings go under `defaults:`)") from None


# -- expansion -----------------------------------------------------------------------------------

@dataclass
class Sweep:
    runs: list[RunConfig]          # unique runs, in expansion order
    output_dir: str
    expanded: int                  # runs before duplicates were merged
    varying: list[str] = field(default_factory=list)  # config keys (not method.*) that differ between runs
    method_options: dict[str, list[str]] = field(default_factory=dict)  # method -> options that differ
    budget: Budget = field(default_factory=Budget)  # what the closing recommendation is for
    implicit: set[str] = field(default_factory=set)  # run ids whose frugal reference seed is the first listed, by default

    @property
    def duplicates(self) -> int:
        return self.expanded - len(self.runs)

    def method_label(self, run: RunConfig) -> str:
        """The method and those of its options that differ between its runs, e.g. `lora(r=8)`."""
        opts = run.method.model_extra or {}
        shown = ", ".join(f"{k}={fmt(opts.get(k))}" for k in self.method_options.get(run.method.name, []))
        return Label(run.method.name, shown).method_label

    def describe(self, run: RunConfig) -> dict[str, Any]:
        """The values of the varying keys for one run (for listings)."""
        flat = _flat_config(run)
        return {k: flat.get(k, "–") for k in self.varying}

    def label(self, run: RunConfig) -> str:
        """A short name for a run: method(options) and the values of the other varying keys."""
        return " ".join([self.method_label(run), *(f"{k}={v}" for k, v in self.describe(run).items())])


def split_overrides(overrides: Iterable[str]) -> tuple[list[str], list[str]]:
    """Command-line key=value items: those naming a sweep key (defaults./grid./methods) edit the
    sweep config; any other is a run setting applied last, to every run."""
    sweep_level, run_level = [], []
    for item in overrides:
        path, _ = parse_override(item)
        (sweep_level if path[0] in SweepConfig.model_fields else run_level).append(item)
    return sweep_level, run_level


def _apply_sweep_overrides(data: dict, items: list[str]) -> dict:
    data = json.loads(json.dumps(data))
    for item in items:
        path, value = parse_override(item)
        if path[0] == "grid" and len(path) > 1:  # grid keys are dotted names, not sections
            grid = data.setdefault("grid", {}) or {}
            data["grid"] = grid
            grid[".".join(path[1:])] = value if isinstance(value, list) else [value]
        elif path == ["methods"] and not isinstance(value, list):
            data["methods"] = [value]
        else:
            set_key(data, path, value, f"override {item!r}")
    return data


def expand_sweep(sc: SweepConfig, run_overrides: list[str] | None = None) -> Sweep:
    """Every run of the sweep, validated, duplicates (same run_id) kept once."""
    grid_keys = list(sc.grid)
    methods: list[MethodEntry | None] = list(sc.methods) or [None]  # None: the method in defaults
    runs: dict[str, RunConfig] = {}
    implicit: set[str] = set()
    out_dirs: set[str] = set()
    expanded = 0
    for entry, values in itertools.product(methods, itertools.product(*(sc.grid[k] for k in grid_keys))):
        data = json.loads(json.dumps(sc.defaults))
        where = []
        for key, value in zip(grid_keys, values):
            set_key(data, key.split("."), value, f"grid key {key!r}")
            where.append(f"{key}={value}")
        if entry is not None:
            data["method"] = {"name": entry.name, **entry.options()}
            for key, value in entry.overrides.items():
                set_key(data, key.split("."), value, f"method {entry.name!r} override {key!r}")
            where.insert(0, f"method {entry.label()}")
        data = apply_overrides(data, run_overrides or [])
        try:
            cfg = config_from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"sweep run ({', '.join(where) or 'defaults'}): {e}") from None
        _check_fixed_vs_searched(cfg, grid_keys, entry, where)
        out_dirs.add(cfg.output_dir)
        for run in cfg.expand():
            expanded += 1
            if run.pattern is not None and not run.uses_pattern:  # a patterns grid leaves these runs once
                run = run.model_copy(update={"pattern": None})
            runs.setdefault(run.run_id(), run)
            if cfg.implicit_reference:
                implicit.add(run.run_id())
    if len(out_dirs) > 1:
        raise ConfigError(f"a sweep writes to one results store, but runs name several output_dir values: "
                          f"{sorted(out_dirs)}; set output_dir once, under defaults:")
    # split by split: everything at the first (data_seed, seed) runs first, so a partial sweep already
    # compares every method, and the time estimate has seen every kind of run early
    unique = sorted(runs.values(), key=lambda r: (r.data_seed, r.seed))
    methods = {r.method.name for r in unique}
    options = {m: [k.removeprefix("method.") for k in varying_keys([r for r in unique if r.method.name == m])
                   if k.startswith("method.")] for m in methods}
    varying = [k for k in varying_keys(unique) if not k.startswith("method.")]
    return Sweep(unique, out_dirs.pop(), expanded, varying, {m: o for m, o in options.items() if o}, sc.recommend,
                 implicit)


def _check_fixed_vs_searched(cfg: RunConfig, grid_keys: list[str], entry, where: list[str]) -> None:
    """A key that the sweep both fixes (grid, a method entry's overrides) and searches (select) is
    ambiguous: which value should the run use? An error, before any run."""
    space = cfg.search_space()
    fixed = [(k, "grid") for k in grid_keys] + [(k, "overrides") for k in (entry.overrides if entry else {})]
    for key, how in fixed:
        if key in space:
            raise ConfigError(f"sweep run ({', '.join(where) or 'defaults'}): {key!r} is both in the {how} and in "
                              f"select's search space {sorted(space)}; drop it from one (the search chooses it)")


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> Sweep:
    data = read_yaml(path, "sweep config", SWEEP_HOLDS)
    run_keys = [k for k in data if k in RunConfig.model_fields]
    if run_keys and not set(data) & set(SweepConfig.model_fields):  # a run config: one error, not one per key
        shown = ", ".join(map(repr, run_keys[:4])) + (", ..." if len(run_keys) > 4 else "")
        raise ConfigError(f"{str(path)!r} is a run config (it has {shown}), not a sweep config: run it with "
                          f"`tuneoff run {path}`, or write its settings under `defaults:` in a sweep config")
    return sweep_from(sweep_file(data, path), overrides, f"sweep config {str(path)!r}")  # its paths from its folder


def sweep_from(data: dict, overrides: list[str] | None = None, source: str = "sweep config") -> Sweep:
    """The sweep a sweep config's mapping describes (a file's, or one built in Python, whose paths are
    read from the current folder), with key=value overrides; `source` names it in errors."""
    sweep_level, run_level = split_overrides(overrides or [])
    return expand_sweep(parse_sweep(_apply_sweep_overrides(data, sweep_level), source), run_level)


def _flat_config(run: RunConfig) -> dict:
    return flatten({k: v for k, v in run.resolved().items() if k != "output_dir"})


def varying_keys(runs: list[RunConfig]) -> list[str]:
    """Dotted config keys whose value differs between runs (method options as method.<opt>).
    An option that some runs lack (another method's) counts as differing."""
    return varying([_flat_config(r) for r in runs])
