"""Protocol v1 beside protocol v2, from two stores of the same comparison (docs/cola-mnli-v2/README.md).

    python benchmarks/v1_v2.py docs/cola-mnli-v2 docs/cola-mnli-cpu            # the four parts
    python benchmarks/v1_v2.py docs/cola-mnli-v2 docs/cola-mnli-cpu --model smollm2-135m

1. Scores: for every cell the two stores share (task, model, method, shots, eval set), each side's mean
   of the task's main metric over its splits with its 95% interval (splits and the eval sample:
   `report.claims.interval`), and v2 − v1 paired by split (the same few-shot examples; a pair whose
   split checksums differ is dropped) with its interval and its claim under the report's rule
   (`report.claims`: two-level test, at least 5 pairs, Holm over every row of the table, "not
   separated" with the smallest difference the pairs could detect). A method is matched by name, so
   icl and distill are matched across their k (each side's k is in the row).
2. Selection: per store, the choices made (each computed selection once: a frugal choice reused by
   the other splits counts once), the share on an edge of what was searched, and the chosen values,
   the training length included (the epochs trained of the schedule's horizon).
3. Cost: per store, wall and CPU hours by part (selection, training, evaluation) and by shot count,
   each selection counted once (`real_table.py --times` per cell).
4. v1's findings under v2 (`v1_findings.py`): which methods are above chance, which pairs the paired
   tests separate, and the recommendation, each store judged by the report's rules on its own runs.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict

import numpy as np

from tuneoff.describe import main_metric, method_name, method_options
from tuneoff.report.claims import SEPARATED, Rule, compare, diff_interval, eval_variance, interval, judge, one_label, phrase
from tuneoff.report.edges import edges as record_edges
from tuneoff.store import open_store

from real_table import EVALUATION, TRAINING, _spent  # benchmarks/: run as a script
from search_table import choice
from v1_findings import print_findings

EVAL_SETS = {"cola": ("in_domain", "out_of_domain"), "mnli": ("validation_matched", "hans")}


def _records(folder: str) -> list:
    return open_store(folder, must_exist=True).records(status="done")


def _name(rec) -> str:
    opts = method_options(rec)
    return f"{method_name(rec)}(k={opts['k']})" if "k" in opts else method_name(rec)


def _scores(recs, model: str | None) -> dict:
    """(task, model, method, shots, eval set) -> {data_seed: (value, eval variance, checksum, name)}."""
    out: dict = defaultdict(dict)
    for r in recs:
        if model and r.model != model:
            continue
        metric = main_metric(r)
        for es, m in (r.metrics or {}).items():
            o = m.overall
            if o is None or o.get(metric) is None:
                continue
            v = float(o.get(metric))
            ev = eval_variance(metric, v, o.n if o.n is not None else m.n, one_label(o.pred_dist))
            out[(r.task, r.model, method_name(r), r.shots, es)][r.data_seed] = (
                v, ev, r.split.checksum if r.split else None, _name(r))
    return out


def _cell_text(side: dict) -> str:
    vals = [v for v, *_ in side.values()]
    if not vals:
        return "–"
    lo, hi = interval(vals, [e for _, e, *_ in side.values()])
    ci = f" [{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) else ""
    return f"{statistics.fmean(vals):.3f}{ci} ({len(vals)})"


def scores_table(new: list, old: list, model: str | None) -> None:
    a, b = _scores(new, model), _scores(old, model)
    rows, comps = [], []
    for key in sorted(set(a) & set(b), key=lambda k: (k[0], k[1], k[2], k[3], EVAL_SETS.get(k[0], ()).index(k[4])
                                                       if k[4] in EVAL_SETS.get(k[0], ()) else 9)):
        pa, pb = a[key], b[key]
        seeds = sorted(s for s in set(pa) & set(pb) if pa[s][2] is None or pb[s][2] is None or pa[s][2] == pb[s][2])
        x = np.array([pa[s][0] for s in seeds])
        y = np.array([pb[s][0] for s in seeds])
        c = compare(x, y, [pa[s][1] for s in seeds], [pb[s][1] for s in seeds], Rule())
        comps.append(c)
        names = (sorted({v[3] for v in pb.values()}), sorted({v[3] for v in pa.values()}))
        rows.append((key, names, pb, pa, c, len(set(pa) & set(pb)) - len(seeds)))
    judge(comps, Rule())  # Holm over every row of the table
    print("| task | model | method v1 → v2 | shots | eval set | v1 mean [95%] (n) | v2 mean [95%] (n) "
          "| v2 − v1 [95%] (pairs) | claim |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (task, mdl, _, shots, es), (n1, n2), pb, pa, c, dropped in rows:
        if c.n >= Rule().min_pairs:
            lo, hi = diff_interval(c)
            d = f"{c.diff:+.3f} [{lo:+.3f}, {hi:+.3f}] ({c.n})"
            claim = phrase(c, Rule())
            claim = f"{'v2' if c.diff > 0 else 'v1'} higher: {claim}" if c.verdict == SEPARATED else claim
        else:
            d = f"{c.diff:+.3f} ({c.n})" if c.n else "– (0)"
            claim = f"no test: {c.n} pair(s) < {Rule().min_pairs}"
        if dropped:
            claim += f"; {dropped} pair(s) dropped: split checksums differ"
        print(f"| {task} | {mdl} | {', '.join(n1)} → {', '.join(n2)} | {shots} | {es} | {_cell_text(pb)} "
              f"| {_cell_text(pa)} | {d} | {claim} |")
    print()


def selections(recs, model: str | None) -> list[tuple]:
    """Each computed selection once: (task, model, method, shots, choice text, edge flags, record)."""
    out = []
    for r in recs:
        if (model and r.model != model) or r.selection is None or r.selection.shared:
            continue
        sel = r.selection.to_dict()
        out.append((r.task, r.model, _name(r), r.shots, choice(sel), [e.flag() for e in record_edges(sel)], sel))
    return sorted(out, key=lambda t: t[:4])


def selection_table(new: list, old: list, model: str | None) -> None:
    a, b = selections(new, model), selections(old, model)
    for name, sels in (("v1", b), ("v2", a)):
        n_edge = sum(bool(e) for *_, e, _ in sels)
        by: dict = defaultdict(lambda: [0, 0])
        for t in sels:
            by[t[2].split("(")[0]][0] += 1
            by[t[2].split("(")[0]][1] += bool(t[5])
        print(f"{name}: {len(sels)} choices, {n_edge} on an edge ({n_edge / len(sels):.0%}); per method: "
              + ", ".join(f"{m} {e} of {n}" for m, (n, e) in sorted(by.items())) if sels else f"{name}: no choice")
    print()
    old_by = {t[:4]: t for t in b}
    print("| task | model | method | shots | v1 choice | v1 edge | v2 choice | v2 edge |")
    print("|---|---|---|---|---|---|---|---|")
    for t in a:
        o = next((v for k, v in old_by.items() if k[0] == t[0] and k[1] == t[1] and k[2].split("(")[0]
                  == t[2].split("(")[0] and k[3] == t[3]), None)
        print(f"| {t[0]} | {t[1]} | {t[2]} | {t[3]} | {o[4] if o else '–'} | "
              f"{', '.join(o[5]) or 'no' if o else '–'} | {t[4]} | {', '.join(t[5]) or 'no'} |")
    print()


def cost(recs) -> dict:
    """(part or shots or 'all') -> [wall s, CPU s], each selection counted once (by the run that
    computed it; frugal runs that reuse it record its cost but did not spend it)."""
    spent: dict = defaultdict(lambda: [0.0, 0.0])
    for r in recs:
        parts = [("training", TRAINING), ("evaluation", EVALUATION)]
        if r.selection is not None and not r.selection.shared:
            parts.insert(0, ("selection", ("selection",)))
        for part, names in parts:
            wall, cpu = _spent(r, names)
            for key in (part, r.shots, "all"):
                spent[key][0] += wall
                spent[key][1] += cpu
    return spent


def cost_table(new: list, old: list) -> None:
    a, b = cost(new), cost(old)
    keys = ["selection", "training", "evaluation"] + sorted(k for k in set(a) | set(b) if isinstance(k, int)) + ["all"]
    print(f"| part | v1 wall / CPU h ({len(old)} runs) | v2 wall / CPU h ({len(new)} runs) | v2 ÷ v1 CPU |")
    print("|---|---|---|---|")
    h = lambda x: f"{x[0] / 3600:.1f} / {x[1] / 3600:.1f}"
    for k in keys:
        label = f"{k} shots" if isinstance(k, int) else k
        ratio = f"{a[k][1] / b[k][1]:.2f}×" if b[k][1] else "–"
        print(f"| {label} | {h(b[k])} | {h(a[k])} | {ratio} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("v2")
    ap.add_argument("v1")
    ap.add_argument("--model", help="only this model's runs (default: every model both stores hold)")
    args = ap.parse_args()
    new, old = _records(args.v2), _records(args.v1)
    print(f"v2: {args.v2}, {len(new)} runs done; v1: {args.v1}, {len(old)} runs done\n")
    print("## Scores, v1 beside v2\n")
    scores_table(new, old, args.model)
    print("## Selection: choices on an edge, chosen values and lengths\n")
    selection_table(new, old, args.model)
    print("## Cost by part and by shot count\n")
    cost_table(new, old)
    print("## v1's findings under v2\n")
    print_findings(new, old, args.model)


if __name__ == "__main__":
    main()
