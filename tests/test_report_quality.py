"""The report's cross-model leaderboard, calibration and forgetting sections, on new records and on
records written before those figures existed."""
import pytest

from test_report import make_record, store_with
from tuneoff.config import ConfigError
from tuneoff.report import write_report
from tuneoff.report.build import build_sections
from tuneoff.sweep import expand_sweep, parse_sweep


def _section(sections, sid):
    return next(s for s in sections if s.id == sid)


def _new(method, model, data_seed, acc, ece, delta):
    rec = make_record(method, model=model, acc=acc, ood=acc - 0.1, data_seed=data_seed,
                      resources={"params_total": 135_000_000 if model == "lm" else 22_000_000})
    for m in rec["metrics"].values():
        m["overall"].update(ece=ece, brier=2 * ece, reliability={
            "n": [0] * 5 + [50, 0, 0, 0, 50], "confidence": [None] * 5 + [0.55, None, None, None, 0.95],
            "accuracy": [None] * 5 + [0.5, None, None, None, 0.9]})
    rec["forgetting"] = ({"status": "n/a", "reason": "not a causal LM (an encoder or masked LM)", "text": "builtin"}
                         if delta is None else
                         {"status": "done", "lm_loss_before": 3.1, "lm_loss_after": 3.1 + delta, "lm_loss_delta": delta,
                          "tokens": 511, "head": "the model's LM head", "text": "builtin"})
    return rec


NEW = [_new("pattern", "lm", i, 0.9, 0.05, 0.4) for i in range(3)] + \
      [_new("icl", "lm", i, 0.7, 0.20, 0.0) for i in range(3)] + \
      [_new("finetune", "enc", i, 0.8, 0.10, None) for i in range(3)]


def test_cross_model_leaderboard_calibration_and_forgetting():
    sections, _ = build_sections(NEW, n_boot=100)
    board = _section(sections, "leaderboard").blocks[0]
    assert board.title == "demo — every model: accuracy"
    rows = {r[0].text: [c.text for c in r] for r in board.rows}
    assert set(rows) >= {"pattern · lm", "icl · lm", "finetune · enc", "majority baseline"}
    assert rows["pattern · lm"][board.header.index("model params")] == "135M"
    assert rows["finetune · enc"][board.header.index("Δ LM loss (8 shots)")] == "–"
    cal = _section(sections, "calibration").blocks
    table = cal[0]
    assert [r[0].text for r in table.rows] == ["pattern · lm", "finetune · enc", "icl · lm"]  # by ECE
    assert table.rows[0][1].text == "0.050 / 0.100 (3)" and "10 equal-width bins" in table.note
    assert any(type(b).__name__ == "Figure" and b.name.startswith("reliability") for b in cal)
    fg = _section(sections, "forgetting").blocks[0]
    frow = {r[0].text: [c.text for c in r] for r in fg.rows}
    assert frow["icl · lm"][2] == "0.000 ± 0.000 (3)" and frow["pattern · lm"][2] == "0.400 ± 0.000 (3)"
    assert frow["finetune · enc"][2] == "n/a" and "not a causal LM" in frow["finetune · enc"][-1]


def test_a_store_from_before_calibration_and_forgetting_still_renders(tmp_path):
    old = [make_record(m, model=mo, data_seed=i, acc=a) for m, mo, a in
           (("finetune", "enc", 0.8), ("pattern", "lm", 0.9)) for i in range(3)]
    paths = write_report(store_with(tmp_path, old))
    md = paths["md"].read_text()
    assert "no calibration figures recorded" in md and "no forgetting figures recorded" in md
    assert "## Recommendation" in md and "every model: accuracy" in md


def test_a_sweep_ends_with_the_answer_for_its_budget(tmp_path):
    sw = expand_sweep(parse_sweep({"defaults": {"output_dir": str(tmp_path)}, "methods": ["finetune"],
                                   "recommend": {"max_train_time": "10m", "shots": 8, "domain": "out"}}))
    # max_train_time, the old name, is the CPU-time limit (tuneoff.budget)
    assert sw.budget.max_train_cpu == 600 and sw.budget.shots == [8] and sw.budget.domain == "out"
    with pytest.raises(ConfigError, match="recommend.max_memory.*4GB or 512MB"):
        parse_sweep({"recommend": {"max_memory": "huge"}})
    with pytest.raises(ConfigError, match="recommend.budget"):
        parse_sweep({"recommend": {"budget": 1}})
