"""Finished selection fits, kept so that a resumed sweep (or another split of a frugal sweep) reuses
them: one SQLite file, `<output_dir>/selection.sqlite`, one row per fit (a candidate trained on one
fold's training part and scored on its held-out part), written in one transaction.

A fit's key is the hash of the candidate's resolved config (selection off, where it is written
left out), the method's version (above 1) and the example ids of both parts of its fold, so the same fit is the same row whichever
run asks for it. A worker on another machine keeps its own file there: only reuse is lost.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path

SCHEMA = "CREATE TABLE IF NOT EXISTS fits (fit_id TEXT PRIMARY KEY, record TEXT NOT NULL)"


def fit_id(candidate_config: dict, train_ids: list[str], heldout_ids: list[str], method_version: int = 1) -> str:
    from tuneoff.describe import in_old_layout  # the layout fits were first keyed in, so a cache stays valid

    d = in_old_layout({k: v for k, v in candidate_config.items()
                       if k not in ("output_dir", "device", "save", "eval")})
    if method_version != 1:  # as in run ids: a changed method never reuses the old method's fits
        d["method_version"] = method_version
    blob = json.dumps({"config": d, "train": train_ids, "heldout": heldout_ids}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


class FitCache:
    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "selection.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def get(self, key: str) -> dict | None:
        with closing(self._connect()) as con:
            row = con.execute("SELECT record FROM fits WHERE fit_id=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, record: dict) -> None:
        with closing(self._connect()) as con, con:
            con.execute("INSERT OR REPLACE INTO fits VALUES (?, ?)", (key, json.dumps(record)))


class NoCache:
    """For a run that must not write anything (nothing is reused)."""

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, record: dict) -> None:
        pass
