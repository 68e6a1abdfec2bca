"""The thread policy (`threads`, `tuneoff.threads`): auto gives a run the cores that other work leaves
free, a number is that many; either is set for the run alone, recorded with it, and no part of its id."""
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from tuneoff import threads
from tuneoff.config import ConfigError, load_config
from tuneoff.describe import settings
from tuneoff.executors import RayExecutor
from tuneoff.runner import run_record

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal")
Own = namedtuple("Own", "user system")


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(threads, "default_threads", lambda: 4)


@pytest.mark.parametrize("busy,expected", [(0.0, 4), (0.4, 4), (1.0, 3), (1.6, 2), (3.7, 1), (9.0, 1)])
def test_auto_takes_the_cores_that_other_work_leaves(four_cores, monkeypatch, busy, expected):
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cpus=None: busy)
    choice = threads.choose("auto")
    assert choice.threads == expected and choice.cores == 4
    assert choice.record()["busy_elsewhere"] == round(busy, 2)


def test_a_number_is_that_many_threads_up_to_the_cores(four_cores):
    assert threads.choose(2).threads == 2
    assert threads.choose(64).threads == 4


def test_auto_never_goes_past_torchs_own_default(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(threads, "default_threads", lambda: 2)  # OMP_NUM_THREADS=2, or 2 physical cores
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cpus=None: 0.0)
    assert threads.choose("auto").threads == 2


@pytest.mark.parametrize("yields,expected", [(True, 1.0), (False, 1.5)])
def test_busy_elsewhere_is_the_cores_busy_time_less_this_processs_own(monkeypatch, yields, expected):
    """Over 2 s: the two cores were busy 3.0 s (idle and I/O wait not counted) and 1.0 s niced, this
    process used 1.0 s: others took one core's worth, or 1.5 where the niced work does not yield."""
    clock = iter([100.0, 102.0])
    per_cpu = iter([[Times(10, 5, 2, 50, 1, 0, 0, 0)] * 2,
                    [Times(11.2, 5.5, 2.3, 50.5, 3, 0, 0, 0)] * 2])
    own = iter([Own(4.0, 1.0), Own(4.8, 1.2)])
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.psutil, "cpu_times", lambda percpu: next(per_cpu))
    monkeypatch.setattr(threads.psutil, "Process", lambda: type("P", (), {"cpu_times": lambda self: next(own)})())
    monkeypatch.setattr(threads, "niced_yields", lambda: yields)
    monkeypatch.setattr(threads, "_LAST", [])
    assert threads.busy_elsewhere([0, 1]) == pytest.approx(expected)


@pytest.mark.parametrize("on,groups,expected", [
    (False, {1: ("/autogroup-9", 0)}, True),                         # no autogroup: nice orders every process
    (True, {1: ("/autogroup-7", 0)}, True),                          # niced in this session's group
    (True, {1: ("/autogroup-9", 10)}, True),                         # its session's group niced too
    (True, {1: ("/autogroup-9", 10), 2: ("/autogroup-8", 0)}, False),  # one in a group of its own, at 0
])
def test_niced_work_yields_unless_autogroup_gives_it_a_group_of_its_own(monkeypatch, on, groups, expected):
    """A setsid job at nice 10 takes its group's equal share of the CPU under autogroup, so its time
    counts as busy; a sleeping or un-niced process in another group is no niced work."""
    Proc = namedtuple("Proc", "pid info")
    procs = [Proc(pid, {"nice": 10, "status": threads.psutil.STATUS_RUNNING}) for pid in groups]
    procs += [Proc(3, {"nice": 10, "status": threads.psutil.STATUS_SLEEPING}),
              Proc(4, {"nice": 0, "status": threads.psutil.STATUS_RUNNING})]
    groups = {**groups, "self": ("/autogroup-7", 0), 3: ("/autogroup-5", 0), 4: ("/autogroup-5", 0)}
    monkeypatch.setattr(threads, "_autogroup_on", lambda: on)
    monkeypatch.setattr(threads, "_autogroup", lambda pid: groups.get(pid))
    monkeypatch.setattr(threads.psutil, "process_iter", lambda attrs: iter(procs))
    assert threads.niced_yields() is expected


def test_a_run_sets_its_threads_records_them_and_sets_them_back(toy_task, tmp_path):
    before = torch.get_num_threads()
    base = [f"task={toy_task}", "model=tiny-bert", "shots=8", "data_seed=0", "train.max_steps=2",
            "eval.max_examples=8", "forgetting.enabled=false", f"output_dir={tmp_path / 'res'}"]
    cfg = load_config(None, [*base, "threads=1"])
    assert cfg.run_id() == load_config(None, base).run_id()  # threads cannot change a score: no part of the id
    seen = []
    with threads.applied(cfg.threads) as choice:
        seen.append(torch.get_num_threads())
    assert seen == [1] and choice.threads == 1 and torch.get_num_threads() == before
    rec = run_record(cfg, tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    assert rec["env"]["threads"]["setting"] == 1 and rec["env"]["threads"]["threads"] == 1
    assert rec["env"]["cpu_threads"] == 1  # what torch computed with
    assert "threads" not in settings(rec)  # runs that differ in threads alone are one setting
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="threads"):
        load_config(None, ["threads=0"])


def test_a_ray_run_computes_on_the_cpus_it_was_given(four_cores, monkeypatch):
    sent = []

    class Remote:
        def options(self, **opts):
            return type("R", (), {"remote": lambda self, *args: sent.append((opts, args))})()

    ex = RayExecutor.__new__(RayExecutor)  # no cluster: only what a submitted task carries
    ex.cpus_per_run, ex.gpus, ex.env, ex._remote = 2, 0, {}, Remote()
    run = load_config(None, ["shots=8", "data_seed=0", "seed=0"])
    ex._submit(run, lambda run_id: Path("/tmp") / run_id)
    opts, (config, _, cpus) = sent[0]
    assert opts["num_cpus"] == 2 and cpus == 2
    assert config["threads"] == "auto"  # the record's config is the same whichever executor ran it
    monkeypatch.setattr(threads, "_ALLOTTED", [])
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cpus=None: pytest.fail("an allotted run measures nothing"))
    threads.allot(cpus)  # what the task does first
    choice = threads.choose("auto")
    assert choice.threads == 2 and choice.record()["allotted"] == 2
    assert threads.choose(3).threads == 3  # a number given stays
