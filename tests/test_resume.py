"""A training stopped mid-way goes on from the state it kept (`tuneoff.resume`) to the very weights,
losses and scores of a training never stopped; a state that does not fit is set aside; a whole run
stopped mid-training resumes and says so. Tiny random models."""
import random

import numpy as np
import pytest
import torch

from tuneoff.config import load_config
from tuneoff.pipeline import Toolbox, prepare
from tuneoff.plan import run_one
from tuneoff.resume import ResumePoint, write_safetensors
from tuneoff.store import Store
from tuneoff.train import Training, train


def _cfg(toy_task, tmp_path, *extra):
    return load_config(None, [f"task={toy_task}", "model=tiny-bert", "shots=8", "data_seed=0", "seed=0",
                              "train.lr=1e-2", "train.max_steps=30", "train.batch_size=6", "threads=1",
                              f"output_dir={tmp_path / 'res'}", *extra])  # bit for bit: at one thread count


def _trained(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _straight(toy_task, tmp_path, *extra):
    prep = prepare(_cfg(toy_task, tmp_path, *extra))
    stats = train(prep.method, prep.few, prep.cfg.train, prep.cfg.seed, Toolbox.shared().accelerator(prep.device))
    return _trained(prep.method.model), stats


def _stopped_at(toy_task, tmp_path, step, folder, *extra):
    """A training that keeps its state at every step and stops (the process gone) after `step`."""
    prep = prepare(_cfg(toy_task, tmp_path, *extra))
    t = Training(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device),
                 resume=ResumePoint(folder, 1e-9))
    t.run_until(step)
    t.close()
    torch.rand(97), random.random(), np.random.rand(5)  # the random states move on before the next process


def test_a_stopped_training_goes_on_to_the_same_weights_bit_for_bit(toy_task, tmp_path):
    want, straight = _straight(toy_task, tmp_path)
    assert len({round(x, 6) for x in straight.losses}) > 20  # dropout and order: the states matter
    folder = tmp_path / "state"
    _stopped_at(toy_task, tmp_path, 13, folder)  # mid-pass: 16 examples in micro-batches of 6
    assert (folder / "state.json").is_file() and (folder / "state.safetensors").is_file()
    prep = prepare(_cfg(toy_task, tmp_path))
    point = ResumePoint(folder, 0)
    stats = train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device), resume=point)
    assert stats.resumed_step == 13 and stats.steps == 30 and stats.earlier_cpu_s > 0
    assert stats.losses == straight.losses and stats.examples == straight.examples and stats.tokens == straight.tokens
    got = _trained(prep.method.model)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_without_a_kept_state_the_training_is_the_one_it_always_was(toy_task, tmp_path):
    want, straight = _straight(toy_task, tmp_path)
    prep = prepare(_cfg(toy_task, tmp_path))
    point = ResumePoint(tmp_path / "state", 1e-9)  # keeps a state at every step, loads none
    stats = train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device), resume=point)
    assert stats.resumed_step == 0 and stats.losses == straight.losses
    assert all(torch.equal(v, want[k]) for k, v in _trained(prep.method.model).items())
    assert point.kept and (tmp_path / "state" / "state.json").is_file()  # kept at its end, for its caller
    point.clear()
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("other", ["train.lr=5e-3", "train.max_steps=31", "seed=1", "data_seed=1"])
def test_a_state_kept_for_another_training_is_set_aside(toy_task, tmp_path, other):
    folder = tmp_path / "state"
    _stopped_at(toy_task, tmp_path, 7, folder)
    _, straight = _straight(toy_task, tmp_path, other)
    prep = prepare(_cfg(toy_task, tmp_path, other))
    stats = train(prep.method, prep.few, prep.cfg.train, prep.cfg.seed, Toolbox.shared().accelerator(prep.device),
                  resume=ResumePoint(folder, 0))
    assert stats.resumed_step == 0 and stats.losses == straight.losses
    assert not folder.exists()  # set aside: removed, never loaded


def test_a_torn_state_is_not_loaded(toy_task, tmp_path):
    folder = tmp_path / "state"
    _stopped_at(toy_task, tmp_path, 7, folder)
    (folder / "state.safetensors").write_bytes((folder / "state.safetensors").read_bytes()[:100])
    prep = prepare(_cfg(toy_task, tmp_path))
    stats = train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device),
                  resume=ResumePoint(folder, 0))
    assert stats.resumed_step == 0 and stats.steps == 30 and not folder.exists()


