"""Fault injection on the results store: concurrent processes, a killed owner, damaged and
read-only stores, lost manifests (Ctrl-C and a crashed Ray driver: test_interrupts.py; bad input
and text from data: test_bad_input.py). Each test asserts the message a user sees and that
nothing finished is lost or computed twice (the attempts log counts every computation)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from test_sweep import _start, _tiny, _write
from tuneoff import claims
from tuneoff.cli import app
from tuneoff.store import Store

TINY = ["task=demo", "model=tiny-bert", "shots=2", "train.max_steps=2", "eval.max_examples=20", "seed=0"]


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _flat(text: str) -> str:
    return " ".join(text.split())


def _computations(store: Store) -> dict[str, int]:
    """run_id -> how many attempts finished with a result: done, failed, or adopted (computed by a
    process killed after writing its manifest, taken in from that manifest)."""
    return {rid: c.get("done", 0) + c.get("failed", 0) + c.get("adopted", 0)
            for rid, c in claims.attempt_counts(store).items()}


def _claims_left(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory) -> Path:
    """A results folder with three finished tiny runs (made once; tests copy it)."""
    out = tmp_path_factory.mktemp("three") / "res"
    res = _cli("run", *TINY, "data_seed=[0,1,2]", f"output_dir={out}")
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def folder(three_runs, tmp_path) -> Path:
    out = tmp_path / "res"
    shutil.copytree(three_runs, out)
    return out


def _manifests(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in (out / "runs").glob("*/manifest.json")}


def _run_again(out: Path):
    return _cli("run", *TINY, "data_seed=[0,1,2]", f"output_dir={out}")


# -- several processes on one folder ------------------------------------------------------------

def test_two_sweeps_started_together_compute_each_run_once(toy_task, tmp_path):
    out = tmp_path / "res"
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, shots=2, data_seed=list(range(12)))})
    first = _start(cfg, tmp_path / "a.txt", tmp_path)
    time.sleep(0.5)
    second = _start(cfg, tmp_path / "b.txt", tmp_path)
    assert first.wait(timeout=300) == 0, (tmp_path / "a.txt").read_text()[-2000:]
    assert second.wait(timeout=300) == 0, (tmp_path / "b.txt").read_text()[-2000:]
    store = Store(out)
    assert store.counts() == {"done": 12}
    assert sorted(_computations(store).values()) == [1] * 12  # 12 computations for 12 runs
    assert _claims_left(store.path) == 0
    logs = _flat((tmp_path / "a.txt").read_text() + (tmp_path / "b.txt").read_text())
    assert "recorded by another process" in logs or "waiting for" in logs  # they did share the plan


def test_a_killed_owners_runs_are_taken_over_and_nothing_is_computed_twice(toy_task, tmp_path):
    out = tmp_path / "res"
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, shots=2, data_seed=list(range(6)))})
    victim = _start(cfg, tmp_path / "a.txt", tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "results.sqlite").is_file():
        time.sleep(0.05)
    survivor = _start(cfg, tmp_path / "b.txt", tmp_path)
    while time.time() < deadline:  # kill the first while it holds a claim, after a run of its own
        with contextlib.suppress(sqlite3.OperationalError):
            with contextlib.closing(sqlite3.connect(out / "results.sqlite", timeout=30)) as con:
                held = con.execute("SELECT COUNT(*) FROM claims WHERE pid=?", (victim.pid,)).fetchone()[0]
                mine = con.execute("SELECT COUNT(*) FROM attempts WHERE owner LIKE ? AND outcome='done'",
                                   (f"%/{victim.pid}/%",)).fetchone()[0]
            if held and mine:
                break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=300) == 0, (tmp_path / "b.txt").read_text()[-2000:]
    store = Store(out)
    assert store.counts() == {"done": 6}
    assert sorted(_computations(store).values()) == [1] * 6
    outcomes = [o for c in claims.attempt_counts(store).values() for o in c]
    assert outcomes.count("abandoned") == 1  # the run the victim was computing, taken over at once


def _fake_claim(store: Store, run_id: str, host: str, pid: int, pid_start: float, expires: float) -> None:
    with store.transaction(immediate=True) as con:
        cur = con.execute("INSERT INTO attempts (run_id, owner, started, outcome) VALUES (?,?,?,'running')",
                          (run_id, f"{host}/{pid}/other", time.time()))
        con.execute("INSERT INTO claims VALUES (?,?,?,?,?,?,?)",
                    (run_id, f"{host}/{pid}/other", host, pid, pid_start, cur.lastrowid, expires))


def test_a_claim_on_another_machine_is_respected_until_its_lease_expires(tmp_path):
    store = Store(tmp_path)
    _fake_claim(store, "r1", "elsewhere", 1, 0.0, time.time() + 60)
    assert claims.claim(store, "r1", time.time()) == "busy"
    _fake_claim(store, "r2", "elsewhere", 1, 0.0, time.time() - 1)  # its owner stopped renewing
    assert claims.claim(store, "r2", time.time()) == "claimed"
    assert claims.attempt_counts(store)["r2"] == {"abandoned": 1, "running": 1}
    claims.release(store)


def test_a_dead_process_of_this_machine_is_taken_over_at_once(tmp_path):
    import psutil

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    start = psutil.Process(gone.pid).create_time()
    gone.wait()
    store = Store(tmp_path)
    _fake_claim(store, "r", claims.me().host, gone.pid, start, time.time() + 600)
    assert claims.claim(store, "r", time.time()) == "claimed"
    claims.release(store)


def test_repair_refuses_a_folder_that_a_live_process_is_using(folder):
    store = Store(folder)
    _fake_claim(store, "r", "elsewhere", 1, 0.0, time.time() + 60)
    res = _cli("repair", folder)
    assert res.exit_code == 2 and "is in use" in _flat(res.output), res.output


def test_a_live_owner_renews_its_lease_so_a_long_run_is_never_taken_over(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEOFF_LEASE_S", "0.4")
    store = Store(tmp_path)
    assert claims.claim(store, "long", time.time()) == "claimed"
    time.sleep(1.5)  # several leases long
    mine = claims._OWNER
    monkeypatch.setattr(claims, "_OWNER", claims.Owner())  # another process of this machine, alive
    assert claims.claim(store, "long", time.time()) == "busy"
    monkeypatch.setattr(claims, "_OWNER", mine)
    claims.release(store)
    monkeypatch.setattr(claims, "_OWNER", claims.Owner())
    assert claims.claim(store, "long", time.time()) == "claimed"  # released: free at once
    claims.release(store)


# -- a damaged store ----------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "garbled", "not sqlite"])
def test_a_damaged_store_is_named_nothing_is_overwritten_and_repair_rebuilds_it(folder, damage):
    db = folder / "results.sqlite"
    before = _manifests(folder)
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "garbled":
        data = bytearray(db.read_bytes())
        data[100:len(data)] = os.urandom(len(data) - 100)
        db.write_bytes(bytes(data))
    else:
        db.write_text("these are not the results you are looking for\n" * 100)
    for args in (["run", *TINY, "data_seed=[0,1,2]", f"output_dir={folder}"], ["show", folder],
                 ["report", folder]):
        res = _cli(*args)
        text = _flat(res.output)
        assert res.exit_code == 2 and "Traceback" not in text, (args, res.output)
        assert f"{db}" in text and f"tuneoff repair {folder}" in text, text
        assert ("empty (0 bytes)" if damage == "empty" else "damaged") in text, text
    assert _manifests(folder) == before  # nothing overwritten, nothing run
    rep = _cli("repair", folder)
    assert rep.exit_code == 0 and "rows written from manifests: 3" in _flat(rep.output), rep.output
    assert list(folder.glob("results.sqlite.damaged-*"))  # kept aside, not deleted
    again = _run_again(folder)
    assert again.exit_code == 0 and again.output.count("skipped (done)") == 3, again.output


def test_a_missing_store_beside_manifests_is_damage_not_a_fresh_start(folder):
    (folder / "results.sqlite").unlink()
    res = _run_again(folder)
    assert res.exit_code == 2 and "is missing" in _flat(res.output) and "tuneoff repair" in res.output
    assert _cli("repair", folder).exit_code == 0
    assert _run_again(folder).output.count("skipped (done)") == 3


def test_show_and_report_leave_the_store_file_as_it_is(folder):
    db = folder / "results.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as con, con:  # a store from before the attempts log
        con.execute("DROP TABLE attempts")
        con.execute("DROP TABLE claims")
    before = db.read_bytes()
    assert _cli("show", folder).exit_code == 0
    assert _cli("report", folder, "-o", folder / "r.html").exit_code == 0
    assert db.read_bytes() == before


def test_a_row_with_invalid_json_is_reported_and_skipped_then_repaired(folder):
    store = Store(folder)
    bad = sorted(store.statuses())[0]
    with contextlib.closing(sqlite3.connect(store.path)) as con, con:
        con.execute("UPDATE runs SET record='{not json' WHERE run_id=?", (bad,))
    shown = _cli("show", folder)
    assert shown.exit_code == 0 and f"{bad} (invalid JSON" in _flat(shown.output), shown.output
    rep = _cli("report", folder, "-o", folder / "r.html")
    assert rep.exit_code == 0 and "could not be read" in (folder / "r.md").read_text(), rep.output
    assert _run_again(folder).output.count("skipped (done)") == 3  # a done row is still done
    assert _cli("repair", folder).exit_code == 0
    assert Store(folder).get(bad) == json.loads((folder / "runs" / bad / "manifest.json").read_text())
    assert sorted(_computations(Store(folder)).values()) == [1, 1, 1]


# -- read-only -----------------------------------------------------------------------------------

@contextlib.contextmanager
def read_only(path: Path):
    """Make `path` unwritable for this process: chmod, or (root ignores modes) the immutable flag."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("running as root on a filesystem without chattr +i: cannot make a path read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("what", ["store", "folder", "parent"])
