"""Hyperparameter selection: folds, the choice, divergence, reuse, run ids, and that no eval set is
read before the choice is made. Tiny random models, a few steps each."""
import numpy as np
import pytest

from tuneoff import data as data_mod
from tuneoff import pipeline, runner
from tuneoff.config import ConfigError, load_config
from tuneoff.methods import list_methods
from tuneoff.selection import fits, search
from tuneoff.selection.cache import FitCache
from tuneoff.selection.folds import cv_folds, dev_split
from tuneoff.config import candidates
from tuneoff.pipeline import Toolbox
from tuneoff.plan import run_one
from tuneoff.store import Store
from tuneoff.sweep import expand_sweep, parse_sweep

TINY = ["task=demo", "model=tiny-bert", "shots=4", "data_seed=0", "seed=0", "train.max_steps=2",
        "train.batch_size=4", "eval.max_examples=10"]


def run_cfg(tmp_path, *extra):
    return load_config(None, [*TINY, f"output_dir={tmp_path}", "select.protocol=cv", "select.search=grid",
                              *extra]).expand()[0]


def few_set(n_per_class=6, labels=3):
    return [{"id": f"{c}-{i}", "label": c} for c in range(labels) for i in range(n_per_class)]


# -- folds ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,k", [(6, 2), (6, 3), (4, 4), (2, 2)])
def test_folds_are_stratified_disjoint_and_cover_the_set_once(n, k):
    few = few_set(n)
    folds = cv_folds(few, k, seed=0)
    assert len(folds) == k
    held = [ex["id"] for f in folds for ex in f.heldout]
    assert sorted(held) == sorted(ex["id"] for ex in few)  # every example held out exactly once
    for f in folds:
        assert not {ex["id"] for ex in f.train} & {ex["id"] for ex in f.heldout}
        assert len(f.train) + len(f.heldout) == len(few)
        counts = np.bincount([ex["label"] for ex in f.heldout], minlength=3)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1  # stratified
    assert [ex["id"] for ex in cv_folds(few, k, seed=0)[0].heldout] == [ex["id"] for ex in folds[0].heldout]
    assert any([ex["id"] for ex in cv_folds(few, k, seed=s)[0].heldout] != [ex["id"] for ex in folds[0].heldout]
               for s in range(1, 6))  # the fold seed matters


def test_a_method_that_draws_more_per_class_than_a_fold_leaves_is_refused_before_any_run(tmp_path):
    with pytest.raises(ConfigError, match="trains each candidate on 2 example.*icl needs 4 per class"):
        run_cfg(tmp_path, "method=icl", "model=tiny-llama", "method.k=4")
    assert run_cfg(tmp_path, "method=icl", "model=tiny-llama", "method.k=4", "select.protocol=dev", "select.search=grid")


def test_small_sets_rule(tmp_path):
    assert run_cfg(tmp_path, "shots=2", "select.folds=4").folds() == 2  # capped at the examples per class
    assert run_cfg(tmp_path, "shots=8", "select.folds=4").folds() == 4
    with pytest.raises(ConfigError, match="at least 2 examples per class.*protocol=dev"):
        run_cfg(tmp_path, "shots=1")
    assert run_cfg(tmp_path, "shots=1", "select.protocol=dev", "select.search=grid").select.protocol == "dev"
    with pytest.raises(ValueError, match="at least 3 examples of every label"):
        cv_folds(few_set(2), 3, seed=0)


def test_dev_split_is_outside_the_few_shot_set_and_of_its_size():
    from tuneoff.tasks import get_task

    task = get_task("demo")
    pool = [{"id": str(i), "label": i % 2} for i in range(40)]
    few = pool[:8]
    dev = dev_split(pool, few, 4, seed=0, task=task)
    assert len(dev) == 8 and np.bincount([ex["label"] for ex in dev]).tolist() == [4, 4]
    assert not {ex["id"] for ex in dev} & {ex["id"] for ex in few}


# -- search spaces and configs -----------------------------------------------------------------

def test_every_method_declares_a_valid_default_space_of_the_same_size(tmp_path):
    sizes = {}
    for m in list_methods():
        extra = ["method.k=1"] if "k" in m.Options.model_fields else []  # demonstrations from a fold of 2/class
        cfg = run_cfg(tmp_path, f"method={m.name}", *extra)
        space = cfg.search_space()
        assert space, m.name
        sizes[m.name] = len(candidates(space))
        for values in candidates(space):
            cand = cfg.candidate(values)
            assert cand.select is None and all(_get(cand, k) == v for k, v in values.items())
    trained = {n: s for n, s in sizes.items() if n not in ("icl", "distill")}
    assert set(trained.values()) == {3}, sizes  # the same number of candidates for every trained method
    assert sizes["icl"] == 2  # calibration off / on: the one choice that carries over from a fold
    assert sizes["distill"] == 3 * 2  # the 3 rates, and its teacher's calibration off / on as icl's


