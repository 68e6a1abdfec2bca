"""The typed run record (`tuneoff.record`): every published record loads and dumps back to itself,
the store writes and reads through it, and a record that does not follow it is handled like
unreadable JSON when read."""
import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tuneoff.record import SCHEMA_VERSION, Overall, Record, RecordError, Split, dump, load, loads, stored
from tuneoff.repair import read_record, repair
from tuneoff.store import Store, StoreError

DOCS = Path(__file__).resolve().parents[1] / "docs"
MANIFESTS = sorted(DOCS.glob("**/runs/*/manifest.json"))


def _rec(run_id="a", status="done", **more):
    return {"run_id": run_id, "status": status, "error": None, "created_at": "2026-01-01T00:00:00",
            "config": {"task": "demo", "model": "m", "method": {"name": "finetune"}, "shots": 2,
                       "data_seed": 0, "seed": 0},
            "metrics": {"test": {"domain": "in", "n": 4,
                                 "overall": {"n": 4, "accuracy": 0.5, "mcc": 0.0, "f1": 0.33,
                                             "pred_dist": {"a": 0.5, "b": 0.5}},
                                 "majority": {"label": 0, "n": 4, "accuracy": 0.5, "mcc": 0.0, "f1": 0.33}}},
            "resources": {"params_total": 10, "train_time_s": 1.5}, **more}


def test_every_published_manifest_loads_and_dumps_back_to_itself():
    assert len(MANIFESTS) >= 300  # docs/cola-mnli-cpu, docs/quick-sweep, docs/selection
    for path in MANIFESTS:
        data = json.loads(path.read_text())
        rec = load(data)
        assert dump(rec) == data, path  # no key added (no schema_version either), none dropped
        if "schema_version" in data:  # written since records carry their version
            assert data["schema_version"] == SCHEMA_VERSION
        else:
            assert rec.schema_version == SCHEMA_VERSION and "schema_version" not in rec
        assert rec.run_id == path.parent.name and rec.status in ("done", "failed")


def test_typed_parts_and_the_dict_view_of_a_published_record():
    path = next(p for p in MANIFESTS if json.loads(p.read_text()).get("selection"))
    data = json.loads(path.read_text())
    rec = load(data)
    es, m = next(iter(rec.metrics.items()))
    assert isinstance(m.overall, Overall) and m.overall.accuracy == data["metrics"][es]["overall"]["accuracy"]
    assert rec["metrics"][es]["overall"]["accuracy"] == m.overall.accuracy  # read as the stored JSON
    assert rec.selection.chosen == data["selection"]["chosen"] and rec.resources.train_time_s > 0
    assert rec.prompt_example["from"] == rec.prompt_example.from_ == data["prompt_example"]["from"]
    assert ("oracle" in rec) == ("oracle" in data) and rec.get("absent", 7) == 7
    assert {**rec}.keys() == data.keys() and rec == data and dict(rec.split) == data["split"]
    with pytest.raises(KeyError):
        rec["no such key"]


def test_absent_parts_stay_absent_and_unknown_keys_are_kept():
    data = _rec(later_key={"x": 1})
    data["metrics"]["test"]["overall"]["new_metric"] = 0.25  # a metric registered later
    rec = load(data)
    assert rec.selection is None and rec.forgetting is None and rec.split is None
    assert rec.method_version == 1 and "method_version" not in rec  # the default every older run had
    assert rec.metrics["test"].overall.get("new_metric") == 0.25 and rec["later_key"] == {"x": 1}
    assert dump(rec) == data


def test_a_new_record_carries_the_schema_version_and_validates_its_parts():
    rec = Record.create(run_id="r", config={"task": "demo"}, task="demo")
    assert rec.status == "running" and rec.created_at and rec.to_dict()["schema_version"] == SCHEMA_VERSION
    rec.split = {"ids": ["1", "2"], "checksum": "ck", "n": 2, "train_pool": 10}
    rec.update(status="done", metrics={"test": {"overall": {"n": 2, "accuracy": 1}}}, skipped="done")
    assert isinstance(rec.split, Split) and rec.metrics["test"].overall.accuracy == 1.0 and rec["skipped"] == "done"
    assert load(json.loads(json.dumps(rec.to_dict()))) == rec
    with pytest.raises(ValueError):
        rec.status = "half-done"
    with pytest.raises(RecordError, match="newer"):
        load({**_rec(), "schema_version": SCHEMA_VERSION + 1})


