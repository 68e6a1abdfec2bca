"""A selection's search as the report reads it: its kind (the grid, or the optuna search), its space
in words, its trials, and the choices that sit on an edge of what was searched, where the best value
may lie beyond.

Where a record says which choices sit on an edge (`selection.edges`, written by the search), that is
what counts. A grid record written before it was recorded gets it computed the same way: a chosen
value that is the smallest or the largest of a key's numeric candidate values, of 3 or more. A
choice is a chosen value of a key searched over 3 or more numbers or over a range, or the training
length where the optuna search searched it (its edge key is "length": "high" at the last rung, as
the search writes it, "low" at the first, read from the record's chosen length).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from tuneoff.describe import fmt
from tuneoff.record import Record
from tuneoff.space import is_number, list_edge, numeric_list

GRID, OPTUNA = "grid", "optuna"
SIDES = ("low", "high")
LENGTH = "length"
NAMES = {"train.lr": "learning rate", LENGTH: "training length"}


def _plain(value):
    """A part of a record as its stored JSON (a typed part as its dict)."""
    return value.to_dict() if hasattr(value, "to_dict") else value


def kind(sel) -> str:
    """"grid" or "optuna" (absent: the grid, the only search before optuna)."""
    return str(sel.get("search") or GRID) if sel is not None else GRID


def space(sel) -> dict[str, Any]:
    """{key: [values] | {low, high, log, ...}}, as stored."""
    return {k: _plain(v) for k, v in (_plain(sel.get("space")) or {}).items()}


def trials(sel) -> list[dict]:
    return [t for t in (_plain(sel.get("trials")) or []) if isinstance(t, dict)]


@dataclass(frozen=True)
class Edge:
    """One choice on an edge: `key` (a dotted key or "length"), `side` ("low" | "high"), the value
    chosen, what was searched ("grid" values, a "range", the "length"), and whether the search
    could still have extended it (False: at its limit; None: not said). A length chosen at its last
    rung where the edge rule extended the length but no trial trained past that rung (each trial of
    the extension was pruned before) holds the extension's longest length in `untried`: a longer
    length was offered, not tried, so the choice is not at a limit the search reached."""

    key: str
    side: str
    value: Any = None
    searched: str = GRID
    extendable: bool | None = None
    untried: float | None = None

    @property
    def at_limit(self) -> bool:
        return self.searched != GRID and self.extendable is False and self.untried is None

    def flag(self) -> str:
        """"train.lr high (limit)", "length high (longer not tried)"."""
        return f"{self.key} {self.side}" + (" (limit)" if self.at_limit else
                                             " (longer not tried)" if self.untried is not None else "")

    def value_text(self) -> str:
        if not is_number(self.value):
            return str(self.value)
        return epochs(self.value) if self.key == LENGTH else f"{self.value:g}"

    def phrase(self) -> str:
        """"learning rate was chosen at the top of its grid (0.0001)"."""
        name = NAMES.get(self.key, self.key)
        if self.searched == LENGTH:
            where = f"its {'longest' if self.side == 'high' else 'shortest'} rung"
        else:
            where = f"the {'top' if self.side == 'high' else 'bottom'} of its {'range' if self.searched == 'range' else 'grid'}"
        value = f" ({self.value_text()})" if self.value is not None else ""
        limit = ", which the search could not extend further (its limit)" if self.at_limit else ""
        if self.untried is not None:
            limit = (f"; the edge rule extended the length to {epochs(self.untried)}, but every trial of the "
                     f"extension was pruned before it, so no longer training was tried")
        return f"{name} was chosen at {where}{value}{limit}"


def epochs(value: float) -> str:
    """A training length in prose, as the search's space names its rungs: "0.333 epochs", not 0.333333."""
    return f"{value:.3g} epochs"


def _searched(key: str, values) -> str:
    if key == LENGTH:
        return LENGTH
    return "range" if isinstance(values, dict) else GRID


def _computed(sel) -> list[Edge]:
    """The edges of a record that does not carry them (a grid record written before they were)."""
    chosen, out = _plain(sel.get("chosen")) or {}, []
    for key, values in space(sel).items():
        side = list_edge(values, chosen.get(key))
        if side:
            out.append(Edge(key, side, chosen[key], GRID))
    return out


