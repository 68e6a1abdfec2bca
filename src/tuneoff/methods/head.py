"""Linear probe: the pretrained model is frozen; only the classification head trains.

"Head" is the new classifier (`classifier`/`score`) plus any weight the loader had to initialise
from scratch; a pretrained pooler (BERT) stays frozen with the rest of the model.
"""
from __future__ import annotations

from tuneoff.methods import MethodOptions, register
from tuneoff.methods.layers import PartialMethod


class HeadOptions(MethodOptions):
    """No options: what trains is fixed (the classification head)."""


@register
class LinearProbe(PartialMethod):
    name = "head"
    description = "linear probe: frozen model, only the classification head trains"
    Options = HeadOptions
    search_space = {"train.lr": [1e-3, 1e-2, 1e-1]}  # a lone linear layer needs large steps

    def trainable_names(self) -> set[str]:
        return set(self.head_names())
