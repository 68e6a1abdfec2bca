"""Methods that train part of the model's own weights: head, bitfit, adaptive, half; and the
generic lookup of layers, embeddings and head they rely on."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import random  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tuneoff import models  # noqa: E402
from tuneoff.config import ConfigError, load_config  # noqa: E402
from tuneoff.evaluate import predict  # noqa: E402
from tuneoff.methods import MethodError, get_method, list_methods  # noqa: E402

list_methods()  # fill the registry first: it discovers modules only while it is empty
from tuneoff.methods.half import CATEGORIES, layer_groups  # noqa: E402
from tuneoff.methods.layers import embedding_params, find_layers  # noqa: E402
from tuneoff.resources import count_parameters  # noqa: E402
from tuneoff.pipeline import Toolbox, prepare  # noqa: E402
from tuneoff.train import train  # noqa: E402

L = (0, 1)  # the tiny models have two layers


def cfg(model, method, *extra):
    return load_config(None, ["task=demo", f"model={model}", f"method={method}", "shots=8", "data_seed=0",
                              "seed=0", "device=cpu", "train.max_steps=30", "train.warmup_ratio=0", *extra])


def names(model) -> set[str]:
    return {n for n, _ in model.named_parameters()}


def trainable(method) -> set[str]:
    return {n for n, p in method.model.named_parameters() if p.requires_grad}


def train_set_loss(prep) -> float:
    probs, _ = predict(prep.method, prep.few, 64, prep.device)
    y = np.array([ex["label"] for ex in prep.few])
    return float(-np.log(probs[np.arange(len(y)), y]).mean())


def fit(prep, steps=None):
    c = prep.cfg.train if steps is None else prep.cfg.train.model_copy(update={"max_steps": steps})
    return train(prep.method, prep.few, c, prep.cfg.seed, Toolbox.shared().accelerator(prep.device))


def bert_layer(i):
    return {f"bert.encoder.layer.{i}.{m}.{w}" for m in ("attention.self.query", "attention.self.key",
                                                        "attention.self.value", "attention.output.dense",
                                                        "attention.output.LayerNorm", "intermediate.dense",
                                                        "output.dense", "output.LayerNorm") for w in ("weight", "bias")}


def llama_layer(i):
    return {f"model.layers.{i}.{m}.weight" for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                     "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                                     "mlp.down_proj", "input_layernorm", "post_attention_layernorm")}


BERT_EMB = {f"bert.embeddings.{m}" for m in ("word_embeddings.weight", "position_embeddings.weight",
                                             "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")}
BERT_HEAD = {"classifier.weight", "classifier.bias"}
BERT_POOLER = {"bert.pooler.dense.weight", "bert.pooler.dense.bias"}
LLAMA_EMB = {"model.embed_tokens.weight"}
LLAMA_HEAD = {"score.weight"}


# -- finding layers, embeddings, head -------------------------------------------------------------


def test_the_layer_lists_and_embeddings_of_the_tiny_models():
    bert = models.load("tiny-bert", "classifier", 2, ["a b"]).model
    llama = models.load("tiny-llama", "classifier", 2, ["a b"]).model
    assert find_layers(bert)[0] == "bert.encoder.layer" and len(find_layers(bert)[1]) == 2
    assert find_layers(llama)[0] == "model.layers"
    assert set(embedding_params(bert)) == BERT_EMB
    assert set(embedding_params(llama)) == LLAMA_EMB
    # the parameter sets used below are the whole model
    assert names(bert) == BERT_EMB | bert_layer(0) | bert_layer(1) | BERT_POOLER | BERT_HEAD
    assert names(llama) == LLAMA_EMB | llama_layer(0) | llama_layer(1) | {"model.norm.weight"} | LLAMA_HEAD


def test_gpt2_style_position_table_counts_as_embedding():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    m = GPT2ForSequenceClassification(GPT2Config(n_layer=3, n_embd=16, n_head=2, vocab_size=20, n_positions=32))
    assert find_layers(m)[0] == "transformer.h"
    assert set(embedding_params(m)) == {"transformer.wte.weight", "transformer.wpe.weight"}


class Block(nn.Module):
    def __init__(self, experts=0):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.experts = nn.ModuleList(nn.Linear(4, 4) for _ in range(experts))


def test_generic_search_takes_the_outermost_longest_stack_and_refuses_ambiguity():
    toy = nn.Module()
    toy.trunk = nn.Module()
    toy.trunk.blocks_of_mine = nn.ModuleList(Block(experts=8) for _ in range(3))  # 3 layers, 8 experts each
    toy.side = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])  # mixed types: not a stack
    assert find_layers(toy)[0] == "trunk.blocks_of_mine"
    toy.other = nn.ModuleList(Block() for _ in range(3))
    with pytest.raises(MethodError, match="several layer stacks"):
        find_layers(toy)


# -- head and bitfit ---------------------------------------------------------------------------


@pytest.mark.parametrize("model,expected", [("tiny-bert", BERT_HEAD), ("tiny-llama", LLAMA_HEAD)])
def test_linear_probe_trains_only_the_head(model, expected):
    m = prepare(cfg(model, "head")).method
    assert trainable(m) == expected
    counts = count_parameters(m.model)
    assert counts["params_trainable"] == sum(p.numel() for n, p in m.model.named_parameters() if n in expected)
    assert counts["params_total"] == sum(p.numel() for p in m.model.parameters())


def test_head_includes_weights_the_loader_initialised(monkeypatch):
    real = models.load

    def load(*a, **kw):
        loaded = real(*a, **kw)
        loaded.info["newly_initialised"] = ["bert.pooler.dense.weight", "bert.pooler.dense.bias"]
        return loaded

    monkeypatch.setattr(models, "load", load)
    assert trainable(prepare(cfg("tiny-bert", "head")).method) == BERT_HEAD | BERT_POOLER


def test_bitfit_trains_biases_and_head():
    m = prepare(cfg("tiny-bert", "bitfit")).method
    biases = {n for n in names(m.model) if n.endswith(".bias")}
    assert len(biases) == 2 * 8 + 1 + 1 + 1  # 8 per layer, embedding LayerNorm, pooler, classifier
    assert trainable(m) == biases | BERT_HEAD


def test_bitfit_without_biases_is_a_clear_error():
    with pytest.raises(MethodError, match="'llama' has no bias terms"):
        prepare(cfg("tiny-llama", "bitfit"))


def test_bitfit_on_a_llama_with_biases_learns(monkeypatch):
    """A decoder is fine if it has biases: tiny-llama built with attention and MLP biases."""
    real = models.tiny_config

    def with_biases(kind, vocab_size, pad_id):
        c = real(kind, vocab_size, pad_id)
        c.attention_bias = c.mlp_bias = True
        return c

    monkeypatch.setattr(models, "tiny_config", with_biases)
    prep = prepare(cfg("tiny-llama", "bitfit", "train.lr=3e-3"))  # Adam moves a bias by ~lr a step: keep it small
    assert trainable(prep.method) == LLAMA_HEAD | {
        f"model.layers.{i}.{m}.bias" for i in L
        for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    frozen = {n: p.detach().clone() for n, p in prep.method.model.named_parameters() if not p.requires_grad}
    biases = {n: p.detach().clone() for n, p in prep.method.model.named_parameters() if n.endswith(".bias")}
    before = train_set_loss(prep)
    fit(prep)
    assert train_set_loss(prep) < before - 0.02
    now = dict(prep.method.model.named_parameters())
    assert all(torch.equal(now[n], t) for n, t in frozen.items())  # nothing frozen moved
    assert all(not torch.equal(now[n], t) for n, t in biases.items())  # every bias did


# -- adaptive --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model,emb,layer,top,head", [
    ("tiny-bert", BERT_EMB, bert_layer, BERT_POOLER, BERT_HEAD),
    ("tiny-llama", LLAMA_EMB, llama_layer, {"model.norm.weight"}, LLAMA_HEAD),
])
def test_adaptive_freezes_embeddings_and_lowest_layers_and_decays_lr(model, emb, layer, top, head):
    m = prepare(cfg(model, "adaptive", "method.freeze_layers=1", "method.lr_decay=0.5")).method
    assert trainable(m) == layer(1) | top | head
    lr_of, wd_of = group_settings(m, lr=1.0)
    assert set(lr_of) == trainable(m)
    assert lr_of == {n: 1.0 for n in layer(1) | top | head}  # top layer and above: full lr
    # everything trains, decay 0.5 over 2 layers: top 1, next 0.5, embeddings 0.25
    m = prepare(cfg(model, "adaptive", "method.freeze_layers=0", "method.freeze_embeddings=false",
                    "method.lr_decay=0.5")).method
    lr_of, wd_of = group_settings(m, lr=2e-3)
    expected = {**{n: 2e-3 for n in layer(1) | top | head}, **{n: 1e-3 for n in layer(0)},
                **{n: 5e-4 for n in emb}}
    assert lr_of == pytest.approx(expected)
    no_decay = ("bias", "LayerNorm", "norm.weight", "layernorm")
    assert wd_of == {n: 0.0 if any(k in n for k in no_decay) else 0.1 for n in expected}


def group_settings(method, lr):
    """name -> lr and name -> weight decay of the AdamW group each trainable parameter is in (once)."""
    groups = method.param_groups(lr=lr, weight_decay=0.1)
    by_id = {id(p): n for n, p in method.model.named_parameters()}
    listed = [by_id[id(p)] for g in groups for p in g["params"]]
    assert len(listed) == len(set(listed))
    return ({by_id[id(p)]: g["lr"] for g in groups for p in g["params"]},
            {by_id[id(p)]: g["weight_decay"] for g in groups for p in g["params"]})


def test_adaptive_group_lrs_reach_the_optimizer():
    prep = prepare(cfg("tiny-llama", "adaptive", "method.lr_decay=0.5", "train.lr=1e-2", "train.max_steps=3"))
    seen = []
    real_step = torch.optim.AdamW.step

    def step(self, *a, **kw):
        seen.append(sorted({round(g["lr"], 10) for g in self.param_groups}))
        return real_step(self, *a, **kw)

    torch.optim.AdamW.step = step
    try:
        fit(prep)
    finally:
        torch.optim.AdamW.step = real_step
    assert seen[0] == [5e-3, 1e-2]  # layer 0 at lr·0.5; layer 1, final norm, head at lr (no warm-up)


def test_adaptive_freeze_fraction_rounds_down():
    assert prepare(cfg("tiny-llama", "adaptive", "method.freeze_layers=0.5")).method.frozen_layers == 1
    assert prepare(cfg("tiny-llama", "adaptive", "method.freeze_layers=0.4")).method.frozen_layers == 0


def test_adaptive_option_errors():
    with pytest.raises(MethodError, match="freezes 2 of the 2 layers"):
        prepare(cfg("tiny-bert", "adaptive", "method.freeze_layers=2"))
    with pytest.raises(MethodError, match="re-initialise frozen layers"):
        prepare(cfg("tiny-bert", "adaptive", "method.freeze_layers=1", "method.reinit_layers=2"))
    with pytest.raises(ConfigError, match="fraction"):
        cfg("tiny-bert", "adaptive", "method.freeze_layers=1.5")
    with pytest.raises(ConfigError, match="lr_decay"):
        cfg("tiny-bert", "adaptive", "method.lr_decay=1.5")


def flag_as_loaded(monkeypatch):
    """Loaded checkpoints carry transformers' `_is_hf_initialized` flag, which makes `_init_weights` a no-op."""
    real = models.load

    def load(*a, **kw):
        loaded = real(*a, **kw)
        for p in loaded.model.parameters():
            p._is_hf_initialized = True
        return loaded

    monkeypatch.setattr(models, "load", load)


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
def test_reinit_renews_exactly_the_top_layers_even_on_loaded_weights(model, monkeypatch):
    flag_as_loaded(monkeypatch)
    plain = dict(prepare(cfg(model, "adaptive")).method.model.named_parameters())
    m = prepare(cfg(model, "adaptive", "method.reinit_layers=1")).method
    layers_name, _ = find_layers(m.model)
    for n, p in m.model.named_parameters():
        in_top = n.startswith(f"{layers_name}.1.")
        if in_top and p.dim() == 2:
            assert not torch.equal(p, plain[n]), n
            assert p.std().item() == pytest.approx(m.model.config.initializer_range, rel=0.3)
        elif not in_top:
            assert torch.equal(p, plain[n]), n
    again = dict(prepare(cfg(model, "adaptive", "method.reinit_layers=1")).method.model.named_parameters())
    assert all(torch.equal(p, again[n]) for n, p in m.model.named_parameters())  # seeded


