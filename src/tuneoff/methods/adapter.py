"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021): small modules added inside every
layer of the frozen model; they train with the classification head (or, with ``scoring=pattern``,
alone, the labels scored as verbalizer words by the pretrained LM head as in `lora`'s pattern scoring).

An adapter maps a sublayer's output y to y + up(act(down(y))): `down` projects the hidden size h to
a bottleneck of b = h // reduction_factor units (at least 1), `up` projects back; with biases that
is 2·h·b + b + h parameters. It sits where Houlsby et al. put it: on the sublayer's output, after its
output projection (and the dropout after it, where the model has one), before the residual add and,
in a post-norm model such as BERT, the layer norm. Placements:

- ``houlsby``: after the attention block and after the feed-forward block of every layer (two per
  layer), gelu by default, as in the paper's code;
- ``pfeiffer``: after the feed-forward block only (one per layer), relu by default. The AdapterFusion
  paper's variant also feeds the adapter the layer-normed sum (the ``adapters`` library's
  ``original_ln_before``), a step that exists in post-norm models only; here both placements use
  the one insertion point above, so they differ only in where the adapters are and their default
  activation.

Initialisation: `down` from a truncated normal (std 0.01, cut at two std: the ``adapters`` library's
Houlsby init), biases zero, and `up` zero, so until the first step the adapted model computes
exactly what the pretrained one does; drawn with the run's training seed. Houlsby et al. also trained
the layer norms; here only the adapters (and the head) train, so the count is the adapters' alone.

Mechanism: each adapter is a child module, named ``adapter``, of the block that holds the module
whose output it reads (BERT: ``attention.output.adapter``, ``output.adapter``; Llama:
``self_attn.adapter``, ``mlp.adapter``), so its weights have stable names for save and load; a
forward hook on that module applies it. No weight of the model is replaced or renamed.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from tuneoff.methods import MethodError, MethodOptions, register
from tuneoff.methods.layers import PartialMethod, PatternScoring, find_layers, model_type, seeded

# model type -> the module of a layer whose output the adapter reads, after the attention block and
# after the feed-forward block: the last step of each before the residual add (and a post-norm
# model's layer norm)
_BERT = ("attention.output.dropout", "output.dropout")
_LLAMA = ("self_attn.o_proj", "mlp.down_proj")
SITES = {
    "bert": _BERT, "roberta": _BERT, "xlm-roberta": _BERT, "electra": _BERT,
    "distilbert": ("attention.out_lin", "ffn.dropout"),
    "gpt2": ("attn.resid_dropout", "mlp.dropout"),
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "qwen3": _LLAMA, "gemma": _LLAMA,
}
PLACEMENTS = {"houlsby": ("attention", "feed_forward"), "pfeiffer": ("feed_forward",)}
DEFAULT_ACTIVATION = {"houlsby": "gelu", "pfeiffer": "relu"}  # each paper's own
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
INIT_STD = 0.01  # of `down`'s weights; `up` starts at zero


