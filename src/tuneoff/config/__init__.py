"""Typed configuration: YAML file < key.sub=value overrides, validated; unknown keys are errors.

- `run`: one run's config (`RunConfig` and its sections); lists of shots and seeds make an
  experiment that `expand()` turns into single runs; `run_id()` is `tuneoff.identity`'s.
- `select`: the `select:` section (how hyperparameters are chosen, over which candidates), the
  checks of shots against what a method needs, and the candidates of a search space.
- `loading`: a config from a YAML file and key=value overrides.
- `main`: the main job, what `tuneoff run` runs without a config file (`main_job`).
- `base`: the error, strict validation and error messages every section shares.
"""
from __future__ import annotations

from tuneoff.config.base import ConfigError, as_list, set_key
from tuneoff.config.loading import TASK_FILE_KEYS, apply_overrides, load_config, parse_override, read_yaml
from tuneoff.config.main import MAIN_JOB, main_job
from tuneoff.config.run import (EvalConfig, ForgettingConfig, MethodConfig, RunConfig, TrainConfig,
                                config_from_dict)
from tuneoff.config.select import SelectConfig, candidates, finite_points, label

__all__ = ["ConfigError", "RunConfig", "TrainConfig", "EvalConfig", "ForgettingConfig", "MethodConfig",
           "SelectConfig", "TASK_FILE_KEYS", "apply_overrides", "as_list", "candidates", "config_from_dict",
           "finite_points", "label", "load_config", "MAIN_JOB", "main_job", "parse_override", "read_yaml", "set_key"]
