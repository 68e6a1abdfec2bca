"""The peft methods (lora, ia3, prompt-tuning, prefix-tuning) on tiny random BERT and Llama models:
what trains, how it is counted, that it learns, that saved adapters reload, and the clear errors."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tuneoff.config import ConfigError, load_config  # noqa: E402
from tuneoff.evaluate import predict  # noqa: E402
from tuneoff.methods import MethodError, get_method  # noqa: E402
from tuneoff.resources import count_parameters  # noqa: E402
from tuneoff.runner import evaluate_saved  # noqa: E402
from tuneoff.pipeline import Toolbox, prepare  # noqa: E402
from tuneoff.plan import run_one  # noqa: E402
from tuneoff.store import Store  # noqa: E402
from tuneoff.train import train  # noqa: E402

PEFT = ["lora", "ia3", "prompt-tuning", "prefix-tuning"]
AB = ("A", "B")
L = (0, 1)  # the tiny models have two layers


def cfg(model, method, *extra):
    return load_config(None, ["task=demo", f"model={model}", f"method={method}", "shots=8", "data_seed=0",
                              "seed=0", "device=cpu", "train.max_steps=30", "train.warmup_ratio=0", *extra])


def trainable(method) -> set[str]:
    return {n for n, p in method.model.named_parameters() if p.requires_grad}


def fit(prep, steps=None):
    c = prep.cfg.train if steps is None else prep.cfg.train.model_copy(update={"max_steps": steps})
    return train(prep.method, prep.few, c, prep.cfg.seed, Toolbox.shared().accelerator(prep.device))


def train_set_loss(prep) -> float:
    probs, _ = predict(prep.method, prep.few, 64, prep.device)
    y = np.array([ex["label"] for ex in prep.few])
    return float(-np.log(probs[np.arange(len(y)), y]).mean())


@torch.no_grad()
def logits(method, examples) -> torch.Tensor:
    method.model.eval()
    return method.class_logits(method.collate(examples))


BERT_HEAD = {"base_model.model.classifier.weight", "base_model.model.classifier.bias"}
LLAMA_HEAD = {"base_model.model.score.weight"}
EXPECTED = {
    ("tiny-bert", "lora"): BERT_HEAD | {f"base_model.model.bert.encoder.layer.{i}.attention.self.{m}.lora_{x}.default.weight"
                                        for i in L for m in ("query", "value") for x in AB},
    ("tiny-llama", "lora"): LLAMA_HEAD | {f"base_model.model.model.layers.{i}.self_attn.{m}.lora_{x}.default.weight"
                                          for i in L for m in ("q_proj", "v_proj") for x in AB},
    ("tiny-bert", "ia3"): BERT_HEAD | {f"base_model.model.bert.encoder.layer.{i}.{m}.ia3_l.default" for i in L
                                       for m in ("attention.self.key", "attention.self.value",
                                                 "attention.output.dense", "output.dense")},
    ("tiny-llama", "ia3"): LLAMA_HEAD | {f"base_model.model.model.layers.{i}.{m}.ia3_l.default" for i in L
                                         for m in ("self_attn.k_proj", "self_attn.v_proj", "mlp.down_proj")},
}
for _m in ("prompt-tuning", "prefix-tuning"):  # prompt learning: peft's base_model is the HF model itself
    EXPECTED[("tiny-bert", _m)] = {"prompt_encoder.default.embedding.weight", "base_model.classifier.weight",
                                   "base_model.classifier.bias"}
    EXPECTED[("tiny-llama", _m)] = {"prompt_encoder.default.embedding.weight", "base_model.score.weight"}


@pytest.mark.parametrize("model,method", sorted(EXPECTED))
def test_exactly_the_adapter_and_one_head_train_and_are_counted(model, method):
    base = prepare(cfg(model, "finetune")).method.model
    base_total = count_parameters(base)["params_total"]
    head_numel = sum(p.numel() for n, p in base.named_parameters() if n.split(".")[0] in ("classifier", "score"))
    m = prepare(cfg(model, method, "method.r=4") if method == "lora" else cfg(model, method)).method
    assert trainable(m) == EXPECTED[(model, method)]
    params = dict(m.model.named_parameters())
    assert not any("original_module" in n or "modules_to_save" in n for n in params)  # one head, not two
    adapter = sum(p.numel() for n, p in params.items() if p.requires_grad and ".classifier." not in n
                  and ".score." not in n)
    counts = count_parameters(m.model)
    assert counts == {"params_total": base_total + adapter, "params_trainable": adapter + head_numel}
    if (model, method) == ("tiny-bert", "lora"):  # by hand: 2 layers x {query, value} x (A 4x32 + B 32x4)
        assert adapter == 1024 and head_numel == 66


@pytest.mark.parametrize("model,method", [("tiny-bert", "lora"), ("tiny-llama", "ia3"), ("tiny-llama", "prompt-tuning")])
def test_the_counted_head_is_the_one_that_scores(model, method):
    m = prepare(cfg(model, method)).method
    with torch.no_grad():
        for n, p in m.model.named_parameters():
            if p.requires_grad and (".classifier." in n or ".score." in n):
                p.zero_()
    exs = [{"text": "good food", "label": 1}, {"text": "bad", "label": 0}]
    assert torch.equal(logits(m, exs), torch.zeros(2, 2))


@pytest.mark.parametrize("model,method,lr,steps,drop", [
    ("tiny-bert", "lora", 1e-1, 40, 0.5),
    ("tiny-llama", "lora", 1e-2, 30, 0.5),
    ("tiny-llama", "ia3", 5e-2, 30, 0.2),
    ("tiny-llama", "prompt-tuning", 1e-1, 40, 0.06),
    ("tiny-llama", "prefix-tuning", 1e-1, 40, 0.04),
])
def test_loss_falls_on_the_demo_task(model, method, lr, steps, drop):
    """Tiny random BERT's [CLS] output hardly depends on the input, so only a method that changes
    its weights can fit anything there; the frozen-backbone methods are checked on tiny-llama."""
    prep = prepare(cfg(model, method, f"train.lr={lr}", f"train.max_steps={steps}"))
    before = train_set_loss(prep)
    fit(prep)
    after = train_set_loss(prep)
    assert after < before - drop, (before, after)


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
@pytest.mark.parametrize("method", PEFT)
def test_save_then_load_into_a_fresh_method_gives_identical_logits(model, method, tmp_path):
    c = cfg(model, method, "train.lr=5e-2")
    prep = prepare(c)
    fit(prep, steps=5)
    exs = prep.evals["in_domain"][:16]
    trained = logits(prep.method, exs)
    prep.method.save(tmp_path / "weights")
    fresh = prepare(c).method
    assert not torch.allclose(logits(fresh, exs), trained)  # the file has to carry the training
    fresh.load(tmp_path / "weights")
    assert torch.equal(logits(fresh, exs), trained)


def test_saved_run_reevaluates_to_the_same_metrics(tmp_path):
    c = cfg("tiny-llama", "prompt-tuning", "train.lr=5e-2", "train.max_steps=5", "save=true",
            f"output_dir={tmp_path}", "eval.max_examples=40")
    store = Store(tmp_path)
    rec = run_one(c, store)
    assert rec["status"] == "done", rec.get("error")
    recorded, again = evaluate_saved(store.run_dir(c.run_id()))
    for name in recorded:
        assert again[name]["overall"] == recorded[name]["overall"]


def test_load_refuses_weights_of_another_configuration(tmp_path):
    prep = prepare(cfg("tiny-bert", "lora", "method.r=4"))
    prep.method.save(tmp_path / "w")
    other = prepare(cfg("tiny-bert", "lora", "method.r=8")).method
    with pytest.raises(MethodError, match="shape"):
        other.load(tmp_path / "w")
    ia3 = prepare(cfg("tiny-bert", "ia3")).method
    with pytest.raises(MethodError, match="missing"):
        ia3.load(tmp_path / "w")


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
@pytest.mark.parametrize("method", ["prompt-tuning", "prefix-tuning", "lora"])
def test_an_examples_score_does_not_depend_on_its_batch(model, method):
    """Virtual tokens on a decoder: peft gives the classifier `inputs_embeds`, and it would score
    the last position (a pad); left padding would put pads between prompt and text."""
    prep = prepare(cfg(model, method, "train.lr=5e-2"))
    fit(prep, steps=5)
    exs = [{"text": "the food was great and the staff were very kind", "label": 1},
           {"text": "bad", "label": 0}, {"text": "cold soup", "label": 0}]
    together = logits(prep.method, exs)
    alone = torch.cat([logits(prep.method, [ex]) for ex in exs])
    assert torch.allclose(together, alone, atol=1e-5), (together, alone)


def test_prompt_init_text_uses_the_runs_tokenizer():
    m = prepare(cfg("tiny-llama", "prompt-tuning", "method.num_virtual_tokens=5",
                    "method.init_text=great terrible")).method
    ids = m.tokenizer("great terrible")["input_ids"]
    assert len(ids) == 2 and m.tokenizer.unk_token_id not in ids
    emb = m.model.get_base_model().get_input_embeddings().weight
    prompt = m.model.prompt_encoder["default"].embedding.weight
    assert torch.equal(prompt, emb[[ids[0], ids[1], ids[0], ids[1], ids[0]]])


def test_lora_with_pattern_scoring_trains_only_the_adapter_through_the_lm_head(tmp_path):
    c = cfg("tiny-llama", "lora", "method.scoring=pattern", "method.r=4", "train.lr=1e-2")
    prep = prepare(c)
    m = prep.method
    assert m.model.get_base_model().get_output_embeddings() is not None  # loaded with its LM head
    assert trainable(m) == {f"base_model.model.model.layers.{i}.self_attn.{p}.lora_{x}.default.weight"
                            for i in L for p in ("q_proj", "v_proj") for x in AB}
    assert m.prompt_example(prep.few[0]).endswith("Answer:")
    before = train_set_loss(prep)
    fit(prep)
    assert train_set_loss(prep) < before - 0.3
    exs = prep.evals["in_domain"][:8]
    trained = logits(m, exs)
    m.save(tmp_path / "w")
    fresh = prepare(c).method
    fresh.load(tmp_path / "w")
    assert torch.equal(logits(fresh, exs), trained)


# -- clear errors -----------------------------------------------------------------------------


def test_target_modules_that_match_nothing_are_an_error_that_lists_the_layers():
    with pytest.raises(MethodError, match=r"'qq_proj'.*named: .*q_proj"):
        prepare(cfg("tiny-llama", "lora", "method.target_modules=[q_proj, qq_proj]"))
    with pytest.raises(MethodError, match=r"'q_proj' matches no linear layer of model type 'bert'.*query"):
        prepare(cfg("tiny-bert", "ia3", "method.target_modules=[q_proj]"))


def test_default_targets_follow_the_architecture():
    bert = prepare(cfg("tiny-bert", "lora")).method
    llama = prepare(cfg("tiny-llama", "lora")).method
    assert sorted(bert.model.peft_config["default"].target_modules) == ["query", "value"]
    assert sorted(llama.model.peft_config["default"].target_modules) == ["q_proj", "v_proj"]


def test_ia3_feedforward_modules_must_be_targets():
    with pytest.raises(MethodError, match="feedforward_modules"):
        prepare(cfg("tiny-llama", "ia3", "method.target_modules=[k_proj, v_proj]",
                    "method.feedforward_modules=[down_proj]"))


def test_virtual_tokens_beyond_the_position_table_are_an_error():
    with pytest.raises(MethodError, match="positions"):
        prepare(cfg("tiny-bert", "prefix-tuning", "train.max_length=500", "method.num_virtual_tokens=20"))


def test_lora_pattern_scoring_refuses_a_classifier_model(monkeypatch):
    Lora = get_method("lora")
    monkeypatch.setattr(Lora, "head_for", classmethod(lambda cls, options: "classifier"))
    with pytest.raises(MethodError, match="LM head"):
        prepare(cfg("tiny-llama", "lora", "method.scoring=pattern"))


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="scoring"):
        cfg("tiny-bert", "lora", "method.scoring=verbalizer")
    with pytest.raises(ConfigError, match="r"):
        cfg("tiny-bert", "lora", "method.r=0")
    with pytest.raises(ConfigError, match="unknown config key 'method.rank'"):
        cfg("tiny-bert", "lora", "method.rank=4")


@pytest.mark.parametrize("name", PEFT)
def test_registered_with_descriptions(name):
    cls = get_method(name)
    assert cls.description and "\n" not in cls.description
    for field, info in cls.Options.model_fields.items():
        assert info.description, f"{name}.{field} has no description"
