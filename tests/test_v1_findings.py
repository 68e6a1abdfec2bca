"""benchmarks/v1_findings.py: v1's findings read again in v2's store (the v2 comparison's "what changed
from v1"), on synthetic stores whose outcome is built in: each verdict it can give, once."""
import sys
from pathlib import Path

import numpy as np

from test_report import make_record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import v1_findings as vf  # noqa: E402

RNG = np.random.default_rng(0)


def _runs(method, acc, shots=8, splits=6, options=None):
    return [make_record(method, acc=float(a), ood=None, shots=shots, data_seed=i, options=options)
            for i, a in enumerate(acc + RNG.normal(0, 0.01, splits))]


# v1 / v2 at 8 shots: a stays ahead; b catches up with a (no longer separated); c was at chance.
# At 16: d and e swap; f and g were even and come apart. At 32: h has 2 of its splits in v2.
V1 = (_runs("a", 0.90) + _runs("b", 0.75) + _runs("c", 0.50) + _runs("d", 0.85, 16) + _runs("e", 0.60, 16)
      + _runs("f", 0.70, 16) + _runs("g", 0.70, 16) + _runs("h", 0.90, 32) + _runs("i", 0.55, 32))
V2 = (_runs("a", 0.90) + _runs("b", 0.895) + _runs("c", 0.75) + _runs("d", 0.60, 16) + _runs("e", 0.85, 16)
      + _runs("f", 0.90, 16) + _runs("g", 0.60, 16) + _runs("h", 0.90, 32, splits=2) + _runs("i", 0.55, 32)
      + _runs("new", 0.95))


def _by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def test_above_chance_each_verdict():
    rows = _by(vf.chance_rows(V2, V1), "shots", "v1")
    assert rows[(8, "a")]["verdict"] == "holds: above chance"
    assert rows[(8, "c")]["verdict"] == "now above chance"
    assert rows[(16, "d")]["verdict"] == "holds: above chance"
    assert rows[(32, "i")]["verdict"] == "holds: not above chance"
    assert rows[(32, "h")]["verdict"] == "pending: 2 of 5 splits"
    assert not any(r["v2"] == "new" for r in rows.values())  # v2's own method: not a change from v1
    v1_only = [r for r in vf.chance_rows(V2, V1 + _runs("c", 0.50, 16))]  # a cell v1 alone ran: no row
    assert len(v1_only) == len(rows)


def test_a_lost_margin_is_said():
    old = _runs("a", 0.90) + _runs("b", 0.60)
    new = _runs("a", 0.50) + _runs("b", 0.60)
    assert _by(vf.chance_rows(new, old), "v1")[("a",)]["verdict"] == "no longer above chance"


def test_separations_each_verdict():
    rows = _by(vf.separation_rows(V2, V1), "shots", "verdict")
    assert rows[(8, "not separated in v2")]["v1"].startswith("a − b = +0.1")
    assert "(6 pairs): separated" in rows[(8, "not separated in v2")]["v1"]
    held = [r for r in vf.separation_rows(V2, V1) if r["verdict"] == "holds"]
    assert {r["v2"].split(" =")[0] for r in held} >= {"a − c", "b − c"}
    assert rows[(16, "reversed")]["v1"].startswith("d − e") and rows[(16, "reversed")]["v2"].startswith("e − d")
    new = {r["v2"].split(" =")[0]: r for r in vf.separation_rows(V2, V1) if r["verdict"] == "new in v2"}
    assert "f − g" in new and "not separated" in new["f − g"]["v1"] and new["f − g"]["shots"] == 16
    assert not any("new" in k for k in new)  # a method v1 did not run is v2's own, not a change
    assert rows[(32, "pending: 2 pairs")]["v1"].startswith("h − i")
    gone = vf.separation_rows([r for r in V2 if r["method"] != "e"], V1)
    assert any(r["verdict"] == "not run in v2" and r["v1"].startswith("d − e") for r in gone)


def test_the_answer_per_cell():
    rows = _by(vf.answer_rows(V2, V1), "shots", "domain")
    assert rows[(8, "in")]["v1"] == "best: best mean a · tiny; not separated from it: none"
    assert rows[(8, "in")]["v2"].startswith("not separated: best mean new · tiny; not separated from it: a · tiny")


def test_variants_match_by_method():
    assert vf.base("icl(k=4, select=dev/frugal)") == "icl" and vf.base("finetune") == "finetune"
