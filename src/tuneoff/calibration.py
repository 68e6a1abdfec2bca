"""Calibration of the class probabilities the evaluator already has: expected calibration error
(ECE) over fixed, equal-width confidence bins, the multi-class Brier score, and the bin table a
reliability diagram is drawn from.

- confidence = the probability of the predicted (argmax) label;
- ECE = sum over bins of (examples in the bin / all examples) * |accuracy in the bin - mean
  confidence in the bin|, with BINS bins of width 1/BINS on [0, 1] (a confidence of exactly 1
  falls in the last bin);
- Brier = mean over examples of sum over labels of (p_label - 1[label is gold])^2, from 0 (sure
  and right) to 2 (sure and wrong).

Figures are rounded to DIGITS decimals: float32 probabilities differ in their last digits with the
number of CPU threads, and a record must be the same whichever executor produced it.
"""
from __future__ import annotations

import numpy as np

BINS = 10
DIGITS = 4
DEFINITION = (f"ECE: {BINS} equal-width bins of the top-label probability, |accuracy − mean confidence| "
              "weighted by the share of examples in each bin (0 = calibrated). Brier: mean over examples "
              "of Σ over labels (p − 1[gold])², 0 to 2.")


def _arrays(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(y_true, dtype=int), np.asarray(probs, dtype=float)


def _binned(y: np.ndarray, p: np.ndarray, bins: int) -> list[tuple[int, float | None, float | None]]:
    """Per confidence bin: examples, their mean confidence and accuracy (None for an empty bin)."""
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        k = int(mask.sum())
        out.append((k, float(conf[mask].mean()), float(correct[mask].mean())) if k else (0, None, None))
    return out


def ece(y_true, probs, bins: int = BINS) -> float | None:
    """Expected calibration error of gold labels `y_true` [N] and class probabilities `probs` [N, C];
    None for no examples."""
    y, p = _arrays(y_true, probs)
    if len(y) == 0:
        return None
    total = 0.0
    for k, c, a in _binned(y, p, bins):
        if k:
            total += k / len(y) * abs(a - c)
    return round(float(total), DIGITS)


def brier(y_true, probs) -> float | None:
    """Multi-class Brier score (0 to 2); None for no examples."""
    y, p = _arrays(y_true, probs)
    if len(y) == 0:
        return None
    onehot = np.eye(p.shape[1])[y]
    return round(float(((p - onehot) ** 2).sum(axis=1).mean()), DIGITS)


def reliability(y_true, probs, bins: int = BINS) -> dict:
    """The bin table of a reliability diagram: {"n": [...], "confidence": [...], "accuracy": [...]};
    empty bins hold n=0 and None."""
    y, p = _arrays(y_true, probs)
    table = _binned(y, p, bins) if len(y) else [(0, None, None)] * bins
    return {"n": [k for k, _, _ in table],
            "confidence": [round(c, DIGITS) if k else None for k, c, _ in table],
            "accuracy": [round(a, DIGITS) if k else None for k, _, a in table]}


def calibration(y_true, probs, bins: int = BINS) -> dict:
    """{"ece", "brier", "bins": `reliability`} for gold labels `y_true` [N] and class probabilities
    `probs` [N, C]."""
    return {"ece": ece(y_true, probs, bins), "brier": brier(y_true, probs), "bins": reliability(y_true, probs, bins)}


def pool_bins(bin_tables: list[dict]) -> dict:
    """Several runs' bin tables as one (example-weighted means per bin), for a reliability diagram
    over seeds."""
    if not bin_tables:
        return {"n": [], "confidence": [], "accuracy": []}
    size = len(bin_tables[0]["n"])
    n = [0] * size
    conf = [0.0] * size
    acc = [0.0] * size
    for t in bin_tables:
        for b in range(size):
            k = t["n"][b]
            if k:
                n[b] += k
                conf[b] += k * t["confidence"][b]
                acc[b] += k * t["accuracy"][b]
    return {"n": n, "confidence": [c / k if k else None for c, k in zip(conf, n)],
            "accuracy": [a / k if k else None for a, k in zip(acc, n)]}
