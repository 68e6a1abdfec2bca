"""One battery for every registered method: a new method is covered by registering it.

On each tiny model a method either refuses it with a clear MethodError at set-up, or it trains a
few steps in the shared loop, predicts a distribution over the task's labels for every example,
counts what trains, and reloads what it saved into a fresh run with identical scores.
"""
import pytest
import torch

from tuneoff.config import load_config
from tuneoff.evaluate import predict
from tuneoff.methods import MethodError, list_methods
from tuneoff.runner import accelerator_for, prepare
from tuneoff.resources import count_parameters
from tuneoff.train import train

METHODS = [m.name for m in list_methods()]
MODELS = ["tiny-bert", "tiny-llama"]


def _prepare(method, model):
    cfg = load_config(None, ["task=demo", f"model={model}", f"method={method}", "shots=8", "data_seed=0",
                             "seed=0", "train.max_steps=3", "train.batch_size=4", "train.lr=1e-3",
                             "eval.max_examples=12"])
    return prepare(cfg)


def test_the_registry_holds_every_method_of_the_comparison():
    assert set(METHODS) >= {"finetune", "head", "pattern", "icl", "adaptive", "lora", "ia3", "prompt-tuning",
                            "prefix-tuning", "bitfit", "half", "distill"}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method(method, model, tmp_path):
    try:
        prep = _prepare(method, model)
    except MethodError as e:
        assert len(str(e)) > 20 and (model.split("-")[1] in str(e).lower() or "bias" in str(e).lower()
                                     or "decoder" in str(e).lower() or "encoder" in str(e).lower()), str(e)
        return
    m = prep.method
    params = count_parameters(m.model)
    if m.trains:
        assert 0 < params["params_trainable"] <= params["params_total"]
        stats = train(m, m.train_examples(prep.few), prep.cfg.train, 0, accelerator_for(prep.device))
        assert stats.steps == 3 and all(torch.isfinite(torch.tensor(stats.losses)))
    exs = prep.evals["in_domain"]
    probs, _ = predict(m, exs, 5, prep.device)
    assert probs.shape == (len(exs), 2)
    assert probs.sum(1) == pytest.approx([1.0] * len(exs), abs=1e-5)
    if not m.trains:
        return
    m.save(tmp_path / "w")
    fresh = _prepare(method, model)
    fresh.method.load(tmp_path / "w")
    again, _ = predict(fresh.method, exs, 5, fresh.device)
    assert again == pytest.approx(probs, abs=1e-6)
