"""The CLI end to end on a tiny model."""
import json
import re

from typer.testing import CliRunner

from tuneoff.cli import app

runner = CliRunner()


def _args(toy_task, out):
    return [f"task={toy_task}", "model=tiny-bert", "shots=[4,8]", "data_seed=[0,1]", "train.max_steps=3",
            f"output_dir={out}"]


def test_run_show_and_rerun_skips(toy_task, tmp_path):
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", *_args(toy_task, out)])
    assert r.exit_code == 0, r.output
    assert "4 run(s)" in r.output and r.output.count(": done") == 4
    flat = " ".join(r.output.split())
    assert flat.count("— accuracy: test ") == 4 and flat.count(", shifted ") >= 4  # each run's scores as it ends
    assert flat.count("; about ") == 3  # "(2s); about 6s left" after each run but the last
    assert (out / "results.sqlite").is_file() and (out / "summary.md").is_file()
    md = (out / "summary.md").read_text()
    assert "| toy | tiny-bert | finetune |  | 4 | test | in | accuracy |" in md
    assert "shifted | out" in md  # the out-of-domain set is reported beside in-domain
    manifests = list((out / "runs").glob("*/manifest.json"))
    assert len(manifests) == 4 and json.loads(manifests[0].read_text())["status"] == "done"
    again = runner.invoke(app, ["run", *_args(toy_task, out)])
    assert again.output.count("skipped (done)") == 4
    failing = runner.invoke(app, ["run", *_args(toy_task, out)[:2], "shots=999", "data_seed=0",
                                  "train.max_steps=3", f"output_dir={out}"])
    assert failing.exit_code == 1 and "no run finished" in failing.output and "use shots <= 30" in failing.output
    md = (out / "summary.md").read_text()  # the folder's summary still holds the 4 runs that finished
    assert md.count("| toy | tiny-bert | finetune |") == 4
    assert "## Failed runs (1)" in md and "shots=999 data_seed=0 seed=0: DataError: shots=999 per class" in md
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "runs: 4 done, 1 failed" in shown.output
    rep = runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "rep" / "r.html")])
    assert rep.exit_code == 0, rep.output
    html = (tmp_path / "rep" / "r.html").read_text()
    assert "Leaderboard" in html and "tiny-bert" in html and (tmp_path / "rep" / "r.md").is_file()
    # a Markdown path: the Markdown there and the HTML beside it, not one written over the other
    rep = runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "m" / "r.md")])
    assert rep.exit_code == 0, rep.output
    assert (tmp_path / "m" / "r.md").read_text().startswith("# tuneoff report")
    assert (tmp_path / "m" / "r.html").read_text().lstrip().lower().startswith("<!doctype html")
    both = runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "x.html"), "--md", str(tmp_path / "x.html")])
    assert both.exit_code != 0 and "would both be written to" in both.output and not (tmp_path / "x.html").exists()
    assert len((out / "runs.csv").read_text().splitlines()) > 4


def test_run_skips_through_the_plan_one_rule_with_the_sweep(toy_task, tmp_path, monkeypatch):
    """`tuneoff run` makes a plan of its runs and runs it on the sweep's driver: done runs are
    skipped (not claimed, not computed), a failed run is run again, --force reruns done runs, and
    a done run that now asks for its weights (save=true) runs again once."""
    from tuneoff import claims, plan
    from tuneoff.store import Store

    out = tmp_path / "res"
    args = [f"task={toy_task}", "model=tiny-bert", "shots=4", "data_seed=[0,1]", "train.max_steps=2",
            f"output_dir={out}"]
    plans = []
    real = plan.run_plan
    monkeypatch.setattr(plan, "run_plan", lambda p, *a, **k: plans.append(p) or real(p, *a, **k))
    assert runner.invoke(app, ["run", *args]).exit_code == 0
    again = runner.invoke(app, ["run", *args])
    assert again.exit_code == 0 and again.output.count("skipped (done)") == 2, again.output
    assert [len(p.todo) for p in plans] == [2, 0] and len(plans[1].done) == 2
    store = Store(out)
    assert sorted(claims.attempt_counts(store).values(), key=str) == [{"done": 1}] * 2  # nothing claimed again
    failing = [*args[:2], "shots=999", "data_seed=0", f"output_dir={out}"]
    assert runner.invoke(app, ["run", *failing]).exit_code == 1
    rerun = runner.invoke(app, ["run", *failing])  # failed: run again (a sweep needs --retry-failed)
    assert rerun.exit_code == 1 and "skipped" not in rerun.output and plans[-1].retry_failed
    forced = runner.invoke(app, ["run", *args, "--force"])
    assert forced.exit_code == 0 and forced.output.count(": done") == 2 and "skipped" not in forced.output
    saved = runner.invoke(app, ["run", *args[:-1], "data_seed=0", "save=true", f"output_dir={out}"])
    assert saved.exit_code == 0 and ": done" in saved.output and "skipped" not in saved.output
    assert runner.invoke(app, ["run", *args[:-1], "data_seed=0", "save=true", f"output_dir={out}"]).output.count(
        "skipped (done)") == 1  # its weights are there now
    counts = claims.attempt_counts(store)
    assert sorted(c.get("done", 0) + c.get("failed", 0) for c in counts.values()) == [2, 2, 3]