def test_tensors_and_json_of_different_saves_never_pair(toy_task, tmp_path):
    """A process stopped between the two files' replacement leaves a newer tensors file beside an
    older JSON: the pair is set aside, not loaded as the JSON's step."""
    folder = tmp_path / "state"
    _stopped_at(toy_task, tmp_path, 7, folder)
    older = (folder / "state.json").read_bytes()
    _stopped_at(toy_task, tmp_path, 9, folder)
    (folder / "state.json").write_bytes(older)
    prep = prepare(_cfg(toy_task, tmp_path))
    stats = train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device),
                  resume=ResumePoint(folder, 0))
    assert stats.resumed_step == 0 and not folder.exists()


def test_a_method_with_state_between_steps_keeps_none(toy_task, tmp_path):
    prep = prepare(_cfg(toy_task, tmp_path))
    prep.method.allocate = lambda step, total: None  # as AdaLoRA's rank allocation
    point = ResumePoint(tmp_path / "state", 1e-9)
    train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device), resume=point)
    assert not point.kept and not (tmp_path / "state").exists()


def test_a_method_that_steps_parameters_outside_its_model_keeps_none(toy_task, tmp_path):
    prep = prepare(_cfg(toy_task, tmp_path))
    outside = torch.nn.Parameter(torch.zeros(3))
    groups = prep.method.param_groups
    prep.method.param_groups = lambda lr, wd: [*groups(lr, wd), {"params": [outside], "weight_decay": 0.0}]
    point = ResumePoint(tmp_path / "state", 1e-9)
    train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device), resume=point)
    assert not point.kept and not (tmp_path / "state").exists()


