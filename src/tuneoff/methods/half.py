"""Half fine-tuning (HFT; Hui et al., 2024): in every transformer layer, half of the weights stay frozen.

A *group* is one submodule of a layer that holds weights of its own (a linear map with its bias:
attention query/key/value/output, MLP up/gate/down; a norm). As in the paper's category-level
selection, each layer's groups are split into categories (attention, MLP, norm) and a random half
of each category is frozen; a category with an odd number n of groups freezes n//2 or n//2 + 1 of
them with equal odds, so half is frozen on average. The choice comes from a local
`random.Random(half_seed)` (default: the run's training seed), drawn layer by layer, bottom first.

Embeddings policy: outside the layers everything trains as in full fine-tuning (embeddings,
final norm, pooler, head) unless ``freeze_embeddings=true``.
"""
from __future__ import annotations

import random

from pydantic import Field

from tuneoff.methods import MethodOptions, register
from tuneoff.methods.layers import PartialMethod, embedding_params, find_layers

CATEGORIES = ("attention", "mlp", "norm")


def category(name: str, module) -> str:
    """attention | mlp | norm for a submodule of a layer, from its class and path."""
    if "norm" in type(module).__name__.lower() or "norm" in name.lower().rsplit(".", 1)[-1]:
        return "norm"
    if any(k in name.lower() for k in ("attn", "attention")):
        return "attention"
    return "mlp"


def layer_groups(layer) -> dict[str, list[str]]:
    """category -> names (within the layer) of its submodules that hold weights directly, in module order."""
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for name, mod in layer.named_modules():
        if name and any(True for _ in mod.parameters(recurse=False)):
            out[category(name, mod)].append(name)
    return out


class HalfOptions(MethodOptions):
    half_seed: int | None = Field(None, description="seed of the choice of frozen groups; null = the run's training seed")
    freeze_embeddings: bool = Field(False, description="also freeze the embeddings (by default they train, as in full fine-tuning)")


@register
class Half(PartialMethod):
    name = "half"
    description = "half fine-tuning (HFT): a random half of each layer's weight groups frozen, the rest and the head train"
    Options = HalfOptions

    def choose(self) -> list[str]:
        """Full names of the frozen groups (submodules), drawn with a local RNG."""
        seed = self.options.half_seed if self.options.half_seed is not None else self.ctx.seed
        rng = random.Random(seed)
        layers_name, layers = find_layers(self.model)
        frozen = []
        for i, layer in enumerate(layers):
            for cat, names in layer_groups(layer).items():
                k = len(names) // 2 + (len(names) % 2 and rng.random() < 0.5)
                frozen += [f"{layers_name}.{i}.{n}" for n in sorted(rng.sample(names, k), key=names.index)]
        return frozen

    def setup(self, train, pool):
        self.frozen_groups = self.choose()
        super().setup(train, pool)

    def trainable_names(self) -> set[str]:
        frozen = set()
        for g in self.frozen_groups:
            frozen |= {f"{g}.{n}" for n, _ in self.model.get_submodule(g).named_parameters(recurse=False)}
        if self.options.freeze_embeddings:
            frozen |= set(embedding_params(self.model))
        frozen -= set(self.head_names())
        return {n for n, _ in self.model.named_parameters()} - frozen
