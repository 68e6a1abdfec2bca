"""The one rule for claims (`tuneoff.report.claims`): uncertainty from the splits and the eval
sample, equivalence only from TOST within the margin, the smallest detectable difference, the same
pair rule in the report and the recommendation, and `decided`. Synthetic records; no models."""
import numpy as np
import pytest
from scipy import stats

from test_report import eval_n, make_record
from tuneoff.budget import budget_from
from tuneoff.report.answer import recommendation_blocks
from tuneoff.report.claims import (EQUIVALENT, NOT_SEPARATED, SEPARATED, TOO_FEW, Rule, bootstrap_interval, compare,
                                   decided, eval_variance, interval, judge, phrase, rule_text)
from tuneoff.report.frame import to_frame
from tuneoff.report.recommend import recommend
from tuneoff.report.stats import bootstrap_p, claim_rule, paired_tests

RNG = np.random.default_rng(7)
BASE = np.array([0.60, 0.62, 0.58, 0.65, 0.61, 0.63])


def _judged(a, b, va=None, vb=None, rule=Rule()):
    return judge([compare(a, b, va, vb, rule)], rule)[0]


def test_eval_variance_per_metric():
    assert eval_variance("accuracy", 0.7, 600) == pytest.approx(0.7 * 0.3 / 600)  # binomial: resampling examples
    assert np.sqrt(eval_variance("accuracy", 0.5, 600)) == pytest.approx(0.0204, abs=1e-4)  # "600 pairs carry ±0.02"
    assert eval_variance("mcc", 0.0, 600) == pytest.approx(1 / 600)  # n·MCC² ~ chi²(1) at MCC 0
    assert eval_variance("mcc", 0.3, 600) == pytest.approx(0.91 / 600)
    assert eval_variance("mcc", 0.0, 600, one_label=True) == 0.0  # one label for everything: MCC 0 on any sample
    assert np.isnan(eval_variance("accuracy", 0.7, None)) and np.isnan(eval_variance("loss", 2.3, 600))


def test_the_bootstrap_interval_widens_with_a_smaller_eval_set():
    scores = BASE + RNG.normal(0, 0.01, 6)
    width = {}
    for n in (10_000, 600, 100):
        lo, hi = bootstrap_interval(scores, eval_variance("accuracy", scores.mean(), n))
        width[n] = hi - lo
    split_lo, split_hi = bootstrap_interval(scores)  # split-only, old
    assert split_hi - split_lo < width[10_000] < width[600] < width[100]
    # the paired comparison's two-level interval, and the t-interval, widen the same way
    d = RNG.normal(0.03, 0.01, 6)
    ci = {n: compare(BASE + d, BASE, [eval_variance("accuracy", 0.63, n)] * 6,
                     [eval_variance("accuracy", 0.6, n)] * 6).ci for n in (10_000, 600, 100)}
    assert np.diff(ci[10_000]) < np.diff(ci[600]) < np.diff(ci[100])
    assert np.diff(interval(scores, [1e-4] * 6)) > np.diff(interval(scores))


def test_the_report_interval_widens_with_a_smaller_eval_set():
    recs = []
    for i, d in enumerate(RNG.normal(0.04, 0.01, 6)):
        recs += [make_record("finetune", acc=BASE[i], ood=None, data_seed=i),
                 make_record("lora", acc=BASE[i] + d, ood=None, data_seed=i)]
    small = paired_tests(to_frame(recs), "accuracy", n_boot=2000).iloc[0]  # 100 eval examples
    big = paired_tests(to_frame(eval_n(recs, 5000)), "accuracy", n_boot=2000).iloc[0]
    assert (small["ci_hi"] - small["ci_lo"]) > (big["ci_hi"] - big["ci_lo"]) > (big["ci_split_hi"] - big["ci_split_lo"])
    assert small["p_ttest"] == big["p_ttest"]  # the split-only, old figures ignore the eval sample
    assert small["mdd"] > big["mdd"] and small["eval_se"] > big["eval_se"]


def test_without_an_eval_term_it_is_the_split_only_test():
    d = np.array([0.05, -0.01, 0.03, 0.02, 0.04, -0.02])
    c = compare(BASE + d, BASE, [0.0] * 6, [0.0] * 6)
    assert c.p == pytest.approx(stats.ttest_rel(BASE + d, BASE).pvalue) == pytest.approx(c.p_split)
    assert c.p_boot == pytest.approx(bootstrap_p(d)) and c.df == pytest.approx(5)


