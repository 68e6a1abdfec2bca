"""The figures the main README quotes from the published comparison are the store's: each is
recomputed from docs/cola-mnli-cpu's manifests (mean ± sample std over the splits) and must appear in
the README as written, so a rerun or an edit cannot leave the text behind the data."""
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "docs" / "cola-mnli-cpu" / "runs"

# (task, shots, method label, eval set, metric) -> how the README writes the method before its figure
QUOTED = [
    ("cola", 128, "finetune", "in_domain", "mcc", "finetune"),
    ("cola", 128, "lora", "in_domain", "mcc", "lora"),
    ("cola", 128, "adaptive", "in_domain", "mcc", "adaptive"),
    ("cola", 128, "pattern", "in_domain", "mcc", "pattern"),
    ("mnli", 128, "pattern", "validation_matched", "accuracy", "pattern"),
    ("mnli", 128, "finetune", "validation_matched", "accuracy", "finetune"),
    ("mnli", 128, "lora", "validation_matched", "accuracy", "lora"),
    ("mnli", 128, "adaptive", "validation_matched", "accuracy", "adaptive"),
    ("mnli", 4, "icl", "hans", "accuracy", "icl's at 4 shots,"),
]


def scores() -> dict:
    out = defaultdict(list)
    for path in STORE.glob("*/manifest.json"):
        rec = json.loads(path.read_text())
        if rec.get("status") != "done":
            continue
        c = rec["config"]
        for name, m in rec["metrics"].items():
            for metric, value in m["overall"].items():
                if isinstance(value, (int, float)):
                    out[(c["task"], c["shots"], c["method"]["name"], name, metric)].append(value)
    return out


@pytest.mark.skipif(not STORE.is_dir(), reason="the published store is not in this checkout")
@pytest.mark.parametrize("task, shots, method, eval_set, metric, written", QUOTED)
def test_the_readme_quotes_the_store(task, shots, method, eval_set, metric, written):
    values = scores()[(task, shots, method, eval_set, metric)]
    assert len(values) == 5, (task, shots, method)
    figure = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"{written} {figure}" in readme, f"README should say '{written} {figure}'"
