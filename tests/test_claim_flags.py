"""What a reader must see about single runs wherever their cell is shown: a collapsed run among
healthy ones, the values a selection chose (never the config's unused ones), a selection with no
candidate above chance on its folds, the recommendation at the end of a sweep over the whole
folder, and comparisons that mix label budgets. Synthetic records; no models."""
from __future__ import annotations

import copy

import pytest
from rich.console import Console

from tuneoff.report.runflags import NO_CHANCE


def _rec(method="lora", data_seed=0, acc=0.8, dist=None, shots=8, selection=None, options=None, train=None,
         task="demo", majority=0.5):
    dist = dist or {"negative": 0.45, "positive": 0.55}
    cfg = {"task": task, "model": "tiny", "method": {"name": method, **(options or {})}, "shots": shots,
           "data_seed": data_seed, "seed": 0, "train": train or {"lr": 1e-5}, "output_dir": "x"}
    rec = {"run_id": f"{task}-{method}-{shots}-{data_seed}", "status": "done", "task": task, "model": "tiny",
           "method": method, "method_options": options or {}, "shots": shots, "data_seed": data_seed, "seed": 0,
           "config": cfg, "main_metric": "accuracy",
           "split": {"ids": list(range(2 * shots)), "checksum": f"ck-{task}-{shots}-{data_seed}", "n": 2 * shots,
                     "train_pool": 1000},
           "metrics": {"test": {"domain": "in", "n": 100,
                                "overall": {"n": 100, "accuracy": acc, "mcc": 2 * acc - 1, "f1": acc,
                                            "pred_dist": dist},
                                "majority": {"label": 0, "n": 100, "accuracy": majority, "mcc": 0.0, "f1": 0.33}}},
           "resources": {"params_trainable": 1000, "peak_memory_mb": 900.0, "train_time_s": 10.0,
                         "train_cpu_s": 10.0, "setup_time_s": 1.0, "setup_cpu_s": 1.0, "eval_time_s": 1.0},
           "train": {"losses": [0.7, 0.5]}}
    if selection is not None:
        rec["selection"] = copy.deepcopy(selection)
    return rec


def _section(sections, sid):
    return next(s for s in sections if s.id == sid)


def _table(blocks, title):
    return next(b for b in blocks if getattr(b, "title", "") == title)


# -- a. collapse, per run --------------------------------------------------------------------------

def test_a_single_collapsed_run_among_healthy_ones_is_flagged():
    """One run giving one label to 98% of the eval set, beside four healthy runs: the mean share of
    the top label (64%) is far under 95%, yet the cell is flagged, in the summary, the warnings, the
    protocol section and the per-cell lookup a leaderboard uses."""
    from tuneoff.report.build import build_sections
    from tuneoff.report.frame import collapsed_cells, runs, to_frame
    from tuneoff.summary import print_summary, summarise

    recs = [_rec(data_seed=i) for i in range(4)] + [_rec(data_seed=4, acc=0.52, dist={"negative": 0.02,
                                                                                       "positive": 0.98})]
    row = summarise(recs)[0]
    assert row["flag"] == "one label in 1 of 5 runs · 98% positive"
    console = Console(record=True, width=250)
    print_summary(console, recs)
    assert "one label in 1 of 5 runs" in console.export_text()

    assert collapsed_cells(runs(to_frame(recs))) == {("lora", 8, "test"): (1, 5)}
    sections, _ = build_sections(recs, n_boot=50)
    warn = " ".join(_section(sections, "summary").blocks[0].items)
    assert "demo/tiny: lora at 8 shots on test: 1 of 5 runs collapsed onto one label (98% positive)" in warn
    table = _table(_section(sections, "protocol").blocks, "Runs whose predictions collapsed onto one label")
    assert [[c.text for c in r] for r in table.rows] == [
        ["demo-lora-8-4", "demo", "tiny", "lora", "8", "4", "0", "test", "98% positive", "1 of 5 runs collapsed"]]


def test_a_cell_whose_every_run_collapsed_reads_one_label_and_a_healthy_cell_nothing():
    from tuneoff.summary import summarise

    both = [_rec(data_seed=i, acc=0.52, dist={"negative": 0.03, "positive": 0.97}) for i in range(2)]
    assert summarise(both)[0]["flag"] == "one label · 97% positive"
    # 0.96 and 0.94: one run collapsed; their mean (0.95) would have flagged the cell as a whole
    mixed = [_rec(data_seed=0, dist={"negative": 0.04, "positive": 0.96}),
             _rec(data_seed=1, dist={"negative": 0.06, "positive": 0.94})]
    assert summarise(mixed)[0]["flag"] == "one label in 1 of 2 runs · 96% positive"
    assert summarise([_rec(data_seed=i) for i in range(3)])[0]["flag"] == ""