class Bottleneck(nn.Module):
    """y -> y + up(act(down(y))); applied to a module's output by `after`, its forward hook."""

    def __init__(self, hidden: int, width: int, activation: str):
        super().__init__()
        self.down = nn.Linear(hidden, width)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(width, hidden)
        with torch.no_grad():
            nn.init.trunc_normal_(self.down.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
            for p in (self.down.bias, self.up.weight, self.up.bias):
                p.zero_()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.up(self.act(self.down(y)))

    def after(self, module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        return self(output)


class AdapterOptions(MethodOptions):
    placement: Literal["houlsby", "pfeiffer"] = Field(
        "pfeiffer", description="houlsby: adapters after the attention and the feed-forward block of each layer; "
                                "pfeiffer: after the feed-forward block only")
    reduction_factor: int = Field(16, ge=1, description="bottleneck width = hidden size // reduction_factor (at least 1)")
    non_linearity: Literal["relu", "gelu", "silu", "tanh"] | None = Field(
        None, description="activation inside the bottleneck; null = the placement's paper's (houlsby: gelu, pfeiffer: relu)")
    layers: list[int] | None = Field(
        None, min_length=1, description="indices of the layers that get adapters (0 = the bottom one, -1 = the top); "
                                        "null = every layer")
    scoring: Literal["head", "pattern"] = Field(
        "head", description="head: new classification head (trained); pattern: verbalizer words through the pretrained LM head")


def chosen_layers(wanted: list[int] | None, count: int) -> list[int]:
    """The layer indices (negative ones from the top) as sorted positions; a MethodError out of range."""
    if wanted is None:
        return list(range(count))
    bad = [i for i in wanted if not -count <= i < count]
    if bad:
        raise MethodError(f"adapter: method.layers {bad} out of range; the model has {count} layers "
                          f"(0..{count - 1}, or -{count}..-1 from the top)")
    return sorted({i % count for i in wanted})


def add_adapters(model: nn.Module, options: AdapterOptions, seed: int) -> list[str]:
    """Put a `Bottleneck` at each of `options`' sites of the chosen layers (weights drawn with `seed`,
    the caller's RNG untouched); returns the adapters' module names, bottom layer first."""
    kind = model_type(model)
    if kind not in SITES:
        raise MethodError(f"adapter: no known place for adapters in model type {kind!r} (known: "
                          f"{', '.join(sorted(SITES))}); use lora or ia3, which find their layers by name")
    attention, feed_forward = SITES[kind]
    paths = {"attention": attention, "feed_forward": feed_forward}
    sites = [paths[part] for part in PLACEMENTS[options.placement]]
    layers_name, layers = find_layers(model)
    hidden = model.config.hidden_size
    width = max(1, hidden // options.reduction_factor)
    activation = options.non_linearity or DEFAULT_ACTIVATION[options.placement]
    names = []
    with seeded(seed, torch.device("cpu")):  # drawn on the CPU, one after another: the same on every device
        for i in chosen_layers(options.layers, len(layers)):
            for site in sites:
                adapter = Bottleneck(hidden, width, activation)
                names.append(_insert(layers[i], site, adapter, f"{layers_name}.{i}", kind))
    return names


def _insert(layer: nn.Module, site: str, adapter: Bottleneck, where: str, kind: str) -> str:
    """`adapter` as the child `adapter` of the block holding `site`, hooked on `site`'s output; its name."""
    parent_path = site.rpartition(".")[0]
    try:
        read = layer.get_submodule(site)
    except AttributeError:
        raise MethodError(f"adapter: model type {kind!r} has no {site!r} in {where}; adapters "
                          "are placed by the module names of the transformers release they were written for") from None
    parent = layer.get_submodule(parent_path)
    if hasattr(parent, "adapter"):
        raise MethodError(f"adapter: {where}.{parent_path} already has an 'adapter'")
    weight = next(parent.parameters())
    parent.add_module("adapter", adapter.to(weight.device, weight.dtype))
    read.register_forward_hook(adapter.after)
    return f"{where}.{parent_path}.adapter"


@register
class Adapter(PatternScoring, PartialMethod):
    name = "adapter"
    description = ("bottleneck adapters (Houlsby / Pfeiffer placements) in each layer of the frozen model "
                   "+ the classification head (or pattern scoring)")
    Options = AdapterOptions
    search_space = {"train.lr": [1e-4, 1e-3, 1e-2]}  # new weights, like peft's adapters: larger steps

    @classmethod
    def version_for(cls, options: AdapterOptions, task=None) -> int:
        """The head: one above `version` on a task of several text fields, as every classification
        head's (`ClassifierMethod.version_for`), so one rule tells every head's runs apart; pattern
        scoring reads the pattern, not joined fields, and keeps `version`."""
        if options.scoring == "pattern":
            return cls.version
        return super().version_for(options, task)

    def __init__(self, options: AdapterOptions, ctx):
        super().__init__(options, ctx)
        self.adapters: list[str] = []  # the adapters' module names, once `setup` added them
        if options.scoring == "pattern":
            self.use_pattern()

    def setup(self, train, pool):
        self.adapters = add_adapters(self.model, self.options, self.ctx.seed)
        super().setup(train, pool)

    def head_names(self) -> list[str]:
        return self.created_weights() if self.scorer else super().head_names()

    def trainable_names(self) -> set[str]:
        prefixes = tuple(a + "." for a in self.adapters)
        return {n for n, _ in self.model.named_parameters() if n.startswith(prefixes)} | set(self.head_names())
