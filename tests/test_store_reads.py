"""Reading a results store where it cannot be written (a read-only folder: a published store, a
shared drive, a container image) and with manifests that cannot be read beside intact rows: the
commands that only read open the store read-only and create or change no file; a broken manifest
is named, and `repair` rewrites it from its row (and an unreadable row from its manifest)."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from test_faults import _cli, _flat, _manifests, folder, read_only, three_runs  # noqa: F401
from test_store_faults import _state
from tuneoff.store import Store, StoreError


# -- broken manifests -----------------------------------------------------------------------------

BROKEN = {"invalid JSON": b'{"run_id": "x", "status": ', "empty": b"", "not a record": b'["a list"]',
          "no schema": b'{"run_id": "RID"}', "another run": None}


@pytest.mark.parametrize("how", list(BROKEN))
def test_a_broken_manifest_is_named_and_repair_rewrites_it_from_its_row(folder, tmp_path, how):
    ids = sorted(_manifests(folder))
    rid = ids[0]
    path = folder / "runs" / rid / "manifest.json"
    good = json.loads(path.read_text())
    bad = BROKEN[how]
    path.write_bytes(bad.replace(b"RID", rid.encode()) if bad is not None
                     else (folder / "runs" / ids[1] / "manifest.json").read_bytes())
    cfg = tmp_path / "s.yaml"
    cfg.write_text(json.dumps({"defaults": {"task": "demo", "model": "tiny-bert", "shots": 2, "seed": 0,
                                            "data_seed": [0, 1, 2], "train.max_steps": 2,
                                            "eval.max_examples": 20, "output_dir": str(folder)}}))
    for args in (["show", folder], ["report", folder, "-o", tmp_path / "r.html"], ["sweep", cfg]):
        res = _cli(*args)
        text = _flat(res.output)
        assert res.exit_code == 0, (args, res.output)
        assert f"{rid} ({path}" in text and f"`tuneoff repair {folder}` rewrites them from their rows" in text, text
    rep = _cli("repair", folder)
    assert rep.exit_code == 0 and "broken manifests rewritten from their rows: 1" in _flat(rep.output), rep.output
    assert "holds no usable run record" not in rep.output
    assert json.loads(path.read_text()) == good
    assert "rewrites them" not in _flat(_cli("show", folder).output)


def test_a_broken_manifest_beside_an_unreadable_row_is_not_promised_a_rewrite(folder):
    rid = sorted(_manifests(folder))[0]
    path = folder / "runs" / rid / "manifest.json"
    path.write_text("{broken")
    with contextlib.closing(sqlite3.connect(folder / "results.sqlite")) as con, con:
        con.execute("UPDATE runs SET record='{not json' WHERE run_id=?", (rid,))
    text = _flat(_cli("show", folder).output)
    assert "no manifest either: left out" in text and "rewrites them from their rows" not in text, text
    rep = _cli("repair", folder)
    out = _flat(rep.output)
    assert f"{path} holds no usable run record" in out and "broken manifests rewritten from their rows: 0" in out
    assert path.read_text() == "{broken"


def test_repair_rewrites_an_unreadable_row_from_its_manifest(folder):
    rid = sorted(_manifests(folder))[0]
    db = folder / "results.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("UPDATE runs SET record='{not json' WHERE run_id=?", (rid,))
    rep = _cli("repair", folder)
    assert rep.exit_code == 0 and "rows written from manifests: 1" in _flat(rep.output), rep.output
    with contextlib.closing(sqlite3.connect(db)) as con:
        row = con.execute("SELECT record FROM runs WHERE run_id=?", (rid,)).fetchone()[0]
    assert json.loads(row) == json.loads((folder / "runs" / rid / "manifest.json").read_text())
    assert "could not be read" not in _flat(_cli("show", folder).output)


# -- a read-only folder ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["show", "recommend", "report"])
def test_a_read_only_folder_is_read_and_nothing_is_written(folder, tmp_path, command):
    before = _state(folder)
    args = ["-o", tmp_path / "out" / "r.html", "--csv", tmp_path / "out" / "runs.csv"] if command == "report" else []
    with read_only(folder):
        res = _cli(command, folder, *args)
        default = _cli("report", folder) if command == "report" else None
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert _state(folder) == before
    if default is not None:
        text = _flat(default.output)
        assert default.exit_code == 2 and "cannot be written (read-only)" in text and "-o PATH" in text, text


def test_a_read_only_folder_is_opened_immutable_and_no_file_is_made(folder, monkeypatch):
    """Whoever runs the tests (root writes anywhere): told the folder is read-only, the store is
    opened read-only and immutable, and writing through that connection fails."""
    uris, real_connect = [], sqlite3.connect
    monkeypatch.setattr(os, "access", lambda p, mode: not (mode & os.W_OK))
    monkeypatch.setattr(sqlite3, "connect", lambda db, *a, **k: uris.append(str(db)) or real_connect(db, *a, **k))
    before = _state(folder)
    store = Store(folder, reading=True)
    assert len(store.records()) == 3
    assert uris and all(u.startswith("file:") and "mode=ro" in u and "immutable=1" in u for u in uris), uris
    with pytest.raises(StoreError), store.transaction() as con:
        con.execute("DELETE FROM runs")
    assert _state(folder) == before


def test_a_writable_folder_is_read_query_only_and_left_as_it_was(folder):
    before = _state(folder)
    store = Store(folder, reading=True)
    with pytest.raises(StoreError, match="cannot be written"), store.transaction() as con:
        con.execute("DELETE FROM runs")
    assert _cli("show", folder).exit_code == 0
    assert _state(folder) == before  # no -wal nor -shm file left behind


def _with_wal(folder: Path) -> None:
    """Leave a change in results.sqlite-wal, as a writer killed before its checkpoint does."""
    db = folder / "results.sqlite"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("UPDATE runs SET status='failed' WHERE run_id=(SELECT MIN(run_id) FROM runs)")
    copies = {s: Path(f"{db}{s}").read_bytes() for s in ("", "-wal", "-shm")}
    con.close()
    for s, data in copies.items():
        Path(f"{db}{s}").write_bytes(data)


def test_a_read_only_folder_with_changes_in_its_wal_reads_them_or_says_why_not(folder):
    _with_wal(folder)
    with read_only(folder):
        res = _cli("show", folder)
    assert res.exit_code == 0 and " 1 failed" in res.output, res.output  # read through the -wal
    (folder / "results.sqlite-shm").unlink()
    with read_only(folder):
        res = _cli("show", folder)
    text = _flat(res.output)
    assert res.exit_code == 2 and "Traceback" not in text, res.output
    assert "results.sqlite-wal holds changes not yet in" in text and "copy it somewhere writable" in text, text
