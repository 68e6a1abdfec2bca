"""Where things are in a model, found generically: the transformer layer list, the embeddings and
the classification head; `PartialMethod`, the base of methods that train a subset of weights; and
`PatternScoring`, a classifier method's optional scoring through the LM head.

Not a method (it registers nothing): the helpers shared by `head`, `bitfit`, `adaptive`, `half`,
`adapter` and the peft methods.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from tuneoff.methods.base import ClassifierMethod, MethodError, set_trainable

# The top-level modules of a new classification head, the one that gives the logits first
# (DistilBERT puts `pre_classifier` before its `classifier`).
HEAD_MODULES = ("score", "classifier", "pre_classifier")

# Where the layer list usually lives, relative to the backbone (`model.base_model`).
KNOWN_LAYER_PATHS = ("layers", "encoder.layer", "encoder.layers", "decoder.layers", "h", "layer", "blocks",
                     "block", "transformer.layer", "transformer.h")


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _is_stack(module: nn.Module) -> bool:
    """A non-empty ModuleList of blocks of one class that hold weights."""
    return (isinstance(module, nn.ModuleList) and len(module) > 0
            and len({type(m) for m in module}) == 1 and _has_params(module[0]))


def find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(name, list) of the model's stack of transformer layers, bottom layer first.

    Known places are tried first (Llama: ``model.layers``, BERT: ``bert.encoder.layer``, GPT-2:
    ``transformer.h``); otherwise the outermost, longest ``nn.ModuleList`` of identical blocks is
    taken (lists nested inside another stack's blocks, e.g. MoE experts, are skipped)."""
    names = {id(m): n for n, m in model.named_modules()}
    backbone = getattr(model, "base_model", model)
    for path in KNOWN_LAYER_PATHS:
        try:
            mod = backbone.get_submodule(path)
        except AttributeError:
            continue
        if _is_stack(mod):
            return names[id(mod)], mod
    stacks = [(n, m) for n, m in model.named_modules() if _is_stack(m)]
    outer = [(n, m) for n, m in stacks if not any(n.startswith(o + ".") for o, _ in stacks if o != n)]
    if not outer:
        raise MethodError(f"could not find a list of transformer layers in {type(model).__name__}")
    longest = max(len(m) for _, m in outer)
    best = [(n, m) for n, m in outer if len(m) == longest]
    if len(best) > 1:
        raise MethodError(f"{type(model).__name__} has several layer stacks of {longest} blocks "
                          f"({', '.join(n for n, _ in best)}); this method supports one stack")
    return best[0]


