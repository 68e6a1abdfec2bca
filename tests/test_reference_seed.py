"""Frugal selection chooses on the first data seed listed unless `select.reference_seed` is set. A sweep of
the seeds left, listed alone after the first split's sweep, would silently choose again on another seed
and reuse nothing of the folder: an error before any run, naming the seed to set either way."""
import os

import pytest
from typer.testing import CliRunner

os.environ["HF_HUB_OFFLINE"] = "1"

from tuneoff.cli import app  # noqa: E402
from tuneoff.config import ConfigError  # noqa: E402
from tuneoff.experiment import prepare_run, prepare_sweep  # noqa: E402
from tuneoff.store import Store  # noqa: E402

SELECT = {"protocol": "cv", "search": "grid", "budget": "frugal"}


def _sweep(out, seeds, **select) -> dict:
    return {"defaults": {"task": "demo", "model": "tiny-bert", "shots": 4, "seed": 0, "data_seed": seeds,
                         "train.max_steps": 2, "output_dir": str(out), "select": {**SELECT, **select}},
            "methods": ["finetune", "head"]}


def _done(store, run) -> None:
    store.put({"run_id": run.run_id(), "status": "done", "created_at": "2026-01-01T00:00:00",
               "config": run.model_dump(mode="json"), "resources": {"train_time_s": 1.0}})


@pytest.fixture
def first_split(tmp_path):
    """A folder whose first split (data seed 0, the frugal reference) is done for both methods."""
    store = Store(tmp_path)
    for run in prepare_sweep(_sweep(tmp_path, [0])).runs:
        _done(store, run)
    return tmp_path


def test_the_seeds_left_listed_alone_are_refused_before_any_run(first_split):
    for dry_run in (False, True):
        with pytest.raises(ConfigError) as e:
            prepare_sweep(_sweep(first_split, [1, 2]), dry_run=dry_run)
        msg = str(e.value)
        assert "demo · tiny-bert · finetune · 4 shots and 1 other setting(s) chose on data seed 0" in msg
        assert "list data seed 1 first" in msg
        assert "select.reference_seed=0" in msg and "select.reference_seed=1" in msg
    assert Store(first_split).counts() == {"done": 2}  # nothing ran, nothing was touched


def test_naming_the_reference_reuses_the_folders_choices_or_chooses_again_on_purpose(first_split):
    whole = {r.run_id() for r in prepare_sweep(_sweep(first_split, [0, 1, 2])).runs}
    reuse = prepare_sweep(_sweep(first_split, [1, 2], reference_seed=0))
    assert {r.run_id() for r in reuse.runs} <= whole and len(reuse.plan.todo) == 4
    again = prepare_sweep(_sweep(first_split, [1, 2], reference_seed=1))
    assert not {r.run_id() for r in again.runs} & whole  # another reference: other runs, as asked


def test_the_whole_sweep_resuming_and_full_selection_pass(first_split):
    assert len(prepare_sweep(_sweep(first_split, [0, 1, 2])).plan.done) == 2
    assert len(prepare_sweep(_sweep(first_split, [1, 2], budget="full")).plan.todo) == 4  # no reference to reuse
    other = _sweep(first_split, [1, 2])
    other["methods"] = ["bitfit"]  # a setting the folder never chose: nothing to reuse
    assert len(prepare_sweep(other).plan.todo) == 2


def test_tuneoff_run_on_a_later_seed_is_refused_too_and_the_command_says_what_to_set(first_split):
    args = ["task=demo", "model=tiny-bert", "shots=4", "seed=0", "method=head", "train.max_steps=2",
            f"output_dir={first_split}", "select.protocol=cv", "select.search=grid", "data_seed=3"]
    with pytest.raises(ConfigError, match="select.reference_seed=0"):
        prepare_run(None, args)
    assert len(prepare_run(None, [*args, "select.reference_seed=0"]).plan.todo) == 1
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2 and "frugal selection would choose again" in result.output
    assert Store(first_split).counts() == {"done": 2}


def test_a_grid_over_data_seeds_resumes_as_written(tmp_path):
    """Each grid value is its own config, so each run's reference is its own seed: the plan chooses on
    every seed the folder chose on, and resuming it is no new choice."""
    spec = _sweep(tmp_path, 0)
    del spec["defaults"]["data_seed"]
    spec["grid"] = {"data_seed": [0, 1, 2]}
    store = Store(tmp_path)
    for run in prepare_sweep(spec).runs:
        if run.data_seed == 0:
            _done(store, run)
    assert len(prepare_sweep(spec).plan.todo) == 4


def test_the_folders_choice_is_seen_in_its_other_splits_too(tmp_path):
    """The folder's runs at seeds 1 and 2 chose on seed 0, whose own run failed: seeds listed from 1
    would still choose again."""
    store = Store(tmp_path)
    for run in prepare_sweep(_sweep(tmp_path, [0, 1, 2])).runs:
        _done(store, run) if run.data_seed else store.put({**_failed(run)})
    with pytest.raises(ConfigError, match="chose on data seed 0"):
        prepare_sweep(_sweep(tmp_path, [1, 2, 3]), dry_run=True)
    assert len(prepare_sweep(_sweep(tmp_path, [1, 2, 3], reference_seed=0)).plan.todo) == 2


def _failed(run) -> dict:
    return {"run_id": run.run_id(), "status": "failed", "created_at": "2026-01-01T00:00:00",
            "config": run.model_dump(mode="json"), "error": "stopped", "resources": {}}