# -- b. selected values in the methods table ---------------------------------------------------------

def _methods_rows(recs):
    from tuneoff.report.build import build_sections

    sections, _ = build_sections(recs, n_boot=50)
    table = _table(_section(sections, "protocol").blocks, "Methods")
    return {r[1].text: [c.text for c in r] for r in table.rows}


def test_every_searched_key_reads_as_the_values_chosen():
    """icl's calibrate, searched and chosen true, never reads as the config's false; the optuna
    search's length (train.epochs, train.stop_epochs) reads as chosen, per run where they differ."""
    icl_sel = {"protocol": "cv", "budget": "full", "folds": 2, "metric": "accuracy",
               "space": {"method.calibrate": [False, True]}, "chosen": {"method.calibrate": True}}
    icl = [_rec("icl", data_seed=i, options={"k": 2, "calibrate": False}, selection=icl_sel) for i in range(2)]
    length = {"low": 2, "high": 16, "factor": 2}
    opt = {"protocol": "cv", "budget": "full", "folds": 2, "metric": "accuracy", "search": "optuna",
           "space": {"train.lr": {"low": 1e-5, "high": 1e-3, "log": True}}, "length": length,
           "length_keys": ["train.epochs", "train.stop_epochs"]}
    lora = []
    for i, chosen in enumerate([{"train.lr": 3e-4, "train.epochs": 16, "train.stop_epochs": 4},
                                {"train.lr": 1e-4, "train.epochs": 16}]):
        lora.append(_rec("lora", data_seed=i, selection={**opt, "chosen": chosen},
                         train={"lr": 1e-5, "epochs": 15, "stop_epochs": None, "batch_size": 8}))
    rows = _methods_rows(icl + lora)
    assert rows["icl"][2].split("\n") == ["calibrate = selected: true", "k = 2"]
    train = rows["lora"][4].split("\n")
    assert "epochs = selected: 16" in train and "batch_size = 8" in train
    assert "lr = selected: 0.0003 (1), 0.0001 (1)" in train
    assert "stop_epochs = selected: 4 (1), none (1)" in train
    assert "1e-05" not in rows["lora"][4] and "epochs = 15" not in train


# -- c. no candidate above chance --------------------------------------------------------------------

def _cands(*means):
    return [{"values": {"train.lr": lr}, "label": f"train.lr={lr:g}", "diverged": False, "mean_score": m,
             "mean_loss": 0.7} for lr, m in zip((1e-5, 1e-4, 1e-3), means)]


def test_the_search_records_whether_any_candidate_beat_chance_on_its_folds():
    from tuneoff.selection.folds import Fold
    from tuneoff.selection.search import chance

    held = [{"id": str(i), "label": i % 2} for i in range(4)]
    folds = [Fold([], held), Fold([], held)]
    low = chance({"candidates": _cands(0.5, 0.25, None)}, folds, "accuracy", 2)
    assert low["chance"] == 0.5 and low["above_chance"] is False and low["note"].startswith(NO_CHANCE)
    assert chance({"candidates": _cands(0.5, 0.75)}, folds, "accuracy", 2) == {"chance": 0.5, "above_chance": True}
    assert chance({"candidates": _cands(0.0, 0.01)}, folds, "mcc", 2)["above_chance"] is True
    assert chance({"candidates": _cands(0.3, 0.33)}, folds, "f1", 2)["above_chance"] is False  # majority F1: 1/3


@pytest.mark.parametrize("metric, means, above", [
    ("accuracy", (0.5, 0.45), False), ("accuracy", (0.5, 0.625), True), ("mcc", (0.0, -0.2), False),
    ("f1", (1 / 3, 0.2), False), ("f1", (0.34, 0.2), True)])
def test_records_without_the_field_get_it_from_their_candidates(metric, means, above):
    from tuneoff.record import load
    from tuneoff.report.runflags import above_chance

    sel = {"protocol": "cv", "budget": "full", "folds": 2, "metric": metric, "candidates": _cands(*means)}
    assert above_chance(load(_rec(shots=4, selection=sel))) is above
    # folds that need not hold each label equally often (3 per class in 2 folds): not known
    assert above_chance(load(_rec(shots=3, selection=sel))) is (None if metric != "mcc" else above)


