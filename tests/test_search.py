"""The optuna search: ranges, the same trials for every method, pruning over the length's rungs, the
edge rule, repeated fold assignments, resuming without repeating a finished trial, and claims on a
selection. Scores come from a stand-in for the rung fits where the search's logic is under test, and
from tiny random models where training is."""
import math
import os
import threading
import time

import pytest

from tuneoff import data as data_mod
from tuneoff.config import ConfigError, load_config
from tuneoff.pipeline import Toolbox
from tuneoff.selection import search, tuning
from tuneoff.selection.cache import FitCache
from tuneoff.space import Length, Range
from tuneoff.store import Store
from tuneoff.plan import run_one

TINY = ["task=demo", "model=tiny-bert", "shots=4", "data_seed=0", "seed=0", "train.batch_size=4",
        "eval.max_examples=10"]


def cfg_of(tmp_path, *extra):
    return load_config(None, [*TINY, f"output_dir={tmp_path}", "select.protocol=cv", *extra]).expand()[0]


def fake_rungs(score_of, calls=None, crash_at=None):
    """A stand-in for `fit_rungs`: the mean fold score at each rung from `score_of(lr, epochs)`."""
    def fit(toolbox, cand, data, folds, rungs, go_on, kept=None, on_fold=None):
        if calls is not None:
            if crash_at is not None and len(calls) == crash_at:
                raise KeyboardInterrupt("crash")
            calls.append(cand.train.lr)
        done, state = [], "complete"
        for i, rung in enumerate(rungs):
            s = score_of(cand.train.lr, rung)
            got = {"length": rung, "fold_scores": [s] * len(folds), "fold_losses": [1 - s] * len(folds),
                   "mean_score": s, "mean_loss": 1 - s}
            done.append(got)
            if not go_on(got, i == len(rungs) - 1):
                state = "pruned"
                break
        if on_fold is not None and len(rungs) == 1:
            for _ in folds:
                on_fold(False)
        return {"rungs": done, "state": state, "error": None, "train_tokens": 1, "eval_tokens": 1,
                "train_time_s": 0.01, "eval_time_s": 0.01, "train_cpu_s": 0.01, "eval_cpu_s": 0.01,
                "flops_approx": 1.0}
    return fit


def peak(lr, epochs, best=1e-4):
    """A response with its optimum inside the range: best at lr=1e-4 and 3 epochs."""
    return 0.9 - 0.1 * abs(math.log10(lr / best)) - 0.05 * abs(math.log(epochs / 3, 3))


# -- config ------------------------------------------------------------------------------------

def test_the_default_search_is_optuna_over_the_methods_ranges_and_length(tmp_path):
    cfg = cfg_of(tmp_path)
    assert cfg.select.search == "optuna" and cfg.select.trials == 12
    lr = cfg.search_space()["train.lr"]
    assert isinstance(lr, Range) and lr.low < 1e-5 and lr.high > 1e-4  # wider than the grid, both ways
    assert cfg.search_length().rungs() == pytest.approx([1 / 3, 1, 3, 9])
    pt = cfg_of(tmp_path, "method=prompt-tuning", "model=tiny-llama")
    assert pt.search_length().high == 27 and pt.search_space()["train.lr"].high > 0.1
    assert cfg_of(tmp_path, "method=icl", "model=tiny-llama", "method.k=1").search_length() is None


def test_a_range_is_read_from_the_config_and_checked(tmp_path):
    cfg = cfg_of(tmp_path, "select.train.lr={low: 1.0e-4, high: 1.0e-2, limits: [1.0e-6, 1.0]}",
                 "select.length={low: 1, high: 3, limit: 9}")
    assert cfg.search_space()["train.lr"] == Range(1e-4, 1e-2, limits=(1e-6, 1.0))
    assert cfg.search_length() == Length(1, 3, 9)
    for bad, words in [("select.train.lr={low: 0.1, high: 0.01}", "low < high"),
                       ("select.train.lr={low: 0, high: 0.01}", "log range needs low > 0"),
                       ("select.train.lr={low: 0.001}", "needs both low and high"),
                       ("select.train.lr={low: 0.001, high: 0.01, limits: [0.002, 1]}", "must contain the range"),
                       ("select.length={low: 3, high: 1}", "low <= high"),
                       ("train.max_steps=5", "train.max_steps fixes the training length")]:
        with pytest.raises(ConfigError, match=words):
            cfg_of(tmp_path, bad)
    with pytest.raises(ConfigError, match="select.search=grid takes a list"):
        cfg_of(tmp_path, "select.search=grid", "select.train.lr={low: 0.001, high: 0.01}")


