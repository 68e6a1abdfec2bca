"""Bottleneck adapters on tiny random models: what trains and how it is counted, that the adapted model
starts as the pretrained one, that every adapter sits on the forward path of each architecture it
knows, seeded init, learning, save/load, pattern scoring, and the clear errors."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForSequenceClassification  # noqa: E402

from tuneoff import models  # noqa: E402
from tuneoff.config import ConfigError, load_config  # noqa: E402
from tuneoff.evaluate import predict  # noqa: E402
from tuneoff.methods import MethodError, get_method  # noqa: E402
from tuneoff.methods.adapter import SITES, AdapterOptions, add_adapters  # noqa: E402
from tuneoff.pipeline import Toolbox, prepare  # noqa: E402
from tuneoff.resources import count_parameters  # noqa: E402
from tuneoff.space import Range  # noqa: E402
from tuneoff.train import train  # noqa: E402

MODELS = ["tiny-bert", "tiny-llama"]
PLACEMENTS = {"houlsby": 2, "pfeiffer": 1}  # adapters per layer
HEADS = ("classifier", "score")


def cfg(model, *extra):
    return load_config(None, ["task=demo", f"model={model}", "method=adapter", "shots=8", "data_seed=0", "seed=0",
                              "device=cpu", "train.max_steps=30", "train.warmup_ratio=0", *extra])


def other(model, method, *extra):
    return load_config(None, ["task=demo", f"model={model}", f"method={method}", "shots=8", "data_seed=0", "seed=0",
                              "device=cpu", *extra])


def fit(prep, steps=None):
    c = prep.cfg.train if steps is None else prep.cfg.train.model_copy(update={"max_steps": steps})
    return train(prep.method, prep.few, c, prep.cfg.seed, Toolbox.shared().accelerator(prep.device))


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def logits(method, examples) -> torch.Tensor:
    method.model.eval()
    return method.class_logits(method.collate(examples))


@torch.no_grad()
def hidden_states(method, examples) -> tuple[torch.Tensor, ...]:
    method.model.eval()
    batch = method.collate(examples)
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return method.model(**inputs, output_hidden_states=True).hidden_states


def train_set_loss(prep) -> float:
    probs, _ = predict(prep.method, prep.few, 64, prep.device)
    y = np.array([ex["label"] for ex in prep.few])
    return float(-np.log(probs[np.arange(len(y)), y]).mean())


# -- what trains --------------------------------------------------------------------------------

@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("model", MODELS)
def test_the_trainable_count_is_the_adapters_shapes_plus_the_head(model, placement):
    base = prepare(other(model, "finetune")).method.model
    head = sum(p.numel() for n, p in base.named_parameters() if n.split(".")[0] in HEADS)
    m = prepare(cfg(model, f"method.placement={placement}")).method
    h, layers = m.model.config.hidden_size, m.model.config.num_hidden_layers
    b = h // 16
    per_adapter = 2 * h * b + b + h  # down and up: weights and biases
    adapters = layers * PLACEMENTS[placement] * per_adapter
    assert count_parameters(m.model) == {"params_total": count_parameters(base)["params_total"] + adapters,
                                         "params_trainable": adapters + head}
    if (model, placement) == ("tiny-bert", "houlsby"):  # by hand: 2 layers x 2 x (2*32*2 + 2 + 32) + 32*2 + 2
        assert adapters + head == 714


@pytest.mark.parametrize("model", MODELS)
def test_exactly_the_adapters_and_the_head_train_under_stable_names(model):
    m = prepare(cfg(model, "method.placement=houlsby")).method
    stack, sites = ("bert.encoder.layer", ("attention.output", "output")) if model == "tiny-bert" \
        else ("model.layers", ("self_attn", "mlp"))
    head = {"classifier.weight", "classifier.bias"} if model == "tiny-bert" else {"score.weight"}
    assert trainable(m.model) == head | {f"{stack}.{i}.{s}.adapter.{p}.{w}" for i in (0, 1) for s in sites
                                         for p in ("down", "up") for w in ("weight", "bias")}


def test_the_base_weights_stay_as_they_were():
    prep = prepare(cfg("tiny-llama", "train.lr=1e-2"))
    frozen = {n: p.detach().clone() for n, p in prep.method.model.named_parameters() if not p.requires_grad}
    fit(prep, steps=5)
    now = dict(prep.method.model.named_parameters())
    assert frozen and all(torch.equal(t, now[n]) for n, t in frozen.items())
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in now.items() if n.endswith("adapter.up.weight"))


# -- where the adapters are -----------------------------------------------------------------------

@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("model", MODELS)
def test_the_adapted_model_starts_as_the_pretrained_one(model, placement):
    """`up` starts at zero: every hidden state and the logits are the unadapted model's (same seed)."""
    exs = prepare(other(model, "finetune")).evals["in_domain"][:6]
    plain = prepare(other(model, "finetune")).method
    adapted = prepare(cfg(model, f"method.placement={placement}")).method
    assert torch.equal(logits(adapted, exs), logits(plain, exs))
    for a, p in zip(hidden_states(adapted, exs), hidden_states(plain, exs), strict=True):
        assert torch.equal(a, p)