def test_the_eval_term_is_shared_by_the_splits():
    """Every run is scored on the same eval examples: more splits do not shrink the eval sample's part."""
    v = eval_variance("accuracy", 0.6, 600)
    few = compare(BASE[:5] + 0.01, BASE[:5], [v] * 5, [v] * 5)
    many = compare(np.tile(BASE, 5) + 0.01, np.tile(BASE, 5), [v] * 30, [v] * 30)
    assert few.eval_se == pytest.approx(many.eval_se) == pytest.approx(np.sqrt(2 * v))
    assert few.mdd_floor == pytest.approx(many.mdd_floor) == pytest.approx((1.959964 + 0.841621) * np.sqrt(2 * v))
    assert many.mdd >= many.mdd_floor


def test_tost_decides_equivalent_only_inside_the_margin():
    tight = BASE + 0.005 + RNG.normal(0, 0.001, 6)  # 0.005 apart, hardly any spread, no eval term
    assert _judged(tight, BASE, [0] * 6, [0] * 6).verdict == EQUIVALENT  # inside ±0.02
    narrow = Rule(margin=0.002)
    c = _judged(tight, BASE, [0] * 6, [0] * 6, narrow)
    assert c.verdict == SEPARATED and c.p_tost > 0.5  # about 0.005 lies outside ±0.002
    far = _judged(BASE + 0.03 + RNG.normal(0, 0.001, 6), BASE, [0] * 6, [0] * 6)
    assert far.verdict == SEPARATED and far.p_tost > 0.5  # 0.03 lies outside ±0.02
    v = eval_variance("accuracy", 0.6, 600)  # the same 0.005 on 600 eval examples: nothing shown either way
    noisy = _judged(tight, BASE, [v] * 6, [v] * 6)
    assert noisy.verdict == NOT_SEPARATED and noisy.p_tost > 0.05
    assert phrase(noisy).startswith("not separated (smallest detectable difference 0.0")
    assert phrase(_judged(tight, BASE, [0] * 6, [0] * 6)).startswith("equivalent within ±0.02 (TOST p")


def test_the_smallest_detectable_difference():
    d = RNG.normal(0.0, 0.02, 6)
    v = eval_variance("accuracy", 0.6, 600)
    c = compare(BASE + d, BASE, [v] * 6, [v] * 6)
    se = np.sqrt(d.var(ddof=1) / 6 + 2 * v)
    assert c.se == pytest.approx(se)
    assert c.mdd == pytest.approx((stats.t.ppf(0.975, c.df) + stats.t.ppf(0.8, c.df)) * se)
    assert compare(BASE + d, BASE, [v / 10] * 6, [v / 10] * 6).mdd < c.mdd


def test_too_few_pairs_is_no_test():
    c = _judged(BASE[:3] + 0.3, BASE[:3])
    assert c.verdict == TOO_FEW and np.isnan(c.p) and not c.separated
    assert phrase(c) == "too few pairs (3 < 5): no test"


def _cell(method, accs, seeds, cpu=100.0, wall=100.0, n=600):
    recs = [make_record(method, acc=float(a), ood=None, data_seed=s,
                        resources={"train_cpu_s": cpu, "train_time_s": wall, "setup_cpu_s": 0.0})
            for a, s in zip(accs, seeds)]
    return eval_n(recs, n)


def test_the_recommendation_and_the_report_apply_the_same_pair_rule():
    # 3 pairs, a difference of 0.3: neither the report nor the recommendation claims anything
    three = _cell("finetune", BASE[:3] + 0.3, range(3)) + _cell("lora", BASE[:3], range(3))
    t = paired_tests(to_frame(three), "accuracy", n_boot=500).iloc[0]
    assert not t["significant"] and t["claim"] == "too few pairs (3 < 5): no test"
    assert t["note"] == ""  # the claim says why there is no test; the note does not say it again
    (a,) = [a for a in recommend(to_frame(three))[0] if a.domain == "in"]
    assert a.verdict == "no recommendation" and "at least 5" in a.sentence and not decided(a)
    # the best has 6 splits, the other shares only 3 of them: too few pairs, never "worse"
    lopsided = _cell("finetune", BASE + 0.3, range(6)) + _cell("lora", BASE[:3], range(3))
    (a,) = [a for a in recommend(to_frame(lopsided))[0] if a.domain == "in"]
    c = a.candidates.set_index("candidate").loc["lora · tiny"]
    assert c["claim"] == TOO_FEW and not c["separated"] and a.verdict == "not separated" and a.cheapest is None
    assert paired_tests(to_frame(lopsided), "accuracy", n_boot=500).iloc[0]["claim"] == c["says"]
    # 6 pairs, one comparison in both tables: the same test, the same p, the same claim
    six = _cell("finetune", BASE + 0.1 + RNG.normal(0, 0.01, 6), range(6)) + _cell("lora", BASE, range(6))
    t = paired_tests(to_frame(six), "accuracy").iloc[0]
    (a,) = [a for a in recommend(to_frame(six))[0] if a.domain == "in"]
    c = a.candidates.set_index("candidate").loc["lora · tiny"]
    assert c["p_holm"] == pytest.approx(t["p_holm"]) and c["says"] == t["claim"]
    assert c["claim"] == SEPARATED and bool(t["significant"]) and a.verdict == "best" and decided(a)