def test_the_grid_keeps_the_ids_it_had_and_the_optuna_search_is_another_run(tmp_path):
    grid = cfg_of(tmp_path, "select.search=grid", "train.max_steps=2")
    again = cfg_of(tmp_path, "select.search=grid", "train.max_steps=2", "select.trials=3")  # not the grid's key
    assert grid.run_id() == again.run_id()
    assert cfg_of(tmp_path).run_id() != cfg_of(tmp_path, "select.trials=3").run_id()
    # the length it searches replaces train.epochs in the id
    assert cfg_of(tmp_path).run_id() == cfg_of(tmp_path, "train.epochs=4").run_id()
    assert cfg_of(tmp_path, "select.length=false").run_id() != cfg_of(tmp_path, "select.length=false",
                                                                      "train.epochs=4").run_id()


# -- the procedure -----------------------------------------------------------------------------

def test_every_method_gets_the_same_trials_and_a_reproducible_choice(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak))
    counts, chosen = {}, {}
    for method in ("finetune", "lora", "head"):
        cfg = cfg_of(tmp_path, f"method={method}", "select.trials=6", "select.extensions=0")
        sel = search.select(cfg)
        counts[method] = len(sel.record["trials"])
        chosen[method] = sel.chosen
        assert sel.record["trials_budget"] == 6 and sel.record["search"] == "optuna"
    assert set(counts.values()) == {6}
    again = search.select(cfg_of(tmp_path, "method=head", "select.trials=6", "select.extensions=0"))
    assert again.chosen == chosen["head"]  # the same seeds, the same trials, the same choice


def test_pruning_stops_poor_trials_at_a_rung(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak, calls))
    sel = search.select(cfg_of(tmp_path, "select.trials=12", "select.extensions=0"))
    trials = sel.record["trials"]
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned and sel.record["pruned"] == len(pruned)
    assert all(len(t["rungs"]) < 4 for t in pruned)  # stopped before the last rung
    assert any(len(t["rungs"]) == 4 for t in trials)
    nop = search.select(cfg_of(tmp_path, "select.trials=12", "select.extensions=0", "select.pruner=none"))
    assert all(len(t["rungs"]) == 4 for t in nop.record["trials"])


def test_the_choice_is_the_best_trial_and_rung_with_its_length(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak))
    sel = search.select(cfg_of(tmp_path, "select.trials=12", "select.extensions=0", "select.pruner=none"))
    points = [(r["mean_score"], t["values"]["train.lr"], r["length"]) for t in sel.record["trials"]
              for r in t["rungs"]]
    best = max(points)
    assert sel.chosen["train.lr"] == best[1] and sel.record["chosen_length"] == best[2] == 3
    assert sel.chosen["train.epochs"] == 9 and sel.chosen["train.stop_epochs"] == 3
    assert sel.record["edges"] == {}  # an optimum inside the range is not on an edge


def test_synchronous_halving_compares_every_trial_at_a_rung_and_chooses_among_the_survivors(tmp_path, monkeypatch):
    """The default procedure. Every trial of a round is scored at a rung before the best third goes
    on, so the first trial is not carried to the horizon for having no competitor; the choice is
    among the trials that reached the last rung, so a high early score of a trial that lost later
    (noise on a few held-out examples) is not chosen; and between equal scores the longer length is."""
    def flat(lr, epochs):
        return 0.6
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(flat))
    base = ["select.trials=12", "select.extensions=0", "select.length={low: 1, high: 9, factor: 3}"]
    first = search.select(cfg_of(tmp_path, *base)).record["trials"]
    assert [len([t for t in first if len(t["rungs"]) > k]) for k in range(3)] == [12, 4, 2]
    spiky_lr = first[0]["values"]["train.lr"]

    def spike(lr, epochs):  # trial 0: the best of all at 1 epoch, the worst at 3
        if lr == spiky_lr:
            return {1: 0.9, 3: 0.1}.get(epochs, 0.1)
        return 0.6
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(spike))
    sel = search.select(cfg_of(tmp_path, *base, f"output_dir={tmp_path / 'b'}"))
    trials = sel.record["trials"]
    assert trials[0]["state"] == "pruned" and len(trials[0]["rungs"]) == 2  # went on from 1 epoch, lost at 3
    assert sel.chosen["train.lr"] != spiky_lr and trials[sel.record["chosen_trial"]]["state"] == "complete"
    assert sel.record["chosen_length"] == 9 and "train.stop_epochs" not in sel.chosen  # the tie: the longer
    # the asynchronous procedure (docs/search-cells) chose the spike: the best of every trial and rung
    old = search.select(cfg_of(tmp_path, *base, "select.pruner=halving", f"output_dir={tmp_path / 'c'}"))
    assert old.chosen["train.lr"] == spiky_lr and old.record["chosen_length"] == 1


