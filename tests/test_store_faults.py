"""Faults of the disk under a results store, injected: a full disk (SQLite's "database or disk is
full", its "disk I/O error" with no space left, ENOSPC and EDQUOT from the OS), a store locked by
another process; what `repair` keeps (attempts, claims, the original store when it cannot finish)
and the permissions of what the store writes (a read-only folder and broken manifests:
test_store_reads.py). Each test asserts the message a user sees, its exit code, and that nothing
finished is lost (the store's bytes, the manifests)."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sqlite3
import time
from collections import namedtuple
from pathlib import Path

import pytest

from test_faults import TINY, _cli, _computations, _fake_claim, _flat, _manifests, folder, three_runs  # noqa: F401
from tuneoff import claims, storefile
from tuneoff.repair import REBUILD
from tuneoff.selection.cache import FitCache
from tuneoff.store import Store, StoreDamaged, StoreError, StoreFull, umask, write_json_atomic

FULL_SQL = sqlite3.OperationalError("database or disk is full")
NO_SPACE = namedtuple("usage", "total used free")(10 << 30, 10 << 30, 0)


class _Failing:
    """A SQLite connection whose statements matching `sql` raise `error`, as a disk that fails
    would make them; `rolled_back`: SQLite has ended the transaction when it says so."""

    def __init__(self, con, sql: str, error: Exception, rolled_back: bool):
        self._con, self._sql, self._error, self._rolled_back = con, sql, error, rolled_back

    def _fail(self, statement: str) -> None:
        if re.search(self._sql, statement):
            if self._rolled_back and self._con.in_transaction:
                self._con.execute("ROLLBACK")
            raise self._error

    def execute(self, statement, *args):
        self._fail(statement)
        return self._con.execute(statement, *args)

    def executemany(self, statement, *args):
        self._fail(statement)
        return self._con.executemany(statement, *args)

    def executescript(self, script):
        self._fail(script)
        return self._con.executescript(script)

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        self._con.__enter__()
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)


def _inject(monkeypatch, sql: str, error: Exception, where: str = "", rolled_back: bool = False,
            unless: str | None = None) -> None:
    """Make every SQLite statement matching `sql` on a database whose path holds `where` (and not
    `unless`) fail."""
    real = sqlite3.connect

    def connect(database, *args, **kwargs):
        con = real(database, *args, **kwargs)
        hit = where in str(database) and (unless is None or unless not in str(database))
        return _Failing(con, sql, error, rolled_back) if hit else con

    monkeypatch.setattr(sqlite3, "connect", connect)


def _state(out: Path) -> dict[str, bytes | None]:
    """Every file below `out` (its name and bytes): nothing created, removed or changed."""
    return {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in sorted(out.rglob("*"))}


def _assert_full_message(text: str, path: Path) -> None:
    assert "Traceback" not in text, text
    assert f"{path} cannot be written: the disk is full" in text and "free space on the filesystem at" in text, text
    assert "damaged" not in text and "tuneoff repair" not in text, text


# -- one place that tells the faults apart --------------------------------------------------------

CASES = [  # (the error, the disk's free bytes, its kind, what its message must say)
    (sqlite3.OperationalError("database or disk is full"), None, storefile.FULL, "the disk is full"),
    (OSError(errno.ENOSPC, "No space left on device"), None, storefile.FULL, "free space on"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), None, storefile.FULL, "nothing is lost"),
    (sqlite3.OperationalError("disk I/O error"), 0, storefile.FULL, "the disk is full"),
    (sqlite3.OperationalError("unable to open database file"), 0, storefile.FULL, "the disk is full"),
    (sqlite3.OperationalError("attempt to write a readonly database"), None, storefile.READ_ONLY, "writable"),
    (sqlite3.OperationalError("unable to open database file"), None, storefile.READ_ONLY, "another output_dir"),
    (OSError(errno.EROFS, "Read-only file system"), None, storefile.READ_ONLY, "make it writable"),
    (OSError(errno.EACCES, "Permission denied"), None, storefile.READ_ONLY, "make it writable"),
    (OSError(errno.EPERM, "Operation not permitted"), None, storefile.READ_ONLY, "make it writable"),
    (sqlite3.OperationalError("database is locked"), None, storefile.LOCKED, "another process"),
    (sqlite3.OperationalError("database table is locked"), None, storefile.LOCKED, "wait until"),
    (sqlite3.DatabaseError("file is not a database"), None, storefile.DAMAGED, "tuneoff repair"),
    (sqlite3.DatabaseError("database disk image is malformed"), None, storefile.DAMAGED, "tuneoff repair"),
    (sqlite3.DatabaseError("file is encrypted or is not a database"), None, storefile.DAMAGED, "tuneoff repair"),
    (sqlite3.OperationalError("disk I/O error"), None, storefile.IO, "check the disk"),
    (OSError(errno.EIO, "Input/output error"), None, storefile.IO, "check the disk"),
]


@pytest.mark.parametrize("error,free,kind,says", CASES, ids=[f"{k}:{e}" for e, _, k, _ in CASES])
def test_each_fault_is_told_apart_and_says_what_to_do(tmp_path, monkeypatch, error, free, kind, says):
    if free is not None:
        monkeypatch.setattr(shutil, "disk_usage", lambda p: NO_SPACE)
    path = tmp_path / "results.sqlite"
    got = storefile.store_error(error, path)
    assert isinstance(got, StoreError) and got.kind == kind
    text = str(got)
    assert str(path) in text and says in text, text
    assert ("tuneoff repair" in text) == (kind == storefile.DAMAGED), text


def test_an_sql_error_is_no_store_fault(tmp_path):
    bug = sqlite3.OperationalError("no such column: nope")
    assert storefile.store_error(bug, tmp_path / "results.sqlite") is bug


# -- a full disk ----------------------------------------------------------------------------------

def test_a_full_disk_is_not_called_damage_before_a_run(folder, monkeypatch):
    """A full disk fails SQLite's check with "disk I/O error" (it cannot size its -shm file)."""
    before = _state(folder)
    _inject(monkeypatch, "quick_check", sqlite3.OperationalError("disk I/O error"), str(folder))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: NO_SPACE)
    res = _cli("run", *TINY, "data_seed=5", f"output_dir={folder}")
    monkeypatch.undo()
    assert res.exit_code == 2, res.output
    _assert_full_message(_flat(res.output), folder / "results.sqlite")
    assert "run(s)" not in res.output  # stopped before any run
    assert _state(folder) == before


