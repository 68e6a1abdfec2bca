"""Task registry: every task is a YAML file of one schema (`tuneoff.tasks.schema`). The built-in ones
ship in ``tasks/builtin/`` and are known by name; any other is given by the path of its file."""
from __future__ import annotations

from pathlib import Path

from tuneoff.tasks.base import EvalSet, Pattern, Source, Task
from tuneoff.tasks.schema import TaskError, load_task_yaml

__all__ = ["Task", "EvalSet", "Pattern", "Source", "get_task", "list_tasks", "TaskError", "load_task_yaml",
           "BUILTIN_DIR"]

BUILTIN_DIR = Path(__file__).parent / "builtin"
# the order of `tuneoff ls tasks`: the offline demo first, then GLUE; each is BUILTIN_DIR/<name>.yaml
BUILTIN = ("demo", "cola", "mnli", "mnli-3way", "rte", "sst2")

_BUILT: dict[str, Task] = {}  # the built-ins read so far: each file is read on first use, once


def _builtin(name: str) -> Task:
    if name not in _BUILT:
        task = load_task_yaml(BUILTIN_DIR / f"{name}.yaml")
        if task.name != name:
            raise TaskError(f"{BUILTIN_DIR / name}.yaml names its task {task.name!r}; a built-in is named as its file")
        _BUILT[name] = task
    return _BUILT[name]


def list_tasks() -> list[Task]:
    files = {p.stem for p in BUILTIN_DIR.glob("*.yaml")}
    if files != set(BUILTIN):
        raise TaskError(f"{BUILTIN_DIR} holds {sorted(files)}, but the built-in tasks are {sorted(BUILTIN)}")
    return [_builtin(name) for name in BUILTIN]


def get_task(name_or_path: str) -> Task:
    """A built-in task by name, or a custom task from a ``.yaml``/``.yml`` file."""
    if name_or_path.endswith((".yaml", ".yml")):
        return load_task_yaml(name_or_path)
    if name_or_path not in BUILTIN:
        raise TaskError(f"unknown task {name_or_path!r}; known tasks: {', '.join(BUILTIN)} "
                        "(or give the path of a task YAML file)")
    return _builtin(name_or_path)