def test_a_length_extension_trains_a_trial_to_the_new_horizon(tmp_path, monkeypatch):
    """Where the best sits at the last rung, the next round's horizon is longer and its best trial
    trains to it: a longer length is tried, not only offered."""
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(lambda lr, epochs: 0.5 + 0.01 * epochs))
    rec = search.select(cfg_of(tmp_path, "select.trials=6", "select.extensions=1",
                               "select.length={low: 1, high: 3, limit: 9}")).record
    assert "length" in [e["key"] for e in rec["extended"]]
    assert max(r["length"] for t in rec["trials"] if t["round"] == 1 for r in t["rungs"]) == 9
    assert rec["chosen_length"] == 9


def test_a_length_extension_trains_the_edge_choice_itself_longer(tmp_path, monkeypatch):
    """A round that extends only the length trains the choice's own rate to the new horizon (at the
    rungs above the old one), not the new trial that led near-chance first rungs: when longer wins
    it is chosen and extended again; when it loses, the choice stays and is no longer on the edge."""
    def longer_wins(lr, epochs):  # the rate matters little; the length is the question
        return 0.7 - 0.01 * abs(math.log10(lr / 1e-4)) + 0.01 * epochs

    def peak_at_3(lr, epochs):
        return 0.7 - 0.01 * abs(math.log10(lr / 1e-4)) - 0.05 * abs(math.log(epochs / 3, 3))

    cfg_args = ["select.trials=6", "select.extensions=2", "select.train.lr={low: 1.0e-5, high: 1.0e-3}",
                "select.length={low: 1, high: 3, limit: 27}"]
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(longer_wins))
    sel = search.select(cfg_of(tmp_path / "a", *cfg_args))
    rec, first = sel.record, sel.record["trials"][0]
    chosen0 = max((t for t in rec["trials"] if t["round"] == 0 and t["state"] == "complete"),
                  key=lambda t: t["rungs"][-1]["mean_score"])
    kept = [t for t in rec["trials"] if t.get("kept")]
    assert [t["round"] for t in kept] == [1, 2] and all(t["values"] == chosen0["values"] for t in kept)
    assert [[r["length"] for r in t["rungs"]] for t in kept] == [[9], [27]]  # only above the old horizon
    assert [r["trials"] for r in rec["rounds"]] == [6, 0, 0]  # the length-only rounds sample nothing new
    assert sel.chosen["train.lr"] == chosen0["values"]["train.lr"] and sel.chosen["train.epochs"] == 27
    assert rec["edges"]["length"] == {"side": "high", "value": 27.0, "extendable": False}  # at its limit
    assert first["values"] != {} and rec["rounds"][1]["kept"] == chosen0["label"]

    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak_at_3))
    rec = search.select(cfg_of(tmp_path / "b", *cfg_args)).record
    kept = [t for t in rec["trials"] if t.get("kept")]
    assert len(rec["rounds"]) == 2 and len(kept) == 1 and kept[0]["rungs"][0]["length"] == 9
    assert rec["chosen_length"] == 3 and "length" not in rec["edges"]  # longer was tried and lost: settled


def rising(lr, epochs):
    """A response whose optimum lies beyond the top of the range and past its longest length."""
    return 0.5 + 0.05 * math.log10(lr) + 0.01 * epochs


def test_an_edge_choice_extends_the_range_and_the_length(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(rising))
    cfg = cfg_of(tmp_path, "select.trials=4", "select.extensions=3",
                 "select.train.lr={low: 1.0e-5, high: 1.0e-4, limits: [1.0e-6, 1.0e-3]}",
                 "select.length={low: 1, high: 3, limit: 9}")
    sel = search.select(cfg)
    rec = sel.record
    assert [e["key"] for e in rec["extended"] if e["round"] == 1] == ["train.lr", "length"]
    assert rec["rounds"][1]["space"]["train.lr"]["high"] > 1e-4 and rec["rounds"][1]["trials"] == 2
    assert sel.chosen["train.lr"] > 1e-4  # found beyond where the range started
    assert sel.chosen["train.epochs"] == 9 and "train.stop_epochs" not in sel.chosen
    # the length still ends at its last rung, at its limit: flagged, and not extendable any more
    assert rec["edges"]["length"] == {"side": "high", "value": 9.0, "extendable": False}


