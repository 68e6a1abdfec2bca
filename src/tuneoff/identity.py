"""What makes a run the same run: its id, the id of a selection fit, and the rules that keep both
stable while config keys move and new keys are added.

A run id is the hash of everything that can change the run's result, in one layout (`hash_layout`):
the resolved config without where and how fast it is computed (`NOT_RESULT`), the method's
version above 1, the training settings only for a method that trains, the pattern only for a
method that renders one, the selection's protocol and whole search space instead of the values it
searches, and the data by its content: the hashes of the task's files under `data_dir`, never the
folder's path, so the same data at another path is the same run. Keys that moved are hashed under
their old names (`MOVED_KEYS`), keys added later at the default every earlier run had are left out
(`ADDED_KEYS`), so ids of runs recorded before stay what they were.

Runs recorded before the data entered their id by content hashed `data_dir`'s path instead:
`legacy_run_id` gives that id for a path, so such a store's runs are still found
(`tuneoff.migrate`). (This module imports neither `tuneoff.config` nor `tuneoff.methods`.)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneoff.config import RunConfig

# where and how fast a run is computed: never part of its result, nor of its run id (activation
# checkpointing recomputes the same activations with the same random state; the thread count moves
# float sums in their last digits only, as the device does; a training resumed from a kept state
# reaches the weights it would have reached unstopped)
NOT_RESULT = ("output_dir", "device", "save", "eval.batch_size", "threads", "train.gradient_checkpointing",
              "train.resume_every")
# what a selection fit's id leaves out of its candidate's config besides: the eval sets are never
# read by a fit
NOT_FIT = ("output_dir", "device", "save", "eval", "threads", "train.gradient_checkpointing", "train.resume_every")

# Keys that moved: where each is now -> its old place. A config, an override or an old record may
# still give the old name (its value goes to the new place); ids are hashed with the value in its
# old place (`in_old_layout`), so they stay what they were.
MOVED_KEYS = {"max_length": "train.max_length"}
# Keys added after runs were recorded, with the default that every earlier run had: a key at that
# default is left out of run ids and fit ids (`in_old_layout`), so they stay what they were, and an
# old record's config reads as if it had the key at its default (`describe.config_of`).
# (`model_dtype` is resolved from `auto` when a config is validated: float32 on a CPU.)
ADDED_KEYS = {"train.precision": "fp32", "train.optimizer": "adamw", "train.stop_epochs": None,
              "select.search": "grid", "model_dtype": "float32", "quantization": None, "attn_implementation": "auto"}


def current_key(key: str) -> str:
    """A dotted key under its current name (`train.max_length` -> `max_length`)."""
    return next((new for new, old in MOVED_KEYS.items() if old == key), key)


def old_key(key: str) -> str:
    """A dotted key under the name ids hash it by (`max_length` -> `train.max_length`)."""
    return MOVED_KEYS.get(key, key)


def current_layout(data: dict) -> dict:
    """A config dict (a YAML file's, an old record's) with values under an old name moved to the
    current one (a shallow copy; `data` is not changed). ValueError for a key given under both names."""
    out = dict(data)
    for new, old in MOVED_KEYS.items():
        section, key = old.split(".")
        part = out.get(section)
        if isinstance(part, dict) and key in part:
            part = dict(part)
            value = part.pop(key)
            out[section] = part
            if new in out and out[new] != value:
                raise ValueError(f"{old!r} is the old name of {new!r}: give it once "
                                 f"(got {new}={json.dumps(out[new])} and {old}={json.dumps(value)})")
            out[new] = value
    return out


def in_old_layout(d: dict) -> dict:
    """A resolved config with each moved key back in its old place (`d` changed, its sections not),
    and each key added since (`ADDED_KEYS`) left out where it holds its default."""
    for new, old in MOVED_KEYS.items():
        section, key = old.split(".")
        if new in d:
            d[section] = {**d.get(section, {}), key: d.pop(new)}
    for name, default in ADDED_KEYS.items():
        section, _, key = name.rpartition(".")
        if not section:  # a top-level key
            if d.get(key, default) == default:
                d.pop(key, None)
        elif isinstance(d.get(section), dict) and d[section].get(key, default) == default:
            d[section] = {k: v for k, v in d[section].items() if k != key}
    return d


def drop(d: dict, names) -> None:
    """Remove the dotted `names` from the nested dict `d`, in place (absent ones are fine)."""
    for name in names:
        *parents, last = name.split(".")
        node = d
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)


def digest(obj, length: int) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:length]


# -- the data, by content -----------------------------------------------------------------------

_FILE_HASHES: dict[tuple, str] = {}


def _file_hash(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) for the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def data_files(task_spec: str, data_dir: str) -> dict[str, str]:
    """The files of a task under `data_dir` (its train split and every eval set that is there), by
    their name relative to `data_dir` -> the sha256 of their bytes. What the folder is called, or
    where it sits, is no part of it."""
    from tuneoff.data import local_file  # late: data loading is not needed to describe a config
    from tuneoff.tasks import get_task

    task = get_task(task_spec)
    out = {}
    for source in [task.train, *(es.source for es in task.eval_sets)]:
        path = local_file(source, data_dir)
        if path is not None:
            out[os.path.relpath(path, data_dir).replace(os.sep, "/")] = _file_hash(path)
    return dict(sorted(out.items()))


def data_key(cfg: "RunConfig") -> dict | None:
    """What a run's id holds of its data: None for data the task names itself (built in, or the
    hub), else its files' hashes (`data_files`)."""
    if cfg.data_dir is None:
        return None
    return {"files": data_files(cfg.task, cfg.data_dir)}


