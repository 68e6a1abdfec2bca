"""How a run is described: its config as flat dotted keys, which keys can change a result or a
score, which keys differ among a set of runs, the label that tells runs apart, and the metric a
record is judged by.

The run id, the sweep's listings, the terminal summary and the report all read runs through this
module, so they group and name runs alike: runs that differ in a setting that can change a score
are different settings, never pooled as if they were seeds. A run with hyperparameter selection
(`select:`) records its config as given, with the chosen values apart (`Record.selection`): a
chosen value is the method's outcome on its split, not a setting, so selected runs of one setting
pool over their data seeds. (This module imports neither `tuneoff.config` nor `tuneoff.methods`.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from tuneoff.identity import ADDED_KEYS, NOT_RESULT, current_layout
from tuneoff.record import Record, load

# the seeds: runs that differ in them alone are repeats of one setting (frugal selection's
# reference split is one of the data seeds)
SEEDS = ("data_seed", "seed", "select.reference_seed")
# measured beside the evaluation or after the choice: they cannot change a score
NOT_SCORE = ("forgetting", "select.oracle")
# the axes a comparison is laid out on, each in its own column (the pattern: `Label.variant`)
AXES = ("task", "model", "method.name", "shots", "pattern")

DEFAULT_METRIC = "accuracy"


def flatten(d: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1}} -> {"train.lr": 1}; keys already dotted stay as they are, an empty
    section is a value of its own."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def covered(key: str, names) -> bool:
    """Whether dotted `key` is one of `names` or lies under one of them."""
    return any(key == n or key.startswith(n + ".") for n in names)


def varying(flats: list[dict]) -> list[str]:
    """Keys whose value differs among the flat dicts, in the order first seen; a key that some
    of them lack counts as differing."""
    keys = dict.fromkeys(k for f in flats for k in f)
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


def fmt(value) -> str:
    """A value as a label shows it: text as it is, floats short (1e-4 -> 0.0001), the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- records -------------------------------------------------------------------------------------
# Each takes a `tuneoff.record.Record`, or a record's dict (validated into one: a caller with many
# records converts them once, `tuneoff.record.load`).

def config_of(rec: Record | dict) -> dict:
    """A record's config with every key under its current name (records before a key moved hold the old)
    and the keys added since it was recorded at the default it ran with."""
    cfg = current_layout(load(rec).config or {})
    for name, default in ADDED_KEYS.items():
        section, _, key = name.rpartition(".")
        if not section:  # a top-level key (of a config that is there at all)
            if cfg:
                cfg.setdefault(key, default)
        elif isinstance(cfg.get(section), dict) and key not in cfg[section]:
            cfg[section] = {**cfg[section], key: default}
    return cfg


def method_name(rec: Record | dict) -> str:
    m = load(rec).method or (config_of(rec).get("method") or {})
    return str(m.get("name", "?") if isinstance(m, dict) else m)


def method_options(rec: Record | dict) -> dict:
    opts = load(rec).method_options
    if opts is None:
        m = config_of(rec).get("method")
        opts = {k: v for k, v in m.items() if k != "name"} if isinstance(m, dict) else {}
    return dict(opts)


def record_field(rec: Record | dict, key: str):
    """A top-level field of a record (task, shots, pattern, ...), else its config's."""
    v = load(rec).get(key)  # a key it holds (by name: any key of its JSON)
    return config_of(rec).get(key) if v is None else v


def selection_label(select) -> str:
    """How a run's hyperparameters were chosen, as the `select` pseudo-option: "cv/frugal", or "off"."""
    return f"{select.get('protocol')}/{select.get('budget')}" if isinstance(select, dict) else "off"


