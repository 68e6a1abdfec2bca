"""Parameter-efficient methods through peft: lora, ia3, prompt-tuning, prefix-tuning.

Each wraps the classifier model with `peft.get_peft_model` (task type SEQ_CLS) and keeps the
classification head trainable. peft keeps the head trainable by wrapping it in a
`ModulesToSaveWrapper` that holds a frozen original *and* a trainable copy; we put the copy back
in the original's place, so the model holds one head, the one trained and used, and the
parameter counts (`requires_grad`) count it once. `save` writes every trainable tensor (adapters
+ head) under its name in the wrapped model; `load` puts them back into a freshly prepared
method, and refuses a file that does not hold exactly those tensors.

`lora` with ``scoring=pattern`` instead scores the task's pattern through the pretrained LM head
(the scorer of `methods/pattern.py`) and trains only the LoRA matrices (plus any LM-head weight the
checkpoint lacked, which the loader initialised at random and the run notes as a warning).

Prompt tuning on an encoder prepends the virtual tokens before [CLS], so the classifier pools the
first virtual token's output (peft's behaviour); on a decoder the last real token is scored.
"""
from __future__ import annotations

import tempfile
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from tuneoff.methods import ClassifierMethod, MethodError, MethodOptions, register
from tuneoff.methods.base import set_trainable
from tuneoff.methods.kvcache import cache_arg
from tuneoff.methods.layers import PatternScoring, head_modules, head_params, load_exact, model_type, seeded
from tuneoff.space import Length

# When the peft table has no entry for a model type: the first of these whose names all exist.
FALLBACK_ATTENTION = (("q_proj", "v_proj"), ("query", "value"), ("q", "v"), ("c_attn",), ("qkv_proj",),
                      ("Wqkv",), ("query_key_value",))


def linear_names(model: nn.Module, skip=()) -> list[str]:
    """Names of the model's linear layers (nn.Linear, GPT-2's Conv1D), outside the `skip` modules."""
    from transformers.pytorch_utils import Conv1D

    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, Conv1D))
            and not any(n == s or n.startswith(s + ".") for s in skip)]


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)  # peft's rule for a list of names


def resolve_targets(model: nn.Module, given: list[str] | None, table: dict, what: str, skip=()) -> list[str]:
    """`given`, or the defaults for this model type; every target must name a linear layer."""
    names = linear_names(model, skip)
    kind = model_type(model)
    targets = list(given) if given else list(table.get(kind, []))
    if not targets:
        targets = next((list(c) for c in FALLBACK_ATTENTION if all(any(_matches(n, t) for n in names) for t in c)), [])
    leaves = sorted({n.split(".")[-1] for n in names})
    if not targets:
        raise MethodError(f"no default {what} for model type {kind!r}; set them, e.g. "
                          f"method.target_modules=[...]; its linear layers are named: {', '.join(leaves)}")
    for t in targets:
        if not any(_matches(n, t) for n in names):
            raise MethodError(f"{what}: {t!r} matches no linear layer of model type {kind!r}; "
                              f"its linear layers are named: {', '.join(leaves)}")
    return targets


def unwrap_modules_to_save(model: nn.Module) -> None:
    """Replace each peft ModulesToSaveWrapper by its trainable copy (see the module docstring)."""
    from peft.utils import ModulesToSaveWrapper

    for name, mod in list(model.named_modules()):
        if isinstance(mod, ModulesToSaveWrapper):
            parent, _, child = name.rpartition(".")
            copy = mod.modules_to_save[mod.active_adapters[0]]
            setattr(model.get_submodule(parent) if parent else model, child, copy)


def check_positions(method: ClassifierMethod, extra: int) -> None:
    """Virtual tokens take positions: a model with a learned position table must have room for them."""
    model = method.model
    learned = any(isinstance(m, nn.Embedding) and "position" in n for n, m in model.named_modules())
    limit = getattr(model.config, "max_position_embeddings", None)
    if learned and limit and method.max_length + extra > limit:
        raise MethodError(f"{method.name}: {extra} virtual tokens + max_length={method.max_length} exceed "
                          f"the {limit} positions of model type {model_type(model)!r}; lower max_length "
                          f"to {limit - extra} or num_virtual_tokens")


