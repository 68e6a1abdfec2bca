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
