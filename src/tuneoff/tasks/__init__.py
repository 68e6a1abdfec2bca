"""Task registry: built-in tasks by name, custom tasks from a YAML file."""
from __future__ import annotations

from pathlib import Path

import yaml

from tuneoff.tasks.base import EvalSet, Pattern, Source, Task
from tuneoff.tasks.demo import DEMO
from tuneoff.tasks.glue import TASKS as _GLUE

__all__ = ["Task", "EvalSet", "Pattern", "Source", "get_task", "list_tasks", "TaskError", "load_task_yaml"]


class TaskError(ValueError):
    """An unknown task or a malformed task file."""


_REGISTRY: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _REGISTRY:
        raise TaskError(f"task {task.name!r} is registered twice")
    _REGISTRY[task.name] = task
    return task


for _t in (DEMO, *_GLUE):
    register_task(_t)


def list_tasks() -> list[Task]:
    return list(_REGISTRY.values())


def get_task(name_or_path: str) -> Task:
    """A registered task by name, or a custom task from a ``.yaml``/``.yml`` file."""
    if name_or_path.endswith((".yaml", ".yml")):
        return load_task_yaml(name_or_path)
    if name_or_path not in _REGISTRY:
        raise TaskError(f"unknown task {name_or_path!r}; known tasks: {', '.join(_REGISTRY)} "
                        "(or give the path of a task YAML file)")
    return _REGISTRY[name_or_path]


_METRICS = Task.__dataclass_fields__["metrics"].default  # accuracy, mcc, f1
_TASK_KEYS = {"name", "description", "text_fields", "label_names", "train", "eval", "patterns",
              "default_pattern", "main_metric", "instruction"}


def load_task_yaml(path: str | Path) -> Task:
    """A custom task. Example::

        name: tickets
        text_fields: [text]
        label_names: [bug, feature]          # labels in files: these names or their ids 0..n-1
        train: data/train.csv                # paths relative to this file
        eval:
          - {name: test, path: data/test.jsonl}
          - {name: other_product, path: data/other.jsonl, domain: out}
        patterns:
          simple: {template: "{text} This is a", verbalizer: {bug: " bug", feature: " feature"}}
    """
    p = Path(path)
    if not p.is_file():
        raise TaskError(f"task file {str(p)!r} does not exist")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise TaskError(f"task file {str(p)!r} is not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise TaskError(f"task file {str(p)!r} must hold a mapping")
    unknown = set(d) - _TASK_KEYS
    if unknown:
        raise TaskError(f"task file {str(p)!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_TASK_KEYS)}")
    for key in ("name", "text_fields", "label_names", "train", "eval"):
        if key not in d:
            raise TaskError(f"task file {str(p)!r}: missing required key {key!r}")

    def as_list(key):
        v = d[key]
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise TaskError(f"task file {str(p)!r}: {key!r} must be a non-empty list of strings")
        return tuple(v)

    text_fields, labels = as_list("text_fields"), as_list("label_names")
    if len(labels) < 2:
        raise TaskError(f"task file {str(p)!r}: 'label_names' needs at least two labels")
    for key, names in (("label_names", labels), ("text_fields", text_fields)):
        twice = sorted({x for x in names if names.count(x) > 1})
        if twice:
            raise TaskError(f"task file {str(p)!r}: {key!r} lists {', '.join(map(repr, twice))} more than once; "
                            f"each must be given once (two labels with one name would be merged in every metric)")

    def rel(f: str) -> str:
        q = Path(f)
        return str(q if q.is_absolute() else (p.parent / q))

    evals = []
    if not isinstance(d["eval"], list) or not d["eval"]:
        raise TaskError(f"task file {str(p)!r}: 'eval' must be a list of {{name, path, domain}}")
    for e in d["eval"]:
        if not isinstance(e, dict) or "path" not in e or "name" not in e:
            raise TaskError(f"task file {str(p)!r}: each eval entry needs 'name' and 'path', got {e!r}")
        domain = e.get("domain", "in")
        if domain not in ("in", "out"):
            raise TaskError(f"task file {str(p)!r}: eval {e['name']!r} domain must be 'in' or 'out'")
        extra = set(e) - {"name", "path", "domain", "subset_fields"}
        if extra:
            raise TaskError(f"task file {str(p)!r}: eval {e['name']!r} has unknown keys {sorted(extra)}")
        evals.append(EvalSet(e["name"], Source(path=rel(e["path"])), domain=domain,
                             subset_fields=tuple(e.get("subset_fields", ()))))
    patterns = {}
    for name, spec in (d.get("patterns") or {}).items():
        if not isinstance(spec, dict) or set(spec) != {"template", "verbalizer"}:
            raise TaskError(f"task file {str(p)!r}: pattern {name!r} needs exactly 'template' and 'verbalizer'")
        verb = spec["verbalizer"]
        if not isinstance(verb, dict) or set(verb) != set(labels):
            raise TaskError(f"task file {str(p)!r}: pattern {name!r} verbalizer must map every label "
                            f"{list(labels)} to a word")
        patterns[name] = Pattern(name, spec["template"], dict(verb))
    default_pattern = d.get("default_pattern") or (next(iter(patterns)) if patterns else None)
    if default_pattern is not None and default_pattern not in patterns:
        raise TaskError(f"task file {str(p)!r}: default_pattern {default_pattern!r} is not one of its patterns "
                        f"{sorted(patterns) or '(none defined)'}")
    main_metric = d.get("main_metric", "accuracy")
    if main_metric not in _METRICS:
        raise TaskError(f"task file {str(p)!r}: main_metric {main_metric!r} is not one of {list(_METRICS)}")
    names = [e.name for e in evals]
    if len(set(names)) != len(names):
        raise TaskError(f"task file {str(p)!r}: eval set names must be unique, got {names}")
    return Task(
        name=str(d["name"]),
        description=str(d.get("description", f"custom task from {p.name}")),
        text_fields=text_fields,
        label_names=labels,
        train=Source(path=rel(d["train"])),
        eval_sets=tuple(evals),
        main_metric=main_metric,
        patterns=patterns,
        default_pattern=default_pattern,
        instruction=str(d.get("instruction", "")),
    )
