"""Several `tuneoff run` and `tuneoff sweep` processes on one results folder of one machine share
the plan through claims in the store: before a process computes a run it claims it, in one SQLite
write transaction, so no two processes compute the same run.

- A claim has a lease (`TUNEOFF_LEASE_S`, default 60 s) that a thread of the owner renews every
  quarter lease while the process lives, so a long run is never taken over.
- A claim whose owner died is taken over: at once when the owner was a process of this machine
  that no longer exists (SIGKILL, a crash), else when its lease has expired.
- Every claim opens a row in the attempts log (started, finished, outcome), so "computed twice"
  can be counted: `attempt_counts`.

SQLite's locking needs a local disk: a results folder on a network filesystem is not safe for
several processes; many machines scale out through the Ray executor, whose one driver owns the store.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from typing import TYPE_CHECKING

import psutil

from tuneoff.storefile import StoreError

if TYPE_CHECKING:
    from tuneoff.store import Store

POLL_S = 1.0  # how often a process waiting for another's runs looks again

# The tables of claims and attempts, in the store's database (`Store` creates them through `create_tables`)
SCHEMA = """
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
    outcome  TEXT NOT NULL          -- running | done | failed | released | abandoned | adopted
);
"""


def create_tables(con) -> None:
    """Create the claims and attempts tables on connection `con` (where they are missing)."""
    con.executescript(SCHEMA)


def lease_seconds() -> float:
    raw = os.environ.get("TUNEOFF_LEASE_S", "60")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise StoreError(f"TUNEOFF_LEASE_S={raw!r}: give the lease of a claim in seconds, a number > 0 "
                         f"(default 60)")
    return value


class Owner:
    """This process: host, pid, the pid's start time (a reused pid is another process), a token."""

    def __init__(self):
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.pid_start = psutil.Process().create_time()
        self.id = f"{self.host}/{self.pid}/{uuid.uuid4().hex[:8]}"


_OWNER: Owner | None = None


def me() -> Owner:
    global _OWNER
    if _OWNER is None or _OWNER.pid != os.getpid():  # a forked child is another owner
        _OWNER = Owner()
    return _OWNER


def owner_dead(host: str, pid: int, pid_start: float) -> bool:
    """True only when the owner was a process of this machine that is gone."""
    if host != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(pid).create_time() - pid_start) > 1e-3
    except psutil.NoSuchProcess:
        return True


def live(host: str, pid: int, pid_start: float, expires: float, now: float | None = None) -> bool:
    """Whether a claim still holds: its lease has not run out and its owner has not died."""
    return expires > (time.time() if now is None else now) and not owner_dead(host, pid, pid_start)


def claim(store: Store, run_id: str, since: float, rerun_done: bool = False, retry_failed: bool = False) -> str:
    """Claim `run_id` for this process: 'claimed', or why not: 'done' / 'failed' (recorded, and
    not to be rerun; a rerun that another process finished after `since` counts as done), 'busy'
    (a live process holds it)."""
    owner, now = me(), time.time()
    with store.transaction(immediate=True) as con:
        row = con.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row:
            recent = con.execute("SELECT 1 FROM attempts WHERE run_id=? AND finished>=? AND outcome IN "
                                 "('done','failed')", (run_id, since)).fetchone()
            if row[0] == "done" and (not rerun_done or recent):
                return "done"
            if row[0] == "failed" and (not retry_failed or recent):
                return "failed"
        held = con.execute("SELECT owner, host, pid, pid_start, attempt, expires FROM claims WHERE run_id=?",
                           (run_id,)).fetchone()
        if held:
            other, host, pid, pid_start, attempt, expires = held
            if other == owner.id:
                return "claimed"
            if live(host, pid, pid_start, expires, now):
                return "busy"
            con.execute("UPDATE attempts SET outcome='abandoned', finished=? WHERE id=? AND outcome='running'",
                        (now, attempt))
        cur = con.execute("INSERT INTO attempts (run_id, owner, started, outcome) VALUES (?,?,?,'running')",
                          (run_id, owner.id, now))
        con.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?,?,?)",
                    (run_id, owner.id, owner.host, owner.pid, owner.pid_start, cur.lastrowid,
                     now + lease_seconds()))
    _renewer.hold(store, run_id)
    return "claimed"


def finish(con, run_id: str, outcome: str) -> None:
    """Close this process's claim and attempt on `run_id` (inside the transaction writing its row)."""
    owner = me().id
    con.execute("UPDATE attempts SET outcome=?, finished=? WHERE run_id=? AND owner=? AND outcome='running'",
                (outcome, time.time(), run_id, owner))
    con.execute("DELETE FROM claims WHERE run_id=? AND owner=?", (run_id, owner))
    _renewer.drop(run_id)


