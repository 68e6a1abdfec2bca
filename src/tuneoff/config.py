"""Typed configuration: YAML file < key.sub=value overrides, validated; unknown keys are errors.

An *experiment* config may list several shot sizes and seeds; `expand()` turns it into one
`RunConfig` per combination. A run's id is the hash of its resolved config, so the same run is
never computed twice.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tuneoff import yamlfile
from tuneoff.describe import NOT_RESULT, current_key, current_layout, drop, in_old_layout
from tuneoff.registry import get_method
from tuneoff.selection.options import (SelectConfig, as_list, check_selection, check_shots, hashed_selection,
                                      resolve_space)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and what to do."""


class _Strict(BaseModel):
    """Unknown keys are errors; so are inf/nan for a number and a boolean for a non-boolean key
    (`shots=true` would otherwise become 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if cls.model_fields[info.field_name].annotation is not bool:
            values = v if isinstance(v, list) else [v]
            if any(isinstance(x, bool) for x in values):
                raise ValueError(f"got {json.dumps(v)}: a boolean where a value of another type is expected "
                                 f"(true/false are not numbers)")
        return v


class TrainConfig(_Strict):
    lr: float = Field(5e-5, gt=0, description="peak learning rate of AdamW")
    batch_size: int = Field(8, ge=1, description="examples per optimizer micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    epochs: float = Field(15, gt=0, description="passes over the few-shot set (ignored if max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warm-up")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases/norms)")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping norm; null = off")
    optimizer: Literal["adamw", "adamw_fused"] = Field(
        "adamw", description="adamw: torch's AdamW, one parameter at a time; adamw_fused: its fused kernel (the "
                             "same update up to float rounding, one pass over the state: faster, fewer temporaries)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32: every training pass in float32; bf16: forward passes under bfloat16 autocast "
                            "(weights, gradients and optimizer state stay float32) on hardware with bf16")


class EvalConfig(_Strict):
    batch_size: int = Field(32, ge=1, description="examples per evaluation batch")
    max_examples: int | None = Field(
        None, ge=1, description="cap per eval set (stratified, fixed seed, same for every run); null = all"
    )
    sets: list[str] | None = Field(None, description="eval sets to use; null = all of the task's")


class ForgettingConfig(_Strict):
    enabled: bool = Field(True, description="LM loss per token on a general-text sample before and after adaptation")
    text: str | None = Field(None, description="UTF-8 text file to measure on; null = the shipped public-domain sample")
    max_tokens: int = Field(256, ge=16, description="tokens of the text used (its first ones; 256 = one forward pass)")


def with_current_keys(data: dict) -> dict:
    """`describe.current_layout`, with a key given under both names as a config error."""
    try:
        return current_layout(data)
    except ValueError as e:
        raise ConfigError(str(e)) from None


class MethodConfig(BaseModel):
    """`name` picks a registered method; every other key is one of that method's options."""

    model_config = ConfigDict(extra="allow")
    name: str = "finetune"


