"""Model loading for accelerators (`tuneoff.precision`): `model_dtype` (16-bit frozen weights, float32
trained ones, forward passes under autocast), `quantization` (bitsandbytes, CUDA only, the peft family
only), `attn_implementation`, `train.gradient_checkpointing`, and `eval.batch_size=auto`, which halves
on out-of-memory. What a CPU cannot run is refused before any run; the CUDA path runs only where a GPU
is visible (marker `cuda`)."""
import importlib.util
import json

import numpy as np
import pytest
import torch
import transformers.modeling_utils

from tuneoff import precision
from tuneoff.config import ConfigError, load_config
from tuneoff.evaluate import AutoBatch, predict
from tuneoff.experiment import prepare_run
from tuneoff.methods.finetune import Finetune
from tuneoff.pipeline import Toolbox, prepare
from tuneoff.runner import preflight, run_record
from tuneoff.train import train

needs_cpu_bf16 = pytest.mark.skipif(not precision.bf16_supported(torch.device("cpu")),
                                    reason="this CPU has no native bf16")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")


def _cfg(toy_task, tmp_path, *extra):
    return load_config(None, [f"task={toy_task}", "model=tiny-bert", "shots=8", "data_seed=0", "seed=0",
                              "train.lr=1e-2", "train.max_steps=4", "train.batch_size=8", "eval.max_examples=8",
                              "forgetting.enabled=false", f"output_dir={tmp_path / 'res'}", *extra])


def _trained(cfg):
    prep = prepare(cfg)
    out: set = set()
    linear = next(m for m in prep.method.model.modules() if isinstance(m, torch.nn.Linear))
    hook = linear.register_forward_hook(lambda mod, inp, o: out.add(o.dtype))
    stats = train(prep.method, prep.few, cfg.train, cfg.seed, Toolbox.shared().accelerator(prep.device))
    hook.remove()
    return prep, stats.losses, out


# -- model_dtype -----------------------------------------------------------------------------------

def test_auto_is_float32_on_a_cpu_and_every_run_id_stays():
    base = load_config(None, ["shots=8", "data_seed=0", "device=cpu"])
    assert base.model_dtype == "float32"  # resolved when validated: what the run records and its id holds
    for same in ("model_dtype=auto", "model_dtype=float32"):
        assert load_config(None, ["shots=8", "data_seed=0", "device=cpu", same]).run_id() == base.run_id()
    bf16 = load_config(None, ["shots=8", "data_seed=0", "device=cpu", "model_dtype=bfloat16"])
    assert bf16.model_dtype == "bfloat16" and bf16.run_id() != base.run_id()
    with pytest.raises(ConfigError, match="model_dtype"):
        load_config(None, ["model_dtype=float64"])


@needs_cpu_bf16
@pytest.mark.parametrize("model,method", [("tiny-bert", "lora"), ("tiny-llama", "finetune")])
def test_bfloat16_keeps_frozen_weights_in_16_bits_and_trains_float32_ones(toy_task, tmp_path, model, method):
    fp32_prep, fp32, _ = _trained(_cfg(toy_task, tmp_path, f"model={model}", f"method={method}", "device=cpu"))
    prep, losses, outputs = _trained(_cfg(toy_task, tmp_path, f"model={model}", f"method={method}", "device=cpu",
                                          "model_dtype=bfloat16"))
    params = dict(prep.method.model.named_parameters())
    trained = {n for n, p in params.items() if p.requires_grad}
    assert trained and all(params[n].dtype == torch.float32 for n in trained)
    frozen_matrices = [p for n, p in params.items() if n not in trained and p.dim() == 2]
    if method == "lora":  # the base stays in 16 bits: the memory saved
        assert frozen_matrices and all(p.dtype == torch.bfloat16 for p in frozen_matrices)
    assert outputs == {torch.bfloat16}  # every forward pass under bfloat16 autocast
    assert all(np.isfinite(losses)) and losses == pytest.approx(fp32, abs=0.05)  # rounding, not another training
    probs, _ = predict(prep.method, prep.few, 4, prep.device)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1, atol=1e-5)


