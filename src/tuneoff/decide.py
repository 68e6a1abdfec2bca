"""Seeds where they decide something (`tuneoff sweep --until-decided`): after the sweep's planned
runs, the recommendation is computed from the whole folder (as `tuneoff recommend` gives it), and
every (task, shots) cell whose answer is not decided (`tuneoff.report.claims.decided`) gets its
next data seed, for every run of the cell at once, so its methods stay paired; the runs are made
and the cells looked at again, until each is decided or holds `max_seeds` splits. Compute goes
where the answer is uncertain, and stops where it is not.

Each round is logged to `<output_dir>/decisions.jsonl` (one JSON object a line: the round, and per
cell its splits, whether it was decided and the seeds added), so the report can say for each cell
how many splits it got and why (`cell_lines`). A new data seed reuses a frugal selection made on
the reference split, so an added split costs a run, not a selection.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tuneoff.config.base import as_list

LOG = "decisions.jsonl"


@dataclass
class Round:
    number: int
    cells: dict[tuple, dict] = field(default_factory=dict)  # (task, shots) -> splits, decided, added

    def to_json(self) -> str:
        return json.dumps({"round": self.number, "time": round(time.time(), 1),
                           "cells": [{"task": t, "shots": s, **v} for (t, s), v in sorted(self.cells.items())]})


def cell_of(run) -> tuple:
    return (run.task, int(run.shots))


def splits(runs) -> dict[tuple, list[int]]:
    """The data seeds each (task, shots) cell holds among `runs`."""
    out: dict[tuple, set] = defaultdict(set)
    for run in runs:
        out[cell_of(run)].update(as_list(run.data_seed))
    return {k: sorted(v) for k, v in out.items()}


def more_seeds(runs, cells: set[tuple], max_seeds: int) -> tuple[list, dict[tuple, list[int]]]:
    """For each cell of `cells` below `max_seeds` splits: its next data seed (one past the largest it
    holds) for every distinct run of the cell. The new runs, and the seeds added per cell."""
    have = splits(runs)
    added: dict[tuple, list[int]] = {}
    new, seen = [], set()
    for cell in cells:
        if len(have.get(cell, [])) < max_seeds:
            added[cell] = [max(have[cell]) + 1]
    for run in runs:
        cell = cell_of(run)
        if cell not in added or run.data_seed != have[cell][0]:
            continue  # one template per distinct run of the cell: its runs at the cell's first seed
        for seed in added[cell]:
            twin = run.model_copy(update={"data_seed": seed})
            if twin.run_id() not in seen:
                seen.add(twin.run_id())
                new.append(twin)
    return new, added


def most_added(runs, max_seeds: int) -> list:
    """Every run `until_decided` may add to `runs` at most: each cell's next seeds up to `max_seeds`
    splits, as if no cell were decided sooner (what the dry run prices as the bound)."""
    runs, added = list(runs), []
    while True:
        new, _ = more_seeds(runs, set(splits(runs)), max_seeds)
        if not new:
            return added
        runs += new
        added += new


def write_round(out_dir: str | Path, rnd: Round) -> None:
    with open(Path(out_dir) / LOG, "a", encoding="utf-8") as f:
        f.write(rnd.to_json() + "\n")


def read_log(out_dir: str | Path) -> list[dict]:
    """The rounds logged in a folder ([] if none, or a line that is not JSON: it is skipped)."""
    path = Path(out_dir) / LOG
    if not path.is_file():
        return []
    rounds = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rounds.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rounds


def cell_lines(rounds: list[dict], max_seeds: int | None = None) -> dict[tuple, str]:
    """Per (task, shots): how many splits the cell got and why, from the logged rounds."""
    history: dict[tuple, list[dict]] = defaultdict(list)
    for rnd in rounds:
        for c in rnd.get("cells", []):
            history[(c.get("task"), c.get("shots"))].append(c)
    out = {}
    for cell, steps in history.items():
        last = steps[-1]
        added = [s for c in steps for s in c.get("added", [])]
        n = last.get("splits", 0)
        if last.get("decided") is None:
            why = (f"not decided at {n} split(s); more splits cannot decide it (the differences left are "
                   "below what the eval sample can show)")
        elif last.get("decided"):
            why = f"decided at {n} split(s)" + (f", after adding seed(s) {', '.join(map(str, added))}" if added else "")
        else:
            why = f"not decided at {n} split(s), the most allowed" if not last.get("added") else \
                f"not decided at {n} split(s)"
        out[cell] = why
    return out


def until_decided(runs, states, drive, out_dir, max_seeds: int) -> list:
    """Add data seeds to the undecided cells of `runs` (see the module), round by round: `states()`
    says of each (task, shots) cell of the whole folder whether its answer is decided (True), not
    and more seeds may decide it (False), or not and they cannot (None); `drive(new)` makes new runs.
    Returns every run planned at the end."""
    runs, number = list(runs), 0
    while True:
        state = states()
        have = splits(runs)
        todo = {c for c, ok in state.items() if ok is False and c in have}
        new, added = more_seeds(runs, todo, max_seeds)
        rnd = Round(number, {c: {"splits": len(have.get(c, [])), "decided": ok, "added": added.get(c, [])}
                             for c, ok in state.items()})
        write_round(out_dir, rnd)
        if not new:
            return runs
        drive(new)
        runs += new
        number += 1
