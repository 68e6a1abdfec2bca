"""How long the runs left of a plan will take, from what finished runs like them took.

A sweep's runs differ in cost by orders of magnitude: a 128-shot run trains 32 times the examples
of a 4-shot one, and the run that makes a frugal selection trains every candidate on every fold
while the other splits reuse its choice. So the time left is not the mean run time so far times
the runs left; each run left is estimated from the recorded costs (`resources`) of finished runs
of the store (those of earlier invocations and other processes too):

- its own parts (load, set-up, training, evaluation, forgetting) from runs of the same task, model,
  method and shots; else from the same method at the nearest shot count, training scaled by the
  shots; else from the other methods at its task, model and shots; else from every run;
- plus, for a run that computes its own selection (any selecting run, except a frugal one off its
  reference split), the selection time of selecting runs, looked up the same way.

A part's cost is its wall time, except on the CPU where its CPU time is lower: a run starved by
other work on the machine (its wall time several times its CPU time) prices what it needed, not
what it waited (on a GPU, CPU time says nothing of the work, so wall time stays).

Until some run has finished there is no estimate. A selecting run with no selection recorded
anywhere yet counts its parts only, and the estimate says it is a lower bound.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from tuneoff.record import Record, RecordError, Resources, load

FIXED = ("load", "setup", "eval", "forgetting")  # parts that do not grow with the shots


def run_key(run) -> tuple:
    return (run.task, run.model, run.method.name, run.shots)


def computes_selection(run) -> bool:
    """Will this run train the selection's fits itself (not reuse a frugal reference split's)?"""
    s = run.select
    if s is None:
        return False
    return not (s.budget == "frugal" and s.reference_seed is not None and s.reference_seed != run.data_seed)


@dataclass
class Left:
    seconds: float      # wall seconds of the runs left, on the given number of workers
    lower_bound: bool   # some selecting run had no selection time to go by


class Costs:
    """Recorded costs by (task, model, method, shots): `parts` holds (fixed, training) seconds per
    finished run, `selections` (0, selection) seconds per finished run that computed its selection."""

    def __init__(self, records=()):
        self.parts: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
        self.selections: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
        for rec in records:
            self.add(rec)

    def add(self, rec: Record | dict | None) -> None:
        try:
            rec = load(rec) if rec is not None else None
        except RecordError:
            return  # a hand-edited record: no cost to learn from
        if rec is None or rec.status != "done":
            return
        c, res = rec.config or {}, rec.resources or Resources()
        key = (c.get("task"), c.get("model"), (c.get("method") or {}).get("name"), c.get("shots"))
        on_cpu = (rec.env or {}).get("device") == "cpu"
        try:
            fixed = sum(_seconds(res, p, on_cpu) for p in FIXED)
            train = _seconds(res, "train", on_cpu)
            chose = _seconds(res, "selection", on_cpu)
        except (TypeError, ValueError):
            return  # a hand-edited record: no cost to learn from
        self.parts[key].append((fixed, train))
        sel = rec.selection
        if sel is not None and not sel.shared and chose > 0:
            self.selections[key].append((0.0, chose))

    def run_seconds(self, run) -> tuple[float | None, bool]:
        """(seconds, known): the run's estimate (None if nothing is recorded yet), and False when it
        computes a selection that nothing recorded can price."""
        key = run_key(run)
        own = _lookup(self.parts, key)
        if own is None:
            return None, False
        if not computes_selection(run):
            return own, True
        chose = _lookup(self.selections, key)
        return own + (chose or 0.0), chose is not None

    def left(self, runs, workers: int = 1) -> Left | None:
        """The wall time of `runs` on `workers` runs at a time; None before any run has finished."""
        total, lower = 0.0, False
        for run in runs:
            s, known = self.run_seconds(run)
            if s is None:
                return None
            total, lower = total + s, lower or not known
        return Left(total / max(1, min(workers, len(runs))) if runs else 0.0, lower)


def _seconds(res: Resources, part: str, on_cpu: bool) -> float:
    """A recorded part's cost: wall seconds, or on the CPU its CPU seconds where those are fewer."""
    wall = float(res.get(f"{part}_time_s") or 0.0)
    cpu = res.get(f"{part}_cpu_s")
    return min(wall, float(cpu)) if on_cpu and cpu is not None else wall


def _mean(pairs, scale: float = 1.0) -> float:
    return sum(f + t * scale for f, t in pairs) / len(pairs)


def _lookup(table: dict[tuple, list[tuple[float, float]]], key: tuple) -> float | None:
    task, model, method, shots = key
    if table.get(key):
        return _mean(table[key])
    same = [k for k in table if k[:3] == (task, model, method) and table[k] and k[3]]
    if same and shots:  # the nearest shot count, its training scaled by the shots
        near = min(same, key=lambda k: (abs(math.log(shots / k[3])), k[3]))
        return _mean(table[near], shots / near[3])
    peers = [p for k, v in table.items() if k[:2] == (task, model) and k[3] == shots for p in v]
    if peers:
        return _mean(peers)
    every = [p for v in table.values() for p in v]
    return _mean(every) if every else None
