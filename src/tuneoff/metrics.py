"""The scores of a set of predictions, one entry each: adding a metric here adds it to every record,
the summary, the report's secondary tables and what a task may name as its `main_metric`."""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def _mcc(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int]) -> float:
    # sklearn warns and returns 0 when only one label occurs in both; say 0 without the warning
    return float(matthews_corrcoef(y_true, y_pred)) if len(set(y_true) | set(y_pred)) > 1 else 0.0


# name -> fn(y_true, y_pred, labels) over all the task's labels (sklearn)
METRICS: dict[str, Callable[[np.ndarray, np.ndarray, list[int]], float]] = {
    "accuracy": lambda y_true, y_pred, labels: float(accuracy_score(y_true, y_pred)),
    "mcc": _mcc,
    "f1": lambda y_true, y_pred, labels: float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                                        zero_division=0)),
}
NAMES: tuple[str, ...] = tuple(METRICS)


def scores(y_true, y_pred, num_labels: int) -> dict:
    """Every metric of METRICS over all the task's labels, and n."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return {"n": 0}
    labels = list(range(num_labels))
    return {"n": int(len(y_true)), **{name: fn(y_true, y_pred, labels) for name, fn in METRICS.items()}}