def edges(sel) -> list[Edge]:
    """The choices of a selection that sit on an edge of what was searched (none: [])."""
    if sel is None:
        return []
    raw = _plain(sel.get("edges"))
    if raw is None:
        return _computed(sel) + _first_rung(sel)
    sp, out = space(sel), []
    for key, e in (raw.items() if isinstance(raw, dict) else []):
        e = _plain(e)
        if not isinstance(e, dict) or e.get("side") not in SIDES:
            continue
        ext = e.get("extendable")
        untried = _untried(sel, e) if key == LENGTH else None
        out.append(Edge(str(key), e["side"], e.get("value"), _searched(str(key), sp.get(key)),
                        ext if isinstance(ext, bool) else None, untried))
    if not any(e.key == LENGTH for e in out):
        out += _first_rung(sel)
    return out


def _first_rung(sel) -> list[Edge]:
    """A length chosen at the first rung of a searched length, as the low edge of the length: the
    search writes only the high edge of the length (the one it can extend), so the low one is read
    from the record. The first rung is the shortest the search trains, so it is at its limit."""
    length, at = _plain(sel.get("length")), sel.get("chosen_length")
    if not (isinstance(length, dict) and is_number(length.get("low")) and is_number(length.get("high"))
            and length["low"] < length["high"] and is_number(at)):
        return []
    if abs(at - length["low"]) > 1e-9 * max(1.0, abs(length["low"])):
        return []
    return [Edge(LENGTH, "low", at, LENGTH, False)]


def _untried(sel, e: dict) -> float | None:
    """The longest length the edge rule offered, where a length chosen at its last rung (`e`) was
    offered longer by an extension but no trial trained past it; else None."""
    if e.get("side") != "high" or not is_number(e.get("value")):
        return None
    offered = [(_plain(r.get("length")) or {}).get("high") for r in (_plain(sel.get("rounds")) or [])
               if isinstance(r, dict)]
    offered = max((x for x in offered if is_number(x)), default=None)
    reached = max((g.get("length") for t in trials(sel) for g in (t.get("rungs") or [])
                   if isinstance(g, dict) and is_number(g.get("length"))), default=None)
    if offered is None or reached is None or offered <= e["value"] or reached > e["value"]:
        return None
    return float(offered)


def choices(sel) -> list[str]:
    """The keys whose choice could sit on an edge: searched over 3 or more numbers or a range, and
    the training length where it was searched; every key on an edge is one."""
    if sel is None:
        return []
    chosen = _plain(sel.get("chosen")) or {}
    keys = [k for k, v in space(sel).items() if k in chosen and (isinstance(v, dict) or numeric_list(v))]
    length = _plain(sel.get("length"))
    if isinstance(length, dict) and is_number(length.get("low")) and is_number(length.get("high")) \
            and length["low"] < length["high"]:
        keys.append(LENGTH)
    return list(dict.fromkeys(keys + [e.key for e in edges(sel)]))


def to_json(sel) -> str | None:
    """A selection's edges as the report's frame holds them (None: no selection)."""
    return None if sel is None else json.dumps([asdict(e) for e in edges(sel)], sort_keys=True)


def from_json(text) -> list[Edge]:
    """`to_json` read back; anything else (a missing value): []."""
    if not isinstance(text, str):
        return []
    try:
        rows = json.loads(text)
    except ValueError:
        return []
    return [Edge(**r) for r in rows if isinstance(r, dict) and r.get("side") in SIDES]


def made(recs: list[Record]) -> list[Record]:
    """The records of one cell whose selection was made there (not reused from the reference split of
    a frugal sweep); the first record where every one reused it (its reference run is not here)."""
    own = [r for r in recs if r.selection is not None and not r.selection.shared]
    return own or [r for r in recs if r.selection is not None][:1]


def reference(recs: list[Record]) -> Record | None:
    """The record of a cell whose selection the figures show: the reference split's where it is
    here, else the first data seed's selection."""
    own = made(recs)
    if not own:
        return None
    ref = own[0].selection.reference_data_seed
    return next((r for r in own if ref is not None and r.data_seed == ref),
                min(own, key=lambda r: (r.data_seed is None, r.data_seed or 0, r.seed or 0)))


