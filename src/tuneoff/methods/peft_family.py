"""Any peft method by its type (`peft`), and what the peft methods of `peft_named` share with it.

Every one wraps the classifier as `peft_methods.PeftMethod` does: task type SEQ_CLS, the
classification head trained whole (one copy), the adapters initialised from the run's seed; so they
are counted, saved and reloaded as lora is.

`peft` takes peft's own config: `method.type`, a `PeftType` name (LOHA, ln-tuning: any case, `-` for
`_`) or its config class's name (LoHaConfig), and `method.options`, keys of that config class. Both
are checked against the installed peft when the config is read: an unknown type lists the known
ones, an unknown key the class's keys, a value of the wrong kind or one peft refuses is named with
peft's message. Keys the run sets itself (task_type, ...) are refused; fields that seed peft's own
random draws (VeRA's projection_prng_key, FourierFT's random_loc_seed, ...) default to the run's seed,
as every random draw of a run does. Prompt-learning types, which put virtual tokens before the
input, are `prompt-tuning`'s and `prefix-tuning`'s; they and the types that cannot serve a
classification head are refused with the reason.

AdaLoRA reallocates its ranks as it trains: peft's `update_and_allocate` runs after every optimizer
step (the loop's `after_optimizer_step`, given the step and the schedule's length, so the rank budget
follows the schedule as the learning rate does), and its orthogonality penalty is part of the loss.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
import warnings
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from tuneoff.methods import MethodError, MethodOptions, register
from tuneoff.methods.peft_methods import PeftMethod, linear_names

# the config keys a run sets itself, and why
SET_BY_RUN = {"task_type": "SEQ_CLS: the model has a classification head", "peft_type": "method.type names it",
              "inference_mode": "a run trains", "base_model_name_or_path": "the run's model",
              "revision": "the run's model", "auto_mapping": "peft sets it", "peft_version": "peft sets it"}
# peft config fields that seed peft's own random draws: the run's seed unless given
SEED_FIELDS = ("projection_prng_key", "random_seed", "random_loc_seed", "generator_seed", "projection_seed",
               "proj_seed")
PROMPT = ("{} is prompt learning (virtual tokens before the input), which a classification head scores right "
          "only as method=prompt-tuning or method=prefix-tuning arrange it; use one of those")
REFUSED = {"POLY": "Poly routes each example through its adapters by a task id, which a one-task run does not have",
           "XLORA": "X-LoRA mixes LoRA adapters trained before (its adapters option), which a run does not have",
           "ADAPTION_PROMPT": "adaption prompts serve a causal LM's own head (peft's CAUSAL_LM), not a "
                              "classification head"}
# keys without which a type trains nothing, and what they are
REQUIRED = {"TRAINABLE_TOKENS": ("token_indices", "the ids of the tokens whose embeddings train, e.g. [5, 17]")}


def peft_types() -> dict[str, type]:
    """The installed peft's types by name -> their config classes."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return {t.value: c for t, c in PEFT_TYPE_TO_CONFIG_MAPPING.items()}


def refusal(name: str) -> str | None:
    """Why `peft` does not run type `name` (None: it does)."""
    from peft.config import PromptLearningConfig

    if issubclass(peft_types()[name], PromptLearningConfig):
        return PROMPT.format(name)
    return REFUSED.get(name)


def peft_type(given: str) -> str:
    """The PeftType name `given` spells (a type name in any case, or its config class's name)."""
    import peft

    known = peft_types()
    key = given.strip().upper().replace("-", "_")
    by_class = {c.__name__.upper(): t for t, c in known.items()}
    name = key if key in known else by_class.get(key)
    if name is None:
        close = difflib.get_close_matches(key, list(known), 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown peft type {given!r}{hint}; the installed peft {peft.__version__} has: "
                         f"{', '.join(sorted(known))}")
    why = refusal(name)
    if why:
        raise ValueError(why)
    return name


KINDS = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", tuple: "a list",
         set: "a list", dict: "a mapping", type(None): "null"}


