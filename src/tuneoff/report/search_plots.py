"""The selection's response curves, as PNG bytes (matplotlib, Agg): what the search saw of each
method, on the reference split.

- `lr_curves`: the held-out score (mean over folds, the selection's own score) against the learning
  rate (log x), a panel per method, a colour per shot count: a grid's candidates joined by a line; an
  optuna trial at each rung of its training length (hollow: an earlier rung); the choice starred,
  edged red where it sits on an edge of what was searched (and the panel's title says so).
- `length_curves`: for optuna records that searched the training length, the held-out score against
  the length, a panel per method and shot count, a line per trial over its rungs (coloured by its
  learning rate), a pruned trial ending in a cross where it was stopped, the chosen trial thick.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.lines import Line2D

from tuneoff.report import edges as E
from tuneoff.report.plots import _png, _t, plt
from tuneoff.space import is_number

LR = "train.lr"
EDGE_COLOR = "tab:red"


def _num(x) -> float | None:
    return float(x) if is_number(x) and math.isfinite(float(x)) else None


def _chosen_row(sel) -> dict | None:
    """The candidate row of the choice (grid), by its values or its label."""
    chosen, label = E._plain(sel.get("chosen")) or {}, sel.get("chosen_label")
    rows = [E._plain(c) for c in (E._plain(sel.get("candidates")) or [])]
    return next((c for c in rows if isinstance(c, dict) and (c.get("values") == chosen or
                                                               (label and c.get("label") == label))), None)


def _chosen_trial(sel) -> dict | None:
    number = sel.get("chosen_trial")
    return next((t for t in E.trials(sel) if number is not None and t.get("number") == number), None)


def _rungs(trial: dict) -> list[dict]:
    return [r for r in (trial.get("rungs") or []) if isinstance(r, dict)]


def lr_points(sel, key: str = LR) -> dict:
    """What the lr panel draws of one selection: points [(x, score, final rung)], diverged xs,
    the choice (x, score) and, for a range, its final bounds."""
    out: dict = {"points": [], "diverged": [], "chosen": None, "bounds": None}
    chosen_x = _num((E._plain(sel.get("chosen")) or {}).get(key))
    if E.kind(sel) == E.OPTUNA:
        for t in E.trials(sel):
            x = _num((t.get("values") or {}).get(key))
            if x is None or x <= 0:
                continue
            rungs = [(_num(r.get("mean_score")), r) for r in _rungs(t)]
            if t.get("state") == "diverged" or not any(y is not None for y, _ in rungs):
                out["diverged"].append(x)
            out["points"] += [(x, y, i == len(rungs) - 1) for i, (y, _) in enumerate(rungs) if y is not None]
        trial = _chosen_trial(sel)
        if trial is not None and chosen_x is not None:
            rungs = _rungs(trial)
            at = next((r for r in rungs if r.get("length") == sel.get("chosen_length")), None)
            ys = [_num(r.get("mean_score")) for r in ([at] if at else rungs)]
            ys = [y for y in ys if y is not None]
            out["chosen"] = (chosen_x, max(ys)) if ys else None
        rounds = E._plain(sel.get("rounds")) or []
        last = E._plain(rounds[-1].get("space")) if rounds and isinstance(rounds[-1], dict) else None
        rng = E._plain((last or E.space(sel)).get(key))
        if isinstance(rng, dict) and _num(rng.get("low")) and _num(rng.get("high")):
            out["bounds"] = (float(rng["low"]), float(rng["high"]))
    else:
        for c in (E._plain(sel.get("candidates")) or []):
            c = E._plain(c)
            x = _num((c.get("values") or {}).get(key)) if isinstance(c, dict) else None
            if x is None or x <= 0:
                continue
            y = _num(c.get("mean_score"))
            if c.get("diverged") or y is None:
                out["diverged"].append(x)
            else:
                out["points"].append((x, y, True))
        row = _chosen_row(sel)
        y = _num(row.get("mean_score")) if row else None
        if chosen_x is not None and y is not None:
            out["chosen"] = (chosen_x, y)
    return out


def _edge(sel, key: str) -> E.Edge | None:
    return next((e for e in E.edges(sel) if e.key == key), None)


def _grid(n: int, width: float = 3.4, height: float = 2.9):
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def _xlabels(axes, n: int, label: str) -> None:
    """The x label under each panel with no panel below it."""
    cols = axes.shape[1]
    for i, ax in enumerate(axes.flat[:n]):
        if i + cols >= n:
            ax.set_xlabel(label, fontsize=8)


def _shot_colors(shots) -> dict:
    shots = sorted(shots)
    cmap = plt.get_cmap("viridis")
    return {s: cmap(i / max(1, len(shots) - 1) * 0.85) for i, s in enumerate(shots)}


def _lr_panel(ax, cells: dict, col: dict) -> list[str]:
    """One method's panel; returns the edge flags of its choices ("16 high (limit)")."""
    flagged = []
    for shots, sel in sorted(cells.items()):
        p, c = lr_points(sel), col[shots]
        pts = sorted(p["points"])
        final = [(x, y) for x, y, f in pts if f]
        early = [(x, y) for x, y, f in pts if not f]
        if E.kind(sel) == E.OPTUNA:
            if early:
                ax.scatter(*zip(*early), s=14, facecolors="none", edgecolors=[c], lw=0.7, zorder=2)
            if final:
                ax.scatter(*zip(*final), s=20, color=c, zorder=3)
            for b in p["bounds"] or ():
                ax.axvline(b, color=c, ls=":", lw=0.8, zorder=1)
        elif final:
            best: dict = {}
            for x, y in final:
                best[x] = max(y, best.get(x, -np.inf))
            ax.plot(list(best), list(best.values()), "o-", color=c, lw=1.4, ms=4, zorder=3)
        for x in p["diverged"]:
            ax.plot(x, 0.03, "x", color="grey", ms=6, transform=ax.get_xaxis_transform(), zorder=3)
        edge = _edge(sel, LR)
        if p["chosen"]:
            ax.scatter(*p["chosen"], marker="*", s=190, color=c, zorder=5, lw=1.8 if edge else 0.6,
                       edgecolors=EDGE_COLOR if edge else "black")
        if edge:
            flagged.append(f"{shots} shots ({edge.side}" + (", limit)" if edge.at_limit else ")"))
    return flagged


