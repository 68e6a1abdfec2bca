"""What a user can spend, as given to `tuneoff recommend`, `tuneoff report` or a sweep's
`recommend:` section: limits on a method's CPU time and FLOPs (set-up + training + selection,
the mean run: the figures the leaderboard and the cost plot show), its peak memory and trainable
parameters (the worst run), which shot counts and eval domain the answer is for, and the margin
within which two methods count as equivalent. Values read as people write them: 10m, 90s, 1h30m;
4GB, 512MB; 1M, 250k; 2e15, 500T. Which recorded figure each limit is checked against is decided
in one place, `tuneoff.report.recommend.budget_figures`.

No limit is on wall time: other work on the machine moves it (the same selection fits took 18 to
165 s of wall time as the load changed), so a wall-time limit would say more about the machine's
neighbours than about the method. Wall time is shown beside the CPU time and limits nothing.
`max_train_time`, the name the time limit had when it read wall time, is read as `max_train_cpu`.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

_NUM = r"(\d+(?:\.\d*)?|\.\d+)(?:e([-+]?\d+))?"
_TIME_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
_MEMORY_UNITS = {"": 1, "mb": 1, "mib": 1, "m": 1, "gb": 1024, "gib": 1024, "g": 1024, "tb": 1024 ** 2,
                 "tib": 1024 ** 2, "kb": 1 / 1024, "kib": 1 / 1024}
_COUNT_UNITS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
_FLOP_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18}
OLD_TIME_KEY = "max_train_time"  # read as max_train_cpu (`Budget._old_name`)


class BudgetError(ValueError):
    """A limit that cannot be read; the message shows how to write it."""


def _number(m: re.Match) -> float:
    return float(m.group(1)) * (10 ** int(m.group(2)) if m.group(2) else 1)


def parse_duration(value) -> float:
    """Seconds from 600, "600s", "10m", "1.5h" or "1h30m"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    parts = re.findall(_NUM + r"([a-z]*)", text)
    if not text or "".join(a + (f"e{b}" if b else "") + u for a, b, u in parts) != text:
        raise BudgetError(f"CPU time {value!r}: write seconds or a duration such as 90s, 10m, 1h30m")
    total = 0.0
    for a, b, unit in parts:
        if unit not in _TIME_UNITS:
            raise BudgetError(f"CPU time {value!r}: unknown unit {unit!r}; use s, m or h")
        total += float(a) * (10 ** int(b) if b else 1) * _TIME_UNITS[unit]
    return total


def _with_unit(value, units: dict, what: str, example: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.fullmatch(_NUM + r"\s*([a-z]*)", str(value).strip().lower())
    if not m or m.group(3) not in units:
        raise BudgetError(f"{what} {value!r}: write a number with a unit, such as {example}")
    return _number(m) * units[m.group(3)]


def parse_memory(value) -> float:
    """MB (MiB, as the record's figures) from 4096, "4GB", "512MB", "4GiB"."""
    return _with_unit(value, _MEMORY_UNITS, "memory", "4GB or 512MB")


def parse_count(value) -> float:
    """A count from 1000000, "1M", "250k", "1.5B"."""
    return _with_unit(value, _COUNT_UNITS, "trainable parameters", "1M or 250k")


def parse_flops(value) -> float:
    """FLOPs from 2e15, "2e15", "500T", "1.5P" (k, M, G, T, P, E: powers of 1000)."""
    return _with_unit(value, _FLOP_UNITS, "FLOPs", "2e15, 500T or 1.5P")


_PARSERS = {"max_train_cpu": parse_duration, "max_flops": parse_flops, "max_memory": parse_memory,
            "max_trainable_params": parse_count}


class Budget(BaseModel):
    """Limits (None: no limit) and what the answer is for."""

    model_config = ConfigDict(extra="forbid")
    max_train_cpu: float | None = Field(
        None, description="CPU seconds a method takes to get ready: set-up + training + selection, all threads, the "
                          "mean run (10m, 1h30m); the figure the leaderboard and the cost plot show. Other load on "
                          "the machine moves it far less than wall time. Old name: max_train_time")
    max_flops: float | None = Field(None, description="FLOPs of training + selection (approximate), the mean run "
                                                      "(2e15, 500T): the same on any machine")
    max_memory: float | None = Field(None, description="peak memory per run in MB, the worst run (4GB, 512MB)")
    max_trainable_params: float | None = Field(None, description="parameters that receive gradients (1M, 250k)")
    shots: list[int] | None = Field(None, description="shot counts to answer for; null = every one in the store")
    domain: Literal["in", "out"] | None = Field(None, description="eval domain to answer for; null = each")
    margin: float = Field(0.02, gt=0, description="equivalence margin, absolute on the main metric: two methods "
                          "are called equivalent only when an equivalence test (TOST) shows their difference within "
                          "±margin (`tuneoff.report.claims`)")

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: Any) -> Any:
        """`max_train_time` (a wall-time limit before) is read as the CPU-time limit; both at once is an error."""
        if isinstance(data, dict) and data.get(OLD_TIME_KEY) is not None:
            if data.get("max_train_cpu") is not None:
                raise ValueError(f"{OLD_TIME_KEY} is the old name of max_train_cpu (CPU time, not wall time); "
                                 "give one of them")
            data = {**{k: v for k, v in data.items() if k != OLD_TIME_KEY}, "max_train_cpu": data[OLD_TIME_KEY]}
        elif isinstance(data, dict) and OLD_TIME_KEY in data:
            data = {k: v for k, v in data.items() if k != OLD_TIME_KEY}
        return data

    @field_validator("max_train_cpu", "max_flops", "max_memory", "max_trainable_params", mode="before")
    @classmethod
    def _read(cls, v, info: ValidationInfo):
        return None if v is None else _PARSERS[info.field_name](v)

    @field_validator("shots", mode="before")
    @classmethod
    def _shots(cls, v):
        return [v] if isinstance(v, int) else v

    @field_validator("max_train_cpu", "max_flops", "max_memory", "max_trainable_params")
    @classmethod
    def _non_negative(cls, v):
        if v is not None and v < 0:
            raise ValueError("a limit cannot be negative")
        return v

    def limits(self) -> dict[str, float]:
        """axis -> limit, for the limits that are set (axes: `tuneoff.report.recommend.AXES`)."""
        out = {"cpu_time": self.max_train_cpu, "flops": self.max_flops, "memory": self.max_memory,
               "trainable_params": self.max_trainable_params}
        return {k: v for k, v in out.items() if v is not None}


def budget_from(**values) -> Budget:
    """A Budget from CLI or config values; a bad one is a BudgetError naming the value."""
    from pydantic import ValidationError

    try:
        return Budget(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        msgs = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                if err["loc"] else err["msg"].removeprefix("Value error, ") for err in e.errors()]
        raise BudgetError("; ".join(msgs)) from None
