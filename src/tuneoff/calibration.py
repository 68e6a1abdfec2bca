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


def calibration(y_true, probs, bins: int = BINS) -> dict:
    """{"ece", "brier", "bins": {"n": [...], "confidence": [...], "accuracy": [...]}} for gold labels
    `y_true` [N] and class probabilities `probs` [N, C]; empty bins hold n=0 and None."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probs, dtype=float)
    if len(y) == 0:
        return {"ece": None, "brier": None, "bins": {"n": [0] * bins, "confidence": [None] * bins,
                                                     "accuracy": [None] * bins}}
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    n, mean_conf, acc, ece = [], [], [], 0.0
    for b in range(bins):
        mask = which == b
        k = int(mask.sum())
        n.append(k)
        if k == 0:
            mean_conf.append(None)
            acc.append(None)
            continue
        c, a = float(conf[mask].mean()), float(correct[mask].mean())
        mean_conf.append(round(c, DIGITS))
        acc.append(round(a, DIGITS))
        ece += k / len(y) * abs(a - c)
    onehot = np.eye(p.shape[1])[y]
    brier = float(((p - onehot) ** 2).sum(axis=1).mean())
    return {"ece": round(float(ece), DIGITS), "brier": round(brier, DIGITS), "bins": {"n": n, "confidence": mean_conf, "accuracy": acc}}


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
