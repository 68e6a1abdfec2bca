"""Pricing a run from its work (`tuneoff.pricing`, `tuneoff.throughput`): a new folder's dry run has
an estimate, a task's own tokens per example set its price, and a selection's fits are counted as
its search makes them (grid: candidates x folds; optuna: trials x fold models, rungs pruned)."""
import json
import random

import pytest

from tuneoff.config import load_config
from tuneoff.estimate import Costs
from tuneoff.pricing import forget, inputs, rung_shares, run_work, selection_work, training
from tuneoff.throughput import Machine, Pricer

from conftest import write_jsonl

# a machine whose seconds are the FLOPs alone (no load, step or optimizer cost): prices are work
FLOPS_ONLY = Machine(0.0, 0.0, 0.0, 1e9, 1e9, "a test speed")
WORDS = ["cake", "soup", "film", "phone", "room", "book", "song", "game", "car", "lamp", "the", "a", "was", "is"]


@pytest.fixture(autouse=True)
def _fresh():
    forget()  # every test reads its own files
    yield
    forget()


@pytest.fixture
def pair_task(tmp_path):
    """A text-pair task whose inputs are about 3 times the toy task's: premise and hypothesis."""
    rng = random.Random(1)

    def rows(n, offset):
        out = []
        for i in range(n):
            label = i % 2
            out.append({"idx": offset + i, "premise": " ".join(rng.choice(WORDS) for _ in range(9)),
                        "hypothesis": " ".join(rng.choice(WORDS) for _ in range(4)) + (" good" if label else " bad"),
                        "label": label})
        return out
    folder = tmp_path / "pair"
    write_jsonl(folder / "train.jsonl", rows(60, 0))
    write_jsonl(folder / "test.jsonl", rows(20, 100))
    y = folder / "pair.yaml"
    y.write_text("name: pair\ntext_fields: [premise, hypothesis]\nlabel_names: [different, same]\ntrain: train.jsonl\n"
                 "eval:\n  - {name: test, path: test.jsonl}\n")
    return y


def _run(task, *extra):
    return load_config(None, [f"task={task}", "model=tiny-bert", "shots=4", "data_seed=0", "seed=0",
                              "device=cpu", "forgetting.enabled=false", *extra]).expand()[0]


def _record(run, train_s, eval_s):
    """A finished run of `run` whose recorded work is what pricing counts for it."""
    work = run_work(run, inputs(run))
    res = {"load_time_s": 0.0, "setup_time_s": 0.0, "train_time_s": train_s, "eval_time_s": eval_s,
           "train_steps": int(work.steps), "params_total": inputs(run).params,
           "params_trainable": inputs(run).params, "train_flops_approx": work.train_flops,
           "eval_flops_approx": work.eval_flops}
    return {"run_id": run.run_id(), "status": "done", "created_at": "2026-01-01T00:00:00",
            "config": run.model_dump(mode="json"), "resources": res, "env": {"device": "cpu"}}


def _dry_run(toy_task, tmp_path) -> str:
    """The dry run's words for a new folder of finetune and head, 2 splits each, on a tiny model."""
    from typer.testing import CliRunner

    from tuneoff.cli import app

    cfg = tmp_path / "s.yaml"
    cfg.write_text(json.dumps({"defaults": {"task": str(toy_task), "model": "tiny-bert", "shots": 2,
                                            "data_seed": [0, 1], "device": "cpu", "output_dir": str(tmp_path / "res"),
                                            "train": {"max_steps": 2}},
                               "methods": ["finetune", "head"]}))
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--dry-run"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


def test_a_new_folders_dry_run_gives_a_number(toy_task, tmp_path):
    text = _dry_run(toy_task, tmp_path)
    assert "none yet" not in text and "estimate: about " in text
    assert "priced from its work, as no run of this folder has finished yet" in text
    assert text.count("first principles: its work") == 2  # one line per group: finetune, head
    assert not (tmp_path / "res").exists()


def test_a_pair_task_prices_higher_per_example_in_proportion_to_its_tokens(toy_task, pair_task):
    single, pair = _run(toy_task), _run(pair_task)
    t1, t2 = inputs(single).tokens, inputs(pair).tokens
    assert t2 > 2.5 * t1  # [CLS] premise [SEP] hypothesis [SEP] against [CLS] four words [SEP]
    n1, n2 = inputs(single).params, inputs(pair).params  # (a tiny model's vocabulary is its task's words)
    w1, w2 = run_work(single, inputs(single)), run_work(pair, inputs(pair))
    assert w1.steps == w2.steps and w2.train_flops / w1.train_flops == pytest.approx(t2 * n2 / (t1 * n1))
    pricer = Pricer(FLOPS_ONLY)
    (s1, basis), (s2, _) = pricer.parts(single), pricer.parts(pair)
    assert basis.startswith("first principles: its work (") and "at a test speed" in basis
    e1, e2 = (sum(n * t for _, n, t in inputs(r).evals) for r in (single, pair))
    assert s2 / s1 == pytest.approx((w2.train_flops + 2 * n2 * e2) / (w1.train_flops + 2 * n1 * e1))
    assert s2 / s1 > 2.5


