"""One description of a run: the terminal summary and the report group and name the same runs
alike; only seeds are pooled; a selection's chosen values are not settings."""
from __future__ import annotations

import pytest

from tuneoff.describe import Label, flatten, labels, main_metric, settings
from tuneoff.report.frame import aggregate, to_frame
from tuneoff.summary import summarise


def _rec(run_id, data_seed, acc, lr=1e-4, method="finetune", select=None, chosen=None, **extra):
    cfg = {"task": "demo", "model": "m", "method": {"name": method}, "pattern": None, "shots": 8,
           "data_seed": data_seed, "seed": 0, "train": {"lr": lr, "batch_size": 8}, "output_dir": "x",
           "device": "cpu", "eval": {"batch_size": 32, "max_examples": None}, "select": select, **extra}
    m = {"domain": "in", "n": 10, "overall": {"n": 10, "accuracy": acc, "mcc": 2 * acc - 1, "f1": acc},
         "majority": {"label": 0, "n": 10, "accuracy": 0.5, "mcc": 0.0, "f1": 0.33}}
    rec = {"run_id": run_id, "status": "done", "task": "demo", "model": "m", "method": method, "shots": 8,
           "data_seed": data_seed, "seed": 0, "pattern": None, "config": cfg, "main_metric": "accuracy",
           "metrics": {"test": m}}
    if chosen is not None:
        rec["selection"] = {"protocol": select["protocol"], "budget": select["budget"], "chosen": chosen,
                            "chosen_label": f"train.lr={chosen['train.lr']:g}"}
    return rec


def _summary_cells(records) -> set[tuple]:
    """(label, eval set, runs, mean) of each summary row, its label written as the report writes it."""
    out = set()
    for r in summarise(records):
        label = r["method"] + (f"({r['options']})" if r["options"] else "")
        out.add((label, r["eval_set"], r["runs"], round(float(r["score"].split(" ± ")[0]), 3)))
    return out


def _report_cells(records) -> set[tuple]:
    agg = aggregate(to_frame(records))
    main = agg[(agg["subset"] == "overall") & (agg["metric"] == "accuracy")]
    return {(r["variant"], r["eval_set"], int(r["count"]), round(float(r["mean"]), 3)) for _, r in main.iterrows()}


def test_runs_that_differ_in_train_lr_are_two_settings_in_the_summary_and_the_report():
    recs = [_rec("a0", 0, 0.6), _rec("a1", 1, 0.8), _rec("b0", 0, 0.9, lr=1e-3), _rec("b1", 1, 0.7, lr=1e-3)]
    expected = {("finetune(train.lr=0.0001)", "test", 2, 0.7), ("finetune(train.lr=0.001)", "test", 2, 0.8)}
    assert _summary_cells(recs) == expected
    assert _report_cells(recs) == expected  # the report pooled all four as seeds before
    frame = to_frame(recs)
    assert set(frame["method_label"]) == set(frame["variant"]) == {l for l, *_ in expected}


def test_selected_runs_pool_over_data_seeds_beside_the_same_method_without_selection():
    """A frugal selection expanded one data seed at a time (a grid over data_seed) records each
    run's own reference split; with budget full each split chose another lr. Neither is a setting."""
    frugal = [_rec(f"s{ds}", ds, 0.7 + 0.05 * ds, select={"protocol": "cv", "folds": 2, "budget": "frugal",
                                                        "reference_seed": ds, "oracle": False,
                                                        "train.lr": [1e-4, 1e-3]},
                   chosen={"train.lr": [1e-4, 1e-3, 1e-3][ds]}) for ds in range(3)]
    full = [_rec(f"f{ds}", ds, 0.6, method="head", select={"protocol": "dev", "folds": 2, "budget": "full",
                                                          "reference_seed": None, "oracle": ds == 1},
                 chosen={"train.lr": [1e-2, 1e-3, 1e-1][ds]}) for ds in range(3)]
    fixed = [_rec(f"x{ds}", ds, 0.5) for ds in range(3)] + [_rec(f"h{ds}", ds, 0.55, method="head") for ds in range(3)]
    recs = frugal + full + fixed
    expected = {("finetune(select=cv/frugal)", "test", 3, 0.75), ("finetune(select=off)", "test", 3, 0.5),
                ("head(select=dev/full)", "test", 3, 0.6), ("head(select=off)", "test", 3, 0.55)}
    assert _summary_cells(recs) == expected
    assert _report_cells(recs) == expected
    # the selection's own settings show where two selecting settings differ in them
    other = _rec("s9", 0, 0.9, select={**frugal[0]["config"]["select"], "train.lr": [1e-5]}, chosen={"train.lr": 1e-5})
    names = {lab.method_label for lab in labels(frugal + [other])}
    assert names == {"finetune(select.train.lr=[0.0001,0.001])", "finetune(select.train.lr=[1e-05])"}


def test_settings_leave_out_seeds_where_a_run_is_written_and_what_cannot_change_a_score():
    rec = _rec("a", 3, 0.5, forgetting={"enabled": True, "max_tokens": 256}, data_dir="d",
               select={"protocol": "cv", "folds": 2, "budget": "frugal", "reference_seed": 3, "oracle": True})
    # keys added since the record was written read as their defaults
    assert settings(rec) == {"train.lr": 1e-4, "train.batch_size": 8, "train.precision": "fp32", "train.optimizer": "adamw",
                             "train.stop_epochs": None, "eval.max_examples": None, "data_dir": "d",
                             "select": "cv/frugal", "select.folds": 2, "select.search": "grid", "version": 1,
                             "model_dtype": "float32", "quantization": None, "attn_implementation": "auto"}
    assert flatten({"train": {"lr": 1}, "select": {}, "a.b": 2}) == {"train.lr": 1, "select": {}, "a.b": 2}


def test_labels_name_the_pattern_where_one_label_used_several():
    a, b = _rec("a", 0, 0.5, method="pattern"), _rec("b", 0, 0.5, method="pattern")
    a["pattern"], b["pattern"] = "gpt3", "minimal"
    assert labels([a, b]) == [Label("pattern", "", "gpt3"), Label("pattern", "", "minimal")]
    assert labels([a, b])[0].variant == "pattern [gpt3]" and labels([a, b])[0].details == "[gpt3]"


@pytest.mark.parametrize("rec, metric", [
    ({"main_metric": "mcc", "task": "tickets"}, "mcc"),        # as recorded: a custom task's own
    ({"task": "cola"}, "mcc"),                                 # older record: its registered task's
    ({"task": "tickets"}, "accuracy"),                         # older record, task not registered
])
def test_the_main_metric_of_a_record(rec, metric):
    assert main_metric({"status": "done", **rec}) == metric