def test_no_candidate_above_chance_is_said_for_its_cell_in_the_report_and_the_terminal():
    from tuneoff.cli.display import brief
    from tuneoff.report.build import build_sections
    from tuneoff.summary import summarise

    sel = {"protocol": "cv", "budget": "full", "folds": 2, "metric": "accuracy", "chosen": {"train.lr": 1e-5},
           "chosen_label": "train.lr=1e-05", "space": {"train.lr": [1e-5, 1e-4]}, "candidates": _cands(0.5, 0.4),
           "chance": 0.5, "above_chance": False}
    recs = [_rec("lora", data_seed=i, selection=sel) for i in range(3)]
    recs += [_rec("head", data_seed=i) for i in range(3)]
    flags = {r["method"]: r["flag"] for r in summarise(recs)}
    assert flags == {"head": "", "lora": f"{NO_CHANCE} · 55% positive"}
    assert f"chose train.lr=1e-05 [red]({NO_CHANCE})[/]" in brief(recs[0])
    sections, _ = build_sections(recs, n_boot=50)
    assert f"Selection found {NO_CHANCE}" in " ".join(_section(sections, "summary").blocks[0].items)
    sel_blocks = _section(sections, "selection").blocks
    chosen = _table(sel_blocks, "Chosen hyperparameters and their cost")
    assert chosen.rows[0][5].text == f"train.lr=1e-05 — {NO_CHANCE}"
    assert any(NO_CHANCE in i for b in sel_blocks for i in getattr(b, "items", []))
    assert _methods_rows(recs)["lora"][5].endswith(f"; {NO_CHANCE}")
    # one run's selection of three: said with its count
    recs[0]["selection"]["above_chance"] = True
    assert summarise(recs)[1]["flag"] == f"{NO_CHANCE} in 2 of 3 runs · 55% positive"


# -- d. the recommendation at the end of a sweep -----------------------------------------------------

def _conclude_output(tmp_path, monkeypatch, stored, these):
    from tuneoff.budget import Budget
    from tuneoff.cli import base, running
    from tuneoff.results import Results
    from tuneoff.store import Store

    store = Store(tmp_path / "res")
    for r in stored:
        store.put(r)
    console = Console(record=True, width=400)
    monkeypatch.setattr(base, "console", console)
    monkeypatch.setattr(running, "console", console)
    running._conclude(Results(store, planned=these), Budget())
    text = console.export_text()
    return " ".join(text[text.index("recommendation"):].split())


def test_the_end_of_a_sweep_recommends_over_the_whole_folder(tmp_path, monkeypatch):
    """A sweep that ran lora alone, into a folder holding finetune's runs from before: its answer
    weighs both, as `tuneoff recommend` does."""
    old = [_rec("finetune", data_seed=i, acc=0.7 + 0.01 * i) for i in range(3)]
    new = [_rec("lora", data_seed=i, acc=0.8 + 0.01 * i) for i in range(3)]
    tail = _conclude_output(tmp_path, monkeypatch, old + new, new)
    assert "over every run in" in tail and "(6), as `tuneoff recommend` gives it" in tail
    assert "finetune · tiny" in tail and "lora · tiny" in tail
    assert "only lora" not in tail


def test_without_a_budget_the_answer_never_says_fits_the_budget(tmp_path, monkeypatch):
    only = [_rec("lora", data_seed=i) for i in range(3)]
    tail = _conclude_output(tmp_path, monkeypatch, only, only)
    flat = " ".join(tail.split())
    assert "no recommendation — only lora · tiny has finished runs here" in flat
    assert "lora · tiny fits the budget" not in flat  # (how a budget is applied is still explained)


# -- e. label budgets --------------------------------------------------------------------------------