def test_an_edge_choice_at_the_limit_is_flagged_and_not_extended(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(rising))
    cfg = cfg_of(tmp_path, "select.trials=8", "select.extensions=3",
                 "select.train.lr={low: 1.0e-5, high: 1.0e-4, limits: [1.0e-5, 1.0e-4]}",
                 "select.length={low: 1, high: 3, limit: 3}")
    rec = search.select(cfg).record
    assert rec["extended"] == [] and len(rec["rounds"]) == 1
    assert rec["edges"]["train.lr"]["side"] == "high" and rec["edges"]["train.lr"]["extendable"] is False
    assert rec["edges"]["length"] == {"side": "high", "value": 3.0, "extendable": False}


def test_a_grid_choice_on_the_edge_of_its_list_is_flagged(tmp_path, monkeypatch):
    from tuneoff.selection import fits

    def fake_fit(toolbox, cand, data, fold, metric):
        s = cand.train.lr  # the largest learning rate wins
        return {"diverged": False, "error": None, "score": s, "loss": 1 - s, "pred_dist": [], "train_tokens": 1,
                "eval_tokens": 1, "train_time_s": 0.0, "eval_time_s": 0.0, "flops_approx": 0.0}
    monkeypatch.setattr(fits, "fit", fake_fit)
    sel = search.select(cfg_of(tmp_path, "select.search=grid", "train.max_steps=2",
                               "select.train.lr=[0.1, 0.2, 0.3]"))
    assert sel.record["edges"] == {"train.lr": {"side": "high", "value": 0.3, "extendable": False}}


@pytest.mark.parametrize("pruner", ["synchronous", "halving"])
def test_a_crash_mid_search_resumes_without_repeating_finished_trials(tmp_path, monkeypatch, pruner):
    """Killed at its sixth fit, a search run again trains only the fits it had not finished, the same
    ones, and makes the same choice (synchronous: a fit is a trial's training to one rung; the
    asynchronous search's fits are whole trials)."""
    cfg = cfg_of(tmp_path, "select.trials=8", "select.extensions=0", f"select.pruner={pruner}")
    whole = []
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak, whole))
    uninterrupted = search.select(cfg)  # no cache: the reference
    calls = []
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak, calls, crash_at=5))
    with pytest.raises(KeyboardInterrupt):
        search.select(cfg, FitCache(tmp_path / "c"))
    assert len(calls) == 5
    resumed = []
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak, resumed))
    again = search.select(cfg, FitCache(tmp_path / "c"))
    assert resumed == whole[5:]  # only the fits that had not finished, and the same ones
    if pruner == "halving":
        assert [t["reused"] for t in again.record["trials"]] == [True] * 5 + [False] * 3
    else:  # the first five trials' first rung was kept; a trial that went on trained its later rungs now
        assert [t["reused"] for t in again.record["trials"]] == [
            i < 5 and len(t["rungs"]) == 1 for i, t in enumerate(uninterrupted.record["trials"])]
    assert again.chosen == uninterrupted.chosen
    assert [t["values"] for t in again.record["trials"]] == [t["values"] for t in uninterrupted.record["trials"]]


def test_very_small_sets_score_several_fold_assignments(tmp_path, monkeypatch):
    seen = []

    def fit(toolbox, cand, data, folds, rungs, go_on, kept=None, on_fold=None):
        seen.append(folds)
        return fake_rungs(peak)(toolbox, cand, data, folds, rungs, go_on)
    monkeypatch.setattr(tuning, "fit_rungs", fit)
    sel = search.select(cfg_of(tmp_path, "shots=2", "select.trials=2", "select.extensions=0"))
    assert sel.record["repeats"] == 4 and len(seen[0]) == 8  # 4 assignments of 2 folds
    held = {tuple(sorted(ex["id"] for ex in f.heldout)) for f in seen[0]}
    assert len(held) > 2  # the assignments differ
    assert cfg_of(tmp_path, "shots=16").select.repeats_for(16) == 1
    assert cfg_of(tmp_path, "select.search=grid", "train.max_steps=2").select.repeats_for(2) == 1


# -- claims --------------------------------------------------------------------------------------

def test_a_selection_another_live_process_is_making_is_waited_for_not_made_again(tmp_path, monkeypatch):
    import psutil

    from tuneoff.selection import cache as cache_mod

    monkeypatch.setattr(cache_mod, "POLL_S", 0.05)
    cfg = cfg_of(tmp_path, "select.trials=2", "select.extensions=0")
    cache = FitCache(tmp_path)
    key = search.selection_key(cfg, 0)
    import socket
    import sqlite3
    with sqlite3.connect(cache.path) as con:  # a live process (this one, as another owner) holds it
        con.execute("INSERT INTO making VALUES (?, 'other', ?, ?, ?, ?)",
                    (key, socket.gethostname(), os.getpid(), psutil.Process().create_time(), time.time()))
    made = {"record": {"chosen": {"train.lr": 0.5}, "cost": {"time_s": 1.0}}, "chosen": {"train.lr": 0.5},
            "labelled": ["a"]}
    threading.Timer(0.3, lambda: cache.put(key, made)).start()
    monkeypatch.setattr(tuning, "fit_rungs", lambda *a, **k: pytest.fail("computed twice"))
    sel = search.select(cfg, cache)
    assert sel.chosen == {"train.lr": 0.5}


