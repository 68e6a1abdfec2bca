"""The Python API (`tuneoff.api`): the examples of docs/api.md, the docstrings' and the notebook
examples/compare.ipynb run as they stand on a tiny model; the command line goes through the same
functions; relative paths in config and sweep files are read from the file's folder; every
command takes -h, and `tuneoff --version` answers."""
from __future__ import annotations

import doctest
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneoff.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
NOTEBOOK = ROOT / "examples" / "compare.ipynb"
TINY = {"model": "tiny-bert", "shots": 4, "data_seed": 0, "train": {"max_steps": 2}, "eval": {"max_examples": 20}}
cli = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a Markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


# -- the examples ------------------------------------------------------------------------------------

def test_the_examples_of_the_api_page_run_in_order(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(DOC.read_text())
    run = [b for b in blocks if not b.startswith("# not run")]
    assert len(run) >= 7 and len(blocks) - len(run) <= 2, "the page's examples are run, not only shown"
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__main__"}
    for i, block in enumerate(run):
        exec(compile(block, f"{DOC.name} block {i}", "exec"), ns)
    out = capsys.readouterr().out
    # what the page says each block prints, where it is the same on every machine
    assert "Results('results/first': 2 done)" in out and "['done', 'done']" in out and "{'done': 4}" in out
    assert "Results('results/compare': 10 done)" in out
    assert "unknown config key 'train.lrr' (did you mean 'train.lr'?)" in out
    assert ns["res"].counts() == {"done": 10} and len(ns["rec"].answers) == 2  # in- and out-of-domain
    assert (tmp_path / "in_vs_out.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "report" / "report.html").is_file() and (tmp_path / "results/compare/runs.csv").is_file()
    assert {"html", "md", "csv"} <= set(ns["paths"])


def test_the_docstring_examples_of_the_api_run(tmp_path, monkeypatch):
    """Each example of run, sweep, plan and load, in that order, on one folder."""
    import tuneoff.api as api

    monkeypatch.chdir(tmp_path)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for name in ("run", "sweep", "plan", "load"):
        for test in finder.find(getattr(api, name), f"tuneoff.api.{name}", globs={"folder": str(tmp_path / "res"),
                                                                                   **vars(api)}):
            ran += len(test.examples)
            runner.run(test)
    assert ran >= 8 and runner.failures == 0


def test_the_notebook_runs_cell_by_cell_on_a_tiny_model(tmp_path):
    """The code cells of examples/compare.ipynb, in order, in one namespace, in a fresh process,
    with the settings its first cell reads from the environment made tiny."""
    nb = json.loads(NOTEBOOK.read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 8 and all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    script = tmp_path / "cells.py"
    script.write_text("import json, sys\nns = {'__name__': '__main__'}\n"
                      f"for i, src in enumerate(json.loads({json.dumps(json.dumps(cells))})):\n"
                      "    exec(compile(src, f'cell {i}', 'exec'), ns)\n"
                      "print(repr(ns['res']), sorted(ns['paths']))\n")
    settings = {"data_seed": [0, 1], "train": {"max_steps": 2}, "eval": {"max_examples": 20}, "select": None}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TUNEOFF_EXAMPLE_MODEL": "tiny-bert",
           "TUNEOFF_EXAMPLE_OUT": str(tmp_path / "out"), "TUNEOFF_EXAMPLE_SETTINGS": json.dumps(settings)}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Results({str(tmp_path / 'out')!r}: 6 done)" in proc.stdout  # 3 methods x 2 splits
    assert "'csv', 'figures', 'html', 'md'" in proc.stdout and (tmp_path / "out" / "report.html").is_file()


# -- one path ---------------------------------------------------------------------------------------

def test_the_command_line_and_the_api_take_the_same_path(toy_task, tmp_path, monkeypatch):
    """`tuneoff run` and `tuneoff.api.run` both plan with `experiment.prepare_run` and run with
    `Experiment.run`; `tuneoff show` reads the folder through `Results`. Drawn: the command line's
    display in both, or nothing with progress=False."""
    from rich.console import Console

    from tuneoff import api, experiment, results

    calls = []
    real_prepare, real_run, real_open = experiment.prepare_run, experiment.Experiment.run, results.Results.open
    monkeypatch.setattr(experiment, "prepare_run", lambda *a, **k: calls.append("prepare") or real_prepare(*a, **k))
    monkeypatch.setattr(api, "prepare_run", experiment.prepare_run)
    monkeypatch.setattr(experiment.Experiment, "run",
                        lambda self, front=None, **k: calls.append(type(front).__name__) or real_run(self, front, **k))
    monkeypatch.setattr(results.Results, "open", classmethod(lambda cls, f: calls.append("open") or real_open(f)))
    out = tmp_path / "res"
    r = cli.invoke(app, ["run", f"task={toy_task}", "model=tiny-bert", "shots=4", "data_seed=0",
                         "train.max_steps=2", f"output_dir={out}"])
    assert r.exit_code == 0 and "1 run(s)" in r.output, r.output
    console = Console(record=True, width=200)
    res = api.run(task=str(toy_task), model="tiny-bert", shots=4, data_seed=[0, 1], train={"max_steps": 2},
                  output_dir=str(out), console=console)
    assert calls == ["prepare", "Shown", "prepare", "Shown"]
    drawn = console.export_text()
    assert "[1/2] shots=4 data_seed=0 seed=0: skipped (done)" in drawn and "[2/2] shots=4 data_seed=1 seed=0: done" in drawn
    assert [r.status for r in res.planned] == ["done", "done"] and res.counts() == {"done": 2}
    assert res.written["summary.md"].is_file()
    quiet = api.run(task=str(toy_task), model="tiny-bert", shots=4, data_seed=[0, 1], train={"max_steps": 2},
                    output_dir=str(out), progress=False)
    assert calls[-1] == "Front" and len(quiet.planned) == 2
    shown = cli.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and calls[-1] == "open" and "runs: 2 done" in shown.output
    table = api.load(out).table()  # the table `show` printed, as a DataFrame: one row per eval set
    assert table["eval_set"].tolist() == ["test", "shifted"] and table["runs"].tolist() == [2, 2]


def test_a_stop_signal_keeps_what_finished_in_the_api_and_on_the_command_line(toy_task, tmp_path, monkeypatch):
    from tuneoff import api, plan
    from tuneoff.signals import Stopped

    def stopped(*a, **k):
        raise Stopped(signal.SIGINT)

    monkeypatch.setattr(plan, "run_plan", stopped)
    args = {"task": str(toy_task), **TINY, "output_dir": str(tmp_path / "res")}
    with pytest.raises(api.Interrupted) as e:
        api.run(**args, progress=False)
    assert str(e.value).startswith(f"stopped by SIGINT: 0 of 1 run(s) finished and kept in {tmp_path / 'res'}/")
    r = cli.invoke(app, ["run", *(f"{k}={json.dumps(v)}" for k, v in args.items())])
    assert r.exit_code == 130 and "run the same command again to resume" in r.output


def test_keyword_settings_read_as_the_command_lines_overrides():
    from tuneoff.config import parse_override
    from tuneoff.experiment import as_overrides

    settings = {"train": {"lr": 1e-5, "max_steps": 3}, "method": {"name": "lora", "r": 8}, "shots": [4, 8],
                "task": "demo", "select": None, "pattern": "it's: {x}", "save": True}
    items = as_overrides(settings)
    assert items[:3] == ["train.lr=1.0e-05", "train.max_steps=3", "method={name: lora, r: 8}"]
    parsed = dict((".".join(k), v) for k, v in map(parse_override, items))
    assert parsed == {"train.lr": 1e-5, "train.max_steps": 3, "method": {"name": "lora", "r": 8}, "shots": [4, 8],
                      "task": "demo", "select": None, "pattern": "it's: {x}", "save": True}


def test_results_of_records_and_a_recommendation_that_shows_text_literally():
    """Names from a task file reach a notebook as text, never as Markdown or HTML."""
    from test_claim_flags import _rec

    from tuneoff.results import Results, counts_text

    name = "toy <b>x</b> | *y*"
    recs = [_rec(m, data_seed=i, acc=a + 0.01 * i, task=name) for m, a in (("lora", 0.8), ("head", 0.6))
            for i in range(5)]
    res = Results(records=recs)
    assert repr(res) == "Results(records: 10 done)" and counts_text({"failed": 1, "done": 3}) == "3 done, 1 failed"
    assert res.table()["task"].tolist() == [name, name] and len(res.runs()) == 10
    rec = res.recommend(margin=0.02)
    md = rec._repr_markdown_()
    assert "<b>" not in md and "&lt;b&gt;" in md and r"\*y\*" in md and r"\|" in md
    assert rec.answers[0].best == "lora · tiny" and "lora · tiny" in str(rec) and name in str(rec)
    assert set(rec.table()["candidate"]) == {"lora · tiny", "head · tiny"}


def test_import_tuneoff_loads_nothing_until_the_api_is_used():
    code = ("import sys, tuneoff; print(sorted(m for m in ('torch', 'pandas', 'tuneoff.api') if m in sys.modules)); "
            "print(tuneoff.run is __import__('tuneoff.api').api.run, tuneoff.Results.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split("\n")[:2] == ["[]", "True Results"], out.stderr


# -- paths in config and sweep files ------------------------------------------------------------------

@pytest.fixture
def nested(toy_task, tmp_path, monkeypatch):
    """A sweep file in sweeps/ naming its task file beside it by a relative path; the command runs
    from tmp_path."""
    folder = tmp_path / "sweeps"
    (folder / "task").mkdir(parents=True)
    for f in toy_task.parent.glob("*.*"):
        if f.is_file():
            (folder / "task" / f.name).write_bytes(f.read_bytes())
    (folder / "text.txt").write_text("some general text to measure forgetting on. " * 20)
    sweep = folder / "s.yaml"
    sweep.write_text("defaults: {task: task/toy.yaml, model: tiny-bert, shots: 4, data_seed: 0, output_dir: out,\n"
                     "           forgetting: {text: text.txt}}\nmethods: [head]\n")
    monkeypatch.chdir(tmp_path)
    return sweep


def test_a_sweep_files_paths_are_read_from_its_folder(nested, tmp_path):
    from tuneoff.sweep import load_sweep

    (run,) = load_sweep("sweeps/s.yaml").runs
    assert (run.task, run.forgetting.text) == ("sweeps/task/toy.yaml", "sweeps/text.txt")
    assert run.output_dir == "out"  # where results go: the current folder's
    res = cli.invoke(app, ["sweep", "sweeps/s.yaml", "--dry-run"])
    assert res.exit_code == 0 and "1 run(s) → out/" in _flat(res.output), res.output
    os.chdir(nested.parent)  # from the file's own folder the path is as written: run ids as before
    (same,) = load_sweep("s.yaml").runs
    assert same.task == "task/toy.yaml"
    assert same.run_id() == load_sweep("s.yaml", ["defaults.task=task/toy.yaml"]).runs[0].run_id()


def test_a_missing_path_in_a_file_says_where_it_was_looked_for(nested, tmp_path):
    nested.write_text(nested.read_text().replace("task/toy.yaml", "sweeps/task/toy.yaml"))
    res = cli.invoke(app, ["sweep", "sweeps/s.yaml", "--dry-run"])
    where = tmp_path / "sweeps" / "sweeps" / "task" / "toy.yaml"
    text = "".join(res.output.split())  # a long path wraps anywhere on the terminal
    assert res.exit_code == 2 and f"task'sweeps/task/toy.yaml':nofileat{where}" in text, res.output
    assert f"readfromthefile'sfolder,{tmp_path / 'sweeps'})" in text
    assert "isthererelativetothecurrentfolder:writeitrelativetothefile('task/toy.yaml')" in text
    config = tmp_path / "sweeps" / "run.yaml"
    config.write_text("task: task/toy.yaml\ndata_dir: nowhere\n")
    res = cli.invoke(app, ["validate", str(config)])
    where = tmp_path / "sweeps" / "nowhere"
    assert res.exit_code == 2 and f"data_dir'nowhere':nofolderat{where}" in "".join(res.output.split()), res.output


def test_a_run_config_files_paths_are_read_from_its_folder(nested, tmp_path):
    from tuneoff.config import load_config

    config = tmp_path / "sweeps" / "run.yaml"
    config.write_text("task: task/toy.yaml\nmodel: tiny-bert\ndata_dir: task\n")
    cfg = load_config(config, ["output_dir=elsewhere"])
    assert (cfg.task, cfg.data_dir, cfg.output_dir) == ("sweeps/task/toy.yaml", "sweeps/task", "elsewhere")
    assert load_config(None, ["task=sweeps/task/toy.yaml"]).task == "sweeps/task/toy.yaml"  # typed: as given


# -- the command line's rough edges ----------------------------------------------------------------------

def test_every_command_takes_h_and_the_tool_says_its_version():
    import typer

    from tuneoff import __version__

    names = [c.name for c in typer.main.get_command(app).commands.values()]
    assert {"run", "sweep", "show", "recommend", "report", "validate", "ls"} <= set(names)
    for args in [["-h"], *([name, "-h"] for name in names)]:
        r = cli.invoke(app, args)
        assert r.exit_code == 0 and "Usage:" in r.output and "--help" in r.output, (args, r.output)
    r = cli.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"tuneoff {__version__}"


def test_the_command_list_gives_each_command_one_line_where_it_fits():
    # typer's command list keeps a docstring's line breaks: a long docstring came out broken mid-line
    import typer

    names = [c.name for c in typer.main.get_command(app).commands.values()]
    out = cli.invoke(app, ["-h"], env={"COLUMNS": "200"}).output
    rows = [line.strip("│ ").rstrip(" │") for line in out.split("Commands")[1].splitlines()[1:]]
    rows = [row for row in rows if row and not row.startswith("╰")]
    assert [row.split()[0] for row in rows] == names, out
