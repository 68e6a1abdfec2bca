"""Every terminal table keeps its names whole at 80 columns (the default of many terminals and of any
piped or logged output) and at a wide width: `tuneoff ls methods` / `ls models`, `show` (and the
summary a sweep ends with), `recommend`, the dry run's list of runs. Every registered method is
listed (`list_methods()`, so a method added later is checked too), with the long model names of the
embedded models; no figure, verdict or note is cut. Messages wrap between words and never cut a path or
a command they name."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from test_report import make_record, store_with
from tuneoff.budget import Budget
from tuneoff.cli import app
from tuneoff.methods import list_methods
from tuneoff.models import MODEL_DESCRIPTIONS
from tuneoff.report.answer import recommendation_blocks
from tuneoff.report.blocks import Table
from tuneoff.report.frame import to_frame
from tuneoff.report.terminal import NAME, NUMBER, Col, FitTable, say
from tuneoff.summary import summarise, summarise_subsets

WIDTHS = (80, 240)
MODELS = ("smollm2-135m", "minilm-l6")
BOX = re.compile(r"[│┃┏┓┗┛┡┩┣┫┳┻╇╋━─┼└┘┌┐├┤┬┴]")


def methods() -> list[str]:
    return [m.name for m in list_methods()]


def _cli(width: int, *args) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(width)})
    assert res.exit_code == 0, res.output
    return res.output


def _flat(text: str) -> str:
    """The output without box lines, on one line: a wrapped text reads as it was written."""
    return " ".join(BOX.sub(" ", text).split())


def _whole(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None


def _fits(text: str, width: int) -> None:
    too_wide = [line for line in text.splitlines() if cell_len(line) > width]
    assert not too_wide, too_wide[:3]
    cut = [line for line in text.splitlines() if "…" in line.replace("… and", "")]  # rich's mark of a cut cell
    assert not cut, cut[:3]


def _shown(width: int, *args) -> tuple[str, str]:
    """A command's output at `width` (checked to fit it, no cell cut) and its text on one line."""
    out = _cli(width, *args)
    _fits(out, width)
    return out, _flat(out)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Every registered method on both long-named models, 6 splits each (enough for a verdict), a
    HANS-like eval set with subsets; one method clearly best, one at the majority baseline."""
    rng = np.random.default_rng(0)
    recs = []
    for model in MODELS:
        for i, method in enumerate(methods()):
            base = 0.95 if (method, model) == ("pattern", "smollm2-135m") else 0.45 if i == 1 else 0.6 + 0.01 * i
            for ds in range(6):
                a = float(np.clip(base + rng.normal(0, 0.01), 0, 1))
                recs.append(make_record(method, model=model, acc=a, ood=a - 0.1, data_seed=ds,
                                        heuristics=("lexical_overlap", "constituent"),
                                        resources={"params_trainable": 10 ** (3 + i % 6)}))
    return store_with(tmp_path_factory.mktemp("wide"), recs), recs


@pytest.mark.parametrize("width", WIDTHS)
def test_ls_methods_names_every_method_whole(width):
    out = _cli(width, "ls", "methods")
    _fits(out, width)
    for m in list_methods():
        assert _whole(m.name, out), (m.name, out)
    if width == 80:  # one block per method: each description whole, in its words
        flat = _flat(out)
        for m in list_methods():
            assert " ".join(m.description.split()) in flat, m.name


@pytest.mark.parametrize("width", WIDTHS)
def test_ls_models_names_every_model_whole(width):
    out = _cli(width, "ls", "models")
    _fits(out, width)
    for alias in MODEL_DESCRIPTIONS:
        assert _whole(alias, out), alias


@pytest.mark.parametrize("width", WIDTHS)
def test_show_names_every_method_and_model_whole_with_every_score(store, width):
    recs = store[1]
    out, flat = _shown(width, "show", store[0])
    for name in (*methods(), *MODELS):
        assert _whole(name, out), name
    rows = summarise(recs)
    for r in rows:  # each (method, model) and its scores, found under its name
        assert r["score"] in flat
    for r in summarise_subsets(recs):
        assert r["accuracy"] in flat and r["acc | positive"] in flat
    if width == 80:  # the names head the rows they name: once in the results, per eval set in the subsets
        for method in methods():
            for model in MODELS:
                assert out.count(f"{model} · {method}\n") == 1, (model, method)
                assert out.count(f"{model} · {method} · out_of_domain\n") == 1, (model, method)
    flagged = [r for r in rows if r["flag"]]
    assert flagged and all(f"! {r['model']} {r['method']} {r['eval_set']} at 8 shots: {r['flag']}" in flat
                           for r in flagged[:12])  # each flagged row's note, whole, naming its model


def test_results_of_two_tasks_with_their_own_metrics_keep_a_row_to_a_line_at_80_columns():
    # the metric is the task's: it heads each group beside the task, so the rest fits 80 columns
    from tuneoff.summary import print_summary

    recs = [make_record(method, task=task, shots=shots, data_seed=ds, acc=0.5 if method == "pattern" else 0.7 + 0.01 * ds,
                        ood=0.6, majority=0.5) | {"main_metric": metric}
            for task, metric in (("cola", "mcc"), ("demo", "accuracy")) for method in ("finetune", "pattern")
            for shots in (4, 16) for ds in range(5)]
    console = Console(record=True, width=80, file=io.StringIO())
    print_summary(console, recs)
    out = console.export_text()
    _fits(out, 80)
    for task, metric in (("cola", "mcc"), ("demo", "accuracy")):
        for method in ("finetune", "pattern"):
            assert out.count(f"{task} · {method} · {metric}\n") == 1, out
            rows = out.split(f"{task} · {method} · {metric}\n")[1].splitlines()[:4]  # its 2 shots × 2 eval sets
            assert [r.split()[:2] for r in rows] == [["4", "in_domain"], ["4", "out_of_domain"],
                                                     ["16", "in_domain"], ["16", "out_of_domain"]], out
        # a flagged row's note says which task it is of: the eval sets' names are the same in both
        assert f"! {task} pattern in_domain at 4 shots: ≤ majority" in _flat(out), out
    assert "metric:" not in out


@pytest.mark.parametrize("width", WIDTHS)
def test_recommend_keeps_every_candidate_and_verdict(store, width):
    recs = store[1]
    out, flat = _shown(width, "recommend", store[0])
    blocks, answers = recommendation_blocks(to_frame(recs), Budget())
    assert answers and any(a.best for a in answers)
    tables = [b for b in blocks if isinstance(b, Table)]
    for t in tables:
        assert " ".join(t.title.split()) in flat
        for row in t.rows:
            assert _whole(row[0].text, out), row[0].text  # "prompt-tuning · smollm2-135m"
            assert " ".join(row[-1].text.split()) in flat, row[-1].text  # its verdict
            for cell in row[1:-1]:
                assert cell.text in flat, (row[0].text, cell.text)
        assert flat.count(" ".join(t.note.split())) == 1  # the tables share their note: printed once
    assert len(tables) > 1 and len({t.note for t in tables}) == 1
    for a in answers:
        assert " ".join(a.listed.split()) in flat


@pytest.mark.parametrize("width", WIDTHS)
def test_the_dry_run_lists_each_run_whole(toy_task, tmp_path, width):
    cfg = tmp_path / ("a-folder-with-a-long-name-" * 4) / "s.yaml"  # its path alone is wider than 80
    cfg.parent.mkdir()
    names = ["finetune", "prefix-tuning", "prompt-tuning"]
    cfg.write_text(json.dumps({"defaults": {"task": str(toy_task), "shots": [2, 4], "data_seed": [0, 1], "device": "cpu",
                                            "output_dir": str(tmp_path / "res"), "train": {"max_steps": 2}},
                               "grid": {"models": ["tiny-bert", "tiny-llama"]}, "methods": names}))
    out = _cli(width, "sweep", cfg, "--dry-run")
    assert any(line.endswith(f"{cfg}") for line in out.splitlines()), out  # the title "runs of CONFIG", whole
    end = out.index("estimate:")
    table = out[out.rindex(f"{cfg}\n", 0, end) + len(f"{cfg}\n"):end]  # the list of runs, up to the estimate
    _fits(table, width)
    assert sum(table.count(n) for n in names) >= 12  # every run's method, whole
    ids = re.findall(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])", table)
    assert len(ids) == 24
    if width == 80:  # method, task and model head the runs they name; a run is one line, its status in it
        assert all(re.search(rf"{i}\s+to run\s+[24]\s+[01]\s*$", table, re.M) for i in ids), table
        for n in names:
            assert table.count(f"{n} · tiny-bert\n") >= 1 and table.count(f"{n} · tiny-llama\n") >= 1, table
    # the estimate and each group's price wrap between words, a group's lines under its name (they
    # were one long line each, which a terminal folds at any character)
    prices = out[end:].splitlines()
    assert all(cell_len(line) <= width or " " not in line.strip() for line in prices), prices
    groups = [i for i, line in enumerate(prices) if re.match(r"  \S", line)]
    assert len(groups) >= 3, prices
    if width == 80:
        assert all(prices[i + 1].startswith(" " * 4) for i in groups), prices
        assert any(re.match(r" {6}\S", line) for line in prices), prices  # a price's second line, indented


def _render(table: FitTable, width: int) -> str:
    console = Console(record=True, width=width, force_terminal=False, file=io.StringIO())
    table.print(console)
    return console.export_text()


def test_a_table_that_fits_is_one_table_else_grouped_else_blocks():
    cols = [Col("model", NAME, key=True), Col("method", NAME, key=True), Col("shots", NUMBER, justify="right"),
            Col("score", NUMBER), Col("note")]
    rows = [[model, method, str(s), "0.912 ± 0.013", "a note that wraps where it must"]
            for model in MODELS for method in methods() for s in (8, 32)]
    wide = _render(FitTable(cols, rows, title="t"), 200)
    assert "┃ model" in wide and wide.count("smollm2-135m") == len(methods()) * 2  # one table, a name per row
    assert "┃ model" in _render(FitTable(cols, rows, title="t"), 80)  # 79 columns: still one table
    grouped = _render(FitTable(cols, rows, title="t"), 70)
    assert "model" not in grouped.split("\n")[1] and grouped.count("smollm2-135m · prompt-tuning\n") == 1
    _fits(grouped, 70)
    unique = [[f"{r[0]}-{i}", *r[1:]] for i, r in enumerate(rows)]  # no rows share a name: a block per row
    blocks = _render(FitTable(cols, unique, title="t"), 60)
    _fits(blocks, 60)
    assert "shots: 8" in blocks and "score: 0.912 ± 0.013" in blocks and "note:" in blocks
    assert blocks.count("minilm-l6-") == len(rows) // 2


def test_row_styles_captions_and_markup_from_data_survive_every_layout():
    from rich.markup import escape

    cols = [Col("method", NAME, key=True), Col("score", NUMBER), Col("verdict")]
    rows = [[escape("[bold]x[/bold]"), "0.5", "worse than everything on every eval set, by far and away"]] * 3
    for width in (200, 40):
        console = Console(record=True, width=width, force_terminal=True, color_system="standard", file=io.StringIO())
        FitTable(cols, rows, caption="the note", styles=["red", None, None]).print(console)
        text = console.export_text(clear=False)
        assert "[bold]x[/bold]" in text and "the note" in text
        assert "\x1b[31m" in console.export_text(styles=True)  # the flagged row is red
    cols = [Col("method", NAME, key=True), Col("shots", NUMBER), Col("score", NUMBER), Col("verdict")]
    rows = [["finetune", str(s), "0.5", "worse than everything on every eval set, by far and away"] for s in (4, 16)]
    console = Console(record=True, width=40, force_terminal=True, color_system="standard", file=io.StringIO())
    FitTable(cols, rows, styles=["red", None]).print(console)  # grouped: one heading over both rows
    lines = console.export_text(styles=True, clear=False).splitlines()
    assert [line for line in lines if "finetune" in line] == ["\x1b[1mfinetune\x1b[0m"], lines  # not red
    plain = console.export_text().splitlines()
    assert [p.split()[:2] for p, line in zip(plain, lines) if "\x1b[31m" in line][0] == ["4", "0.5"], lines  # its own row is


def test_a_tables_title_and_caption_keep_a_long_path_whole_in_every_layout():
    """A title names a custom task's path, a caption a failed run's error: as rich's table title and
    caption they were cut at the table's width, in pieces as narrow as the table."""
    path = "/data/" + "tasks/" * 12 + "reviews.yaml"  # 90 characters
    cols = [Col("model", NAME, key=True), Col("method", NAME, key=True), Col("score", NUMBER), Col("note")]
    rows = [[model, method, "0.912 ± 0.013", "a note"] for model in MODELS for method in ("finetune", "pattern")]
    unique = [[f"{r[0]}-{i}", *r[1:]] for i, r in enumerate(rows)]
    for table_rows, width, layout in ((rows, 200, "┃ model"), (rows, 40, "smollm2-135m · finetune\n"),
                                      (unique, 40, "smollm2-135m-0 · finetune\n  score: ")):
        out = _render(FitTable(cols, table_rows, title=f"task={path} · accuracy",
                               caption=f"1 failed run(s): 0123: {path} is not a task file"), width)
        assert layout in out, out  # one table, grouped under headings, one block per row
        lines = out.splitlines()
        assert (f"task={path} · accuracy" in lines if width == 200 else f"task={path}" in lines), out
        assert any(line.startswith(path) or f" {path} " in line for line in lines[1:]), out  # the caption's
        assert sum(line.count(path) for line in lines) == 2, out  # never cut into pieces
        assert all(cell_len(line) <= width for line in lines if path not in line), out
    with pytest.raises(TypeError, match="print"):  # not drawn by rich, which cuts them (nor as its repr)
        Console(file=io.StringIO()).print(FitTable(cols, rows, title="t"))