def test_a_selection_whose_maker_died_is_taken_over(tmp_path, monkeypatch):
    import socket
    import sqlite3

    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak))
    cfg = cfg_of(tmp_path, "select.trials=2", "select.extensions=0")
    cache = FitCache(tmp_path)
    with sqlite3.connect(cache.path) as con:  # a process that no longer exists
        con.execute("INSERT INTO making VALUES (?, 'gone', ?, 999999999, 0, 0)",
                    (search.selection_key(cfg, 0), socket.gethostname()))
    assert search.select(cfg, cache).record["trials"]
    with sqlite3.connect(cache.path) as con:
        assert con.execute("SELECT COUNT(*) FROM making").fetchone()[0] == 0  # released


def test_a_claim_of_another_machine_is_waited_for_while_renewed_and_taken_over_once_it_lapses(tmp_path, monkeypatch):
    import sqlite3

    from tuneoff.selection import cache as cache_mod

    monkeypatch.setattr(cache_mod, "POLL_S", 0.05)
    monkeypatch.setenv("TUNEOFF_LEASE_S", "60")
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(peak))
    cfg = cfg_of(tmp_path, "select.trials=2", "select.extensions=0")
    cache = FitCache(tmp_path)
    key = search.selection_key(cfg, 0)
    with sqlite3.connect(cache.path) as con:  # another machine's process, its last renewal 2 min ago
        con.execute("INSERT INTO making VALUES (?, 'far', 'another-host', 1, 0, ?)", (key, time.time() - 120))
    assert search.select(cfg, cache).record["trials"]  # lapsed: taken over, made here
    with sqlite3.connect(cache.path) as con:
        con.execute("DELETE FROM fits")
        con.execute("INSERT INTO making VALUES (?, 'far', 'another-host', 1, 0, ?)", (key, time.time()))
    got, holder = cache._claim(key)
    assert not got and holder == "far"  # renewed just now: its maker is alive, wait for it


def test_the_maker_renews_its_claim_while_it_works(tmp_path, monkeypatch):
    import sqlite3

    monkeypatch.setenv("TUNEOFF_LEASE_S", "0.4")  # renewed every 0.1 s
    cfg = cfg_of(tmp_path, "select.trials=1", "select.extensions=0", "select.pruner=none")
    cache = FitCache(tmp_path)
    ages = []

    def slow(*a, **k):
        time.sleep(0.6)  # longer than a lease
        with sqlite3.connect(cache.path) as con:
            ages.append(time.time() - con.execute("SELECT since FROM making").fetchone()[0])
        return fake_rungs(peak)(*a, **k)
    monkeypatch.setattr(tuning, "fit_rungs", slow)
    search.select(cfg, cache)
    assert ages and ages[0] < 0.4  # still within its lease: nobody would take it over


# -- on tiny models --------------------------------------------------------------------------------

def test_a_run_trains_at_the_chosen_length_and_reads_no_eval_set_before_the_choice(tmp_path, monkeypatch):
    real = data_mod.load_eval
    chose = {}

    def load_eval(*a, **k):
        assert chose, "an eval set was read before the choice"
        return real(*a, **k)
    monkeypatch.setattr(data_mod, "load_eval", load_eval)
    real_select = search.select

    def select(*a, **k):
        got = real_select(*a, **k)
        chose["yes"] = True
        return got
    from tuneoff import runner
    monkeypatch.setattr(runner, "select", select)
    cfg = cfg_of(tmp_path, "select.trials=2", "select.extensions=0", "select.length={low: 1, high: 3, limit: 3}")
    Toolbox.shared().forget_data()  # eval sets cached by an earlier test would hide a read
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done"
    sel = rec["selection"]
    assert len(sel["trials"]) == 2 and all(t["rungs"] for t in sel["trials"])
    chosen = sel["chosen"]
    assert chosen["train.epochs"] == 3 and sel["chosen_length"] in (1.0, 3.0)
    # 8 examples, batch 4: 2 steps an epoch; trained to the chosen length of its schedule
    assert len(rec["train"]["losses"]) == 2 * sel["chosen_length"]
    assert rec["config"]["select"]["search"] == "optuna"


