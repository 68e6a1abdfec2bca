"""Defaults that answer: the main job (`tuneoff run` with nothing given) and the example configs
compare at least two methods, each choosing its own hyperparameters by one selection, on as many
splits as the recommendation's paired test needs, and the main job ends with a tested answer."""
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tuneoff.cli import app
from tuneoff.config import MAIN_JOB, ConfigError, as_list, load_config, main_job
from tuneoff.report.claims import MIN_PAIRS
from tuneoff.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {"cola-mnli-cpu.yaml", "paper.yaml"}  # the published comparisons' configs, kept as they ran
REFUSALS = ("a test needs at least", "nothing to compare it with", "none of the")  # no test was possible


def _cells(runs) -> dict[tuple, dict[str, set]]:
    """(task, model-free cell: shots) -> method -> the data seeds it runs."""
    out: dict = {}
    for r in runs:
        out.setdefault((r.task, r.shots), {}).setdefault(r.method.name, set()).add(r.data_seed)
    return out


def test_the_main_job_compares_two_methods_on_enough_splits_with_one_selection():
    cfg = main_job()
    methods = [m.name for m in cfg.methods]
    assert len(set(methods)) >= 2 and len(as_list(cfg.data_seed)) >= MIN_PAIRS
    assert cfg.select is not None and cfg.select.protocol == "cv"  # each method chooses its own learning rate
    assert {tuple(sorted(one.search_space())) for one in cfg.per_method()} == {("train.lr",)}
    for cell, per_method in _cells(cfg.expand()).items():
        assert set(per_method) == set(methods) and all(len(s) >= MIN_PAIRS for s in per_method.values()), cell
    assert (cfg.task, cfg.model) == ("demo", "minilm-l6")  # the built-in offline defaults
    # examples/demo.yaml writes it out, key by key
    assert load_config(ROOT / "examples" / "demo.yaml").resolved() == cfg.resolved()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")
                                        if p.name not in PUBLISHED))
def test_every_example_compares_methods_on_enough_splits(name):
    path = ROOT / "examples" / name
    data = yaml.safe_load(path.read_text())
    runs = load_sweep(path).runs if "methods" in data else load_config(path).expand()
    for cell, per_method in _cells(runs).items():
        assert len(per_method) >= 2, (name, cell)
        assert all(len(seeds) >= MIN_PAIRS for seeds in per_method.values()), (name, cell, per_method)
    assert "max_train_time" not in (data.get("recommend") or {})  # budgets read CPU time: max_train_cpu


def test_a_value_the_selection_would_overwrite_is_refused():
    with pytest.raises(ConfigError, match=r"override 'train.lr=1e-4': the selection \(select.protocol=cv\) "
                                          r"chooses train.lr .* select.train.lr=\[...\], or turn selection off "
                                          r"with select=null"):
        main_job(["train.lr=1e-4"])
    with pytest.raises(ConfigError, match="override 'train.lr=1e-4': the selection"):
        load_config(ROOT / "examples" / "demo.yaml", ["train.lr=1e-4"])
    assert main_job(["select=null", "train.lr=1e-4"]).train.lr == 1e-4  # without selection it is used
    assert load_config(None, ["train.lr=1e-4"]).train.lr == 1e-4  # the config defaults select nothing


def test_a_method_list_is_an_axis_of_runs_and_one_method_listed_is_that_method():
    cfg = load_config(None, ["method=[finetune, {name: lora, r: 4}]", "shots=8", "data_seed=[0,1]"])
    runs = cfg.expand()
    assert [(r.method.name, r.data_seed) for r in runs] == [("finetune", 0), ("lora", 0), ("finetune", 1),
                                                          ("lora", 1)]  # split by split, every method on each
    assert runs[1].method_options.r == 4 and not cfg.is_single
    with pytest.raises(ConfigError, match="compares 2 methods"):
        cfg.method_class
    one = load_config(None, ["method=[lora]", "shots=8", "data_seed=0"])
    assert one.run_id() == load_config(None, ["method=lora", "shots=8", "data_seed=0"]).run_id()
    with pytest.raises(ConfigError, match="method lists finetune more than once"):
        load_config(None, ["method=[finetune, finetune]"])
    with pytest.raises(ConfigError, match=r"method lists several methods; give a method's options beside its name"):
        load_config(None, ["method=[finetune, lora]", "method.r=8"])
    with pytest.raises(ConfigError, match="shots=2 per class, but icl needs 4 per class"):
        load_config(None, ["method=[finetune, icl]", "shots=2"])  # each method of the list is checked


def test_tuneoff_run_with_nothing_given_runs_the_main_job_and_ends_with_a_tested_answer(toy_task, tmp_path,
                                                                                         monkeypatch):
    import tuneoff.config

    # the main job, made quick: a tiny model, a few steps, one shot count
    quick = {**MAIN_JOB, "task": str(toy_task), "model": "tiny-bert", "shots": 4, "device": "cpu",
             "train": {**MAIN_JOB["train"], "max_steps": 2}, "forgetting": {"enabled": False}}
    monkeypatch.setattr(tuneoff.config, "MAIN_JOB", quick)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["run"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    runs = 2 * len(MAIN_JOB["data_seed"])
    assert f"{runs} run(s): task={toy_task} model=tiny-bert method=finetune,head → results/" in r.output
    tail = " ".join(r.output[r.output.index("recommendation"):].split())
    assert f"over every run in results/ ({runs})" in tail
    for domain in ("in-domain", "out-of-domain"):
        sentence = tail[tail.index(f"toy, 4 shots per class, {domain} (accuracy): "):]
        sentence = sentence[:sentence.index(". (two-level") if ". (two-level" in sentence else 400]
        assert not any(x in sentence for x in REFUSALS), sentence  # a comparison was tested
    # key=value settings without a file start from the config defaults: one method, no recommendation
    one = CliRunner().invoke(app, ["run", f"task={toy_task}", "model=tiny-bert", "shots=4", "data_seed=0",
                                   "train.max_steps=2", "output_dir=single"])
    assert one.exit_code == 0 and "method=finetune →" in one.output and "recommendation" not in one.output


@pytest.mark.slow
@pytest.mark.embedded
def test_the_real_main_job_decides(tmp_path, monkeypatch):
    """`tuneoff run` as a new user types it (minutes on a laptop CPU): at 32 shots per class full
    fine-tuning is separated from the linear probe in both domains."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["run"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    tail = " ".join(r.output[r.output.index("recommendation"):].split())
    assert not any(x in tail for x in REFUSALS)
    for domain in ("in-domain", "out-of-domain"):
        assert (f"demo, 32 shots per class, {domain} (accuracy): finetune · minilm-l6 is the best that fits"
                in tail), tail
