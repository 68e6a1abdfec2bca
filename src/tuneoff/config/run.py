"""One run's config and its sections, validated; unknown keys are errors.

An *experiment* config may list several methods, shot sizes and seeds; `expand()` turns it into
one `RunConfig` per combination. A run's id (`tuneoff.identity`) is the hash of what can change its
result, so the same run is never computed twice.
"""
from __future__ import annotations

import itertools
import json
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from tuneoff import identity
from tuneoff.config.base import ConfigError, Strict, as_list, format_errors, set_key, with_current_keys
from tuneoff.config.select import SelectConfig, check_selection, check_shots, resolve_length, resolve_space
from tuneoff.space import Length, Range
from tuneoff.registry import get_method


class TrainConfig(Strict):
    lr: float = Field(5e-5, gt=0, description="peak learning rate of AdamW")
    batch_size: int = Field(8, ge=1, description="examples per optimizer micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    epochs: float = Field(15, gt=0, description="passes over the few-shot set (ignored if max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    stop_epochs: float | None = Field(
        None, gt=0, description="stop this many epochs into the schedule that epochs plans (early stopping: the "
                                "length a search chose, its learning-rate schedule unchanged); null = train all of it")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warm-up")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases/norms)")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping norm; null = off")
    optimizer: Literal["adamw", "adamw_fused"] = Field(
        "adamw", description="adamw: torch's AdamW, one parameter at a time; adamw_fused: its fused kernel (the "
                             "same update up to float rounding, one pass over the state: faster, fewer temporaries)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32: every training pass in float32; bf16: forward passes under bfloat16 autocast "
                            "(weights, gradients and optimizer state stay float32) on hardware with bf16")
    gradient_checkpointing: bool = Field(
        False, description="recompute each layer's activations in the backward pass instead of keeping them: less "
                           "memory, about a third more compute, the same gradients")
    resume_every: float = Field(
        600, ge=0, description="seconds between two states a training keeps on disk (under output_dir/resume), so "
                               "that a run or selection stopped mid-training goes on from the last one, to the same "
                               "weights; 0 = keep none")


class EvalConfig(Strict):
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        32, description="examples per evaluation batch; auto = start at 32 on a CPU and 256 on a GPU, halve on "
                        "out-of-memory and retry")
    max_examples: int | None = Field(
        None, ge=1, description="cap per eval set (stratified, fixed seed, same for every run); null = all"
    )
    sets: list[str] | None = Field(None, description="eval sets to use; null = all of the task's")


class ForgettingConfig(Strict):
    enabled: bool = Field(True, description="LM loss per token on a general-text sample before and after adaptation")
    text: str | None = Field(None, description="UTF-8 text file to measure on; null = the shipped public-domain sample")
    max_tokens: int = Field(256, ge=16, description="tokens of the text used (its first ones; 256 = one forward pass)")


class MethodConfig(BaseModel):
    """`name` picks a registered method; every other key is one of that method's options."""

    model_config = ConfigDict(extra="allow")
    name: str = "finetune"