def test_the_safetensors_writer_is_read_back_by_safetensors(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    ts = {"a": torch.randn(3, 4), "b": torch.tensor(7.0), "c": torch.arange(5, dtype=torch.int64),
          "d": torch.randn(2, 2, dtype=torch.bfloat16), "e": torch.zeros(0), "f": torch.ByteTensor([1, 2, 255])}
    write_safetensors(ts, tmp_path / "x.safetensors", {"token": "abc"})
    back = load_file(str(tmp_path / "x.safetensors"))
    with safe_open(str(tmp_path / "x.safetensors"), framework="pt") as f:
        assert f.metadata() == {"token": "abc"}
    assert back.keys() == ts.keys() and all(torch.equal(back[k], ts[k]) and back[k].dtype == ts[k].dtype for k in ts)


class Stopped(RuntimeError):
    pass


def test_a_run_stopped_mid_training_resumes_and_says_so(toy_task, tmp_path, monkeypatch):
    extra = ("train.resume_every=1e-9",)
    straight = run_one(_cfg(toy_task, tmp_path / "a", *extra), Store(tmp_path / "a" / "res"))
    assert straight["status"] == "done" and not (tmp_path / "a" / "res" / "resume").exists()  # cleared when done
    save = ResumePoint.save

    def stop_after_step_17(self, training):
        save(self, training)
        if training.stats.steps == 17:
            raise Stopped("the process is gone")

    monkeypatch.setattr(ResumePoint, "save", stop_after_step_17)
    cfg = _cfg(toy_task, tmp_path / "b", *extra)
    store = Store(tmp_path / "b" / "res")
    first = run_one(cfg, store)
    assert first["status"] == "failed" and "the process is gone" in first["error"]
    kept = tmp_path / "b" / "res" / "resume" / cfg.run_id()
    assert (kept / "state.json").is_file()
    monkeypatch.setattr(ResumePoint, "save", save)
    again = run_one(cfg, store)
    assert again["status"] == "done", again.get("error")
    assert any("training resumed at step 17" in n for n in again["notes"])
    assert again["train"]["losses"] == straight["train"]["losses"]
    for name, m in straight["metrics"].items():
        assert again["metrics"][name]["overall"] == m["overall"]
    assert again["run_id"] == straight["run_id"]  # how often a state is kept is not part of the run
    assert again["resources"]["train_cpu_s"] > 0 and not kept.exists()


def test_a_selection_fold_stopped_mid_training_resumes_to_the_same_score(tmp_path, monkeypatch):
    """A one-rung fit (the edge rule's longer trainings) keeps each fold's state beside the fit
    cache: stopped mid-fold, the next attempt goes on from it, scores what an unstopped fold scores,
    counts the stopped process's time, and clears the state once the fold is kept."""
    from tuneoff.selection.cache import FitCache
    from tuneoff.selection.folds import cv_folds
    from tuneoff.selection.rungs import fit_rungs

    def fit(folder):
        cfg = load_config(None, ["task=demo", "model=tiny-bert", "shots=4", "data_seed=0", "seed=0",
                                 "train.batch_size=3", "train.epochs=6", "train.resume_every=1e-9", "threads=1",
                                 f"output_dir={folder}"]).expand()[0]
        toolbox = Toolbox()
        data = toolbox.split(cfg)
        return fit_rungs(toolbox, cfg, data, cv_folds(data.few, 2, 0), [6.0], lambda got, last: True,
                         FitCache(folder))

    straight = fit(tmp_path / "a")
    assert straight["state"] == "complete" and not (tmp_path / "a" / "resume").exists()
    save = ResumePoint.save

    def stop_in_the_second_fold(self, training):
        save(self, training)
        folds.setdefault(training.fingerprint["examples"], len(folds))
        if folds[training.fingerprint["examples"]] == 1 and training.stats.steps == 5:
            raise Stopped("the process is gone")

    folds: dict = {}
    monkeypatch.setattr(ResumePoint, "save", stop_in_the_second_fold)
    with pytest.raises(Stopped):
        fit(tmp_path / "b")
    assert len(list((tmp_path / "b" / "resume").iterdir())) == 1  # the second fold's state; the first is kept
    monkeypatch.setattr(ResumePoint, "save", save)
    load, loaded = ResumePoint.load, []
    monkeypatch.setattr(ResumePoint, "load", lambda self, t, expect: loaded.append(load(self, t, expect)) or loaded[-1])
    again = fit(tmp_path / "b")
    assert loaded == [True]  # the first fold came from the cache; the second went on from its state
    assert again["rungs"] == straight["rungs"] and again["train_tokens"] == straight["train_tokens"]
    assert not (tmp_path / "b" / "resume").exists()


def test_a_resumed_trainings_time_is_its_own_not_the_stop_s():
    """The stopped processes' time up to the state counts; the set-up the resuming process did again
    does not (lost to the stop, as the minutes after the state are)."""
    from tuneoff.resources import Timer
    from tuneoff.train import TrainStats, count_earlier

    timer = Timer()
    timer.seconds, timer.cpu_seconds = 50.0, 40.0  # this process: 5 s of set-up again, then the rest
    count_earlier(timer, TrainStats(resumed_step=9, earlier_s=100.0, earlier_cpu_s=80.0, redone_s=5.0,
                                    redone_cpu_s=4.0))
    assert (timer.seconds, timer.cpu_seconds) == (145.0, 116.0)


def test_a_disk_that_cannot_take_the_state_stops_the_keeping_not_the_training(toy_task, tmp_path, monkeypatch):
    import errno

    import tuneoff.resume as resume

    def full(tensors, path, metadata=None):
        path.write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resume, "write_safetensors", full)
    _, straight = _straight(toy_task, tmp_path)
    prep = prepare(_cfg(toy_task, tmp_path))
    point = ResumePoint(tmp_path / "state", 1e-9)
    stats = train(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device), resume=point)
    assert stats.steps == 30 and stats.losses == straight.losses
    assert "No space left on device" in point.failed and not point.kept
    assert list((tmp_path / "state").iterdir()) == []  # no temporary file left behind


def test_a_state_that_fits_but_cannot_be_put_in_fails_the_training_and_is_kept(toy_task, tmp_path, monkeypatch):
    import tuneoff.resume as resume

    folder = tmp_path / "state"
    _stopped_at(toy_task, tmp_path, 7, folder)
    monkeypatch.setattr(resume, "_restore", lambda t, tensors, meta: (_ for _ in ()).throw(MemoryError("no room")))
    prep = prepare(_cfg(toy_task, tmp_path))
    with pytest.raises(RuntimeError, match="could not be loaded .*MemoryError.*train.resume_every=0"):
        Training(prep.method, prep.few, prep.cfg.train, 0, Toolbox.shared().accelerator(prep.device),
                 resume=ResumePoint(folder, 0))
    assert (folder / "state.json").is_file()  # left for the next attempt: nothing computed is thrown away


def test_resume_every_0_keeps_no_state_and_reads_none(toy_task, tmp_path):
    from tuneoff.runner import resume_point

    cfg = _cfg(toy_task, tmp_path)
    point = resume_point(cfg, cfg)
    assert point.every == 600 and point.folder == tmp_path / "res" / "resume" / cfg.run_id()
    assert resume_point(cfg, _cfg(toy_task, tmp_path, "train.resume_every=0")) is None