@pytest.mark.parametrize("method", ["finetune", "lora"])
def test_on_a_tiny_model_every_method_gets_the_same_trials_and_pruning_stops_them_at_a_rung(tmp_path, method):
    """Trained, not stood in for: 3 trials over rungs of 1 and 3 epochs, the best third goes on."""
    cfg = cfg_of(tmp_path, f"method={method}", "select.trials=3", "select.extensions=0",
                 "select.length={low: 1, high: 3, limit: 3}")
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done"
    trials = rec["selection"]["trials"]
    assert len(trials) == 3
    states = sorted(t["state"] for t in trials)
    assert states == ["complete", "pruned", "pruned"]
    for t in trials:
        lengths = [r["length"] for r in t["rungs"]]
        assert lengths == ([1.0, 3.0] if t["state"] == "complete" else [1.0])
        assert all(0.0 <= s <= 1.0 for r in t["rungs"] for s in r["fold_scores"])
    assert rec["selection"]["chosen_length"] in (1.0, 3.0)


def test_scoring_at_a_rung_does_not_change_the_training(tmp_path):
    from tuneoff.config import load_config as lc
    from tuneoff.pipeline import build_method, pick_device
    from tuneoff.train import Training, train

    cfg = lc(None, [*TINY, "train.epochs=4"]).expand()[0]
    toolbox = Toolbox()
    data = toolbox.split(cfg)

    def losses(stops):
        method, _ = build_method(cfg, data, data.few, pick_device("cpu"))
        if stops is None:
            return train(method, data.few, cfg.train, cfg.seed, toolbox.accelerator(pick_device("cpu"))).losses
        t = Training(method, data.few, cfg.train, cfg.seed, toolbox.accelerator(pick_device("cpu")))
        for s in stops:
            t.run_until(s)
            from tuneoff.pipeline import Scored, score
            score(method, {"x": Scored(data.few)}, 4)  # scored mid-way, as at a rung
        t.close()
        return t.stats.losses
    whole = losses(None)
    assert losses([1, 3, 8]) == whole and len(whole) == 8
    stopped = lc(None, [*TINY, "train.epochs=4", "train.stop_epochs=1"]).expand()[0]
    method, _ = build_method(stopped, data, data.few, pick_device("cpu"))
    early = train(method, data.few, stopped.train, stopped.seed, toolbox.accelerator(pick_device("cpu"))).losses
    assert early == whole[:2]  # the first epoch of the same schedule


def test_a_one_rung_fit_trains_the_folds_one_at_a_time_each_as_its_plain_fit(monkeypatch):
    """Every fit of the synchronous pruner has one rung: its folds train one after another, each
    exactly as the fold's plain fit (`fits.fit`) trains it (tiny-bert has dropout, so a fold that
    trained after another's random draws would differ), and one fold's model is in memory at a
    time. With several rungs the folds advance together (the asynchronous pruner decides between
    rungs)."""
    import gc
    import weakref

    from tuneoff.selection import rungs as R
    from tuneoff.selection.fits import fit
    from tuneoff.selection.folds import cv_folds

    cfg = load_config(None, [*TINY, "train.epochs=3", "train.lr=1e-3"]).expand()[0]
    toolbox = Toolbox()
    data = toolbox.split(cfg)
    folds = cv_folds(data.few, 2, 0) + cv_folds(data.few, 2, 7919)
    plain = [fit(toolbox, cfg, data, f, "accuracy") for f in folds]

    alive, most = [], []
    real_start = R._start

    def start(*a, **k):
        gc.collect()
        most.append(sum(m() is not None for m in alive))  # models still held when the next is built
        got = real_start(*a, **k)
        alive.extend(weakref.ref(r.method.model) for r in got)
        return got
    monkeypatch.setattr(R, "_start", start)
    got = R.fit_rungs(toolbox, cfg, data, folds, [3.0], lambda g, last: True)
    assert got["state"] == "complete" and len(got["rungs"]) == 1
    assert got["rungs"][0]["fold_scores"] == [p["score"] for p in plain]
    assert got["rungs"][0]["fold_losses"] == [p["loss"] for p in plain]
    assert got["train_tokens"] == sum(p["train_tokens"] for p in plain)
    assert len(most) == 4 and max(most) == 0  # each fold's model let go before the next was built
    most.clear()
    together = R.fit_rungs(toolbox, cfg, data, folds, [1.0, 3.0], lambda g, last: True)
    assert most == [0] and len(together["rungs"]) == 2  # one start for every fold at once


