"""Sweeps: grid expansion, resumption after SIGKILL, failed runs, and the Ray executor."""
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"

from tuneoff.config import ConfigError  # noqa: E402
from tuneoff.store import Store  # noqa: E402
from tuneoff.plan import make_plan, run_plan  # noqa: E402
from tuneoff.sweep import expand_sweep, load_sweep, parse_sweep  # noqa: E402


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _tiny(toy_task, out, **defaults) -> dict:
    """Defaults for ~1 s runs: the toy task, a tiny random BERT, two optimizer steps."""
    return {"task": str(toy_task), "model": "tiny-bert", "seed": 0, "train.max_steps": 2,
            "train.batch_size": 4, "output_dir": str(out), **defaults}


# -- expansion ------------------------------------------------------------------------------------

def test_grid_expansion_counts_overrides_dotted_keys_and_duplicates():
    sw = expand_sweep(parse_sweep({
        "defaults": {"model": "tiny-bert", "shots": [4, 8], "data_seed": [0, 1, 2], "eval.max_examples": 20},
        "grid": {"train.lr": [1e-4, 1e-3], "tasks": ["demo"], "train.max_steps": [3]},
        "methods": ["finetune", {"name": "finetune", "overrides": {"train": {"lr": 0.01}, "seed": [0, 1]}}],
    }))
    # finetune: 2 lr x 2 shots x 3 data seeds = 12 runs. The second entry pins lr=0.01 and adds a
    # seed: 2 lr x 2 shots x 3 data seeds x 2 seeds = 24 expanded, but the 2 grid lr values collapse
    # into one, so 12 of them are duplicates.
    assert sw.expanded == 12 + 24 and len(sw.runs) == 12 + 12 and sw.duplicates == 12
    assert len({r.run_id() for r in sw.runs}) == len(sw.runs)
    assert all(r.is_single and r.task == "demo" and r.train.max_steps == 3 for r in sw.runs)
    assert all(r.eval.max_examples == 20 for r in sw.runs)  # dotted key in defaults
    assert sorted({r.train.lr for r in sw.runs}) == [1e-4, 1e-3, 0.01]
    pinned = [r for r in sw.runs if r.train.lr == 0.01]
    assert len(pinned) == 12 and {r.seed for r in pinned} == {0, 1}
    assert {(r.shots, r.data_seed) for r in sw.runs} == {(s, d) for s in (4, 8) for d in (0, 1, 2)}
    assert set(sw.varying) >= {"train.lr", "shots", "data_seed", "seed"}


def test_a_patterns_grid_multiplies_only_the_methods_that_render_patterns():
    sw = expand_sweep(parse_sweep({
        "defaults": {"shots": 8, "data_seed": [0, 1], "output_dir": "x"},
        "grid": {"patterns": ["minimal", "gpt3", "eval-harness"]},
        "methods": ["finetune", "pattern", {"name": "lora", "scoring": "pattern"}]}, "t"))
    by_method = {}
    for r in sw.runs:
        by_method.setdefault(r.method.name, []).append(r.pattern)
    assert sorted(by_method["finetune"], key=str) == [None, None]  # once per split, and no pattern shown
    assert sorted(by_method["pattern"]) == sorted(by_method["lora"]) == sorted(["minimal", "gpt3", "eval-harness"] * 2)
    assert len(sw.runs) == 2 + 6 + 6


def test_identical_method_entries_are_expanded_once():
    one = expand_sweep(parse_sweep({"defaults": {"shots": 8, "data_seed": [0, 1]}, "methods": ["finetune"]}))
    two = expand_sweep(parse_sweep({"defaults": {"shots": 8, "data_seed": [0, 1]},
                                    "methods": ["finetune", {"name": "finetune"}]}))
    assert len(one.runs) == len(two.runs) == 2 and two.duplicates == 2
    assert [r.run_id() for r in one.runs] == [r.run_id() for r in two.runs]


