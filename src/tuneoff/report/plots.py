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
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

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


# where a point's label may go, in points from the point: nearest first, then further out on a ring
_RING = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
OFFSETS = [(round(r * dx / (1.4 if dx and dy else 1)), round(r * dy / (1.4 if dx and dy else 1)))
           for r in (5, 11, 18, 27, 38, 52, 70) for dx, dy in _RING]
MARKER = 6  # pixels around a point that a label keeps clear of
LEADER = 10  # a label placed at least this far (points) from its point gets a thin line to it


def _overlap(box, boxes) -> float:
    total = 0.0
    for b in boxes:
        w = min(box.x1, b.x1) - max(box.x0, b.x0)
        h = min(box.y1, b.y1) - max(box.y0, b.y0)
        total += w * h if w > 0 and h > 0 else 0.0
    return total


def place_labels(ax, xs, ys, texts, points=None, fontsize: float = 7) -> None:
    """Label points so that no label covers another label or a point (greedy: each label, in the
    order given, takes the nearest free place of OFFSETS around its point, else the least covered
    one; far from its point, with a leader line). Call once the axes' limits, scales and layout are
    final: places are measured on the drawn figure. `points`: every (x, y) a label must not cover
    (default: the labelled points)."""
    if not len(texts):
        return
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    obstacles = []
    for px, py in ax.transData.transform(np.asarray(points if points is not None else list(zip(xs, ys)), float)):
        obstacles.append(Bbox([[px - MARKER, py - MARKER], [px + MARKER, py + MARKER]]))
    for x, y, text in zip(xs, ys, texts):
        ann = ax.annotate(_t(text), (x, y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize, zorder=5)
        best = None
        for dx, dy in OFFSETS:  # one label moved from place to place, measured at each
            ann.xyann = (dx, dy)
            ann.set(ha=_align(dx, "left", "right"), va=_align(dy, "bottom", "top"))
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer).expanded(1.04, 1.1)
            cost = _overlap(box, obstacles) + 3 * (box.width * box.height - _overlap(box, [frame]))
            if best is None or cost < best[0]:
                best = (cost, dx, dy, box)
            if cost == 0:
                break
        _, dx, dy, box = best
        ann.xyann = (dx, dy)
        ann.set(ha=_align(dx, "left", "right"), va=_align(dy, "bottom", "top"))
        if dx * dx + dy * dy >= LEADER * LEADER:
            ax.annotate("", (x, y), xytext=(dx, dy), textcoords="offset points",
                        arrowprops=dict(arrowstyle="-", color="0.55", lw=0.5, shrinkA=0, shrinkB=3))
        obstacles.append(box)


def _align(d: float, positive: str, negative: str) -> str:
    return positive if d > 0 else negative if d < 0 else "center"


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
    shots = sorted({int(s) for s in main["shots"]})
    if len(shots) == 1:
        return _one_shot_count(agg, main, metric, eval_sets, lines, col), [ONE_SHOT_COUNT.format(shots[0])]
    fig, axes = plt.subplots(1, len(eval_sets), figsize=(5.2 * len(eval_sets), 3.8), squeeze=False, sharey=True)
    for ax, (es, dom) in zip(axes[0], eval_sets):
        d = main[main["eval_set"] == es]
        for label, vs in lines:
            dv = d[d["variant"].isin(vs)].groupby("shots")[["mean", "std"]].mean().sort_index()
            if dv.empty:
                continue
            x = dv.index.to_numpy(float)
            sd = dv["std"].fillna(0).to_numpy(float)
            if len(x) == 1:  # a method at one shot count: its point and error bar, no line to draw
                ax.errorbar(x, dv["mean"], yerr=sd, fmt="o", color=col[vs[0]], label=_t(label), ms=5, capsize=3)
                continue
            ax.plot(x, dv["mean"], "o-", color=col[vs[0]], label=_t(label), lw=1.8, ms=4)
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