def test_a_full_disk_at_the_write_check_stops_the_run_before_it_starts(folder, monkeypatch):
    before = _state(folder)
    _inject(monkeypatch, "CREATE TABLE tuneoff_write_check", FULL_SQL, str(folder))
    res = _cli("run", *TINY, "data_seed=5", f"output_dir={folder}")
    monkeypatch.undo()
    assert res.exit_code == 2, res.output
    _assert_full_message(_flat(res.output), folder / "results.sqlite")
    assert _state(folder) == before


@pytest.mark.parametrize("command", ["show", "recommend", "report"])
def test_a_full_disk_still_shows_the_results_and_writes_nothing(folder, tmp_path, monkeypatch, command):
    """A full disk fails a connection that needs a -shm file; an immutable one needs none."""
    before = _state(folder)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: NO_SPACE)
    _inject(monkeypatch, ".", sqlite3.OperationalError("disk I/O error"), str(folder), unless="immutable=1")
    args = ["-o", tmp_path / "r.html", "--csv", tmp_path / "r.csv"] if command == "report" else []
    res = _cli(command, folder, *args)
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert _state(folder) == before


def test_a_full_disk_while_reading_is_named_not_called_damage(folder, monkeypatch):
    _inject(monkeypatch, "SELECT run_id, record FROM runs", FULL_SQL, str(folder))
    res = _cli("show", folder)
    assert res.exit_code == 2, res.output
    _assert_full_message(_flat(res.output), folder / "results.sqlite")