def lr_curves(panels: list[tuple[str, dict]], metric: str):
    """A panel per method: (title, {shots: selection}); (png or None, notes)."""
    panels = [(t, {s: sel for s, sel in cells.items() if lr_points(sel)["points"] or lr_points(sel)["diverged"]})
              for t, cells in panels]
    panels = [(t, cells) for t, cells in panels if cells]
    if not panels:
        return None, ["no selection searched the learning rate (train.lr)"]
    col = _shot_colors({s for _, cells in panels for s in cells})
    fig, axes = _grid(len(panels))
    for ax, (title, cells) in zip(axes.flat, panels):
        flagged = _lr_panel(ax, cells, col)
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        head = _t(title) + ("\non edge at " + ", ".join(flagged) if flagged else "")
        ax.set_title(head, fontsize=8.5, color=EDGE_COLOR if flagged else "black")
        ax.tick_params(labelsize=7)
    _xlabels(axes, len(panels), "learning rate (log)")
    for ax in axes[:, 0]:
        ax.set_ylabel(_t(f"held-out {metric}"), fontsize=8)
    handles = [Line2D([], [], color=c, marker="o", lw=1.4, ms=4, label=f"{s} shots") for s, c in col.items()]
    handles += [Line2D([], [], ls="", marker="*", ms=11, color="lightgrey", mec="black", label="choice"),
                Line2D([], [], ls="", marker="*", ms=11, color="lightgrey", mec=EDGE_COLOR, mew=1.8,
                       label="choice on an edge"),
                Line2D([], [], ls="", marker="o", ms=4, mfc="none", color="grey", label="earlier rung (optuna)"),
                Line2D([], [], ls="", marker="x", color="grey", label="diverged")]
    fig.tight_layout()
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    return _png(fig), []


def length_lines(sel) -> list[dict]:
    """One line per trial: its rungs' lengths and scores, state, learning rate, whether chosen."""
    out = []
    for t in E.trials(sel):
        pts = [(_num(r.get("length")), _num(r.get("mean_score"))) for r in _rungs(t)]
        pts = [(x, y) for x, y in pts if x is not None and x > 0 and y is not None]
        if pts:
            out.append({"xs": [x for x, _ in pts], "ys": [y for _, y in pts], "state": str(t.get("state")),
                        "lr": _num((t.get("values") or {}).get(LR)),
                        "chosen": t.get("number") is not None and t.get("number") == sel.get("chosen_trial")})
    return out


