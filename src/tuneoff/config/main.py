"""The main job: what `tuneoff run` runs when it is given nothing (no config file, no key=value
settings), on the built-in offline defaults; `examples/demo.yaml` writes it out key by key.

It is a comparison that ends with an answer, so it compares two methods (a recommendation needs a
second method to compare the best with: with one there is "nothing to compare it with"), each
choosing its own learning rate by the same selection from its few labels (a linear probe at full
fine-tuning's learning rate would lose for the rate, not for the method), on as many few-shot
splits as the recommendation's paired test needs (`report.claims.MIN_PAIRS`: 5). Full fine-tuning
against the linear probe: the most and the least a method can train, and the first question of a
user with a handful of labels. Both run on the embedded 22M-parameter encoder, so the job takes
minutes on a laptop CPU. What is not set here is `RunConfig`'s default (task demo, model
minilm-l6, shots 8 and 32, the whole eval sets), as for any config.
"""
from __future__ import annotations

from tuneoff.config.loading import config_with
from tuneoff.config.run import RunConfig

MAIN_JOB: dict = {
    "method": ["finetune", "head"],
    "data_seed": [0, 1, 2, 3, 4],
    "train": {"epochs": 8},  # 8 passes at 8 shots per class = 16 steps of 8 examples; 64 at 32 shots
    "select": {"protocol": "cv", "search": "grid", "folds": 2, "budget": "frugal"},
}


def main_job(overrides: list[str] | None = None) -> RunConfig:
    """The main job's config, with key=value `overrides` applied after it (one of a key its selection
    chooses is a ConfigError: `loading.config_with`)."""
    return config_with(MAIN_JOB, overrides or [])
