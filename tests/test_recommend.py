"""The recommendation: budgets, ties from paired tests, refusals, and one answer from `recommend`
and the report. Synthetic records (the schema of tuneoff/record.py); no models."""
import copy

import numpy as np
import pytest
from typer.testing import CliRunner

from test_report import make_record, store_with
from tuneoff.budget import BudgetError, budget_from, parse_count, parse_duration, parse_memory
from tuneoff.cli import app
from tuneoff.report.build import build_sections
from tuneoff.report.frame import to_frame
from tuneoff.report.answer import answer_table
from tuneoff.report.recommend import above_chance, recommend
from tuneoff.report.stats import holm

SPLITS = range(6)


def _runs(method, model, accs, time_s=10.0, memory=900.0, trainable=1_000_000, shots=8, total=None, majority=0.5,
          wall=None, flops=None):
    """One run per split with the given scores (in-domain and out-of-domain alike) and costs:
    `time_s` of CPU time, `wall` of wall time (default the same)."""
    res = {"train_cpu_s": time_s, "setup_cpu_s": 0.0, "train_time_s": time_s if wall is None else wall,
           "peak_rss_mb": memory, "params_trainable": trainable, "params_total": total or 10 * trainable,
           "train_flops_approx": flops if flops is not None else 1e9 * time_s}
    recs = [make_record(method, model=model, acc=float(a), ood=float(a), shots=shots, data_seed=i,
                        majority=majority)
            for i, a in zip(SPLITS, accs)]
    for r in recs:  # exactly these costs, as a store written before per-run memory and set-up time holds them
        r["resources"] = dict(res)
    return recs


RNG = np.random.default_rng(0)
NOISE = RNG.normal(0, 0.01, 6)
BIG = _runs("pattern", "lm-135m", 0.90 + NOISE, time_s=120, memory=3000, trainable=135_000_000)
CLOSE = _runs("finetune", "enc-22m", 0.895 + RNG.normal(0, 0.03, 6), time_s=14, memory=1200, trainable=22_000_000)
SMALL = _runs("lora", "enc-22m", 0.70 + NOISE, time_s=5, memory=1000, trainable=75_000)
ZERO = _runs("icl", "lm-135m", 0.60 + RNG.normal(0, 0.01, 6), time_s=0, memory=2500, trainable=0)
ALL = BIG + CLOSE + SMALL + ZERO


def _answer(records, **budget):
    answers, names = recommend(to_frame(records), budget_from(**budget))
    return {(a.shots, a.domain): a for a in answers}[(8, "in")], names


def test_best_and_what_is_not_separated_from_it():
    a, names = _answer(ALL)
    assert a.verdict == "not separated" and a.best == "pattern · lm-135m"
    assert a.tied == ["finetune · enc-22m"]  # close to the best on the same splits: not separated
    assert a.cheapest is None and a.equivalent == []  # not separated is not equal: no cheapest named
    c = a.candidates.set_index("candidate")
    assert c.loc["lora · enc-22m", "p_holm"] < 0.05 and not c.loc["lora · enc-22m", "tied"]
    assert c.loc["lora · enc-22m", "claim"] == "separated"
    assert (c.loc[a.tied, "pairs"] == 6).all()
    assert (c["p_holm"].dropna() >= c["p"].dropna()).all()  # corrected p-values never smaller
    assert "paired t-test" in a.sentence and "6 pairs" in a.sentence and "Holm" in a.sentence
    assert "not separated from it" in a.sentence and "smallest detectable difference" in a.sentence
    assert "tied" not in a.sentence and "no cheapest is named" in a.sentence
    assert "6 pairs each" in a.sentence  # every comparison on 6 pairs
    # a candidate with fewer splits: the comparisons' numbers of pairs, not a fraction ("2/6 pairs")
    uneven, _ = _answer(BIG + CLOSE + SMALL[:2])
    assert "2 or 6 pairs per comparison" in uneven.sentence and "/6" not in uneven.sentence
    assert names == {"cpu_time": "setup_cpu_s + train_cpu_s + selection_cpu_s", "flops": "adapt_flops_approx",
                     "memory": "peak_rss_mb", "trainable_params": "params_trainable"}


@pytest.mark.parametrize("budget, out", [({"max_train_cpu": "1m"}, "pattern · lm-135m"),
                                         ({"max_flops": "1e11"}, "pattern · lm-135m"),
                                         ({"max_memory": "2GB"}, "pattern · lm-135m"),
                                         ({"max_trainable_params": "1M"}, "finetune · enc-22m")])