def _inside(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def embedding_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The input embeddings and whatever else embeds a token before the first layer.

    ``get_input_embeddings()``; if its parent is a dedicated block outside the layers (BERT's
    ``bert.embeddings``: word, position and token-type embeddings plus their LayerNorm) the whole
    block; and any other ``nn.Embedding`` outside the layer stack (GPT-2's position table ``wpe``)."""
    layers_name, _ = find_layers(model)
    names = {id(m): n for n, m in model.named_modules()}
    emb = model.get_input_embeddings()
    if emb is None or id(emb) not in names:
        raise MethodError(f"could not find the input embeddings of {type(model).__name__}")
    emb_name = names[id(emb)]
    parent_name = emb_name.rpartition(".")[0]
    found = {emb_name: emb}
    if parent_name and not _inside(layers_name, parent_name):
        found = {parent_name: model.get_submodule(parent_name)}
    for n, m in model.named_modules():
        if isinstance(m, nn.Embedding) and not _inside(n, layers_name) and not any(_inside(n, f) for f in found):
            found[n] = m
    return found


def params_under(model: nn.Module, prefixes) -> list[str]:
    """Names of the parameters inside any of the named submodules."""
    prefixes = list(prefixes)
    return [n for n, _ in model.named_parameters() if any(_inside(n, p) for p in prefixes)]


def embedding_params(model: nn.Module) -> list[str]:
    return params_under(model, embedding_modules(model))


def head_modules(model: nn.Module) -> list[str]:
    """Names of the top-level modules of the classification head, the one that gives the logits first."""
    found = [n for n in HEAD_MODULES if isinstance(getattr(model, n, None), nn.Module)]
    if not found or found[0] == "pre_classifier":
        raise MethodError(f"could not find the classification head of {type(model).__name__}")
    return found


def classifier_head(model: nn.Module) -> list[str]:
    """Names of the parameters of the new classification head (`score`, `classifier`, ...)."""
    heads = head_modules(model)
    return [n for n, _ in model.named_parameters() if n.split(".")[0] in heads]


def head_params(model: nn.Module, newly_initialised=()) -> list[str]:
    """The classification head, plus any weight the loader initialised from scratch (e.g. a pooler
    missing from the checkpoint): a weight nobody trained cannot stay frozen."""
    names = {n for n, _ in model.named_parameters()}
    return sorted(set(classifier_head(model)) | (set(newly_initialised) & names))


def model_type(model: nn.Module) -> str:
    return getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Draw from torch's global RNG with `seed`, and leave the caller's RNG state as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def load_exact(model: nn.Module, folder: Path) -> None:
    """Load trainable.safetensors: it must hold exactly this model's trainable parameters, shapes included."""
    from safetensors.torch import load_file

    state = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    want = {n for n, p in params.items() if p.requires_grad}
    missing, unexpected = sorted(want - set(state)), sorted(set(state) - want)
    if missing or unexpected:
        raise MethodError(f"saved weights in {folder} do not fit this method's trainable parameters: "
                          f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for n, t in state.items():
        if tuple(t.shape) != tuple(params[n].shape):
            raise MethodError(f"saved weight {n} has shape {tuple(t.shape)}, the model has {tuple(params[n].shape)}")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))


class PartialMethod(ClassifierMethod):
    """A classifier that trains a chosen subset of the model's weights (its own; `adapter` adds its
    modules before calling `setup`, which then chooses among them too)."""

    def trainable_names(self) -> set[str]:
        raise NotImplementedError

    def head_names(self) -> list[str]:
        return head_params(self.model, self.ctx.loaded.info.get("newly_initialised", ()))

    def setup(self, train, pool):
        chosen = self.trainable_names()
        unknown = chosen - {n for n, _ in self.model.named_parameters()}
        assert not unknown, f"{self.name}: no such parameters {sorted(unknown)[:5]}"
        set_trainable(self.model, chosen)

    def load(self, folder: Path) -> None:
        load_exact(self.model, folder)


class PatternScoring:
    """The `scoring` option of a classifier method that can score by pattern instead (`lora`,
    `adapter`): with `scoring=pattern` (`use_pattern`) the input is rendered through the task's
    pattern and each label scored as its verbalizer word by the pretrained LM head
    (`methods/pattern.py`); otherwise the classification head scores, as the base class does."""

    scorer = None  # the LMScorer once `use_pattern` ran; None: the classification head scores

    @classmethod
    def head_for(cls, options) -> str:
        """The LM head for pattern scoring, else the classification head."""
        return "lm" if options.scoring == "pattern" else "classifier"

    def use_pattern(self) -> None:
        from tuneoff.methods.pattern import scorer_for

        self.scorer = scorer_for(self)

    def created_weights(self) -> list[str]:
        """What trains of the model's own weights under pattern scoring: the pretrained LM head stays
        frozen; only a weight the loader had to create (and initialised at random) trains."""
        names = {n for n, _ in self.model.named_parameters()}
        return sorted(set(self.ctx.loaded.info.get("newly_initialised", ())) & names)

    def prompt_example(self, example):
        return self.scorer.prompt(example) if self.scorer else super().prompt_example(example)

    def collate(self, examples):
        return self.scorer.encode(examples) if self.scorer else super().collate(examples)

    def class_logits(self, batch):
        return self.scorer.scores(self.model, batch) if self.scorer else super().class_logits(batch)