def test_a_custom_task_file_s_main_metric_is_the_report_s(toy_task, tmp_path):
    """The report reads the metric each record was judged by: a task file naming mcc is ranked by
    mcc (its name is no registered task the report could ask)."""
    toy_task.write_text(toy_task.read_text() + "main_metric: mcc\n")
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", f"task={toy_task}", "model=tiny-bert", "shots=4", "data_seed=[0,1]",
                            "train.max_steps=2", f"output_dir={out}"])
    assert r.exit_code == 0 and " ".join(r.output.split()).count("— mcc: test ") == 2, r.output
    assert "| toy | tiny-bert | finetune |  | 4 | test | in | mcc |" in (out / "summary.md").read_text()
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    md = (out / "report.md").read_text()
    assert "Main metric per task: toy: mcc." in md and "toy · tiny-bert — mcc" in md
    assert "toy · tiny-bert — secondary metric: accuracy" in md


def test_config_file_plus_overrides_and_validate(toy_task, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"task: {toy_task}\nmodel: tiny-bert\nshots: 4\ndata_seed: 0\ntrain:\n  max_steps: 2\n")
    r = runner.invoke(app, ["validate", str(cfg), "seed=[0,1]"])
    assert r.exit_code == 0 and "2 run(s)" in r.output


def test_validate_checks_a_sweep_config_s_runs_without_opening_its_folder(toy_task, tmp_path):
    out = tmp_path / "res"
    cfg = tmp_path / "s.yaml"
    cfg.write_text(json.dumps({"defaults": {"task": str(toy_task), "model": "tiny-bert", "shots": [2, 4],
                                            "data_seed": [0, 1], "output_dir": str(out), "select": {"protocol": "cv"}},
                               "methods": ["finetune", {"name": "lora", "r": 4}]}))
    r = runner.invoke(app, ["validate", str(cfg)], terminal_width=200)
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and f"valid: sweep {cfg}: 8 run(s) → {out}/; varying: shots, data_seed" in text, text
    assert "finetune: selection (" in text and "lora: selection (" in text  # each method's search, once
    # a run of it that cannot run: the error a sweep would stop with before its first run, the run named
    for args, msg in [(["defaults.shots=0"], "sweep run (method finetune): config key 'shots': shots must be >= 1"),
                      (["methods=[nosuch]"], "unknown method 'nosuch'"),
                      (["eval.sets=[nope]"], f"task '{toy_task.stem}' has no eval set 'nope'")]:
        r = runner.invoke(app, ["validate", str(cfg), *args])
        assert r.exit_code == 2 and msg in " ".join(r.output.split()), (args, r.output)
    assert not out.exists()  # nothing created