class RunConfig(_Strict):
    """One run. Fields that accept lists (shots, data_seed, seed) make an experiment of several runs."""

    task: str = Field("demo", description="registered task name or path to a task YAML file")
    data_dir: str | None = Field(None, description="folder of local data files (<task>/<split>.jsonl|csv)")
    model: str = Field("minilm-l6", description="embedded alias, local path or hub id")
    method: MethodConfig = Field(default_factory=MethodConfig, description="method name + its options")
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
        return v

    @model_validator(mode="after")
    def _method_options(self) -> "RunConfig":
        cls = get_method(self.method.name)
        try:
            opts = cls.Options(**(self.method.model_extra or {}))
        except ValidationError as e:
            raise ValueError(_format_errors(e, prefix="method.", model=cls.Options)) from None
        object.__setattr__(self, "method", MethodConfig(name=self.method.name, **opts.model_dump()))
        self._parsed = (self.method, opts)
        return self

    # -- the method ----------------------------------------------------------------------------
    @property
    def method_class(self) -> type:
        """The registered class of this run's method (a `tuneoff.methods.Method`)."""
        return get_method(self.method.name)

    @property
    def method_options(self) -> BaseModel:
        """The method's options as its `Options` object, parsed once when the config was validated
        (a copy given another `method` section without validation parses that one, once)."""
        if self._parsed is None or self._parsed[0] is not self.method:
            self._parsed = (self.method, self.method_class.Options(**(self.method.model_extra or {})))
        return self._parsed[1]

    @property
    def method_version(self) -> int:
        """The version of what this run's method computes with these options (see Method.version)."""
        return self.method_class.version_for(self.method_options)

    @model_validator(mode="after")
    def _selection(self) -> "RunConfig":
        if self.select is not None and self.select.protocol == "none":
            object.__setattr__(self, "select", None)
        check_shots(self)  # ValueError naming what to change
        if self.select is not None:
            check_selection(self)  # ValueError naming what to change
        return self

    # -- selection -----------------------------------------------------------------------------
    def search_space(self) -> dict[str, list]:
        """The search space of this run's method: its default, with the `select:` keys replacing it."""
        if self.select is None:
            return {}
        return resolve_space(self.select, self.method_class, self.method_options)

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
    def expand(self) -> list["RunConfig"]:
        select = self.select
        if select is not None and select.budget == "frugal" and select.reference_seed is None:
            # frugal: every split reuses the choice made on the first split listed
            select = select.model_copy(update={"reference_seed": as_list(self.data_seed)[0]})
        runs = []
        for shots, dseed, seed in itertools.product(
            as_list(self.shots), as_list(self.data_seed), as_list(self.seed)
        ):
            runs.append(self.model_copy(update={"shots": shots, "data_seed": dseed, "seed": seed,
                                                "select": select}))
        return runs

    @property
    def is_single(self) -> bool:
        return not any(isinstance(v, list) for v in (self.shots, self.data_seed, self.seed))

    @property
    def uses_pattern(self) -> bool:
        """Whether the method scores labels through a prompt pattern on the LM head (pattern, icl,
        distill, lora with scoring=pattern); a classification head never sees the pattern."""
        return self.method_class.head_for(self.method_options) == "lm"

    def resolved(self) -> dict:
        """Plain dict of the config, as saved with the run."""
        return json.loads(self.model_dump_json())

    def run_id(self) -> str:
        """Hash of everything that can change a run's result (not where it is written)."""
        if not self.is_single:
            raise ConfigError("run_id() needs a single run: call expand() first")
        d = self.resolved()
        drop(d, NOT_RESULT)
        if d.get("forgetting") == ForgettingConfig().model_dump():  # ids of runs from before it existed
            d.pop("forgetting")
        version = self.method_version
        if version != 1:  # a changed method is a new run; unchanged methods keep their ids
            d["method_version"] = version
        if not self.method_class.trains:  # training settings cannot change its result
            d.pop("train")
        if not self.uses_pattern:  # nor can a pattern that the method never renders
            d["pattern"] = None
        d.pop("select", None)  # without selection the id is what it always was
        in_old_layout(d)
        if self.select is not None:  # with it: the protocol and the whole search space, not the fixed values
            hashed_selection(self, d)
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# -- loading ---------------------------------------------------------------------------------

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.lr=1e-4` -> (["train", "lr"], 1e-4). Values are parsed as YAML (safe)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value (e.g. shots=16 or train.lr=1e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _FLOAT.match(value):  # YAML 1.1 reads '1e-4' as a string
        value = float(value)
    return key.split("."), value


def set_key(data: dict, path: list[str], value: Any, what: str = "") -> None:
    """Set `data[path[0]][path[1]]... = value` in place, creating sections; `what` names the
    setting in errors (e.g. "override 'train.lr=1'"). A key's old name sets it under its current one."""
    path = current_key(".".join(path)).split(".")
    node = data
    for p in path[:-1]:
        nxt = node.get(p)
        if isinstance(nxt, str) and p == "method":
            nxt = {"name": nxt}
        if nxt is None:
            nxt = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{what or '.'.join(path)}: {p!r} is not a section")
        node[p] = nxt
        node = nxt
    if path == ["method"] and isinstance(node.get("method"), dict) and isinstance(value, str):
        value = {"name": value}  # switching method drops the old method's options
    node[path[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = with_current_keys(json.loads(json.dumps(data)))  # deep copy; an override then replaces an old name's value
    for item in overrides:
        path, value = parse_override(item)
        set_key(data, path, value, f"override {item!r}")
    return data


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    data = yamlfile.mapping(yamlfile.read_text(p, "config file", ConfigError), p, "config file", ConfigError)
    task_keys = [k for k in TASK_FILE_KEYS if k in data]
    if task_keys:
        raise ConfigError(f"{str(p)!r} is a task file (it has {', '.join(map(repr, task_keys))}), not a config: "
                          f"name it as the task, e.g. `tuneoff run task={p}` (in a YAML config or a sweep's "
                          f"defaults: `task: {p}`)")
    return data


# keys only a task file has (a run config or sweep file with one of them is a task file given in its place)
TASK_FILE_KEYS = ("name", "text_fields", "label_names", "patterns", "default_pattern", "instruction")


def _allowed(model: type[BaseModel], loc: tuple) -> list[str]:
    node: Any = model
    for part in loc[:-1]:
        field = getattr(node, "model_fields", {}).get(part)
        if field is None:
            return []
        node = field.annotation
    return sorted(getattr(node, "model_fields", {}).keys())


def _union_branch(part: str) -> bool:
    """A loc element that names a branch of a union type (pydantic: 'int', 'list[int]', ...)."""
    return part.startswith(("int", "list[", "float", "str", "function-"))


def _format_errors(e: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    lines = []
    for err in e.errors():
        raw = [str(x) for x in err["loc"]]
        if any(_union_branch(x) for x in raw) and err["type"] in ("int_parsing", "int_type", "list_type",
                                                                  "int_from_float"):
            # `shots=abc` fails both branches of `int | list[int]`: say it once, in plain words
            key = prefix + ".".join(raw[:next(i for i, x in enumerate(raw) if _union_branch(x))])
            lines.append(f"config key {key!r}: expected an integer or a list of integers")
            continue
        loc = tuple(x for x in raw if not _union_branch(x))
        key = prefix + ".".join(loc)
        if err["type"] == "extra_forbidden":
            allowed = _allowed(model, loc) if model else []
            hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
            if not allowed and prefix == "method." and len(loc) == 1:
                hint = "; this method takes no options (`tuneoff ls methods` lists each method's options)"
            lines.append(f"unknown config key {key!r}{hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"config key {key!r}: {msg}" if key else msg)
    return "\n".join(dict.fromkeys(lines))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Build a validated config from an optional YAML file and key=value overrides."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides or [])
    return config_from_dict(data)


def config_from_dict(data: dict) -> RunConfig:
    try:
        return RunConfig(**data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, model=RunConfig)) from None