def _length_panel(ax, sel, cmap, norm) -> E.Edge | None:
    for line in sorted(length_lines(sel), key=lambda x: x["chosen"]):  # the chosen trial on top
        c = cmap(norm(line["lr"])) if line["lr"] is not None and line["lr"] > 0 else "grey"
        ls = ":" if line["state"] == "diverged" else "-"
        ax.plot(line["xs"], line["ys"], ls, color=c, lw=2.6 if line["chosen"] else 1.0, alpha=1 if line["chosen"]
                else 0.75, zorder=4 if line["chosen"] else 2, marker="o", ms=2.5)
        end = {"pruned": dict(marker="x", color="black", s=26), "diverged": dict(marker="x", color="grey", s=26)}
        ax.scatter(line["xs"][-1], line["ys"][-1], zorder=4, **end.get(line["state"], dict(marker="o", color=c, s=14)))
    edge = _edge(sel, E.LENGTH)
    trial = _chosen_trial(sel)
    at = _num(sel.get("chosen_length"))
    if trial is not None and at is not None:
        ys = [_num(r.get("mean_score")) for r in _rungs(trial) if _num(r.get("length")) == at]
        if ys and ys[0] is not None:
            ax.scatter(at, ys[0], marker="*", s=190, color="gold", zorder=6, lw=1.8 if edge else 0.6,
                       edgecolors=EDGE_COLOR if edge else "black")
    return edge


def length_curves(panels: list[tuple[str, object]], metric: str):
    """A panel per (method, shots) of an optuna selection that searched the training length:
    (title, selection); (png or None, notes)."""
    panels = [(t, sel) for t, sel in panels if length_lines(sel)]
    if not panels:
        return None, ["no optuna selection searched the training length"]
    lrs = [x["lr"] for _, sel in panels for x in length_lines(sel) if x["lr"] is not None and x["lr"] > 0]
    cmap = plt.get_cmap("plasma")
    norm = LogNorm(min(lrs), max(lrs)) if lrs and min(lrs) < max(lrs) else Normalize(0, 1)
    fig, axes = _grid(len(panels))
    for ax, (title, sel) in zip(axes.flat, panels):
        edge = _length_panel(ax, sel, cmap, norm)
        ax.set_xscale("log", base=2)
        xs = sorted({x for line in length_lines(sel) for x in line["xs"]})
        ax.set_xticks(xs, [f"{x:.3g}" for x in xs])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        rung = f"\non edge: {'last' if edge and edge.side == 'high' else 'first'} rung" if edge else ""
        head = _t(title) + rung + (" (limit)" if edge and edge.at_limit else "")
        ax.set_title(head, fontsize=8.5, color=EDGE_COLOR if edge else "black")
        ax.tick_params(labelsize=7)
    _xlabels(axes, len(panels), "training length (epochs, log2)")
    for ax in axes[:, 0]:
        ax.set_ylabel(_t(f"held-out {metric}"), fontsize=8)
    fig.tight_layout()
    handles = [Line2D([], [], color="grey", lw=1, marker="o", ms=4, label="trial (complete)"),
               Line2D([], [], color="grey", lw=1, marker="x", mec="black", label="pruned: stopped here"),
               Line2D([], [], color="grey", lw=1, ls=":", label="diverged"),
               Line2D([], [], color="grey", lw=2.6, label="chosen trial"),
               Line2D([], [], ls="", marker="*", ms=11, color="gold", mec="black", label="choice"),
               Line2D([], [], ls="", marker="*", ms=11, color="gold", mec=EDGE_COLOR, mew=1.8,
                      label="choice on an edge")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    if lrs and isinstance(norm, LogNorm):
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        cax = fig.add_axes([1.02, 0.08, 0.015, 0.4])
        bar = fig.colorbar(sm, cax=cax)
        bar.set_label("learning rate (log)", fontsize=8)
        bar.ax.tick_params(which="both", labelsize=6)
    return _png(fig), []
