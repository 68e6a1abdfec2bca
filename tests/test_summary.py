from tuneoff.summary import summarise


def _rec(lr, data_seed, acc, method="finetune", extra=None):
    cfg = {"task": "demo", "model": "m", "method": {"name": method, **(extra or {})}, "shots": 8,
           "data_seed": data_seed, "seed": 0, "train": {"lr": lr}, "output_dir": "x"}
    return {"status": "done", "task": "demo", "model": "m", "method": method, "shots": 8, "config": cfg,
            "main_metric": "accuracy",
            "metrics": {"test": {"domain": "in", "overall": {"accuracy": acc, "mcc": 0.0, "f1": acc},
                                 "majority": {"accuracy": 0.5, "mcc": 0.0, "f1": 0.33}}}}


def test_only_seeds_are_pooled():
    rows = summarise([_rec(1e-4, 0, 0.6), _rec(1e-4, 1, 0.8), _rec(1e-3, 0, 0.9), _rec(1e-3, 1, 0.9)])
    assert [(r["options"], r["score"], r["runs"]) for r in rows] == [
        ("train.lr=0.0001", "0.700 ± 0.141", 2), ("train.lr=0.001", "0.900 ± 0.000", 2)]


def test_method_options_show_only_where_they_exist():
    rows = summarise([_rec(1e-4, 0, 0.6), _rec(1e-4, 0, 0.7, "lora", {"r": 8}), _rec(1e-4, 0, 0.7, "lora", {"r": 4})])
    assert sorted(r["options"] for r in rows) == ["", "r=4", "r=8"]


def test_records_from_before_max_length_moved_pool_with_newer_ones():
    old, new = _rec(1e-4, 0, 0.6), _rec(1e-4, 1, 0.8)
    old["config"]["train"]["max_length"] = 64  # written while max_length was a training setting
    new["config"]["max_length"] = 64
    assert [(r["options"], r["runs"]) for r in summarise([old, new])] == [("", 2)]
    new["config"]["max_length"] = 128
    assert sorted(r["options"] for r in summarise([old, new])) == ["max_length=128", "max_length=64"]


def _hans_rec(data_seed, lex_ent, lex_not):
    rec = _rec(1e-4, data_seed, 0.5)
    rec["metrics"]["hans"] = {
        "domain": "out", "n": 4,
        "overall": {"accuracy": 0.5, "mcc": 0.0, "f1": 0.33}, "majority": {"accuracy": 0.5, "mcc": 0.0, "f1": 0.33},
        "subsets": {"label=entailment": {"n": 2, "accuracy": lex_ent},
                    "label=not_entailment": {"n": 2, "accuracy": lex_not},
                    "heuristic=lexical_overlap": {"n": 4, "accuracy": (lex_ent + lex_not) / 2, "mcc": 0.0, "f1": 0.3},
                    "heuristic=lexical_overlap|label=entailment": {"n": 2, "accuracy": lex_ent},
                    "heuristic=lexical_overlap|label=not_entailment": {"n": 2, "accuracy": lex_not}}}
    return rec


def test_per_subset_rows_show_each_gold_label_within_the_subset(tmp_path):
    from rich.console import Console

    from tuneoff.summary import print_summary, summarise_subsets, write_summary

    recs = [_hans_rec(0, 1.0, 0.0), _hans_rec(1, 0.8, 0.2)]
    rows = summarise_subsets(recs)
    assert len(rows) == 1  # one subset of one eval set; label=... alone is not a subset row
    r = rows[0]
    assert (r["eval_set"], r["subset"], r["runs"]) == ("hans", "heuristic=lexical_overlap", 2)
    assert r["accuracy"] == "0.500 ± 0.000"
    assert r["acc | entailment"] == "0.900 ± 0.141" and r["acc | not_entailment"] == "0.100 ± 0.141"
    console = Console(record=True, width=200)
    print_summary(console, recs)
    write_summary(summarise(recs), tmp_path, rows)
    out = console.export_text()
    assert "eval_set=hans" in out and "heuristic" in out and "not entailment" in out
    assert "lexical_overlap │ 0.500 ± 0.000 │ 0.900 ± 0.141 │ 0.100 ± 0.141" in out
    md = (tmp_path / "summary.md").read_text()
    assert "## Per subset" in md and "| hans | heuristic=lexical_overlap | 0.500 ± 0.000 | 0.900 ± 0.141 |" in md


def test_no_subset_table_without_subsets(tmp_path):
    from rich.console import Console

    from tuneoff.summary import print_summary, summarise_subsets, write_summary

    console = Console(record=True, width=200)
    print_summary(console, [_rec(1e-4, 0, 0.6)])
    write_summary(summarise([_rec(1e-4, 0, 0.6)]), tmp_path, summarise_subsets([_rec(1e-4, 0, 0.6)]))
    assert "per subset" not in console.export_text()
    assert "Per subset" not in (tmp_path / "summary.md").read_text()


