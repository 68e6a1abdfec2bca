"""A config from a YAML file and key=value overrides (the file first, each override after it)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneoff import yamlfile
from tuneoff.config import paths
from tuneoff.config.base import ConfigError, as_number, set_key, with_current_keys
from tuneoff.config.run import RunConfig, config_from_dict
from tuneoff.config.select import check_chosen_not_given

# keys only a task file has (a run config or sweep file with one of them is a task file given in its place)
TASK_FILE_KEYS = ("name", "text_fields", "label_names", "patterns", "default_pattern", "instruction")
# keys only a sweep config has (a run config with one of them, and no run setting, is a sweep config)
SWEEP_FILE_KEYS = ("defaults", "grid", "methods")
# what a run config file holds, said when it holds something else
CONFIG_HOLDS = "a run's settings, e.g. task: demo, model: minilm-l6, method: lora, shots: [8, 32]"


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.lr=1e-4` -> (["train", "lr"], 1e-4). Values are parsed as YAML (safe)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value (e.g. shots=16 or train.lr=1e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yamlfile.parse(raw) if raw.strip() else None
    except yamlfile.DuplicateKey as e:
        raise ConfigError(f"override {item!r}: {e}") from None
    except yamlfile.YAMLError:
        value = raw
    return key.split("."), as_number(yamlfile.bounded(value, f"override {item!r}", ConfigError))


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = with_current_keys(json.loads(json.dumps(data)))  # deep copy; an override then replaces an old name's value
    for item in overrides:
        path, value = parse_override(item)
        set_key(data, path, value, f"override {item!r}")
    return data


def read_yaml(path: str | Path, what: str = "config file", holds: str = CONFIG_HOLDS) -> dict:
    """The mapping a config (or sweep) file holds; a ConfigError naming the file otherwise."""
    p = Path(path)
    hint = "; a setting is written key=value, e.g. shots=8" if p.suffix not in (".yaml", ".yml") else ""
    data = yamlfile.mapping(yamlfile.read_text(p, what, ConfigError, hint), p, what, ConfigError, holds)
    task_keys = [k for k in TASK_FILE_KEYS if k in data]
    if task_keys:
        raise ConfigError(f"{str(p)!r} is a task file (it has {', '.join(map(repr, task_keys))}), not a config: "
                          f"name it as the task, e.g. `tuneoff run task={p}` (in a YAML config or a sweep's "
                          f"defaults: `task: {p}`)")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Build a validated config from an optional YAML file and key=value overrides."""
    data = paths.config_file(read_yaml(path), path) if path else {}  # its paths read from its folder
    keys = sweep_keys(data)
    if keys:
        raise ConfigError(f"{str(path)!r} is a sweep config (it has {', '.join(map(repr, keys))}), not a run "
                          f"config: run it with `tuneoff sweep {path}`")
    return config_with(data, overrides or [])


def sweep_keys(data: dict) -> list[str]:
    """The keys that make a config file's mapping a sweep config (`defaults`, `grid`, `methods`, and
    none of a run's settings beside them); [] for a run config."""
    keys = [k for k in SWEEP_FILE_KEYS if k in data]
    return keys if keys and not set(data) & set(RunConfig.model_fields) else []


def config_with(data: dict, overrides: list[str]) -> RunConfig:
    """A validated config from `data` with key=value `overrides` applied after it. An override of a
    key that the config's selection chooses (train.lr=1e-4 while each method chooses its learning
    rate) would be overwritten by the choice without a word: a ConfigError saying what to write."""
    cfg = config_from_dict(apply_overrides(data, overrides))
    try:
        check_chosen_not_given(cfg, {".".join(parse_override(o)[0]): f"override {o!r}" for o in overrides})
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg
