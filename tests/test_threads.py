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


@pytest.mark.parametrize("own_nice,expected", [(0, 1.5), (5, 1.9)])
def test_busy_elsewhere_is_the_cores_busy_time_less_this_processs_own(monkeypatch, own_nice, expected):
    """Over 2 s: the two cores were busy 3.0 s outside niced work (idle and I/O wait not counted), a
    niced process that does not give way ran 1.0 s (one that appeared since is not counted), this
    process used 1.0 s: others took 1.5 cores' worth. A niced run's user time is booked as niced,
    not busy, so only its system time (0.2 s) comes off: 1.9."""
    clock = iter([100.0, 102.0])
    per_cpu = iter([[Times(10, 5, 2, 50, 1, 0, 0, 0)] * 2,
                    [Times(11.2, 5.5, 2.3, 50.5, 3, 0, 0, 0)] * 2])
    own = iter([Own(4.0, 1.0), Own(4.8, 1.2)])
    niced = iter([{(7, 1.0): 3.0}, {(7, 1.0): 4.0, (8, 2.0): 9.0}])
    me = type("P", (), {"cpu_times": lambda self: next(own), "nice": lambda self: own_nice, "pid": 1})
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.psutil, "cpu_times", lambda percpu: next(per_cpu))
    monkeypatch.setattr(threads.psutil, "Process", lambda: me())
    monkeypatch.setattr(threads, "_unyielding", lambda cpus, me: next(niced))
    monkeypatch.setattr(threads, "_LAST", [])
    assert threads.busy_elsewhere([0, 1]) == pytest.approx(expected)


@pytest.mark.parametrize("on,own_nice,proc,group,counted", [
    (False, 0, {"nice": 10}, None, False),            # no autogroup: nice orders every process
    (False, 10, {"nice": 10}, None, True),            # as niced as the run: no way given
    (True, 0, {"nice": 10}, ("/autogroup-7", 0), False),   # niced in the run's own session
    (True, 0, {"nice": 10}, ("/autogroup-9", 0), True),    # a setsid job: a group of its own at 0
    (True, 0, {"nice": 10}, ("/autogroup-9", 10), False),  # its session's group niced too
    (True, 0, {"nice": 19}, ("/", 0), False),              # the root group: weighed by its own nice
    (True, 0, {"nice": 10, "cpu_affinity": [5]}, ("/autogroup-9", 0), False),  # not on the run's cores
    (True, 0, {"nice": 0}, ("/autogroup-9", 0), False),    # not niced: its time is in the cores' busy
])
def test_niced_work_counts_where_it_does_not_give_way_to_the_run(monkeypatch, on, own_nice, proc, group, counted):
    """Which niced processes' CPU time counts as busy: those the scheduler does not put behind the run."""
    Proc = namedtuple("Proc", "pid info")
    info = {"cpu_times": Own(2.0, 0.5), "create_time": 1.0, "cpu_affinity": [0, 1], **proc}
    me = type("P", (), {"nice": lambda self: own_nice, "pid": 1})()
    groups = {"self": ("/autogroup-7", 0), 2: group}
    monkeypatch.setattr(threads, "_autogroup_on", lambda: on)
    monkeypatch.setattr(threads, "_autogroup", lambda pid: groups.get(pid))
    monkeypatch.setattr(threads.psutil, "process_iter", lambda attrs: iter([Proc(1, info), Proc(2, info)]))
    assert threads._unyielding([0, 1], me) == ({(2, 1.0): 2.5} if counted else {})


def test_where_processes_have_no_cpu_affinity_it_is_not_asked_for(monkeypatch):
    """psutil on macOS has no cpu_affinity, and asking process_iter for an attribute it lacks raises."""
    asked = []
    monkeypatch.delattr(threads.psutil.Process, "cpu_affinity", raising=False)
    monkeypatch.setattr(threads, "_autogroup_on", lambda: False)
    monkeypatch.setattr(threads.psutil, "process_iter", lambda attrs: asked.append(attrs) or iter([]))
    me = type("P", (), {"nice": lambda self: 0, "pid": 1})()
    assert threads._unyielding([0], me) == {} and "cpu_affinity" not in asked[0]


@pytest.mark.parametrize("files,group,on", [
    ({"autogroup": "/autogroup-5 nice 10\n", "cgroup": "0::/\n"}, ("/autogroup-5", 10), True),
    ({"autogroup": "", "cgroup": "1:cpu:/\n0::/\n"}, ("/", 0), True),        # empty: the root group
    ({"autogroup": "", "cgroup": "0::/docker/abc\n"}, ("/", 0), False),      # a container's cpu cgroup
    ({"autogroup": "", "cgroup": "1:cpu,cpuacct:/user.slice\n"}, ("/", 0), False),
    ({"cgroup": "0::/\n"}, None, True),                                      # no autogroup file
])
def test_the_autogroup_is_read_from_proc(monkeypatch, tmp_path, files, group, on):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "enabled").write_text("1\n")
    where = {"/proc/sys/kernel/sched_autogroup_enabled": "enabled", "/proc/self/cgroup": "cgroup",
             "/proc/self/autogroup": "autogroup"}
    monkeypatch.setattr(threads, "Path", lambda p: tmp_path / where[p])
    assert threads._autogroup("self") == group and threads._autogroup_on() is on


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