def test_calibration_in_the_summary_and_dash_for_old_records(tmp_path):
    from tuneoff.summary import write_summary

    new = _rec(1e-4, 0, 0.6)
    new["metrics"]["test"]["overall"].update(ece=0.1, brier=0.4)
    new2 = _rec(1e-4, 1, 0.8)
    new2["metrics"]["test"]["overall"].update(ece=0.3, brier=0.2)
    row = summarise([new, new2])[0]
    assert (row["ece"], row["brier"]) == ("0.200 ± 0.141", "0.300 ± 0.141")
    assert summarise([_rec(1e-4, 0, 0.6)])[0]["ece"] == "–"
    md, csv_path = write_summary([row], tmp_path)
    assert "| ece | brier |" in md.read_text() and "10 equal-width bins" in md.read_text()
    assert "ece,brier,runs" in csv_path.read_text().splitlines()[0]


def _flag_rec(data_seed, acc, dist, majority=0.51):
    rec = _rec(1e-4, data_seed, acc)
    rec["metrics"]["test"]["majority"]["accuracy"] = majority
    rec["metrics"]["test"]["overall"]["pred_dist"] = dist
    return rec


def test_scores_at_the_majority_and_collapsed_predictions_are_flagged_everywhere(tmp_path):
    from rich.console import Console

    from tuneoff.cli import _brief
    from tuneoff.summary import print_summary, write_summary

    collapsed = [_flag_rec(0, 0.52, {"negative": 0.01, "positive": 0.99}),
                 _flag_rec(1, 0.52, {"negative": 0.02, "positive": 0.98})]
    healthy = [_flag_rec(0, 0.8, {"negative": 0.45, "positive": 0.55}),
               _flag_rec(1, 0.8, {"negative": 0.52, "positive": 0.48})]
    for r in healthy:
        r["shots"] = r["config"]["shots"] = 32
    rows = summarise(collapsed + healthy)
    bad, good = rows
    assert bad["flag"] == "one label · 98% positive" and bad["most_predicted"] == "98% positive"  # 0.520 > 0.510
    assert good["flag"] == "" and good["most_predicted"] == "54% negative/positive"
    at_majority = summarise([_flag_rec(0, 0.51, {"negative": 0.3, "positive": 0.7})])[0]
    assert at_majority["flag"] == "≤ majority · 70% positive"
    both = summarise([_flag_rec(0, 0.5, {"negative": 0.0, "positive": 1.0}, majority=0.5)])[0]
    assert both["flag"] == "≤ majority, one label · 100% positive"
    # the terminal table, summary.md and the per-run line
    console = Console(record=True, width=220)
    print_summary(console, collapsed + healthy)
    out = console.export_text()
    assert "one label · 98% positive" in out and "≥95% of the inputs" in out
    write_summary(rows, tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "| 0.520 ± 0.000 | 0.510 ± 0.000 | 98% positive | one label · 98% positive |" in md
    assert "≥95%" in md
    line = _brief(collapsed[0])
    assert "in_domain" not in line and "test 0.520 [red](one label · 99% positive)[/]" in line
    assert _brief(_flag_rec(0, 0.5, {"negative": 0.4, "positive": 0.6}, majority=0.5)).startswith(
        "accuracy: test 0.500 [red](≤ majority 0.500 · 60% positive)[/]")
    assert "[red]" not in _brief(healthy[0])


def test_old_and_new_versions_of_a_method_are_never_pooled():
    from tuneoff.report.frame import to_frame

    old = [_rec(1e-4, s, 0.6, "icl") for s in (0, 1)]
    new = [{**_rec(1e-4, s, 0.8, "icl"), "method_version": 2, "run_id": f"n{s}"} for s in (0, 1)]
    other = [{**_rec(1e-4, s, 0.7), "run_id": f"f{s}"} for s in (0, 1)]
    for i, r in enumerate(old):
        r["run_id"] = f"o{i}"
    rows = summarise(old + new + other)
    assert sorted((r["method"], r["options"], r["score"]) for r in rows) == [
        ("finetune", "", "0.700 ± 0.000"), ("icl", "version=1", "0.600 ± 0.000"), ("icl", "version=2", "0.800 ± 0.000")]
    assert summarise(new + other)[1]["options"] == ""  # one version each: nothing to tell apart
    frame = to_frame(old + new + other)
    assert set(frame["variant"]) == {"finetune", "icl(version=1)", "icl(version=2)"}
