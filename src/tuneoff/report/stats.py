"""Paired comparisons between methods, and the Pareto front of score against cost.

Two methods are compared only on runs that saw the same few-shot split: same data_seed and seed,
and the same split checksum. The claim rule is strict: `significant` needs at least `min_pairs`
pairs, the paired t-test's p-value Holm-adjusted over the comparisons of its cell (task, model, eval
set, shots) below alpha, and the paired bootstrap's p-value below alpha too. The Wilcoxon
signed-rank p-value is shown beside them; it cannot go below 0.0625 with 5 pairs, so it decides
nothing at the few seeds a comparison affords. Unpaired runs or too few of them give no p-value and
never a claim. The recommendation uses the same paired t-test and Holm correction.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats as _st

from tuneoff.metrics import direction
from tuneoff.report.frame import done_rows, frame_metric

N_BOOT = 10_000
ALPHA = 0.05
MIN_PAIRS = 5

CLAIM_RULE = (
    "A difference is claimed (significant = yes) only between runs paired on the same few-shot split "
    "(same data_seed and seed, same split checksum), with at least {min_pairs} pairs, and when both the "
    "two-sided paired t-test (scipy.stats.ttest_rel), Holm-adjusted over every comparison of its task, "
    "model, eval set and shot count, and the paired bootstrap ({n_boot} resamples, seed {seed}) give p "
    "below {alpha}. Fewer pairs, or unpaired runs, give no p-value and no claim. The Wilcoxon signed-rank "
    "p-value is shown for reference and decides nothing: with n pairs it cannot go below 2/2^n (0.0625 "
    "for 5 pairs). The recommendation uses the same t-test and Holm correction, over its comparisons with "
    "the best only, so its adjusted p-values are smaller than these."
)

TEST_COLUMNS = ["task", "model", "eval_set", "domain", "shots", "metric", "method_a", "method_b", "n_pairs",
                "mean_a", "mean_b", "mean_diff", "p_ttest", "p_ttest_holm", "p_bootstrap", "p_wilcoxon",
                "significant", "note"]


def t_interval(values) -> tuple[float, float]:
    """The 95% Student-t interval (n - 1 degrees of freedom) of the mean of `values`, NaN and
    infinite values left out; (NaN, NaN) for fewer than 2."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if len(v) < 2:
        return np.nan, np.nan
    h = _st.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - h), float(v.mean() + h)


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    idx = [i for i, v in enumerate(p) if not np.isnan(v)]
    order = sorted(idx, key=lambda i: p[i])
    adj, running = [float("nan")] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adj[i] = running
    return adj


def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    if len(d) < 2:
        return float("nan")
    if np.allclose(d, d[0]):  # no spread: a constant non-zero difference is certain, zero is none
        return 0.0 if abs(d[0]) > 1e-12 else 1.0
    return float(_st.ttest_rel(a, b).pvalue)


def bootstrap_p(diffs, n_boot: int = N_BOOT, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value of mean(diffs) != 0: resample the pairs with replacement,
    centre the resampled means on the observed mean (the null), count those at least as far out."""
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
    return df[["variant", "data_seed", "seed", "split_checksum", "run_id", metric]].dropna(subset=[metric])


def _by_split(side: pd.DataFrame, metric: str) -> tuple[dict, bool]:
    """(data_seed, seed) -> (mean value, checksum); and whether several runs shared a split."""
    acc: dict = {}
    for ds, sd, ck, v in zip(side["data_seed"], side["seed"], side["split_checksum"], side[metric]):
        acc.setdefault((ds, sd), ([], ck))[0].append(float(v))
    dup = any(len(vs) > 1 for vs, _ in acc.values())
    return {k: (float(np.mean(vs)), ck) for k, (vs, ck) in acc.items()}, dup


def _pair(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    notes = []
    (sa, dup_a), (sb, dup_b) = _by_split(a, metric), _by_split(b, metric)
    for side, dup in ((a, dup_a), (b, dup_b)):
        if dup:
            notes.append(f"{side['variant'].iloc[0]}: several runs on one split were averaged "
                         "(they differ in settings outside the method options)")
    va, vb, bad = [], [], 0
    for key in sorted(set(sa) & set(sb), key=str):
        (x, ck_a), (y, ck_b) = sa[key], sb[key]
        if not pd.isna(ck_a) and not pd.isna(ck_b) and ck_a != ck_b:
            bad += 1
            continue
        va.append(x)
        vb.append(y)
    if bad:
        notes.append(f"{bad} pair(s) dropped: split checksums differ")
    return np.array(va, float), np.array(vb, float), notes


def paired_tests(frame: pd.DataFrame, metric: str | None = None, subset: str = "overall",
                 n_boot: int = N_BOOT, seed: int = 0, alpha: float = ALPHA,
                 min_pairs: int = MIN_PAIRS) -> pd.DataFrame:
    """For each (task, model, eval set, shots) and each pair of method variants: mean difference
    (A - B, A is the one with the better mean: the higher, or the lower for a metric where lower is
    better), paired bootstrap and Wilcoxon p-values, number of
    pairs, and `significant` under the claim rule. `metric=None` uses each task's main metric."""
    df = done_rows(frame)
    df = df[df["subset"] == subset]
    rows = []
    for (task, model, es, shots), g in df.groupby(["task", "model", "eval_set", "shots"], sort=True):
        m = metric or frame_metric(g, task)
        if m not in g.columns:
            continue
        per = _per_run(g, m)
        means = per.groupby("variant")[m].mean().sort_values(ascending=direction(m) < 0)  # best first
        cell = []
        for va, vb in itertools.combinations(means.index, 2):
            a, b, notes = _pair(per[per["variant"] == va], per[per["variant"] == vb], m)
            d = a - b
            n = len(d)
            if n == 0:
                p_t, p_boot, p_wil, wnote = np.nan, np.nan, np.nan, "no paired runs (no shared split): no test"
            else:
                p_wil, wnote = wilcoxon_p(d, min_pairs)
                enough = n >= min_pairs
                p_boot = bootstrap_p(d, n_boot, seed) if enough else np.nan
                p_t = paired_t(a, b) if enough else np.nan
            if wnote:
                notes.insert(0, wnote)
            cell.append({"task": task, "model": model, "eval_set": es, "domain": g["domain"].iloc[0],
                         "shots": shots, "metric": m, "method_a": va, "method_b": vb, "n_pairs": n,
                         "mean_a": float(a.mean()) if n else float(means[va]),
                         "mean_b": float(b.mean()) if n else float(means[vb]),
                         "mean_diff": float(d.mean()) if n else np.nan,
                         "p_ttest": p_t, "p_bootstrap": p_boot, "p_wilcoxon": p_wil,
                         "note": "; ".join(notes)})
        for r, adj in zip(cell, holm([r["p_ttest"] for r in cell])):
            r["p_ttest_holm"] = adj
            r["significant"] = bool(r["n_pairs"] >= min_pairs and adj < alpha and r["p_bootstrap"] < alpha)
        rows += cell
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def claim_rule(n_boot: int = N_BOOT, seed: int = 0, alpha: float = ALPHA, min_pairs: int = MIN_PAIRS) -> str:
    return CLAIM_RULE.format(n_boot=n_boot, seed=seed, alpha=alpha, min_pairs=min_pairs)


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
