"""How long the runs left of a plan will take: from what finished runs like them took, else from the
work each will do (`tuneoff.pricing`) at this machine's speed (`tuneoff.throughput`).

A sweep's runs differ in cost by orders of magnitude: a 128-shot run trains 32 times the examples
of a 4-shot one, a pair task's inputs are several times a single sentence's, and the run that makes
a frugal selection trains every candidate on every fold while the other splits reuse its choice. So
the time left is not the mean run time so far times the runs left; each run left is priced on its
own (`Costs.price`, which says how: its `basis`), from the recorded costs (`resources`) of finished
runs of the store (those of earlier invocations and other processes too):

- its own parts (load, set-up, training, evaluation, forgetting) from runs of the same task, model,
  method and shots ("measured"); else from the same method at the nearest shot count, scaled by the
  ratio of the two counts' work where a pricer counts it, else training scaled by the shots ("shots");
- else, given a pricer (`throughput.Pricer`: the dry run's), from its work: tokens per example of
  its own task, steps, FLOPs, at the speed of the finished runs of its model ("scaled": a pair task
  priced from a single-sentence one costs its tokens' ratio more) or, with none, at the speed a
  short calibration measures on this machine ("first principles");
- else from the other methods at its task, model and shots; else from every run ("other runs");
- plus, for a run that computes its own selection (any selecting run, except a frugal one off its
  reference split), the selection time of selecting runs, looked up the same way (a pricer counts
  the selection's fits: `pricing.selection_work`; under the optuna search the edge rule may add up
  to `more` times that, said, not priced: from the selection's work, also where records price it).

A part's cost is its wall time, except on the CPU where its CPU time is lower: a run starved by
other work on the machine (its wall time several times its CPU time) prices what it needed, not
what it waited (on a GPU, CPU time says nothing of the work, so wall time stays).

Without a pricer there is no estimate until some run has finished, and a selecting run with no
selection recorded anywhere yet counts its parts only: the estimate says it is a lower bound.
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


@dataclass
class Price:
    """One run's price and how it was made."""

    seconds: float | None  # None: nothing to price it by
    known: bool = True     # False: it computes a selection nothing could price (seconds: a lower bound)
    basis: str = ""        # how its own parts were priced (or why they could not be)
    selection: str = ""    # how its selection was priced; "" when it computes none
    more: float = 1.0      # its selection may cost up to this many times more (the optuna edge rule)
    chose: float = 0.0     # its selection's seconds (in `seconds`)

    @property
    def extra(self) -> float:
        """Seconds the edge rule's rounds may add to the run's selection, at most (`more`)."""
        return self.chose * (self.more - 1.0)


