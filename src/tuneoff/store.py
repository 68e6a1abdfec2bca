"""The results store: one SQLite file per results folder (WAL), one row per run, plus a JSON
manifest per run folder, which is the durable copy: a run's manifest is written first and its row
second, each atomically, so a killed process never leaves a half-written record and a store that
cannot take a row (read-only, damaged) never costs a finished result. `tuneoff repair` rebuilds
the store from the manifests. Claims, leases and the attempts log (several processes on one
folder) live in `tuneoff.claims`, whose tables the store creates beside its own.

A run record's layout, its schema version and how old records read are `tuneoff.record`'s: the
store writes both copies from a `Record` and reads every row and manifest back through its `load`.
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from contextlib import closing, contextmanager, suppress
from pathlib import Path

from tuneoff import claims
from tuneoff.record import Part, Record, RecordError, loads, read, stored
from tuneoff.signals import deferred
from tuneoff.storefile import (  # noqa: F401 - the store's errors and checks, importable from here
    STORE_FILE,
    StoreDamaged,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreUnwritable,
    repair_hint,
    check_file,
    check_writable,
    connect,
    has_manifests,
    store_error,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    task       TEXT, model TEXT, method TEXT,
    shots      INTEGER, data_seed INTEGER, seed INTEGER,
    created_at TEXT,
    record     TEXT NOT NULL
);
"""


