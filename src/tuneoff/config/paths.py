"""Paths written in a config or sweep file are read from the file's folder, as a task file's own
paths are read from the task file's: `task: tasks/mine.yaml` beside `sweeps/a.yaml` is
`sweeps/tasks/mine.yaml`, wherever the command runs. The keys that name files to read are
`task` (a `.yaml`/`.yml` path; a built-in task is a name), `data_dir` and `forgetting.text`.
`output_dir` is where results go and stays relative to the current folder, as a path given on the
command line does (a key=value there is read from where it is typed).

A resolved path is written relative to the current folder (unchanged when the file lies in it), so
a config that worked from the file's own folder keeps its run ids: a task given by path enters
its run id as that path. A path that is not there is an error naming where it was looked for.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tuneoff.config.base import ConfigError

# dotted key -> what must be there: a file, or a folder
PATH_KEYS = {"task": "file", "data_dir": "folder", "forgetting.text": "file"}
PLURALS = {"tasks": "task"}  # a sweep grid's plural names of these keys


def _names_path(key: str, value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    return key != "task" or value.endswith((".yaml", ".yml"))  # a built-in task is a name


def resolve(key: str, value: Any, folder: Path, where: str) -> Any:
    """`value` of dotted `key`, read from `folder` when it is a relative path; a ConfigError naming
    the place looked at when nothing of the kind is there. `where` names the file in errors."""
    if not _names_path(key, value):
        return value
    kind = PATH_KEYS[key]
    target = Path(value) if Path(value).is_absolute() else folder / value
    there = target.is_file() if kind == "file" else target.is_dir()
    if not there:
        hint = ""
        if not Path(value).is_absolute() and (Path(value).is_file() if kind == "file" else Path(value).is_dir()):
            hint = (f"; {value!r} is there relative to the current folder: write it relative to the file "
                    f"({os.path.relpath(Path(value).resolve(), folder.resolve())!r}), or give {key}={value} on "
                    "the command line")
        raise ConfigError(f"{where}: {key} {value!r}: no {kind} at {target.resolve()} (a relative path in a "
                          f"config or sweep file is read from the file's folder, {folder.resolve()}){hint}")
    if Path(value).is_absolute() or folder.resolve() == Path.cwd().resolve():
        return value
    return os.path.relpath(target)


def _section(data: dict, folder: Path, where: str, prefix: str = "") -> dict:
    """A copy of the mapping `data` (nested or dotted keys) with its path keys resolved."""
    out = {}
    for k, v in data.items():
        key = prefix + PLURALS.get(str(k), str(k))
        if isinstance(v, dict) and any(p.startswith(key + ".") for p in PATH_KEYS):
            out[k] = _section(v, folder, where, key + ".")
        elif key in PATH_KEYS:
            out[k] = [resolve(key, x, folder, where) for x in v] if isinstance(v, list) else resolve(key, v, folder,
                                                                                                     where)
        else:
            out[k] = v
    return out


def config_file(data: dict, path: str | Path) -> dict:
    """A run config file's mapping with its paths read from the file's folder."""
    return _section(data, Path(path).parent, f"config file {str(path)!r}")


def sweep_file(data: dict, path: str | Path) -> dict:
    """A sweep file's mapping with the paths of its `defaults`, `grid` values and method entries'
    `overrides` read from the file's folder."""
    folder, where = Path(path).parent, f"sweep config {str(path)!r}"
    out = dict(data)
    for part in ("defaults", "grid"):
        if isinstance(out.get(part), dict):
            out[part] = _section(out[part], folder, where)
    methods = out.get("methods")
    if isinstance(methods, list):
        out["methods"] = [{**m, "overrides": _section(m["overrides"], folder, where)}
                          if isinstance(m, dict) and isinstance(m.get("overrides"), dict) else m for m in methods]
    return out
