"""The time left of a plan: each run left priced from finished runs like it, selection counted only
where a run computes its own, other live processes on the folder counted as workers."""
import os

import psutil
import pytest

from tuneoff.config import load_config
from tuneoff.estimate import Costs, computes_selection
from tuneoff.store import Store

BASE = ["task=demo", "model=tiny-bert", "shots=4", "seed=0", "train.max_steps=2"]


def _runs(*extra):
    return load_config(None, [*BASE, *extra]).expand()


def _rec(run, train, fixed=2.0, selection=None, shared=False, status="done"):
    res = {"load_time_s": fixed / 2, "eval_time_s": fixed / 2, "setup_time_s": 0.0, "train_time_s": train}
    rec = {"run_id": run.run_id(), "status": status, "created_at": "2026-01-01T00:00:00",
           "config": run.model_dump(mode="json"), "resources": res}
    if selection is not None:
        res["selection_time_s"] = selection
        rec["selection"] = {"shared": shared}
    return rec


def test_only_the_frugal_reference_split_computes_its_selection():
    frugal = _runs("data_seed=[0,1,2]", "select.protocol=cv", "select.search=grid")
    assert [computes_selection(r) for r in frugal] == [True, False, False]
    full = _runs("data_seed=[0,1]", "select.protocol=cv", "select.search=grid", "select.budget=full")
    assert [computes_selection(r) for r in full] == [True, True]
    assert not computes_selection(_runs("data_seed=0")[0])


def test_each_run_left_is_priced_from_runs_like_it():
    ref, s1, s2 = _runs("shots=4", "data_seed=[0,1,2]", "select.protocol=cv", "select.search=grid")
    costs = Costs([_rec(ref, train=10.0, selection=100.0)])
    left = costs.left([s1, s2])
    assert left.seconds == pytest.approx(24.0) and not left.lower_bound  # no selection: the choice is reused
    # a split that reuses the choice records its cost too, but that is not a cost to come again
    costs.add(_rec(s1, train=14.0, selection=100.0, shared=True))
    assert costs.selections[("demo", "tiny-bert", "finetune", 4)] == [(0.0, 100.0)]
    assert costs.left([s2]).seconds == pytest.approx(14.0)  # mean of 12 and 16
    # 16 shots, nothing recorded there: the nearest shot count, its training and selection scaled by 4
    big = _runs("shots=16", "data_seed=0", "select.protocol=cv", "select.search=grid")[0]
    assert costs.run_seconds(big) == (pytest.approx(2.0 + 12.0 * 4 + 100.0 * 4), True)
    # another method at recorded shots: the mean of the methods there
    head = _runs("shots=4", "data_seed=[0,1]", "method=head", "select.protocol=cv", "select.search=grid")[1]
    assert costs.run_seconds(head)[0] == pytest.approx(14.0)
    assert costs.left([s2, big, head], workers=2).seconds == pytest.approx((14.0 + 450.0 + 14.0) / 2)


def test_no_estimate_before_a_run_finishes_and_a_lower_bound_without_a_selection():
    ref, other = _runs("shots=4", "data_seed=[0,1]", "select.protocol=cv", "select.search=grid")
    assert Costs().left([ref]) is None
    assert Costs([_rec(ref, train=5.0, status="failed")]).left([other]) is None  # a failure prices nothing
    plain = _runs("shots=4", "data_seed=0")[0]
    left = Costs([_rec(plain, train=5.0)]).left([ref])
    assert left.seconds == pytest.approx(7.0) and left.lower_bound  # its selection has no price yet
    assert Costs([_rec(plain, train=5.0)]).left([]).seconds == 0.0


def test_other_live_processes_holding_claims_are_counted(tmp_path):
    from tuneoff import claims
    from tuneoff.cli.display import _RunsLeft
    from tuneoff.plan import make_plan

    store = Store(tmp_path)
    runs = _runs("shots=4", "data_seed=[0,1,2]", f"output_dir={tmp_path}")
    store.put(_rec(runs[0], train=10.0))
    plan = make_plan(runs, store.statuses())
    left = _RunsLeft(plan, store)
    assert left.text(1) == "about 24s"
    me = psutil.Process()
    with store.transaction(immediate=True) as con:  # a live process (this one, under another owner id) and a dead one
        con.execute("INSERT INTO claims VALUES (?,?,?,?,?,?,?)",
                    (runs[1].run_id(), "other", claims.me().host, os.getpid(), me.create_time(), 1, 4e9))
        con.execute("INSERT INTO claims VALUES (?,?,?,?,?,?,?)",
                    (runs[2].run_id(), "gone", claims.me().host, os.getpid(), me.create_time() - 100, 2, 4e9))
    assert claims.others_running(store) == 1
    assert left.text(1) == "about 12s with 1 other process(es) on this folder"
    left.ran(runs[1], _rec(runs[1], train=20.0))
    assert left.text(1) == "about 17s with 1 other process(es) on this folder"  # one left, priced at (12 + 22) / 2


def test_a_starved_cpu_run_is_priced_by_the_cpu_time_it_needed_and_a_gpu_run_by_its_wall_time():
    ref, other = _runs("shots=4", "data_seed=[0,1]")
    starved = _rec(ref, train=100.0)  # waited behind other work: 100 s wall for 30 s of CPU
    starved["resources"].update(train_cpu_s=30.0, load_cpu_s=1.0, eval_cpu_s=4.0)  # eval: CPU above wall
    starved["env"] = {"device": "cpu"}
    assert Costs([starved]).left([other]).seconds == pytest.approx(1.0 + 1.0 + 30.0)
    gpu = {**starved, "env": {"device": "cuda"}}  # a GPU run's CPU time is not its work
    assert Costs([gpu]).left([other]).seconds == pytest.approx(102.0)
    unknown = {k: v for k, v in starved.items() if k != "env"}  # no device recorded: wall time
    assert Costs([unknown]).left([other]).seconds == pytest.approx(102.0)


def test_the_time_left_while_running_is_priced_as_the_dry_run_prices_it(tmp_path):
    """A run unlike every finished one (another method, 16 times the shots) is priced by its work, as
    the dry run prices it, not at the mean of the finished runs, which put a 128-shot selection at the
    price of a 4-shot run."""
    from tuneoff.cli.display import _RunsLeft, estimate_text
    from tuneoff.plan import make_plan
    from tuneoff.throughput import Pricer

    store = Store(tmp_path)
    small = load_config(None, ["task=demo", "model=tiny-bert", "shots=4", "seed=0", "data_seed=0",
                               f"output_dir={tmp_path}"]).expand()[0]
    big = load_config(None, ["task=demo", "model=tiny-bert", "shots=64", "seed=0", "data_seed=0", "method=head",
                             "train.epochs=30", f"output_dir={tmp_path}"]).expand()[0]
    store.put(_rec(small, train=10.0))
    plan = make_plan([small, big], store.statuses())
    records = store.records("done")
    dry = Costs(records, Pricer()).left([big], 1)
    rough = Costs(records).left([big], 1)
    assert rough.seconds == pytest.approx(12.0)  # the mean of the one finished run
    assert dry.seconds != pytest.approx(rough.seconds, rel=0.05)
    assert _RunsLeft(plan, store).text(1) == estimate_text(dry)
