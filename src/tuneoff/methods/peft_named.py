"""Named peft methods, each with its own options and search space: the LoRA variants dora, rslora,
pissa, olora and loraplus; vera, adalora, loha, lokr, oft and ln-tuning.

Each wraps the classifier as every peft method does (`peft_family.PeftFamily`: task type SEQ_CLS,
the classification head trained whole, the adapters initialised from the run's seed); what `peft`
with the same type would do with peft's defaults, these do with defaults and a search space chosen
for a few-shot classification head, said in each option's description.
"""
from __future__ import annotations

import warnings
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from tuneoff.methods import MethodError, MethodOptions, register
from tuneoff.methods.layers import model_type
from tuneoff.methods.peft_family import PeftFamily, norm_names, peft_types, target_table
from tuneoff.methods.peft_methods import LoraShapeOptions, lora_config
from tuneoff.space import Length, Range


# -- the LoRA variants -------------------------------------------------------------------------


class LoraVariant(PeftFamily):
    Options = LoraShapeOptions

    def lora_keys(self) -> dict:
        """The LoraConfig keys that make this variant."""
        raise NotImplementedError

    def peft_config(self):
        return lora_config(self, self.options, **self.lora_keys())


@register
class Dora(LoraVariant):
    name = "dora"
    description = ("DoRA (peft): LoRA on the direction of each adapted weight + a trained magnitude per output "
                   "+ the classification head")

    def lora_keys(self):
        return {"use_dora": True}


class RsLoraOptions(LoraShapeOptions):
    alpha: float = Field(16, gt=0, description="scaling numerator: the update is (alpha / sqrt(r))·B·A, so its size "
                                               "does not shrink as the rank grows")


@register
class RsLora(LoraVariant):
    name = "rslora"
    description = ("rsLoRA (peft): LoRA scaled by alpha/sqrt(r), stable across ranks (the search tries ranks) "
                   "+ the classification head")
    Options = RsLoraOptions
    # at r=8 its update is sqrt(8) times lora's: a half decade below lora's steps
    search_space = {"train.lr": [3e-5, 3e-4, 3e-3]}
    search_ranges = {"train.lr": Range(1e-5, 1e-2, limits=(3e-8, 0.3)), "method.r": Range(4, 64, integer=True, limits=(1, 256))}

    def lora_keys(self):
        return {"use_rslora": True}


class PissaOptions(LoraShapeOptions):
    svd_iters: int | None = Field(
        None, ge=1, description="null: exact SVD of each adapted weight; n: randomized SVD with n subspace iterations "
                                "(peft's pissa_niter_n, faster on large weights; drawn from the run's seed)")


@register
class Pissa(LoraVariant):
    name = "pissa"
    description = ("PiSSA (peft): LoRA started from each weight's r principal singular vectors, the rest frozen "
                   "+ the classification head")
    Options = PissaOptions
    # the adapters start as the weights' principal part, so a step moves the model as full fine-tuning's does
    search_space = {"train.lr": [1e-5, 1e-4, 1e-3]}

    def lora_keys(self):
        n = self.options.svd_iters
        return {"init_lora_weights": "pissa" if n is None else f"pissa_niter_{n}"}


@register
class Olora(LoraVariant):
    name = "olora"
    description = ("OLoRA (peft): LoRA started from an orthonormal (QR) basis of each weight, the rest frozen "
                   "+ the classification head")
    search_space = {"train.lr": [1e-5, 1e-4, 1e-3]}  # non-zero adapters from the start, as pissa's

    def lora_keys(self):
        return {"init_lora_weights": "olora"}


class LoraPlusOptions(LoraShapeOptions):
    lr_ratio: float = Field(16, gt=0, description="B's learning rate over A's (and the head's): LoRA+ trains B with "
                                                  "train.lr · lr_ratio")


@register
class LoraPlus(LoraVariant):
    name = "loraplus"
    description = "LoRA+ (peft's LoRA): B trained at lr_ratio times A's learning rate + the classification head"
    Options = LoraPlusOptions
    search_space = {"train.lr": [3e-5, 3e-4, 3e-3]}  # B's steps are lr_ratio times larger
    search_ranges = {"train.lr": Range(1e-5, 1e-2, limits=(3e-8, 0.3)),
                     "method.lr_ratio": Range(4, 64, limits=(1, 1024))}

    def lora_keys(self):
        return {}

    def param_groups(self, lr, weight_decay):
        b = {id(p) for n, p in self.model.named_parameters() if ".lora_B." in n}
        groups = []
        for g in super().param_groups(lr, weight_decay):
            groups.append({**g, "params": [p for p in g["params"] if id(p) not in b]})
            groups.append({**g, "params": [p for p in g["params"] if id(p) in b], "lr": lr * self.options.lr_ratio})
        return [g for g in groups if g["params"]]


