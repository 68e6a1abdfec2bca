"""The one schema of a task file. The built-in tasks (``tasks/builtin/*.yaml``) and a user's task
file are read by the same code and checked against the same models: an unknown key, a missing
required key or a value of the wrong kind is an error that names the key and what to give instead.

A task file is data only. What is code stays in tuneoff's Python and a task file names it: the
keys of a source (``path``, ``local``, ``hub``) pick one of the loaders of `tuneoff.data` (read a
file; read ``<data_dir>/<local>.jsonl|.json|.csv``; `datasets.load_dataset` with the hub's Parquet
export as the fallback for script datasets), ``label_map`` is a table applied by that code, and
``subset_fields`` names the columns the report breaks the metrics down by (HANS: ``heuristic``).
No string of a task file is ever evaluated.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from tuneoff import yamlfile
from tuneoff.metrics import METRIC_REGISTRY, label_metric_names, prob_metric_names
from tuneoff.prompts import PromptError, template_fields
from tuneoff.tasks.base import PAIR_SEPARATOR, EvalSet, Pattern, Source, Task


class TaskError(ValueError):
    """An unknown task or a malformed task file; the message names the key and what to do."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LabelMap = dict[int, int | None]


class SourceSpec(_Spec):
    """Where one split's rows come from: a file, a name under ``data_dir``, a hub dataset, or both of
    the last two (``data_dir`` set: the local file; unset: the hub)."""

    path: str | None = None  # a JSONL/CSV file; relative paths are relative to the task file
    local: str | None = None  # <data_dir>/<local>.jsonl (.json, .csv), e.g. cola/train
    hub: str | None = None  # a dataset id for datasets.load_dataset, e.g. nyu-mll/glue
    config: str | None = None  # the hub dataset's config name, e.g. cola
    split: str | None = None  # the hub split, slices included, e.g. train or validation[:527]

    @model_validator(mode="after")
    def _one_kind(self) -> "SourceSpec":
        hub_only = [k for k in ("config", "split") if getattr(self, k) is not None]
        if self.path is not None and (self.local or self.hub or hub_only):
            raise ValueError("'path' names a file and takes none of 'local', 'hub', 'config', 'split'")
        if self.path is None and self.local is None and self.hub is None:
            raise ValueError("no data: give 'path' (a file), or 'local' (a name under data_dir) and/or 'hub'")
        if hub_only and self.hub is None:
            raise ValueError(f"{' and '.join(map(repr, hub_only))} {'belong' if len(hub_only) > 1 else 'belongs'} to a "
                             f"'hub' source; add 'hub: DATASET_ID'")
        if self.hub is not None and self.split is None:
            raise ValueError(f"hub {self.hub!r} needs a 'split' (e.g. train, validation)")
        return self

    def source(self, base: Path) -> Source:
        path = None
        if self.path is not None:
            q = Path(self.path)
            path = str(q) if q.is_absolute() else os.path.normpath(base / q)
        hub = (self.hub, self.config, self.split) if self.hub is not None else None
        return Source(local=self.local, hub=hub, path=path)


