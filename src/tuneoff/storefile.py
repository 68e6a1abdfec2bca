"""The results store's file: whether it can be used (present beside its manifests, a SQLite
database that passes SQLite's integrity check) and written (the folder, its run folders, the
database itself), checked before any run starts; how it is opened to be read only; and the
errors that say what to do.

`store_error` is the one place where an error of SQLite or of the OS becomes a StoreError: it
tells a full disk, a read-only file or folder, a store locked by another process, a damaged store
and another disk error apart, each with its message, naming the file and what to do.
"""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

STORE_FILE = "results.sqlite"
FULL, READ_ONLY, LOCKED, DAMAGED, IO = "disk full", "read-only", "locked", "damaged", "I/O error"
LOW_SPACE = 1 << 20  # bytes: a disk error with less free than this is a full disk


class StoreError(RuntimeError):
    """The results store cannot be used as it is; the message says what to do."""
    kind: str | None = None


class StoreDamaged(StoreError):
    kind = DAMAGED


class StoreUnwritable(StoreError):
    kind = READ_ONLY


class StoreDiskError(StoreUnwritable):
    """It could not be read or written: the disk failed."""
    kind = IO


class StoreFull(StoreUnwritable):
    """The disk that holds it is full: nothing is lost, it takes space."""
    kind = FULL


class StoreLocked(StoreError):
    kind = LOCKED


_CLASSES = {FULL: StoreFull, READ_ONLY: StoreUnwritable, LOCKED: StoreLocked, DAMAGED: StoreDamaged,
            IO: StoreDiskError}
# what SQLite says (its error's name, else its message) -> the kind; the first that matches
_SQLITE = ((FULL, ("SQLITE_FULL", "database or disk is full")),
           (DAMAGED, ("SQLITE_CORRUPT", "SQLITE_NOTADB", "not a database", "malformed", "file is encrypted")),
           (READ_ONLY, ("SQLITE_READONLY", "SQLITE_PERM", "readonly database", "access permission denied")),
           (LOCKED, ("SQLITE_BUSY", "SQLITE_LOCKED", "database is locked", "table is locked")),
           (IO, ("SQLITE_IOERR", "SQLITE_CANTOPEN", "disk I/O error", "unable to open")))
_ERRNO = {errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EROFS: READ_ONLY, errno.EACCES: READ_ONLY,
          errno.EPERM: READ_ONLY}


def kind_of(e: BaseException, path: Path) -> str | None:
    """Which of FULL, READ_ONLY, LOCKED, DAMAGED, IO an error on `path` is; None: no store fault
    (an SQL error: a bug). A disk error where the disk holding `path` is (almost) full is FULL: SQLite
    says "disk I/O error", "unable to open" when it cannot size its shared-memory file."""
    if isinstance(e, OSError):
        kind = _ERRNO.get(e.errno, IO)
    elif isinstance(e, sqlite3.Error):
        said = f"{getattr(e, 'sqlite_errorname', '') or ''} {e}"
        kind = next((k for k, marks in _SQLITE if any(m in said for m in marks)),
                    DAMAGED if type(e) is sqlite3.DatabaseError else None)
        if "CANTOPEN" in said or "unable to open" in said:
            kind = FULL if _free(path)[1] < LOW_SPACE else READ_ONLY
    else:
        return None
    return FULL if kind == IO and _free(path)[1] < LOW_SPACE else kind


