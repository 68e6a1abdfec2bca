"""Adaptive fine-tuning: freeze the bottom of the model, decay the learning rate with depth, and
optionally re-initialise the top layers (Howard & Ruder 2018; Zhang et al. 2021, "Revisiting
few-sample BERT fine-tuning").

With L transformer layers (found by `layers.find_layers`) and decay d, the top layer learns at
lr, the one below at lr·d, ..., the bottom layer at lr·d^(L-1) and the embeddings at lr·d^L.
Everything above the layers (BERT's pooler, a decoder's final norm, the head) learns at the full
lr. Frozen parts get no parameter group.
"""
from __future__ import annotations

from pydantic import Field, field_validator

from tuneoff.methods import MethodError, MethodOptions, register
from tuneoff.methods.base import NO_DECAY
from tuneoff.methods.layers import PartialMethod, embedding_params, find_layers, model_type, params_under, seeded


class AdaptiveOptions(MethodOptions):
    freeze_layers: int | float = Field(
        0, ge=0, description="lowest layers to freeze: a count, or a fraction in (0,1) of the layers (rounded down)")
    freeze_embeddings: bool = Field(True, description="freeze the embeddings (token, position, type, their norm)")
    lr_decay: float = Field(0.9, gt=0, le=1, description="learning-rate factor per layer going down from the top")
    reinit_layers: int = Field(0, ge=0, description="re-initialise the top K layers with the model's own init")

    @field_validator("freeze_layers")
    @classmethod
    def _fraction(cls, v: int | float) -> int | float:
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError(f"a fraction of the layers must be in (0, 1), got {v}; give a count as a whole number")
        return v


@register
class Adaptive(PartialMethod):
    name = "adaptive"
    description = "adaptive fine-tuning: frozen embeddings + lowest layers, layer-wise lr decay, optional top-layer re-init"
    Options = AdaptiveOptions

    def setup(self, train, pool):
        o = self.options
        self.layers_name, self.layers = find_layers(self.model)
        n = len(self.layers)
        self.frozen_layers = int(o.freeze_layers * n) if isinstance(o.freeze_layers, float) else o.freeze_layers
        if self.frozen_layers >= n:
            raise MethodError(f"adaptive: freeze_layers={o.freeze_layers} freezes {self.frozen_layers} of the "
                              f"{n} layers of model type {model_type(self.model)!r}; at least one must train "
                              "(use method=head for a frozen model)")
        if o.reinit_layers > n - self.frozen_layers:
            raise MethodError(f"adaptive: reinit_layers={o.reinit_layers} would re-initialise frozen layers "
                              f"({n} layers, the lowest {self.frozen_layers} frozen)")
        # depth of each parameter: its lr is lr·decay^depth
        self.depth: dict[str, int] = {}
        self.group_of: dict[str, str] = {}
        for i in range(n):
            for name in params_under(self.model, [f"{self.layers_name}.{i}"]):
                self.depth[name], self.group_of[name] = n - 1 - i, f"layer.{i}"
        for name in embedding_params(self.model):
            self.depth[name], self.group_of[name] = n, "embeddings"
        head = set(self.head_names())
        for name, _ in self.model.named_parameters():
            if name not in self.depth:
                self.depth[name], self.group_of[name] = 0, "head" if name in head else "top"
        super().setup(train, pool)
        if o.reinit_layers:
            self.reinit(range(n - o.reinit_layers, n))

    def trainable_names(self) -> set[str]:
        frozen = {f"layer.{i}" for i in range(self.frozen_layers)}
        if self.options.freeze_embeddings:
            frozen.add("embeddings")
        return {n for n, g in self.group_of.items() if g not in frozen}

    def reinit(self, which) -> None:
        """The model's own `_init_weights` on every module of these layers, seeded by the run seed.
        transformers >= 5 skips tensors flagged `_is_hf_initialized` (set on loaded weights), so the
        flag is cleared first; a re-init that changes nothing is an error, not a silent no-op."""
        init = getattr(self.model, "_init_weights", None)
        if init is None:
            raise MethodError(f"adaptive: {type(self.model).__name__} has no _init_weights to re-initialise layers with")
        changed = False
        with seeded(self.ctx.seed, self.ctx.device):
            for i in which:
                layer = self.layers[i]
                before = [t.detach().clone() for t in layer.parameters()]
                for t in [*layer.parameters(), *layer.buffers()]:
                    if getattr(t, "_is_hf_initialized", False):
                        t._is_hf_initialized = False
                layer.apply(init)
                changed |= any(not b.equal(a) for b, a in zip(before, layer.parameters()))
        if not changed:
            raise MethodError(f"adaptive: re-initialising layers {list(which)} changed no weight")

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """One pair of AdamW groups (decay / no decay) per depth, each with its own "lr"; "name" says which."""
        groups: dict[tuple[str, bool], dict] = {}
        for n, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            decay = not any(k in n for k in NO_DECAY)
            g = groups.setdefault((self.group_of[n], decay), {
                "name": self.group_of[n] + ("" if decay else ".no_decay"), "params": [],
                "weight_decay": weight_decay if decay else 0.0, "lr": lr * self.options.lr_decay ** self.depth[n]})
            g["params"].append(p)
        return list(groups.values())