def test_each_budget_leaves_out_what_does_not_fit(budget, out):
    a, _ = _answer(ALL, **budget)
    c = a.candidates.set_index("candidate")
    assert not c.loc[out, "fits"] and " > " in c.loc[out, "why_out"]
    assert a.best != out and out not in a.tied
    assert all(c.loc[[a.best, *a.tied], "fits"])


def test_a_time_budget_reads_the_mean_runs_cpu_time_never_the_wall_time():
    # finetune's wall time is 5x its CPU time (a busy machine): the budget reads the CPU time
    busy = _runs("finetune", "enc-22m", 0.895 + NOISE, time_s=14, wall=70)
    a, names = _answer(BIG + busy + SMALL, max_train_cpu=60)
    c = a.candidates.set_index("candidate")
    assert c.loc["finetune · enc-22m", "fits"] and c.loc["finetune · enc-22m", "wall_time"] == pytest.approx(70)
    assert c.loc["finetune · enc-22m", "cpu_time"] == pytest.approx(14)
    assert "CPU" in names["cpu_time"] or "cpu" in names["cpu_time"]
    # one slow run among six: the mean run's CPU time (the leaderboard's figure) decides
    slow_once = _runs("finetune", "enc-22m", 0.895 + NOISE, time_s=14)
    slow_once[3]["resources"]["train_cpu_s"] = 70.0
    a, _ = _answer(BIG + slow_once + SMALL, max_train_cpu=20)
    c = a.candidates.set_index("candidate")
    assert c.loc["finetune · enc-22m", "cpu_time"] == pytest.approx((5 * 14 + 70) / 6)
    assert not c.loc["finetune · enc-22m", "fits"] and "23 s CPU > 20" in c.loc["finetune · enc-22m", "why_out"]
    assert a.verdict == "no recommendation" and "only lora · enc-22m fits" in a.sentence


def test_memory_and_parameter_budgets_exclude_by_the_worst_run():
    big_once = _runs("finetune", "enc-22m", 0.895 + NOISE, memory=900)
    big_once[2]["resources"]["peak_rss_mb"] = 3000.0
    a, _ = _answer(BIG + big_once + SMALL, max_memory="2GB")
    c = a.candidates.set_index("candidate")
    assert not c.loc["finetune · enc-22m", "fits"] and "3000 MB > 2048" in c.loc["finetune · enc-22m", "why_out"]


def test_the_old_time_flag_is_the_cpu_budget():
    assert budget_from(max_train_time="10m").max_train_cpu == 600
    assert budget_from(max_train_time="10m").limits() == {"cpu_time": 600}
    with pytest.raises(BudgetError, match="old name of max_train_cpu"):
        budget_from(max_train_time="10m", max_train_cpu="5m")


def test_a_clear_winner_is_named_and_nothing_is_tied():
    a, _ = _answer(BIG + SMALL + ZERO)
    assert a.verdict == "best" and a.tied == [] and "every other fitting method is worse" in a.sentence


def test_when_the_data_cannot_separate_no_winner_is_crowned():
    noisy = [_runs(m, "enc", 0.7 + RNG.normal(0, 0.05, 6)) for m in ("finetune", "lora", "bitfit")]
    a, _ = _answer(sum(noisy, []))
    assert a.verdict == "not separated" and "no winner" in a.sentence and "best is" not in a.sentence


# CoLA-like: the majority label alone scores 0.69; a cheap method that swings around it is tied with
# the best (nothing separates 6 such splits) but no better than always saying one label
MAJ = 0.69
GOOD = _runs("finetune", "lm", 0.80 + RNG.normal(0, 0.01, 6), time_s=300, majority=MAJ)
SWING = _runs("icl", "lm", [0.95, 0.40, 0.99, 0.45, 0.85, 0.50], time_s=2, trainable=0, majority=MAJ)


def test_a_method_at_chance_is_never_named_the_cheapest():
    a, _ = _answer(GOOD + SWING)
    c = a.candidates.set_index("candidate")
    assert a.best == "finetune · lm" and a.tied == ["icl · lm"]  # the paired test cannot separate them
    assert c.loc["icl · lm", "cpu_time"] < c.loc["finetune · lm", "cpu_time"]  # icl would be the cheapest
    assert a.cheapest is None and not c.loc["icl · lm", "beats_chance"]
    assert c.loc["finetune · lm", "beats_chance"] and c.loc["finetune · lm", "baseline"] == pytest.approx(MAJ)
    assert "Not shown to beat chance: icl · lm" in a.sentence and "accuracy 0.690" in a.sentence
    table = answer_table(a)
    status = {r[0].text: r[-1].text for r in table.rows}
    assert status["icl · lm"].startswith("not separated, trails by ")
    assert status["icl · lm"].endswith(", not above chance") and status["finetune · lm"] == "best"


