"""Bringing a results folder back to a consistent state from its run manifests (the durable copy):
rebuild a damaged or missing store, take in manifests that missed their row (a kill between the
two writes, a store that was read-only) and rows that cannot be read, rewrite manifests that are
missing or broken from the rows that hold them, and import records kept elsewhere
(`tuneoff.store.rescue`). Nothing finished is ever deleted: a store that opens and passes
SQLite's check is never replaced; a damaged one is rebuilt beside itself (once the disk has room
for it), with the rows, attempts and claims still readable from it, and only the finished
rebuild takes its place: the damaged file is moved aside, not removed.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

from tuneoff import claims
from tuneoff.record import STATUSES, Record, RecordError, loads, read
from tuneoff.store import STORE_FILE, Store, StoreDamaged, StoreError, StoreFull, check_file
from tuneoff.storefile import size_text, space_on, store_error

REBUILD = f".{STORE_FILE}.rebuilding"  # the new store, beside the damaged one until it is complete


def read_record(path: Path) -> Record | None:
    """A finished run's record from a JSON file (`tuneoff.record.read`), or None if it holds none
    (unreadable, not a record, or a run still running)."""
    try:
        rec = read(path)
    except (OSError, RecordError):
        return None
    return rec if rec.status in STATUSES else None


def adopt(store: Store, run_id: str, failed_too: bool = False) -> bool:
    """If the run's manifest holds a finished record that its row lacks (a kill between the
    manifest and the row), write the row: the run is not computed again. A failed record counts
    only with `failed_too`. Closes this process's claim on the run."""
    rec = read_record(store.manifest(run_id))
    if rec is None or rec.run_id != run_id or rec.status not in (STATUSES if failed_too else ("done",)):
        return False
    store.put_row(rec, close_claim="adopted")
    return True


def restore_manifests(store: Store, run_ids: Iterable[str]) -> int:
    """Write the manifest of each run whose row holds a record but whose manifest.json is gone."""
    n = 0
    for rid in run_ids:
        if not store.manifest(rid).is_file():
            rec = store.get(rid)
            if rec is not None:
                store.write_manifest(rec)
                n += 1
    return n


@dataclass
class RepairReport:
    folder: Path
    damaged: str | None = None          # why the store was rebuilt (None: it was healthy)
    moved_to: list[Path] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)    # rows written from manifests / given files
    salvaged: list[str] = field(default_factory=list)    # rows read back from the damaged store
    attempts: int = 0                                    # attempts read back from the damaged store
    restored: list[str] = field(default_factory=list)    # missing manifests written from rows
    rewritten: list[str] = field(default_factory=list)   # broken manifests written from rows
    bad_files: list[str] = field(default_factory=list)   # files that hold no usable record
    unreadable_rows: list[str] = field(default_factory=list)  # rows without JSON and without a manifest
    selection_cpu: list[str] = field(default_factory=list)  # runs given their frugal choice's CPU time


def repair(folder: str | Path, extra: Iterable[str | Path] = ()) -> RepairReport:
    """Make `folder`'s store hold every record its manifests (and `extra` record files) hold, and
    every readable row its manifest. Run it while no other tuneoff process uses the folder."""
    folder, extra = Path(folder), [Path(p) for p in extra]
    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} is not a results folder")
    rep = RepairReport(folder)
    try:
        check_file(folder)
    except StoreDamaged as e:
        rep.damaged = str(e)
        _rebuild(folder, extra, rep)
        return rep
    store = Store(folder, check=False)
    busy = claims.live_claims(store)
    if busy:
        raise StoreError(f"{folder} is in use: {len(busy)} run(s) are being computed by another tuneoff "
                         f"process ({', '.join(sorted(set(busy))[:3])}); repair it when that process has finished")
    _bring_in(store, extra, {}, rep)
    return rep


def _rebuild(folder: Path, extra: list[Path], rep: RepairReport) -> None:
    """Build a new store beside the damaged one, from the manifests, `extra` and what is still
    readable from it (rows, attempts, claims of live processes), then put it in its place. A
    failure on the way leaves the folder's store where and as it was."""
    _check_space(folder, extra)
    old = folder / STORE_FILE
    salvaged, (attempts, held) = _salvage(old) if old.is_file() else ({}, ([], []))
    _remove(folder / REBUILD)  # left by a rebuild that failed
    try:
        new = Store(folder, check=False, name=REBUILD)
        with new.transaction(immediate=True) as con:
            claims.keep(con, attempts, held)
        rep.attempts = len(attempts)
        _bring_in(new, extra, salvaged, rep)
        rep.moved_to = _swap(folder, new.path)
    except BaseException:
        _remove(folder / REBUILD)
        raise


def _check_space(folder: Path, extra: list[Path]) -> None:
    """Refuse a rebuild the disk has no room for: about the store's size and its manifests'."""
    files = [folder / STORE_FILE, folder / f"{STORE_FILE}-wal", *(folder / "runs").glob("*/manifest.json"), *extra]
    need = sum(p.stat().st_size for p in files if p.is_file())
    if shutil.disk_usage(folder).free < need:
        raise StoreFull(f"{folder / STORE_FILE} is to be rebuilt from the run manifests, which takes about "
                        f"{size_text(need)} on {space_on(folder)}: free space there, then run "
                        f"`tuneoff repair {folder}` again; nothing was changed")