def test_scaling_from_another_task_uses_token_ratios(toy_task, pair_task):
    single, pair = _run(toy_task), _run(pair_task)
    costs = Costs([_record(single, train_s=30.0, eval_s=6.0)], Pricer(FLOPS_ONLY))
    price = costs.price(pair)
    assert price.basis.startswith("scaled: its work (") and "the speed of 1 finished run(s) of tiny-bert" in price.basis
    i1, i2 = inputs(single), inputs(pair)
    params = i2.params / i1.params  # (a tiny model's vocabulary is its task's words)
    train_ratio = i2.tokens / i1.tokens * params  # same shots, steps and method: training grows with the tokens
    eval_ratio = sum(n * t for _, n, t in i2.evals) / sum(n * t for _, n, t in i1.evals) * params
    assert price.seconds == pytest.approx(30.0 * train_ratio + 6.0 * eval_ratio)
    assert price.seconds > 2.5 * 36.0
    # the same cell measured wins over anything counted
    assert costs.price(_run(toy_task, "data_seed=1")).basis.startswith("measured: 1 finished run(s)")


def test_another_shot_count_is_scaled_by_its_work_where_a_pricer_counts_it(toy_task):
    """A cell priced from the same method at another shot count: by the ratio of the two counts'
    work (a small set's selection fits more fold assignments and trains fewer steps, which the
    shots alone miss), and by the shots where nothing counts the work."""
    sel = ["select.protocol=cv", "select.search=optuna", "select.trials=4", "select.length={low: 1, high: 9, factor: 3}"]
    few, many = _run(toy_task, "shots=2", *sel), _run(toy_task, "shots=8", *sel)
    rec = _record(few, train_s=30.0, eval_s=6.0)
    rec["resources"]["selection_time_s"] = 100.0
    rec["selection"] = {"shared": False}
    pricer = Pricer(FLOPS_ONLY)
    price = Costs([rec], pricer).price(many)
    assert price.basis == "shots: 1 finished run(s) at 2 shots, scaled by the work at each count"
    assert price.selection == price.basis
    own = 36.0 * pricer.parts(many)[0] / pricer.parts(few)[0]
    chose = 100.0 * pricer.selection(many)[0] / pricer.selection(few)[0]
    assert price.seconds == pytest.approx(own + chose)
    assert price.more == pytest.approx(pricer.selection(many)[2]) and price.more > 1  # the edge rule's bound, from its work
    assert Costs([rec]).price(many).more == 1.0  # without a pricer nothing counts it
    assert few.select.repeats_for(2) > many.select.repeats_for(8)  # more fold assignments at 2 shots ...
    assert chose < 100.0 * 8 / 2  # ... so the work grows less than the shots
    bare = Costs([rec]).price(many)  # no pricer: the shots' ratio
    assert bare.basis.endswith("training scaled by the shots")
    assert bare.seconds == pytest.approx(6.0 + 30.0 * 4 + 100.0 * 4)


def test_a_grid_selection_prices_candidates_times_folds(toy_task):
    run = _run(toy_task, "shots=6", "select.protocol=cv", "select.search=grid", "select.folds=3",
               "select.train.lr=[1e-5,3e-5,1e-4,3e-4]")
    inp = inputs(run)
    work, extra = selection_work(run, inp)
    assert (work.loads, extra.loads) == (4 * 3, 0)  # 4 candidates x 3 folds, each loading its model; no edge rule
    one = training(run, inp, 6 * 2 * 2 / 3)  # a fold's training part: 2 of 3 folds of 6 per class x 2
    assert work.train_flops == pytest.approx(12 * one.train_flops) and work.steps == 12 * one.steps
    seconds, basis, _ = Pricer(FLOPS_ONLY).selection(run)
    assert basis.startswith("first principles: 12 fits, its work")
    assert seconds == pytest.approx((work.train_flops + work.eval_flops) / 1e9)


