"""Finished selection fits, kept so that a resumed sweep (or another split of a frugal sweep) reuses
them: one SQLite file, `<output_dir>/selection.sqlite`, one row per fit (a candidate trained on one
fold's training part and scored on its held-out part), written in one transaction.

A fit's key (`tuneoff.identity.fit_ids`) is the hash of the candidate's resolved config (selection
off, where it is written left out, the data by content), the method's version (above 1) and the
example ids of both parts of its fold, so the same fit is the same row whichever run asks for it.
A fit kept under the id it had before the data entered ids by content is still found. A worker on
another machine keeps its own file there: only reuse is lost.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path

from tuneoff.storefile import store_error

SCHEMA = "CREATE TABLE IF NOT EXISTS fits (fit_id TEXT PRIMARY KEY, record TEXT NOT NULL)"


DAMAGED_HINT = "it only keeps finished selection fits for reuse: delete it, and they are fitted again when needed"


class FitCache:
    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "selection.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise store_error(e, self.path.parent) from None
        with self._connected() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(SCHEMA)

    @contextmanager
    def _connected(self):
        """A connection in one transaction; an error of SQLite is a StoreError that says what to do
        (`tuneoff.storefile.store_error`)."""
        try:
            with closing(sqlite3.connect(self.path, timeout=60)) as con, con:
                yield con
        except sqlite3.Error as e:
            raise store_error(e, self.path, damaged=DAMAGED_HINT) from None

    def get(self, keys: list[str]) -> dict | None:
        """The fit kept under the first of `keys` that is there (its id, then the ids it had before)."""
        with self._connected() as con:
            for key in keys:
                row = con.execute("SELECT record FROM fits WHERE fit_id=?", (key,)).fetchone()
                if row:
                    return json.loads(row[0])
        return None

    def put(self, key: str, record: dict) -> None:
        with self._connected() as con:
            con.execute("INSERT OR REPLACE INTO fits VALUES (?, ?)", (key, json.dumps(record)))


class NoCache:
    """For a run that must not write anything (nothing is reused)."""

    def get(self, keys: list[str]) -> None:
        return None

    def put(self, key: str, record: dict) -> None:
        pass
