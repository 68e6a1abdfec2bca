"""Paired comparisons between methods, and the Pareto front of score against cost.

Two methods are compared only on runs that saw the same few-shot split: same data_seed and seed,
and the same split checksum. What a comparison may claim is decided by the one rule of
`report.claims` (pairs needed, the two-level test over splits and the eval sample, Holm over the
comparisons of a cell (task, model, eval set, shots), equivalence only from TOST within a margin),
the rule the recommendation uses too. The split-only figures of earlier releases (paired t-test,
Holm, paired bootstrap) stay beside them for one release, marked old. The Wilcoxon signed-rank
p-value is shown for reference; it cannot go below 0.0625 with 5 pairs, so it decides nothing.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats as _st

from tuneoff.metrics import direction
from tuneoff.report.claims import (ALPHA, MARGIN, MIN_PAIRS, N_BOOT, TOO_FEW, Rule, compare, eval_variance,
                                   holm, interval, judge, one_label, phrase, rule_text)
from tuneoff.report.frame import done_rows, frame_metric

__all__ = ["ALPHA", "MIN_PAIRS", "N_BOOT", "holm", "t_interval", "paired_t", "bootstrap_p", "wilcoxon_p",
           "paired_tests", "claim_rule", "pareto_front"]

TEST_COLUMNS = ["task", "model", "eval_set", "domain", "shots", "metric", "method_a", "method_b", "n_pairs",
                "mean_a", "mean_b", "mean_diff", "ci_lo", "ci_hi", "eval_se", "p", "p_holm", "p_boot", "p_tost",
                "p_tost_holm", "mdd", "mdd_floor", "claim", "significant", "equivalent",
                # split-only, old: the figures of earlier releases, for one release, deciding nothing
                "ci_split_lo", "ci_split_hi", "p_ttest", "p_ttest_holm", "p_bootstrap", "significant_old",
                "p_wilcoxon", "note"]


def t_interval(values) -> tuple[float, float]:
    """The split-only 95% Student-t interval (n - 1 degrees of freedom) of the mean of `values`,
    NaN and infinite values left out; (NaN, NaN) for fewer than 2. `claims.interval` widens it by
    the eval sample."""
    return interval(values)


def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    """The split-only paired t-test's p-value (scipy.stats.ttest_rel); a constant non-zero
    difference is certain (0), a constant zero none (1)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return float("nan")
    if np.allclose(d, d[0]):
        return 0.0 if abs(d[0]) > 1e-12 else 1.0
    return float(_st.ttest_rel(a, b).pvalue)


def bootstrap_p(diffs, n_boot: int = N_BOOT, seed: int = 0) -> float:
    """Two-sided split-only paired bootstrap p-value of mean(diffs) != 0: resample the pairs with
    replacement, centre the resampled means on the observed mean (the null), count those at least
    as far out."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0:
        return float("nan")
    obs = d.mean()
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    extreme = np.abs(means - obs) >= abs(obs) - 1e-12
    return float((extreme.sum() + 1) / (n_boot + 1))


def wilcoxon_p(diffs, min_pairs: int = MIN_PAIRS) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value (scipy defaults), or NaN and why not."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < min_pairs:
        return float("nan"), f"too few pairs ({len(d)} < {min_pairs}): no test"
    if np.all(d == 0):
        return float("nan"), "all differences are zero"
    return float(_st.wilcoxon(d).pvalue), ""


def _per_run(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    per = df[["variant", "data_seed", "seed", "split_checksum", "run_id", "n", "pred_dist", metric]]
    per = per.dropna(subset=[metric])
    return per.assign(eval_var=[eval_variance(metric, v, n, one_label(p))
                                for v, n, p in zip(per[metric], per["n"], per["pred_dist"])])


def _by_split(side: pd.DataFrame, metric: str) -> tuple[dict, bool]:
    """(data_seed, seed) -> (mean value, mean eval variance, checksum); and whether several runs
    shared a split."""
    acc: dict = {}
    for ds, sd, ck, v, e in zip(side["data_seed"], side["seed"], side["split_checksum"], side[metric],
                                side["eval_var"]):
        acc.setdefault((ds, sd), ([], [], ck))
        acc[(ds, sd)][0].append(float(v))
        acc[(ds, sd)][1].append(float(e))
    dup = any(len(vs) > 1 for vs, _, _ in acc.values())
    return {k: (float(np.mean(vs)), float(np.mean(es)), ck) for k, (vs, es, ck) in acc.items()}, dup


def _pair(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[np.ndarray, ...]:
    """Scores of A and B on their shared splits, each score's eval-sample variance, and notes."""
    notes = []
    (sa, dup_a), (sb, dup_b) = _by_split(a, metric), _by_split(b, metric)
    for side, dup in ((a, dup_a), (b, dup_b)):
        if dup:
            notes.append(f"{side['variant'].iloc[0]}: several runs on one split were averaged "
                         "(they differ in settings outside the method options)")
    rows, bad = [], 0
    for key in sorted(set(sa) & set(sb), key=str):
        (x, ex, ck_a), (y, ey, ck_b) = sa[key], sb[key]
        if not pd.isna(ck_a) and not pd.isna(ck_b) and ck_a != ck_b:
            bad += 1
            continue
        rows.append((x, y, ex, ey))
    if bad:
        notes.append(f"{bad} pair(s) dropped: split checksums differ")
    cols = np.array(rows, float).reshape(-1, 4).T
    return cols[0], cols[1], cols[2], cols[3], notes