class Costs:
    """Recorded costs by (task, model, method, shots): `parts` holds (fixed, training) seconds per
    finished run, `selections` (0, selection) seconds per finished run that computed its selection.
    `pricer` (optional, `throughput.Pricer`) prices from their work the runs that nothing recorded
    at their task, model and method prices, and learns the machine's speed from every record added."""

    def __init__(self, records=(), pricer=None):
        self.pricer = pricer
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
            fixed = sum(part_seconds(res, p, on_cpu) for p in FIXED)
            train = part_seconds(res, "train", on_cpu)
            chose = part_seconds(res, "selection", on_cpu)
        except (TypeError, ValueError):
            return  # a hand-edited record: no cost to learn from
        self.parts[key].append((fixed, train))
        sel = rec.selection
        if sel is not None and not sel.shared and chose > 0:
            self.selections[key].append((0.0, chose))
        if self.pricer is not None:
            self.pricer.learn(rec)

    def _priced(self, table: dict, key: tuple, ask, run=None) -> tuple[float | None, str, float]:
        """(seconds, basis, more) from the records like `key`, else the pricer (`ask`), else rougher.
        Records at another shot count are scaled by the ratio of the two shot counts' work where a
        pricer prices it (`ask` for `run` at either count), else by the shots."""
        near = _nearest(table, key) if not table.get(key) and self.pricer is not None and run is not None else None
        scaled = self._work_scaled(table, near, ask, run) if near is not None else None
        got, basis = scaled or _lookup(table, key)
        if got is not None:
            return got, basis, 1.0
        why = ""
        if self.pricer is not None:
            try:
                return ask()
            except Exception as e:  # noqa: BLE001 - pricing.Unknown and anything else: price it otherwise
                why = f" ({e})"
        got, basis = _rough(table, key)
        return got, (basis + why if got is not None else f"unknown{why or ': no finished run to price it by'}"), 1.0

    @staticmethod
    def _work_scaled(table: dict, near: tuple, ask, run) -> tuple[float, str] | None:
        """The records at the nearest shot count `near` scaled by the ratio of the work at the two
        counts (a 4-shot selection fits each candidate on more fold assignments than a 128-shot one,
        and trains fewer steps: the shots alone priced MNLI finetune's 128-shot cell at 3.7x what it
        took); None where the work cannot be priced (the shots' scaling stands)."""
        try:
            there = ask(run.model_copy(update={"shots": near[3]}))[0]
            here = ask(run)[0]
        except Exception:  # noqa: BLE001 - pricing.Unknown and anything else: the shots' scaling stands
            return None
        if not there or there <= 0 or here is None:
            return None
        return (_mean(table[near]) * here / there,
                f"shots: {len(table[near])} finished run(s) at {near[3]} shots, scaled by the work at each count")

    def price(self, run) -> Price:
        """The run's seconds (its selection included when it computes one) and how they were priced."""
        key = run_key(run)
        own, basis, _ = self._priced(self.parts, key, lambda r=run: (*self.pricer.parts(r), 1.0), run)
        if own is None or not computes_selection(run):
            return Price(own, own is not None, basis)
        chose, how, more = self._priced(self.selections, key, lambda r=run: self.pricer.selection(r), run)
        if chose is not None and more == 1.0 and self.pricer is not None:  # priced from records: the bound from its work
            try:
                more = self.pricer.selection(run)[2]
            except Exception:  # noqa: BLE001 - pricing.Unknown and anything else: no bound said
                pass
        return Price(own + (chose or 0.0), chose is not None, basis, how, more, chose or 0.0)

    def run_seconds(self, run) -> tuple[float | None, bool]:
        """(seconds, known): the run's estimate (None if nothing prices it), and False when it
        computes a selection that nothing could price."""
        p = self.price(run)
        return p.seconds, p.known

    def left(self, runs, workers: int = 1) -> Left | None:
        """The wall time of `runs` on `workers` runs at a time; None if some run has no price."""
        total, lower = 0.0, False
        for run in runs:
            s, known = self.run_seconds(run)
            if s is None:
                return None
            total, lower = total + s, lower or not known
        return Left(total / max(1, min(workers, len(runs))) if runs else 0.0, lower)

    def groups(self, runs, label=None) -> list[tuple[tuple, list, Price, float | None]]:
        """The runs by (task, model, method, shots) and `label(run)` (e.g. the sweep's method entry):
        (key, its runs, a price that shows its selection if one of them computes one, their seconds
        summed or None if one has no price), in the order they first come."""
        out: dict[tuple, list] = {}
        for run in runs:
            p, k = self.price(run), (*run_key(run), label(run) if label else None)
            g = out.setdefault(k, [k, [], p, 0.0])
            g[1].append(run)
            if p.selection and not g[2].selection:
                g[2] = p
            g[3] = None if g[3] is None or p.seconds is None else g[3] + p.seconds
        return [tuple(g) for g in out.values()]


def part_seconds(res: Resources, part: str, on_cpu: bool) -> float:
    """A recorded part's cost: wall seconds, or on the CPU its CPU seconds where those are fewer."""
    wall = float(res.get(f"{part}_time_s") or 0.0)
    cpu = res.get(f"{part}_cpu_s")
    return min(wall, float(cpu)) if on_cpu and cpu is not None else wall


def _mean(pairs, scale: float = 1.0) -> float:
    return sum(f + t * scale for f, t in pairs) / len(pairs)


def _lookup(table: dict[tuple, list[tuple[float, float]]], key: tuple) -> tuple[float | None, str]:
    """From runs of the same task, model and method: at the same shots, else the nearest shots."""
    task, model, method, shots = key
    if table.get(key):
        return _mean(table[key]), f"measured: {len(table[key])} finished run(s) of this cell"
    near = _nearest(table, key)
    if near is not None:  # the nearest shot count, its training scaled by the shots
        return (_mean(table[near], shots / near[3]),
                f"shots: {len(table[near])} finished run(s) at {near[3]} shots, training scaled by the shots")
    return None, ""


def _nearest(table: dict[tuple, list[tuple[float, float]]], key: tuple) -> tuple | None:
    """The key of the same task, model and method at the shot count nearest `key`'s (log scale)."""
    task, model, method, shots = key
    same = [k for k in table if k[:3] == (task, model, method) and table[k] and k[3]]
    if not (same and shots):
        return None
    return min(same, key=lambda k: (abs(math.log(shots / k[3])), k[3]))


def _rough(table: dict[tuple, list[tuple[float, float]]], key: tuple) -> tuple[float | None, str]:
    """From the other methods at the same task, model and shots; else from every run."""
    task, model, _, shots = key
    peers = [p for k, v in table.items() if k[:2] == (task, model) and k[3] == shots for p in v]
    if peers:
        return _mean(peers), f"other runs: the mean of {len(peers)} finished run(s) of other methods here (rough)"
    every = [p for v in table.values() for p in v]
    if every:
        return _mean(every), f"other runs: the mean of every finished run ({len(every)}; rough)"
    return None, ""