def test_without_methods_the_defaults_method_is_used():
    sw = expand_sweep(parse_sweep({"defaults": {"method": "finetune", "shots": 8, "data_seed": 0}}))
    assert len(sw.runs) == 1 and sw.runs[0].method.name == "finetune"


@pytest.mark.parametrize("data, key", [
    ({"gird": {"shots": [8]}}, "'gird'"),
    ({"grid": {"train.lrr": [1e-4]}}, "'train.lrr'"),
    ({"grid": {"bogus": [1]}}, "'bogus'"),
    ({"defaults": {"train": {"lrr": 1}}}, "'train.lrr'"),
    ({"methods": [{"name": "finetune", "rank": 8}]}, "'method.rank'"),
    ({"methods": [{"name": "finetune", "overrides": {"train.bogus": 1}}]}, "'train.bogus'"),
    ({"methods": [{"name": "finetune", "overrides": {"method.r": 4}}]}, "'method.r'"),
    ({"methods": ["no-such-method"]}, "'no-such-method'"),
    ({"grid": {"train.lr": 1e-4}}, "'train.lr'"),  # a grid value must be a list
    ({"grid": {"shots": []}}, "'shots'"),
    ({"grid": {"method": ["finetune"]}}, "'method'"),
    ({"grid": {"task": ["demo"], "tasks": ["demo"]}}, "'task'"),
    ({"grid": {"output_dir": ["a", "b"]}}, "output_dir"),
    ({"defaults": {"shots": 0}}, "'shots'"),
])
def test_bad_sweep_configs_are_errors_naming_the_key(data, key):
    with pytest.raises(ConfigError) as e:
        expand_sweep(parse_sweep(data))
    assert key in str(e.value)


def test_command_line_overrides_edit_the_sweep_or_every_run(tmp_path):
    path = _write(tmp_path / "s.yaml", {"defaults": {"shots": [4, 8], "data_seed": 0},
                                        "grid": {"train.lr": [1e-4, 1e-3]},
                                        "methods": ["finetune", {"name": "finetune", "overrides": {"train.lr": 0.1}}]})
    assert len(load_sweep(path).runs) == 4 + 2
    sw = load_sweep(path, ["grid.train.lr=[1e-5]", "defaults.shots=4", "methods=finetune"])
    assert [(r.train.lr, r.shots) for r in sw.runs] == [(1e-5, 4)]
    sw = load_sweep(path, ["train.lr=0.5", "train.max_steps=3"])  # run settings win over everything
    assert len(sw.runs) == 2 and {(r.train.lr, r.train.max_steps) for r in sw.runs} == {(0.5, 3)}
    with pytest.raises(ConfigError, match="'nope'"):
        load_sweep(path, ["nope=1"])
    # a dotted defaults key in the file and a nested one from the command line merge
    flat = _write(tmp_path / "f.yaml", {"defaults": {"train.max_steps": 7, "shots": 4, "data_seed": 0}})
    (run,) = load_sweep(flat, ["defaults.train.lr=0.25"]).runs
    assert (run.train.max_steps, run.train.lr) == (7, 0.25)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_example_configs():
    from tuneoff.config import load_config, main_job
    from tuneoff.methods import list_methods

    assert load_config(EXAMPLES / "demo.yaml").resolved() == main_job().resolved()  # the main job, written out
    quick = load_sweep(EXAMPLES / "quick.yaml")
    names = {r.method.name for r in quick.runs}
    assert names == {m.name for m in list_methods()}  # every registered method, once
    assert len(quick.runs) == len(names) * 2 * 5 and {r.shots for r in quick.runs} == {8, 32}
    assert all(r.model == "smollm2-135m" for r in quick.runs if r.method.name in ("pattern", "icl", "distill"))
    paper = load_sweep(EXAMPLES / "paper.yaml")
    assert len(paper.runs) == 1190 and {r.task for r in paper.runs} == {"cola", "mnli"}
    lora = {r.method.model_extra["r"] for r in paper.runs if r.method.name == "lora"}
    assert lora == {4, 8, 16, 64}


