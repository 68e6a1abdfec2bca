"""Vanilla fine-tuning: every weight of the model plus a new classification head."""
from __future__ import annotations

from tuneoff.methods import ClassifierMethod, register
from tuneoff.methods.base import set_trainable


@register
class Finetune(ClassifierMethod):
    name = "finetune"
    description = "vanilla fine-tuning: all weights + a new classification head"

    def setup(self, train, pool):
        set_trainable(self.model, True)