def release(store: Store) -> None:
    """Give back every claim this process holds in `store` without a result (an interrupt). Read
    from the store, not from memory: an interrupt can land between a claim's commit and its
    registration with the lease renewer."""
    owner = me().id
    with store.transaction(immediate=True) as con:
        held = [r[0] for r in con.execute("SELECT run_id FROM claims WHERE owner=?", (owner,))]
        for rid in held:
            finish(con, rid, "released")


def others_running(store: Store) -> int:
    """How many other live processes hold a claim in `store` now (working on its runs)."""
    owner, now = me().id, time.time()
    with store.transaction() as con:
        rows = con.execute("SELECT DISTINCT owner, host, pid, pid_start FROM claims WHERE owner!=? AND expires>?",
                           (owner, now)).fetchall()
    return len({o for o, host, pid, start in rows if not owner_dead(host, pid, start)})


def live_claims(store: Store) -> list[str]:
    """Owners (host/pid/token) of the claims of live processes other than this one, one per claim."""
    with store.transaction() as con:
        rows = con.execute("SELECT owner, host, pid, pid_start, expires FROM claims").fetchall()
    return [o for o, host, pid, start, expires in rows if o != me().id and live(host, pid, start, expires)]


def attempt_counts(store: Store) -> dict[str, dict[str, int]]:
    """run_id -> {outcome: number of attempts}: a run computed twice has done + failed > 1."""
    out: dict[str, dict[str, int]] = {}
    with store.transaction() as con:
        for rid, outcome, n in con.execute("SELECT run_id, outcome, COUNT(*) FROM attempts GROUP BY run_id, outcome"):
            out.setdefault(rid, {})[outcome] = n
    return out


def history(con) -> tuple[list[tuple], list[tuple]]:
    """The attempts log and the claims of live processes in a store's database (`con`, one being
    rebuilt), as rows, as far as they can be read: what its rebuilt store keeps (`keep`)."""
    attempts: list[tuple] = []
    held: list[tuple] = []
    try:
        attempts.extend(con.execute("SELECT id, run_id, owner, started, finished, outcome FROM attempts"))
        held.extend(con.execute("SELECT run_id, owner, host, pid, pid_start, attempt, expires FROM claims"))
    except sqlite3.Error:  # what was read before the damage is kept
        pass
    now = time.time()
    return attempts, [c for c in held if live(c[2], c[3], c[4], c[6], now)]


def keep(con, attempts: list[tuple], held: list[tuple]) -> None:
    """Write the attempts and live claims that `history` read into a new store's database; an
    attempt still running without a live claim is closed as abandoned (its process is gone)."""
    live, now = {c[5] for c in held}, time.time()
    con.executemany("INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?)",
                    [a if a[5] != "running" or a[0] in live else (*a[:4], now, "abandoned") for a in attempts])
    con.executemany("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?,?,?)", held)


class _Renewer:
    """One daemon thread per process renews the leases of every claim the process holds."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[str, tuple[object, set[str]]] = {}  # store path -> (store, run ids)
        self._thread: threading.Thread | None = None

    def hold(self, store, run_id: str) -> None:
        with self._lock:
            self._held.setdefault(str(store.path), (store, set()))[1].add(run_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="tuneoff-lease", daemon=True)
                self._thread.start()

    def drop(self, run_id: str) -> None:
        with self._lock:
            for _, ids in self._held.values():
                ids.discard(run_id)

    def held(self, store) -> set[str]:
        with self._lock:
            return set(self._held.get(str(store.path), (None, set()))[1])

    def _loop(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(0.1)  # short ticks: a lease changed since the thread started is honoured
            try:
                lease = lease_seconds()
            except RuntimeError:  # StoreError: a bad value is the user's, reported before any run; keep renewing
                lease = 60.0
            if time.monotonic() - last < lease / 4:
                continue
            last = time.monotonic()
            with self._lock:
                work = [(s, set(ids)) for s, ids in self._held.values() if ids]
            for store, ids in work:
                try:
                    with store.transaction(immediate=True) as con:
                        con.executemany("UPDATE claims SET expires=? WHERE run_id=? AND owner=?",
                                        [(time.time() + lease, rid, me().id) for rid in ids])
                except Exception:  # noqa: BLE001 - a busy store: try again at the next beat
                    pass


_renewer = _Renewer()
