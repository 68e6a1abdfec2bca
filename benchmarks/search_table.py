"""The optuna search beside the grid protocol, cell by cell, from two stores.

    python benchmarks/search_table.py docs/search-cells docs/cola-mnli-cpu [benchmarks/search.yaml]

For each cell of the first store (task, method, shots, data seed) and the same cell of the second:
the choice, whether it sits on an edge of what was searched, the best mean held-out score the
search saw, the eval scores (main metric, in-domain and out-of-domain), how many candidates were
scored (grid: candidates; optuna: trials, how many were pruned, over how many rounds), and the
selection's wall and CPU time, with the ratio of CPU times (CPU time is less sensitive than wall
time to other work on the machine). A cell missing from either store is listed as not run yet.
"""
from __future__ import annotations

import sys

from tuneoff.describe import main_metric, method_name
from tuneoff.report.edges import edges as record_edges
from tuneoff.store import open_store


def _cells(folder: str) -> dict[tuple, object]:
    out = {}
    for r in open_store(folder, must_exist=True).records(status="done"):
        if r.selection is not None and not r.selection.shared:
            out[(r.task, method_name(r), r.shots, r.data_seed)] = r
    return out


def _fmt(x, spec=".3f") -> str:
    return "–" if x is None else format(x, spec)


def _best_heldout(sel) -> float | None:
    trials = sel.get("trials")
    if trials:
        return max((g["mean_score"] for t in trials for g in t["rungs"] if g["mean_score"] is not None), default=None)
    return max((c["mean_score"] for c in sel.get("candidates") or [] if c.get("mean_score") is not None), default=None)


def choice(sel) -> str:
    """The chosen values as text: "lr 0.000194, 3 of 9 epochs, calibrate=True"."""
    chosen = dict(sel.get("chosen") or {})
    parts = [f"lr {chosen.pop('train.lr'):.3g}"] if "train.lr" in chosen else []
    if "train.epochs" in chosen:
        stop = chosen.pop("train.stop_epochs", None)
        horizon = chosen.pop("train.epochs")
        parts.append(f"{stop if stop is not None else horizon:.3g} of {horizon:.3g} epochs")
    parts += [f"{k.removeprefix('method.')}={v}" for k, v in chosen.items()]
    return ", ".join(parts)


def _scored(sel) -> str:
    trials = sel.get("trials")
    if not trials:
        return f"{len(sel.get('candidates') or [])} candidates"
    pruned = sum(t["state"] == "pruned" for t in trials)
    return f"{len(trials)} trials ({pruned} pruned, {len(sel.get('rounds') or [1])} round(s))"


def _evals(rec) -> str:
    metric = main_metric(rec)
    return " / ".join(f"{name} {_fmt((m.get('overall') or {}).get(metric))}" for name, m in (rec.metrics or {}).items())


def row(rec) -> list[str]:
    sel = rec.selection.to_dict()
    edges = record_edges(sel)
    cost = sel.get("cost") or {}
    return [choice(sel), ", ".join(e.flag() for e in edges) or "no",
            _fmt(_best_heldout(sel)), _evals(rec), _scored(sel),
            f"{_fmt(cost.get('time_s'), '.0f')} / {_fmt(cost.get('cpu_s'), '.0f')}"]


def planned(config: str) -> set[tuple]:
    """The cells a sweep config plans (task, method, shots, data seed)."""
    from tuneoff.sweep import load_sweep

    return {(r.task, r.method.name, r.shots, r.data_seed) for r in load_sweep(config).runs}


def main(new: str, old: str, config: str = "benchmarks/search.yaml") -> None:
    news, olds = _cells(new), _cells(old)
    print("| cell | search | choice | on an edge | best held-out | eval (main metric) | scored | "
          "selection wall / CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(set(news) | planned(config)):
        cell = f"{key[0]} {key[1]} {key[2]} shots, seed {key[3]}"
        for name, cells in (("grid", olds), ("optuna", news)):
            rec = cells.get(key)
            print(f"| {cell} | {name} | " + (" | ".join(row(rec)) if rec else "not run yet | | | | | ") + " |")
        if key in news and key in olds:
            a, b = (news[key].selection.to_dict().get("cost") or {}), (olds[key].selection.to_dict().get("cost") or {})
            if a.get("cpu_s") and b.get("cpu_s"):
                print(f"| {cell} | optuna / grid | | | | | | CPU {a['cpu_s'] / b['cpu_s']:.2f}× |")


if __name__ == "__main__":
    main(*sys.argv[1:4])