def settings(rec: Record | dict) -> dict:
    """The settings of a record that can change its score, beside the axes and the seeds:
    method.<option>, the other config keys (dotted), `select` (the pseudo-option) with the
    selection's own settings as select.<key>, and the method's version."""
    rec = load(rec)
    cfg = config_of(rec)
    flat = {f"method.{k}": v for k, v in method_options(rec).items()}
    flat.update(flatten({k: v for k, v in cfg.items() if k not in ("method", "select")}))
    select = cfg.get("select")
    flat["select"] = selection_label(select)
    if isinstance(select, dict):  # its folds and search space; protocol and budget are in `select`
        flat.update({f"select.{k}": v for k, v in flatten(select).items() if k not in ("protocol", "budget")})
    flat["version"] = rec.method_version  # 1 where not recorded
    return {k: v for k, v in flat.items() if not covered(k, NOT_RESULT + SEEDS + NOT_SCORE + AXES)}


def _differing(flats: list[dict]) -> list[str]:
    """The settings that tell these runs (of one method) apart. The selection's own settings are
    compared among the runs that select: beside a run without selection, `select` says it all."""
    selecting = [f for f in flats if f["select"] != "off"]
    keys = [k for k in varying(flats) if not k.startswith("select.")]
    keys += [k for k in varying(selecting) if k.startswith("select.")]
    group = {"method": 0, "select": 2, "version": 3}
    return sorted(keys, key=lambda k: (group.get(k.split(".")[0], 1), k))


@dataclass(frozen=True)
class Label:
    """How a run is named wherever runs are compared: the method, the settings that tell its runs
    apart (`options`: "r=8, train.lr=0.0001"), and the pattern where runs of that label on a task
    used several."""

    name: str
    options: str = ""
    pattern: str | None = None

    @property
    def method_label(self) -> str:
        return f"{self.name}({self.options})" if self.options else self.name

    @property
    def variant(self) -> str:
        return self.method_label + (f" [{self.pattern}]" if self.pattern is not None else "")

    @property
    def details(self) -> str:
        """The variant without the method name (the summary's options column)."""
        return " ".join(x for x in (self.options, f"[{self.pattern}]" if self.pattern is not None else "") if x)


def labels(records: list[Record | dict]) -> list[Label]:
    """The label of each record, in order. Settings are compared among the runs of each method: a
    setting shows where its runs differ in it (one that some of them lack shows where it is set)."""
    records = [load(r) for r in records]
    by_method: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_method.setdefault(method_name(rec), []).append(i)
    opts: dict[int, str] = {}
    for idx in by_method.values():
        flats = {i: settings(records[i]) for i in idx}
        by_task: dict[str, set] = {}
        for i in idx:
            by_task.setdefault(str(record_field(records[i], "task")), set()).add(flats[i]["version"])
        if all(len(v) == 1 for v in by_task.values()):  # a version that goes with the task (a classification
            for flat in flats.values():                # head's on pair tasks) tells none of its runs apart
                flat.pop("version")
        keys = _differing(list(flats.values()))
        for i, flat in flats.items():
            opts[i] = ", ".join(f"{k.removeprefix('method.')}={fmt(flat[k])}" for k in keys if k in flat)
    cell = [(str(record_field(r, "task")), method_name(r), opts[i]) for i, r in enumerate(records)]
    patterns: dict[tuple, set] = {}
    for key, rec in zip(cell, records):
        patterns.setdefault(key, set()).add(pattern_name(rec))
    return [Label(name, o, pattern_name(rec) if len(patterns[(task, name, o)]) > 1 else None)
            for (task, name, o), rec in zip(cell, records)]


def pattern_name(rec: Record | dict) -> str:
    p = record_field(rec, "pattern")
    return "default" if p is None else str(p)


# -- the main metric -----------------------------------------------------------------------------

def task_metric(spec) -> str:
    """The main metric of a task (a registered name or a task file's path), else accuracy."""
    from tuneoff.tasks import get_task  # late: a description needs no task registry

    try:
        return get_task(str(spec)).main_metric
    except (ValueError, OSError):
        return DEFAULT_METRIC


def main_metric(rec: Record | dict) -> str:
    """The metric a run is judged by: as recorded with it (its task's own, e.g. mcc for CoLA or a
    task file that names it); a record from before it was recorded resolves it through its task."""
    rec = load(rec)
    if rec.main_metric:
        return str(rec.main_metric)
    return task_metric(config_of(rec).get("task") or rec.task or "")