def test_reinit_leaves_the_global_rng_alone():
    m = prepare(cfg("tiny-bert", "adaptive")).method
    state = torch.get_rng_state()
    m.reinit([1])
    assert torch.equal(torch.get_rng_state(), state)


# -- half ------------------------------------------------------------------------------------------


HALF_GOLDEN = {  # tiny-llama, seed 0: catches a silent change of the draw (a run's id does not)
    "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.up_proj",
    "model.layers.0.mlp.down_proj", "model.layers.0.post_attention_layernorm",
    "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj", "model.layers.1.mlp.gate_proj",
    "model.layers.1.mlp.down_proj", "model.layers.1.post_attention_layernorm"}


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
def test_half_freezes_half_of_each_category_in_each_layer(model):
    m = prepare(cfg(model, "half")).method
    frozen_params = {f"{g}.{n}" for g in m.frozen_groups
                     for n, _ in m.model.get_submodule(g).named_parameters(recurse=False)}
    assert trainable(m) == names(m.model) - frozen_params  # embeddings, final norm/pooler and head train
    layers_name, layers = find_layers(m.model)
    for i, layer in enumerate(layers):
        for cat in CATEGORIES:
            groups = [f"{layers_name}.{i}.{g}" for g in layer_groups(layer)[cat]]
            k = sum(g in m.frozen_groups for g in groups)
            assert k in (len(groups) // 2, (len(groups) + 1) // 2), (i, cat, k)
    if model == "tiny-llama":
        assert set(m.frozen_groups) == HALF_GOLDEN


def test_half_seed_defaults_to_the_run_seed_and_uses_a_local_rng():
    def frozen(*extra):
        return prepare(cfg("tiny-llama", "half", *extra)).method.frozen_groups

    state = random.getstate()
    a, b = frozen("seed=0"), frozen("seed=1")
    assert random.getstate() == state
    assert a != b
    assert frozen("seed=0", "method.half_seed=1") == b
    assert frozen("seed=5", "method.half_seed=0") == a


def test_half_can_freeze_the_embeddings():
    m = prepare(cfg("tiny-bert", "half", "method.freeze_embeddings=true")).method
    assert not trainable(m) & BERT_EMB and BERT_HEAD <= trainable(m)


# -- every method: learns, saves and loads ---------------------------------------------------------


@pytest.mark.parametrize("model,method,extra,drop", [
    ("tiny-llama", "head", ["train.lr=5e-2"], 0.15),
    ("tiny-bert", "adaptive", ["train.lr=1e-2", "method.lr_decay=0.9", "train.max_steps=40"], 0.2),
    ("tiny-llama", "adaptive", ["train.lr=1e-2", "method.freeze_layers=1"], 0.3),
    ("tiny-bert", "half", ["train.lr=1e-2", "train.max_steps=40"], 0.2),
    ("tiny-llama", "half", ["train.lr=1e-2"], 0.3),
])
def test_loss_falls_on_the_demo_task(model, method, extra, drop):
    """Tiny random BERT's [CLS] output hardly depends on the input, so the head alone (and bitfit,
    above on a Llama with biases) is checked on tiny-llama."""
    prep = prepare(cfg(model, method, *extra))
    before = train_set_loss(prep)
    fit(prep)
    after = train_set_loss(prep)
    assert after < before - drop, (before, after)


@pytest.mark.parametrize("model,method,extra", [
    ("tiny-bert", "head", []), ("tiny-bert", "bitfit", []), ("tiny-llama", "half", []),
    ("tiny-bert", "adaptive", ["method.reinit_layers=1", "method.freeze_layers=1"]),
])
def test_save_then_load_into_a_fresh_method_gives_identical_logits(model, method, extra, tmp_path):
    c = cfg(model, method, "train.lr=5e-2", *extra)
    prep = prepare(c)
    fit(prep, steps=5)
    exs = prep.evals["in_domain"][:16]

    @torch.no_grad()
    def logits(m):
        m.model.eval()
        return m.class_logits(m.collate(exs))

    trained = logits(prep.method)
    prep.method.save(tmp_path / "w")
    fresh = prepare(c).method
    assert not torch.allclose(logits(fresh), trained)
    fresh.load(tmp_path / "w")
    assert torch.equal(logits(fresh), trained)
    prepare(cfg(model, "finetune")).method.save(tmp_path / "all")  # a file of other weights is refused
    with pytest.raises(MethodError, match="do not fit"):
        fresh.load(tmp_path / "all")


@pytest.mark.parametrize("name", ["head", "bitfit", "adaptive", "half"])
def test_registered_with_descriptions(name):
    cls = get_method(name)
    assert cls.description and "\n" not in cls.description
    for field, info in cls.Options.model_fields.items():
        assert info.description, f"{name}.{field} has no description"