def _tiny(kind: str) -> torch.nn.Module:
    """A random 2-layer classifier of `kind`, built from its config (no download)."""
    if kind == "gpt2":
        kw = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64)
    elif kind == "distilbert":
        kw = dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    else:
        kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        if SITES[kind] == SITES["llama"]:
            kw.update(head_dim=16, num_key_value_heads=2)
    config = AutoConfig.for_model(kind, vocab_size=60, pad_token_id=0, bos_token_id=1, eos_token_id=2, **kw)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


@pytest.mark.parametrize("kind", sorted(SITES))
def test_every_adapter_is_on_the_forward_path_once_in_each_known_architecture(kind):
    model = _tiny(kind)
    ids = torch.randint(3, 60, (2, 7))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        names = add_adapters(model, AdapterOptions(placement="houlsby"), seed=0)
        assert len(names) == 4 and torch.equal(model(input_ids=ids).logits, before)
        calls = {n: 0 for n in names}
        for n in names:
            model.get_submodule(n).register_forward_hook(lambda *_, n=n: calls.__setitem__(n, calls[n] + 1))
        model(input_ids=ids)
        assert set(calls.values()) == {1}, calls  # each adapter runs once per forward pass
        for n in names:  # ... and what it returns is what the model goes on with
            bias = model.get_submodule(n).up.bias
            bias.copy_(torch.linspace(-1, 1, len(bias)))  # not constant: a layer norm would remove it
            assert not torch.allclose(model(input_ids=ids).logits, before), n
            bias.zero_()


def test_an_unknown_architecture_is_a_method_error_naming_its_model_type():
    config = AutoConfig.for_model("opt", vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  ffn_dim=64, word_embed_proj_dim=32, pad_token_id=0)
    model = AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(MethodError, match=r"no known place for adapters in model type 'opt' \(known: bert, "):
        add_adapters(model, AdapterOptions(), seed=0)


def test_layers_chooses_where_adapters_go_and_out_of_range_is_an_error():
    m = prepare(cfg("tiny-llama", "method.layers=[-1]")).method
    assert m.adapters == ["model.layers.1.mlp.adapter"]
    with pytest.raises(MethodError, match=r"method.layers \[2\] out of range; the model has 2 layers"):
        prepare(cfg("tiny-llama", "method.layers=[0,2]"))


@pytest.mark.parametrize("extra,act", [((), "ReLU"), (("method.placement=houlsby",), "GELU"),
                                       (("method.placement=houlsby", "method.non_linearity=silu"), "SiLU")])
def test_the_non_linearity_defaults_to_the_placements_paper(extra, act):
    m = prepare(cfg("tiny-llama", *extra)).method
    assert {type(m.model.get_submodule(n).act).__name__ for n in m.adapters} == {act}


# -- initialisation --------------------------------------------------------------------------------

def _downs(seed: int, *extra) -> dict[str, torch.Tensor]:
    m = prepare(cfg("tiny-llama", "method.placement=houlsby", *extra)
                .model_copy(update={"seed": seed})).method
    return {n: p.detach().clone() for n, p in m.model.named_parameters() if n.endswith("down.weight")}


def test_the_init_depends_on_the_training_seed_alone():
    first, again, other_seed = _downs(0), _downs(0), _downs(1)
    assert first.keys() == other_seed.keys() and len(first) == 4
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert all(not torch.equal(first[n], other_seed[n]) for n in first)
    tensors = list(first.values())  # drawn one after another: no two adapters start alike
    assert all(not torch.equal(tensors[0], t) for t in tensors[1:])
    assert all(t.abs().max() <= 0.02 and t.std() > 0.005 for t in tensors)  # truncated normal, std 0.01


def test_inserting_adapters_leaves_the_global_random_state_alone():
    model = _tiny("llama")
    state = torch.random.get_rng_state()
    add_adapters(model, AdapterOptions(), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)