def test_what_is_not_a_record():
    with pytest.raises(RecordError, match="invalid JSON"):
        loads("{not json")
    with pytest.raises(RecordError, match="status"):
        load({"run_id": "a"})
    with pytest.raises(RecordError, match="metrics"):
        load(_rec(metrics=[1, 2]))
    with pytest.raises(RecordError, match="run_id"):  # held in memory without one is fine; stored, not
        stored({k: v for k, v in _rec().items() if k != "run_id"})


def test_the_store_writes_both_copies_from_the_record_and_reads_records(tmp_path):
    store = Store(tmp_path)
    store.put(_rec("a"))  # a dict, validated
    store.put(Record.create(run_id="b", status="failed", error="ValueError: no"))
    manifest = json.loads(store.manifest("a").read_text())
    with contextlib.closing(sqlite3.connect(store.path)) as con:
        row = json.loads(con.execute("SELECT record FROM runs WHERE run_id='a'").fetchone()[0])
    assert manifest == row == _rec("a")  # written as given: nothing added
    got = store.get("a")
    assert isinstance(got, Record) and got == _rec("a") and got.resources.train_time_s == 1.5
    assert [r.run_id for r in store.records()] == ["a", "b"] and store.records("failed")[0].error == "ValueError: no"
    assert store.get("b").schema_version == SCHEMA_VERSION and "schema_version" in store.get("b")


def test_a_record_that_does_not_follow_the_schema_is_not_stored(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    store = Store(tmp_path / "res")
    with pytest.raises(StoreError, match="run x finished but its record cannot be stored.*kept in"):
        store.put(_rec("x", status="weird"))
    assert store.statuses() == {} and not store.manifest("x").exists()
    assert json.loads((tmp_path / "tmp" / "tuneoff-rescued" / "x.json").read_text())["status"] == "weird"


def _corrupt(store: Store, run_id: str, blob: str) -> None:
    with contextlib.closing(sqlite3.connect(store.path)) as con, con:
        con.execute("UPDATE runs SET record=? WHERE run_id=?", (blob, run_id))


def test_a_row_that_is_no_record_is_named_and_its_manifest_used(tmp_path):
    store = Store(tmp_path)
    for rid in ("a", "b"):
        store.put(_rec(rid))
    _corrupt(store, "a", json.dumps(_rec("a", metrics="oops")))
    _corrupt(store, "b", json.dumps(_rec("b", status="weird")))
    store.manifest("b").write_text(json.dumps(_rec("b", schema_version=SCHEMA_VERSION + 1)))
    fresh = Store(tmp_path)
    assert [r.run_id for r in fresh.records()] == ["a"] and fresh.get("a") == _rec("a")
    assert "not a run record" in fresh.bad_rows["a"] and "manifest is used instead" in fresh.bad_rows["a"]
    assert "no manifest either: left out" in fresh.bad_rows["b"] and fresh.get("b") is None
    assert "2 row(s)" in fresh.bad_rows_note()


def test_repair_reads_manifests_through_the_record(tmp_path):
    store = Store(tmp_path)
    store.put(_rec("a"))
    store.put(_rec("b"))
    store.manifest("b").write_text(json.dumps(_rec("b", split={"ids": "not a list"})))
    assert read_record(store.manifest("a")) == _rec("a") and read_record(store.manifest("b")) is None
    (tmp_path / "results.sqlite").unlink()
    rep = repair(tmp_path)
    assert rep.imported == ["a"] and rep.bad_files == [str(store.manifest("b"))]
    assert Store(tmp_path).get("a") == _rec("a")


def test_claims_does_not_import_the_store():
    code = "import sys, tuneoff.claims; assert 'tuneoff.store' not in sys.modules, 'claims imports the store'"
    subprocess.run([sys.executable, "-c", code], check=True)
