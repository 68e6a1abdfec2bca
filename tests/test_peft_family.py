"""The peft family: `peft` (any peft type by name, its config keys checked against the installed
peft) and the named peft methods (dora, rslora, pissa, olora, loraplus, vera, adalora, loha, lokr,
oft, ln-tuning) on tiny random BERT and Llama models: every type peft can apply to a classifier
trains, what each named method trains is counted from the model's shapes, and the clear errors."""
import json
import math
import os
import re

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from peft import PeftType  # noqa: E402

from tuneoff.config import ConfigError, load_config  # noqa: E402
from tuneoff.methods import MethodError, get_method  # noqa: E402
from tuneoff.methods.peft_family import refusal  # noqa: E402
from tuneoff.pipeline import Toolbox, prepare  # noqa: E402
from tuneoff.resources import count_parameters  # noqa: E402
from tuneoff.space import Range  # noqa: E402
from tuneoff.train import train  # noqa: E402

NAMED = ["dora", "rslora", "pissa", "olora", "loraplus", "vera", "adalora", "loha", "lokr", "oft", "ln-tuning"]
ATTENTION = {"tiny-bert": ("query", "value"), "tiny-llama": ("q_proj", "v_proj")}  # the default targets
# Options a type needs on the tiny models, whose layers are 32 wide: peft's defaults are sized for real
# models (VB-LoRA's 256-long vectors, MiSS's rank 64, ...), or select nothing (trainable tokens).
TINY = {"VBLORA": {"vector_length": 16}, "MISS": {"r": 8}, "ROAD": {"group_size": 16}, "SHIRA": {"r": 4},
        "C3A": {"block_size": 16}, "WAVEFT": {"n_frequency": 100}, "TRAINABLE_TOKENS": {"token_indices": [6, 7]}}


def cfg(model, method, *extra):
    return load_config(None, ["task=demo", f"model={model}", f"method={method}", "shots=8", "data_seed=0",
                              "seed=0", "device=cpu", "train.max_steps=30", "train.warmup_ratio=0", *extra])


def peft_cfg(model, peft_type, options, *extra):
    return cfg(model, "peft", f"method.type={peft_type}", f"method.options={json.dumps(options)}", *extra)


def fit(prep, steps, lr=1e-2):
    c = prep.cfg.train.model_copy(update={"max_steps": steps, "lr": lr})
    return train(prep.method, prep.few, c, prep.cfg.seed, Toolbox.shared().accelerator(prep.device))


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def is_head(name: str) -> bool:
    return ".classifier." in name or ".score." in name


@torch.no_grad()
def logits(method, examples) -> torch.Tensor:
    method.model.eval()
    return method.class_logits(method.collate(examples))


EXAMPLES = [{"text": "the food was great", "label": 1}, {"text": "cold soup", "label": 0}]


# -- every peft type through `peft` ------------------------------------------------------------