# -- training, saving --------------------------------------------------------------------------------

@pytest.mark.parametrize("placement", PLACEMENTS)
def test_the_adapters_learn_beyond_what_the_head_alone_learns(placement, monkeypatch):
    """An adapter reads a sublayer's output. A random model initialised with std 0.02 gives outputs of
    std ~0.001 there (no signal to read); with std 0.2 they have a pretrained model's scale."""
    tiny_config = models.tiny_config

    def wider(*args):
        config = tiny_config(*args)
        config.initializer_range = 0.2
        return config
    monkeypatch.setattr(models, "tiny_config", wider)
    probe = prepare(other("tiny-llama", "head", "train.lr=1e-2", "train.max_steps=30", "train.warmup_ratio=0"))
    fit(probe)
    prep = prepare(cfg("tiny-llama", f"method.placement={placement}", "train.lr=1e-2"))
    before = train_set_loss(prep)
    fit(prep)
    after = train_set_loss(prep)
    assert after < before - 0.5 and after < train_set_loss(probe) - 0.15, (before, after, train_set_loss(probe))


@pytest.mark.parametrize("model", MODELS)
def test_save_then_load_into_a_fresh_method_gives_identical_logits(model, tmp_path):
    c = cfg(model, "method.placement=houlsby", "train.lr=5e-2")
    prep = prepare(c)
    fit(prep, steps=5)
    exs = prep.evals["in_domain"][:16]
    trained = logits(prep.method, exs)
    prep.method.save(tmp_path / "weights")
    fresh = prepare(c).method
    assert not torch.allclose(logits(fresh, exs), trained)
    fresh.load(tmp_path / "weights")
    assert torch.equal(logits(fresh, exs), trained)


def test_load_refuses_weights_of_another_configuration(tmp_path):
    prepare(cfg("tiny-bert", "method.placement=houlsby")).method.save(tmp_path / "w")
    with pytest.raises(MethodError, match="unexpected"):
        prepare(cfg("tiny-bert")).method.load(tmp_path / "w")
    with pytest.raises(MethodError, match="shape"):
        prepare(cfg("tiny-bert", "method.placement=houlsby", "method.reduction_factor=8")).method.load(tmp_path / "w")


# -- pattern scoring ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_pattern_scoring_trains_only_the_adapters_and_starts_as_the_pattern_method(model, tmp_path):
    c = cfg(model, "method.scoring=pattern", "train.lr=5e-2")
    prep = prepare(c)
    m, pattern = prep.method, prepare(other(model, "pattern")).method
    assert get_method("adapter").head_for(m.options) == "lm" and c.uses_pattern
    assert trainable(m.model) == {f"{n}.{p}.{w}" for n in m.adapters for p in ("down", "up") for w in ("weight", "bias")}
    exs = prep.evals["in_domain"][:6]
    assert m.prompt_example(exs[0]) == pattern.prompt_example(exs[0])
    assert torch.equal(logits(m, exs), logits(pattern, exs))
    fit(prep, steps=5)
    trained = logits(m, exs)
    assert not torch.allclose(trained, logits(pattern, exs))
    m.save(tmp_path / "w")
    fresh = prepare(c).method
    fresh.load(tmp_path / "w")
    assert torch.equal(logits(fresh, exs), trained)


# -- options and search space ------------------------------------------------------------------------

def test_the_search_space_is_the_peft_methods_learning_rates_and_the_factor_can_be_searched():
    cls = get_method("adapter")
    opts = cls.Options()
    assert cls.search_space_for(opts) == {"train.lr": [1e-4, 1e-3, 1e-2]}
    lr = cls.search_ranges_for(opts)["train.lr"]
    assert isinstance(lr, Range) and lr.low < 1e-4 and lr.high > 1e-2
    assert cls.version_for(opts) == 1 and cls.version_for(cls.Options(scoring="pattern")) == 1
    c = load_config(None, ["method=adapter", "select.protocol=cv", "select.search=grid",
                           "select.method.reduction_factor=[8,16,32]"])
    assert c.select.space_overrides["method.reduction_factor"] == [8, 16, 32]


@pytest.mark.parametrize("bad,msg", [("method.reduction_factor=0", "greater than or equal to 1"),
                                     ("method.placement=parallel", "houlsby"),
                                     ("method.non_linearity=softmax", "relu"),
                                     ("method.layers=[]", "at least 1")])
def test_bad_options_are_config_errors(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(None, ["method=adapter", bad])