def flags(recs: list[Record]) -> str:
    """The "on edge" cell of a cell's selections: "train.lr high", "train.lr high (limit) (2/5)"."""
    own = made(recs)
    counts = Counter(e.flag() for r in own for e in edges(r.selection))
    return "; ".join(f if n == len(own) else f"{f} ({n}/{len(own)})" for f, n in counts.items())


def count_sentence(selections: list) -> str | None:
    """"31 of 40 choices sit on an edge of their grid ..." over the selections made (one per cell of a
    frugal sweep, one per split otherwise); None where none could."""
    total = Counter(k for s in selections for k in choices(s))
    on = [e for s in selections for e in edges(s)]
    if not total:
        return None
    kinds = {kind(s) for s in selections if choices(s)}
    where = {frozenset({GRID}): "grid", frozenset({OPTUNA}): "search space"}.get(frozenset(kinds), "grid or range")
    n = sum(total.values())
    text = (f"{len(on)} of {n} {'choice' if n == 1 else 'choices'} {'sits' if len(on) == 1 else 'sit'} on an "
            f"edge of {'its' if len(on) == 1 else 'their'} {where}")
    if len(total) > 1:
        by = Counter(e.key for e in on)
        text += " (" + ", ".join(f"{k}: {by[k]} of {v}" for k, v in total.items()) + ")"
    limit = sum(e.at_limit for e in on)
    if limit:
        text += f"; {limit} of them at a limit of the search (as far as it could extend, or the first rung)"
    rules = ["the smallest or largest of 3 or more grid values"] if GRID in kinds else []
    if OPTUNA in kinds:
        rules += ["a choice of a range near its bound (the search's edge rule)",
                  "a training length at its first or last rung"]
    return text + (": the best value of a choice on an edge may lie beyond what was searched (on an edge: "
                   f"{'; '.join(rules)}).")


def space_text(sel) -> str:
    """"train.lr ∈ {1e-05, 0.0001}", or "train.lr log 1e-05..0.001 (limits 1e-07..0.1)" for a range;
    the training length searched and the optuna search's trials where they apply."""
    parts = []
    for key, v in space(sel).items():
        if isinstance(v, dict):
            lim = v.get("limits")
            lim = f" (limits {fmt(lim[0])}..{fmt(lim[1])})" if isinstance(lim, list) and len(lim) == 2 else ""
            scale = ("log" if v.get("log", True) else "uniform") + (" integers" if v.get("int") else "")
            parts.append(f"{key} {scale} {fmt(v.get('low'))}..{fmt(v.get('high'))}{lim}")
        elif isinstance(v, list):
            parts.append(f"{key} ∈ {{{', '.join(fmt(x) for x in v)}}}")
    length = _plain(sel.get("length"))
    if isinstance(length, dict):
        parts.append(f"training length {fmt(length.get('low'))}..{fmt(length.get('high'))} "
                     f"{length.get('unit') or 'epochs'} (limit {fmt(length.get('limit'))}, factor {length.get('factor')})")
    if kind(sel) == OPTUNA:
        parts.append(f"optuna: {trials_text(sel)}")
    return "; ".join(parts)


def search_text(sel) -> str:
    """"grid", or "optuna (tpe, halving)"."""
    if kind(sel) != OPTUNA:
        return kind(sel)
    how = [str(x) for x in (sel.get("sampler"), sel.get("pruner")) if x]
    return OPTUNA + (f" ({', '.join(how)})" if how else "")


def trials_text(sel) -> str:
    """"12 trials: 5 pruned, 1 diverged; 2 rounds (extended train.lr high)"."""
    ts = trials(sel)
    states = Counter(str(t.get("state")) for t in ts)
    parts = [f"{states[s]} {s}" for s in ("pruned", "diverged") if states[s]]
    text = f"{len(ts)} trials" + (f": {', '.join(parts)}" if parts else "")
    rounds = _plain(sel.get("rounds")) or []
    if len(rounds) > 1:
        ext = [f"{x.get('key')} {x.get('side')}" for x in (_plain(sel.get("extended")) or []) if isinstance(x, dict)]
        text += f"; {len(rounds)} rounds" + (f" (extended {', '.join(ext)})" if ext else "")
    return text