def _salvage(path: Path) -> tuple[dict[str, Record], tuple[list, list]]:
    """Rows, attempts and live claims (`tuneoff.claims.history`) still readable from a damaged
    store, best effort."""
    out: dict[str, Record] = {}
    history: tuple[list, list] = ([], [])
    wal = Path(f"{path}-wal")
    immutable = "" if wal.exists() and wal.stat().st_size else "&immutable=1"  # no -wal, -shm made then
    try:
        with closing(sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro{immutable}", uri=True)) as con:
            history = claims.history(con)
            for rid, blob in con.execute("SELECT run_id, record FROM runs"):
                try:
                    rec = loads(blob)
                except RecordError:
                    continue
                if rec.run_id == rid and rec.status in STATUSES:
                    out[rid] = rec
    except sqlite3.Error:
        pass
    return out, history


def _swap(folder: Path, new: Path) -> list[Path]:
    """Put the rebuilt store `new` in place of the damaged one, moved aside with its -wal and -shm
    files (their new names returned); never in place of one that passes SQLite's check."""
    try:
        check_file(folder)
    except StoreDamaged:
        pass
    else:
        raise StoreError(f"{folder / STORE_FILE} opens and passes SQLite's check now: it is left as it is")
    old, stamp = folder / STORE_FILE, _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    mode = old.stat().st_mode & 0o777 if old.is_file() else None
    moved: list[tuple[Path, Path]] = []
    try:
        for p in (old, Path(f"{old}-wal"), Path(f"{old}-shm")):
            if p.exists():
                moved.append((p, folder / p.name.replace(STORE_FILE, f"{STORE_FILE}.damaged-{stamp}")))
                p.rename(moved[-1][1])
        if mode is not None:
            new.chmod(mode)
        os.replace(new, old)
    except OSError as e:
        for p, aside in reversed(moved):
            aside.rename(p)
        raise store_error(e, old) from None
    return [aside for _, aside in moved]


def _remove(db: Path) -> None:
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)


def _bring_in(store: Store, extra: list[Path], salvaged: dict[str, Record], rep: RepairReport) -> None:
    """Write into `store` every record the manifests, `extra` files and `salvaged` rows hold that
    its rows lack or cannot give, then each readable row's manifest where that is missing or broken."""
    rows = store.statuses()
    broken = []
    for path in sorted((store.folder / "runs").glob("*/manifest.json")):
        rec = read_record(path)
        if rec is None or rec.run_id != path.parent.name:
            broken.append(path)
            continue
        _take(store, rows, rec, rep.imported)
    for path in extra:
        rec = read_record(path)
        if rec is None:
            rep.bad_files.append(str(path))
            continue
        _take(store, rows, rec, rep.imported)
    for rec in salvaged.values():
        _take(store, rows, rec, rep.salvaged)
    _write_manifests(store, rows, rep)
    rep.bad_files[:0] = [str(p) for p in broken if p.parent.name not in rep.rewritten]
    rep.selection_cpu = carry_selection_cpu(store)


def _take(store: Store, rows: dict[str, str], rec: Record, where: list[str]) -> None:
    """Write `rec`'s row where the store has none, one that cannot be read, or a failed run's that
    `rec` has done; noted in `where`."""
    rid = rec.run_id
    current = store.get(rid) if rid in rows else None
    if current is None or rid in store.bad_rows or (current.status != "done" and rec.status == "done"):
        store.put_row(rec)
        store.bad_rows.pop(rid, None)
        rows[rid] = rec.status
        where.append(rid)


def _write_manifests(store: Store, rows: dict[str, str], rep: RepairReport) -> None:
    """Each run whose row can be read gets its manifest written from it where the manifest is
    missing (`restored`) or cannot be read (`rewritten`); rows that cannot be read are named."""
    for rid in rows:
        rec = store.get(rid)
        if rec is None:
            rep.unreadable_rows.append(rid)
        elif rid not in store.bad_rows and (problem := store.manifest_problem(rid)):
            store.write_manifest(rec)
            (rep.restored if problem == "missing" else rep.rewritten).append(rid)


def _choice_key(rec: Record) -> str:
    """What identifies one frugal choice: the run's config without its split and seeds."""
    c = {k: v for k, v in (rec.config or {}).items() if k not in ("data_seed", "output_dir", "device")}
    return json.dumps(c, sort_keys=True)


def carry_selection_cpu(store: Store) -> list[str]:
    """Runs that reused a frugal choice were recorded, before selection CPU time was carried with the
    choice, with 0 s of selection CPU time (its wall time was carried). They take it from the run that
    made the choice (same settings, the reference split, no fit reused), as runs record it now."""
    done = store.records("done")
    made = {}
    for rec in done:
        sel = rec.selection
        if sel is not None and not sel.shared and not (sel.cost and sel.cost.fits_reused):
            made[_choice_key(rec)] = rec.resources.selection_cpu_s if rec.resources else None
    fixed = []
    for rec in done:
        sel, res = rec.selection, rec.resources
        if (sel is None or not sel.shared or (sel.cost is not None and "cpu_s" in sel.cost) or res is None
                or res.get("selection_cpu_s", 0) > 1.0):
            continue
        cpu = made.get(_choice_key(rec))
        if cpu is None:
            continue
        res.selection_cpu_s = cpu
        if sel.cost is None:
            sel.cost = {}
        sel.cost.cpu_s = cpu
        store.write_manifest(rec)
        store.put_row(rec)
        fixed.append(rec.run_id)
    return fixed
