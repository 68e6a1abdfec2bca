"""The results store's file: whether it can be used (present beside its manifests, a SQLite
database that passes SQLite's integrity check) and written (the folder, its run folders, the
database itself), checked before any run starts; and the errors that say what to do.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

STORE_FILE = "results.sqlite"


class StoreError(RuntimeError):
    """The results store cannot be used as it is; the message says what to do."""


class StoreDamaged(StoreError):
    pass


class StoreUnwritable(StoreError):
    pass


def repair_hint(folder: Path) -> str:
    return f"`tuneoff repair {folder}` rebuilds it from the run manifests (the damaged file is kept aside)"


def has_manifests(folder: Path) -> bool:
    runs = folder / "runs"
    return runs.is_dir() and any(runs.glob("*/manifest.json"))


def check_file(folder: Path) -> None:
    """Raise StoreDamaged when results.sqlite cannot be the store of `folder`: missing or empty
    while run manifests are there, not a SQLite file, or failing SQLite's integrity check."""
    path = folder / STORE_FILE
    if not path.exists() or path.stat().st_size == 0:
        if has_manifests(folder):  # a store being created has no manifests beside it yet
            what = "missing" if not path.exists() else "empty (0 bytes)"
            raise StoreDamaged(f"{path} is {what}, but {folder}/runs/ holds run manifests: nothing was "
                               f"run or overwritten; {repair_hint(folder)}")
        return
    # (never open the file other than through SQLite: closing another descriptor of it drops the
    # POSIX locks that this process's SQLite connections hold)
    try:
        with closing(sqlite3.connect(path, timeout=60)) as con:
            problems = [r[0] for r in con.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.OperationalError as e:
        if "unable to open" in str(e) or "readonly" in str(e):
            return  # unreadable is not damaged: writability is checked on its own
        raise StoreDamaged(f"{path} is damaged ({e}): nothing was run or overwritten; "
                           f"{repair_hint(folder)}") from None
    except sqlite3.DatabaseError as e:
        raise StoreDamaged(f"{path} is damaged ({e}): nothing was run or overwritten; "
                           f"{repair_hint(folder)}") from None
    if problems != ["ok"]:
        raise StoreDamaged(f"{path} is damaged (SQLite integrity check: {'; '.join(problems[:3])}): nothing "
                           f"was run or overwritten; {repair_hint(folder)}")


def _probe(folder: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tuneoff-write-check.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise StoreUnwritable(f"the results folder {folder} is not writable ({e.strerror}); make it writable "
                              f"or give another output_dir") from None


def check_writable(folder: str | Path) -> None:
    """Raise StoreUnwritable (or StoreDamaged) unless a run could write `folder`, its run folders
    and its store; creates nothing. Called before any run starts."""
    folder = Path(folder)
    if not folder.exists():
        parent = next(p for p in folder.absolute().parents if p.exists())
        if not parent.is_dir():
            raise StoreUnwritable(f"output_dir {folder} cannot be created: {parent} is a file")
        _probe(parent)
        return
    check_file(folder)
    for sub in (folder, folder / "runs"):
        if sub.is_dir():
            _probe(sub)
    path = folder / STORE_FILE
    if path.exists():
        try:
            with closing(sqlite3.connect(path, timeout=60, isolation_level=None)) as con:
                con.execute("BEGIN IMMEDIATE")  # a real write (a read-only file fails only at one),
                con.execute("CREATE TABLE tuneoff_write_check (x)")  # rolled back: changes nothing
                con.execute("ROLLBACK")
        except sqlite3.OperationalError as e:
            raise StoreUnwritable(f"{path} cannot be written ({e}); make it writable (chmod u+w) or give "
                                  f"another output_dir") from None
