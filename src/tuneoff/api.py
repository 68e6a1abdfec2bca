"""The Python API: what the `tuneoff` command does, as functions that return objects.

    from tuneoff.api import run, sweep, load

    res = sweep("examples/quick.yaml", "methods=[finetune,head]", train={"max_steps": 5})
    res.table()                          # mean ± std over seeds, as `tuneoff show` prints it
    print(res.recommend(max_train_time="5m"))   # as `tuneoff recommend` answers
    res.report("report.html")            # as `tuneoff report` writes it

`tuneoff run` and `tuneoff sweep` call the same functions (`tuneoff.experiment`: plan against the
results folder, run through the one driver, write the folder's summary); `tuneoff show`,
`recommend` and `report` read a folder through the same `Results`. These add only the progress
display of the command line, on by default (`progress=False` silences it); as on the command line,
transformers' load reports (kept in each run's record) and progress bars stay off the output.

Settings are given as the command line gives them, `"train.max_steps=5"` strings after the config,
or as keywords: `model="tiny-bert"`, `train={"max_steps": 5}` (a section's keys merge into the
config's). A relative path in a YAML file (task, data_dir, forgetting.text) is read from the file's
folder; one given here, and output_dir, from the current folder.

Errors are raised before any run starts where they can be: `tuneoff.config.ConfigError` (a bad
key or value), a ValueError or KeyError naming an unknown task, eval set, pattern or model,
`tuneoff.executors.ExecutorError`, `tuneoff.store.StoreError` (a folder that cannot be used).
A run that fails is recorded as failed and does not raise: see `Results.failed`. Ctrl-C (a
notebook's interrupt) raises `Interrupted` once the runs in flight are stopped; the runs that
finished are kept, and the same call goes on from there.
"""
from __future__ import annotations

import os
from typing import Any

from rich.console import Console

from tuneoff.experiment import (ConfigSpec, Experiment, Front, Interrupted, SweepSpec, prepare_run,
                                prepare_sweep)
from tuneoff.results import Figure, Recommendation, Results

__all__ = ["run", "sweep", "plan", "load", "Results", "Recommendation", "Figure", "Experiment", "Interrupted"]


def _front(progress: bool, console: Console | None, label=None) -> Front:
    """The command line's progress display on `console` (default: standard output), or none; and,
    as on the command line, library messages that are not the user's to act on kept off the output
    (transformers' load reports, which go to the run record, and its progress bars)."""
    from tuneoff.cli import quiet_libraries
    from tuneoff.cli.running import Shown

    quiet_libraries()
    return Shown(console or Console(), label) if progress else Front()


def run(config: ConfigSpec = None, *overrides: str, force: bool = False, progress: bool = True,
        console: Console | None = None, **settings: Any) -> Results:
    """Run the runs of one config, as `tuneoff run` does: each (shots, data_seed, seed) of it is a
    run, recorded in its output_dir (default `results/`); a run done before is skipped, a failed
    one run again, `force` reruns done ones too.

    `config`: a YAML file, a mapping of config keys, a `tuneoff.config.RunConfig`, or None for the
    defaults (the built-in demo task on minilm-l6). Returns the folder's `Results`, with `planned`
    the records of this config's runs.

    >>> res = run(task="demo", model="tiny-bert", shots=4, data_seed=[0, 1],
    ...           train={"max_steps": 2}, eval={"max_examples": 20}, output_dir=folder, progress=False)
    >>> [r.status for r in res.planned]
    ['done', 'done']
    """
    exp = prepare_run(config, overrides, settings, force=force)
    return exp.run(_front(progress, console))


def sweep(spec: SweepSpec, *overrides: str, executor: str = "local", address: str | None = None,
          num_cpus: int | None = None, cpus_per_run: int = 1, retry_failed: bool = False,
          until_decided: bool = False, max_seeds: int = 10, progress: bool = True,
          console: Console | None = None, **settings: Any) -> Results:
    """Run a sweep, as `tuneoff sweep` does: methods × grid values × shots × seeds, into one results
    folder, resumably (done runs are skipped; failed ones too unless `retry_failed`).

    `spec`: a sweep YAML file, a mapping with its `defaults`, `grid`, `methods` and `recommend`, or
    a `tuneoff.sweep.SweepConfig`. `overrides` edit it as on the command line: `"methods=[lora]"`,
    `"grid.train.lr=[1e-4]"`, or any run setting (`"train.max_steps=5"`, set on every run, last);
    keyword `settings` likewise (`defaults={...}`, `train={"max_steps": 5}`). `executor="ray"` runs
    on Ray (`address`, `num_cpus`, `cpus_per_run` as the command's options); `until_decided` then
    adds data seeds where the recommendation is not decided, up to `max_seeds` splits a cell.
    Returns the folder's `Results`, with `planned` the records of the sweep's runs.

    >>> res = sweep({"defaults": {"model": "tiny-bert", "shots": 4, "data_seed": [0, 1],
    ...                           "train": {"max_steps": 2}, "eval": {"max_examples": 20}, "output_dir": folder},
    ...              "methods": ["finetune", "head"]}, progress=False)
    >>> sorted({r.method for r in res.planned})
    ['finetune', 'head']
    """
    exp = prepare_sweep(spec, overrides, settings, retry_failed=retry_failed, executor=executor, address=address)
    return exp.run(_front(progress, console, exp.sweep.label), executor=executor, address=address,
                   num_cpus=num_cpus, cpus_per_run=cpus_per_run, until_decided=until_decided, max_seeds=max_seeds)


def plan(spec: SweepSpec, *overrides: str, retry_failed: bool = False, **settings: Any) -> Experiment:
    """What a sweep would run, as `tuneoff sweep --dry-run` lists it, running nothing: the folder is
    only read (nothing is created) and no model is looked up on the hub. `.table()` lists the runs,
    their status (done, failed, to run) and the settings that vary; `.plan.todo` the runs to run.

    >>> exp = plan({"defaults": {"model": "tiny-bert", "shots": 4, "output_dir": folder}, "methods": ["head"]})
    >>> exp.table()["status"].tolist()
    ['to run', 'to run']
    """
    return prepare_sweep(spec, overrides, settings, retry_failed=retry_failed, dry_run=True)


def load(folder: str | os.PathLike) -> Results:
    """The runs of a results folder, opened read-only, as `tuneoff show`, `recommend` and `report`
    read it: `.table()`, `.runs()`, `.recommend(...)`, `.report(path)`, `.plot(kind)`. A folder
    without results is a FileNotFoundError.

    >>> res = load(folder)
    >>> res.table()[["method", "shots", "eval_set", "score", "runs"]].shape[1]
    5
    """
    return Results.open(folder)
