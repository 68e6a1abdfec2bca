"""Runs recorded before a run's id held its data by content: their ids hashed the path of
`data_dir` (`identity.legacy_run_id`), so the same data at another path, or the same store moved
to another machine, would not find them. A plan finds them here and does not compute them again.

A stored run is taken for a run of the plan when the run, with its data at the path the stored
run named, has the stored run's id (same config, method version, search space: everything but the
path), and the few-shot split drawn from the data now is the one the stored run recorded (same
example ids: its split checksum). A run that only plans (`--dry-run`) sees them as done; a run that
computes first moves each one to its current id (`move`): its folder is renamed, its manifest and
row say the new id, the data's hashes and the path it is at now, and `moved_from` keeps the old id
and path, so nothing of it is lost and the store reads as if it had always been keyed by content.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tuneoff.data import DataError, checksum
from tuneoff.identity import data_key, legacy_run_id
from tuneoff.pipeline import Toolbox

if TYPE_CHECKING:
    from tuneoff.config import RunConfig
    from tuneoff.record import Record
    from tuneoff.store import Store


def _legacy(store: "Store") -> dict[str, "Record"]:
    """run_id -> record of the stored runs whose id hashed a data_dir path."""
    return {rec.run_id: rec for rec in store.records()
            if rec.data is None and (rec.config or {}).get("data_dir") is not None}


def _same_split(run: "RunConfig", rec: "Record") -> bool:
    """Whether the data now gives `run` the split the stored run recorded (a failed run recorded
    none: its config alone decides)."""
    if rec.split is None or rec.split.checksum is None:
        return True
    recorded = rec.split.checksum
    try:
        few = Toolbox.shared().split(run).few
    except DataError:
        return False
    return checksum([ex["id"] for ex in few]) == recorded


def find(store: "Store", runs: list["RunConfig"], statuses: dict[str, str]) -> dict[str, str]:
    """{run id now: stored id} for each run of `runs` that is stored under the id it had by path."""
    todo = [r for r in runs if r.data_dir is not None and r.run_id() not in statuses]
    if not todo:
        return {}
    legacy = _legacy(store)
    paths = sorted({rec.config["data_dir"] for rec in legacy.values()})
    links = {}
    for run in todo:
        for path in paths:
            old = legacy_run_id(run, path)
            if old in legacy and old not in links.values() and _same_split(run, legacy[old]):
                links[run.run_id()] = old
                break
    return links


def seen_as_done(statuses: dict[str, str], links: dict[str, str]) -> dict[str, str]:
    """`statuses` with each linked run under its id now (what a plan that only looks needs)."""
    return {**statuses, **{new: statuses[old] for new, old in links.items()}}


def move(store: "Store", runs: list["RunConfig"], links: dict[str, str]) -> int:
    """Move each linked stored run to its id now (see the module's docstring); the number moved.
    Safe to repeat after an interruption: each step is atomic and finds what an earlier one did."""
    by_id = {r.run_id(): r for r in runs}
    for new, old in links.items():
        rec = store.get(old)
        if rec is None:
            continue
        run = by_id[new]
        src, dst = store.run_dir(old), store.run_dir(new)
        if src.is_dir() and not dst.exists():
            os.replace(src, dst)  # weights and all
        moved = {**rec.to_dict(), "run_id": new, "config": {**rec.config, "data_dir": run.data_dir},
                 "data": data_key(run), "moved_from": {"run_id": old, "data_dir": rec.config["data_dir"]}}
        store.replace(old, moved)
    return len(links)