def test_plan_skips_done_and_failed_unless_retrying():
    sw = expand_sweep(parse_sweep({"defaults": {"shots": 8, "data_seed": [0, 1, 2, 3]}}))
    ids = [r.run_id() for r in sw.runs]
    statuses = {ids[0]: "done", ids[1]: "failed", "other": "done"}
    plan = make_plan(sw.runs, statuses)
    assert plan.done == [ids[0]] and plan.failed == [ids[1]] and plan.skipped_failed == 1
    assert [r.run_id() for r in plan.todo] == ids[2:]
    retry = make_plan(sw.runs, statuses, retry_failed=True)
    assert [r.run_id() for r in retry.todo] == ids[1:] and retry.skipped_failed == 0


def test_plan_reruns_done_runs_only_when_forced_or_missing_the_weights_they_ask_for(tmp_path):
    sw = expand_sweep(parse_sweep({"defaults": {"shots": 8, "data_seed": [0, 1], "save": True}}))
    ids = [r.run_id() for r in sw.runs]
    statuses = dict.fromkeys(ids, "done")
    (tmp_path / ids[0] / "weights").mkdir(parents=True)  # only the first kept its weights
    plan = make_plan(sw.runs, statuses, run_dir=lambda rid: tmp_path / rid)
    assert plan.done == ids[:1] and [r.run_id() for r in plan.todo] == ids[1:]
    forced = make_plan(sw.runs, statuses, run_dir=lambda rid: tmp_path / rid, force=True)
    assert forced.done == [] and [r.run_id() for r in forced.todo] == ids


def test_a_done_run_missing_its_manifest_gets_it_back(tmp_path):
    """A done run whose manifest.json was deleted: the next sweep writes it again from the store."""
    from tuneoff.executors import LocalExecutor

    sw = expand_sweep(parse_sweep({"defaults": {"shots": 8, "data_seed": 0, "output_dir": str(tmp_path)}}))
    store = Store(tmp_path)
    rec = {"run_id": sw.runs[0].run_id(), "status": "done", "config": {}, "metrics": {}}
    store.put(rec)
    manifest = store.run_dir(rec["run_id"]) / "manifest.json"
    manifest.unlink()
    plan = make_plan(sw.runs, store.statuses())
    assert plan.todo == [] and run_plan(plan, store, LocalExecutor()) == [rec]
    assert json.loads(manifest.read_text()) == rec


# -- resuming after SIGKILL -----------------------------------------------------------------------

def _done_ids(db: Path) -> list[str]:
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return [r[0] for r in con.execute("SELECT run_id FROM runs WHERE status='done'")]
    except sqlite3.OperationalError:  # created, but its table not yet
        return []


def _start(cfg: Path, log: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "tuneoff.cli", "sweep", str(cfg)], cwd=cwd, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _counts_line(log: Path) -> tuple[int, int]:
    text = " ".join(log.read_text().split())
    m = re.search(r"already done: (\d+); failed: \d+.*?; to run now: (\d+)", text)
    assert m, text[-2000:]
    return int(m.group(1)), int(m.group(2))


