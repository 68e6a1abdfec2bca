"""Interrupted drivers: Ctrl-C exits 130 and gives back its claims; a Ray cluster whose driver died
is ended, and a live driver's is not. Each test asserts what a user sees and that nothing
finished is lost."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_faults import _claims_left, _cli, _computations, _flat
from test_sweep import _tiny, _write
from tuneoff.store import Store

# -- Ctrl-C --------------------------------------------------------------------------------------

def test_ctrl_c_exits_130_with_its_message_and_releases_its_claim(toy_task, tmp_path):
    out = tmp_path / "res"
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, shots=2, data_seed=list(range(6)))})
    proc = subprocess.Popen([sys.executable, "-m", "tuneoff.cli", "sweep", str(cfg)], cwd=tmp_path,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("runs/*/manifest.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted; finished runs are in the results store" in stderr
    store = Store(out)
    assert _claims_left(store.path) == 0  # the next process need not wait out a lease
    done = store.counts().get("done", 0)
    assert 1 <= done < 6
    res = _cli("sweep", cfg)
    assert res.exit_code == 0 and f"already done: {done};" in _flat(res.output), res.output
    assert sorted(_computations(store).values()) == [1] * 6


def test_a_ctrl_c_between_manifest_and_row_waits_until_the_row_is_written(tmp_path, monkeypatch):
    """The window the sweep above can hit: Ctrl-C right after a run's manifest is written. The
    interrupt still comes, but only once the run's row is in the store."""
    from tuneoff import store as store_mod

    real = store_mod.write_json_atomic

    def write_then_ctrl_c(path, data):
        real(path, data)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the signal is delivered here, inside the put

    monkeypatch.setattr(store_mod, "write_json_atomic", write_then_ctrl_c)
    store = Store(tmp_path)
    rec = {"run_id": "r1", "status": "done", "created_at": "2026-01-01T00:00:00",
           "config": {"task": "demo", "model": "m", "method": {"name": "finetune"}, "shots": 2,
                      "data_seed": 0, "seed": 0}}
    with pytest.raises(KeyboardInterrupt):
        store.put(rec)
    assert store.is_done("r1") and store.manifest("r1").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


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
