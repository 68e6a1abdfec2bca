"""What a hyperparameter search searches: a key's range of values, and the training length searched as
a fidelity. Methods declare theirs next to their options (`Method.search_ranges`, `search_length`);
`select:` replaces them. (A leaf module: it imports nothing of tuneoff.)

    train.lr: {low: 1.0e-5, high: 1.0e-3}                     # log-uniform (log: true by default)
    train.lr: {low: 1.0e-5, high: 1.0e-3, limits: [1.0e-7, 0.1]}  # how far the edge rule may extend it
    method.r: {low: 2, high: 32, int: true}                   # integers (log-uniform too)
    select.length: {low: 1, high: 9, limit: 81, factor: 3}    # epochs: rungs 1, 3, 9; may extend to 81

The edge rule: a choice in the outer `EDGE_SHARE` of a range (on the log scale for a log range) sits
on its edge; the search then extends that side by half the range's width, never past `limits`, and
searches again. A length chosen at its last rung extends the length by `factor`, never past `limit`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

EDGE_SHARE = 0.1  # a value this close to a bound (a share of the range's width) is on its edge


def _number(key: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{key}: {name} must be a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise ValueError(f"{key}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{key}: {name} must be finite, got {value!r}")
    return out


@dataclass(frozen=True)
class Range:
    """Values of one key between `low` and `high` (log-uniform unless log=False), extendable by the
    edge rule to `limits`."""

    low: float
    high: float
    log: bool = True
    integer: bool = False
    limits: tuple[float, float] | None = None

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"a range needs low < high, got low={self.low:g}, high={self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low:g} (or give log: false)")
        lo, hi = self.hard()
        if not lo <= self.low < self.high <= hi:
            raise ValueError(f"limits [{lo:g}, {hi:g}] must contain the range [{self.low:g}, {self.high:g}]")

    @classmethod
    def parse(cls, key: str, spec: dict) -> "Range":
        """A range from a config mapping (`low`, `high`, optional `log`, `int`, `limits`)."""
        unknown = set(spec) - {"low", "high", "log", "int", "limits"}
        if unknown:
            raise ValueError(f"{key}: unknown range key(s) {sorted(unknown)}; a range has low, high, log, int, limits")
        if "low" not in spec or "high" not in spec:
            raise ValueError(f"{key}: a range needs both low and high, e.g. {{low: 1.0e-5, high: 1.0e-3}}")
        limits = spec.get("limits")
        if limits is not None and not (isinstance(limits, list) and len(limits) == 2):
            raise ValueError(f"{key}: limits must be [lowest, highest], got {limits!r}")
        for flag in ("log", "int"):
            if not isinstance(spec.get(flag, False), bool):
                raise ValueError(f"{key}: {flag} must be true or false, got {spec[flag]!r}")
        try:
            return cls(_number(key, "low", spec["low"]), _number(key, "high", spec["high"]), spec.get("log", True),
                       spec.get("int", False),
                       None if limits is None else (_number(key, "limits", limits[0]), _number(key, "limits", limits[1])))
        except ValueError as e:
            raise ValueError(str(e) if str(e).startswith(key) else f"{key}: {e}") from None

    def hard(self) -> tuple[float, float]:
        return self.limits if self.limits is not None else (self.low, self.high)

    def _scale(self, x: float) -> float:
        return math.log(x) if self.log else x

    def _unscale(self, u: float) -> float:
        x = math.exp(u) if self.log else u
        return float(round(x)) if self.integer else x

    def edge(self, value: float) -> str | None:
        """"low" or "high" if `value` is in the outer `EDGE_SHARE` of the range, else None."""
        a, b, v = self._scale(self.low), self._scale(self.high), self._scale(max(value, self.low))
        if v <= a + EDGE_SHARE * (b - a):
            return "low"
        if v >= b - EDGE_SHARE * (b - a):
            return "high"
        return None

    def extended(self, side: str) -> "Range | None":
        """The range with `side` pushed out by half its width (up to the limit); None at the limit."""
        a, b = self._scale(self.low), self._scale(self.high)
        lo, hi = self.hard()
        step = (b - a) / 2
        if side == "low":
            new = max(self._unscale(a - step), lo)
            return None if new >= self.low else replace(self, low=new)
        new = min(self._unscale(b + step), hi)
        return None if new <= self.high else replace(self, high=new)

    def suggest(self, trial, key: str):
        if self.integer:
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(key, self.low, self.high, log=self.log)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.integer:
            out["int"] = True
        if self.limits is not None:
            out["limits"] = list(self.limits)
        return out

    def __str__(self) -> str:
        kind = ("log-int" if self.integer else "log") if self.log else ("int" if self.integer else "uniform")
        lim = f", limits {self.limits[0]:.3g}..{self.limits[1]:.3g}" if self.limits else ""
        return f"{kind} {self.low:.3g}..{self.high:.3g}{lim}"


@dataclass(frozen=True)
class Length:
    """Training length as a search's fidelity, in epochs: a trial is scored at the rungs `low`,
    `low`·factor, ... up to `high` (the schedule's horizon); poor trials stop at a rung. `limit`
    bounds the edge rule's extension of `high`."""

    low: float = 1 / 3
    high: float = 9.0
    limit: float = 81.0
    factor: int = 3
    unit: str = field(default="epochs")

    def __post_init__(self):
        if not (0 < self.low <= self.high <= self.limit):
            raise ValueError(f"a length needs 0 < low <= high <= limit, got {self.low:g}, {self.high:g}, {self.limit:g}")
        if not isinstance(self.factor, int) or self.factor < 2:
            raise ValueError(f"a length's factor must be an integer of at least 2, got {self.factor!r}")

    @classmethod
    def parse(cls, spec: dict) -> "Length":
        unknown = set(spec) - {"low", "high", "limit", "factor"}
        if unknown:
            raise ValueError(f"select.length: unknown key(s) {sorted(unknown)}; a length has low, high, limit, factor")
        factor = spec.get("factor", cls.factor)
        high = _number("select.length", "high", spec.get("high", cls.high))
        low = _number("select.length", "low", spec.get("low", cls.low))
        limit = _number("select.length", "limit", spec.get("limit", max(high, cls.limit)))
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise ValueError(f"select.length: factor must be an integer of at least 2, got {factor!r}")
        try:
            return cls(low, high, limit, factor)
        except ValueError as e:
            raise ValueError(f"select.length: {e}") from None

    def rungs(self) -> list[float]:
        """low, low·factor, ... while at most high; high itself is always the last rung."""
        out, x = [], self.low
        while x < self.high * (1 - 1e-9):
            out.append(x)
            x *= self.factor
        return [*out, self.high]

    def promoted(self, n: int) -> int:
        """How many of `n` trials scored at a rung go on to the next under the synchronous pruner:
        the best 1/factor of them, at least one (none of none)."""
        return min(n, max(1, math.ceil(n / self.factor)))

    def above(self, old_high: float) -> list[float]:
        """The rungs past an earlier horizon `old_high` (the horizon itself if none): where a longer
        length trains what was trained to `old_high` before."""
        return [r for r in self.rungs() if r > old_high + 1e-9] or [self.high]

    def extended(self) -> "Length | None":
        """The horizon one factor longer (up to the limit); None at the limit."""
        new = min(self.high * self.factor, self.limit)
        return None if new <= self.high else replace(self, high=new)

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "limit": self.limit, "factor": self.factor, "unit": self.unit}

    def __str__(self) -> str:
        rungs = ", ".join(f"{r:.3g}" for r in self.rungs())
        return f"{self.unit} {rungs} (limit {self.limit:g})"


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numeric_list(values) -> bool:
    """A list of 3 or more numbers, not all equal, and nothing else: a list that has edges."""
    return (isinstance(values, list) and len(values) >= 3 and all(is_number(v) for v in values)
            and min(values) < max(values))


def list_edge(values, value) -> str | None:
    """The edge rule of a list (the grid's, or a list in the optuna space): "low"/"high" if `value` is
    the least/greatest of a `numeric_list`, else None. The search records it and the report reads it
    (or computes it, for a record written before edges were recorded) by this one rule."""
    if not numeric_list(values) or not is_number(value):
        return None
    return "low" if value == min(values) else "high" if value == max(values) else None


def parse(key: str, value) -> list | Range:
    """A `select:` key's value: a list of candidate values, or a range mapping."""
    if isinstance(value, dict):
        return Range.parse(key, value)
    return value


def as_spec(value) -> Any:
    """A space value as stored (a list as it is, a range as its mapping)."""
    return value.to_dict() if isinstance(value, Range) else value
