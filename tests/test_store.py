import json

from tuneoff.store import Store, open_store


def _rec(run_id, status="done"):
    return {"run_id": run_id, "status": status, "created_at": "2026-01-01T00:00:00",
            "config": {"task": "demo", "model": "m", "method": {"name": "finetune"}, "shots": 2,
                       "data_seed": 0, "seed": 0},
            "metrics": {"in_domain": {"overall": {"accuracy": 0.5}}}}


def test_round_trip_counts_and_manifest(tmp_path):
    s = Store(tmp_path)
    s.put(_rec("a"))
    s.put(_rec("b", "failed"))
    assert s.get("a")["metrics"]["in_domain"]["overall"]["accuracy"] == 0.5
    assert s.is_done("a") and not s.is_done("b") and s.status("zzz") is None
    assert s.counts() == {"done": 1, "failed": 1}
    assert [r["run_id"] for r in s.records("failed")] == ["b"]
    assert json.loads((tmp_path / "runs" / "a" / "manifest.json").read_text())["run_id"] == "a"
    s.put(_rec("b"))  # a retried run replaces its failed record
    assert Store(tmp_path).counts() == {"done": 2}


def test_open_store_requires_results(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no results"):
        open_store(tmp_path / "empty", must_exist=True)