def test_one_rule_text_everywhere():
    assert claim_rule() == rule_text(Rule())
    six = _cell("finetune", BASE + 0.1, range(6)) + _cell("lora", BASE, range(6))
    blocks, _ = recommendation_blocks(to_frame(six), budget_from(margin=0.05))
    text = " ".join(b.text for b in blocks if hasattr(b, "text"))
    assert rule_text(Rule(margin=0.05)) in text and "±0.05" in text


def test_equivalence_names_the_cheapest_by_cpu_time_and_decides():
    same = BASE + RNG.normal(0, 0.001, 6)
    # lora's wall time is the shortest (the machine was idle then); finetune used less CPU
    recs = (_cell("finetune", same + 0.001, range(6), cpu=50, wall=400, n=10 ** 6)
            + _cell("lora", same, range(6), cpu=80, wall=60, n=10 ** 6))
    (a,) = [a for a in recommend(to_frame(recs))[0] if a.domain == "in"]
    assert a.verdict == "equivalent" and a.equivalent and decided(a)
    assert a.cheapest == "finetune · tiny" and a.cost.startswith("CPU time")
    assert "by CPU time" in a.sentence and "50 s CPU" in a.sentence and "equivalent within ±0.02" in a.sentence
    # the same scores on 600 eval examples: not separated, not decided, no cheapest
    (a,) = [a for a in recommend(to_frame(eval_n(recs, 600)))[0] if a.domain == "in"]
    assert a.verdict == "not separated" and a.cheapest is None and not decided(a)
    assert "smallest detectable difference" in a.sentence and "tied" not in a.sentence


def test_budget_margin_reaches_the_report(tmp_path):
    from tuneoff.report.build import build_sections

    recs = _cell("finetune", BASE + 0.005, range(6), n=10 ** 6) + _cell("lora", BASE, range(6), n=10 ** 6)
    _, tables = build_sections(recs, n_boot=500, budget=budget_from(margin=0.01))
    assert bool(tables["paired"].iloc[0]["equivalent"]) and "±0.01" in tables["paired"].iloc[0]["claim"]
    _, tables = build_sections(recs, n_boot=500, budget=budget_from(margin=0.004))
    assert not tables["paired"].iloc[0]["equivalent"]


def test_an_added_source_never_makes_a_claim_easier():
    """More degrees of freedom (Welch-Satterthwaite) could give the two-level test a smaller p than
    the split-only one; the rule takes the larger, so no claim refused over splits alone is made."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        scores = rng.normal(0.2, 0.08, 5)
        c = compare(scores, np.zeros(5), [eval_variance("mcc", 0.2, 600)] * 5, [0.0] * 5)
        assert c.p >= c.p_split and c.p_boot >= c.p_boot_split
        split_only = compare(scores, np.zeros(5), [0.0] * 5, [0.0] * 5)
        assert c.mdd >= split_only.mdd and c.p_tost >= split_only.p_tost
        lo, hi = interval(scores, [1e-3] * 5)
        slo, shi = interval(scores)
        assert lo <= slo and hi >= shi


def test_seeds_can_decide_only_where_the_eval_sample_does_not_hide_the_difference():
    from tuneoff.report.claims import seeds_can_decide

    same = BASE + RNG.normal(0, 0.001, 6)
    recs = _cell("finetune", same + 0.01, range(6), n=600) + _cell("lora", same, range(6), n=600)
    (a,) = [a for a in recommend(to_frame(recs))[0] if a.domain == "in"]
    assert a.verdict == "not separated" and not seeds_can_decide(a)  # 0.01 apart; 600 examples hide 0.08
    assert "more data seeds cannot decide it" in a.sentence
    swing = np.array([0.08, -0.06, 0.10, -0.05, 0.07, -0.04])
    recs = _cell("finetune", same + 0.03 + swing, range(6), n=10 ** 6) + _cell("lora", same, range(6), n=10 ** 6)
    (a,) = [a for a in recommend(to_frame(recs))[0] if a.domain == "in"]
    assert a.verdict == "not separated" and seeds_can_decide(a)  # the spread hides it
    three = _cell("finetune", BASE[:3] + 0.3, range(3)) + _cell("lora", BASE[:3], range(3))
    (a,) = [a for a in recommend(to_frame(three))[0] if a.domain == "in"]
    assert seeds_can_decide(a) and not decided(a)