def _get(cfg, key):
    node = cfg.resolved()
    for p in key.split("."):
        node = node[p]
    return node


def test_select_keys_replace_or_extend_the_method_space_and_bad_keys_are_errors(tmp_path):
    cfg = run_cfg(tmp_path, "method=lora", "select.train.lr=[0.1,0.2]", "select.method.r=[2,4]")
    assert cfg.search_space() == {"train.lr": [0.1, 0.2], "method.r": [2, 4]}
    assert len(candidates(cfg.search_space())) == 4
    with pytest.raises(ConfigError, match="method.rank"):
        run_cfg(tmp_path, "method=lora", "select.method.rank=[2]")
    with pytest.raises(ConfigError, match="'shots'.*cannot be searched"):
        run_cfg(tmp_path, "select.shots=[2,4]")
    with pytest.raises(ConfigError, match="non-empty list"):
        run_cfg(tmp_path, "select.train.lr=0.1")
    with pytest.raises(ConfigError, match="candidate"):
        run_cfg(tmp_path, "select.train.lr=[-1]")


def test_run_id_covers_the_search_space_only_when_selection_is_on(tmp_path):
    plain = load_config(None, [*TINY, f"output_dir={tmp_path}"]).expand()[0]
    off = load_config(None, [*TINY, f"output_dir={tmp_path}", "select.protocol=none"]).expand()[0]
    assert off.select is None and off.run_id() == plain.run_id()
    on = run_cfg(tmp_path)
    assert on.run_id() != plain.run_id()
    assert run_cfg(tmp_path, "select.train.lr=[0.1,0.2]").run_id() != on.run_id()
    assert run_cfg(tmp_path, "select.folds=3").run_id() != on.run_id()
    assert run_cfg(tmp_path, "select.budget=full").run_id() != on.run_id()
    # a searched key's fixed value is unused: not in the run id, and refused as an override, which
    # would otherwise be dropped without a word
    with pytest.raises(ConfigError, match="override 'train.lr=0.5'.*select.train.lr=\\[...\\]"):
        run_cfg(tmp_path, "train.lr=0.5")
    fixed = on.model_copy(update={"train": on.train.model_copy(update={"lr": 0.5})})
    assert fixed.train.lr == 0.5 and fixed.run_id() == on.run_id()


def test_a_key_both_in_grid_or_overrides_and_in_select_is_an_error():
    base = {"defaults": {"model": "tiny-bert", "shots": 4, "data_seed": 0, "select": {"protocol": "cv", "search": "grid"}}}
    with pytest.raises(ConfigError, match="'train.lr' is both in the grid"):
        expand_sweep(parse_sweep({**base, "grid": {"train.lr": [1e-4, 1e-3]}}))
    with pytest.raises(ConfigError, match="'train.lr' is both in the overrides"):
        expand_sweep(parse_sweep({**base, "methods": [{"name": "head", "overrides": {"train.lr": 1e-3}}]}))
    ok = expand_sweep(parse_sweep({**base, "grid": {"train.epochs": [1, 2]},
                                   "methods": [{"name": "head", "overrides": {"select.train.lr": [1e-2]}}]}))
    assert {r.search_space()["train.lr"][0] for r in ok.runs} == {1e-2}


def test_frugal_runs_take_the_first_data_seed_as_reference(tmp_path):
    runs = load_config(None, [*TINY, "data_seed=[3,1,2]", "select.protocol=cv", "select.search=grid"]).expand()
    assert {r.select.reference_seed for r in runs} == {3}
    full = load_config(None, [*TINY, "data_seed=[3,1]", "select.protocol=cv", "select.search=grid", "select.budget=full"]).expand()
    assert full[0].run_id() != full[1].run_id() and full[0].select.reference_seed is None


# -- the choice ----------------------------------------------------------------------------------

def fake_fit(scores: dict):
    """A fit that returns a fixed (score, loss) per learning rate, or diverges on None."""
    calls = []

    def fit(toolbox, cand, data, fold, metric):
        calls.append((cand.train.lr, tuple(ex["id"] for ex in fold.heldout)))
        got = scores[cand.train.lr]
        base = {"train_time_s": 0.5, "eval_time_s": 0.1, "train_tokens": 10, "eval_tokens": 5, "flops_approx": 1.0}
        if got is None:
            return {**base, "diverged": True, "error": "loss is nan at step 2", "score": None, "loss": None}
        return {**base, "diverged": False, "error": None, "score": got[0], "loss": got[1], "pred_dist": {}}
    fit.calls = calls
    return fit