def test_a_read_only_store_or_folder_stops_before_any_run(folder, tmp_path, what):
    target = {"store": folder / "results.sqlite", "folder": folder, "parent": tmp_path / "locked"}[what]
    if what == "parent":
        target.mkdir()
    out = target / "new" if what == "parent" else folder
    with read_only(target):
        res = _cli("run", *TINY, "data_seed=5", f"output_dir={out}")
    text = _flat(res.output)
    assert res.exit_code == 2 and "Traceback" not in text, res.output
    assert ("cannot be written" if what == "store" else "is not writable") in text, text
    assert "run(s)" not in text  # stopped before the first run, not after training
    assert len(_manifests(folder)) == 3


def test_a_store_that_fails_after_the_run_keeps_the_result_in_the_manifest(folder, monkeypatch):
    def unwritable(con, record):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Store, "_insert", staticmethod(unwritable))
    res = _cli("run", *TINY, "data_seed=7", f"output_dir={folder}")
    monkeypatch.undo()
    text = _flat(res.output)
    assert res.exit_code == 1 and "Traceback" not in text, res.output
    assert "is kept in" in text and f"tuneoff repair {folder}" in text, text
    new = set(_manifests(folder)) - set(Store(folder).statuses())
    assert len(new) == 1
    rid = new.pop()
    assert json.loads((folder / "runs" / rid / "manifest.json").read_text())["status"] == "done"
    rep = _cli("repair", folder)
    assert rep.exit_code == 0 and "rows written from manifests: 1" in _flat(rep.output), rep.output
    again = _cli("run", *TINY, "data_seed=7", f"output_dir={folder}")
    assert "skipped (done)" in again.output, again.output  # brought in, not computed again


