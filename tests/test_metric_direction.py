"""A metric where lower is better: registered like any other, it is never ranked as if higher were.
Synthetic records (the schema of tuneoff/record.py) whose main metric is an error rate; no models."""
import numpy as np
import pytest

from test_report import eval_n, make_record
from tuneoff.metrics import Metric, direction, register_metric, scores, unregister_metric
from tuneoff.report.build import build_sections
from tuneoff.report.frame import aggregate, to_frame
from tuneoff.report.recommend import recommend
from tuneoff.report.stats import paired_tests, pareto_front
from tuneoff.report.tables import variant_order
from tuneoff.summary import summarise

ERR = "error_rate"
RNG = np.random.default_rng(0)


@pytest.fixture
def error_rate():
    """error_rate = 1 - accuracy, from the predicted labels, lower is better; removed afterwards."""
    register_metric(Metric(ERR, lambda y_true, y_pred, labels: float(np.mean(y_true != y_pred)), False, "labels",
                           "share of examples whose predicted label is wrong"))
    yield ERR
    unregister_metric(ERR)


def _with_error_rate(rec: dict) -> dict:
    """The record as one written while error_rate was registered, with it as the task's main metric."""
    rec["main_metric"] = ERR
    for m in rec["metrics"].values():
        for s in (m["overall"], m["majority"], *m["subsets"].values()):
            s[ERR] = 1.0 - s["accuracy"]
    return rec


def _runs(method, errors, time_s, majority_error=0.5):
    recs = [make_record(method, model="m", acc=1 - float(e), ood=None, shots=8, data_seed=i,
                        majority=1 - majority_error, resources={"train_time_s": time_s, "train_cpu_s": time_s})
            for i, e in enumerate(errors)]
    return [_with_error_rate(r) for r in recs]


def _noise():
    return RNG.normal(0, 0.01, 6)


def _answer(records):
    answers, _ = recommend(to_frame(records))
    (a,) = [a for a in answers if a.domain == "in"]
    return a


def test_a_registered_lower_is_better_metric_is_computed_and_knows_its_direction(error_rate):
    assert direction(error_rate) == -1 and direction("accuracy") == 1
    assert scores([0, 1, 1, 0], [0, 1, 0, 0], 2)[error_rate] == 0.25


def test_the_best_is_the_lowest_mean_and_below_the_baseline_beats_chance(error_rate):
    low = _runs("lora", 0.10 + _noise(), time_s=120)
    high = _runs("finetune", 0.30 + _noise(), time_s=5)
    worse = _runs("icl", 0.60 + _noise(), time_s=1)  # more errors than always saying the majority label
    a = _answer(low + high + worse)
    assert a.metric == error_rate
    assert a.best == "lora · m" and a.verdict == "best" and not a.tied
    c = a.candidates.set_index("candidate")
    assert c.loc["lora · m", "mean"] == c["mean"].min()
    assert c.loc["lora · m", "beats_chance"] and c.loc["finetune · m", "beats_chance"]
    assert c.loc["lora · m", "margin_lo"] > 0.3  # baseline minus score: 0.5 - 0.1
    assert not c.loc["icl · m", "beats_chance"] and c.loc["icl · m", "margin_lo"] < 0


def test_no_recommendation_when_every_run_errs_more_than_the_baseline(error_rate):
    a = _answer(_runs("lora", 0.55 + _noise(), time_s=5) + _runs("finetune", 0.70 + _noise(), time_s=5))
    assert a.verdict == "not above chance" and a.best == "lora · m"
    assert "the baseline minus the score" in a.sentence


def test_the_cheapest_of_an_equivalence_beats_the_baseline_from_below(error_rate):
    same = 0.20 + _noise()
    a = _answer(_runs("lora", same, time_s=120) + _runs("finetune", same + RNG.normal(0, 0.03, 6), time_s=5))
    assert a.verdict == "not separated" and a.cheapest is None  # not separated is not equal
    assert "lowest mean:" in a.sentence
    close = eval_n(_runs("lora", same, time_s=120) + _runs("finetune", same + RNG.normal(0, 0.002, 6), time_s=5), 10 ** 6)
    a = _answer(close)  # a million eval examples and differences of 0.002: shown equivalent within ±0.02
    assert a.verdict == "equivalent" and a.cheapest == "finetune · m" and "equivalent within ±0.02" in a.sentence


def test_the_leaderboard_and_comparisons_put_the_lowest_first(error_rate):
    records = (_runs("lora", 0.10 + _noise(), time_s=120) + _runs("finetune", 0.30 + _noise(), time_s=5)
               + _runs("icl", 0.60 + _noise(), time_s=1))
    frame = to_frame(records)
    assert variant_order(aggregate(frame, [error_rate]), error_rate) == ["lora", "finetune", "icl"]
    sections, tables = build_sections(records, n_boot=200)
    board = next(s for s in sections if s.id == "leaderboard").blocks[0]
    assert error_rate in board.title
    assert [r[0].text for r in board.rows][:3] == ["lora", "finetune", "icl"]
    assert board.rows[0][1].bold and not board.rows[2][1].bold
    assert board.rows[2][1].cls == "below" and board.rows[0][1].cls == ""  # icl: no better than the majority
    tests = tables["paired"]
    assert tests.iloc[0]["method_a"] == "lora" and tests.iloc[0]["mean_diff"] < 0
    assert list(pareto_front([1.0, 2.0, 3.0], [0.3, 0.2, 0.25], sign=direction(error_rate))) == [0, 1]
    flagged = {r["method"]: r["flag"] for r in summarise(records) if r["eval_set"] == "in_domain"}
    assert flagged["icl"].startswith("≥ majority") and flagged["lora"] == ""


def test_paired_tests_name_the_lower_mean_a(error_rate):
    frame = to_frame(_runs("finetune", 0.30 + _noise(), time_s=5) + _runs("lora", 0.10 + _noise(), time_s=9))
    t = paired_tests(frame, n_boot=200)
    assert list(t[["method_a", "method_b"]].iloc[0]) == ["lora", "finetune"]