def test_the_choice_is_the_best_mean_fold_score_then_the_lower_loss(tmp_path, monkeypatch):
    cfg = run_cfg(tmp_path, "select.train.lr=[0.1,0.2,0.3,0.4]")
    fit = fake_fit({0.1: (0.5, 0.6), 0.2: (0.75, 0.9), 0.3: (0.75, 0.4), 0.4: (0.6, 0.1)})
    monkeypatch.setattr(fits, "fit", fit)
    sel = search.select(cfg)
    assert sel.chosen == {"train.lr": 0.3}  # ties on score 0.75 with 0.2; lower held-out loss wins
    rows = sel.record["candidates"]
    assert [r["mean_score"] for r in rows] == [0.5, 0.75, 0.75, 0.6]
    assert len(fit.calls) == 4 * 2  # every candidate on both folds
    assert sel.cost["fits"] == 8 and sel.cost["time_s"] == pytest.approx(8 * 0.6)


def test_a_diverged_candidate_is_recorded_and_never_chosen(tmp_path, monkeypatch):
    cfg = run_cfg(tmp_path, "select.train.lr=[0.1,0.2]")
    monkeypatch.setattr(fits, "fit", fake_fit({0.1: (0.6, 0.5), 0.2: None}))
    sel = search.select(cfg)
    assert sel.chosen == {"train.lr": 0.1}
    bad = sel.record["candidates"][1]
    assert bad["diverged"] and "nan" in bad["error"] and bad["mean_score"] is None
    monkeypatch.setattr(fits, "fit", fake_fit({0.1: None, 0.2: None}))
    with pytest.raises(search.SelectionError, match="every candidate diverged"):
        search.select(cfg)


def test_a_real_nan_candidate_is_skipped_and_the_run_still_finishes(tmp_path):
    cfg = run_cfg(tmp_path, "select.train.lr=[1e30,1e-3]", "train.max_steps=4", "train.max_grad_norm=null",
                  "train.warmup_ratio=0")
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    first = rec["selection"]["candidates"][0]
    assert first["diverged"] and first["error"]
    assert rec["selection"]["chosen"] == {"train.lr": 1e-3}


# -- runs -----------------------------------------------------------------------------------------

def test_no_eval_set_is_read_or_scored_before_the_choice(tmp_path, monkeypatch):
    cfg = run_cfg(tmp_path)
    events = []
    real_select, real_load_eval, real_predict = runner.select, data_mod.load_eval, pipeline.predict

    def spy_select(*a, **k):
        out = real_select(*a, **k)
        events.append(("chosen",))
        return out

    def spy_load_eval(*a, **k):
        events.append(("load_eval",))
        return real_load_eval(*a, **k)

    def spy_predict(method, examples, *a, **k):
        events.append(("predict", {ex["id"] for ex in examples}))
        return real_predict(method, examples, *a, **k)

    Toolbox.shared().forget_data()  # eval sets cached by an earlier test would hide a read
    monkeypatch.setattr(runner, "select", spy_select)
    monkeypatch.setattr(data_mod, "load_eval", spy_load_eval)
    monkeypatch.setattr(pipeline, "predict", spy_predict)
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    chosen_at = events.index(("chosen",))
    assert ("load_eval",) in events and events.index(("load_eval",)) > chosen_at
    scored = set().union(*(e[1] for e in events[:chosen_at] if e[0] == "predict"))
    assert scored and scored <= set(rec["split"]["ids"])  # only the few-shot set, held-out folds


def test_the_record_holds_the_trace_and_the_cost(tmp_path):
    cfg = run_cfg(tmp_path)
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    sel, res = rec["selection"], rec["resources"]
    assert sel["protocol"] == "cv" and sel["folds"] == 2 and len(sel["candidates"]) == 3
    assert all(len(c["fold_scores"]) == 2 for c in sel["candidates"])
    best = max(c["mean_score"] for c in sel["candidates"])
    assert next(c for c in sel["candidates"] if c["values"] == sel["chosen"])["mean_score"] == best
    assert res["selection_fits"] == 6 and res["selection_time_s"] > 0 and res["selection_tokens"] > 0
    assert res["adapt_time_s"] == pytest.approx(res["train_time_s"] + res["selection_time_s"], abs=2e-3)
    assert res["adapt_flops_approx"] > res["train_flops_approx"]
    assert res["adapt_tokens"] == res["train_tokens"] + res["selection_tokens"]
    assert sel["labels_used_total"] == 8
    assert rec["config"]["train"]["lr"] == 5e-5 and rec["resources"]["train_steps"] == 2