def test_bad_input_exits_with_a_clear_message(tmp_path):
    r = runner.invoke(app, ["run", "task=nope", f"output_dir={tmp_path}"])
    assert r.exit_code == 2 and "unknown task 'nope'" in r.output
    r = runner.invoke(app, ["run", "train.lrr=1"])
    assert r.exit_code == 2 and "unknown config key 'train.lrr'" in r.output
    r = runner.invoke(app, ["run", "model=/does/not/exist", "shots=2", "data_seed=0", f"output_dir={tmp_path}"])
    assert r.exit_code == 2 and "model path '/does/not/exist' does not exist" in " ".join(r.output.split())
    r = runner.invoke(app, ["show", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no results" in r.output


def test_progress_is_plain_lines_when_the_output_is_not_a_terminal(toy_task, tmp_path, monkeypatch):
    from tuneoff.cli import display

    monkeypatch.setattr(display, "LINE_EVERY_S", 0.0)  # a line for every update after a phase's first
    r = runner.invoke(app, ["run", f"task={toy_task}", "model=tiny-bert", "shots=4", "data_seed=0",
                            "train.max_steps=3", "train.batch_size=2", f"output_dir={tmp_path}"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    for phase in ("load data toy", "load model tiny-bert", "set up finetune"):  # set-up phases, each announced
        assert f"  {phase} …" in lines, phase
    assert "  train: 1/3" in lines
    assert any(re.fullmatch(r"  train: 2/3, \d+s elapsed, about \d+s left, loss \d\.\d{4}", ln) for ln in lines)
    assert any(ln.startswith("  train: 3/3 done in ") and ", loss " in ln for ln in lines)
    assert any(ln.startswith("  eval test: ") for ln in lines)
    assert "\x1b[" not in r.output  # no terminal control codes in a log


def test_peft_gradient_checkpointing_warning_does_not_reach_cli_users():
    import warnings

    from transformers import BertConfig, BertModel

    from tuneoff.cli import quiet_libraries

    model = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                 intermediate_size=8))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.is_gradient_checkpointing  # noqa: B018 - what peft reads
        assert any("is_gradient_checkpointing" in str(w.message) for w in seen)  # the library does warn
        seen.clear()
        quiet_libraries()
        model.is_gradient_checkpointing  # noqa: B018
    assert not [w for w in seen if "is_gradient_checkpointing" in str(w.message)]


def test_a_task_file_given_as_the_config_says_to_write_task_equals(toy_task, tmp_path):
    for cmd in (["run", str(toy_task)], ["run", str(toy_task), "eval.max_examples=10"],
                ["validate", str(toy_task)], ["sweep", str(toy_task), "--dry-run"]):
        r = runner.invoke(app, cmd)
        text = " ".join(r.output.split())
        assert r.exit_code == 2, cmd
        assert "is a task file" in text and f"task={toy_task}" in text, text
        assert "unknown config key" not in text and "is not a section" not in text
    assert not (tmp_path / "results.sqlite").exists()


def test_a_run_config_given_to_sweep_says_to_run_it_with_run(toy_task, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"task: {toy_task}\nmodel: tiny-bert\nshots: [2, 4]\ndata_seed: 0\nmethod: lora\n"
                   f"output_dir: {tmp_path / 'res'}\n")
    r = runner.invoke(app, ["sweep", str(cfg), "--dry-run"])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and f"{str(cfg)!r} is a run config (it has 'task', 'model', 'shots', 'data_seed', ...)" in text
    assert f"run it with `tuneoff run {cfg}`" in text and "unknown sweep key" not in text, text  # one error, not one per key
    assert not (tmp_path / "res").exists()


def test_what_would_fail_every_run_is_an_error_before_any_run(tmp_path):
    out = tmp_path / "res"
    toy_file = tmp_path / "not-a-folder"
    toy_file.write_text("x")
    for args, msg in [(["eval.sets=[tset]"], "task 'demo' has no eval set 'tset'; it has: in_domain, out_of_domain"),
                      (["pattern=nope"], "task 'demo' has no pattern 'nope'; it has: minimal, gpt3, eval-harness"),
                      ([f"data_dir={tmp_path / 'absent'}"], "is not a folder"),
                      ([f"model={tmp_path}"], "could not read its config"),  # a folder with no model in it
                      (["model=nobody/no-such-model"], "Offline, use an embedded model (minilm-l6, smollm2-135m)"),
                      ([f"output_dir={toy_file}"], "is a file; give a folder")]:
        for cmd in ("run", "validate"):
            r = runner.invoke(app, [cmd, f"output_dir={out}", *args])
            assert r.exit_code == 2 and msg in " ".join(r.output.split()), r.output
    assert not out.exists()  # nothing was started


def test_ls_lists_registries():
    tasks = " ".join(runner.invoke(app, ["ls", "tasks"]).output.split())
    assert "mnli-3way" in tasks and "hans (out, per heuristic and label)" in tasks
    assert "validation_mismatched (in, if present)" in tasks and "data_dir=FOLDER with mnli/, hans/" in tasks
    methods = " ".join(runner.invoke(app, ["ls", "methods"], terminal_width=200).output.split())
    assert "finetune" in methods
    # each method's search space beside its options: finetune's rate range and length, rslora's rank
    assert "train.lr: log 3.33e-06..0.0003, limits 1e-08..0.01; length: epochs 0.333, 1, 3, 9 (limit 81)" in methods
    assert "method.r: log-int 4..64, limits 1..256" in methods
    out = runner.invoke(app, ["ls", "models"]).output
    assert "smollm2-135m" in out and "minilm-l6" in out
    assert runner.invoke(app, ["ls", "things"]).exit_code == 2


def test_selection_from_the_command_line(toy_task, tmp_path):
    out = tmp_path / "sel"
    v = runner.invoke(app, ["validate", f"task={toy_task}", "model=tiny-bert", "method=lora", "shots=4",
                            "select.protocol=cv", "select.search=grid", "select.method.r=[2,4]"])
    assert v.exit_code == 0, v.output
    assert "6 candidate(s) on 2-fold cv" in " ".join(v.output.split())
    bad = runner.invoke(app, ["run", f"task={toy_task}", "model=tiny-bert", "shots=1", "select.protocol=cv", "select.search=grid",
                              f"output_dir={out}"])
    assert bad.exit_code == 2 and "select.protocol=dev", "select.search=grid" in " ".join(bad.output.split())
    assert not out.exists()  # refused before any run
    r = runner.invoke(app, ["run", f"task={toy_task}", "model=tiny-bert", "method=head", "shots=4", "data_seed=0",
                            "train.max_steps=2", "select.protocol=cv", "select.search=grid", f"output_dir={out}"])
    assert r.exit_code == 0, r.output
    assert "; chose train.lr=" in " ".join(r.output.split())
