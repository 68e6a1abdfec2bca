"""Interrupted drivers: Ctrl-C, SIGTERM and SIGHUP stop a sweep the same way (exit 128 + the
signal's number, a message, its claims given back, every finished run kept); a Ray cluster whose
driver died is ended, and a live driver's is not. Each test asserts what a user sees and that
nothing finished is lost."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from test_faults import _claims_left, _cli, _computations, _flat
from test_sweep import _tiny, _write
from tuneoff.store import Store


@pytest.fixture(autouse=True)
def _signals_as_in_a_terminal():
    """The suite run as a shell's background job has SIGINT ignored, and under `nohup` SIGHUP too;
    an ignored signal stays ignored in the sweeps these tests start (and `handled` leaves it so, as
    it should). Each test here starts from a terminal's dispositions, and the ones found come back."""
    wanted = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL}
    found = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}
    try:
        yield
    finally:
        for signum, handler in found.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


# -- Ctrl-C, SIGTERM, SIGHUP -----------------------------------------------------------------------

RUNS = 6


def _query(db, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        return con.execute(sql).fetchall()


def _claimed(out) -> bool:
    """An attempt has started: the sweep claimed its first run (and stays so)."""
    db = out / "results.sqlite"
    try:
        return db.is_file() and _query(db, "SELECT COUNT(*) FROM attempts")[0][0] > 0
    except sqlite3.OperationalError:  # the sweep is creating its tables
        return False


def _finished(out) -> bool:
    return bool(list(out.glob("runs/*/manifest.json")))


def _wait_for(ready, out, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll `ready(out)` until it holds; the sweep ending first, or `timeout` s passing, fails."""
    deadline = time.time() + timeout
    while not ready(out):
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended ({proc.returncode}) before {ready.__name__}: {proc.communicate()}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"not {ready.__name__} after {timeout} s")
        time.sleep(0.05)


def _sweep(toy_task, tmp_path, runs: int, *options: str, **env: str):
    """Start `tuneoff sweep` of `runs` tiny runs in a process of its own: (results folder, config, process)."""
    out = tmp_path / "res"
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, shots=2, data_seed=list(range(runs)))})
    proc = subprocess.Popen([sys.executable, "-m", "tuneoff.cli", "sweep", str(cfg), *options], cwd=tmp_path,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return out, cfg, proc


def _stopped(proc: subprocess.Popen, signum: int, out, runs: int) -> list[str]:
    """Send `signum`, then check what the sweep left: its exit code and message, no claim and no
    attempt left running, every finished run stored (row and manifest). The done runs' ids."""
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, stderr[-2000:]
    store = Store(out)
    done = sorted(r.run_id for r in store.records("done"))
    said = _flat(stderr)
    assert (f"stopped by {signal.Signals(signum).name}: {len(done)} of {runs} run(s) finished and kept in {out}/; "
            in said and "not recorded; run the same command again to resume" in said), stderr
    assert _claims_left(store.path) == 0  # the next process need not wait out a lease
    outcomes = {o for (o,) in _query(store.path, "SELECT DISTINCT outcome FROM attempts")}
    assert outcomes <= {"done", "released"}, outcomes  # none left running
    assert sorted(p.parent.name for p in out.glob("runs/*/manifest.json")) == done  # row and manifest
    return done


@pytest.mark.parametrize("signum, when", [(signal.SIGINT, _finished), (signal.SIGTERM, _finished),
                                          (signal.SIGTERM, _claimed), (signal.SIGHUP, _claimed)],
                         ids=["INT-finished", "TERM-finished", "TERM-claimed", "HUP-claimed"])
def test_a_stop_signal_exits_128_plus_its_number_keeps_every_finished_run_and_gives_back_its_claims(
        toy_task, tmp_path, signum, when):
    out, cfg, proc = _sweep(toy_task, tmp_path, RUNS)
    _wait_for(when, out, proc)
    done = _stopped(proc, signum, out, RUNS)
    assert len(done) < RUNS and (len(done) >= 1 or when is _claimed)
    res = _cli("sweep", cfg)
    assert res.exit_code == 0 and f"already done: {len(done)};" in _flat(res.output), res.output
    computed = _computations(Store(out))
    assert len(computed) == RUNS and set(computed.values()) == {1}, computed  # each once, none twice


def _put_with_signal(tmp_path, monkeypatch, signum):
    """Store one record, `signum` arriving right after its manifest is written (inside the put)."""
    from tuneoff import store as store_mod

    real = store_mod.write_json_atomic

    def write_then_signal(path, data):
        real(path, data)
        os.kill(os.getpid(), signum)
        time.sleep(0.2)  # the signal is delivered here, inside the put

    monkeypatch.setattr(store_mod, "write_json_atomic", write_then_signal)
    store = Store(tmp_path)
    rec = {"run_id": "r1", "status": "done", "created_at": "2026-01-01T00:00:00",
           "config": {"task": "demo", "model": "m", "method": {"name": "finetune"}, "shots": 2,
                      "data_seed": 0, "seed": 0}}
    store.put(rec)
    return store


def test_a_ctrl_c_between_manifest_and_row_waits_until_the_row_is_written(tmp_path, monkeypatch):
    """The window the sweeps above can hit: Ctrl-C right after a run's manifest is written. The
    interrupt still comes, but only once the run's row is in the store."""
    with pytest.raises(KeyboardInterrupt):
        _put_with_signal(tmp_path, monkeypatch, signal.SIGINT)
    store = Store(tmp_path)
    assert store.is_done("r1") and store.manifest("r1").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


class _Told(Exception):
    pass


def _tell(signum, frame):
    raise _Told(signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_sigterm_or_sighup_between_manifest_and_row_is_held_as_ctrl_c_is(tmp_path, monkeypatch, signum):
    previous = signal.signal(signum, _tell)
    try:
        with pytest.raises(_Told):
            _put_with_signal(tmp_path, monkeypatch, signum)
        assert signal.getsignal(signum) is _tell  # delivered to the handler in place, put back
    finally:
        signal.signal(signum, previous)
    store = Store(tmp_path)
    assert store.is_done("r1") and store.manifest("r1").is_file()


def test_handled_raises_stopped_for_each_signal_and_leaves_an_ignored_one_ignored():
    """`nohup` ignores SIGHUP: a sweep started so goes on when its terminal closes."""
    from tuneoff import signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    before = {s: signal.getsignal(s) for s in signals.SIGNALS}
    try:
        with signals.handled():
            for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
                with pytest.raises(KeyboardInterrupt) as stop:
                    os.kill(os.getpid(), signum)
                    time.sleep(1)
                assert isinstance(stop.value, signals.Stopped) and stop.value.exit_code == code
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert {s: signal.getsignal(s) for s in signals.SIGNALS} == before  # put back
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_keyboard_interrupt_raised_anew_for_a_sigterm_still_says_sigterm():
    """Ray, while it waits for tasks, catches the signal's exception and raises a KeyboardInterrupt
    of its own."""
    from tuneoff import signals

    with pytest.raises(signals.Stopped) as stop:
        with signals.handled():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            except KeyboardInterrupt:
                raise KeyboardInterrupt from None
    assert stop.value.name == "SIGTERM" and stop.value.exit_code == 143


# -- Ray -----------------------------------------------------------------------------------------

def _sleeper() -> tuple[subprocess.Popen, float]:
    import psutil

    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    return p, psutil.Process(p.pid).create_time()


def test_a_dead_drivers_cluster_is_ended_but_a_live_drivers_is_not(tmp_path, monkeypatch):
    import psutil

    from tuneoff import raywatch

    monkeypatch.setenv("TUNEOFF_CACHE", str(tmp_path))
    reg = raywatch.registry_dir()
    reg.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_start = psutil.Process(gone.pid).create_time()
    gone.wait()
    orphan, orphan_start = _sleeper()
    kept, kept_start = _sleeper()
    me = psutil.Process()
    (reg / "dead.json").write_text(json.dumps({"driver_pid": gone.pid, "driver_start": gone_start,
                                               "session_dir": "", "pids": {orphan.pid: orphan_start}}))
    (reg / "live.json").write_text(json.dumps({"driver_pid": me.pid, "driver_start": me.create_time(),
                                               "session_dir": "", "pids": {kept.pid: kept_start}}))
    try:
        assert raywatch.clean_stale() == 1
        assert orphan.wait(timeout=10) is not None
        assert kept.poll() is None and (reg / "live.json").is_file() and not (reg / "dead.json").exists()
    finally:
        for p in (orphan, kept):
            p.kill()
            p.wait()


@pytest.mark.ray
def test_a_sigkilled_ray_driver_leaves_no_cluster_behind(toy_task, tmp_path):
    import psutil

    pytest.importorskip("ray")
    out = tmp_path / "res"
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, shots=2, data_seed=list(range(20)))})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TUNEOFF_CACHE": str(tmp_path)}
    driver = subprocess.Popen([sys.executable, "-m", "tuneoff.cli", "sweep", str(cfg), "--executor", "ray",
                               "--num-cpus", "1"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    registry = tmp_path / "ray-clusters" / f"{driver.pid}.json"
    deadline = time.time() + 180
    while time.time() < deadline and not list(out.glob("runs/*/manifest.json")):
        time.sleep(0.2)
    cluster = json.loads(registry.read_text())
    procs = [psutil.Process(int(pid)) for pid in cluster["pids"] if psutil.pid_exists(int(pid))]
    assert any("Agent" in " ".join(p.cmdline()) for p in procs), [p.cmdline() for p in procs]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _, alive = psutil.wait_procs(procs, timeout=60)
    assert not alive, [p.cmdline() for p in alive]
    assert not registry.exists()


@pytest.mark.ray
def test_a_sigterm_to_a_ray_driver_stops_its_runs_keeps_what_finished_and_ends_its_cluster(toy_task, tmp_path):
    import psutil

    pytest.importorskip("ray")
    out, _, proc = _sweep(toy_task, tmp_path, 12, "--executor", "ray", "--num-cpus", "2",
                          TUNEOFF_CACHE=str(tmp_path))
    _wait_for(_finished, out, proc)
    cluster = psutil.Process(proc.pid).children(recursive=True)  # its daemons and the workers of its runs
    assert any(p.name() == "raylet" for p in cluster), [p.name() for p in cluster]
    done = _stopped(proc, signal.SIGTERM, out, 12)
    assert 1 <= len(done) < 12
    _, alive = psutil.wait_procs(cluster, timeout=60)
    assert not alive, [p.cmdline() for p in alive]
    assert not (tmp_path / "ray-clusters" / f"{proc.pid}.json").exists()