def test_no_recommendation_when_nothing_at_the_top_beats_chance():
    around = np.array([0.02, -0.02, 0.01, -0.01, 0.03, -0.03])  # mean = the baseline
    flat = [_runs(m, "lm", MAJ + np.roll(around, i) + 0.002 * i, majority=MAJ)
            for i, m in enumerate(("finetune", "lora", "icl"))]
    a, _ = _answer(sum(flat, []))
    assert a.verdict == "not above chance" and a.cheapest is None and a.best is not None
    assert "no recommendation" in a.sentence and "majority baseline" in a.sentence and "accuracy 0.690" in a.sentence


def test_a_list_of_answers_says_the_rule_once_and_each_answer_stays_whole():
    """Listed beside the rule (`tuneoff recommend`, the report, a sweep's end), an answer leaves out
    what the rule says for every answer: how chance is beaten, which tests at what alpha. Each of 12
    answers of the v2 comparison repeated them (609 lines at 80 columns). `Answer.sentence`, and
    `print(rec)`, which prints no rule, keep them."""
    from tuneoff.report.answer import recommendation_blocks
    from tuneoff.results import Recommendation

    around = np.array([0.02, -0.02, 0.01, -0.01, 0.03, -0.03])
    flat = sum([_runs(m, "lm", MAJ + np.roll(around, i) + 0.002 * i, majority=MAJ)
                for i, m in enumerate(("finetune", "lora", "icl"))], [])
    blocks, answers = recommendation_blocks(to_frame(flat), budget_from())
    listed, rule = blocks[1].items, blocks[-3].text
    assert len(answers) == 2 and listed == [a.listed for a in answers]
    for a, item in zip(answers, listed):
        assert a.verdict == "not above chance" and item.startswith(a.sentence.split(";")[0])
        assert "beating it means" in a.sentence and "paired t-test" in a.sentence and "alpha 0.05" in a.sentence
        assert "beating it means" not in item and "t-test" not in item and "alpha" not in item
        assert item.endswith("(6 pairs each, Holm over 2 comparisons)")
    assert "Beating chance: the 95% interval" in rule and "t-test" in rule  # said once, beside them
    text = str(Recommendation(answers, budget_from(), blocks))
    assert all(a.sentence in text for a in answers) and "beating it means" in text
    few = recommend(to_frame(BIG[:2] + CLOSE[:2]), budget_from())[0]  # a refusal is short: listed whole
    assert few and all(a.verdict == "no recommendation" and a.listed == a.sentence and "run(s)" in a.sentence
                       for a in few)


def test_records_without_a_majority_baseline_are_not_checked_against_one():
    recs = copy.deepcopy(GOOD + SWING)
    for r in recs:
        for m in r["metrics"].values():
            del m["majority"]
    a, _ = _answer(recs)
    assert a.candidates["beats_chance"].all() and a.candidates["baseline"].isna().all()
    assert "Not shown to beat chance" not in a.sentence


def test_above_chance_is_the_lower_end_of_a_t_interval():
    from scipy import stats

    assert above_chance([0.1, 0.1, 0.1]) == (pytest.approx(0.1), True)  # no spread: the mean itself
    m = [0.2, -0.1, 0.05]
    lo, beats = above_chance(m)
    assert lo == pytest.approx(np.mean(m) - stats.t.ppf(0.975, 2) * np.std(m, ddof=1) / np.sqrt(3)) and not beats
    assert above_chance([0.3, 0.32, float("nan"), 0.31])[1]  # a run without a baseline is left out
    lo, beats = above_chance([0.5])
    assert np.isnan(lo) and not beats  # one run: no interval, so not shown to beat chance


@pytest.mark.parametrize("records, why", [
    (BIG[:1] + CLOSE[:1], "1 run(s); a test needs at least 5"),  # one seed
    (BIG, "only pattern · lm-135m has finished runs here"),  # one method (no budget set: nothing to fit)
])
def test_no_recommendation_without_the_evidence(records, why):
    a, _ = _answer(records)
    assert a.verdict == "no recommendation" and a.best is None and why in a.sentence