def test_sigkill_at_random_points_loses_and_repeats_nothing(toy_task, tmp_path):
    out = tmp_path / "res"
    cfg = _write(tmp_path / "sweep.yaml", {"defaults": _tiny(toy_task, out, shots=[2, 4],
                                                              data_seed=list(range(10)))})
    expected = {r.run_id() for r in load_sweep(cfg).runs}
    n = len(expected)
    assert n == 20
    db = out / "results.sqlite"
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    kept: dict[str, dict] = {}
    for i in range(2):
        # each kill waits for 1-2 runs more than the last one left, so this invocation has printed
        # its plan and finished something; at least 8 runs stay to do, so the kill lands mid-sweep
        # even on a machine where a tiny run takes a few hundredths of a second
        target = len(kept) + rng.randint(1, 2)
        assert target <= n - 8, (seed, len(kept))
        log = tmp_path / f"log{i}.txt"
        proc = _start(cfg, log, tmp_path)
        deadline = time.time() + 120
        while len(_done_ids(db)) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.15))  # land anywhere in the next run, or in the store write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, (seed, log.read_text()[-2000:])
        done = _done_ids(db)
        assert target <= len(done) < n, (seed, target, len(done))
        assert _counts_line(log)[0] == len(kept), seed  # it started from what the last one left
        store = Store(out)
        kept.update({rid: store.get(rid) for rid in done if rid not in kept})
    log = tmp_path / "final.txt"
    proc = _start(cfg, log, tmp_path)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    # the last invocation ran exactly what was not finished
    assert _counts_line(log) == (len(kept), n - len(kept)), seed
    store = Store(out)
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT run_id, status, record FROM runs").fetchall()
    assert len(rows) == n and {r[0] for r in rows} == expected
    for rid, status, blob in rows:
        rec = json.loads(blob)
        assert status == rec["status"] == "done", rec.get("error")
        assert set(rec["metrics"]) == {"test", "shifted"}
        assert all(0 <= m["overall"]["accuracy"] <= 1 for m in rec["metrics"].values())
        assert len(rec["train"]["losses"]) == 2 and rec["split"]["checksum"]
        assert json.loads((store.run_dir(rid) / "manifest.json").read_text()) == rec
    for rid, rec in kept.items():  # finished before a kill: never run again
        assert store.get(rid) == rec, (seed, rid)


# -- failed runs ----------------------------------------------------------------------------------

