"""Run ids of the shipped configs stay what they were: a resumed sweep, a published store and
`tuneoff show` depend on them. A method whose results change on purpose bumps its `version`, and
only then are the ids rewritten:  python tests/test_run_ids.py  (writes tests/data/run_ids.json)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tuneoff.config import load_config
from tuneoff.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
FROZEN = Path(__file__).with_name("data") / "run_ids.json"

SWEEPS = [("examples/quick.yaml", []), ("examples/paper.yaml", []), ("benchmarks/selection.yaml", []),
          ("examples/cola-mnli-cpu.yaml", []), ("examples/cola-mnli-v2.yaml", []),
          ("examples/quick.yaml", ["defaults.select=null"])]
RUNS = [[], ["method=lora", "shots=16", "data_seed=3"],
        ["method=icl", "model=smollm2-135m", "shots=8", "data_seed=0"],
        ["method=pattern", "model=smollm2-135m", "shots=8", "data_seed=0", "train.max_length=128"]]


def current_ids() -> dict[str, list[str]]:
    out = {}
    for name, over in SWEEPS:
        sweep = load_sweep(ROOT / name, over)
        out[" ".join([name, *over])] = [r.run_id() for r in sweep.runs]
    for over in RUNS:
        cfg = load_config(ROOT / "examples/demo.yaml", over)
        out[" ".join(["examples/demo.yaml", *over])] = [r.run_id() for r in cfg.expand()]
        # `tuneoff run key=value` without a file: the config defaults (what demo.yaml held before it
        # became the main job, so these are the ids demo.yaml gave then)
        out[" ".join(["defaults", *over])] = [r.run_id() for r in load_config(None, over).expand()]
    return out


def test_run_ids_of_shipped_configs_are_unchanged():
    frozen = json.loads(FROZEN.read_text())
    now = current_ids()
    assert set(now) == set(frozen)
    for key, ids in frozen.items():
        assert len(now[key]) == len(ids), f"{key}: {len(now[key])} runs, was {len(ids)}"
        changed = [i for i, (a, b) in enumerate(zip(ids, now[key])) if a != b]
        assert not changed, (f"{key}: {len(changed)} of {len(ids)} run ids changed (first: run {changed[0]}); "
                             f"bump the method's version if its results change, then rerun "
                             f"`python tests/test_run_ids.py`")


if __name__ == "__main__":
    FROZEN.write_text(json.dumps(current_ids(), indent=1) + "\n")
    print(f"wrote {FROZEN}", file=sys.stderr)
