"""Across two models in one store (docs/cola-mnli-v2/README.md): does the ranking of the methods both
models run hold, and where does SetFit on the small encoder stand against the decoder's methods.

    python benchmarks/across_models.py docs/cola-mnli-v2 [--models smollm2-135m minilm-l6] [--setfit-model minilm-l6]

1. Ranking: for each task, shot count and eval set, and each pair of methods that both models ran
   (matched by name), A − B on each model, paired by split (the same few-shot examples; a pair
   whose split checksums differ is dropped), with its 95% interval over the splits and the eval
   sample and its claim under the report's rule (`report.claims`: two-level test, at least 5
   pairs, Holm over every comparison of the table, "not separated" with the smallest difference
   the pairs could detect). "holds" where both models separate A from B in the same direction,
   "reversed" where they separate it in opposite directions, else "not shown" (a model that does
   not separate the two says nothing about their order: "not separated" is not "equal").
2. SetFit: for each task, shot count and eval set, setfit on `--setfit-model` against each method
   of the other model at the same shots, paired by split as above (Holm over the table), beside
   each side's cost per run: the mean training CPU seconds over its splits, the selection's CPU
   seconds (the split that made it), the worst peak memory and the trainable parameters.
"""
from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from itertools import combinations

import numpy as np

from tuneoff.describe import method_name
from tuneoff.report.claims import SEPARATED, Rule, compare, diff_interval, judge, phrase
from tuneoff.store import open_store

from v1_v2 import EVAL_SETS, _cell_text, _scores  # benchmarks/: run as a script


def _order(key) -> tuple:
    task, es = key[0], key[-1]
    sets = EVAL_SETS.get(task, ())
    return (*key[:-1], sets.index(es) if es in sets else 9, es)


def _pair(pa: dict, pb: dict):
    """The splits both sides ran on the same examples, and the two sides' values and eval variances."""
    seeds = sorted(s for s in set(pa) & set(pb) if pa[s][2] is None or pb[s][2] is None or pa[s][2] == pb[s][2])
    return (seeds, np.array([pa[s][0] for s in seeds]), np.array([pb[s][0] for s in seeds]),
            [pa[s][1] for s in seeds], [pb[s][1] for s in seeds])


def _diff_text(c) -> str:
    if c.n >= Rule().min_pairs:
        lo, hi = diff_interval(c)
        return f"{c.diff:+.3f} [{lo:+.3f}, {hi:+.3f}] ({c.n})"
    return f"{c.diff:+.3f} ({c.n})" if c.n else "– (0)"


def _claim(c, a: str, b: str) -> str:
    if c.n < Rule().min_pairs:
        return f"no test: {c.n} pair(s) < {Rule().min_pairs}"
    text = phrase(c, Rule())
    return f"{a if c.diff > 0 else b} higher: {text}" if c.verdict == SEPARATED else text


def verdict(c1, c2) -> str:
    """"holds", "reversed" or "not shown" for one pair of methods on two models."""
    if c1.verdict == SEPARATED and c2.verdict == SEPARATED:
        return "holds" if (c1.diff > 0) == (c2.diff > 0) else "reversed"
    return "not shown"


def ranking(scores: dict, models: list[str]) -> None:
    by = defaultdict(dict)  # (task, shots, eval set) -> {(model, method): per-split values}
    for (task, model, method, shots, es), side in scores.items():
        if model in models:
            by[(task, shots, es)][(model, method)] = side
    rows, comps = [], []
    for key in sorted(by, key=_order):
        cell = by[key]
        common = sorted({m for _, m in cell if all((md, m) in cell for md in models)})
        for a, b in combinations(common, 2):
            cs = []
            for md in models:
                _, x, y, vx, vy = _pair(cell[(md, a)], cell[(md, b)])
                cs.append(compare(x, y, vx, vy, Rule()))
            comps += cs
            rows.append((key, a, b, cs, [(cell[(md, a)], cell[(md, b)]) for md in models]))
    if not rows:
        print(f"no method that both {' and '.join(models)} ran, at the same task and shots\n")
        return
    judge(comps, Rule())  # Holm over every comparison of the table
    head = " | ".join(f"{md}: A / B mean [95%] (n) | {md}: A − B [95%] (pairs) | {md}: claim" for md in models)
    print(f"| task | shots | eval set | A | B | {head} | ranking |")
    print("|---|---|---|---|---|" + "---|" * (3 * len(models)) + "---|")
    for (task, shots, es), a, b, cs, sides in rows:
        parts = []
        for c, (sa, sb) in zip(cs, sides):
            parts += [f"{_cell_text(sa)} / {_cell_text(sb)}", _diff_text(c), _claim(c, a, b)]
        print(f"| {task} | {shots} | {es} | {a} | {b} | " + " | ".join(parts) + f" | {verdict(*cs[:2])} |")
    print()