def test_a_failed_run_does_not_stop_the_sweep_and_retry_failed_reruns_it(toy_task, tmp_path):
    from typer.testing import CliRunner

    from tuneoff.cli import app
    from tuneoff.pipeline import Toolbox

    out = tmp_path / "res"
    # the toy task has 30 training examples per class: shots=40 fails, and comes first
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, data_seed=0),
                                       "grid": {"shots": [40, 2]}})
    cli = CliRunner()
    res = cli.invoke(app, ["sweep", str(cfg)])
    assert res.exit_code == 1, res.output
    store = Store(out)
    assert store.counts() == {"done": 1, "failed": 1}
    failed = store.records("failed")[0]
    assert failed["shots"] == 40 and "shots=40 per class" in failed["error"]

    res = cli.invoke(app, ["sweep", str(cfg)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1
    assert "already done: 1; failed: 1, skipped: --retry-failed reruns them; to run now: 0" in text

    # give the class enough examples; the same run (same run_id) now succeeds when retried
    rows = [{"idx": i, "text": f"the thing was {'good' if i % 2 else 'bad'} {i}", "label": i % 2}
            for i in range(100)]
    (toy_task.parent / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Toolbox.shared().forget_data()  # the in-process loader cache would still hold the old file
    res = cli.invoke(app, ["sweep", str(cfg), "--retry-failed"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "already done: 1; failed: 1, run again now (--retry-failed); to run now: 1" in text
    assert store.counts() == {"done": 2}
    assert store.get(failed["run_id"])["status"] == "done"


def test_dry_run_lists_and_runs_nothing(toy_task, tmp_path):
    from typer.testing import CliRunner

    from tuneoff.cli import app

    out = tmp_path / "res"
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, data_seed=[0, 1]),
                                       "grid": {"shots": [2, 4]}})
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--dry-run"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "4 run(s)" in res.output and "to run now: 4" in res.output and res.output.count("to run") == 5
    assert "estimate: about " in " ".join(res.output.split())  # priced from the runs' work (tests/test_pricing.py)
    assert not out.exists()
    assert CliRunner().invoke(app, ["sweep", str(cfg), "grid.shots=[2]"]).exit_code == 0
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--dry-run"], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert "to run now: 2" in text and "estimate: about " in text and "from the most similar of the 2 finished" in text


def test_a_pattern_one_task_lacks_stops_the_sweep_before_any_run(toy_task, tmp_path):
    from typer.testing import CliRunner

    from tuneoff.cli import app

    out = tmp_path / "res"
    cfg = _write(tmp_path / "s.yaml", {"defaults": _tiny(toy_task, out, shots=2, data_seed=0),
                                       "grid": {"pattern": ["simple", "nope"]}, "methods": ["pattern"]})
    res = CliRunner().invoke(app, ["sweep", str(cfg)], env={"COLUMNS": "200"})
    assert res.exit_code == 2 and "has no pattern 'nope'" in res.output, res.output
    assert not (out / "results.sqlite").exists()


def test_ray_missing_is_a_clear_error(monkeypatch):
    from tuneoff.executors import ExecutorError, make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ExecutorError, match=r"pip install 'tuneoff\[ray\]'"):
        make_executor("ray")


# -- Ray ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


def _comparable(rec) -> dict:
    from tuneoff.record import dump

    rec = json.loads(json.dumps(dump(rec)))
    for k in ("created_at", "resources", "env"):
        rec.pop(k, None)
    rec["config"].pop("output_dir")
    return rec


@pytest.mark.ray
def test_ray_and_local_executors_give_identical_records(ray_cluster, toy_task, tmp_path):
    from tuneoff.executors import LocalExecutor, RayExecutor

    def sweep(out):
        return expand_sweep(parse_sweep({"defaults": _tiny(toy_task, out, shots=[2, 4], data_seed=0),
                                         "methods": ["finetune"], "grid": {"train.lr": [1e-2]}}))

    local_sw, ray_sw = sweep(tmp_path / "local"), sweep(tmp_path / "ray")
    local = run_plan(make_plan(local_sw.runs, {}), Store(tmp_path / "local"), LocalExecutor())
    ex = RayExecutor()
    assert not ex.started_ray and ex.slots == 2  # joined the test's cluster
    ray_store = Store(tmp_path / "ray")
    remote = run_plan(make_plan(ray_sw.runs, {}), ray_store, ex)
    assert len(local) == len(remote) == 2
    for a, b in zip(local, remote):
        assert a["status"] == b["status"] == "done", (a.get("error"), b.get("error"))
        assert _comparable(a) == _comparable(b)
        assert a["metrics"] == b["metrics"] and a["train"]["losses"] == b["train"]["losses"]
        assert a["split"]["checksum"] == b["split"]["checksum"]
    # the driver wrote them (manifests in the driver's results folder), workers wrote nothing else
    assert all((ray_store.run_dir(r["run_id"]) / "manifest.json").is_file() for r in remote)


@pytest.mark.ray
def test_ray_driver_submits_only_runs_not_done(ray_cluster, toy_task, tmp_path):
    from tuneoff.executors import RayExecutor

    out = tmp_path / "res"
    sw = expand_sweep(parse_sweep({"defaults": _tiny(toy_task, out, shots=2, data_seed=[0, 1, 2])}))
    store = Store(out)
    kept = {"run_id": sw.runs[0].run_id(), "status": "done", "config": {}, "created_at": "then"}
    store.put(kept)
    ex = RayExecutor()
    submitted = []
    real = ex._submit
    ex._submit = lambda run, run_dir: submitted.append(run.run_id()) or real(run, run_dir)
    records = run_plan(make_plan(sw.runs, store.statuses()), store, ex)
    assert sorted(submitted) == sorted(r.run_id() for r in sw.runs[1:])
    assert store.get(kept["run_id"]) == kept and len(records) == 3
    assert all(r["status"] == "done" for r in records[1:]), [r.get("error") for r in records]