# -- the other named peft methods ------------------------------------------------------------


def targets_field():
    return Field(None, description="linear layers to adapt (name or dotted suffix); null = peft's default targets of "
                                   "this type for the architecture (attention query/value), else those found by name")


class NamedPeft(PeftFamily):
    """A named method over one peft type: its options become that type's config keys."""

    peft_type: ClassVar[str] = ""

    def config_keys(self) -> dict:
        raise NotImplementedError

    def peft_config(self):
        targets = self.targets(self.options.target_modules, target_table(self.peft_type),
                               f"{self.name} target modules")
        return peft_types()[self.peft_type](task_type=self.task_type, target_modules=targets, **self.config_keys())


class VeraOptions(MethodOptions):
    r: int = Field(256, ge=1, description="rank of the frozen random projections A, B shared by every adapted layer")
    d_initial: float = Field(0.1, gt=0, description="initial value of the scaling vector d (b starts at zero)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the input of the VeRA branch")
    target_modules: list[str] | None = targets_field()


@register
class Vera(NamedPeft):
    name = "vera"
    description = ("VeRA (peft): per-layer scaling vectors b, d around shared frozen random projections "
                   "+ the classification head")
    Options = VeraOptions
    peft_type = "VERA"
    search_space = {"train.lr": [1e-3, 1e-2, 1e-1]}  # vectors only: large steps, as its paper's
    search_length = Length(1, 27, 729, 3)  # ... and many more of them, as prompt-tuning's

    def config_keys(self):
        o = self.options  # the projections are drawn from the run's seed
        return {"r": o.r, "d_initial": o.d_initial, "vera_dropout": o.dropout, "projection_prng_key": self.ctx.seed}


class AdaLoraOptions(MethodOptions):
    init_r: int = Field(12, ge=1, description="rank each adapted matrix starts with (an SVD-form update P·Λ·Q)")
    target_r: int = Field(8, ge=1, description="average rank per matrix once the budget is allocated (at most init_r)")
    alpha: float = Field(16, gt=0, description="scaling numerator: the update is (alpha / init_r)·P·Λ·Q")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the input of the AdaLoRA branch")
    init_share: float = Field(0.1, ge=0, lt=1, description="share of the schedule's steps trained at init_r before "
                                                           "any rank is pruned (peft's tinit)")
    final_share: float = Field(0.3, ge=0, lt=1, description="share of the schedule's last steps trained at the final "
                                                            "ranks (peft's tfinal); between the two the budget falls "
                                                            "from init_r to target_r per matrix (cubic)")
    delta_t: int = Field(1, ge=1, description="steps between two reallocations of the budget (peft's deltaT)")
    beta1: float = Field(0.85, gt=0, lt=1, description="moving-average factor of each weight's sensitivity")
    beta2: float = Field(0.85, gt=0, lt=1, description="moving-average factor of the sensitivity's uncertainty")
    orth_reg_weight: float = Field(0.5, ge=0, description="weight of the penalty that keeps P and Q orthogonal, "
                                                          "added to the loss")
    target_modules: list[str] | None = targets_field()

    @field_validator("target_r")
    @classmethod
    def _below_init(cls, v: int, info: ValidationInfo) -> int:
        if v > info.data.get("init_r", v):
            raise ValueError(f"must be at most init_r ({info.data['init_r']}): AdaLoRA prunes ranks, never adds them")
        return v

    @field_validator("final_share")
    @classmethod
    def _room(cls, v: float, info: ValidationInfo) -> float:
        if v + info.data.get("init_share", 0) >= 1:
            raise ValueError(f"init_share + final_share must be below 1 (got {info.data['init_share']} + {v}): "
                             "the ranks are allocated in between")
        return v


@register
class AdaLora(NamedPeft):
    name = "adalora"
    description = ("AdaLoRA (peft): SVD-form LoRA whose rank budget goes to the most sensitive weights as it trains "
                   "+ the classification head")
    Options = AdaLoraOptions
    peft_type = "ADALORA"

    def config_keys(self):
        o = self.options  # tinit, tfinal and total_step are set from the schedule when training starts
        return {"init_r": o.init_r, "target_r": o.target_r, "lora_alpha": o.alpha, "lora_dropout": o.dropout,
                "deltaT": o.delta_t, "beta1": o.beta1, "beta2": o.beta2, "orth_reg_weight": o.orth_reg_weight,
                "total_step": 1}

    def adalora_phases(self, total, config):
        return int(self.options.init_share * total), int(self.options.final_share * total)