def test_a_run_folder_that_fails_after_the_run_keeps_the_record_elsewhere(folder, tmp_path, monkeypatch):
    import tempfile

    from tuneoff import store as store_mod

    real = store_mod.write_json_atomic

    def failing(path, data):
        if folder in Path(path).parents:
            raise PermissionError(13, "Permission denied")
        return real(path, data)

    monkeypatch.setattr(store_mod, "write_json_atomic", failing)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    res = _cli("run", *TINY, "data_seed=8", f"output_dir={folder}")
    monkeypatch.undo()
    kept = list((tmp_path / "tmp" / "tuneoff-rescued").glob("*.json"))
    assert res.exit_code == 1 and len(kept) == 1, res.output
    assert f"tuneoff repair {folder} {kept[0]}" in _flat(res.output), res.output
    rep = _cli("repair", folder, kept[0])
    assert rep.exit_code == 0 and "rows written from manifests: 1" in _flat(rep.output), rep.output
    assert "skipped (done)" in _cli("run", *TINY, "data_seed=8", f"output_dir={folder}").output


def test_a_manifest_without_its_row_is_taken_in_not_computed_again(folder):
    """A kill between the manifest and the row: the next run adopts the manifest."""
    store = Store(folder)
    rid = sorted(store.statuses())[0]
    with contextlib.closing(sqlite3.connect(store.path)) as con, con:
        con.execute("DELETE FROM runs WHERE run_id=?", (rid,))
    res = _run_again(folder)
    assert res.exit_code == 0 and res.output.count("skipped (done)") == 2, res.output
    assert "done (recovered from its manifest)" in res.output
    store = Store(folder)
    assert store.get(rid)["status"] == "done"
    assert claims.attempt_counts(store)[rid] == {"done": 1, "adopted": 1}  # adopted, not computed
    assert [c for r, c in claims.attempt_counts(store).items() if r != rid] == [{"done": 1}] * 2


# -- lost manifests ------------------------------------------------------------------------------

def test_a_deleted_manifest_comes_back_on_a_sweep_with_nothing_to_run(folder, tmp_path):
    cfg = _write(tmp_path / "s.yaml", {"defaults": {"task": "demo", "model": "tiny-bert", "shots": 2, "seed": 0,
                                                    "data_seed": [0, 1, 2], "train.max_steps": 2,
                                                    "eval.max_examples": 20, "output_dir": str(folder)}})
    before = _manifests(folder)
    victim = sorted(before)[0]
    (folder / "runs" / victim / "manifest.json").unlink()
    res = _cli("sweep", cfg)
    assert res.exit_code == 0 and "to run now: 0" in _flat(res.output), res.output
    assert _manifests(folder) == before
    (folder / "runs" / victim / "manifest.json").unlink()
    rep = _cli("repair", folder)
    assert "manifests restored: 1" in _flat(rep.output) and _manifests(folder) == before