class PeftMethod(ClassifierMethod):
    """A classifier wrapped by peft; subclasses give the peft config."""

    task_type: ClassVar[str | None] = "SEQ_CLS"
    search_space = {"train.lr": [1e-4, 1e-3, 1e-2]}  # adapters take larger steps than full fine-tuning
    frozen_base = True  # the base may load quantized (`quantization`)

    def peft_config(self):
        raise NotImplementedError

    def trainable_head(self) -> list[str]:
        """Names (in the unwrapped model) of the weights that train besides the adapter."""
        return head_params(self.model, self.ctx.loaded.info.get("newly_initialised", ()))

    def targets(self, given: list[str] | None, table: dict, what: str) -> list[str]:
        """`resolve_targets` on this method's model, the trained head left out (it trains whole, not adapted)."""
        skip = [n.rsplit(".", 1)[0] for n in self.trainable_head()]
        return resolve_targets(self.model, given, table, what, skip)

    def setup(self, train, pool):
        from peft import get_peft_model

        base = self.model
        head = self.trainable_head()
        config = self.peft_config()
        set_trainable(base, False)
        with seeded(self.ctx.seed, self.ctx.device):  # adapter init; the caller's RNG is untouched
            try:
                wrapped = get_peft_model(base, config)
            except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as e:
                raise MethodError(f"{self.name} could not wrap model type {model_type(base)!r}: {e}") from None
        unwrap_modules_to_save(wrapped)
        params = dict(wrapped.get_base_model().named_parameters())
        for n in head:
            if n not in params:
                raise MethodError(f"{self.name}: head weight {n!r} was renamed by peft; exclude it from the targets")
            params[n].requires_grad_(True)
        self.model = wrapped.to(self.ctx.device)

    def load(self, folder):
        load_exact(self.model, folder)


# -- LoRA -------------------------------------------------------------------------------------


class LoraShapeOptions(MethodOptions):
    """What every LoRA of a classification head shares (lora, and the LoRA variants of `peft_family`)."""

    r: int = Field(8, ge=1, description="rank of the low-rank update B·A")
    alpha: float = Field(16, gt=0, description="scaling numerator: the update is (alpha / r)·B·A")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the input of the LoRA branch")
    target_modules: list[str] | None = Field(
        None, description="linear layers to adapt (name or dotted suffix); null = attention query/value of this architecture")


class LoraOptions(LoraShapeOptions):
    scoring: Literal["head", "pattern"] = Field(
        "head", description="head: new classification head (trained); pattern: verbalizer words through the pretrained LM head")


@register
class Lora(PatternScoring, PeftMethod):
    name = "lora"
    description = "LoRA (peft): low-rank updates of attention weights + the classification head (or pattern scoring)"
    Options = LoraOptions

    @classmethod
    def version_for(cls, options: LoraOptions, task=None) -> int:
        if options.scoring == "pattern":
            return 2  # 2: the resolved pattern is recorded
        return super().version_for(options, task)  # the head: 2 on a task of several texts (their separator)

    def __init__(self, options: LoraOptions, ctx):
        super().__init__(options, ctx)
        if options.scoring == "pattern":
            if self.model.get_output_embeddings() is None:
                raise MethodError(
                    "lora with scoring=pattern needs the model loaded with its LM head (see Method.head_for), "
                    f"but it came with a classification head ({type(self.model).__name__})")
            self.task_type = None  # a plain PeftModel: the scorer runs the LoRA-injected LM itself
            self.use_pattern()

    def trainable_head(self) -> list[str]:
        return self.created_weights() if self.scorer else super().trainable_head()

    def peft_config(self):
        return lora_config(self, self.options)


def lora_config(method: PeftMethod, options: LoraShapeOptions, **extra):
    """peft's LoraConfig for `options` on `method`'s model (its targets resolved, the head left out);
    `extra`: further LoraConfig keys (the LoRA variants' use_dora, init_lora_weights, ...)."""
    from peft import LoraConfig
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    targets = method.targets(options.target_modules, TABLE, "LoRA target modules")
    return LoraConfig(task_type=method.task_type, r=options.r, lora_alpha=options.alpha,
                      lora_dropout=options.dropout, target_modules=targets, **extra)


def lora_model(ctx, options: LoraOptions):
    """`ctx`'s loaded model with `lora`'s own set-up for these options done on it (target layers,
    seeded adapter init, what trains besides the adapters): the LoRA of every method that has one."""
    lora = Lora(options, ctx)
    lora.setup([], [])
    return lora.model


# -- IA3 --------------------------------------------------------------------------------------


class IA3Options(MethodOptions):
    target_modules: list[str] | None = Field(
        None, description="layers whose activations are rescaled; null = peft's defaults for this architecture (keys, values, FFN output)")
    feedforward_modules: list[str] | None = Field(
        None, description="which targets are feed-forward (their input is rescaled); null = this architecture's defaults among the targets")


@register
class IA3(PeftMethod):
    name = "ia3"
    description = "(IA)^3 (peft): learned rescaling of keys, values and FFN activations + the classification head"
    Options = IA3Options

    def peft_config(self):
        from peft import IA3Config
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FF
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TABLE

        o = self.options
        targets = self.targets(o.target_modules, TABLE, "IA3 target modules")
        if o.feedforward_modules is None:
            ff = [t for t in FF.get(model_type(self.model), []) if t in targets]
        else:
            ff = list(o.feedforward_modules)
            stray = [f for f in ff if f not in targets]
            if stray:
                raise MethodError(f"ia3: feedforward_modules {stray} are not among target_modules {targets}")
        return IA3Config(task_type=self.task_type, target_modules=targets, feedforward_modules=ff)