def test_an_optuna_selection_with_pruning_prices_below_the_same_trials_without(toy_task):
    base = ["shots=4", "select.protocol=cv", "select.search=optuna", "select.trials=12",
            "select.length={low: 1, high: 9, factor: 3}"]
    halving, none = _run(toy_task, *base, "select.pruner=halving"), _run(toy_task, *base, "select.pruner=none")
    (pruned, _), (full, _) = selection_work(halving, inputs(halving)), selection_work(none, inputs(none))
    models = 12 * halving.folds() * halving.select.repeats_for(4)  # trials x fold models
    assert pruned.loads == full.loads == models
    # without pruning every trial trains every fold model to the length's end (9 epochs)
    n_fit = 4 * 2 / 2
    assert full.train_flops == pytest.approx(models * training(none, inputs(none), n_fit, 0, 9, horizon=9).train_flops)
    assert pruned.train_flops < 0.7 * full.train_flops and pruned.eval_flops < full.eval_flops
    shares = rung_shares(12, 3, 3)
    assert shares[0] == 1.0 and 1 / 3 < shares[1] <= 1 and 1 / 9 < shares[2] < shares[1]
    # synchronous (the default): 12 trials fit to 1 epoch, the best 4 from the start to 3, the best 2 to 9
    sync = _run(toy_task, *base)
    assert sync.select.pruner == "synchronous"
    work, extra = selection_work(sync, inputs(sync))
    per_fold = halving.folds() * halving.select.repeats_for(4)
    assert work.loads == (12 + 4 + 2) * per_fold
    one = {e: training(sync, inputs(sync), n_fit, 0, e, horizon=9).train_flops for e in (1, 3, 9)}
    assert work.train_flops == pytest.approx(per_fold * (12 * one[1] + 4 * one[3] + 2 * one[9]))
    assert work.train_flops < 0.5 * full.train_flops


def test_a_pricer_that_does_not_calibrate_takes_the_default_speed_and_loads_no_model(monkeypatch):
    """The time left a running sweep prints prices a model with no finished run at the device's
    default speed: no model is loaded in the sweep's process to print a time. The dry run's pricer
    calibrates."""
    from tuneoff import throughput

    def calibrate(*a, **k):
        raise AssertionError("calibrated")
    monkeypatch.setattr(throughput, "calibrate", calibrate)
    cfg = load_config(None, ["task=demo", "model=minilm-l6", "shots=4", "device=cpu"]).expand()[0]
    machine, runs = Pricer(calibrate=False).machine(cfg)
    assert machine == throughput.DEFAULT["cpu"] and runs == 0
    tried, _ = Pricer().machine(cfg)
    assert "calibration failed: calibrated" in tried.how  # the dry run's pricer tried (a failure is priced rough)


def test_the_edge_rule_is_priced_at_the_most_it_may_add_a_longer_length_each_round(toy_task):
    """The edge rule's rounds (trials // 2 trials each) extend the length one factor each (9 -> 27 -> 81
    epochs, its limit): the dry run's "up to" must bound that, not count half a first round per extension."""
    base = ["shots=4", "select.protocol=cv", "select.search=optuna", "select.trials=12",
            "select.length={low: 1, high: 9, factor: 3}"]
    sync = _run(toy_task, *base)
    inp = inputs(sync)
    per_fold = sync.folds() * sync.select.repeats_for(4)
    n_fit = 4 * 2 / 2

    def flops(epochs: float, horizon: float) -> float:
        return training(sync, inp, n_fit, 0, epochs, horizon=horizon).train_flops

    work, extra = selection_work(sync, inp)
    assert sync.select.extensions == 2
    # round 1: 6 trials to 1 epoch, the best 2 to 3, 1 to 9, 1 to 27; round 2 the same on to 81; each
    # round also trains the edge choice itself to its new horizon (at the rungs above the old one)
    one = 6 * flops(1, 27) + 2 * flops(3, 27) + flops(9, 27) + flops(27, 27) + flops(27, 27)
    two = 6 * flops(1, 81) + 2 * flops(3, 81) + flops(9, 81) + flops(27, 81) + flops(81, 81) + flops(81, 81)
    assert extra.train_flops == pytest.approx(per_fold * (one + two))
    assert extra.loads == per_fold * ((6 + 2 + 1 + 1 + 1) + (6 + 2 + 1 + 1 + 1 + 1))
    seconds, _, more = Pricer(FLOPS_ONLY).selection(sync)
    assert more == pytest.approx(1 + (extra.train_flops + extra.eval_flops) / (work.train_flops + work.eval_flops))
    assert more > 4  # half a first round per extension said 2x: the longer lengths cost far more
    price = Costs([], Pricer(FLOPS_ONLY)).price(sync)  # what the dry run's total adds as its bound
    assert price.chose == pytest.approx(seconds) and price.extra == pytest.approx(seconds * (more - 1))
    # at its limit the length cannot extend: each round trains no longer than the first
    capped = _run(toy_task, *base[:-1], "select.length={low: 1, high: 9, limit: 9, factor: 3}")
    w, e = selection_work(capped, inputs(capped))
    assert e.train_flops == pytest.approx(per_fold * 2 * (6 * flops(1, 9) + 2 * flops(3, 9) + flops(9, 9)))
    # nothing that can extend (the length at its limit, the rate a list): the search settles, no round added
    fixed = _run(toy_task, *base[:-1], "select.length={low: 1, high: 9, limit: 9, factor: 3}", "select.train.lr=[1e-4, 1e-3]")
    assert selection_work(fixed, inputs(fixed))[1].loads == 0 and Pricer(FLOPS_ONLY).selection(fixed)[2] == 1.0
    once = _run(toy_task, *base[:-1], "select.length={low: 1, high: 9, limit: 27, factor: 3}", "select.train.lr=[1e-4, 1e-3]")
    assert selection_work(once, inputs(once))[1].train_flops == pytest.approx(per_fold * one)  # to 27, not on to 81
    # no length searched (lr only): the rounds are of trials // 2 candidates each, 2 x 6 of 12
    flat = _run(toy_task, *base[:-1], "select.length=false", "select.train.lr={low: 1e-5, high: 1e-3}")
    w, e = selection_work(flat, inputs(flat))
    assert e.train_flops == pytest.approx(w.train_flops) and e.loads == w.loads
    grid = _run(toy_task, "shots=4", "select.protocol=cv", "select.search=grid")
    assert selection_work(grid, inputs(grid))[1].loads == 0 and Pricer(FLOPS_ONLY).selection(grid)[2] == 1.0


