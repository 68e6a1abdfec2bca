"""The linear probe computes the frozen backbone's features once and equals the uncached probe."""
import random

import pytest
import torch

from tests.conftest import write_jsonl
from tuneoff.config import load_config
from tuneoff.evaluate import predict
from tuneoff.pipeline import Toolbox, prepare
from tuneoff.train import train


@pytest.fixture
def ragged_task(tmp_path):
    """Inputs of different lengths, so every batch is padded."""
    rng = random.Random(1)
    words = ["cake", "soup", "film", "very", "quite", "the", "a", "room", "and", "so"]

    def rows(n, offset):
        return [{"idx": offset + i, "label": i % 2,
                 "text": " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
                 + (" good" if i % 2 else " bad")} for i in range(n)]
    write_jsonl(tmp_path / "train.jsonl", rows(40, 0))
    write_jsonl(tmp_path / "test.jsonl", rows(20, 100))
    y = tmp_path / "ragged.yaml"
    y.write_text("name: ragged\ntext_fields: [text]\nlabel_names: [negative, positive]\ntrain: train.jsonl\n"
                 "eval:\n  - {name: test, path: test.jsonl}\n"
                 "patterns:\n  simple: {template: '{text} It was', verbalizer: {negative: ' bad', positive: ' good'}}\n")
    return y


def _probe(task, tmp_path, model, cached: bool):
    cfg = load_config(None, [f"task={task}", f"model={model}", "method=head", "shots=8", "data_seed=0", "seed=0",
                             "train.lr=1e-1", "train.max_steps=6", "train.batch_size=5", "eval.batch_size=3",
                             f"output_dir={tmp_path / 'res'}"])
    prep = prepare(cfg)
    if not cached:  # the plain probe: every step runs the backbone, in eval mode
        prep.method._feature_pass = lambda examples: 0
    stats = train(prep.method, prep.few, cfg.train, 0, Toolbox.shared().accelerator(prep.device))
    probs, _ = predict(prep.method, prep.evals["test"], 4, prep.device)
    return prep.method, stats, probs


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
def test_cached_probe_equals_the_plain_probe_with_the_backbone_in_eval_mode(ragged_task, tmp_path, model):
    method, cached, probs = _probe(ragged_task, tmp_path, model, cached=True)
    _, plain, plain_probs = _probe(ragged_task, tmp_path, model, cached=False)
    assert len(method.features) == 16 and method.sequences  # every training example, once
    assert cached.losses == pytest.approx(plain.losses, abs=1e-5)
    assert probs == pytest.approx(plain_probs, abs=1e-5)
    assert (probs.argmax(-1) == plain_probs.argmax(-1)).all()
    # the backbone ran on each training token once (forward only); the steps ran it on none
    assert cached.tokens == 0 and cached.forward_tokens > 0
    assert plain.tokens > cached.forward_tokens and plain.forward_tokens == 0


def test_the_backbone_stays_in_eval_mode_while_the_head_trains(ragged_task, tmp_path):
    cfg = load_config(None, [f"task={ragged_task}", "model=tiny-bert", "method=head", "shots=8", "data_seed=0",
                             f"output_dir={tmp_path / 'res'}"])
    method = prepare(cfg).method
    method.start_training([])
    assert method.model.training and method.model.dropout.training
    assert not any(m.training for m in method.model.base_model.modules())


def test_the_feature_pass_is_counted_as_forward_only_training_compute(ragged_task, tmp_path):
    from tuneoff.runner import run_record

    cfg = load_config(None, [f"task={ragged_task}", "model=tiny-bert", "method=head", "shots=8", "data_seed=0",
                             "train.max_steps=4", f"output_dir={tmp_path / 'res'}"])
    rec = run_record(cfg, tmp_path / "run")
    res = rec["resources"]
    assert rec["status"] == "done" and res["train_tokens"] > 0
    assert res["train_flops_approx"] == pytest.approx(2.0 * res["params_total"] * res["train_tokens"])


def test_a_trainable_weight_inside_the_backbone_turns_the_cache_off(ragged_task, tmp_path, monkeypatch):
    from tuneoff.methods.head import LinearProbe

    monkeypatch.setattr(LinearProbe, "cacheable", lambda self: False)  # e.g. a pooler missing from the checkpoint
    method, stats, _ = _probe(ragged_task, tmp_path, "tiny-bert", cached=True)
    assert not method.features and stats.forward_tokens == 0 and stats.tokens > 0