@needs_cpu_bf16
def test_a_bfloat16_run_records_the_dtype_it_loaded(toy_task, tmp_path):
    rec = run_record(_cfg(toy_task, tmp_path, "device=cpu", "model_dtype=bfloat16", "forgetting.enabled=true",
                          "model=tiny-llama"), tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    assert rec["config"]["model_dtype"] == "bfloat16" and rec["model_info"]["dtype"] == "bfloat16"
    assert rec["forgetting"]["status"] == "done"  # the probe's pass over mixed weights runs under autocast too


def test_bfloat16_on_a_cpu_without_it_is_refused_before_any_run(toy_task, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    cfg = _cfg(toy_task, tmp_path, "device=cpu", "model_dtype=bfloat16")
    with pytest.raises(ValueError, match=r"model_dtype=bfloat16 but the cpu device has no native bfloat16"):
        preflight(cfg)


def test_float16_on_a_cpu_is_refused_before_any_run(toy_task, tmp_path):
    with pytest.raises(ValueError, match="model_dtype=float16 needs a CUDA GPU"):
        prepare_run(None, [f"task={toy_task}", "model=tiny-bert", "shots=8", "data_seed=0", "device=cpu",
                           "model_dtype=float16", f"output_dir={tmp_path / 'res'}"])
    assert not (tmp_path / "res").exists()  # nothing was run, no store written


# -- quantization ----------------------------------------------------------------------------------

def test_quantization_is_for_the_peft_family_and_enters_the_run_id():
    lora = load_config(None, ["method=lora", "shots=8", "data_seed=0"])
    q4 = load_config(None, ["method=lora", "shots=8", "data_seed=0", "quantization=4bit"])
    assert q4.run_id() != lora.run_id()
    assert load_config(None, ["method=lora", "shots=8", "data_seed=0", "quantization=null"]).run_id() == lora.run_id()
    with pytest.raises(ConfigError, match=r"quantization=4bit is for methods that keep the pretrained weights frozen"
                                          r".*finetune trains the weights themselves"):
        load_config(None, ["method=finetune", "quantization=4bit"])
    with pytest.raises(ConfigError, match=r"quantization=8bit needs a CUDA GPU and device=cpu"):
        load_config(None, ["method=dora", "quantization=8bit", "device=cpu"])


@needs_no_cuda
def test_quantization_without_cuda_is_refused_before_any_run(toy_task, tmp_path):
    with pytest.raises(ValueError, match=r"quantization=4bit needs a CUDA GPU .* this run's device is cpu; leave "
                                         r"quantization unset .*'tuneoff\[quantization\]'"):
        prepare_run(None, [f"task={toy_task}", "model=tiny-bert", "method=lora", "shots=8", "data_seed=0",
                           "quantization=4bit", f"output_dir={tmp_path / 'res'}"])
    assert not (tmp_path / "res").exists()


def test_quantization_without_bitsandbytes_names_the_extra(toy_task, tmp_path, monkeypatch):
    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    cfg = _cfg(toy_task, tmp_path, "method=lora", "quantization=4bit")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine without the package
    with pytest.raises(ValueError, match=r"needs the bitsandbytes package, which is not installed: pip install "
                                         r"'tuneoff\[quantization\]'"):
        preflight(cfg)


@pytest.mark.cuda
@needs_cuda
def test_4bit_lora_trains_on_a_gpu(toy_task, tmp_path):
    pytest.importorskip("bitsandbytes")
    from tuneoff import models

    folder = tmp_path / "tiny-llama"
    texts = [json.loads(line)["text"] for line in toy_task.parent.joinpath("train.jsonl").read_text().splitlines()]
    loaded = models.load("tiny-llama", "classifier", 2, vocab_texts=texts, seed=0)  # a folder with safetensors
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    cfg = _cfg(toy_task, tmp_path, f"model={folder}", "method=lora", "device=cuda", "quantization=4bit",
               "train.gradient_checkpointing=true")
    rec = run_record(cfg, tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    assert rec["model_info"]["quantization"] == "4bit"
    assert all(np.isfinite(rec["train"]["losses"]))


@pytest.mark.cuda
@needs_cuda
def test_auto_is_bfloat16_on_a_gpu_that_has_it(toy_task, tmp_path):
    gpu = _cfg(toy_task, tmp_path, "device=cuda", "method=lora")
    want = "bfloat16" if precision.bf16_supported(torch.device("cuda")) else "float32"
    assert gpu.model_dtype == want
    rec = run_record(gpu, tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    assert rec["model_info"]["dtype"] == want


# -- attention ---------------------------------------------------------------------------------------

def test_the_attention_used_is_recorded_and_a_chosen_one_enters_the_run_id(toy_task, tmp_path):
    auto = _cfg(toy_task, tmp_path, "device=cpu")
    eager = _cfg(toy_task, tmp_path, "device=cpu", "attn_implementation=eager")
    assert prepare(auto).method.ctx.loaded.info["attn_implementation"] == "sdpa"  # transformers' default here
    assert prepare(eager).method.ctx.loaded.info["attn_implementation"] == "eager"
    assert eager.run_id() != auto.run_id()
    assert _cfg(toy_task, tmp_path, "device=cpu", "attn_implementation=auto").run_id() == auto.run_id()


def test_flash_attention_on_a_cpu_is_refused_before_any_run(toy_task, tmp_path):
    with pytest.raises(ValueError, match="attn_implementation=flash_attention_2 needs a CUDA GPU"):
        preflight(_cfg(toy_task, tmp_path, "device=cpu", "attn_implementation=flash_attention_2"))


# -- activation checkpointing ------------------------------------------------------------------------

@pytest.mark.parametrize("model,method", [("tiny-bert", "finetune"), ("tiny-llama", "lora")])
def test_gradient_checkpointing_recomputes_the_same_training(toy_task, tmp_path, monkeypatch, model, method):
    calls = []
    real = transformers.modeling_utils.checkpoint
    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    plain_cfg = _cfg(toy_task, tmp_path, f"model={model}", f"method={method}", "device=cpu")
    _, plain, _ = _trained(plain_cfg)
    assert not calls
    cfg = _cfg(toy_task, tmp_path, f"model={model}", f"method={method}", "device=cpu",
               "train.gradient_checkpointing=true")
    _, checked, _ = _trained(cfg)
    assert len(calls) >= 2 * 4  # both layers, every step
    assert checked == pytest.approx(plain, rel=1e-6, abs=1e-7)  # dropout's masks drawn again alike
    assert cfg.run_id() == plain_cfg.run_id()  # the same result, computed with less memory


def test_a_method_that_cannot_take_checkpointing_is_refused_when_validated():
    with pytest.raises(ConfigError, match="train.gradient_checkpointing=true cannot train prefix-tuning"):
        load_config(None, ["method=prefix-tuning", "train.gradient_checkpointing=true"])


# -- eval.batch_size=auto ----------------------------------------------------------------------------

def test_an_automatic_eval_batch_halves_on_out_of_memory_and_scores_the_same(toy_task, tmp_path, monkeypatch):
    prep = prepare(_cfg(toy_task, tmp_path, "device=cpu", "eval.max_examples=null"))
    method, exs = prep.method, next(iter(prep.evals.values()))
    fixed, _ = predict(method, exs, 4, prep.device)
    real, sizes = method.class_logits, []

    def tight(batch):  # a device that holds 8 examples at most
        sizes.append(len(batch["input_ids"]))
        if sizes[-1] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(batch)

    monkeypatch.setattr(method, "class_logits", tight)
    batch = AutoBatch.of("auto", prep.device)
    assert batch.size == 32 and len(exs) == 20
    probs, _ = predict(method, exs, batch, prep.device)
    assert batch.size == 8 and sizes[:3] == [20, 16, 8]  # halved twice, then kept for the batches after
    np.testing.assert_allclose(probs, fixed, atol=1e-6)
    with pytest.raises(torch.OutOfMemoryError):  # a fixed size is what was asked: no backing off
        predict(method, exs, 32, prep.device)


def test_an_out_of_memory_error_once_is_retried_and_the_size_recorded(toy_task, tmp_path, monkeypatch):
    real, failed = Finetune.class_logits, []

    def once(self, batch):
        if not failed and not self.model.training:  # the first eval batch only
            failed.append(len(batch["input_ids"]))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, batch)

    monkeypatch.setattr(Finetune, "class_logits", once)
    cfg = _cfg(toy_task, tmp_path, "device=cpu", "eval.batch_size=auto", "eval.max_examples=null")
    assert cfg.run_id() == _cfg(toy_task, tmp_path, "device=cpu", "eval.max_examples=null").run_id()
    rec = run_record(cfg, tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    assert failed == [20] and rec["resources"]["eval_batch_size"] == 16
    assert rec["metrics"]["test"]["n"] == 20


def test_what_counts_as_out_of_memory():
    assert precision.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert precision.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: "
                                                   "can't allocate memory: you tried to allocate 1024 bytes"))
    assert not precision.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not precision.is_out_of_memory(ValueError("DefaultCPUAllocator: can't allocate memory"))
