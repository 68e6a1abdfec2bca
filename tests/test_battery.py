"""One battery for every registered method: a new method is covered by registering it.

Each method runs on each tiny model through the real run path (`runner.run_record`, recorded in a
store as the driver does) with save=true. A combination in REFUSALS must fail at set-up with exactly
the MethodError given there; every other combination must run: it trains a few steps (unless it
trains nothing), scores every eval example, and its saved weights, reloaded through the
evaluate-saved path, reproduce the recorded metrics. A freshly built method must differ from the
trained one, in its parameters and in its predictions, and equal it once the weights are loaded.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tuneoff.config import load_config
from tuneoff.evaluate import eval_metrics, predict
from tuneoff.methods import get_method, list_methods
from tuneoff.runner import evaluate_saved, run_record
from tuneoff.pipeline import prepare
from tuneoff.store import Store

METHODS = [m.name for m in list_methods()]
# the two kinds of model a method meets: a masked LM with bias terms, a decoder LM without them
MODELS = {"tiny-bert": "masked LM (BERT), with biases", "tiny-llama": "decoder LM (Llama), no biases"}

# (method, model) -> the error its set-up must raise; any other combination must run
REFUSALS = {
    ("icl", "tiny-bert"): r"^MethodError: icl needs a decoder \(causal\) LM; 'tiny-bert' is a masked LM",
    ("distill", "tiny-bert"): r"^MethodError: distill needs a decoder \(causal\) LM for its in-context teacher; "
                              r"'tiny-bert' is a masked LM",
    ("bitfit", "tiny-llama"): r"^MethodError: bitfit: model type 'llama' has no bias terms outside the "
                              r"classification head",
}


def _cfg(method: str, model: str, out):
    return load_config(None, ["task=demo", f"model={model}", f"method={method}", "shots=8", "data_seed=0",
                              "seed=0", "train.max_steps=3", "train.batch_size=4", "train.lr=1e-3",
                              "eval.max_examples=12", "save=true", f"output_dir={out}"])


def _numbers(metrics: dict) -> dict[str, float]:
    """Every number of a metrics block, by its path (accuracy, brier, ece, per subset, ...)."""
    out = {}

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and not math.isnan(node):
            out[path] = float(node)
    walk(metrics, "")
    return out


def _scores(exs, probs, task) -> dict[str, float]:
    """The numbers a run records for one eval set, from these predictions."""
    return _numbers({"n": len(exs), **eval_metrics(exs, probs, task.label_names)})


def test_the_registry_holds_every_method_of_the_comparison():
    assert set(METHODS) >= {"finetune", "head", "pattern", "icl", "adaptive", "lora", "ia3", "prompt-tuning",
                            "prefix-tuning", "bitfit", "half", "distill"}


def test_the_refusal_table_names_registered_methods_and_battery_models():
    assert {m for m, _ in REFUSALS} <= set(METHODS) and {k for _, k in REFUSALS} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method(method, model, tmp_path):
    cfg = _cfg(method, model, tmp_path / "out")
    store = Store(cfg.output_dir)
    run_dir = store.run_dir(cfg.run_id())
    record = run_record(cfg, run_dir)
    refusal = REFUSALS.get((method, model))
    if refusal is not None:
        assert record["status"] == "failed" and re.search(refusal, record["error"]), record["error"]
        assert "build_method" in record["traceback"]  # refused at set-up, before any training
        return
    assert record["status"] == "done", record.get("traceback") or record["error"]
    store.put(record)  # the manifest the evaluate-saved path reads

    trains = get_method(method).trains
    res = record["resources"]
    if trains:
        assert 0 < res["params_trainable"] <= res["params_total"]
        assert res["train_steps"] == 3 and record["train"]["losses"]
        assert all(math.isfinite(x) for x in record["train"]["losses"])
    else:
        assert res["params_trainable"] == 0 and res["train_steps"] == 0
    assert set(record["metrics"]) == {"in_domain", "out_of_domain"}
    for m in record["metrics"].values():
        assert m["n"] == 12 and sum(m["overall"]["pred_dist"].values()) == pytest.approx(1.0)

    recorded, again = evaluate_saved(run_dir)  # a new process's view: config and weights from the folder
    assert recorded == record["metrics"]
    assert _numbers(again) == pytest.approx(_numbers(recorded), abs=1e-6)

    # a freshly built method: what evaluate_saved builds before it loads the weights
    fresh = prepare(cfg)
    exs = fresh.evals["in_domain"]
    before, _ = predict(fresh.method, exs, 5, fresh.device)
    assert before.shape == (12, 2) and before.sum(1) == pytest.approx([1.0] * 12, abs=1e-5)
    saved = load_file(str(run_dir / "weights" / "trainable.safetensors"))
    if not trains:  # nothing to differ in: the method as built is the method as run
        assert not saved
        assert _scores(exs, before, fresh.task) == pytest.approx(_numbers(recorded["in_domain"]), abs=1e-6)
        return
    params = dict(fresh.method.model.named_parameters())
    assert saved and set(saved) <= set(params)
    assert any(not torch.equal(t, params[n].detach().cpu()) for n, t in saved.items()), \
        "training changed none of the saved weights"
    fresh.method.load(run_dir / "weights")
    params = dict(fresh.method.model.named_parameters())
    assert all(torch.equal(t, params[n].detach().cpu()) for n, t in saved.items())
    after, _ = predict(fresh.method, exs, 5, fresh.device)
    assert np.abs(after - before).max() > 1e-6, "the trained weights predict what the fresh ones do"
    assert _scores(exs, after, fresh.task) == pytest.approx(_numbers(recorded["in_domain"]), abs=1e-6)
