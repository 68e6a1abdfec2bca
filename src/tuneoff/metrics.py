"""The one registry of metrics. A `Metric` knows how to compute itself, from predicted labels or
from class probabilities, and which way is better; registering one adds it to every record, the
summary, the report's secondary tables and what a task may name as its `main_metric`, and
everything that ranks, flags or recommends asks it for its direction (`direction`, `better`).

Label metrics (`needs="labels"`: accuracy, mcc, f1) are recorded for the whole eval set, the
majority baseline and every subset; probability metrics (`needs="probs"`: ece, brier, from
`tuneoff.calibration`) for the whole eval set only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from tuneoff import calibration

NEEDS = ("labels", "probs")
# names a record already uses for something else beside the metrics of an eval set
RESERVED = frozenset({"n", "label", "pred_dist", "reliability", "domain", "overall", "majority", "subsets"})
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Metric:
    """`fn(y_true, y_pred, labels)` for a label metric, `fn(y_true, probs, labels)` (probs [N, C])
    for a probability metric; `labels` = every label id of the task."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray, list[int]], float | None]
    higher_is_better: bool
    needs: Literal["labels", "probs"]
    description: str
    title: str = ""  # how a table heads it; the name when empty

    @property
    def heading(self) -> str:
        return self.title or self.name

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is: `sign * value` is higher-is-better."""
        return 1 if self.higher_is_better else -1


METRIC_REGISTRY: dict[str, Metric] = {}


class UnknownMetric(KeyError, ValueError):
    """A metric name that is not registered; the message names the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def register_metric(metric: Metric) -> Metric:
    """Add `metric` to the registry; its name must be new, lower-case and not a record field."""
    if not _NAME.fullmatch(metric.name) or metric.name in RESERVED:
        raise ValueError(f"metric name {metric.name!r} must be lower-case letters, digits and '_', "
                         f"and not one of {sorted(RESERVED)}")
    if metric.name in METRIC_REGISTRY:
        raise ValueError(f"metric {metric.name!r} is already registered")
    if metric.needs not in NEEDS:
        raise ValueError(f"metric {metric.name!r}: needs must be one of {NEEDS}, got {metric.needs!r}")
    METRIC_REGISTRY[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a registered metric (a test's own, for instance)."""
    get_metric(name)
    del METRIC_REGISTRY[name]


def get_metric(name: str) -> Metric:
    try:
        return METRIC_REGISTRY[name]
    except KeyError:
        raise UnknownMetric(f"unknown metric {name!r}; registered: {', '.join(METRIC_REGISTRY)}") from None


def label_metric_names() -> tuple[str, ...]:
    """The metrics computed from predicted labels, in registration order (accuracy, mcc, f1, ...)."""
    return tuple(n for n, m in METRIC_REGISTRY.items() if m.needs == "labels")


def prob_metric_names() -> tuple[str, ...]:
    """The metrics computed from class probabilities (ece, brier, ...)."""
    return tuple(n for n, m in METRIC_REGISTRY.items() if m.needs == "probs")


def all_metric_names() -> tuple[str, ...]:
    """Label metrics first, then probability metrics: the order of a record's overall scores."""
    return label_metric_names() + prob_metric_names()


def direction(name: str) -> int:
    """+1 when a higher `name` is better, -1 when a lower one is."""
    return get_metric(name).sign


def better(name: str, a: float, b: float) -> bool:
    """Whether `a` is strictly better than `b` on metric `name`."""
    return direction(name) * (a - b) > 0


def not_better(name: str, score: float, baseline: float, tol: float = 1e-9) -> bool:
    """Whether `score` is no better than `baseline` on metric `name` (at or below it when higher
    is better, at or above it when lower is), within `tol`."""
    return score <= baseline + tol if direction(name) > 0 else score >= baseline - tol


def _mcc(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int]) -> float:
    # sklearn warns and returns 0 when only one label occurs in both; say 0 without the warning
    return float(matthews_corrcoef(y_true, y_pred)) if len(set(y_true) | set(y_pred)) > 1 else 0.0


for _m in (
    Metric("accuracy", lambda y_true, y_pred, labels: float(accuracy_score(y_true, y_pred)), True, "labels",
           "share of examples whose predicted label is the gold one"),
    Metric("mcc", _mcc, True, "labels", "Matthews correlation of predicted and gold labels, -1 to 1 (0 = chance)"),
    Metric("f1", lambda y_true, y_pred, labels: float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                                               zero_division=0)),
           True, "labels", "F1 per label, averaged over every label of the task (macro)"),
    Metric("ece", lambda y_true, probs, labels: calibration.ece(y_true, probs), False, "probs",
           "expected calibration error of the top-label probability (0 = calibrated)", "ECE"),
    Metric("brier", lambda y_true, probs, labels: calibration.brier(y_true, probs), False, "probs",
           "multi-class Brier score of the class probabilities, 0 to 2", "Brier"),
):
    register_metric(_m)


def scores(y_true, y_pred, num_labels: int) -> dict:
    """n and every label metric over all the task's labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return {"n": 0}
    labels = list(range(num_labels))
    return {"n": int(len(y_true)), **{n: get_metric(n).fn(y_true, y_pred, labels) for n in label_metric_names()}}


def prob_scores(y_true, probs, num_labels: int) -> dict:
    """Every probability metric of class probabilities `probs` [N, C]; None each for no examples."""
    y_true, probs = np.asarray(y_true, dtype=int), np.asarray(probs, dtype=float)
    labels = list(range(num_labels))
    return {n: get_metric(n).fn(y_true, probs, labels) if len(y_true) else None for n in prob_metric_names()}