def test_a_message_wraps_between_words_and_keeps_a_long_path_whole():
    """rich's own wrapping cuts a word longer than the line with a newline: a path or a command a
    message names would paste as two. `say` puts such a word whole on a line of its own."""
    from rich.markup import escape

    path = "/data/" + "experiments/" * 8 + "res/results.sqlite"  # 120 characters
    data = f"{path} is damaged [database disk image is malformed]: `tuneoff repair {path}` rebuilds it"
    message = f"[bold red]error:[/] {escape(data)} from the run manifests, and every word wraps"
    console = Console(record=True, width=60, force_terminal=True, color_system="standard", file=io.StringIO())
    say(console, message)
    lines = console.export_text(clear=False).splitlines()
    assert path in lines and f"{path}`" in lines, lines  # whole, each on a line of its own
    assert all(cell_len(line) <= 60 for line in lines if path not in line), lines
    assert " ".join(" ".join(lines).split()) == " ".join(
        f"error: {path} is damaged [database disk image is malformed]: `tuneoff repair {path}` rebuilds it "
        "from the run manifests, and every word wraps".split())  # nothing lost, markup from data kept as text
    assert "\x1b[1;31merror:" in console.export_text(styles=True)  # the markup's style survives
    console = Console(record=True, width=60, file=io.StringIO())
    say(console, escape(f"  {path}/:smile: failed"))  # indented, its first word wider than the line
    say(console, "a\tb\tc\td\te\tf\tg\th\ti")  # tabs are measured as the columns they take
    assert console.export_text().splitlines() == [f"  {path}/:smile:", "failed", (" " * 7).join("abcdefgh"), "i"]


def test_an_error_naming_a_long_path_prints_it_whole(tmp_path):
    cfg = tmp_path / ("a-folder-with-a-long-name-" * 4) / "run.yaml"  # the path alone is wider than 80
    cfg.parent.mkdir()
    cfg.write_text("")
    res = CliRunner().invoke(app, ["run", str(cfg)], env={"COLUMNS": "80"})
    assert res.exit_code == 2 and f"'{cfg}'" in res.output.splitlines(), res.output
