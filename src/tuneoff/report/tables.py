"""The report's tables, built from the aggregate (mean ± std (n) over seeds) as plain blocks."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tuneoff.metrics import direction, not_better
from tuneoff.report.blocks import Cell, Table, cells, count, heat, isnan, msn, num, pval
from tuneoff.report.frame import METHOD_TIME

DOMAIN = {"in": "in-domain", "out": "out-of-domain"}


def col_label(es, dom) -> str:
    return f"{DOMAIN.get(dom, dom)}: {es}"


def variant_order(agg: pd.DataFrame, metric: str) -> list[str]:
    """Variants, best average of the main metric (overall) first, by the metric's direction."""
    d = agg[(agg["metric"] == metric) & (agg["subset"] == "overall")]
    if d.empty:
        return sorted(agg["variant"].dropna().unique()) if "variant" in agg else []
    means = d.groupby("variant")["mean"].mean()
    return list(means.sort_values(ascending=direction(metric) < 0, kind="stable").index)


def _cost_by_variant(runs: pd.DataFrame) -> dict:
    done = runs[runs["status"] == "done"]
    if done.empty:
        return {}
    top = done["shots"].max()
    params = done.groupby("variant")["params_trainable"].median()
    t = done[done["shots"] == top].groupby("variant")[METHOD_TIME[0]].mean()  # selection included
    return {"params": params.to_dict(), "time": t.to_dict(), "top": top}


def _only_failed(runs: pd.DataFrame, shown: list[str]) -> dict[str, str]:
    """{variant: the first line of its first error} for variants with failed runs and none done."""
    if runs is None or runs.empty or "status" not in runs:
        return {}
    out = {}
    for v, g in runs.groupby("variant", sort=True):
        if v in shown or (g["status"] == "done").any() or not (g["status"] == "failed").any():
            continue
        err = g.loc[g["status"] == "failed", "error"].dropna()
        out[v] = str(err.iloc[0]).splitlines()[0] if len(err) else "failed"
    return out


def leaderboard(agg: pd.DataFrame, runs: pd.DataFrame, metric: str, eval_sets, title: str = "",
                with_costs: bool = True) -> Table:
    """Rows = method variants; columns = shots x eval set (in-domain first) with "mean ± std (n)"
    of `metric`; a majority-baseline row; the best mean per column in bold; cells no better than the
    majority baseline marked (both by the metric's direction). A variant whose runs all failed gets a
    row saying "n/a" and why."""
    main = agg[(agg["metric"] == metric) & (agg["subset"] == "overall")]
    maj = agg[(agg["metric"] == metric) & (agg["subset"] == "majority")].groupby("eval_set")["mean"].mean()
    shots = sorted(int(s) for s in main["shots"].dropna().unique())
    cols = [(s, es, dom) for s in shots for es, dom in eval_sets]
    variants = variant_order(agg, metric)
    cell = main.groupby(["variant", "shots", "eval_set"])[["mean", "std", "count"]].mean()
    sign = direction(metric)
    col_means = {c: main[(main["shots"] == c[0]) & (main["eval_set"] == c[1])]["mean"] for c in cols}
    best = {c: m.max() if sign > 0 else m.min() for c, m in col_means.items()}
    costs = _cost_by_variant(runs) if with_costs else {}
    header = ["method"] + [col_label(es, dom) for _, es, dom in cols]
    if costs:
        header += ["trainable params", f"{METHOD_TIME[1].removesuffix(' (s)')}, s ({costs['top']} shots)"]
    rows, row_cls = [], []
    for v in variants:
        row = [Cell(v)]
        for c in cols:
            key = (v, c[0], c[1])
            if key not in cell.index:
                row.append(Cell("–"))
                continue
            r = cell.loc[key]
            below = c[1] in maj.index and not_better(metric, r["mean"], maj[c[1]])
            row.append(Cell(msn(r["mean"], r["std"], r["count"]), bold=bool(np.isclose(r["mean"], best[c])),
                            cls="below" if below else ""))
        if costs:
            row += [Cell(count(costs["params"].get(v))), Cell(num(costs["time"].get(v), 1))]
        rows.append(row)
        row_cls.append("")
    for v, why in _only_failed(runs, variants).items():  # a method that cannot run here is shown, not dropped
        rows.append([Cell(v)] + [Cell(f"n/a: {why}" if i == 0 else "") for i in range(len(cols))]
                    + ([Cell(""), Cell("")] if costs else []))
        row_cls.append("")
    if len(maj):
        row = [Cell("majority baseline", cls="baseline")]
        row += [Cell(num(maj.get(c[1])), cls="baseline") for c in cols]
        row += [Cell(""), Cell("")] if costs else []
        rows.append(row)
        row_cls.append("baseline")
    groups = [(f"{s} shots per class", len(eval_sets)) for s in shots]
    note = (f"{metric}: mean ± std over seeds (number of runs); bold = best mean in the column; "
            f"red = at or {'below' if sign > 0 else 'above'} the majority baseline (always predicting the most "
            f"frequent label){'' if sign > 0 else '; lower is better'}.")
    return Table(header, rows, title=title, groups=[("", 1)] + groups + ([("cost", 2)] if costs else []),
                 note=note, row_cls=row_cls)