class RunConfig(Strict):
    """One run. Fields that accept lists (method, shots, data_seed, seed) make an experiment of
    several runs."""

    task: str = Field("demo", description="registered task name or path to a task YAML file")
    data_dir: str | None = Field(None, description="folder of local data files (<task>/<split>.jsonl|csv)")
    model: str = Field("minilm-l6", description="embedded alias, local path or hub id")
    method: MethodConfig | list[MethodConfig] = Field(
        default_factory=MethodConfig, description="method name + its options; a list of methods compares them, "
                                                  "each a run on every split")
    pattern: str | None = Field(None, description="prompt pattern for LM-scored methods; null = task default")
    shots: int | list[int] = Field([8, 32], description="training examples per class")
    data_seed: int | list[int] = Field([0, 1], description="seed of the few-shot split")
    seed: int | list[int] = Field(0, description="training seed (init, order, dropout)")
    max_length: int = Field(256, ge=8, description="tokens per input after truncation, in training and evaluation "
                                                    "(train.max_length: its old name, still read)")
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    forgetting: ForgettingConfig = Field(default_factory=ForgettingConfig)
    output_dir: str = Field("results", description="results folder (store + run folders)")
    save: bool = Field(False, description="save trained weights/adapters in the run folder")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to run")
    model_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype of the frozen weights and of every forward pass (weights that train stay float32); "
                            "auto = float32 on a CPU, bfloat16 on a CUDA GPU that has it (resolved when validated)")
    quantization: Literal["4bit", "8bit"] | None = Field(
        None, description="base weights loaded quantized by bitsandbytes (LoRA-family methods, CUDA only); null = off")
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field(
        "auto", description="attention kernels; auto = transformers' choice (sdpa where the model has it, else eager)")
    threads: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="torch threads of a run; auto = the cores not busy with other work when it starts")
    trust_remote_code: bool = Field(False, description="allow model code from the hub (off unless asked)")
    select: SelectConfig | None = Field(
        None, description="hyperparameter selection from the few-shot labels (see tuneoff.selection); null = off")
    # (the `method` section it was parsed from, its method's options): parsed once, by validation
    _parsed: tuple[MethodConfig, BaseModel] | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return with_current_keys(data) if isinstance(data, dict) else data

    @field_validator("method", mode="before")
    @classmethod
    def _method_from_str(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list gives no runs; give a method or a list of methods")
            v = [{"name": m} if isinstance(m, str) else m for m in v]
            return v[0] if len(v) == 1 else v  # one method listed is that method: the same run ids
        return {"name": v} if isinstance(v, str) else v

    @field_validator("shots", "data_seed", "seed")
    @classmethod
    def _int_or_list(cls, v: int | list[int], info: ValidationInfo) -> int | list[int]:
        if isinstance(v, list) and not v:
            raise ValueError("an empty list gives no runs; give an integer or a list of integers")
        low, what = (1, "shots must be >= 1 per class") if info.field_name == "shots" else (0, "seeds must be >= 0")
        for x in v if isinstance(v, list) else [v]:
            if x < low:
                raise ValueError(f"{what}, got {x}")
        twice = sorted({x for x in as_list(v) if as_list(v).count(x) > 1})
        if twice:
            raise ValueError(f"lists {twice[0]} more than once; give each value once (a repeated value is the "
                             "same run)")
        return v

    @model_validator(mode="after")
    def _method_options(self) -> "RunConfig":
        if isinstance(self.method, list):
            methods = [_parse_method(m)[0] for m in self.method]
            keys = [json.dumps(m.model_dump(), sort_keys=True) for m in methods]
            twice = next((m.name for m, k in zip(methods, keys) if keys.count(k) > 1), None)
            if twice:
                raise ValueError(f"method lists {twice} more than once with the same options; give each method once (a "
                                 "repeated method is the same runs)")
            object.__setattr__(self, "method", methods)
            self._parsed = None
            return self
        method, opts = _parse_method(self.method)
        object.__setattr__(self, "method", method)
        self._parsed = (method, opts)
        return self

    # -- the method ----------------------------------------------------------------------------
    @property
    def methods(self) -> list[MethodConfig]:
        """The methods this config runs: one, or the list it compares."""
        return as_list(self.method)

    def per_method(self) -> list["RunConfig"]:
        """This config once per method it lists (itself when it names one)."""
        if not isinstance(self.method, list):
            return [self]
        return [self.model_copy(update={"method": m}) for m in self.method]

    def _one_method(self) -> MethodConfig:
        if isinstance(self.method, list):
            raise ConfigError(f"this config compares {len(self.method)} methods "
                              f"({', '.join(m.name for m in self.method)}): take one run's config with expand() "
                              "or one method's with per_method() first")
        return self.method

    @property
    def method_class(self) -> type:
        """The registered class of this run's method (a `tuneoff.methods.Method`)."""
        return get_method(self._one_method().name)

    @property
    def method_options(self) -> BaseModel:
        """The method's options as its `Options` object, parsed once when the config was validated
        (a copy given another `method` section without validation parses that one, once)."""
        if self._parsed is None or self._parsed[0] is not self.method:
            self._parsed = (self.method, self.method_class.Options(**(self._one_method().model_extra or {})))
        return self._parsed[1]

    @property
    def method_version(self) -> int:
        """The version of what this run's method computes with these options on this task (see
        Method.version and version_for; a task that cannot be read counts as unknown: the run fails on it)."""
        from tuneoff.tasks import get_task  # late: a config is described without reading task files

        try:
            task = get_task(self.task)
        except (ValueError, OSError):
            task = None
        return self.method_class.version_for(self.method_options, task)

    @model_validator(mode="after")
    def _compute(self) -> "RunConfig":
        """`model_dtype` resolved for the device (auto: float32 on a CPU), and what a method cannot
        compute with: quantized weights it would train, activation checkpointing it cannot take."""
        from tuneoff.precision import resolve_dtype  # late: importing the config package imports no torch

        object.__setattr__(self, "model_dtype", resolve_dtype(self.model_dtype, self.device))
        if self.train.gradient_checkpointing:
            for m in self.methods:
                why = get_method(m.name).no_checkpointing
                if why:
                    raise ValueError(f"train.gradient_checkpointing=true cannot train {m.name}: {why}; set it to false")
        if self.quantization is not None:
            if self.device == "cpu":
                raise ValueError(f"quantization={self.quantization} needs a CUDA GPU and device=cpu; leave "
                                 "quantization unset (null) on a CPU")
            plain = [m.name for m in self.methods if not get_method(m.name).frozen_base]
            if plain:
                raise ValueError(f"quantization={self.quantization} is for methods that keep the pretrained weights "
                                 f"frozen and train adapters (lora and the peft family); {', '.join(plain)} trains "
                                 "the weights themselves: leave quantization unset for it")
        return self

    @model_validator(mode="after")
    def _selection(self) -> "RunConfig":
        if self.select is not None and self.select.protocol == "none":
            object.__setattr__(self, "select", None)
        for one in self.per_method():
            check_shots(one)  # ValueError naming what to change
            if one.select is not None:
                check_selection(one)  # ValueError naming what to change
        return self

    # -- selection -----------------------------------------------------------------------------
    def search_space(self) -> dict[str, list | Range]:
        """The search space of this run's method: its default, with the `select:` keys replacing it."""
        if self.select is None:
            return {}
        return resolve_space(self.select, self.method_class, self.method_options)

    def search_length(self) -> Length | None:
        """The training length the search takes as its fidelity (None: not searched)."""
        if self.select is None:
            return None
        return resolve_length(self.select, self.method_class, self.method_options)

    def candidate(self, values: dict, data_seed: int | None = None) -> "RunConfig":
        """This run with one candidate's values set, selection off (optionally on another split)."""
        data = self.resolved()
        data["select"] = None
        if data_seed is not None:
            data["data_seed"] = data_seed
        for key, value in values.items():
            set_key(data, key.split("."), value, f"select key {key!r}")
        return config_from_dict(data)

    def folds(self) -> int:
        """Folds of the cross-validation: `select.folds`, capped at the examples per class."""
        return min(self.select.folds, self.shots) if self.select else 0

    # -- experiments ---------------------------------------------------------------------------
    @property
    def implicit_reference(self) -> bool:
        """Frugal selection with no reference seed set: `expand` takes the first data seed listed."""
        return self.select is not None and self.select.budget == "frugal" and self.select.reference_seed is None

    def expand(self) -> list["RunConfig"]:
        select = self.select
        if self.implicit_reference:
            # frugal: every split reuses the choice made on the first split listed
            select = select.model_copy(update={"reference_seed": as_list(self.data_seed)[0]})
        runs = []
        # split by split, every method on a split before the next: a stopped experiment still compares them
        for shots, dseed, seed, method in itertools.product(
            as_list(self.shots), as_list(self.data_seed), as_list(self.seed), self.methods
        ):
            runs.append(self.model_copy(update={"shots": shots, "data_seed": dseed, "seed": seed,
                                                "select": select, "method": method}))
        return runs

    @property
    def is_single(self) -> bool:
        return not any(isinstance(v, list) for v in (self.method, self.shots, self.data_seed, self.seed))

    @property
    def uses_pattern(self) -> bool:
        """Whether the method scores labels through a prompt pattern on the LM head (pattern, icl,
        distill, lora with scoring=pattern); a classification head never sees the pattern."""
        return self.method_class.head_for(self.method_options) == "lm"

    def resolved(self) -> dict:
        """Plain dict of the config, as saved with the run."""
        return json.loads(self.model_dump_json())

    def run_id(self) -> str:
        """The id of this single run: everything that can change its result (`tuneoff.identity`)."""
        if not self.is_single:
            raise ConfigError("run_id() needs a single run: call expand() first")
        return identity.run_id(self)


def _parse_method(m: MethodConfig) -> tuple[MethodConfig, BaseModel]:
    """A `method` section checked against its method's options: (the section with every option
    filled in, the options object)."""
    cls = get_method(m.name)
    try:
        opts = cls.Options(**(m.model_extra or {}))
    except ValidationError as e:
        raise ValueError(format_errors(e, prefix="method.", model=cls.Options)) from None
    return MethodConfig(name=m.name, **opts.model_dump()), opts


def config_from_dict(data: dict) -> RunConfig:
    try:
        return RunConfig(**data)
    except ValidationError as e:
        raise ConfigError(format_errors(e, model=RunConfig)) from None
