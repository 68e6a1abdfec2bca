"""Names from a task file that a spreadsheet or a terminal would act on: a formula (`=cmd|...`,
`+HYPERLINK(...)`, `@SUM(...)`) is text in every CSV tuneoff writes, and an escape sequence
(`ESC [2J` clears the screen) never reaches the terminal, on a real run of the tiny random LM."""
from __future__ import annotations

import csv

import pytest
import yaml

from conftest import write_jsonl
from test_faults import _cli, _flat
from tuneoff.escape import csv_cell, term

# where a name comes from -> a formula a spreadsheet would run
FORMULAS = [
    ("task", "=cmd|' /C calc'!A0"),
    ("eval set", '+HYPERLINK("http://evil.example/x","open me")'),
    ("pattern", "@SUM(1+1)*cmd|' /C calc'!A0"),
]
# where a name comes from -> an escape sequence behind it (clear the screen, turn the text red)
ESCAPES = [("task", "\x1b[2J"), ("pattern", "\x1b[31m")]


def _names() -> dict[str, str]:
    names = dict(FORMULAS)
    for where, seq in ESCAPES:
        names[where] += seq
    return names


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    """A task file with those names, one run of it (CLI output kept), its summary and runs.csv."""
    folder = tmp_path_factory.mktemp("injected")
    rows = [{"text": f"the cake was {'good' if i % 2 else 'bad'}", "label": i % 2} for i in range(40)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "test.jsonl", rows[:10])
    names = _names()
    task = {"name": names["task"], "text_fields": ["text"], "label_names": ["negative", "positive"],
            "train": "train.jsonl", "eval": [{"name": names["eval set"], "path": "test.jsonl"}],
            "patterns": {names["pattern"]: {"template": "{text} It was",
                                            "verbalizer": {"negative": " bad", "positive": " good"}}}}
    (folder / "task.yaml").write_text(yaml.safe_dump(task))
    out = folder / "res"
    run = _cli("run", f"task={folder / 'task.yaml'}", "model=tiny-llama", "method=pattern", "shots=2",
               "train.max_steps=2", "eval.max_examples=10", "data_seed=0", "seed=0", f"output_dir={out}")
    assert run.exit_code == 0, run.output
    report = _cli("report", out, "-o", out / "report.html")
    assert report.exit_code == 0, report.output
    return folder, run.output


def _cells(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("where, formula", FORMULAS)
def test_a_formula_in_a_name_is_text_in_every_csv(injected, where, formula):
    folder, _ = injected
    name = _names()[where]
    column = {"task": "task", "eval set": "eval_set", "pattern": "pattern"}[where]
    files = ["runs.csv"] + (["summary.csv"] if where != "pattern" else [])  # the summary has no pattern column
    for file in files:
        rows = _cells(folder / "res" / file)
        assert rows and all(r[column] == "'" + name for r in rows), (file, [r[column] for r in rows])
        for row in rows:  # no cell of any column starts a formula; numbers stay numbers
            for value in row.values():
                assert not value.startswith(("=", "+", "@")), (file, value)
                assert not value.startswith("-") or csv_cell(value) == value, (file, value)


def test_numbers_and_mean_std_cells_are_left_as_they_are():
    for value in ("-0.024", "-0.024 ± 0.059", "+1", "1e-05", -3, 0.5, None, "", "–"):
        assert csv_cell(value) == value
    for value in ("-", "-1+1", "=1", "@x", "\tx", "\rx", "- 0.5"):
        assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("where, sequence", ESCAPES)
def test_an_escape_sequence_in_a_name_never_reaches_the_terminal(injected, where, sequence):
    folder, run_output = injected
    shown = _cli("show", folder / "res")
    refused = _cli("validate", f"task={folder / 'task.yaml'}", "model=tiny-llama", "method=pattern", "pattern=nope")
    assert shown.exit_code == 0 and refused.exit_code == 2, (shown.output, refused.output)
    for output in (run_output, shown.output, refused.output):
        assert sequence not in output and "\x1b" not in output, repr(output)
    clean = dict(FORMULAS)[where]
    shown_names = {"task": _flat(run_output) + _flat(shown.output), "pattern": _flat(refused.output)}[where]
    assert clean in shown_names  # the name itself is shown, without its escape sequence
    if where == "pattern":
        assert f"has no pattern 'nope'; it has: {clean}" in _flat(refused.output)


def test_term_strips_every_control_sequence_and_keeps_newlines_and_tabs():
    nasty = "a\x1b[2Jb\x1b]0;title\x07c\x1bcd\x9b31me\x07f\x00g\x7fh\r\ti\nj[bold]k"
    assert term(nasty) == "abcdefgh\ti\nj\\[bold]k"
