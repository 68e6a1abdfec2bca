"""The report's figures, as PNG bytes (matplotlib, Agg backend; every figure is closed).

Each function takes the aggregate table (`frame.aggregate`) for one task and model and returns
(png bytes or None, notes). None means there is nothing to draw; the notes say why, or what was
adjusted (e.g. zero costs drawn at the left edge of a log axis).
"""
from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedFormatter, FixedLocator, LogLocator, NullFormatter, NullLocator  # noqa: E402

from tuneoff.metrics import direction  # noqa: E402
from tuneoff.report.blocks import count as fmt_count  # noqa: E402
from tuneoff.report.frame import METHOD_TIME  # noqa: E402

from tuneoff.report.stats import pareto_front  # noqa: E402

COSTS = (("params_trainable", "trainable parameters"), ("peak_memory_mb", "peak memory per run (MB)"),
         ("peak_cuda_mb", "peak GPU memory per run (MB)"), METHOD_TIME)


def _t(s) -> str:
    """Text for matplotlib: no mathtext from names that hold '$'."""
    return str(s).replace("$", r"\$")


def colors(variants) -> dict:
    cmap = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    return {v: cmap(i % cmap.N) for i, v in enumerate(variants)}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _sel(agg: pd.DataFrame, metric: str, subset: str = "overall") -> pd.DataFrame:
    return agg[(agg["metric"] == metric) & (agg["subset"] == subset)]


def _shot_axis(ax, shots) -> None:
    shots = sorted({int(s) for s in shots})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(shots))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(s) for s in shots])
    ax.set_xlim(shots[0] / 1.4, shots[-1] * 1.4)
    ax.set_xlabel("training examples per class (log2)")


def _legend(fig, axes) -> None:
    """One legend, right of the last panel, each label once."""
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    seen = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    if seen:
        axes[-1].legend(list(seen.values()), list(seen.keys()), loc="center left", bbox_to_anchor=(1.02, 0.5),
                        frameon=False, fontsize=9)


_VARIANT = re.compile(r"(?P<name>[^(\[ ]+)(?:\((?P<options>.*)\))?(?: \[(?P<pattern>.*)\])?")


def curve_lines(main: pd.DataFrame, variants: list[str]) -> list[tuple[str, list[str]]]:
    """The lines of a learning curve, as (label, variants). A method whose variants differ in
    options set per shot count (icl's k, distill's teacher k) and never share a shot count is one
    line, from its smallest shot count to its largest, labelled with each shot count's options;
    variants that share a shot count stay lines of their own."""
    shots = {v: sorted(set(main.loc[main["variant"] == v, "shots"].astype(int))) for v in variants}
    parts = {v: _VARIANT.fullmatch(v) for v in variants}
    groups: dict[tuple, list[str]] = {}
    for v in variants:  # by method and pattern (`describe.Label.variant`: name(options) [pattern])
        m = parts[v]
        groups.setdefault((m["name"], m["pattern"]) if m else (v, None), []).append(v)
    lines = []
    for (name, pattern), vs in groups.items():
        every = [s for v in vs for s in shots[v]]
        if len(vs) == 1 or len(every) != len(set(every)):
            lines += [(v, [v]) for v in vs]
            continue
        vs = sorted(vs, key=lambda v: shots[v][0] if shots[v] else 0)
        per = "; ".join(f"{'/'.join(map(str, shots[v]))}: {parts[v]['options'] or 'defaults'}"
                        for v in vs if shots[v])
        lines.append((f"{name} ({per})" + (f" [{pattern}]" if pattern is not None else ""), vs))
    return lines


