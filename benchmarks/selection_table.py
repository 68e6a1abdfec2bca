"""Selection vs the fixed default learning rate vs the oracle, from a store of benchmarks/selection.yaml.

    python benchmarks/selection_table.py results/selection

Per method and shots: the main metric (mean ± std over data seeds, n) in-domain and out-of-domain
with selection, at the fixed default train.lr, and the oracle diagnostic (the best candidate
chosen on the eval set itself); the chosen values; the selection's and the training's time (mean
per run, wall seconds) and their ratio within each run. Cells with fewer runs than data seeds are
marked partial.
"""
from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

from tuneoff.store import open_store


def _ms(xs: list[float]) -> str:
    if not xs:
        return "–"
    sd = f"{np.std(xs, ddof=1):.3f}" if len(xs) > 1 else "–"
    return f"{np.mean(xs):.3f} ± {sd} ({len(xs)})"


def _one_per_split(records: list[dict]) -> list[dict]:
    """One done record per method, model, shots, kind and data seed: a selected run with the oracle
    diagnostic is preferred to the same run without it (same choice, same training)."""
    best: dict[tuple, dict] = {}
    for r in records:
        if r.get("status") != "done":
            continue
        key = (r["method"], r["model"], r["shots"], bool(r.get("selection")), r["data_seed"])
        if key not in best or (r.get("oracle") and not best[key].get("oracle")):
            best[key] = r
    return list(best.values())


def table(records: list[dict]) -> str:
    cells: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    seeds = set()
    for r in _one_per_split(records):
        seeds.add(r["data_seed"])
        key = (r["method"], r["model"], r["shots"])
        metric = r.get("main_metric", "accuracy")
        scores = {m["domain"]: m["overall"][metric] for m in r["metrics"].values()}
        kind = "selected" if r.get("selection") else "fixed"
        for dom, v in scores.items():
            cells[key][(kind, dom)].append(v)
        res = r["resources"]
        cells[key][f"{kind}_run_s"].append(res["train_time_s"] + res["eval_time_s"])
        cells[key][f"{kind}_run_flops"].append(res["train_flops_approx"] + res["eval_flops_approx"])
        if kind == "selected":
            cells[key]["chosen"].append(r["selection"]["chosen_label"])
            cells[key]["sel_time"].append(res["selection_time_s"])
            cells[key]["sel_flops"].append(res["selection_flops_approx"])
            cells[key]["train_time"].append(res["train_time_s"])
            for es, best in (r.get("oracle") or {}).get("best", {}).items():
                cells[key][("oracle", r["metrics"][es]["domain"])].append(best["score"])
    lines = ["| method | model | shots | selected in / out | fixed lr in / out | oracle (diagnostic) in / out "
             "| selected − fixed in / out | oracle − selected in / out | chosen | selection s | train s "
             "| selection ÷ train |", "|" + "---|" * 12]
    for (method, model, shots), c in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        n = min((len(c[(k, d)]) for k in ("selected", "fixed") for d in ("in", "out")), default=0)
        part = "" if n >= len(seeds) else " (partial)"
        chosen = ", ".join(f"{v} ×{c['chosen'].count(v)}" for v in dict.fromkeys(c["chosen"]))

        def delta(a, b):
            return " / ".join(f"{np.mean(c[(a, d)]) - np.mean(c[(b, d)]):+.3f}" if c[(a, d)] and c[(b, d)] else "–"
                              for d in ("in", "out"))
        ratio = [s / t for s, t in zip(c["sel_time"], c["train_time"]) if t]
        lines.append(
            f"| {method}{part} | {model} | {shots} "
            f"| {_ms(c[('selected', 'in')])} / {_ms(c[('selected', 'out')])} "
            f"| {_ms(c[('fixed', 'in')])} / {_ms(c[('fixed', 'out')])} "
            f"| {_ms(c[('oracle', 'in')])} / {_ms(c[('oracle', 'out')])} "
            f"| {delta('selected', 'fixed')} | {delta('oracle', 'selected')} | {chosen} "
            f"| {np.mean(c['sel_time']):.0f} | {np.mean(c['train_time']):.0f} "
            f"| {np.mean(ratio):.1f} |")
    lines += ["", "| method | model | shots | splits | fixed: runs' train + eval s | selected: the same + one "
              "selection | time ratio | FLOP ratio |", "|" + "---|" * 8]
    tot_fixed = tot_sel = tot_ff = tot_sf = 0.0
    for (method, model, shots), c in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        if len(c["fixed_run_s"]) != len(c["selected_run_s"]) or not c["fixed_run_s"]:
            continue  # a sweep-time ratio needs the same splits on both sides
        fixed = sum(c["fixed_run_s"])
        sel = sum(c["selected_run_s"]) + c["sel_time"][0]  # frugal: the sweep pays its selection once
        ff = sum(c["fixed_run_flops"])
        sf = sum(c["selected_run_flops"]) + c["sel_flops"][0]
        if len(c["fixed_run_s"]) == len(seeds):  # the total covers complete cells only
            tot_fixed, tot_sel, tot_ff, tot_sf = tot_fixed + fixed, tot_sel + sel, tot_ff + ff, tot_sf + sf
        lines.append(f"| {method} | {model} | {shots} | {len(c['fixed_run_s'])} | {fixed:.0f} | {sel:.0f} "
                     f"| {sel / fixed:.2f} | {sf / ff:.2f} |")
    if tot_fixed:
        lines.append(f"| all cells with every split | | | | {tot_fixed:.0f} | {tot_sel:.0f} | {tot_sel / tot_fixed:.2f} "
                     f"| {tot_sf / tot_ff:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(open_store(sys.argv[1] if len(sys.argv) > 1 else "results/selection", must_exist=True).records()))