def kinds(tp) -> set[str] | None:
    """The YAML kinds a config field of type `tp` takes; None: any (a type this check does not know)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [kinds(a) for a in args]
        return None if any(p is None for p in parts) else set().union(*parts)
    if origin is typing.Literal:
        return {KINDS.get(type(a), "text") for a in args}
    base = origin or tp
    if dataclasses.is_dataclass(base):
        return {"a mapping"}
    return {KINDS[base]} if base in KINDS else None


def kind_of(value) -> str:
    return next(k for t, k in KINDS.items() if isinstance(value, t))


def field_value(tp, value):
    """A mapping given for a field whose type is a dataclass (LoRA's eva_config, ...) as that dataclass."""
    if isinstance(value, dict):
        for cls in typing.get_args(tp) or (tp,):
            if dataclasses.is_dataclass(cls):
                return cls(**value)
    return value


def build(name: str, options: dict, seed: int = 0):
    """peft's config of type `name` with `options` for a classification head; a ValueError naming the
    keys peft refuses, with its message."""
    cls = peft_types()[name]
    hints = typing.get_type_hints(cls)
    run = {k: seed for k in SEED_FIELDS if k in hints and k not in options}
    if name == "ADALORA":  # a placeholder: the training loop sets the schedule's length (see RankAllocation)
        run["total_step"] = options.get("tinit", 0) + options.get("tfinal", 0) + 1

    def make(opts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(task_type="SEQ_CLS", **run, **{k: field_value(hints.get(k), v) for k, v in opts.items()})

    try:
        return make(options)
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as e:
        alone = []
        for k in options:
            try:
                make({k: options[k]})
            except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError):
                alone.append(k)
        shown = ", ".join(f"{k}={options[k]!r}" for k in alone or options) or "its defaults"
        raise ValueError(f"{cls.__name__} refuses {shown}: {e}") from None


def check_options(name: str, options: dict) -> None:
    """A ValueError unless `options` are keys and values that peft's config of type `name` accepts."""
    cls = peft_types()[name]
    hints = typing.get_type_hints(cls)
    keys = sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name not in SET_BY_RUN)
    for key, value in options.items():
        if key in SET_BY_RUN or (name == "ADALORA" and key == "total_step"):
            why = SET_BY_RUN.get(key, "the run's training schedule (train.max_steps or train.epochs)")
            raise ValueError(f"{key} is set by the run: {why}")
        if key not in keys:
            close = difflib.get_close_matches(key, keys, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{cls.__name__} has no key {key!r}{hint}; its keys: {', '.join(keys)}")
        allowed = kinds(hints.get(key))
        if allowed is not None and kind_of(value) not in allowed:
            raise ValueError(f"{cls.__name__}.{key} takes {' or '.join(sorted(allowed))}, got {value!r}")
    if name in REQUIRED and not options.get(REQUIRED[name][0]):
        key, what = REQUIRED[name]
        raise ValueError(f"{name} needs method.options.{key}: {what}")
    build(name, options)


def layer_names(model: nn.Module) -> str:
    """The leaf names of the model's linear and normalisation layers, for a message on targets."""
    norms = sorted({n.split(".")[-1] for n in norm_names(model)})
    linear = sorted({n.split(".")[-1] for n in linear_names(model)})
    return f"its linear layers are named: {', '.join(linear)}; its normalisation layers: {', '.join(norms)}"


def norm_names(model: nn.Module, skip=()) -> list[str]:
    """Names of the model's normalisation layers (LayerNorm, RMSNorm, ...) outside the `skip` modules."""
    return [n for n, m in model.named_modules() if n and type(m).__name__.endswith("Norm")
            and not any(n == s or n.startswith(s + ".") for s in skip)]


def target_table(name: str) -> dict:
    """peft's default targets of type `name` by model type."""
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    return getattr(PEFT_TYPE_TO_TUNER_MAPPING[name], "target_module_mapping", {}) or {}


class RankAllocation:
    """AdaLoRA's rank budget, reallocated after each optimizer step with that step's gradients
    (peft's `update_and_allocate`), over phases (tinit, tfinal) that `phases(total)` gives for a
    schedule of `total` steps. peft's pruning ranks the singular values to drop with `kthvalue`, which
    cannot drop none: where the budget keeps every rank (target_r = init_r) nothing is pruned, and
    the sensitivities are only updated."""

    def __init__(self, tuner, phases):
        self.tuner, self.phases = tuner, phases

    def __call__(self, step: int, total: int) -> None:
        tuner = self.tuner
        config = tuner.peft_config[tuner.trainable_adapter_name]
        tinit, tfinal = self.phases(total, config)
        if tinit >= total - tfinal:
            raise MethodError(f"AdaLoRA's phases leave no step to allocate ranks in: tinit={tinit} + tfinal={tfinal} "
                              f"of {total} steps; lower them or train longer")
        config.total_step, config.tinit, config.tfinal = total, tinit, tfinal
        allocator = tuner.rankallocator
        if allocator.budget_schedule(step)[0] < allocator.init_bgt:
            tuner.update_and_allocate(step)
        elif step < total - tfinal:
            allocator.update_ipt(tuner.model)


class PeftFamily(PeftMethod):
    """A peft method of this module or `peft_named`: AdaLoRA's reallocation and penalty wherever its tuner is AdaLoRA,
    peft's own `update_and_allocate` after each step for any other tuner that has one (AdaMSS)."""

    allocate = None  # (step, total) -> None, set up with the adapters
    penalised = False  # whether peft adds a penalty to the loss it computes (AdaLoRA's orthogonality)

    def setup(self, train, pool):
        from peft.tuners.adalora import AdaLoraModel

        try:
            super().setup(train, pool)
        except MethodError as e:
            if not re.search(r"target[_ ]modules", str(e), re.IGNORECASE):
                raise
            raise MethodError(f"{e}; {layer_names(self.model)}") from None
        tuner = self.model.base_model
        if isinstance(tuner, AdaLoraModel):
            self.allocate, self.penalised = RankAllocation(tuner, self.adalora_phases), True
        elif callable(getattr(tuner, "update_and_allocate", None)):
            self.allocate = lambda step, total: tuner.update_and_allocate(step)

    def adalora_phases(self, total: int, config) -> tuple[int, int]:
        """AdaLoRA's (tinit, tfinal) in a schedule of `total` steps: as the config gives them."""
        return config.tinit, config.tfinal

    def after_optimizer_step(self, step: int, total: int) -> None:
        if self.allocate is not None:
            self.allocate(step, total)

    def loss(self, batch):
        if not self.penalised:
            return super().loss(batch)
        # the model's cross-entropy over the labels (the one of `class_logits`) + the penalty peft adds to it
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        return self.model(**inputs, labels=batch["labels"]).loss


# -- peft: any type ------------------------------------------------------------------------------


class PeftOptions(MethodOptions):
    type: str = Field("LORA", description="peft's type (PeftType name, any case, or its config class's name: LORA, "
                                          "LOHA, LOKR, VERA, OFT, BOFT, ADALORA, LN_TUNING, IA3, FOURIERFT, ...)")
    options: dict[str, Any] = Field(
        {}, validate_default=True,
        description="keys of that type's peft config (e.g. {r: 16, use_dora: true}); unset keys keep peft's "
                    "defaults, its default targets included")

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        return peft_type(v)

    @field_validator("options")
    @classmethod
    def _accepted(cls, v: dict, info: ValidationInfo) -> dict:
        if "type" in info.data:  # else the type's own error is said
            check_options(info.data["type"], v)
        return v


@register
class Peft(PeftFamily):
    name = "peft"
    description = "any peft method (method.type, e.g. LOHA) with its own config keys (method.options) + the classification head"
    Options = PeftOptions

    def peft_config(self):
        try:
            return build(self.options.type, self.options.options, self.ctx.seed)
        except ValueError as e:
            raise MethodError(f"peft: {e}") from None