def learning_curves(agg: pd.DataFrame, metric: str, eval_sets: list[tuple[str, str]], variants: list[str]):
    """Main metric vs shots per class: one panel per eval set (in-domain first), one line per
    method (`curve_lines`) with a ±1 std band over seeds, the majority baseline dashed."""
    main = _sel(agg, metric)
    if main.empty or not eval_sets:
        return None, ["no finished runs to draw"]
    col = colors(variants)
    lines = curve_lines(main, variants)
    fig, axes = plt.subplots(1, len(eval_sets), figsize=(5.2 * len(eval_sets), 3.8), squeeze=False, sharey=True)
    for ax, (es, dom) in zip(axes[0], eval_sets):
        d = main[main["eval_set"] == es]
        for label, vs in lines:
            dv = d[d["variant"].isin(vs)].groupby("shots")[["mean", "std"]].mean().sort_index()
            if dv.empty:
                continue
            x = dv.index.to_numpy(float)
            ax.plot(x, dv["mean"], "o-", color=col[vs[0]], label=_t(label), lw=1.8, ms=4)
            sd = dv["std"].fillna(0).to_numpy(float)
            ax.fill_between(x, dv["mean"] - sd, dv["mean"] + sd, color=col[vs[0]], alpha=0.15, lw=0)
        maj = _sel(agg, metric, "majority")
        maj = maj[maj["eval_set"] == es]["mean"]
        if len(maj):
            ax.axhline(float(maj.mean()), color="black", ls="--", lw=1.2, label="majority baseline")
        _shot_axis(ax, main["shots"])
        ax.set_title(_t(f"{'in-domain' if dom == 'in' else 'out-of-domain'}: {es}"), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    fig.tight_layout()  # before the legend, which sits outside the panels
    _legend(fig, list(axes[0]))
    return _png(fig), []


def in_vs_out(agg: pd.DataFrame, metric: str, eval_sets: list[tuple[str, str]], variants: list[str]):
    """Out-of-domain against in-domain score, one point per method x shots (mean over seeds)."""
    ins = [e for e, d in eval_sets if d == "in"]
    outs = [e for e, d in eval_sets if d != "in"]
    if not ins or not outs:
        return None, ["no out-of-domain eval set" if ins else "no in-domain eval set"]
    main = _sel(agg, metric)
    x_set = ins[0]
    col = colors(variants)
    fig, axes = plt.subplots(1, len(outs), figsize=(4.4 * len(outs), 4.4), squeeze=False)
    for ax, es in zip(axes[0], outs):
        xs = main[main["eval_set"] == x_set].groupby(["variant", "shots"])["mean"].mean()
        ys = main[main["eval_set"] == es].groupby(["variant", "shots"])["mean"].mean()
        both = pd.concat({"x": xs, "y": ys}, axis=1).dropna()
        for v in variants:
            if v not in both.index.get_level_values("variant"):
                continue
            b = both.xs(v, level="variant")
            ax.scatter(b["x"], b["y"], color=col[v], s=[30 + 12 * np.log2(max(int(s), 1)) for s in b.index],
                       label=_t(v), edgecolor="black", lw=0.4, zorder=3)
            for s, r in b.iterrows():
                ax.annotate(str(s), (r["x"], r["y"]), xytext=(4, 3), textcoords="offset points", fontsize=7)
        vals = both.to_numpy(float).ravel()
        lo, hi = (np.nanmin(vals), np.nanmax(vals)) if len(vals) else (0.0, 1.0)
        pad = max(0.02, 0.08 * (hi - lo))
        lim = (lo - pad, hi + pad)
        ax.plot(lim, lim, color="grey", ls=":", lw=1, label="same score in and out")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        ax.set_xlabel(_t(f"in-domain {metric} ({x_set})"))
        ax.set_ylabel(_t(f"out-of-domain {metric} ({es})"))
        ax.grid(alpha=0.3)
    axes[0][0].set_title("points: method; number: shots per class", fontsize=9)
    fig.tight_layout()  # before the legend, which sits outside the panels
    _legend(fig, list(axes[0]))
    return _png(fig), []


def _floor(values: np.ndarray) -> float:
    """Where a zero cost is drawn on a log axis: a decade left of the smallest positive cost."""
    pos = values[np.isfinite(values) & (values > 0)]
    return float(pos.min() / 10) if len(pos) else 1.0


def _log_axis(ax, x: np.ndarray, floor: float, has_zero: bool) -> None:
    """Log x axis with readable ticks (1, 2, 5 per decade: 20k, 1M), and "0" at `floor` when
    zero costs were drawn there."""
    ax.set_xscale("log")
    pos = x[np.isfinite(x) & (x > 0)]
    lo, hi = (min(pos.min(), floor) if has_zero else pos.min()), pos.max()
    lo, hi = lo / 1.6, hi * 1.6
    subs = (1.0,) if np.log10(hi / (floor if has_zero else lo)) > 2.5 else (1.0, 2.0, 5.0)
    ticks = [t for t in LogLocator(base=10, subs=subs).tick_values(lo, hi)
             if lo <= t <= hi and not (has_zero and t < floor * 3)]
    if len(ticks) < 2:  # all costs within a narrow range: mark the data itself
        ticks = sorted({float(pos.min()), float(pos.max())})
    labels = [fmt_count(t) for t in ticks]
    if has_zero:
        ticks, labels = [floor] + ticks, ["0"] + labels
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter(labels))
    ax.xaxis.set_minor_formatter(NullFormatter())