def test_unequal_label_budgets_are_labelled():
    """icl chose on a dev split (16 more labels); finetune saw its split alone: the comparison says
    icl saw 2× the labels, and from where. A record's own `labels_seen` wins over what is derived."""
    from tuneoff.report.build import build_sections
    from tuneoff.report.frame import runs, to_frame

    dev = {"protocol": "dev", "budget": "full", "metric": "accuracy", "labels_used": 32, "labels_used_total": 32,
           "dev": {"ids": list(range(16)), "checksum": "x", "n": 16}}
    recs = [_rec("icl", data_seed=i, selection=dev) for i in range(3)]
    recs += [_rec("finetune", data_seed=i) for i in range(3)]
    recs += [{**_rec("head", data_seed=i), "labels_seen": 16} for i in range(3)]
    frame = runs(to_frame(recs))
    assert dict(zip(frame["method"], frame["labels_seen"])) == {"icl": 32, "finetune": 16, "head": 16}
    sections, _ = build_sections(recs, n_boot=50)
    warn = " ".join(_section(sections, "summary").blocks[0].items)
    assert "Unequal label budgets" in warn
    assert "demo at 8 shots: icl saw 2× the labels of finetune on the same split (32 vs 16: its dev split)" in warn
    table = _table(_section(sections, "protocol").blocks, "Labels seen per comparison")
    rows = {r[2].text: [c.text for c in r[3:]] for r in table.rows}
    assert rows == {"finetune": ["16", "1×", "its split"], "head": ["16", "1×", "its split"],
                    "icl": ["32", "2×", "its dev split"]}


def test_equal_label_budgets_raise_no_warning_and_frugal_reuse_is_a_range():
    from tuneoff.report.labels import label_budgets, labels_warning
    from tuneoff.report.frame import runs, to_frame

    same = runs(to_frame([_rec("lora", data_seed=i) for i in range(2)] + [_rec("head", data_seed=i) for i in range(2)]))
    assert labels_warning(same) == []
    frugal = {"protocol": "cv", "budget": "frugal", "folds": 2, "metric": "accuracy", "reference_data_seed": 0}
    recs = [_rec("lora", data_seed=0, selection={**frugal, "shared": False, "labels_used_total": 16}),
            _rec("lora", data_seed=1, selection={**frugal, "shared": True, "labels_used_total": 32}),
            _rec("head", data_seed=0), _rec("head", data_seed=1)]
    t = label_budgets(runs(to_frame(recs))).set_index("variant")
    assert (t.loc["lora", "low"], t.loc["lora", "high"], t.loc["lora", "times"]) == (16, 32, 2.0)
    assert "lora saw 2× the labels of head on the same split (32 vs 16: the reference split's (frugal selection))" \
        in labels_warning(runs(to_frame(recs)))[0]


def test_methods_that_all_reuse_the_reference_choice_saw_the_same_labels():
    """Every method of the cell selects on split 0 and reuses that choice on splits 1-2 (frugal):
    each saw 16 labels on split 0 and 32 on the others, and so did the others on the same split. The
    comparison sets runs side by side per split, so no budget is unequal (it read "lora saw up to 2×
    the labels of lora", the method against itself, over every split of the cell)."""
    from tuneoff.report.build import build_sections
    from tuneoff.report.labels import label_budgets, labels_warning
    from tuneoff.report.frame import runs, to_frame

    frugal = {"protocol": "cv", "budget": "frugal", "folds": 2, "metric": "accuracy", "reference_data_seed": 0}
    recs = [_rec(m, data_seed=i, selection={**frugal, "shared": i > 0, "labels_used_total": 16 if i == 0 else 32})
            for m in ("lora", "head") for i in range(3)]
    frame = runs(to_frame(recs))
    assert labels_warning(frame) == []
    t = label_budgets(frame).set_index("variant")
    assert list(t["times"]) == [1.0, 1.0] and list(t["low"]) == [16, 16] and list(t["high"]) == [32, 32]
    sections, _ = build_sections(recs, n_boot=50)
    assert not any("Unequal label budgets" in i for b in _section(sections, "summary").blocks
                   for i in getattr(b, "items", []))
    table = _table(_section(sections, "protocol").blocks, "Labels seen per comparison")
    assert {r[2].text: r[4].text for r in table.rows} == {"head": "1×", "lora": "1×"}
    # one split where lora alone chose on a dev split: that split, and that method, are named
    recs.append(_rec("lora", data_seed=3, selection={"protocol": "dev", "budget": "full", "metric": "accuracy",
                                                      "labels_used": 24, "labels_used_total": 24}))
    recs.append(_rec("head", data_seed=3))
    warn = labels_warning(runs(to_frame(recs)))
    assert len(warn) == 1 and "lora saw 1.5× the labels of head on the same split (24 vs 16" in warn[0]
    assert "head saw" not in warn[0]