def test_the_dry_run_says_the_most_the_edge_rule_may_add(toy_task, tmp_path):
    from typer.testing import CliRunner

    from tuneoff.cli import app

    cfg = tmp_path / "s.yaml"
    cfg.write_text(json.dumps({"defaults": {"task": str(toy_task), "model": "tiny-bert", "shots": 4, "device": "cpu",
                                            "output_dir": str(tmp_path / "res"),
                                            "select": {"search": "optuna", "trials": 12,
                                                       "length": {"low": 1, "high": 9, "factor": 3}}},
                               "methods": ["finetune"]}))
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--dry-run"], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    run = _run(toy_task, "shots=4", "select.search=optuna", "select.trials=12",
               "select.length={low: 1, high: 9, factor: 3}")
    more = Pricer().selection(run)[2]
    assert more > 2 and f"up to {more:.1f}× that if the edge rule extends" in text
    assert "if every selection's edge rule extends" in text  # the total's bound beside the estimate


def test_the_groups_the_dry_run_does_not_list_are_counted_and_priced(toy_task, tmp_path, monkeypatch):
    from tuneoff.cli import running

    monkeypatch.setattr(running, "GROUPS_SHOWN", 1)
    text = _dry_run(toy_task, tmp_path)
    assert text.count("first principles: its work") == 1  # the one group listed: finetune
    assert "... and 1 more group(s): 2 run(s), " in text and "not priced" not in text


def test_the_calibration_runs_at_the_threads_a_run_would_take_and_gives_them_back(toy_task, monkeypatch):
    """On a CPU shared with other work, a calibration at torch's default threads (one per core) priced
    smollm2-135m at 10 GFLOP/s where the runs beside it, at one thread, did 24: the calibration times
    the passes at the threads a run of the config would take (`threads`), says how many, and sets
    torch's back."""
    import torch

    from tuneoff import threads, throughput
    from tuneoff.pricing import task_data

    before, seen, real = torch.get_num_threads(), [], throughput._calibrate
    monkeypatch.setattr(threads, "cores", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(throughput, "_calibrate", lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    torch.set_num_threads(2)
    try:
        cfg = _run(toy_task, "threads=3")
        task, pool, _ = task_data(cfg.task, cfg.data_dir, (), None)
        machine = throughput.calibrate(cfg, task, pool[:8])
        assert seen == [3] and torch.get_num_threads() == 2
        assert machine.how.endswith("scoring, 3 threads)") and machine.train_rate > 0
        one = throughput.calibrate(_run(toy_task, "threads=1"), task, pool[:8])
        assert seen == [3, 1] and one.how.endswith("scoring, 1 thread)")
    finally:
        torch.set_num_threads(before)


def test_a_pricer_calibrates_once_per_model_device_and_threads(toy_task, monkeypatch):
    measured = []
    monkeypatch.setattr(Pricer, "_measure", lambda self, cfg, device: measured.append(cfg.threads) or FLOPS_ONLY)
    pricer = Pricer()
    for threads in ("auto", 1, "auto", 1):
        pricer._calibrated(_run(toy_task, f"threads={threads}"), "cpu")
    assert measured == ["auto", 1]
