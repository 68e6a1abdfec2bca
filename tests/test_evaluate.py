import math

import numpy as np
import pytest

from tuneoff.evaluate import eval_metrics, majority_baseline, scores


def test_scores_match_hand_computation():
    y = [0, 0, 0, 1, 1, 1, 1, 1]
    p = [0, 0, 1, 1, 1, 1, 0, 0]
    s = scores(y, p, 2)
    assert s["accuracy"] == pytest.approx(5 / 8)
    # confusion: tp=3 (label 1), tn=2, fp=1, fn=2
    tp, tn, fp, fn = 3, 2, 1, 2
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert s["mcc"] == pytest.approx(mcc)
    f1_pos = 2 * tp / (2 * tp + fp + fn)
    f1_neg = 2 * tn / (2 * tn + fn + fp)
    assert s["f1"] == pytest.approx((f1_pos + f1_neg) / 2)


def test_majority_baseline():
    m = majority_baseline([1, 1, 1, 0], 2)
    assert m["label"] == 1 and m["accuracy"] == 0.75 and m["mcc"] == 0.0
    assert m["f1"] == pytest.approx((0 + 2 * 3 / (2 * 3 + 1)) / 2)


def test_subsets_expose_a_model_that_always_says_entailment():
    examples = [{"label": i % 2, "heuristic": ["lexical_overlap", "subsequence"][i // 2 % 2]} for i in range(8)]
    probs = np.tile([0.9, 0.1], (8, 1))  # always label 0
    m = eval_metrics(examples, probs, ("entailment", "non-entailment"), ("heuristic",))
    assert m["overall"]["accuracy"] == 0.5
    assert m["overall"]["pred_dist"] == {"entailment": 1.0, "non-entailment": 0.0}
    assert m["subsets"]["label=entailment"]["accuracy"] == 1.0
    assert m["subsets"]["label=non-entailment"]["accuracy"] == 0.0
    assert m["subsets"]["heuristic=subsequence|label=non-entailment"] == {"n": 2, "accuracy": 0.0}
    assert m["subsets"]["heuristic=lexical_overlap"]["n"] == 4


def test_ece_and_brier_match_a_hand_computed_example():
    from tuneoff.calibration import calibration

    y = [0, 1, 1, 0]
    probs = np.array([[0.9, 0.1],    # conf 0.9 (bin 9), right
                      [0.3, 0.7],    # conf 0.7 (bin 7), right
                      [0.65, 0.35],  # conf 0.65 (bin 6), wrong
                      [0.2, 0.8]])   # conf 0.8 (bin 8), wrong
    c = calibration(y, probs)
    # |1 - .9| + |1 - .7| + |0 - .65| + |0 - .8|, each bin holding a quarter of the examples
    assert c["ece"] == pytest.approx((0.1 + 0.3 + 0.65 + 0.8) / 4, abs=1e-4)
    brier = ((0.1 ** 2 + 0.1 ** 2) + (0.3 ** 2 + 0.3 ** 2) + (0.65 ** 2 + 0.65 ** 2) + (0.8 ** 2 + 0.8 ** 2)) / 4
    assert c["brier"] == pytest.approx(brier, abs=1e-4)
    assert c["bins"]["n"] == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert c["bins"]["accuracy"][6:] == [0.0, 1.0, 0.0, 1.0]
    # two examples in one bin: |mean accuracy - mean confidence| weighted by the bin's share
    c2 = calibration([0, 0], np.array([[0.92, 0.08], [0.96, 0.04]]))
    assert c2["ece"] == pytest.approx(abs(1.0 - 0.94), abs=1e-4) and c2["bins"]["n"][9] == 2
    assert calibration([0], np.array([[1.0, 0.0]]))["bins"]["n"][9] == 1  # confidence 1 is in the last bin


def test_eval_metrics_record_calibration():
    examples = [{"label": 0}, {"label": 1}]
    m = eval_metrics(examples, np.array([[0.6, 0.4], [0.6, 0.4]]), ("a", "b"))
    assert m["overall"]["ece"] == pytest.approx(abs(0.5 - 0.6), abs=1e-4)
    assert m["overall"]["brier"] == pytest.approx(0.52, abs=1e-4)
    assert sum(m["overall"]["reliability"]["n"]) == 2


def test_pooled_bins_weight_by_examples():
    from tuneoff.calibration import calibration, pool_bins

    a = calibration([0, 0, 0], np.tile([0.95, 0.05], (3, 1)))["bins"]
    b = calibration([1], np.array([[0.91, 0.09]]))["bins"]
    pooled = pool_bins([a, b])
    assert pooled["n"][9] == 4
    assert pooled["accuracy"][9] == pytest.approx(3 / 4)
    assert pooled["confidence"][9] == pytest.approx((3 * 0.95 + 0.91) / 4, abs=1e-4)


def test_the_metrics_are_named_in_one_place():
    from tuneoff import metrics
    from tuneoff.report.frame import row_columns
    from tuneoff.tasks import get_task

    assert metrics.label_metric_names() == ("accuracy", "mcc", "f1") == get_task("demo").metrics
    assert metrics.prob_metric_names() == ("ece", "brier")
    assert metrics.all_metric_names() == tuple(metrics.METRIC_REGISTRY)
    assert {"accuracy", "mcc", "f1", "ece", "brier"} <= set(row_columns())
    assert get_task("cola").main_metric in metrics.METRIC_REGISTRY
    got = scores([0, 1, 1, 0], [0, 1, 0, 0], 2)
    assert set(got) == {"n", *metrics.label_metric_names()} and got["accuracy"] == 0.75


def test_each_metric_knows_its_direction_and_the_registry_checks_names():
    from tuneoff import metrics

    assert [metrics.direction(n) for n in metrics.all_metric_names()] == [1, 1, 1, -1, -1]
    assert metrics.better("accuracy", 0.8, 0.7) and metrics.better("ece", 0.05, 0.1)
    assert not metrics.better("brier", 0.3, 0.2)
    assert metrics.not_better("ece", 0.2, 0.2) and metrics.not_better("accuracy", 0.5, 0.5)
    assert not metrics.not_better("ece", 0.1, 0.2)
    with pytest.raises(KeyError, match="unknown metric 'auc'; registered: accuracy, mcc, f1, ece, brier"):
        metrics.get_metric("auc")
    with pytest.raises(ValueError, match="already registered"):
        metrics.register_metric(metrics.get_metric("accuracy"))
    for bad in ("Accuracy", "n", "pred_dist", "with space"):
        with pytest.raises(ValueError, match="must be lower-case"):
            metrics.register_metric(metrics.Metric(bad, len, True, "labels", "x"))


def test_the_record_layout_is_unchanged():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1], 40)
    examples = [{"label": int(i % 2), "h": "ab"[i % 3 == 0]} for i in range(40)]
    got = eval_metrics(examples, probs, ("neg", "pos"), ("h",))
    assert list(got["overall"]) == ["n", "accuracy", "mcc", "f1", "pred_dist", "ece", "brier", "reliability"]
    assert list(got["majority"]) == ["label", "n", "accuracy", "mcc", "f1"]
    assert list(got["subsets"]["h=a"]) == ["n", "accuracy", "mcc", "f1"]
