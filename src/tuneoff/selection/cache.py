"""Finished selection fits, kept so that a resumed sweep (or another split of a frugal sweep) reuses
them: one SQLite file, `<output_dir>/selection.sqlite`, one row per fit (a candidate trained on one
fold's training part and scored on its held-out part), per trial of the optuna search (a candidate on
every fold, at every rung it reached), per fold of a one-rung trial as it finishes (so a trial stopped
between its folds resumes from those it finished) and per whole selection, each written in one
transaction.

A selection is claimed while a process makes it (`claimed`): another process that needs the same
selection waits for it instead of computing it again, and takes the claim over when the process
that held it no longer exists (its finished fits and trials are kept, so little is lost). A thread
of the holder renews the claim every quarter lease (`TUNEOFF_LEASE_S`, as the store's run claims);
a claim of another machine whose lease has run out is taken over too.

A fit's key (`tuneoff.identity.fit_ids`) is the hash of the candidate's resolved config (selection
off, where it is written left out, the data by content), the method's version (above 1) and the
example ids of both parts of its fold, so the same fit is the same row whichever run asks for it.
A fit kept under the id it had before the data entered ids by content is still found. A worker on
another machine keeps its own file there: only reuse is lost.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

from tuneoff.claims import lease_seconds, live, me
from tuneoff.storefile import store_error

SCHEMA = "CREATE TABLE IF NOT EXISTS fits (fit_id TEXT PRIMARY KEY, record TEXT NOT NULL)"
CLAIMS = ("CREATE TABLE IF NOT EXISTS making (key TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, "
          "pid INTEGER NOT NULL, pid_start REAL NOT NULL, since REAL NOT NULL)")
POLL_S = 2.0  # how often a process waiting for another's selection looks again


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
            con.execute(CLAIMS)

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

    def _claim(self, key: str) -> tuple[bool, str | None]:
        """(True, None) if this process now holds `key` (it was free, ours, or its owner is gone);
        else (False, the owner)."""
        owner = me()
        with self._connected() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT owner, host, pid, pid_start, since FROM making WHERE key=?", (key,)).fetchone()
            if row is not None and row[0] != owner.id and live(*row[1:4], row[4] + lease_seconds()):
                return False, row[0]
            con.execute("INSERT OR REPLACE INTO making VALUES (?, ?, ?, ?, ?, ?)",
                        (key, owner.id, owner.host, owner.pid, owner.pid_start, time.time()))
        return True, None

    def _release(self, key: str) -> None:
        with self._connected() as con:
            con.execute("DELETE FROM making WHERE key=? AND owner=?", (key, me().id))

    def _renew(self, key: str, stop: threading.Event) -> None:
        """Keep this process's claim on `key` fresh until `stop` (a daemon thread)."""
        while not stop.wait(lease_seconds() / 4):
            try:
                with self._connected() as con:
                    con.execute("UPDATE making SET since=? WHERE key=? AND owner=?", (time.time(), key, me().id))
            except Exception:  # noqa: BLE001 (a busy or full disk: the next renewal tries again)
                continue

    @contextmanager
    def claimed(self, key: str, progress=None):
        """The record kept under `key` if there is one; else None while this process holds the claim to
        make it (released after). While another live process holds it, wait for its record."""
        waited = False
        while True:
            kept = self.get([key])
            if kept is not None:
                yield kept
                return
            got, holder = self._claim(key)
            if got:
                break
            if progress and not waited:
                progress(f"wait for the selection {holder} is making", 0, None)
            waited = True
            time.sleep(POLL_S)
        stop = threading.Event()
        threading.Thread(target=self._renew, args=(key, stop), daemon=True).start()
        try:
            yield None
        finally:
            stop.set()
            self._release(key)


class NoCache:
    """For a run that must not write anything (nothing is reused)."""

    def get(self, keys: list[str]) -> None:
        return None

    def put(self, key: str, record: dict) -> None:
        pass

    @contextmanager
    def claimed(self, key: str, progress=None):
        yield None