def test_a_full_disk_at_a_finished_runs_row_names_its_manifest_and_loses_nothing(folder, monkeypatch):
    db = folder / "results.sqlite"
    _inject(monkeypatch, "^INSERT OR REPLACE INTO runs", FULL_SQL, str(folder), rolled_back=True)
    res = _cli("run", *TINY, "data_seed=7", f"output_dir={folder}")
    monkeypatch.undo()
    text = _flat(res.output)
    assert res.exit_code == 1 and "Traceback" not in text, res.output
    new = sorted(set(_manifests(folder)) - set(Store(folder).statuses()))
    assert len(new) == 1, text
    manifest = folder / "runs" / new[0] / "manifest.json"
    assert f"is kept in {manifest}" in text and "the disk is full" in text and f"tuneoff repair {folder}" in text
    assert json.loads(manifest.read_text())["status"] == "done"
    rep = _cli("repair", folder)
    assert rep.exit_code == 0 and "rows written from manifests: 1" in _flat(rep.output), rep.output
    assert not list(folder.glob("results.sqlite.damaged-*"))  # a healthy store is never moved aside
    assert Store(folder).counts() == {"done": 4}
    assert db.is_file()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_at_a_finished_runs_manifest_keeps_the_record_elsewhere(folder, tmp_path, monkeypatch, code):
    import tempfile

    from tuneoff import store as store_mod

    real = store_mod.write_json_atomic

    def full(path, data):
        if folder in Path(path).parents:
            raise OSError(code, os.strerror(code))
        return real(path, data)

    monkeypatch.setattr(store_mod, "write_json_atomic", full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    res = _cli("run", *TINY, "data_seed=8", f"output_dir={folder}")
    monkeypatch.undo()
    text = _flat(res.output)
    kept = list((tmp_path / "tmp" / "tuneoff-rescued").glob("*.json"))
    assert res.exit_code == 1 and "Traceback" not in text and len(kept) == 1, res.output
    assert "the disk is full" in text and "free space on" in text and f"tuneoff repair {folder} {kept[0]}" in text
    assert len(_manifests(folder)) == 3 and Store(folder).counts() == {"done": 3}


def test_a_full_disk_for_the_manifest_and_the_temp_folder_says_so_without_a_traceback(folder, monkeypatch):
    from tuneoff import store as store_mod

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod, "write_json_atomic", full)
    res = _cli("run", *TINY, "data_seed=8", f"output_dir={folder}")
    monkeypatch.undo()
    text = _flat(res.output)
    assert res.exit_code == 1 and "Traceback" not in text, res.output
    assert "the disk is full" in text and "could not be kept in" in text, text


def test_repair_on_a_full_disk_leaves_a_healthy_store_where_it_is(folder, monkeypatch):
    """The report: `repair` moved the healthy store aside, then failed, leaving a 0-byte store."""
    rid = sorted(_manifests(folder))[0]
    with contextlib.closing(sqlite3.connect(folder / "results.sqlite")) as con, con:
        con.execute("DELETE FROM runs WHERE run_id=?", (rid,))  # repair has a row to write
    before = _state(folder)
    for sql, error in (("quick_check", sqlite3.OperationalError("disk I/O error")), ("^INSERT", FULL_SQL)):
        monkeypatch.setattr(shutil, "disk_usage", lambda p: NO_SPACE)
        _inject(monkeypatch, sql, error, str(folder), rolled_back=True)
        res = _cli("repair", folder)
        monkeypatch.undo()
        assert res.exit_code == 2, res.output
        _assert_full_message(_flat(res.output), folder / "results.sqlite")
        assert _state(folder) == before, sql
    assert _cli("repair", folder).exit_code == 0 and Store(folder).counts() == {"done": 3}