class LycorisOptions(MethodOptions):
    r: int = Field(8, ge=1, description="rank of each factor")
    alpha: float = Field(8, gt=0, description="scaling numerator: the update is scaled by alpha / r")
    rank_dropout: float = Field(0.0, ge=0, lt=1, description="dropout over the update's rank dimension, each step")
    module_dropout: float = Field(0.0, ge=0, lt=1, description="probability of leaving a layer's update out, each step")
    target_modules: list[str] | None = targets_field()


class Lycoris(NamedPeft):
    def config_keys(self):
        o = self.options
        return {"r": o.r, "alpha": o.alpha, "rank_dropout": o.rank_dropout, "module_dropout": o.module_dropout}


@register
class LoHa(Lycoris):
    name = "loha"
    description = "LoHa (peft): updates that are the Hadamard product of two low-rank products + the classification head"
    Options = LycorisOptions
    peft_type = "LOHA"


class LoKrOptions(LycorisOptions):
    r: int = Field(8, ge=1, description="rank of the Kronecker product's second, larger matrix (kept whole where "
                                        "that is smaller: r at least half its larger side)")
    decompose_both: bool = Field(False, description="also factor the Kronecker product's first, smaller matrix in low rank")
    decompose_factor: int = Field(-1, description="the first matrix's size along each dimension; -1: the divisor "
                                                  "nearest the square root")


@register
class LoKr(Lycoris):
    name = "lokr"
    description = ("LoKr (peft): updates that are the Kronecker product of a small matrix and a low-rank one "
                   "+ the classification head")
    Options = LoKrOptions
    peft_type = "LOKR"

    def config_keys(self):
        o = self.options
        return {**super().config_keys(), "decompose_both": o.decompose_both, "decompose_factor": o.decompose_factor}


class OftOptions(MethodOptions):
    block_size: int = Field(32, ge=2, description="size of each orthogonal block; must divide the adapted layers' inputs")
    dropout: float = Field(0.0, ge=0, lt=1, description="probability of leaving a block's rotation out, each step")
    coft: bool = Field(False, description="constrained OFT: keep each rotation within eps of the identity")
    eps: float = Field(6e-5, gt=0, description="how far constrained OFT lets a rotation go")
    block_share: bool = Field(False, description="one rotation shared by every block of a layer")
    target_modules: list[str] | None = targets_field()


@register
class Oft(NamedPeft):
    name = "oft"
    description = "OFT (peft): a learned block-diagonal rotation of each adapted weight's input + the classification head"
    Options = OftOptions
    peft_type = "OFT"

    def config_keys(self):
        o = self.options
        return {"r": 0, "oft_block_size": o.block_size, "module_dropout": o.dropout, "coft": o.coft, "eps": o.eps,
                "block_share": o.block_share}


class LnTuningOptions(MethodOptions):
    target_modules: list[str] | None = Field(
        None, description="normalisation layers to train (name or dotted suffix); null = every one of the model")


@register
class LnTuning(NamedPeft):
    name = "ln-tuning"
    description = "LN tuning (peft): the weights of every normalisation layer (LayerNorm, RMSNorm) + the classification head"
    Options = LnTuningOptions
    peft_type = "LN_TUNING"  # train.lr searched as every peft method's (and bitfit's): 1e-4, 1e-3, 1e-2

    def setup(self, train, pool):
        with warnings.catch_warnings():  # peft asks every layer it wraps for in/out features, which a norm has not
            warnings.filterwarnings("ignore", message="Unsupported layer type")
            super().setup(train, pool)

    def targets(self, given, table, what):
        skip = [n.rsplit(".", 1)[0] for n in self.trainable_head()]
        norms = norm_names(self.model, skip)
        leaves = sorted({n.split(".")[-1] for n in norms})
        if not norms:
            raise MethodError(f"ln-tuning: model type {model_type(self.model)!r} has no normalisation layer")
        for t in given or []:
            if not any(n == t or n.endswith("." + t) for n in norms):
                raise MethodError(f"ln-tuning target modules: {t!r} matches no normalisation layer of model type "
                                  f"{model_type(self.model)!r}; they are named: {', '.join(leaves)}")
        return list(given) if given else norms  # full names: a leaf name could also match one in the head

    def config_keys(self):
        return {}