def _row(c, wil: tuple[float, str], notes: list[str], rule: Rule) -> dict:
    if c.n and not c.eval_known:
        notes.append("no eval-sample variance (metric or eval-set size unknown): split-only")
    if wil[1] and c.verdict != TOO_FEW:  # too few pairs, or none: the claim says why there is no test
        notes.insert(0, wil[1])
    return {"n_pairs": c.n, "mean_diff": c.diff, "ci_lo": c.ci[0], "ci_hi": c.ci[1], "eval_se": c.eval_se,
            "p": c.p, "p_holm": c.p_holm, "p_boot": c.p_boot, "p_tost": c.p_tost, "p_tost_holm": c.p_tost_holm,
            "mdd": c.mdd, "mdd_floor": c.mdd_floor, "claim": phrase(c, rule), "significant": c.separated,
            "equivalent": c.verdict == "equivalent", "ci_split_lo": c.ci_split[0], "ci_split_hi": c.ci_split[1],
            "p_ttest": c.p_split, "p_ttest_holm": c.p_split_holm, "p_bootstrap": c.p_boot_split,
            "significant_old": c.separated_split, "p_wilcoxon": wil[0], "note": "; ".join(notes)}


def paired_tests(frame: pd.DataFrame, metric: str | None = None, subset: str = "overall",
                 n_boot: int = N_BOOT, seed: int = 0, alpha: float = ALPHA,
                 min_pairs: int = MIN_PAIRS, margin: float = MARGIN) -> pd.DataFrame:
    """For each (task, model, eval set, shots) and each pair of method variants: the mean
    difference (A - B, A the one with the better mean: the higher, or the lower for a metric where
    lower is better), its two-level interval and tests, its claim under `report.claims`
    (`significant`: separated), and the split-only figures of earlier releases.
    `metric=None` uses each task's main metric."""
    rule = Rule(alpha=alpha, min_pairs=min_pairs, margin=margin, n_boot=n_boot, seed=seed)
    df = done_rows(frame)
    df = df[df["subset"] == subset]
    rows = []
    for (task, model, es, shots), g in df.groupby(["task", "model", "eval_set", "shots"], sort=True):
        m = metric or frame_metric(g, task)
        if m not in g.columns:
            continue
        per = _per_run(g, m)
        means = per.groupby("variant")[m].mean().sort_values(ascending=direction(m) < 0)  # best first
        head = {"task": task, "model": model, "eval_set": es, "domain": g["domain"].iloc[0], "shots": shots,
                "metric": m}
        cell = []
        for va, vb in itertools.combinations(means.index, 2):
            a, b, ea, eb, notes = _pair(per[per["variant"] == va], per[per["variant"] == vb], m)
            c = compare(a, b, ea, eb, rule)
            wil = wilcoxon_p(a - b, min_pairs) if len(a) else (np.nan, "no pairs")
            cell.append((c, wil, notes, {**head, "method_a": va, "method_b": vb,
                                         "mean_a": float(a.mean()) if len(a) else float(means[va]),
                                         "mean_b": float(b.mean()) if len(b) else float(means[vb])}))
        judge([c for c, *_ in cell], rule)
        rows += [{**h, **_row(c, wil, notes, rule)} for c, wil, notes, h in cell]
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def claim_rule(n_boot: int = N_BOOT, seed: int = 0, alpha: float = ALPHA, min_pairs: int = MIN_PAIRS,
               margin: float = MARGIN) -> str:
    """The one rule's text (`report.claims.rule_text`), as the paired-comparison section prints it."""
    return rule_text(Rule(alpha=alpha, min_pairs=min_pairs, margin=margin, n_boot=n_boot, seed=seed))


def pareto_front(cost, score, sign: int = 1) -> np.ndarray:
    """Indices of the points no other point beats (lower or equal cost and a score as good or better,
    one of them strictly), ordered by cost. `sign`: the metric's direction (`tuneoff.metrics.direction`),
    +1 when a higher score is better, -1 when a lower one is."""
    c, s = np.asarray(cost, float), sign * np.asarray(score, float)
    ok = np.flatnonzero(np.isfinite(c) & np.isfinite(s))
    order = ok[np.lexsort((-s[ok], c[ok]))]  # by cost, then best score first
    front, best = [], -np.inf
    for i in order:
        if s[i] > best:
            front.append(i)
            best = s[i]
    return np.array(front, dtype=int)
