"""`train.precision`: fp32 (the default, the loop as it always was) or bf16 autocast where the
hardware has it; the CUDA path runs only where a GPU is visible (marker `cuda`). `train.optimizer`:
torch's default AdamW or its fused kernel, the same training up to float rounding."""
import pytest
import torch

from tuneoff import train as train_mod
from tuneoff.config import load_config
from tuneoff.describe import config_of, settings
from tuneoff.identity import in_old_layout
from tuneoff.runner import preflight, run_record
from tuneoff.pipeline import Toolbox, prepare
from tuneoff.identity import fit_ids
from tuneoff.train import bf16_supported, train

needs_cpu_bf16 = pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="this CPU has no native bf16")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")


def _cfg(toy_task, tmp_path, *extra):
    return load_config(None, [f"task={toy_task}", "model=tiny-bert", "shots=8", "data_seed=0", "seed=0",
                              "train.lr=1e-2", "train.max_steps=6", "train.batch_size=8", "eval.max_examples=8",
                              f"output_dir={tmp_path / 'res'}", *extra])


def _losses(cfg):
    prep = prepare(cfg)
    dtypes: set = set()
    linear = next(m for m in prep.method.model.modules() if isinstance(m, torch.nn.Linear))
    hook = linear.register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype))
    stats = train(prep.method, prep.few, prep.cfg.train, cfg.seed, Toolbox.shared().accelerator(prep.device))
    hook.remove()
    return stats.losses, dtypes, prep


def test_the_default_is_fp32_and_keeps_every_run_id_and_fit_id():
    base = load_config(None, ["shots=8", "data_seed=0"])
    assert base.train.precision == "fp32"
    assert load_config(None, ["shots=8", "data_seed=0", "train.precision=fp32"]).run_id() == base.run_id()
    bf16 = load_config(None, ["shots=8", "data_seed=0", "train.precision=bf16"])
    assert bf16.run_id() != base.run_id()  # a different computation is a different run
    old = base.resolved()
    del old["train"]["precision"]  # a config recorded before the key existed
    # the fit id of the default is the one it had before the key existed (pinned)
    assert fit_ids(base, ["a"], ["b"]) == ["ea340966d970515baf3a"]
    assert fit_ids(bf16, ["a"], ["b"]) != fit_ids(base, ["a"], ["b"])
    assert "precision" not in in_old_layout(base.resolved())["train"]
    # an old record reads as the fp32 run it was, so it pools with new fp32 runs of the same setting
    assert config_of({"status": "done", "config": old})["train"]["precision"] == "fp32"
    assert settings({"status": "done", "config": old}) == settings({"status": "done", "config": base.resolved()})


def test_an_unknown_precision_is_a_config_error_naming_the_key():
    from tuneoff.config import ConfigError

    with pytest.raises(ConfigError, match="train.precision"):
        load_config(None, ["train.precision=fp16"])


def test_bf16_without_hardware_support_fails_naming_the_key(toy_task, tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "bf16_supported", lambda device: False)
    cfg = _cfg(toy_task, tmp_path, "train.precision=bf16", "device=cpu")
    with pytest.raises(ValueError, match="train.precision=bf16"):
        preflight(cfg, read_model_config=False)
    rec = run_record(cfg, tmp_path / "run")
    assert rec["status"] == "failed" and "train.precision" in rec["error"]


def test_fp32_trains_in_float32_and_an_explicit_fp32_gives_the_same_losses(toy_task, tmp_path):
    default, dtypes, _ = _losses(_cfg(toy_task, tmp_path))
    explicit, _, _ = _losses(_cfg(toy_task, tmp_path, "train.precision=fp32"))
    assert dtypes == {torch.float32}
    assert default == explicit  # bitwise: the fp32 path adds nothing to the loop


def test_the_optimizer_key_keeps_run_ids_at_its_default_and_fused_trains_alike(toy_task, tmp_path):
    base = load_config(None, ["shots=8", "data_seed=0"])
    assert base.train.optimizer == "adamw"
    assert load_config(None, ["shots=8", "data_seed=0", "train.optimizer=adamw"]).run_id() == base.run_id()
    assert load_config(None, ["shots=8", "data_seed=0", "train.optimizer=adamw_fused"]).run_id() != base.run_id()
    plain, _, p_prep = _losses(_cfg(toy_task, tmp_path, "device=cpu", "train.max_steps=12"))
    fused, _, f_prep = _losses(_cfg(toy_task, tmp_path, "device=cpu", "train.max_steps=12",
                                    "train.optimizer=adamw_fused"))
    assert fused == pytest.approx(plain, rel=1e-5, abs=1e-6)
    for a, b in zip(p_prep.method.model.parameters(), f_prep.method.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)  # lr 1e-2: steps of ~1e-2


@needs_cpu_bf16
def test_bf16_on_cpu_autocasts_the_forward_and_keeps_weights_fp32(toy_task, tmp_path):
    fp32, _, _ = _losses(_cfg(toy_task, tmp_path, "device=cpu"))
    bf16, dtypes, prep = _losses(_cfg(toy_task, tmp_path, "device=cpu", "train.precision=bf16"))
    assert dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in prep.method.model.parameters())
    assert all(torch.isfinite(torch.tensor(bf16)))
    assert bf16 == pytest.approx(fp32, abs=0.05)  # bf16 rounding, not a different training


@pytest.mark.cuda
@needs_cuda
def test_bf16_training_step_on_cuda(toy_task, tmp_path):
    if not bf16_supported(torch.device("cuda")):
        pytest.skip("this GPU has no bf16")
    fp32, _, _ = _losses(_cfg(toy_task, tmp_path, "device=cuda", "train.max_steps=3"))
    bf16, dtypes, prep = _losses(_cfg(toy_task, tmp_path, "device=cuda", "train.max_steps=3",
                                      "train.precision=bf16"))
    assert dtypes == {torch.bfloat16}
    assert all(p.is_cuda and p.dtype == torch.float32 for p in prep.method.model.parameters())
    assert bf16 == pytest.approx(fp32, abs=0.05)


@pytest.mark.cuda
@needs_cuda
def test_bf16_run_on_cuda_is_recorded_with_its_precision(toy_task, tmp_path):
    if not bf16_supported(torch.device("cuda")):
        pytest.skip("this GPU has no bf16")
    cfg = _cfg(toy_task, tmp_path, "device=cuda", "train.max_steps=2", "train.precision=bf16")
    rec = run_record(cfg, tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    assert rec["config"]["train"]["precision"] == "bf16"
