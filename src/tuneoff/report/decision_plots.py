"""Figures for deciding: the recommendation's Pareto front (score against each budget axis, the
methods not separated from the best highlighted, the limit drawn) and reliability diagrams
(calibration). PNG bytes, Agg."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from tuneoff.calibration import pool_bins
from tuneoff.metrics import direction
from tuneoff.report.plots import _floor, _log_axis, _png, _t, place_labels, plt
from tuneoff.report.recommend import AXES, Answer
from tuneoff.report.stats import pareto_front

STYLE = {"best": dict(color="tab:green", marker="*", s=160),
         "not separated": dict(color="tab:orange", marker="o", s=60),
         "worse": dict(color="tab:grey", marker="o", s=36), "over budget": dict(color="tab:grey", marker="x", s=36),
         "no test": dict(color="tab:blue", marker="o", s=36)}  # no recommendation: nothing was compared


def _kind(row, a: Answer) -> str:
    if not row["fits"]:
        return "over budget"
    if row["candidate"] == a.best:
        return "best"
    if not a.best:  # no recommendation: no comparison was tested, so none is "not separated" either
        return "no test"
    return "not separated" if row["candidate"] in a.tied else "worse"


def recommendation_front(a: Answer, limits: dict[str, float]):
    """One panel per budget axis: mean score (±1 std) of each candidate against its cost (`AXES`);
    the best starred, those not separated from it in orange, the Pareto front of the fitting
    candidates, the limit dashed."""
    c = a.candidates.copy()
    if c.empty:
        return None, ["no candidates"]
    c["kind"] = [_kind(r, a) for _, r in c.iterrows()]
    axes_ = [ax for ax in AXES if c[ax].notna().any()]
    if not axes_:
        return None, ["no cost figures recorded"]
    fig, axes = plt.subplots(1, len(axes_), figsize=(4.4 * len(axes_), 3.9), squeeze=False, sharey=True)
    notes, labelled = [], []
    for ax, axis in zip(axes[0], axes_):
        x = c[axis].to_numpy(float)
        floor = _floor(x)
        zero = np.isfinite(x) & (x <= 0)
        xc = np.where(zero, floor, x)
        for kind, st in STYLE.items():
            k = np.asarray(c["kind"] == kind) & np.isfinite(xc)
            if k.any():
                ax.errorbar(xc[k], c["mean"][k], yerr=c["std"].fillna(0)[k], fmt="none", ecolor=st["color"],
                            elinewidth=0.8, alpha=0.6, zorder=2)
                ax.scatter(xc[k], c["mean"][k], label=kind, zorder=4, edgecolor="black" if kind != "over budget"
                           else None, linewidths=0.4, **st)
        shown = sorted([(xi, r["mean"], r["candidate"]) for xi, (_, r) in zip(xc, c.iterrows())
                        if r["kind"] in ("best", "not separated") and np.isfinite(xi)], key=lambda p: p[2] != a.best)
        labelled.append((ax, shown, [(xi, m) for xi, m in zip(xc, c["mean"]) if np.isfinite(xi)]))
        fit = np.asarray(c["fits"]) & np.isfinite(xc)
        idx = np.flatnonzero(fit)
        front = idx[pareto_front(xc[fit], c["mean"].to_numpy(float)[fit], direction(a.metric))] if fit.any() else []
        if len(front):
            ax.step(xc[front], c["mean"].to_numpy(float)[front], where="post", color="black", lw=1, alpha=0.6,
                    label="Pareto front (fitting)", zorder=3)
        if axis in limits:
            ax.axvline(max(limits[axis], floor), color="tab:red", ls="--", lw=1, label="budget limit")
        if np.isfinite(xc).any():
            _log_axis(ax, xc[np.isfinite(xc)], floor, bool(zero.any()))
        if zero.any():
            notes.append(f"{AXES[axis]}: 0 drawn at the tick marked 0")
        ax.set_xlabel(AXES[axis] + " (log)")  # the label says which run: mean or worst
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(_t(f"{a.metric}, mean over splits"))
    fig.tight_layout()
    for ax, shown, points in labelled:  # once the panels are laid out: no label covers another or a point
        if shown:
            place_labels(ax, *zip(*shown), points=points)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for axx in axes[0][:-1]:
        for h, lab in zip(*axx.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    axes[0][-1].legend(list(seen.values()), list(seen.keys()), loc="center left", bbox_to_anchor=(1.02, 0.5),
                       frameon=False, fontsize=8)
    return _png(fig), notes


def reliability(frame: pd.DataFrame, eval_set: str):
    """Reliability diagrams: one panel per method · model, one line per shot count (bins pooled over
    seeds, weighted by examples); the diagonal is perfect calibration; bars: share of examples per bin."""
    d = frame[(frame["subset"] == "overall") & (frame["eval_set"] == eval_set) & frame["reliability"].notna()]
    if d.empty:
        return None, ["no reliability bins recorded (runs from before calibration was measured)"]
    d = d.assign(candidate=d["variant"] + " · " + d["model"].astype(str))
    cands = sorted(d["candidate"].unique())
    cols = min(4, len(cands))
    rows = math.ceil(len(cands) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 3.0 * rows), squeeze=False, sharex=True, sharey=True)
    shots = sorted(int(s) for s in d["shots"].dropna().unique())
    cmap = plt.get_cmap("viridis")
    for ax, cand in zip(axes.flat, cands):
        g = d[d["candidate"] == cand]
        for i, s in enumerate(shots):
            tables = [json.loads(x) for x in g[g["shots"] == s]["reliability"]]
            if not tables:
                continue
            p = pool_bins(tables)
            total = sum(p["n"]) or 1
            size = len(p["n"])
            centers = (np.arange(size) + 0.5) / size
            if i == len(shots) - 1:
                ax.bar(centers, np.array(p["n"]) / total, width=1 / size, color="lightgrey", alpha=0.6, zorder=1)
            pts = [(cf, ac) for cf, ac in zip(p["confidence"], p["accuracy"]) if cf is not None]
            if pts:
                ax.plot(*zip(*pts), "o-", ms=3, lw=1.3, color=cmap(i / max(1, len(shots) - 1) * 0.85),
                        label=f"{s} shots", zorder=3)
        ece = g.groupby("shots")["ece"].mean()
        ax.plot([0, 1], [0, 1], color="black", ls=":", lw=1)
        ax.set_title(_t(cand) + "\nECE " + ", ".join(f"{v:.2f}" for v in ece.to_numpy(float)), fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(cands):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("confidence (top label)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy", fontsize=8)
    fig.tight_layout()
    axes.flat[0].legend(fontsize=7, loc="upper left", frameon=False)
    return _png(fig), []
