"""The one rule for what a comparison of methods may claim. The report's paired comparisons
(`report.stats`), the recommendation (`report.recommend`) and `tuneoff recommend` on the terminal
(which prints the recommendation's blocks) all decide through `compare` and `judge` here, and all
print `rule_text`.

- Pairs: two methods are compared only on runs that saw the same few-shot split (same data_seed and
  seed, same split checksum); a test needs at least `MIN_PAIRS` pairs. Fewer: no test, no claim.
- Uncertainty from the splits and from the eval sample. Every run is scored on the same eval
  examples (`data.cap_eval` draws them once, for every run), so the eval sample's error is shared by
  every split of a method and does not average away over splits. Records hold no per-example
  outcomes, so its variance is parametric (`eval_variance`): p(1 - p)/n for a rate such as accuracy
  (the variance of resampling the n examples), (1 - MCC^2)/n for MCC, summed over the two methods of
  a comparison as if they erred on different examples (an upper bound where they err on the same
  ones, as methods mostly do). The mean difference over k pairs then has variance
  s^2/k + eval term, s the spread of the per-split differences.
- Different ("separated", "worse"): the two-sided t-test on that variance (Welch-Satterthwaite
  degrees of freedom; with no eval term it is scipy's paired t-test), Holm-adjusted over the
  comparisons of one table, and the two-level bootstrap (resample the pairs, add a draw of the
  eval-sample error) both give p below alpha. An added source of uncertainty never makes a claim
  easier: each p-value (and the smallest detectable difference) is the larger of the two-level
  test's and the split-only test's (the more degrees of freedom of the first could otherwise give
  a smaller p).
- Equal ("equivalent within ±margin"): only from an equivalence test: two one-sided t-tests (TOST)
  on the same variance, Holm-adjusted, p below alpha, and the bootstrap's 90% interval inside
  ±margin. The margin is absolute on the main metric (`Budget.margin`, default `MARGIN`).
- Anything else is "not separated", said with the smallest difference the comparison could have
  detected (`mdd`: two-sided alpha, power `POWER`), never as "tied" or "matches".
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _st

from tuneoff.report.blocks import pval

ALPHA = 0.05
MIN_PAIRS = 5
POWER = 0.8
MARGIN = 0.02
N_BOOT = 10_000

SEPARATED, EQUIVALENT, NOT_SEPARATED, TOO_FEW = "separated", "equivalent", "not separated", "too few pairs"
DECIDED = ("best", "equivalent")  # the recommendation's verdicts that are decided (`decided`)


@dataclass(frozen=True)
class Rule:
    """The rule's settings: the same for every table of one report or recommendation."""

    alpha: float = ALPHA
    min_pairs: int = MIN_PAIRS
    power: float = POWER
    margin: float = MARGIN  # equivalence margin, absolute on the main metric
    n_boot: int = N_BOOT
    seed: int = 0


def eval_variance(metric: str, value, n, one_label: bool = False) -> float:
    """The variance of one run's `metric` over its eval sample of `n` examples, from the metric
    alone (records keep no per-example outcomes): MCC, (1 - MCC^2)/n (at MCC = 0 this is exact,
    n MCC^2 being chi-square with 1 df for a binary table; 0 for a run that gave every example one
    label, whose MCC is 0 whatever the sample); any other metric in [0, 1], the binomial
    value(1 - value)/n (exact for accuracy and other per-example rates, an approximation for F1);
    NaN where neither applies."""
    try:
        v, n = float(value), float(n)
    except (TypeError, ValueError):
        return float("nan")
    if not (np.isfinite(v) and np.isfinite(n)) or n <= 0:
        return float("nan")
    if metric == "mcc":
        return 0.0 if one_label else max(1.0 - v * v, 0.0) / n
    return v * (1.0 - v) / n if 0.0 <= v <= 1.0 else float("nan")


def one_label(pred_dist) -> bool:
    """Whether a run gave every example one label (`pred_dist`: the record's shares, or their JSON)."""
    d = json.loads(pred_dist) if isinstance(pred_dist, str) and pred_dist else pred_dist
    return bool(d) and max(d.values()) >= 1.0 - 1e-9


def _se_df(split_var: float, eval_var: float, k: int) -> tuple[float, float]:
    """Standard error of a mean over k splits whose per-split values vary by `split_var` (already
    divided by k) plus a shared `eval_var`; its Welch-Satterthwaite degrees of freedom (the eval
    term taken as known)."""
    se = math.sqrt(split_var + eval_var)
    df = (split_var + eval_var) ** 2 * (k - 1) / split_var ** 2 if split_var > 0 else math.inf
    return se, df


