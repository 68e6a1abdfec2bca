"""Vanilla fine-tuning: every weight of the model plus a new classification head."""
from __future__ import annotations

from tuneoff.methods import ClassifierMethod, register


@register
class Finetune(ClassifierMethod):
    name = "finetune"
    description = "vanilla fine-tuning: all weights + a new classification head"

    def setup(self, train, pool):
        for p in self.model.parameters():
            p.requires_grad_(True)
