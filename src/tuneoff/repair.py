"""Bringing a results folder back to a consistent state from its run manifests (the durable copy):
rebuild a damaged or missing store, take in manifests that missed their row (a kill between the
two writes, a store that was read-only), restore manifests a done row still holds, and import
records kept elsewhere (`tuneoff.store.rescue`). Nothing finished is ever deleted: a damaged
store file is moved aside, not removed.
"""
from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tuneoff.claims import live_claims
from tuneoff.record import STATUSES, Record, RecordError, loads, read
from tuneoff.store import STORE_FILE, Store, StoreDamaged, StoreError, check_file, write_json_atomic


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
        path = store.manifest(rid)
        if not path.is_file():
            rec = store.get(rid)
            if rec is not None:
                write_json_atomic(path, rec.to_dict())
                n += 1
    return n


@dataclass
class RepairReport:
    folder: Path
    damaged: str | None = None          # why the store was rebuilt (None: it was healthy)
    moved_to: list[Path] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)    # rows written from manifests / given files
    salvaged: list[str] = field(default_factory=list)    # rows read back from the damaged store
    restored: list[str] = field(default_factory=list)    # manifests written from rows
    bad_files: list[str] = field(default_factory=list)   # files that hold no usable record
    unreadable_rows: list[str] = field(default_factory=list)  # rows without JSON and without a manifest
    selection_cpu: list[str] = field(default_factory=list)  # runs given their frugal choice's CPU time


def _salvage(path: Path) -> dict[str, Record]:
    """Rows still readable from a damaged store, best effort."""
    out: dict[str, Record] = {}
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as con:
            for rid, blob in con.execute("SELECT run_id, record FROM runs"):
                try:
                    rec = loads(blob)
                except RecordError:
                    continue
                if rec.run_id == rid and rec.status in STATUSES:
                    out[rid] = rec
    except sqlite3.Error:
        pass
    return out


def _move_aside(folder: Path) -> list[Path]:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    moved = []
    for suffix in ("", "-wal", "-shm"):
        p = folder / (STORE_FILE + suffix)
        if p.exists():
            target = folder / f"{STORE_FILE}.damaged-{stamp}{suffix}"
            p.rename(target)
            moved.append(target)
    return moved


def repair(folder: str | Path, extra: Iterable[str | Path] = ()) -> RepairReport:
    """Make `folder`'s store hold every record its manifests (and `extra` record files) hold, and
    every done row its manifest. Run it while no other tuneoff process uses the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} is not a results folder")
    rep = RepairReport(folder)
    salvaged: dict[str, Record] = {}
    try:
        check_file(folder)
    except StoreDamaged as e:
        rep.damaged = str(e)
        if (folder / STORE_FILE).is_file():
            salvaged = _salvage(folder / STORE_FILE)
        rep.moved_to = _move_aside(folder)
    store = Store(folder, check=False)  # checked above; a missing one is created afresh
    busy = live_claims(store)
    if busy:
        raise StoreError(f"{folder} is in use: {len(busy)} run(s) are being computed by another tuneoff "
                         f"process ({', '.join(sorted(set(busy))[:3])}); repair it when that process has finished")
    rows = store.statuses()

    def take(rec: Record, where: list[str]) -> None:
        rid = rec.run_id
        current = store.get(rid) if rid in rows else None
        if current is None or (current.status != "done" and rec.status == "done"):
            store.put_row(rec)
            rows[rid] = rec.status
            where.append(rid)

    for path in sorted((folder / "runs").glob("*/manifest.json")):
        rec = read_record(path)
        if rec is None or rec.run_id != path.parent.name:
            rep.bad_files.append(str(path))
            continue
        take(rec, rep.imported)
    for path in extra:
        rec = read_record(Path(path))
        if rec is None:
            rep.bad_files.append(str(path))
            continue
        take(rec, rep.imported)
    for rec in salvaged.values():
        take(rec, rep.salvaged)
    for rid in rows:
        if store.get(rid) is None:
            rep.unreadable_rows.append(rid)
    rep.restored = [rid for rid in rows if rid not in rep.unreadable_rows
                    and restore_manifests(store, [rid])]
    rep.selection_cpu = carry_selection_cpu(store)
    return rep


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
        write_json_atomic(store.manifest(rec.run_id), rec.to_dict())
        store.put_row(rec)
        fixed.append(rec.run_id)
    return fixed