def test_nothing_fits():
    a, _ = _answer(ALL, max_memory="100MB")
    assert a.verdict == "no recommendation" and "none of the 4" in a.sentence


def test_holm_by_hand():
    # sorted p: 0.01 (x3), 0.03 (x2), 0.04 (x1) -> 0.03, 0.06, 0.06 (monotone)
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert np.isnan(holm([float("nan"), 0.2])[0]) and holm([float("nan"), 0.2])[1] == pytest.approx(0.2)


def test_budget_values_read_as_people_write_them():
    assert parse_duration("10m") == 600 and parse_duration("1h30m") == 5400 and parse_duration(90) == 90
    assert parse_memory("4GB") == 4096 and parse_memory("512MB") == 512
    assert parse_count("1M") == 1e6 and parse_count("250k") == 250e3
    for bad in ("10 parsecs", "fast"):
        with pytest.raises(BudgetError, match="unknown unit 'parsecs'; use s, m or h|90s, 10m, 1h30m"):
            parse_duration(bad)
    with pytest.raises(BudgetError, match="max_memory"):
        budget_from(max_memory="a lot")


def test_recommend_and_the_report_give_the_same_answer(tmp_path):
    folder = store_with(tmp_path, ALL)
    r = CliRunner().invoke(app, ["recommend", str(folder), "--max-train-time", "1m", "--shots", "8"],
                           env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    sections, tables = build_sections(to_frame_records(folder), n_boot=100, budget=budget_from(max_train_time="1m",
                                                                                                shots=8))
    first = sections[0]
    assert first.id == "recommendation"
    sentences = [b for b in first.blocks if hasattr(b, "items")][0].items
    assert len(sentences) == 2  # in- and out-of-domain at 8 shots
    flat = " ".join(r.output.split())
    for s in sentences:
        assert " ".join(s.split()) in flat
    assert "pattern · lm-135m" in flat and "over: " in flat
    assert [a.listed for a in tables["answers"]] == sentences
    rep = CliRunner().invoke(app, ["report", str(folder), "--max-train-time", "1m", "--shots", "8"])
    assert rep.exit_code == 0, rep.output
    md = (folder / "report.md").read_text()
    assert md.index("## Recommendation") < md.index("## Warnings") and "front_demo_8_in.png" in md


def to_frame_records(folder):
    from tuneoff.store import open_store

    return open_store(folder, must_exist=True).records()


def test_bad_budget_is_a_clear_error(tmp_path):
    folder = store_with(tmp_path, ALL)
    r = CliRunner().invoke(app, ["recommend", str(folder), "--max-memory", "lots"])
    assert r.exit_code == 2 and "max_memory" in r.output and "4GB" in r.output
    r = CliRunner().invoke(app, ["recommend", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no results" in r.output


def test_a_sweep_prints_the_answer_for_the_budget_of_its_config(toy_task, tmp_path):
    import yaml

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({
        "defaults": {"task": str(toy_task), "model": "tiny-bert", "shots": 2, "data_seed": [0, 1, 2],
                     "train": {"max_steps": 2}, "output_dir": str(tmp_path / "res"), "device": "cpu"},
        "methods": ["finetune", "head"], "recommend": {"max_trainable_params": "10k"}}))
    r = CliRunner().invoke(app, ["sweep", str(cfg)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    tail = " ".join(r.output[r.output.index("recommendation"):].split())
    assert "trainable parameters, worst run ≤ 10000" in tail
    assert "toy, 2 shots per class, in-domain (accuracy): no recommendation — only head · tiny-bert fits" in tail


def test_memory_budget_reads_the_per_run_figure_where_records_have_it():
    from tuneoff.report.frame import to_frame
    from tuneoff.report.recommend import budget_figures

    recs = _runs("lora", "enc-22m", [0.7] * 6)
    for r in recs:
        r["resources"] = {**r["resources"], "peak_memory_mb": 640.0}
    fig, names = budget_figures(to_frame(recs))
    assert names["memory"] == "peak_memory_mb" and (fig["memory"] == 640.0).all()
    fig, names = budget_figures(to_frame(_runs("lora", "enc-22m", [0.7] * 6)))  # an older store
    assert names["memory"] == "peak_rss_mb" and (fig["memory"] == 900.0).all()


def _cheap_and_best(cheap_gap: float, n: int):
    """finetune (the best mean, 300 s CPU) and a cheaper lora (20 s CPU) `cheap_gap` below it on the
    same 6 splits, each scored on eval sets of `n` examples."""
    from test_report import eval_n

    same = 0.85 + RNG.normal(0, 0.002, 6)
    best = _runs("finetune", "enc-22m", same + cheap_gap, time_s=300, wall=900)
    cheap = _runs("lora", "enc-22m", same, time_s=20, wall=25)
    return eval_n(best + cheap, n)


def test_a_cheaper_method_is_named_only_when_shown_equivalent_within_the_margin():
    from tuneoff.report.claims import decided

    # a large eval set and a small gap: TOST shows lora within ±0.02 of finetune, so it is named
    a, _ = _answer(_cheap_and_best(0.003, 10 ** 6))
    assert a.verdict == "equivalent" and decided(a) and a.equivalent == ["lora · enc-22m"]
    assert a.cheapest == "lora · enc-22m" and a.best == "finetune · enc-22m"
    assert "Cheapest of these that beats chance, by CPU time" in a.sentence and "20 s CPU (25 s wall)" in a.sentence
    status = {r[0].text: r[-1].text for r in answer_table(a).rows}
    assert status["lora · enc-22m"].startswith("equivalent within ±0.02") and status["lora · enc-22m"].endswith(
        ", cheapest")
    # the same gap on 200 eval examples: nothing shows them equal, so lora is not named; it is listed
    # with how far it trails finetune and that difference's interval
    a, _ = _answer(_cheap_and_best(0.003, 200))
    assert a.verdict == "not separated" and a.cheapest is None and not decided(a)
    c = a.candidates.set_index("candidate").loc["lora · enc-22m"]
    assert c["claim"] == "not separated" and c["trails"].startswith(f"trails by {c['diff']:.3f} (95% interval ")
    lo, hi = (float(x) for x in c["trails"].removesuffix(")").split("interval ")[1].split(" to "))
    assert lo < c["diff"] < hi and lo < 0 < hi  # not separated: the interval holds 0
    assert f"lora · enc-22m {c['trails']}" in a.sentence and "no cheapest is named" in a.sentence
    assert "Cheapest" not in a.sentence and "tied" not in a.sentence
    status = {r[0].text: r[-1].text for r in answer_table(a).rows}
    assert status["lora · enc-22m"] == f"not separated, {c['trails']}"


def test_trails_reads_the_widest_interval_of_the_test():
    from tuneoff.report.claims import Rule, compare, diff_interval, eval_variance, judge, trails

    a = 0.8 + RNG.normal(0, 0.02, 6)
    b = a - 0.01 + RNG.normal(0, 0.02, 6)
    v = eval_variance("accuracy", 0.8, 200)
    c = judge([compare(a, b, [v] * 6, [v] * 6)], Rule())[0]
    lo, hi = diff_interval(c)
    for end_lo, end_hi in (c.ci, c.ci_split):
        assert lo <= end_lo and hi >= end_hi
    assert trails(c) == f"trails by {c.diff:.3f} (95% interval {lo:+.3f} to {hi:+.3f})"
    assert np.isnan(diff_interval(compare(a[:3], b[:3]))[0])  # too few pairs: no test, no interval


def test_the_budget_reads_the_figure_the_leaderboard_and_the_cost_plot_show():
    from tuneoff.report.frame import METHOD_TIME, runs
    from tuneoff.report.tables import _cost_by_variant

    recs = copy.deepcopy(BIG + CLOSE + SMALL)
    for i, r in enumerate(recs):  # set-up and selection CPU time count too; wall time is 3x (a busy machine)
        r["resources"].update(setup_cpu_s=1.0, selection_cpu_s=5.0 + i, train_time_s=3 * r["resources"]["train_cpu_s"])
    frame = to_frame(recs)
    a = {(x.shots, x.domain): x for x in recommend(frame)[0]}[(8, "in")]
    board = _cost_by_variant(runs(frame))["time"]
    c = a.candidates.set_index("variant")
    for variant, t in board.items():
        assert c.loc[variant, "cpu_time"] == pytest.approx(t)  # the same figure, the mean run
    assert METHOD_TIME[0] == "method_cpu_s"
    assert c.loc["lora", "wall_time"] == pytest.approx(15.0)  # shown beside (3 x 5 s of training), never budgeted
    a, _ = _answer(recs, max_train_cpu=float(c.loc["finetune", "cpu_time"]) - 0.5)
    assert not a.candidates.set_index("variant").loc["finetune", "fits"]