def _costs(recs) -> dict:
    """(task, model, method, shots) -> (mean training CPU s, selection CPU s, worst peak MB, trainable)."""
    runs = defaultdict(list)
    for r in recs:
        runs[(r.task, r.model, method_name(r), r.shots)].append(r)  # as `_scores` keys them
    out = {}
    for key, rs in runs.items():
        res = [r.resources.to_dict() if r.resources else {} for r in rs]
        made = [x for r, x in zip(rs, res) if r.selection is not None and not r.selection.shared]
        train = [float(x.get("train_cpu_s") or 0) for x in res]
        sel = [float(x.get("selection_cpu_s") or 0) for x in made]
        peak = [float(x["peak_memory_mb"]) for x in res if x.get("peak_memory_mb") is not None]
        out[key] = (statistics.fmean(train) if train else None, sum(sel) if sel else None,
                    max(peak) if peak else None, res[0].get("params_trainable"))
    return out


def _cost_text(c) -> str:
    if c is None:
        return "–"
    train, sel, peak, params = c
    f = lambda x, spec: "–" if x is None else format(x, spec)
    return (f"train {f(train, ',.0f')} s, selection {f(sel, ',.0f')} s, peak {f(peak, ',.0f')} MB, "
            f"{f(params, ',')} trained")


def setfit_table(scores: dict, costs: dict, setfit_model: str) -> None:
    by = defaultdict(dict)
    for (task, model, method, shots, es), side in scores.items():
        by[(task, shots, es)][(model, method)] = side
    rows, comps = [], []
    for key in sorted(by, key=_order):
        cell = by[key]
        if (setfit_model, "setfit") not in cell:
            continue
        for (md, m), side in sorted(cell.items()):
            if md == setfit_model:
                continue
            _, x, y, vx, vy = _pair(cell[(setfit_model, "setfit")], side)
            c = compare(x, y, vx, vy, Rule())
            comps.append(c)
            rows.append((key, md, m, c, cell[(setfit_model, "setfit")], side))
    if not rows:
        print(f"no setfit run on {setfit_model} beside another model's run at the same task and shots\n")
        return
    judge(comps, Rule())
    print(f"| task | shots | eval set | B (model · method) | setfit mean [95%] (n) | B mean [95%] (n) "
          f"| setfit − B [95%] (pairs) | claim | setfit's cost | B's cost |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (task, shots, es), md, m, c, sa, sb in rows:
        print(f"| {task} | {shots} | {es} | {md} · {m} | {_cell_text(sa)} | {_cell_text(sb)} | {_diff_text(c)} "
              f"| {_claim(c, 'setfit', m)} | {_cost_text(costs.get((task, setfit_model, 'setfit', shots)))} "
              f"| {_cost_text(costs.get((task, md, m, shots)))} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--models", nargs=2, default=["smollm2-135m", "minilm-l6"])
    ap.add_argument("--setfit-model", default="minilm-l6")
    args = ap.parse_args()
    recs = open_store(args.folder, must_exist=True).records(status="done")
    scores = _scores(recs, None)
    print(f"## Ranking across {' and '.join(args.models)}: the methods both ran\n")
    ranking(scores, args.models)
    print(f"## setfit on {args.setfit_model} against the other model's methods\n")
    setfit_table(scores, _costs(recs), args.setfit_model)


if __name__ == "__main__":
    main()