def _damage(db: Path) -> None:
    """Overwrite the root page of the runs table: SQLite's check fails, the other tables still read."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        size = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='runs'").fetchone()[0]
    data = bytearray(db.read_bytes())
    data[(root - 1) * size:root * size] = b"\xff" * size
    db.write_bytes(bytes(data))


def test_repair_without_room_to_rebuild_refuses_and_changes_nothing(folder, monkeypatch):
    _damage(folder / "results.sqlite")
    before = _state(folder)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: NO_SPACE._replace(free=40_000))
    res = _cli("repair", folder)
    text = _flat(res.output)
    assert res.exit_code == 2 and "Traceback" not in text, res.output
    assert "is to be rebuilt" in text and "free space there" in text and "nothing was changed" in text, text
    assert _state(folder) == before


def test_a_rebuild_that_fails_midway_leaves_the_damaged_store_where_it_was(folder, monkeypatch):
    _damage(folder / "results.sqlite")
    before = _state(folder)
    _inject(monkeypatch, "^INSERT OR REPLACE INTO runs", FULL_SQL, REBUILD, rolled_back=True)
    res = _cli("repair", folder)
    monkeypatch.undo()
    assert res.exit_code == 2 and "the disk is full" in _flat(res.output), res.output
    assert _state(folder) == before  # no .damaged-* file, no rebuild left over, the store as it was
    rep = _cli("repair", folder)  # space freed: the rebuild goes through
    assert rep.exit_code == 0 and "rows written from manifests: 3" in _flat(rep.output), rep.output
    assert list(folder.glob("results.sqlite.damaged-*")) and not list(folder.glob(f"{REBUILD}*"))


def test_repair_never_replaces_a_store_that_passes_the_check(folder, monkeypatch):
    """Told it is damaged (a fault misread), repair still checks it again before the swap."""
    from tuneoff import repair as repair_mod

    before = _state(folder)
    real, calls = repair_mod.check_file, []

    def misread(f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 1:
            raise StoreDamaged("misread")
        return real(f, *args, **kwargs)

    monkeypatch.setattr(repair_mod, "check_file", misread)
    with pytest.raises(StoreError, match="passes SQLite's check"):
        repair_mod.repair(folder)
    assert _state(folder) == before


def test_the_fit_cache_names_a_full_disk_and_a_damaged_file(tmp_path, monkeypatch):
    cache = FitCache(tmp_path)
    _inject(monkeypatch, "INSERT OR REPLACE INTO fits", FULL_SQL, "selection.sqlite")
    with pytest.raises(StoreFull, match="selection.sqlite cannot be written: the disk is full"):
        cache.put("k", {"score": 1.0})
    monkeypatch.undo()
    (tmp_path / "selection.sqlite").write_text("not a database\n" * 200)
    with pytest.raises(StoreDamaged, match="delete it"):
        FitCache(tmp_path)


def test_a_store_locked_by_another_process_says_so(folder, monkeypatch):
    _inject(monkeypatch, "quick_check", sqlite3.OperationalError("database is locked"), str(folder))
    res = _cli("show", folder)
    text = _flat(res.output)
    assert res.exit_code == 2 and "is locked by another process" in text and "damaged" not in text, res.output


# -- what repair keeps, and permissions -----------------------------------------------------------

def test_a_rebuild_keeps_the_attempts_log_and_live_claims(folder):
    import psutil
    import subprocess
    import sys

    store = Store(folder)
    _fake_claim(store, "live", "elsewhere", 1, 0.0, time.time() + 600)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    start = psutil.Process(gone.pid).create_time()
    gone.wait()
    _fake_claim(store, "dead", claims.me().host, gone.pid, start, time.time() + 600)
    before = claims.attempt_counts(store)
    (folder / "results.sqlite").chmod(0o664)
    _damage(folder / "results.sqlite")
    rep = _cli("repair", folder)
    assert rep.exit_code == 0 and "attempts read back from it (the log of what was computed): 5" in _flat(rep.output)
    store = Store(folder)
    after = claims.attempt_counts(store)
    assert after == {**before, "dead": {"abandoned": 1}}
    assert sorted(_computations(store).values()) == [0, 0, 1, 1, 1]  # each run computed once
    assert claims.live_claims(store) == ["elsewhere/1/other"]
    assert (folder / "results.sqlite").stat().st_mode & 0o777 == 0o664


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_manifests_get_the_permissions_of_any_new_file(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert umask() == mask
        write_json_atomic(tmp_path / "runs" / "r" / "manifest.json", {"a": 1})
        (tmp_path / "plain").write_text("x")
        Store(tmp_path / "store")
    finally:
        os.umask(old)
    want = (tmp_path / "plain").stat().st_mode & 0o777
    assert want == 0o666 & ~mask
    assert (tmp_path / "runs" / "r" / "manifest.json").stat().st_mode & 0o777 == want
    if mask == 0o022:  # the usual umask: manifests as readable as the store (SQLite makes it 0644 at most)
        assert (tmp_path / "store" / "results.sqlite").stat().st_mode & 0o777 == want == 0o644