def score_vs_cost(agg: pd.DataFrame, runs: pd.DataFrame, metric: str, eval_set: str, variants: list[str]):
    """Main metric on `eval_set` against each cost (log x), Pareto front drawn (better score by the
    metric's direction, lower cost)."""
    main = _sel(agg, metric)
    score = main[main["eval_set"] == eval_set].groupby(["variant", "shots"])[["mean", "std"]].mean()
    costs = [(c, lab) for c, lab in COSTS if c in runs.columns and runs[c].notna().any()]
    if score.empty or not costs:
        return None, ["no finished runs with costs to draw"]
    cost_mean = runs.groupby(["variant", "shots"])[[c for c, _ in costs]].mean()
    pts = score.join(cost_mean, how="inner")
    col = colors(variants)
    notes = []
    fig, axes = plt.subplots(1, len(costs), figsize=(4.3 * len(costs), 3.8), squeeze=False, sharey=True)
    for ax, (c, lab) in zip(axes[0], costs):
        p = pts.dropna(subset=[c, "mean"])
        x = p[c].to_numpy(float)
        floor = _floor(x)
        zero = x <= 0
        if zero.any():
            who = sorted({str(v) for v in p.index.get_level_values("variant")[zero]})
            notes.append(f"{lab}: 0 for {', '.join(who)}; drawn at the tick marked 0 on the log axis (open markers)")
        xc = np.where(zero, floor, x)
        variant = p.index.get_level_values("variant")
        y, sd = p["mean"].to_numpy(float), p["std"].fillna(0).to_numpy(float)
        for v in [v for v in variants if v in set(variant)]:
            k = np.asarray(variant == v)
            c = col.get(v, "grey")
            ax.errorbar(xc[k], y[k], yerr=sd[k], fmt="none", ecolor=c, elinewidth=1, capsize=2, zorder=3)
            ax.scatter(xc[k], y[k], s=36, color=c, label=_t(v), zorder=4,
                       facecolors=np.where(zero[k][:, None], (1, 1, 1, 1), c) if zero[k].any() else c)
        for xi, yi, s in zip(xc, y, p.index.get_level_values("shots")):
            ax.annotate(str(s), (xi, yi), xytext=(4, 3), textcoords="offset points", fontsize=7)
        front = pareto_front(xc, p["mean"].to_numpy(float), direction(metric))
        if len(front):
            ax.step(xc[front], p["mean"].to_numpy(float)[front], where="post", color="black", lw=1,
                    alpha=0.6, label="Pareto front", zorder=2)
        _log_axis(ax, xc, floor, bool(zero.any()))
        ax.set_xlabel(lab + " (log)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(_t(f"{metric} ({eval_set})"))
    fig.tight_layout()  # before the legend, which sits outside the panels
    _legend(fig, list(axes[0]))
    return _png(fig), notes
