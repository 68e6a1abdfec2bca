"""What a reader must see about each run wherever its cell is shown, read from the run's record:
whether its predictions collapsed onto one label, whether its selection found any candidate above
chance on its held-out folds, and how many labelled examples it saw.

Each is a run's own, never an average over runs: a cell of five runs with one collapsed says "1 of
5 runs collapsed", however healthy the mean share looks.

- Collapsed: the run gave one label to at least COLLAPSED of an eval set (`Overall.pred_dist`).
- Above chance: some candidate of the selection had a mean held-out score better than the majority
  baseline's on the same folds (the record's `selection.above_chance`, written by the search; for a
  record without it, computed from its candidates' mean scores where the record pins the folds'
  baseline down: folds that hold every label equally often, or a metric that scores the majority
  alike however they hold them, as MCC's 0; else not known).
- Labels seen: the record's `labels_seen` where it has one, else `selection.labels_used_total` (the
  run's split and every split the choice used; older records: `labels_used`, plus the run's split
  where the choice was another split's), else its split (shots × labels).
"""
from __future__ import annotations

import math
from functools import lru_cache
from itertools import product

import numpy as np

from tuneoff.describe import main_metric
from tuneoff.metrics import get_metric, label_metric_names, not_better
from tuneoff.record import Record

COLLAPSED = 0.95  # a run that gives one label to at least this share of an eval set has collapsed
NO_CHANCE = "no candidate above chance on its folds"


def top(pred_dist: dict | None) -> tuple[str, float] | None:
    """One run's most-predicted label on an eval set and its share (None: not recorded)."""
    if not pred_dist:
        return None
    name, share = max(pred_dist.items(), key=lambda kv: kv[1])
    return str(name), float(share)


def collapsed(share) -> bool:
    return share is not None and not (isinstance(share, float) and math.isnan(share)) and share >= COLLAPSED


def of_runs(k: int, n: int) -> str:
    """"1 of 5 runs" ("1 run" where the cell holds one)."""
    return f"{k} of {n} runs" if n > 1 else "1 run" if k == 1 else f"{k} runs"


# -- selection: above chance ----------------------------------------------------------------------

def _n_labels(rec: Record) -> int | None:
    if rec.split is not None and rec.shots:
        return rec.split.n // rec.shots
    dists = [m.overall.pred_dist for m in (rec.metrics or {}).values() if m.overall and m.overall.pred_dist]
    return len(dists[0]) if dists else None


def _layouts(rec: Record, n_labels: int) -> list[tuple[int, ...]]:
    """Examples of each label a held-out fold can hold, as far as the record tells: one layout where
    the folds hold every label equally often, else every mix of the two sizes a stratified fold can
    give a label ([]: not known)."""
    sel, shots = rec.selection, rec.shots
    if not shots:
        return []
    if sel.protocol == "dev":
        return [(shots,) * n_labels] if sel.dev is None or sel.dev.n == shots * n_labels else []
    k = sel.folds or 0
    if not k or shots < k:
        return []
    if shots % k == 0:
        return [(shots // k,) * n_labels]
    return list(product((shots // k, shots // k + 1), repeat=n_labels)) if n_labels <= 8 else []


def _majority(counts: tuple[int, ...], metric: str) -> float | None:
    """The majority's score, in `metric`, on a fold of these label counts."""
    return _majority_score(counts, get_metric(metric).fn)


@lru_cache(maxsize=None)
def _majority_score(counts: tuple[int, ...], fn) -> float:
    """(cached: a report asks it of every run's selection, and a folder's selections hold a handful
    of layouts; keyed by the metric's function, so a metric registered again is computed again)"""
    y = np.repeat(np.arange(len(counts)), counts)
    first = int(np.argmax(counts))  # the most frequent label, the first of equals (`evaluate.majority_baseline`)
    return fn(y, np.full_like(y, first), list(range(len(counts))))


def chance_level(rec: Record) -> float | None:
    """The majority baseline's mean score on the selection's held-out folds, in its metric: the
    record's `selection.chance`, else computed where the record pins it down (the folds hold every
    label equally often, or the metric gives the majority the same score however they hold them, as
    MCC's 0)."""
    sel = rec.selection
    if sel is None:
        return None
    if isinstance(sel.get("chance"), (int, float)):
        return float(sel.get("chance"))
    metric, n_labels = sel.metric or main_metric(rec), _n_labels(rec)
    if metric not in label_metric_names() or not n_labels:
        return None
    values = {round(v, 12) if v is not None else None for v in (_majority(c, metric) for c in _layouts(rec, n_labels))}
    if len(values) != 1 or None in values:
        return None
    return float(values.pop())


def above_chance(rec: Record) -> bool | None:
    """Whether any candidate of the run's selection beat the majority baseline on its held-out
    folds (None: no selection, or not known from the record)."""
    sel = rec.selection
    if sel is None:
        return None
    if isinstance(sel.get("above_chance"), bool):
        return sel.get("above_chance")
    level = chance_level(rec)
    means = [c.mean_score for c in sel.candidates or []
             if not c.diverged and c.mean_score is not None and math.isfinite(c.mean_score)]
    if level is None or not means:
        return None
    metric = sel.metric or main_metric(rec)
    return any(not not_better(metric, s, level) for s in means)


# -- labels seen ---------------------------------------------------------------------------------

def labels_seen(rec: Record) -> int | None:
    """Labelled examples the run's result depended on, its selection's included."""
    own = rec.get("labels_seen")
    if isinstance(own, (int, float)) and not isinstance(own, bool):
        return int(own)
    sel, n_labels = rec.selection, _n_labels(rec)
    own_split = rec.split.n if rec.split is not None else rec.shots * n_labels if rec.shots and n_labels else None
    if sel is not None and sel.labels_used_total is not None:
        return int(sel.labels_used_total)
    if sel is not None and sel.labels_used is not None:  # before the total was recorded: the choice's labels
        return int(sel.labels_used) + (int(own_split or 0) if sel.shared else 0)
    return None if own_split is None else int(own_split)


def labels_why(rec: Record) -> str:
    """Where a run's labels beyond its own split came from ("" where none did)."""
    sel = rec.selection
    if sel is None:
        return ""
    parts = ["its dev split"] if sel.protocol == "dev" else []
    if sel.shared:
        parts.append("the reference split's (frugal selection)")
    return " and ".join(parts)


def collapse_text(k: int, n: int, label: str, share: float) -> str:
    """"1 of 5 runs collapsed onto one label (98% positive)"."""
    return f"{of_runs(k, n)} collapsed onto one label ({share:.0%} {label})"