def progress_of(tmp_path, monkeypatch, *args) -> tuple[list, int]:
    """What a selection whose scores rise with the length tells its progress: (phase, done, total) as
    told, and the fold models of each fit."""
    monkeypatch.setattr(tuning, "fit_rungs", fake_rungs(lambda lr, epochs: 0.5 + 0.01 * epochs))
    seen = []
    cfg = cfg_of(tmp_path, *args)
    search.select(cfg, progress=lambda phase, done, total, loss=None: seen.append((phase, done, total)))
    return seen, cfg.folds() * cfg.select.repeats_for(cfg.shots)


def test_a_synchronous_round_reports_the_share_of_its_training_done(tmp_path, monkeypatch):
    """Progress counts each fit by its rung's length, so the time left is read from the work done:
    12 trials at rungs 1/3, 1, 3 and 9 epochs train 12/3 + 4 + 2*3 + 9 = 23 epochs, and the first
    rung is 4 of them (17%), not 8 of 12 trials decided. An extension round is a phase of its own."""
    seen, k = progress_of(tmp_path, monkeypatch, "select.trials=12", "select.extensions=1",
                          "select.length={low: 0.3333333333333333, high: 9, limit: 27}")
    first = [d for p, d, t in seen if p == "select (% of its training)"]
    assert first[0] == 0 and first[-1] == 100 and first == sorted(first)
    assert first[12 * k] == int(100 * 4 / 23)  # the twelve first-rung fits done, each fold told
    assert k > 1 and [first[i] for i in range(1, k + 1)] == [int(100 * 4 / 23 / 12 * i / k) for i in range(1, k + 1)]
    assert {t for p, d, t in seen if p.startswith("select")} == {100}
    ext = [d for p, d, t in seen if p == "select, extension round 1 (% of its training)"]
    assert ext and ext[-1] == 100 and ext == sorted(ext)  # the length at its top edge: extended


def test_a_round_that_trains_the_choice_longer_reports_its_one_fit_fold_by_fold(tmp_path, monkeypatch):
    """A length extension's round trains one fit (the choice to the new horizon): its progress is that
    fit's folds, half done after the first of two. (It counted a trial at every rung beside it, since
    "at least one" of no trials goes on: 20% after the first of two folds of 27 epochs, and a time left
    four times too long.)"""
    seen, k = progress_of(tmp_path, monkeypatch, "select.trials=6", "select.extensions=1",
                          "select.length={low: 1, high: 3, limit: 9}")
    kept = [d for p, d, t in seen if p == "select, extension round 1: the choice trained longer (% of its training)"]
    assert k > 1 and kept == [0, *[min(99, int(100 * i / k)) for i in range(1, k + 1)], 100]


def test_a_one_rung_fit_stopped_between_its_folds_resumes_from_the_folds_it_finished(tmp_path, monkeypatch):
    """Each fold of a one-rung fit is kept in the fit cache as it finishes: a trial stopped (a crash,
    the end of a session) after its first fold trains only the second when it is asked again, and
    its record is the one an unbroken fit makes (the kept fold at what it cost when it ran)."""
    from tuneoff.selection import rungs as R
    from tuneoff.selection.cache import FitCache
    from tuneoff.selection.folds import cv_folds

    cfg = load_config(None, [*TINY, "train.epochs=3", "train.lr=1e-3"]).expand()[0]
    toolbox = Toolbox()
    data = toolbox.split(cfg)
    folds = cv_folds(data.few, 2, 0)
    whole = R.fit_rungs(toolbox, cfg, data, folds, [3.0], lambda g, last: True)
    cache, starts = FitCache(tmp_path), []
    real_start = R._start

    def start(*a, **k):
        starts.append(1)
        if crash and len(starts) == 2:
            raise KeyboardInterrupt("the session ended")
        return real_start(*a, **k)
    monkeypatch.setattr(R, "_start", start)
    crash = True
    with pytest.raises(KeyboardInterrupt):
        R.fit_rungs(toolbox, cfg, data, folds, [3.0], lambda g, last: True, cache)
    crash, starts[:], told = False, [], []
    again = R.fit_rungs(toolbox, cfg, data, folds, [3.0], lambda g, last: True, cache, on_fold=told.append)
    assert len(starts) == 1  # only the second fold trained
    assert told == [True, False]  # progress is told each fold: the kept one as reused (it leaves the total)
    assert again["rungs"] == whole["rungs"] and again["state"] == "complete"
    assert (again["train_tokens"], again["eval_tokens"], again["flops_approx"]) == \
        (whole["train_tokens"], whole["eval_tokens"], whole["flops_approx"])
    starts[:] = []
    assert R.fit_rungs(toolbox, cfg, data, folds, [3.0], lambda g, last: True, cache)["rungs"] == whole["rungs"]
    assert starts == []  # every fold kept: nothing trains