ONE_SHOT_COUNT = ("every run has {} examples per class, so there is no curve to draw: each method's mean ± 1 std "
                  "over seeds at that count, the majority baseline dashed; runs at several shot counts (shots=[...]) "
                  "draw the learning curves")


def _one_shot_count(agg, main, metric, eval_sets, lines, col) -> bytes:
    """The learning curves' figure where every run has one shot count: a point and error bar per
    method, side by side (no line joins methods), one panel per eval set."""
    fig, axes = plt.subplots(1, len(eval_sets), figsize=(max(4.0, 0.45 * len(lines) + 1.6) * len(eval_sets), 4.0),
                             squeeze=False, sharey=True)
    for ax, (es, dom) in zip(axes[0], eval_sets):
        d = main[main["eval_set"] == es]
        for i, (label, vs) in enumerate(lines):
            dv = d[d["variant"].isin(vs)]
            if len(dv):
                ax.errorbar([i], [dv["mean"].mean()], yerr=[dv["std"].fillna(0).mean()], fmt="o", ms=5, capsize=3,
                            color=col[vs[0]])
        maj = _sel(agg, metric, "majority")
        maj = maj[maj["eval_set"] == es]["mean"]
        if len(maj):
            ax.axhline(float(maj.mean()), color="black", ls="--", lw=1.2, label="majority baseline")
            ax.legend(fontsize=8, frameon=False, loc="best")
        ax.set_xticks(range(len(lines)), [_t(label) for label, _ in lines], rotation=40, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(lines) - 0.4)
        ax.set_title(_t(f"{'in-domain' if dom == 'in' else 'out-of-domain'}: {es}"), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel(metric)
    fig.tight_layout()
    return _png(fig)


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
    panels = [_in_out(main, x_set, es) for es in outs]
    for ax, es, both in zip(axes[0], outs, panels):
        for v in variants:
            if v not in both.index.get_level_values("variant"):
                continue
            b = both.xs(v, level="variant")
            ax.scatter(b["x"], b["y"], color=col[v], s=[30 + 12 * np.log2(max(int(s), 1)) for s in b.index],
                       label=_t(v), edgecolor="black", lw=0.4, zorder=3)
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
    for ax, both in zip(axes[0], panels):  # each point's shots, placed once the panels are laid out
        both = both[both.index.get_level_values("variant").isin(variants)]
        place_labels(ax, both["x"], both["y"], [str(s) for s in both.index.get_level_values("shots")])
    _legend(fig, list(axes[0]))
    return _png(fig), []


def _in_out(main: pd.DataFrame, x_set: str, es: str) -> pd.DataFrame:
    """The in-vs-out panel of `es`: per (variant, shots), the mean on `x_set` (x) and on `es` (y)."""
    xs = main[main["eval_set"] == x_set].groupby(["variant", "shots"])["mean"].mean()
    ys = main[main["eval_set"] == es].groupby(["variant", "shots"])["mean"].mean()
    return pd.concat({"x": xs, "y": ys}, axis=1).dropna()


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
    notes, labels = [], []
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
        labels.append((ax, xc, y, [str(s) for s in p.index.get_level_values("shots")]))
        front = pareto_front(xc, p["mean"].to_numpy(float), direction(metric))
        if len(front):
            ax.step(xc[front], p["mean"].to_numpy(float)[front], where="post", color="black", lw=1,
                    alpha=0.6, label="Pareto front", zorder=2)
        _log_axis(ax, xc, floor, bool(zero.any()))
        ax.set_xlabel(lab + " (log)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(_t(f"{metric} ({eval_set})"))
    fig.tight_layout()  # before the legend, which sits outside the panels
    for ax, xs, ys, texts in labels:  # each point's shots, placed once the panels are laid out
        place_labels(ax, xs, ys, texts)
    _legend(fig, list(axes[0]))
    return _png(fig), notes