def _t_p(diff: float, se: float, df: float) -> float:
    if se == 0:  # no spread and no eval term: a non-zero difference is certain, zero is none
        return 0.0 if abs(diff) > 1e-12 else 1.0
    return float(2 * _st.t.sf(abs(diff) / se, df))


def _tost_p(diff: float, se: float, df: float, margin: float) -> float:
    if se == 0:
        return 0.0 if abs(diff) < margin else 1.0
    return float(max(_st.t.sf((diff + margin) / se, df), _st.t.cdf((diff - margin) / se, df)))


def two_level_means(values, eval_var: float, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """The two-level bootstrap of a mean over splits: resample the splits with replacement, then add
    a draw of the eval sample's error, normal with variance `eval_var` (shared by every split: the
    same eval examples score every run). With `eval_var` 0 it is the split-only bootstrap."""
    v = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    return means + rng.normal(0.0, math.sqrt(max(eval_var, 0.0)), n_boot)


def bootstrap_interval(values, eval_var: float = 0.0, level: float = 0.95, n_boot: int = N_BOOT,
                       seed: int = 0) -> tuple[float, float]:
    """The percentile interval of `two_level_means`; (NaN, NaN) without values."""
    if len(values) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(two_level_means(values, eval_var, n_boot, seed), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def interval(values, eval_vars=None, level: float = 0.95) -> tuple[float, float]:
    """The Student-t interval of the mean of `values` over splits, its variance widened by the
    eval sample's (the mean of `eval_vars`, shared by every split; Welch-Satterthwaite df), and
    never narrower than the split-only interval; NaN and infinite values left out; (NaN, NaN) for
    fewer than 2. No `eval_vars`: the split-only interval."""
    v = np.asarray(values, float)
    e = np.asarray(eval_vars if eval_vars is not None else np.zeros(len(v)), float)
    keep = np.isfinite(v)
    v, e = v[keep], e[keep]
    if len(v) < 2:
        return float("nan"), float("nan")
    ev = float(np.nanmean(e)) if np.isfinite(e).any() else 0.0
    split = v.var(ddof=1) / len(v)
    h = max(_st.t.ppf(0.5 + level / 2, df) * se for se, df in (_se_df(split, ev, len(v)), _se_df(split, 0, len(v))))
    return float(v.mean() - h), float(v.mean() + h)


@dataclass
class Comparison:
    """A against B on their paired splits (A the one with the better mean). Figures without a
    suffix count the splits and the eval sample; `*_split` are the split-only figures of earlier
    releases, shown beside them for one release and deciding nothing."""

    n: int
    diff: float = float("nan")  # mean of A - B over the pairs
    se: float = float("nan")
    df: float = float("nan")
    eval_se: float = float("nan")  # the eval sample's part of `se`, the same however many splits
    eval_known: bool = True  # False: the metric has no eval-sample variance here (counted as 0)
    p: float = float("nan")  # two-sided t-test
    p_boot: float = float("nan")  # two-level bootstrap
    ci: tuple[float, float] = (float("nan"), float("nan"))  # its 95% interval of A - B
    p_tost: float = float("nan")
    boot_inside: bool = False  # the bootstrap's 90% interval lies within ±margin
    mdd: float = float("nan")  # smallest difference detectable (alpha two-sided, power)
    mdd_floor: float = float("nan")  # the same with any number of splits: the eval sample's alone
    p_split: float = float("nan")
    p_boot_split: float = float("nan")
    ci_split: tuple[float, float] = (float("nan"), float("nan"))
    p_holm: float = float("nan")  # set by `judge`
    p_tost_holm: float = float("nan")
    p_split_holm: float = float("nan")
    verdict: str = TOO_FEW
    separated: bool = False  # also when `verdict` is EQUIVALENT (a real difference inside the margin)
    separated_split: bool = False  # the old claim: split-only t-test (Holm) and bootstrap
    notes: list[str] = field(default_factory=list)


def compare(a, b, var_a=None, var_b=None, rule: Rule = Rule()) -> Comparison:
    """A against B over their pairs (`a[i]`, `b[i]`: the two methods' scores on split i; `var_a`,
    `var_b`: each score's eval-sample variance, `eval_variance`). Holm and the verdict: `judge`."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d, k = a - b, len(a)
    c = Comparison(k, diff=float(d.mean()) if k else float("nan"))
    if k < rule.min_pairs:
        return c
    ev = np.asarray(var_a if var_a is not None else np.full(k, np.nan), float) + \
        np.asarray(var_b if var_b is not None else np.full(k, np.nan), float)
    c.eval_known = bool(np.isfinite(ev).any())
    e = float(np.nanmean(ev)) if c.eval_known else 0.0
    both = [_se_df(float(d.var(ddof=1)) / k, x, k) for x in (e, 0.0)]  # two-level, split-only
    (c.se, c.df), c.eval_se = both[0], math.sqrt(e)
    # a source of uncertainty added never makes a claim easier: each figure is the more cautious of the two
    c.p_split, p2 = _t_p(c.diff, *both[1]), _t_p(c.diff, *both[0])
    c.p = max(p2, c.p_split)
    c.p_tost = max(_tost_p(c.diff, se, df, rule.margin) for se, df in both)
    c.mdd = max(float((_st.t.ppf(1 - rule.alpha / 2, df) + _st.t.ppf(rule.power, df)) * se) for se, df in both)
    c.mdd_floor = float((_st.norm.ppf(1 - rule.alpha / 2) + _st.norm.ppf(rule.power)) * c.eval_se)
    means, split = two_level_means(d, e, rule.n_boot, rule.seed), two_level_means(d, 0.0, rule.n_boot, rule.seed)
    c.p_boot_split = _centred_p(split, c.diff)
    c.p_boot = max(_centred_p(means, c.diff), c.p_boot_split)
    c.ci = tuple(float(x) for x in np.percentile(means, [2.5, 97.5]))
    c.boot_inside = all(-rule.margin < lo and hi < rule.margin for lo, hi in
                        (np.percentile(means, [5, 95]), np.percentile(split, [5, 95])))
    c.ci_split = interval(d)
    return c


def diff_interval(c: Comparison, level: float = 0.95) -> tuple[float, float]:
    """The interval of A − B that a verdict is read with: the widest of the two-level t interval,
    the split-only one and the two-level bootstrap's (95%: `c.ci`), so it never looks surer than
    the test; before the Holm correction. (NaN, NaN) without a test."""
    if c.n < 2 or not np.isfinite(c.se):
        return float("nan"), float("nan")
    q = 0.5 + level / 2
    ends = [(c.diff - _st.t.ppf(q, c.df) * c.se, c.diff + _st.t.ppf(q, c.df) * c.se)]
    if level == 0.95:  # the split-only t interval and the bootstrap's are kept at 95%
        ends += [c.ci_split, c.ci]
    return float(min(lo for lo, _ in ends)), float(max(hi for _, hi in ends))


def trails(c: Comparison) -> str:
    """How far B trails A, with the interval of the difference: "trails by 0.031 (95% interval
    −0.012 to 0.074)"."""
    lo, hi = diff_interval(c)
    return f"trails by {c.diff:.3f} (95% interval {lo:+.3f} to {hi:+.3f})"


def _centred_p(means: np.ndarray, obs: float) -> float:
    """Two-sided bootstrap p-value of mean != 0: the resampled means centred on the observed one
    (the null), the share at least as far out."""
    extreme = np.abs(means - obs) >= abs(obs) - 1e-12
    return float((extreme.sum() + 1) / (len(means) + 1))


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    idx = [i for i, v in enumerate(p) if not np.isnan(v)]
    order = sorted(idx, key=lambda i: p[i])
    adj, running = [float("nan")] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adj[i] = running
    return adj


def judge(comps: list[Comparison], rule: Rule = Rule()) -> list[Comparison]:
    """The comparisons of one table, Holm-adjusted together, each given its verdict (in place)."""
    for c, p, q, s in zip(comps, holm([c.p for c in comps]), holm([c.p_tost for c in comps]),
                          holm([c.p_split for c in comps])):
        c.p_holm, c.p_tost_holm, c.p_split_holm = p, q, s
        if c.n < rule.min_pairs:
            c.verdict = TOO_FEW
            continue
        c.separated = bool(p < rule.alpha and c.p_boot < rule.alpha)
        c.separated_split = bool(s < rule.alpha and c.p_boot_split < rule.alpha)
        equivalent = bool(q < rule.alpha and c.boot_inside)
        c.verdict = EQUIVALENT if equivalent else SEPARATED if c.separated else NOT_SEPARATED
    return comps


def short(x: float) -> str:
    """A difference as the verdicts say it: 0.071, 0.0081, 0.16."""
    return "–" if not np.isfinite(x) else f"{x:.2g}"


def p_is(p: float) -> str:
    """"p=0.012", "p<0.001"."""
    text = pval(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def phrase(c: Comparison, rule: Rule = Rule()) -> str:
    """The claim of `c` in words: "not separated (smallest detectable difference 0.07)",
    "equivalent within ±0.02 (TOST p=0.012)", "separated (p Holm 0.003)", "too few pairs (3 < 5): no test"."""
    if c.verdict == TOO_FEW:
        return "no paired runs: no test" if c.n == 0 else f"too few pairs ({c.n} < {rule.min_pairs}): no test"
    if c.verdict == EQUIVALENT:
        also = f"; the difference itself is separated, p Holm {pval(c.p_holm)}" if c.separated else ""
        return f"equivalent within ±{rule.margin:g} (TOST {p_is(c.p_tost_holm)}{also})"
    if c.verdict == SEPARATED:
        return f"separated (p Holm {pval(c.p_holm)})"
    return f"not separated (smallest detectable difference {short(c.mdd)})"


def rule_text(rule: Rule = Rule()) -> str:
    """The rule in words, as the report, the recommendation and the terminal print it."""
    return (
        "What a comparison may claim (one rule for the paired comparisons, the recommendation and `tuneoff "
        "recommend`): two methods are compared only on runs that saw the same few-shot split (same data_seed "
        f"and seed, same split checksum), and a test needs at least {rule.min_pairs} such pairs; fewer give no "
        "test and no claim either way. The uncertainty counts the splits and the eval sample: the variance of "
        "the mean difference is the spread of the per-split differences over the pairs plus the eval sample's "
        "own variance, which every split shares (every run is scored on the same eval examples, so it does not "
        "shrink with more splits). Records hold no per-example outcomes, so that term is parametric: the "
        "binomial p(1−p)/n of each run for a rate such as accuracy, (1−MCC²)/n for MCC (exact at MCC 0; 0 for a "
        "run that gave every example one label), added over the two methods as if they erred on different "
        "examples (an upper bound where they err on the same ones). Different (\"worse\", \"separated\"): the "
        "two-sided t-test on that variance (Welch–Satterthwaite degrees of freedom), Holm-adjusted over the "
        f"comparisons of its table, and the two-level bootstrap ({rule.n_boot} resamples of the pairs, each with "
        f"a draw of the eval-sample error, seed {rule.seed}) both give p below {rule.alpha}; each p-value is the "
        "larger of this test's and the split-only test's, so an added source of uncertainty never makes a claim "
        f"easier. Equal (\"equivalent "
        f"within ±{rule.margin:g}\", absolute on the main metric): only when two one-sided tests (TOST) on the "
        f"same variance, Holm-adjusted, give p below {rule.alpha} and the bootstrap's 90% interval lies inside "
        f"±{rule.margin:g}. Anything else is \"not separated\", said with the smallest difference the comparison "
        f"could have detected (two-sided alpha {rule.alpha}, power {rule.power}, before the Holm correction): "
        "not separated is not equal. Not counted: the hyperparameter choice where a frugal selection made it "
        "once per cell (the figures are conditional on it), and training noise beyond what shows in the spread "
        "over splits (one training seed per split). Figures marked \"split-only, old\" are those of earlier "
        "releases (splits resampled, the eval sample ignored): shown for one release, they decide nothing.")


def decided(answer) -> bool:
    """Whether a recommendation (`report.recommend.Answer`) is decided: a single best separated from
    every other method that fits the budget (verdict "best"), or the best with methods shown
    equivalent to it within the margin and every other fitting method separated from it (verdict
    "equivalent"), and in both cases at least one of those beats the majority baseline. Anything
    else is not decided: a fitting method not separated from the best (more splits, or a larger eval
    set, may separate it), too few pairs, nothing at the top above chance, or no recommendation at
    all (nothing or one method fits; no number of splits changes that, so a caller adding data seeds
    must also stop at a maximum). Where the eval sample alone hides the differences in question
    (the candidates' `mdd_floor` above them), more splits cannot decide a cell either: a larger eval
    set can. `tuneoff sweep --until-decided` adds data seeds to the cells where this is False."""
    return getattr(answer, "verdict", None) in DECIDED


def seeds_can_decide(answer) -> bool:
    """Whether more data seeds could still decide an answer that `decided` says is not: False when it
    is decided, when fewer than two candidates fit the budget, or when every fitting candidate left
    open (not separated from the best) differs from it by less than the eval sample alone could
    detect (`mdd_floor`: only a larger eval set can separate those); True otherwise (too few pairs,
    nothing shown above chance yet, or a difference that more splits may separate). A hint for
    `tuneoff sweep --until-decided`, from the observed differences, not a test."""
    if decided(answer):
        return False
    c = answer.candidates
    fit = c[c["fits"]] if len(c) else c
    if len(fit) < 2:
        return False
    if "claim" not in fit or answer.verdict != "not separated":
        return True
    open_ = fit[fit["claim"].isin([NOT_SEPARATED, TOO_FEW])]
    return bool((open_["claim"] == TOO_FEW).any() or not (open_["diff"].abs() < open_["mdd_floor"]).all())