# -- prompt and prefix tuning ----------------------------------------------------------------


class PromptTuningOptions(MethodOptions):
    num_virtual_tokens: int = Field(20, ge=1, description="trainable soft-prompt vectors prepended to the input embeddings")
    init_text: str | None = Field(
        None, description="initialise the prompt from this text's token embeddings (tiled); null = embeddings of random vocabulary tokens")


class VirtualTokens(PeftMethod):
    """Prompt and prefix tuning put virtual tokens before the input. On a decoder, batches are
    right-padded whatever the tokenizer's default, so the virtual tokens sit right before the
    text: with left padding the pads would come between them, and how far the prompt is from the
    text (and so each example's score) would depend on the batch it is in."""

    def padding_side(self):
        return "right" if self.ctx.loaded.is_decoder else None


@register
class PromptTuning(VirtualTokens):
    name = "prompt-tuning"
    description = "prompt tuning (peft): trainable soft-prompt embeddings + the classification head"
    search_space = {"train.lr": [1e-3, 1e-2, 1e-1]}  # soft prompts need very large steps
    search_length = Length(1, 27, 729, 3)  # ... and many more of them: rungs 1, 3, 9, 27 epochs, up to 729
    Options = PromptTuningOptions

    def peft_config(self):
        from peft import PromptTuningConfig, PromptTuningInit

        o = self.options
        check_positions(self, o.num_virtual_tokens)
        if o.init_text is None:
            return PromptTuningConfig(task_type=self.task_type, num_virtual_tokens=o.num_virtual_tokens,
                                      prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB)
        if not o.init_text.strip():
            raise MethodError("prompt-tuning: init_text is empty")
        # peft reads the tokenizer from a folder: hand it this run's own tokenizer
        self._tok_dir = tempfile.TemporaryDirectory(prefix="tuneoff-tok-")
        self.tokenizer.save_pretrained(self._tok_dir.name)
        return PromptTuningConfig(task_type=self.task_type, num_virtual_tokens=o.num_virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=o.init_text,
                                  tokenizer_name_or_path=self._tok_dir.name)

    def setup(self, train, pool):
        try:
            super().setup(train, pool)
        finally:
            if getattr(self, "_tok_dir", None):
                self._tok_dir.cleanup()
                self._tok_dir = None

    def class_logits(self, batch):
        if not self.ctx.loaded.is_decoder:
            return super().class_logits(batch)  # an encoder pools its first position (the first virtual token)
        # peft feeds a decoder classifier `inputs_embeds`, so it cannot find the last real token and
        # scores the last position, a pad in a right-padded batch: read the head at the right place.
        base = self.model.get_base_model()
        head = base.get_submodule(head_modules(base)[0])
        seen = {}
        hook = head.register_forward_hook(lambda mod, args, out: seen.__setitem__("logits", out))
        try:
            inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            self.model(**inputs)
        finally:
            hook.remove()
        logits = seen["logits"]  # [batch, virtual + length, labels]
        last = self.options.num_virtual_tokens + batch["attention_mask"].sum(1) - 1
        return logits[torch.arange(logits.shape[0], device=logits.device), last]


class PrefixTuningOptions(MethodOptions):
    num_virtual_tokens: int = Field(20, ge=1, description="trainable key/value vectors prepended in every layer")


@register
class PrefixTuning(VirtualTokens):
    name = "prefix-tuning"
    description = "prefix tuning (peft): trainable keys/values in every attention layer + the classification head"
    search_space = {"train.lr": [1e-3, 1e-2, 1e-1]}
    search_length = Length(1, 27, 729, 3)
    Options = PrefixTuningOptions
    no_checkpointing = ("its keys and values reach the model as a cache, which activation checkpointing makes "
                        "transformers drop")

    def peft_config(self):
        from peft import PrefixTuningConfig

        check_positions(self, self.options.num_virtual_tokens)
        return PrefixTuningConfig(task_type=self.task_type, num_virtual_tokens=self.options.num_virtual_tokens)

    def class_logits(self, batch):
        # What peft's own forward does (prompt keys/values as the model's cache, the attention mask
        # widened by the virtual tokens), with the cache passed under the name this transformers
        # release reads: peft (0.21) looks for a `past_key_values` argument, which transformers 5.24
        # renamed to `cache`, and refuses the model where it does not find it.
        base = self.model.get_base_model()
        ids, mask = batch["input_ids"], batch["attention_mask"]
        cache = self.model.get_prompt(batch_size=ids.shape[0])
        mask = torch.cat([mask.new_ones(ids.shape[0], self.options.num_virtual_tokens), mask], dim=1)
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "token_type_ids")}
        return base(attention_mask=mask, **inputs, **{cache_arg(base): cache}).logits