def test_resume_reuses_finished_folds_and_frugal_splits_reuse_the_choice(tmp_path, monkeypatch):
    calls = []
    real_fit = fits.fit
    monkeypatch.setattr(fits, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    cfg = run_cfg(tmp_path)
    first = search.select(cfg, FitCache(tmp_path))
    assert len(calls) == 6 and first.cost["fits_reused"] == 0
    cache = FitCache(tmp_path)
    import sqlite3
    with sqlite3.connect(cache.path) as con:  # a crash after 4 of the 6 fits, before the selection was kept
        con.execute("DELETE FROM fits WHERE fit_id LIKE 'selection:%'")
        for (key,) in con.execute("SELECT fit_id FROM fits LIMIT 2").fetchall():
            con.execute("DELETE FROM fits WHERE fit_id=?", (key,))
    again = search.select(cfg, cache)
    assert len(calls) == 8 and again.cost["fits_reused"] == 4
    assert again.chosen == first.chosen
    seed1 = load_config(None, [*TINY, "data_seed=[0,1]", f"output_dir={tmp_path}", "select.protocol=cv",
                               "select.search=grid"]).expand()[1]
    other = search.select(seed1, cache)  # the kept selection itself: not one fit looked up again
    assert len(calls) == 8 and other.cost == again.cost and other.record["shared"]
    assert other.chosen == first.chosen and other.record["reference_data_seed"] == 0
    assert other.cost["time_s"] == again.cost["time_s"]  # the whole selection's cost, as measured once
    assert other.cost["cpu_s"] == again.cost["cpu_s"] > 0  # CPU time too: a reusing split is not free


def test_reusing_runs_record_the_selection_cpu_time_of_the_choice(tmp_path):
    store = Store(tmp_path)
    recs = [run_one(c, store) for c in
            load_config(None, [*TINY, "data_seed=[0,1]", f"output_dir={tmp_path}", "select.protocol=cv", "select.search=grid"]).expand()]
    ref, reused = (r["resources"] for r in recs)
    assert recs[1]["selection"]["shared"] and reused["selection_fits"] == ref["selection_fits"] == 6
    assert reused["selection_cpu_s"] == ref["selection_cpu_s"] > 0


def test_repair_gives_older_reusing_runs_the_selection_cpu_time_of_the_choice(tmp_path):
    from tuneoff.repair import repair

    store = Store(tmp_path)
    recs = [run_one(c, store) for c in
            load_config(None, [*TINY, "data_seed=[0,1]", f"output_dir={tmp_path}", "select.protocol=cv", "select.search=grid"]).expand()]
    old = recs[1].to_dict()  # as written before the choice's CPU time was carried: 0 s, no cpu_s in the trace
    old["resources"]["selection_cpu_s"] = 0.0
    del old["selection"]["cost"]["cpu_s"]
    store.put(old)
    assert repair(tmp_path).selection_cpu == [old["run_id"]]
    fixed = Store(tmp_path).get(old["run_id"])
    assert fixed["resources"]["selection_cpu_s"] == recs[0]["resources"]["selection_cpu_s"] > 0
    assert repair(tmp_path).selection_cpu == []  # once only


def test_fits_of_another_method_version_are_not_reused(monkeypatch):
    from tuneoff.identity import fit_ids
    from tuneoff.registry import get_method

    cfg = load_config(None, ["method=icl", "shots=4", "data_seed=0"])
    before = fit_ids(cfg, ["a"], ["b"])
    monkeypatch.setattr(get_method("icl"), "version", 2)
    assert fit_ids(cfg, ["a"], ["b"]) != before


def test_dev_protocol_counts_its_extra_labels(tmp_path):
    cfg = run_cfg(tmp_path, "select.protocol=dev", "select.search=grid")
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    sel = rec["selection"]
    assert sel["dev"]["n"] == 8 and not set(sel["dev"]["ids"]) & set(rec["split"]["ids"])
    assert sel["labels_used_total"] == 16 and rec["resources"]["selection_fits"] == 3


def test_oracle_is_a_labelled_diagnostic_after_the_choice(tmp_path):
    cfg = run_cfg(tmp_path, "select.oracle=true", "method=head", "select.train.lr=[1e-3,1e-1]")
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    o = rec["oracle"]
    assert "diagnostic" in o["note"] and o["cost"]["runs"] == 1 and len(o["candidates"]) == 2
    for name, m in rec["metrics"].items():
        chosen = next(c for c in o["candidates"] if c["chosen"])
        assert chosen["scores"][name] == m["overall"]["accuracy"] == o["best"][name]["selected_score"]
        assert o["best"][name]["score"] == max(c["scores"][name] for c in o["candidates"])
        assert o["best"][name]["gap"] >= 0
    assert "oracle" not in str(rec["resources"])  # its cost is not the method's


def test_the_example_sweeps_select_instead_of_hand_picked_learning_rates():
    from pathlib import Path

    from tuneoff.sweep import load_sweep

    examples = Path(__file__).resolve().parents[1] / "examples"
    for name, protocols in (("quick.yaml", {"cv"}), ("paper.yaml", {"cv", "dev"})):
        sw = load_sweep(examples / name)
        assert all(r.select is not None for r in sw.runs), name
        assert {r.select.protocol for r in sw.runs} == protocols
        trained = [r for r in sw.runs if r.method.name != "icl"]
        assert all("train.lr" in r.search_space() for r in trained)
        assert {r.train.lr for r in sw.runs} == {5e-5}  # nothing picked by hand: the default, unused
    quick = load_sweep(examples / "quick.yaml")
    assert {r.select.budget for r in quick.runs} == {"frugal"} and {r.folds() for r in quick.runs} == {2}


def test_the_report_shows_the_choice_its_cost_and_the_oracle_as_a_diagnostic(tmp_path):
    from tuneoff.report import write_report

    store = Store(tmp_path)
    recs = [run_one(r, store) for r in load_config(None, [
        *TINY, f"output_dir={tmp_path}", "data_seed=[0,1]", "method=head", "select.protocol=cv", "select.search=grid",
        "select.oracle=true", "select.train.lr=[1e-3,1e-1]"]).expand()]
    recs.append(run_one(load_config(None, [*TINY, f"output_dir={tmp_path}", "method=head"]), store))
    assert all(r["status"] == "done" for r in recs), [r.get("error") for r in recs]
    md = write_report(tmp_path)["md"].read_text()
    section = md.split("## Hyperparameter selection")[1].split("\n## ")[0]
    chosen = recs[0]["selection"]["chosen_label"]
    said = "" if recs[0]["selection"]["above_chance"] else " — no candidate above chance on its folds"
    assert f"| head(select=cv/frugal) | 4 | cv/frugal, 2 folds | {chosen}{said} |" in section
    assert "Oracle diagnostic (peeks at the eval sets)" in section and "not a result" in section
    assert "head(select=off)" in md.split("## Leaderboard")[1]  # selected and fixed runs are not pooled
    assert recs[1]["selection"]["shared"] and recs[1]["resources"]["selection_time_s"] == \
        recs[0]["resources"]["selection_time_s"]


def test_a_saved_selected_run_reloads_with_the_chosen_values(tmp_path):
    cfg = run_cfg(tmp_path, "method=lora", "select.train.lr=[1e-2]", "select.method.r=[2,4]", "save=true")
    rec = run_one(cfg, Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    before, after = runner.evaluate_saved(tmp_path / "runs" / rec["run_id"])  # the adapter of the chosen rank
    for name in before:
        assert after[name]["overall"]["accuracy"] == before[name]["overall"]["accuracy"]
        assert after[name]["overall"]["pred_dist"] == before[name]["overall"]["pred_dist"]


def test_a_choice_at_the_edge_of_the_space_is_flagged():
    from tuneoff.report.selection import selection_blocks

    def rec(rid, chosen):
        return {"run_id": rid, "status": "done", "task": "demo", "model": "m", "method": "lora", "shots": 8,
                "config": {"select": {"protocol": "cv", "budget": "frugal"}}, "resources": {},
                "selection": {"protocol": "cv", "budget": "frugal", "folds": 2, "chosen": {"train.lr": chosen},
                              "chosen_label": f"train.lr={chosen:g}", "space": {"train.lr": [1e-4, 1e-3, 1e-2]},
                              "candidates": [{}, {}, {}], "labels_used_total": 16}}
    warn = [b for b in selection_blocks([rec("a", 1e-2)]) if getattr(b, "kind", "") == "warn"]
    assert warn and "train.lr=0.01 is the largest candidate" in warn[0].items[0]
    assert not [b for b in selection_blocks([rec("b", 1e-3)]) if getattr(b, "kind", "") == "warn"]