def test_a_running_selection_is_read_from_its_fit_cache_without_training(tmp_path, monkeypatch, capsys):
    """benchmarks/selection_so_far.py replays a selection on a copy of the fit cache and stops at
    the first fit not made: the rounds so far, trained by nobody."""
    import importlib.util
    import json as json_mod

    spec = importlib.util.spec_from_file_location("so_far", os.path.join(os.path.dirname(__file__), "..",
                                                                          "benchmarks", "selection_so_far.py"))
    so_far = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(so_far)
    out = tmp_path / "store"
    sweep = tmp_path / "s.yaml"
    sweep.write_text(json_mod.dumps({"defaults": {"task": "demo", "model": "tiny-bert", "shots": 4, "data_seed": 0,
                                                  "output_dir": str(out), "select": {"protocol": "cv", "trials": 6,
                                                                                     "extensions": 0}},
                                     "methods": ["finetune"]}))
    from tuneoff.sweep import load_sweep
    run = load_sweep(str(sweep), []).runs[0]
    fake = fake_rungs(peak)
    monkeypatch.setattr(tuning, "fit_rungs", fake)
    made = search.select(run, FitCache(out))
    so_far.main(str(sweep), run.run_id(), [])
    text = capsys.readouterr().out
    assert tuning.fit_rungs is fake  # put back
    assert "every fit is made" in text and text.count("round 0 trial") == 6
    chosen = made.record["trials"][made.record["chosen_trial"]]
    assert f"round 0 trial {chosen['number']}: {chosen['label']} complete" in text
    import sqlite3
    with sqlite3.connect(out / "selection.sqlite") as con:  # the last rung's fit not made yet
        keys = [k for k, r in con.execute("select fit_id, record from fits where fit_id like 'trial:%'")
                if json_mod.loads(r)["rungs"][-1]["length"] == 9]
        con.execute("delete from fits where fit_id = ?", (keys[0],))
    so_far.main(str(sweep), run.run_id(), [])
    text = capsys.readouterr().out
    assert "stopped at the first fit not made yet" in text and "round 0 trial" not in text
    assert "the rounds so far: 0 trials" in text and "round 0: 6 trials" in text


def test_the_share_of_training_counts_a_kept_trial_and_the_folds_after_a_divergence_once(tmp_path, monkeypatch):
    """A trial taken whole from the fit cache leaves the round's total, as do the folds after a
    diverged one (they train nothing); the diverged fold itself trained. 3 trials at rungs 1 and 3
    epochs (the best one goes on): 3 + 3 = 6 epochs of training, k fold models each."""
    calls = []

    def fit(toolbox, cand, data, folds, rungs, go_on, kept=None, on_fold=None):
        calls.append(1)
        if len(calls) == 2:  # the second trial diverges on its first fold
            on_fold(False)
            return {"rungs": [], "state": "diverged", "error": "nan", "train_tokens": 1, "eval_tokens": 1,
                    "train_time_s": 0.01, "eval_time_s": 0.01, "train_cpu_s": 0.01, "eval_cpu_s": 0.01,
                    "flops_approx": 1.0}
        return fake_rungs(peak)(toolbox, cand, data, folds, rungs, go_on, kept, on_fold)
    monkeypatch.setattr(tuning, "fit_rungs", fit)
    cfg = cfg_of(tmp_path, "select.trials=3", "select.extensions=0", "select.length={low: 1, high: 3, factor: 3}")
    k = cfg.folds() * cfg.select.repeats_for(cfg.shots)
    seen = []
    sel = search.select(cfg, FitCache(tmp_path), progress=lambda phase, done, total, loss=None: seen.append(done))
    assert [t["state"] for t in sel.record["trials"]].count("diverged") == 1
    assert seen[k + 1] == int(100 * (1 + 1 / k) / 6)  # the diverged fold trained
    assert seen[k + 2] == int(100 * (1 + 1 / k) / (6 - (k - 1) / k))  # the folds after it left the total
    assert seen == sorted(seen) and seen[-1] == 100
    import sqlite3
    with sqlite3.connect(tmp_path / "selection.sqlite") as con:  # the selection again, from its kept trials
        con.execute("delete from fits where fit_id like 'selection:%'")
    seen.clear()
    again = search.select(cfg, FitCache(tmp_path), progress=lambda phase, done, total, loss=None: seen.append(done))
    assert len(calls) == 4 and again.chosen == sel.chosen  # 3 trials at rung 1, 1 at rung 3: none made again
    assert seen == sorted(seen) and seen[-1] == 100
