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
import signal
import sqlite3
import tempfile
import threading
from contextlib import closing, contextmanager
from pathlib import Path

from tuneoff import claims
from tuneoff.record import Part, Record, RecordError, loads, read, stored
from tuneoff.storefile import (  # noqa: F401 - the store's errors and checks, importable from here
    STORE_FILE,
    StoreDamaged,
    StoreError,
    StoreUnwritable,
    repair_hint,
    check_file,
    check_writable,
    has_manifests,
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
    def __init__(self, folder: str | Path, check: bool = True, reading: bool = False):
        """`reading`: only to read an existing store (show, report): its file is left as it is."""
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILE
        self.bad_rows: dict[str, str] = {}  # run_id -> why its row could not be read
        if check:
            check_file(self.folder)
        if reading:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self.transaction(begin=False) as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
                claims.create_tables(con)
        except OSError as e:
            raise StoreUnwritable(f"cannot create the results folder {self.folder}: {e.strerror}; "
                                  f"give a writable output_dir") from None

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
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
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
        except sqlite3.OperationalError as e:
            msg = str(e)
            if "readonly" in msg or "unable to open" in msg or "disk I/O" in msg:
                raise StoreUnwritable(f"{self.path} cannot be written ({msg}); make the results folder and "
                                      f"its results.sqlite writable, or give another output_dir") from None
            raise
        except sqlite3.DatabaseError as e:
            raise StoreDamaged(f"{self.path} is damaged ({e}); {repair_hint(self.folder)}") from None

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
        `Record` first (StoreError if it is none). A Ctrl-C that arrives meanwhile takes effect once both are written, so an
        interrupted sweep's store holds every run it finished, row and all."""
        rec = self._valid(record)
        with _ctrl_c_deferred():
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
            write_json_atomic(path, rec.to_dict())
        except OSError as e:
            kept = rescue(rec)
            raise StoreUnwritable(f"run {rid} finished ({rec.status}) but its manifest could not be written "
                                  f"to {path} ({e.strerror}); the record is kept in {kept}: once the folder is "
                                  f"writable, `tuneoff repair {self.folder} {kept}` brings it in") from None
        try:
            self.put_row(rec, close_claim=rec.status)
        except StoreError as e:
            raise type(e)(f"run {rid} finished ({rec.status}) and is kept in {path}, but the store could not "
                          f"take it: {e}. Then `tuneoff repair {self.folder}` brings it in") from None

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
        write_json_atomic(self.manifest(rec.run_id), rec.to_dict())
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
            return loads(blob)
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

    def bad_rows_note(self) -> str | None:
        if not self.bad_rows:
            return None
        names = ", ".join(f"{rid} ({why})" for rid, why in list(self.bad_rows.items())[:5])
        return (f"{len(self.bad_rows)} row(s) of {self.path} could not be read: {names}; "
                f"`tuneoff repair {self.folder}` rewrites them from their manifests")


@contextmanager
def _ctrl_c_deferred():
    """Hold a SIGINT that arrives inside the block and deliver it to the handler that was in place
    once the block ends. Only the main thread can set handlers; elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            if callable(previous):
                previous(signal.SIGINT, held[-1])
            elif previous != signal.SIG_IGN:  # the default action: end the process as Ctrl-C would
                os.kill(os.getpid(), signal.SIGINT)


def write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
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
