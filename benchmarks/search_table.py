"""The search procedures side by side, cell by cell, from several stores.

    python benchmarks/search_table.py docs/cola-mnli-cpu docs/search-cells docs/cola-mnli-v2 \
        [--config benchmarks/search.yaml]

The cells are those the config plans (task, model, method, shots, data seed: by default
`benchmarks/search.yaml`'s three). Each store may hold them under a different procedure: the grid
(docs/cola-mnli-cpu), the optuna search with Optuna's asynchronous successive halving
(docs/search-cells) or with the synchronous one (docs/cola-mnli-v2, whose seed-0 cells have the
same settings); the procedure is read from each record's selection, not from the folder. For each
cell and each store that has it: the choice, whether it sits on an edge of what was searched, the
best mean held-out score the search saw (at a rung the choice could take), the eval scores (main
metric, in-domain and out-of-domain), how many candidates were scored (grid: candidates; optuna:
trials, how many were pruned, over how many rounds), and the selection's wall and CPU time.

A second table sets each search against the grid of the same cell: the candidates and the
selection's CPU time and its work (the FLOPs it trained and scored) as multiples of the grid's, and
the edges left after the search's extensions. CPU time is less sensitive than wall time to other
work on the machine, but not to the machine: the stores' selections may have run on different ones
(27 epochs of the same 128-shot MNLI fold, the same tokens at two learning rates, took 2058 CPU s
on one and 4924 on another), so the FLOPs ratio is the one that compares the procedures' cost
whatever machine each ran on. A cell missing from a store is listed as not run yet.
"""
from __future__ import annotations

import argparse

from tuneoff.describe import main_metric, method_name
from tuneoff.report.edges import edges as record_edges
from tuneoff.store import open_store

Key = tuple  # (task, model, method, shots, data seed)


def _cells(folder: str) -> dict[Key, object]:
    out = {}
    for r in open_store(folder, must_exist=True).records(status="done"):
        if r.selection is not None and not r.selection.shared:
            out[(r.task, r.model, method_name(r), r.shots, r.data_seed)] = r
    return out


def _fmt(x, spec=".3f") -> str:
    return "–" if x is None else format(x, spec)


def _best_heldout(sel) -> float | None:
    """The best mean held-out score at a point the search's choice could take: any (trial, rung) under
    the asynchronous pruner, which chose among them all; a rung of a trial that reached its last rung
    under the synchronous one, which chooses among those only."""
    trials = sel.get("trials")
    if trials:
        if sel.get("pruner") == "synchronous":
            trials = [t for t in trials if t.get("state") == "complete"] or trials
        return max((g["mean_score"] for t in trials for g in t["rungs"] if g["mean_score"] is not None), default=None)
    return max((c["mean_score"] for c in sel.get("candidates") or [] if c.get("mean_score") is not None), default=None)


def procedure(sel) -> str:
    """"grid", "optuna, asynchronous" or "optuna, synchronous"."""
    if sel.get("search") != "optuna":
        return "grid"
    pruner = sel.get("pruner") or "halving"
    return {"halving": "optuna, asynchronous", "synchronous": "optuna, synchronous"}.get(pruner, f"optuna, {pruner}")


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


def n_scored(sel) -> int:
    """Candidates (grid) or trials (optuna) scored."""
    return len(sel.get("trials") or sel.get("candidates") or [])


def _scored(sel) -> str:
    trials = sel.get("trials")
    if not trials:
        return f"{len(sel.get('candidates') or [])} candidates"
    pruned = sum(t["state"] == "pruned" for t in trials)
    return f"{len(trials)} trials ({pruned} pruned, {len(sel.get('rounds') or [1])} round(s))"


def _evals(rec) -> str:
    metric = main_metric(rec)
    return " / ".join(f"{name} {_fmt((m.get('overall') or {}).get(metric))}" for name, m in (rec.metrics or {}).items())


def _edge_text(sel) -> str:
    return ", ".join(e.flag() for e in record_edges(sel)) or "no"


def row(rec) -> list[str]:
    sel = rec.selection.to_dict()
    cost = sel.get("cost") or {}
    return [procedure(sel), choice(sel), _edge_text(sel), _fmt(_best_heldout(sel)), _evals(rec), _scored(sel),
            f"{_fmt(cost.get('time_s'), '.0f')} / {_fmt(cost.get('cpu_s'), '.0f')}"]


def planned(config: str) -> list[Key]:
    """The cells a sweep config plans (task, model, method, shots, data seed), in its order."""
    from tuneoff.sweep import load_sweep

    return list(dict.fromkeys((r.task, r.model, r.method.name, r.shots, r.data_seed) for r in load_sweep(config).runs))


def _cost(rec, key: str) -> float | None:
    """The selection's `key` of its cost ("cpu_s", "flops_approx")."""
    return (rec.selection.to_dict().get("cost") or {}).get(key)


def ratio(rec, grid, key: str) -> str:
    """`rec`'s selection cost `key` as a multiple of the grid's: "2.99×", or "–" without both."""
    a, b = _cost(rec, key), (_cost(grid, key) if grid is not None else None)
    return f"{a / b:.2f}×" if a and b else "–"


def main(stores: list[str], config: str = "benchmarks/search.yaml") -> None:
    found = [_cells(s) for s in stores]
    cells = planned(config)
    print("| cell | store | search | choice | on an edge | best held-out | eval (main metric) | scored | "
          "selection wall / CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in cells:
        cell = f"{key[0]} {key[2]} {key[3]} shots, seed {key[4]}"
        for store, recs in zip(stores, found):
            rec = recs.get(key)
            print(f"| {cell} | {store} | " + (" | ".join(row(rec)) if rec else "not run yet | | | | | | ") + " |")
    print()
    print("| cell | search | candidates ÷ grid | selection CPU ÷ grid | selection FLOPs ÷ grid | "
          "on an edge after extension |")
    print("|---|---|---|---|---|---|")
    for key in cells:
        cell = f"{key[0]} {key[2]} {key[3]} shots"
        recs = [r[key] for r in found if key in r]
        grid = next((r for r in recs if procedure(r.selection.to_dict()) == "grid"), None)
        for rec in recs:
            sel = rec.selection.to_dict()
            if rec is grid:
                continue
            g = n_scored(grid.selection.to_dict()) if grid is not None else 0
            n = f"{n_scored(sel) / g:.1f}×" if g else "–"
            edges = _edge_text(sel)
            print(f"| {cell} | {procedure(sel)} | {n} | {ratio(rec, grid, 'cpu_s')} | "
                  f"{ratio(rec, grid, 'flops_approx')} | {'none' if edges == 'no' else edges} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stores", nargs="+", help="result folders (each record's procedure is read from it)")
    ap.add_argument("--config", default="benchmarks/search.yaml", help="the sweep config whose cells to show")
    a = ap.parse_args()
    main(a.stores, a.config)