def _subset_key(name: str):
    return (0 if name.startswith("label=") else 1, name)


def _pred_dist(frame: pd.DataFrame) -> dict:
    """(variant, shots, eval_set) -> mean share of each predicted label over runs."""
    d = frame[(frame["subset"] == "overall") & frame["pred_dist"].notna()]
    out: dict = {}
    for key, g in d.groupby(["variant", "shots", "eval_set"]):
        dists = [json.loads(s) for s in g["pred_dist"] if s]
        labels = sorted({k for x in dists for k in x})
        out[key] = {k: float(np.mean([x.get(k, 0.0) for x in dists])) for k in labels}
    return out


def subset_table(agg: pd.DataFrame, frame: pd.DataFrame, eval_set: str, metric: str = "accuracy",
                 title: str = "") -> Table | None:
    """Rows = variant x shots; columns = overall and every subset (per label, per subset field and
    its crossing with the label) of one eval set, coloured red (0) to green (1); and the share of
    each predicted label. Accuracy within one label is that label's recall: a model that always
    says "entailment" shows 1.00 there and 0.00 on the other label."""
    d = agg[(agg["metric"] == metric) & (agg["eval_set"] == eval_set) & (agg["subset"] != "majority")]
    subsets = sorted((s for s in d["subset"].unique() if s != "overall"), key=_subset_key)
    if d.empty or not subsets:
        return None
    cell = d.groupby(["variant", "shots", "subset"])[["mean", "std", "count"]].mean()
    dist = _pred_dist(frame[frame["eval_set"] == eval_set])
    variants = variant_order(agg, metric)
    header = ["method", "shots", "runs", "overall"] + subsets + ["predicted labels (share)"]
    rows = []
    for v in variants:
        for s in sorted(d[d["variant"] == v]["shots"].dropna().unique()):
            if (v, s, "overall") not in cell.index:
                continue
            row = [Cell(v), Cell(str(int(s))), Cell(str(int(cell.loc[(v, s, "overall"), "count"])))]
            for sub in ["overall"] + subsets:
                if (v, s, sub) in cell.index:
                    r = cell.loc[(v, s, sub)]
                    row.append(Cell(msn(r["mean"], r["std"], digits=2), bg=heat(r["mean"])))
                else:
                    row.append(Cell("–"))
            pd_ = dist.get((v, s, eval_set), {})
            row.append(Cell(", ".join(f"{k} {p:.2f}" for k, p in pd_.items()) or "–"))
            rows.append(row)
    note = (f"{metric} (mean ± std over seeds) per subset; within one label it is that label's recall. "
            "Colour: red = 0, white = 0.5, green = 1.")
    return Table(header, rows, title=title, note=note)


def _ci(lo, hi) -> str:
    return "–" if isnan(lo) or isnan(hi) else f"[{float(lo):+.3f}, {float(hi):+.3f}]"


PAIRED_NOTE = ("A − B with its 95% interval over splits and the eval sample (the two-level bootstrap); p: the "
               "two-level paired t-test, p Holm: Holm-adjusted over the comparisons of its task, model, eval set "
               "and shots; claim: what the rule above lets this comparison say. Split-only, old: the figures of "
               "earlier releases (splits resampled, the eval sample ignored), shown for one release; they decide "
               "nothing, nor does the Wilcoxon p-value.")


def paired_table(tests: pd.DataFrame) -> Table:
    header = ["task", "model", "eval set", "shots", "metric", "A", "B", "pairs", "mean A", "mean B", "A − B",
              "95% CI (splits + eval)", "p", "p Holm", "claim", "split-only, old: 95% CI",
              "split-only, old: p t-test Holm", "split-only, old: p bootstrap", "split-only, old: significant",
              "p Wilcoxon", "note"]
    rows = []
    for _, t in tests.iterrows():
        sig, eq, old = bool(t["significant"]), bool(t["equivalent"]), bool(t["significant_old"])
        rows.append(cells([t["task"], t["model"], t["eval_set"], int(t["shots"]), t["metric"], t["method_a"],
                           t["method_b"], int(t["n_pairs"]), num(t["mean_a"]), num(t["mean_b"]),
                           num(t["mean_diff"]), _ci(t["ci_lo"], t["ci_hi"]), pval(t["p"]), pval(t["p_holm"]),
                           Cell(t["claim"], bold=sig or eq, cls="yes" if sig or eq else ""),
                           _ci(t["ci_split_lo"], t["ci_split_hi"]), pval(t["p_ttest_holm"]), pval(t["p_bootstrap"]),
                           "yes" if old else "no", pval(t["p_wilcoxon"]), t["note"]]))
    return Table(header, rows, note=PAIRED_NOTE)


def frame_table(df: pd.DataFrame, title: str = "", note: str = "") -> Table:
    """Any small DataFrame as a table (values shown as they are)."""
    rows = [cells(["–" if (not isinstance(v, (list, dict)) and pd.isna(v)) else v for v in r])
            for r in df.itertuples(index=False)]
    return Table([str(c) for c in df.columns], rows, title=title, note=note)