class EvalSpec(SourceSpec):
    name: str
    domain: Literal["in", "out"] = "in"  # in or out of the training domain
    subset_fields: tuple[str, ...] = ()  # also scored per value of these columns (and per label)
    label_map: LabelMap | None = None  # raw label id -> task label id (null drops the row); default: the task's
    optional: bool = False  # a missing local file is skipped with a note instead of failing the run

    @field_validator("subset_fields", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    def eval_set(self, base: Path) -> EvalSet:
        return EvalSet(self.name, self.source(base), domain=self.domain, subset_fields=self.subset_fields,
                       label_map=self.label_map, optional=self.optional)


class PatternSpec(_Spec):
    template: str  # {field} slots for the text fields; the answer word follows directly
    verbalizer: dict[str, str]  # label name -> answer word, whitespace included (" Yes")


class TaskSpec(_Spec):
    name: str
    description: str | None = None
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    train: SourceSpec
    eval: tuple[EvalSpec, ...]
    label_map: LabelMap | None = None
    patterns: dict[str, PatternSpec] = {}
    default_pattern: str | None = None
    main_metric: str = "accuracy"
    instruction: str = ""
    pair_separator: str = PAIR_SEPARATOR  # between text fields for a decoder's classification head

    @field_validator("name", "description", "instruction", mode="before")
    @classmethod
    def _text(cls, v: Any, info) -> Any:
        if info.field_name == "name" and isinstance(v, str) and not v.strip():
            raise ValueError("'name' is empty: give the task a name (it labels every run and table)")
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("text_fields", "label_names", mode="before")
    @classmethod
    def _names(cls, v: Any, info) -> Any:
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise ValueError(f"{info.field_name!r} must be a non-empty list of strings")
        return v

    @field_validator("pair_separator")
    @classmethod
    def _separator(cls, v: str) -> str:
        if not v or re.match(r"\w", v[0]) or re.match(r"\w", v[-1]):
            raise ValueError(f"'pair_separator' {v!r} would fuse with the words around it: give one that starts "
                             "and ends with whitespace or punctuation, e.g. \"\\n\" (the default) or \" | \"")
        return v

    @field_validator("train", mode="before")
    @classmethod
    def _path(cls, v: Any) -> Any:
        if not isinstance(v, (str, dict)):
            raise ValueError(f"expected a file path or a mapping with keys {list(SourceSpec.model_fields)}, got {v!r}")
        return {"path": v} if isinstance(v, str) else v

    @field_validator("eval", mode="before")
    @classmethod
    def _evals(cls, v: Any) -> Any:
        if not isinstance(v, list) or not v:
            raise ValueError("'eval' must be a list of eval sets, at least one, each with a 'name' and its data "
                             "('path', or 'local' and/or 'hub'), optionally 'domain: out'")
        return v

    @field_validator("patterns", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @model_validator(mode="after")
    def _consistent(self) -> "TaskSpec":
        labels = self.label_names
        if len(labels) < 2:
            raise ValueError("'label_names' needs at least two labels, as a list such as [negative, positive]")
        for key, names in (("label_names", labels), ("text_fields", self.text_fields)):
            twice = sorted({x for x in names if names.count(x) > 1})
            if twice:
                raise ValueError(f"{key!r} lists {', '.join(map(repr, twice))} more than once; each must be given "
                                 f"once (two labels with one name would be merged in every metric)")
        for name, spec in self.patterns.items():
            _check_pattern(name, spec, labels, self.text_fields)
        if self.default_pattern is not None and self.default_pattern not in self.patterns:
            raise ValueError(f"default_pattern {self.default_pattern!r} is not one of its patterns "
                             f"{sorted(self.patterns) or '(none defined)'}")
        if self.main_metric not in METRIC_REGISTRY:  # any registered metric, whichever its direction
            raise ValueError(f"main_metric {self.main_metric!r} is not one of {list(label_metric_names())} (from "
                             f"the predicted labels) or {list(prob_metric_names())} (from the class probabilities)")
        names = [e.name for e in self.eval]
        if len(set(names)) != len(names):
            raise ValueError(f"eval set names must be unique, got {names}")
        for where, table in [("label_map", self.label_map), *((f"eval {e.name!r} label_map", e.label_map)
                                                               for e in self.eval)]:
            bad = {k: v for k, v in (table or {}).items() if v is not None and not 0 <= v < len(labels)}
            if bad:
                raise ValueError(f"{where} maps to {sorted(bad.values())}, which are not label ids of "
                                 f"{list(labels)} (0..{len(labels) - 1}); map a raw label to null to drop its rows")
        return self

    def task(self, base: Path, file_name: str) -> Task:
        patterns = {n: Pattern(n, p.template, dict(p.verbalizer)) for n, p in self.patterns.items()}
        return Task(
            name=self.name,
            description=self.description if self.description is not None else f"custom task from {file_name}",
            text_fields=self.text_fields,
            label_names=self.label_names,
            train=self.train.source(base),
            eval_sets=tuple(e.eval_set(base) for e in self.eval),
            label_map=self.label_map,
            main_metric=self.main_metric,
            patterns=patterns,
            default_pattern=self.default_pattern or next(iter(patterns), None),
            instruction=self.instruction,
            pair_separator=self.pair_separator,
        )


TASK_HOLDS = "name:, text_fields:, label_names:, train: and eval:, as in docs/tasks.md"
def _check_pattern(name: str, spec: PatternSpec, labels: tuple[str, ...], fields: tuple[str, ...]) -> None:
    """A word for every label, a different one each, and slots that are text fields of the task."""
    if set(spec.verbalizer) != set(labels):
        missing, extra = set(labels) - set(spec.verbalizer), set(spec.verbalizer) - set(labels)
        raise ValueError(f"pattern {name!r} verbalizer must map every label {list(labels)} to a word"
                         + (f" (missing {sorted(missing)})" if missing else "")
                         + (f" (not labels: {sorted(extra)})" if extra else ""))
    words = list(spec.verbalizer.values())
    same = sorted({w for w in words if words.count(w) > 1})
    if same:
        raise ValueError(f"pattern {name!r} verbalizer gives the word {same[0]!r} to several labels; each label "
                         "needs a word of its own (the answer would not tell them apart)")
    try:
        slots = template_fields(spec.template)
    except PromptError as e:
        raise ValueError(f"pattern {name!r}: {e}") from None
    unknown = [f for f in slots if f not in fields]
    if unknown:
        raise ValueError(f"pattern {name!r} template has the slot {{{unknown[0]}}}, which is not a text field; "
                         f"slots name text fields: {', '.join('{' + f + '}' for f in fields)}")


_READ: dict[tuple[str, str], Task] = {}  # (path, text) -> its task: a run asks for its task many times


def load_task_yaml(path: str | Path) -> Task:
    """The task a YAML file describes (see docs/tasks.md; the built-ins are examples)."""
    p = Path(path)
    text = yamlfile.read_text(p, "task file", TaskError)
    if (str(p), text) not in _READ:
        _READ[str(p), text] = _parse(p, text)
    return _READ[str(p), text]


def _parse(p: Path, text: str) -> Task:
    data = yamlfile.mapping(text, p, "task file", TaskError, TASK_HOLDS)
    try:
        spec = TaskSpec(**{str(k): v for k, v in data.items()})
    except ValidationError as e:
        problems = _explain(e, data)
        sep = "\n  " if len(problems) > 1 else " "
        raise TaskError(f"task file {str(p)!r}:{sep}{sep.join(problems)}") from None
    return spec.task(p.parent, p.name)


def _explain(e: ValidationError, data: dict) -> list[str]:
    """One line per problem, naming the key (and the eval set or pattern it belongs to)."""
    unknown: dict[tuple, list[str]] = {}
    lines = []
    for err in e.errors():
        loc = err["loc"]
        *parent, key = loc or ("",)
        where = _where(tuple(parent), data)
        if err["type"] == "extra_forbidden":
            unknown.setdefault(tuple(parent), []).append(str(key))
        elif err["type"] == "missing":
            lines.append(f"{where}missing required key {key!r}")
        elif err["type"] == "value_error":  # a validator's message; it names the key
            # a model's own check (train, an eval entry, a pattern, the file) is located at the model
            at = _where(loc, data) if _model_at(loc) is not None else where
            lines.append(at + err["msg"].removeprefix("Value error, "))
        elif err["type"] == "model_type":
            lines.append(f"{_where(loc, data)}expected a mapping with keys {_fields(_model_at(loc))}, "
                         f"got {err['input']!r}")
        else:
            msg = err["msg"].removeprefix("Input ").replace("a valid tuple", "a list")
            what = f"{key!r}"
            if key == "[key]":  # a mapping's key, e.g. of a label_map
                *parent, key = parent
                where, what = _where(tuple(parent), data), f"key {key!r}"
            lines.append(f"{where}{what} {msg[0].lower() + msg[1:]}, got {err['input']!r}")
    for parent, keys in unknown.items():
        allowed = _fields(_model_at(parent))
        close = [m for k in keys for m in difflib.get_close_matches(k, allowed, 1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        lines.insert(0, f"{_where(parent, data)}unknown keys {sorted(keys)}{hint}; allowed: {allowed}")
    return list(dict.fromkeys(lines))


def _where(loc: tuple, data: dict) -> str:
    """'' for the file itself, else the eval set, pattern or key a problem is in, with a ': '."""
    if not loc:
        return ""
    if loc[0] == "eval" and len(loc) >= 2:
        entry = data["eval"][loc[1]]  # the error is in an entry: the raw eval is a list
        name = entry.get("name") if isinstance(entry, dict) else None
        head = f"eval {name!r}" if name is not None else f"eval entry {loc[1] + 1}"
        return head + "".join(f".{x}" for x in loc[2:]) + ": "
    if loc[0] == "patterns" and len(loc) >= 2:
        return f"pattern {loc[1]!r}" + "".join(f".{x}" for x in loc[2:]) + ": "
    return ".".join(map(str, loc)) + ": "


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The schema model of the mapping at a location: the file, its train source, an eval entry, a pattern."""
    if not loc:
        return TaskSpec
    return {("train", 1): SourceSpec, ("eval", 2): EvalSpec, ("patterns", 2): PatternSpec}.get((loc[0], len(loc)))


def _fields(model: type[BaseModel] | None) -> list[str]:
    return sorted(model.model_fields, key=lambda f: f != "name") if model else []  # an eval set's name first