# peft's SHADOW hands the model its KV cache under the name transformers 5.24 deprecated (the suite
# makes that warning an error so that tuneoff never passes it); it still works until transformers 5.40
OLD_CACHE_NAME = {"SHADOW": pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")}


@pytest.mark.parametrize("peft_type", [pytest.param(t.value, marks=OLD_CACHE_NAME.get(t.value, ()))
                                       for t in PeftType])
def test_every_peft_type_trains_through_peft_or_is_refused_with_its_reason(peft_type):
    why = refusal(peft_type)
    if why is not None:
        with pytest.raises(ConfigError, match=re.escape(why[:60])):
            peft_cfg("tiny-llama", peft_type, TINY.get(peft_type, {}))
        pytest.skip(f"{peft_type}: {why}")
    prep = prepare(peft_cfg("tiny-llama", peft_type, TINY.get(peft_type, {})))
    before = trainable(prep.method.model)
    adapter = {n for n in before if not is_head(n)}
    assert adapter, f"{peft_type} trains nothing but the head"
    assert {n for n in before if is_head(n)} == {"base_model.model.score.weight"}  # one head, trained
    stats = fit(prep, steps=2)
    assert stats.steps == 2 and all(math.isfinite(x) for x in stats.losses)
    after = dict(prep.method.model.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in adapter), f"{peft_type}'s adapter did not move"
    assert logits(prep.method, EXAMPLES).shape == (2, 2)


# -- what each named method trains, counted from the model's shapes -------------------------------


def lokr_factors(n: int) -> tuple[int, int]:
    """The divisor pair (a, b), a <= b, of `n` nearest its square root (LoKr's split of a dimension)."""
    a = max(d for d in range(1, n + 1) if n % d == 0 and d * d <= n)
    return a, n // a


def lokr_count(fan_in: int, fan_out: int, r: int) -> int:
    (out_a, out_b), (in_a, in_b) = lokr_factors(fan_out), lokr_factors(fan_in)
    small = out_a * in_a  # the Kronecker product's first factor, whole
    big = r * (out_b + in_b) if r < max(out_b, in_b) / 2 else out_b * in_b  # its second, low-rank where that is smaller
    return small + big


def adapted(model, names) -> list[tuple[int, int]]:
    """(in, out) of each linear layer named by a suffix in `names`."""
    return [(m.in_features, m.out_features) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in names]


def expected_adapter(method: str, base, model: str) -> int:
    layers = adapted(base, ATTENTION[model])
    assert len(layers) == 4  # two layers x query/value
    r = 8
    per_layer = {
        "dora": lambda i, o: r * (i + o) + o,  # A, B and a magnitude per output
        "rslora": lambda i, o: r * (i + o), "pissa": lambda i, o: r * (i + o), "olora": lambda i, o: r * (i + o),
        "loraplus": lambda i, o: r * (i + o),
        "vera": lambda i, o: 256 + o,  # lambda_d (r=256) and lambda_b; the shared A, B are frozen buffers
        "adalora": lambda i, o: 12 * (i + o) + 12,  # P, Q and the singular values at init_r=12
        "loha": lambda i, o: 2 * r * (i + o),  # two low-rank pairs
        "lokr": lambda i, o: lokr_count(i, o, r),
        "oft": lambda i, o: (i // 32) * 32 * 31 // 2,  # a skew-symmetric 32-block per 32 inputs
    }
    if method == "ln-tuning":  # every normalisation layer's weights (and biases)
        return sum(p.numel() for m in base.modules() if type(m).__name__.endswith("Norm") for p in m.parameters())
    return sum(per_layer[method](i, o) for i, o in layers)


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
@pytest.mark.parametrize("method", NAMED)
def test_named_methods_train_what_they_should_and_are_counted(method, model):
    base = prepare(cfg(model, "finetune")).method.model
    head = sum(p.numel() for n, p in base.named_parameters() if n.split(".")[0] in ("classifier", "score"))
    m = prepare(cfg(model, method)).method
    assert count_parameters(m.model)["params_trainable"] == expected_adapter(method, base, model) + head
    params = dict(m.model.named_parameters())
    assert not any("original_module" in n or "modules_to_save" in n for n in params)  # one head, not two


def test_lokr_factors_the_second_matrix_in_low_rank_when_that_is_smaller():
    assert lokr_factors(32) == (4, 8) and lokr_factors(576) == (24, 24)
    m = prepare(cfg("tiny-llama", "lokr", "method.r=1")).method
    base = prepare(cfg("tiny-llama", "finetune")).method.model
    head = base.score.weight.numel()
    assert count_parameters(m.model)["params_trainable"] == 4 * lokr_count(32, 32, 1) + head
    assert any("lokr_w2_a" in n for n, _ in m.model.named_parameters())


def test_vera_projections_are_frozen_shared_and_drawn_from_the_runs_seed():
    def projection(seed):
        m = prepare(cfg("tiny-llama", "vera", f"seed={seed}", "method.r=16")).method
        assert not any("vera_A" in n or "vera_B" in n for n, _ in m.model.named_parameters())
        return next(b for n, b in m.model.named_buffers() if "vera_A" in n)

    assert torch.equal(projection(0), projection(0)) and not torch.equal(projection(0), projection(1))


def test_rslora_scales_by_the_square_root_of_the_rank():
    m = prepare(cfg("tiny-llama", "rslora", "method.r=16", "method.alpha=8")).method
    layer = m.model.get_base_model().model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == pytest.approx(8 / math.sqrt(16))


@pytest.mark.parametrize("method,extra", [("pissa", ()), ("pissa", ("method.svd_iters=2",)), ("olora", ())])
def test_pissa_and_olora_start_from_the_pretrained_function_with_nonzero_adapters(method, extra):
    base = prepare(cfg("tiny-llama", "finetune")).method
    m = prepare(cfg("tiny-llama", method, *extra)).method
    assert torch.allclose(logits(m, EXAMPLES), logits(base, EXAMPLES), atol=1e-5)
    b = next(p for n, p in m.model.named_parameters() if "lora_B" in n)
    assert b.abs().sum() > 0  # unlike lora's, whose B starts at zero


def test_loraplus_trains_b_at_lr_ratio_times_the_learning_rate():
    m = prepare(cfg("tiny-llama", "loraplus", "method.lr_ratio=8")).method
    groups = m.param_groups(1e-3, 0.01)
    names = {id(p): n for n, p in m.model.named_parameters()}
    by_lr = {}
    for g in groups:
        by_lr.setdefault(g["lr"], set()).update(names[id(p)] for p in g["params"])
    assert set(by_lr) == {1e-3, 8e-3}
    assert by_lr[8e-3] == {n for n in trainable(m.model) if ".lora_B." in n}
    assert sum(len(g["params"]) for g in groups) == len(trainable(m.model))  # each parameter once


@pytest.mark.parametrize("method", ["dora", "loha"])
def test_a_named_method_is_peft_with_the_same_config(method):
    """The named entry and `peft` given the same config build and train the same model."""
    same = {"dora": ("LORA", {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "use_dora": True,
                              "target_modules": ["q_proj", "v_proj"]}),
            "loha": ("LOHA", {"r": 8, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})}[method]
    named, generic = prepare(cfg("tiny-llama", method)), prepare(peft_cfg("tiny-llama", *same))
    for prep in (named, generic):
        fit(prep, steps=3)
    assert torch.equal(logits(named.method, EXAMPLES), logits(generic.method, EXAMPLES))


# -- AdaLoRA: rank allocation from the loop, its penalty in the loss -------------------------------


def nonzero_ranks(method) -> int:
    return sum(int((p != 0).sum()) for n, p in method.model.named_parameters() if "lora_E" in n)


@pytest.mark.parametrize("spec,left", [
    (("adalora", "method.init_r=6", "method.target_r=2"), 2),
    (("peft", "method.type=ADALORA", 'method.options={"init_r": 6, "target_r": 2, "tinit": 2, "tfinal": 4}'), 2),
    # nothing to prune: peft's pruning cannot be asked to drop no rank (its kthvalue needs k >= 1)
    (("adalora", "method.init_r=6", "method.target_r=6"), 6),
])
def test_adalora_prunes_to_its_target_budget_by_the_end_of_the_schedule(spec, left):
    prep = prepare(cfg("tiny-llama", *spec))  # 4 adapted matrices of init_r=6 singular values, from zero
    fit(prep, steps=20, lr=1e-2)
    assert nonzero_ranks(prep.method) == 4 * left  # target_r per matrix, allocated among them
    config = prep.method.model.peft_config["default"]
    assert config.total_step == 20


def test_adalora_loss_is_cross_entropy_plus_its_orthogonality_penalty():
    m = prepare(cfg("tiny-llama", "adalora", "method.orth_reg_weight=0.3")).method
    m.model.eval()  # no dropout: the two forward passes must match
    batch = m.collate(EXAMPLES)
    mats = [p for n, p in m.model.named_parameters() if "lora_A" in n or "lora_B" in n]
    penalty = sum(torch.linalg.norm((p @ p.T if p.shape[0] < p.shape[1] else p.T @ p) - torch.eye(min(p.shape)))
                  for p in mats) / len(mats)
    with torch.no_grad():
        ce = F.cross_entropy(m.class_logits(batch), batch["labels"])
        assert m.loss(batch) == pytest.approx(float(ce + 0.3 * penalty), rel=1e-5)


def test_the_loop_calls_after_optimizer_step_with_the_gradients_still_there():
    prep = prepare(cfg("tiny-llama", "lora"))
    seen = []
    prep.method.after_optimizer_step = lambda step, total: seen.append(
        (step, total, all(p.grad is not None for p in prep.method.model.parameters() if p.requires_grad)))
    fit(prep, steps=3)
    assert seen == [(1, 3, True), (2, 3, True), (3, 3, True)]


# -- peft's type and options, checked when the config is read -------------------------------------


def test_the_type_is_read_in_any_spelling_and_the_options_are_part_of_the_run_id():
    ids = {peft_cfg("tiny-llama", t, {}).run_id() for t in ("LOHA", "loha", "LoHaConfig")}
    assert len(ids) == 1
    assert peft_cfg("tiny-llama", "loha", {"r": 4}).run_id() not in ids
    assert peft_cfg("tiny-llama", "ln-tuning", {}).method.type == "LN_TUNING"
    assert cfg("tiny-llama", "peft").method_options.type == "LORA"  # the default


@pytest.mark.parametrize("peft_type,options,message", [
    ("LORAX", {}, r"'method.type': unknown peft type 'LORAX' \(did you mean 'LORA'\?\); the installed peft .* LOHA"),
    ("PREFIX_TUNING", {}, r"prompt learning .* use one of those"),
    ("POLY", {}, r"task id"),
    ("LORA", {"rank": 4}, r"'method.options': LoraConfig has no key 'rank'; its keys: .*lora_alpha.*use_dora"),
    ("LORA", {"r": "four"}, r"LoraConfig.r takes a number, got 'four'"),
    ("LORA", {"use_dora": True, "lora_dropout": 0.1, "init_lora_weights": "loftq"}, r"LoraConfig refuses "
     r"init_lora_weights='loftq': .*loftq_config"),
    ("OFT", {"r": 4, "oft_block_size": 8}, r"OFTConfig refuses .*oft_block_size"),
    ("LORA", {"task_type": "CAUSAL_LM"}, r"task_type is set by the run"),
    ("ADALORA", {"total_step": 100}, r"total_step is set by the run: the run's training schedule"),
    ("TRAINABLE_TOKENS", {}, r"needs method.options.token_indices"),
])
def test_bad_types_and_options_are_config_errors_that_say_what_to_do(peft_type, options, message):
    with pytest.raises(ConfigError, match=message):
        peft_cfg("tiny-llama", peft_type, options)


def test_targets_that_peft_cannot_find_are_an_error_that_names_the_layers():
    with pytest.raises(MethodError, match=r"peft could not wrap .*; its linear layers are named: .*q_proj.*"
                                          r"normalisation layers: .*input_layernorm"):
        prepare(peft_cfg("tiny-llama", "LOHA", {"target_modules": ["qq_proj"]}))
    with pytest.raises(MethodError, match=r"'q_proj' matches no normalisation layer .*LayerNorm"):
        prepare(cfg("tiny-bert", "ln-tuning", "method.target_modules=[q_proj]"))


@pytest.mark.parametrize("override,message", [("method.target_r=16", "at most init_r"),
                                              ("method.final_share=0.95", "below 1")])
def test_adalora_options_that_leave_nothing_to_allocate_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        cfg("tiny-llama", "adalora", override)


# -- registration ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["peft", *NAMED])
def test_registered_with_descriptions_and_a_search_space(name):
    cls = get_method(name)
    assert cls.description and "\n" not in cls.description
    for field, info in cls.Options.model_fields.items():
        assert info.description, f"{name}.{field} has no description"
    grid = cls.search_space_for(cls.Options())
    assert list(grid) == ["train.lr"] and len(grid["train.lr"]) == 3  # as many candidates as every method
    ranges = cls.search_ranges_for(cls.Options())
    assert isinstance(ranges["train.lr"], Range)
    assert min(grid["train.lr"]) > ranges["train.lr"].low and max(grid["train.lr"]) < ranges["train.lr"].high