# -- run ids -------------------------------------------------------------------------------------

def hash_layout(cfg: "RunConfig") -> dict:
    """The resolved config of one run as its id hashes it, with `data_dir` as given."""
    d = cfg.resolved()
    drop(d, NOT_RESULT)
    if d.get("forgetting") == type(cfg.forgetting)().model_dump():  # ids of runs from before it existed
        d.pop("forgetting")
    version = cfg.method_version
    if version != 1:  # a changed method is a new run; unchanged methods keep their ids
        d["method_version"] = version
    if not cfg.method_class.trains:  # training settings cannot change its result
        d.pop("train")
    if not cfg.uses_pattern:  # nor can a pattern that the method never renders
        d["pattern"] = None
    d.pop("select", None)  # without selection the id is what it always was
    in_old_layout(d)
    if cfg.select is not None:  # with it: the protocol and the whole search space, not the fixed values
        _hash_selection(cfg, d)
    return d


def _hash_selection(cfg: "RunConfig", d: dict) -> None:
    """The protocol and the whole search space (moved keys under their old names) in `d`, and not
    the fixed values of the keys it searches."""
    space = {old_key(k): v.to_dict() if hasattr(v, "to_dict") else v for k, v in cfg.search_space().items()}
    drop(d, space)
    s = cfg.select
    d["select"] = {"protocol": s.protocol, "folds": cfg.folds() if s.protocol == "cv" else None,
                   "budget": s.budget, "oracle": s.oracle, "space": space,
                   "reference_seed": s.reference_seed if s.budget == "frugal" else None}
    if s.search != "grid":  # the grid's ids are what they always were
        length = cfg.search_length()
        if length is not None:  # the length it searches, not the fixed one
            drop(d, ["train.epochs", "train.stop_epochs"])
        d["select"].update(search=s.search, trials=s.trials, sampler=s.sampler, pruner=s.pruner,
                           extensions=s.extensions, repeats=s.repeats_for(cfg.shots) if cfg.is_single else s.repeats,
                           length=None if length is None else length.to_dict())


def with_data(d: dict, data: dict | None) -> dict:
    """`d` (a hash layout) with the data by content in place of `data_dir`'s path."""
    if data is not None:
        d.pop("data_dir", None)
        d["data"] = data
    return d


def run_id(cfg: "RunConfig") -> str:
    """The id of a single run (see the module's docstring)."""
    return digest(with_data(hash_layout(cfg), data_key(cfg)), 16)


def legacy_run_id(cfg: "RunConfig", data_dir: str) -> str:
    """The id a run had when ids hashed `data_dir`'s path: `cfg` with its data at `data_dir`."""
    return digest({**hash_layout(cfg), "data_dir": data_dir}, 16)


# -- selection fits ------------------------------------------------------------------------------

def _fit_layout(candidate: "RunConfig") -> dict:
    d = candidate.resolved()
    drop(d, NOT_FIT)
    d = in_old_layout(d)
    version = candidate.method_version
    if version != 1:  # as in run ids: a changed method never reuses the old method's fits
        d["method_version"] = version
    return d


def fit_ids(candidate: "RunConfig", train_ids: list[str], heldout_ids: list[str]) -> list[str]:
    """The id of one selection fit (a candidate trained on `train_ids`, scored on `heldout_ids`),
    then the id the same fit had when fit ids hashed the path of `data_dir` (an older cache)."""
    d = _fit_layout(candidate)
    folds = {"train": train_ids, "heldout": heldout_ids}
    ids = [digest({"config": with_data(dict(d), data_key(candidate)), **folds}, 20)]
    if candidate.data_dir is not None:
        ids.append(digest({"config": d, **folds}, 20))
    return ids
