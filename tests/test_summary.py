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