def _free(path: Path) -> tuple[Path, int]:
    """The mount point of the filesystem that holds `path` and its bytes free (inf if unknown)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        free = shutil.disk_usage(p).free
    except OSError:
        return p, float("inf")
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p, free


def size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def space_on(path: Path) -> str:
    """'the filesystem at /mnt (12.0 KiB free)': where `path` is, to free space on."""
    mount, free = _free(path)
    return f"the filesystem at {mount} ({size_text(free)} free)"


def describe(kind: str, path: Path, detail: str, damaged: str | None = None) -> str:
    """The message for a fault of `kind` on `path`: what happened and what to do (`damaged`: what
    to do about a damaged file, if not `tuneoff repair`)."""
    path = Path(path)
    if kind == FULL:
        return (f"{path} cannot be written: the disk is full ({detail}); free space on {space_on(path)}: "
                f"nothing is lost")
    if kind == READ_ONLY:
        what = f"the folder {path} is not writable" if path.is_dir() else f"{path} cannot be written"
        return f"{what} ({detail}); make it writable, or give another output_dir"
    if kind == LOCKED:
        return f"{path} is locked by another process ({detail}): wait until it has finished, or stop it"
    if kind == DAMAGED:
        return f"{path} is damaged ({detail}): nothing in it was overwritten; {damaged or repair_hint(path.parent)}"
    return f"{path} could not be read or written ({detail}); check the disk that holds it, {space_on(path)}"


def store_error(e: BaseException, path: Path, damaged: str | None = None) -> BaseException:
    """The StoreError for error `e` of SQLite or the OS on `path` (see `describe`); `e` itself if it
    is none of these faults. Raise it `from None`."""
    kind = kind_of(e, path)
    if kind is None:
        return e
    detail = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
    return _CLASSES[kind](describe(kind, path, detail, damaged))


def repair_hint(folder: Path) -> str:
    return f"`tuneoff repair {folder}` rebuilds it from the run manifests (the damaged file is kept aside)"


def writable(path: Path) -> bool:
    """Whether this process may write `path` (and its folder): else it is read only in place."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the database at `path` (autocommit; BEGIN as needed). `read_only`: one that
    writes nothing. Where the folder can be written, query-only: it removes the -wal and -shm files
    it made when it closes (a read-only one would leave them). Where not (a published store, a
    shared drive, a container image), or where the disk is full, read-only (`_read_only`)."""
    if not read_only:
        return sqlite3.connect(path, timeout=60, isolation_level=None)
    if writable(path) and _free(path)[1] >= LOW_SPACE:
        try:
            return _opened(str(path), False, "PRAGMA query_only=ON")
        except sqlite3.OperationalError as e:
            if kind_of(e, path) != FULL:
                raise
    return _read_only(path)


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that creates no file: through the -wal and -shm files there, else
    immutable, which needs neither, when no -wal file holds changes."""
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    wal = Path(f"{path}-wal")
    if Path(f"{path}-shm").exists():
        try:
            return _opened(uri, True)
        except sqlite3.OperationalError:
            pass
    if wal.exists() and wal.stat().st_size:
        raise StoreUnwritable(f"{wal} holds changes not yet in {path}, and {path.parent} cannot be written to "
                              f"take them in: open the folder once where it can be written (`tuneoff show`), "
                              f"or copy it somewhere writable and read it there")
    return _opened(f"{uri}&immutable=1", True)


def _opened(target: str, uri: bool, *statements: str) -> sqlite3.Connection:
    """A connection, opened now (SQLite opens the file at the first statement)."""
    con = sqlite3.connect(target, uri=uri, timeout=60, isolation_level=None)
    try:
        for sql in (*statements, "PRAGMA schema_version"):
            con.execute(sql)
    except BaseException:
        con.close()
        raise
    return con


def has_manifests(folder: Path) -> bool:
    runs = folder / "runs"
    return runs.is_dir() and any(runs.glob("*/manifest.json"))


def check_file(folder: Path, read_only: bool = False) -> None:
    """Raise StoreDamaged when results.sqlite cannot be the store of `folder`: missing or empty
    while run manifests are there, not a SQLite file, or failing SQLite's integrity check; another
    StoreError when it cannot be checked (a full disk, locked). Read-only, a file that cannot be
    written passes: writability is checked on its own."""
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
        with closing(connect(path, read_only)) as con:
            problems = [r[0] for r in con.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as e:
        if kind_of(e, path) == READ_ONLY:
            return
        raise store_error(e, path) from None
    if problems != ["ok"]:
        raise StoreDamaged(describe(DAMAGED, path, f"SQLite integrity check: {'; '.join(problems[:3])}"))


def _probe(folder: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tuneoff-write-check.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise store_error(e, folder) from None


def check_writable(folder: str | Path) -> None:
    """Raise a StoreError (read-only, full, damaged, locked) unless a run could write `folder`, its
    run folders and its store; creates nothing. Called before any run starts."""
    folder = Path(folder)
    free = _free(folder)[1]
    if free < LOW_SPACE:  # (SQLite would make its -wal and -shm files before it fails)
        raise StoreFull(describe(FULL, folder / STORE_FILE, f"{size_text(free)} free"))
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
            with closing(connect(path)) as con:
                con.execute("BEGIN IMMEDIATE")  # a real write (a read-only file fails only at one),
                con.execute("CREATE TABLE tuneoff_write_check (x)")  # rolled back: changes nothing
                con.execute("ROLLBACK")
        except sqlite3.Error as e:
            raise store_error(e, path) from None
