"""`tuneoff sweep --until-decided`: data seeds are added only to the cells whose answer is not
decided, every run of such a cell at once, and no cell goes past the maximum."""
from tuneoff import decide
from tuneoff.config import load_config


def runs_of(*extra):
    return load_config(None, ["task=demo", "model=tiny-bert", "train.max_steps=2", "shots=[4,8]",
                              "data_seed=[0,1]", *extra]).expand()


def test_seeds_go_only_to_undecided_cells_and_stop_at_the_maximum(tmp_path):
    runs = runs_of() + runs_of("method=head")
    made = []
    # shots=4 is decided from the start; shots=8 never is
    states = lambda: {("demo", 4): True, ("demo", 8): False}  # noqa: E731
    final = decide.until_decided(runs, states, made.extend, tmp_path, max_seeds=4)
    assert {(r.shots, r.data_seed) for r in made} == {(8, 2), (8, 3)}
    assert sorted(r.method.name for r in made if r.data_seed == 2) == ["finetune", "head"]  # the cell's runs, paired
    assert len(final) == len(runs) + 4
    rounds = decide.read_log(tmp_path)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    lines = decide.cell_lines(rounds)
    assert lines[("demo", 4)] == "decided at 2 split(s)"
    assert lines[("demo", 8)] == "not decided at 4 split(s), the most allowed"


def test_a_cell_decided_after_an_added_seed_stops_getting_more(tmp_path):
    runs = runs_of("shots=4")
    made = []
    decide.until_decided(runs, lambda: {("demo", 4): bool(made)}, made.extend, tmp_path, max_seeds=10)
    assert [r.data_seed for r in made] == [2]
    assert decide.cell_lines(decide.read_log(tmp_path))[("demo", 4)] == "decided at 3 split(s), after adding seed(s) 2"


def test_a_cell_more_seeds_cannot_decide_gets_none(tmp_path):
    made = []
    decide.until_decided(runs_of("shots=4"), lambda: {("demo", 4): None}, made.extend, tmp_path, max_seeds=10)
    assert made == []
    assert "more splits cannot decide it" in decide.cell_lines(decide.read_log(tmp_path))[("demo", 4)]


def test_the_most_the_rounds_may_add_is_what_they_add_when_nothing_is_decided(tmp_path):
    runs = runs_of() + runs_of("method=head")
    made = []
    decide.until_decided(runs, lambda: {("demo", 4): False, ("demo", 8): False}, made.extend, tmp_path, max_seeds=4)
    bound = decide.most_added(runs, max_seeds=4)
    assert sorted(r.run_id() for r in bound) == sorted(r.run_id() for r in made) and len(made) == 8
    assert decide.most_added(runs, max_seeds=2) == []


def test_the_cli_adds_seeds_until_decided_on_tiny_models(tmp_path):
    """End to end on a two-method sweep of 2 splits: tiny random models decide nothing, so every cell
    gets seeds up to the maximum, and the log says why."""
    from typer.testing import CliRunner

    from tuneoff.cli import app

    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"defaults: {{task: demo, model: tiny-bert, shots: 4, data_seed: [0, 1], output_dir: {tmp_path}/out,"
                     " train: {max_steps: 1}, eval: {max_examples: 8}}\nmethods: [finetune, head]\n")
    dry = CliRunner().invoke(app, ["sweep", str(sweep), "--dry-run", "--until-decided", "--max-seeds", "3"])
    assert dry.exit_code == 0, dry.output
    assert "--until-decided: at most 2 more run(s), if none of the 1 (task, shots) cell(s) below 3 splits" in \
        " ".join(dry.output.split())
    res = CliRunner().invoke(app, ["sweep", str(sweep), "--until-decided", "--max-seeds", "3"])
    assert res.exit_code == 0, res.output
    again = CliRunner().invoke(app, ["sweep", str(sweep), "--dry-run", "--until-decided", "--max-seeds", "3"])
    assert "--until-decided: no run to add: every cell holds --max-seeds 3 splits" in " ".join(again.output.split())
    rounds = decide.read_log(tmp_path / "out")
    assert rounds[0]["cells"][0]["added"] == [2] and rounds[-1]["cells"][0]["splits"] == 3
    from tuneoff.store import Store
    assert sorted({r.data_seed for r in Store(tmp_path / "out").records()}) == [0, 1, 2]
    rep = CliRunner().invoke(app, ["report", str(tmp_path / "out")])
    assert rep.exit_code == 0, rep.output
    assert "demo at 4 shots: not decided at 3 split(s), the most allowed" in (tmp_path / "out" / "report.md").read_text()