class Store:
    def __init__(self, folder: str | Path, check: bool = True, reading: bool = False, name: str = STORE_FILE):
        """`reading`: only to read an existing store (show, report), opened read-only: nothing in its
        folder is created or written (`tuneoff.storefile.connect`). `name`: the database's file (a
        store being rebuilt beside the one it replaces)."""
        self.folder, self.reading = Path(folder), reading
        self.path = self.folder / name
        self.bad_rows: dict[str, str] = {}  # run_id -> why its row could not be read
        self._intact: set[str] = set()      # rows read whole
        if check:
            check_file(self.folder, read_only=reading)
        if reading:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise store_error(e, self.folder) from None
        with self.transaction(begin=False) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)
            claims.create_tables(con)

    def _connect(self) -> sqlite3.Connection:
        con = connect(self.path, read_only=self.reading)
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    @contextmanager
    def transaction(self, immediate: bool = False, begin: bool = True):
        """A connection to the store's database in one transaction, committed on exit and rolled back
        on an error (`immediate`: take the write lock at once, for a read-then-write; `begin=False`:
        statements commit on their own). SQLite errors become StoreErrors that name the file and
        what to do."""
        try:
            with closing(self._connect()) as con:
                if not begin:
                    yield con
                    return
                con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield con
                except BaseException:
                    if con.in_transaction:  # (SQLite has rolled back already after some errors: a full disk)
                        con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
        except sqlite3.Error as e:
            raise store_error(e, self.path) from None

    def run_dir(self, run_id: str) -> Path:
        return self.folder / "runs" / run_id

    def manifest(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "manifest.json"

    def status(self, run_id: str) -> str | None:
        with self.transaction() as con:
            row = con.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def statuses(self) -> dict[str, str]:
        """run_id -> status of every run in the store (one query, for sweeps of many runs)."""
        with self.transaction() as con:
            return dict(con.execute("SELECT run_id, status FROM runs").fetchall())

    def is_done(self, run_id: str) -> bool:
        return self.status(run_id) == "done"

    def put(self, record: Record | dict) -> None:
        """Write one finished run: its manifest first (the durable copy), then its row, which also
        closes this process's claim and attempt on it (`tuneoff.claims`). A dict is validated into a
        `Record` first (StoreError if it is none). A Ctrl-C, SIGTERM or SIGHUP that arrives meanwhile
        takes effect once both are written (`tuneoff.signals.deferred`), so an interrupted sweep's
        store holds every run it finished, row and all."""
        rec = self._valid(record)
        with deferred():
            self._put(rec)

    @staticmethod
    def _valid(record: Record | dict) -> Record:
        """`record` as a Record; a dict that is not one (a bug where it was made) is kept in a file
        (`rescue`) and named in a StoreError, as a record that cannot be written is."""
        try:
            return stored(record)
        except RecordError as e:
            rid = record.get("run_id") if isinstance(record, dict) else None
            try:
                kept = f"; it is kept in {rescue(record)}" if isinstance(rid, str) else ""
            except (OSError, TypeError, ValueError):  # not even JSON
                kept = ""
            raise StoreError(f"run {rid} finished but its record cannot be stored: {e}{kept}") from None

    def _put(self, rec: Record) -> None:
        rid, path = rec.run_id, self.manifest(rec.run_id)
        try:
            self.write_manifest(rec)
        except StoreError as e:
            raise type(e)(f"run {rid} finished ({rec.status}) but its manifest could not be written: {e}; "
                          f"{self._kept(rec)}") from None
        try:
            self.put_row(rec, close_claim=rec.status)
        except StoreError as e:
            raise type(e)(f"run {rid} finished ({rec.status}) and is kept in {path}, but the store could not "
                          f"take it: {e}. Then `tuneoff repair {self.folder}` brings it in") from None

    def _kept(self, rec: Record) -> str:
        """Where a record whose manifest could not be written is kept instead, and how it comes in."""
        try:
            kept = rescue(rec)
        except OSError as e:
            return f"it could not be kept in {tempfile.gettempdir()} either ({e.strerror}): run it again then"
        return f"the record is kept in {kept}: then `tuneoff repair {self.folder} {kept}` brings it in"

    def write_manifest(self, rec: Record) -> None:
        """Write a run's manifest (atomically); one that cannot be written is a StoreError naming it."""
        path = self.manifest(rec.run_id)
        try:
            write_json_atomic(path, rec.to_dict())
        except OSError as e:
            raise store_error(e, path) from None

    def put_row(self, record: Record | dict, close_claim: str | None = None) -> None:
        """Insert or replace a run's row only (repair, adopting a manifest); with `close_claim`, close
        this process's claim and attempt on the run with that outcome in the same transaction."""
        rec = stored(record)
        with self.transaction(immediate=True) as con:
            self._insert(con, rec)
            if close_claim is not None:
                claims.finish(con, rec.run_id, close_claim)

    def replace(self, old_id: str, record: Record | dict) -> None:
        """Keep `record`, a stored run given another id (`tuneoff.legacy.move`), in place of the
        run `old_id`: its manifest first, then, in one transaction, its row in and the old row out."""
        rec = stored(record)
        self.write_manifest(rec)
        with self.transaction(immediate=True) as con:
            self._insert(con, rec)
            if old_id != rec.run_id:
                con.execute("DELETE FROM runs WHERE run_id=?", (old_id,))

    @staticmethod
    def _insert(con, rec: Record) -> None:
        c = rec.config or {}
        con.execute(
            "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
            (rec.run_id, rec.status, c.get("task"), c.get("model"), (c.get("method") or {}).get("name"),
             c.get("shots"), c.get("data_seed"), c.get("seed"), rec.created_at, json.dumps(rec.to_dict())),
        )

    def _parse(self, run_id: str, blob: str) -> Record | None:
        """A row's record; if the row cannot be read (not JSON, not a record), its manifest's (noted
        in `bad_rows`)."""
        try:
            rec = loads(blob)
            self._intact.add(run_id)
            return rec
        except RecordError as e:
            why = str(e)
        try:
            rec = read(self.manifest(run_id))
            if rec.run_id == run_id:
                self.bad_rows[run_id] = why + "; its manifest is used instead"
                return rec
        except (OSError, RecordError):
            pass
        self.bad_rows[run_id] = why + "; no manifest either: left out"
        return None

    def get(self, run_id: str) -> Record | None:
        """A run's record; None if absent (or unreadable without a manifest: named in `bad_rows`)."""
        with self.transaction() as con:
            row = con.execute("SELECT record FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return self._parse(run_id, row[0]) if row else None

    def records(self, status: str | None = None) -> list[Record]:
        """Every record; a row that cannot be read is named in `bad_rows` and its manifest used."""
        q, args = "SELECT run_id, record FROM runs", ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        with self.transaction() as con:
            rows = con.execute(q + " ORDER BY created_at, run_id", args).fetchall()
        return [rec for rid, blob in rows if (rec := self._parse(rid, blob)) is not None]

    def counts(self) -> dict[str, int]:
        with self.transaction() as con:
            return dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())

    def manifest_problem(self, run_id: str) -> str | None:
        """Why a run's manifest is no copy of a record of it: "missing", or why it cannot be read."""
        try:
            rec = read(self.manifest(run_id))
        except FileNotFoundError:
            return "missing"
        except OSError as e:
            return e.strerror or str(e)
        except RecordError as e:
            return str(e)
        return None if rec.run_id == run_id else f"it holds run {rec.run_id}"

    def broken_manifests(self) -> dict[str, str]:
        """run_id -> why its manifest cannot be read, for the runs read whole from their rows so far
        (`tuneoff repair` rewrites these manifests from the rows); a missing one aside (the next
        run or sweep on the folder writes it again)."""
        found = {rid: self.manifest_problem(rid) for rid in sorted(self._intact)}
        return {rid: f"{self.manifest(rid)}: {why}" for rid, why in found.items() if why not in (None, "missing")}

    def bad_rows_note(self) -> str | None:
        return _note(self.bad_rows, f"row(s) of {self.path} could not be read",
                     f"`tuneoff repair {self.folder}` rewrites them from their manifests")

    def broken_manifests_note(self) -> str | None:
        return _note(self.broken_manifests(), "run(s) have a manifest that cannot be read, though their row is intact",
                     f"`tuneoff repair {self.folder}` rewrites them from their rows")


def _note(found: dict[str, str], what: str, fix: str) -> str | None:
    """A warning naming the first few of `found` (run_id -> why) and what fixes them."""
    if not found:
        return None
    names = ", ".join(f"{rid} ({why})" for rid, why in list(found.items())[:5])
    return f"{len(found)} {what}: {names}; {fix}"


def umask() -> int:
    """This process's umask, read without changing it (Linux); else set and set back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, data) -> None:
    """Write `path` whole or not at all, with the permissions any new file gets (mkstemp's are 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            with suppress(OSError):  # a filesystem without modes (FAT, some shares) keeps its own
                os.fchmod(f.fileno(), 0o666 & ~umask())
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rescue(record: Record | dict) -> Path:
    """Where a record goes when it cannot be stored (its run folder cannot be written, or it does not
    follow the schema): a file in the temp folder, written as it is."""
    data = record.to_dict() if isinstance(record, Part) else record
    path = Path(tempfile.gettempdir()) / "tuneoff-rescued" / f"{data['run_id']}.json"
    write_json_atomic(path, data)
    return path


def open_store(folder: str | Path, must_exist: bool = False) -> Store:
    p = Path(folder)
    if must_exist and not (p / STORE_FILE).is_file():
        if has_manifests(p):
            check_file(p)  # manifests without a store: damaged, with the repair command
        raise FileNotFoundError(f"{str(p)!r} holds no results (no results.sqlite); run `tuneoff run` first")
    return Store(p, reading=must_exist)
