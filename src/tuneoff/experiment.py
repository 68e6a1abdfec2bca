"""An experiment: the runs of one config or of a sweep, planned against their results folder and run
through the one driver (`tuneoff.plan`), then the folder's summary written. `tuneoff run`,
`tuneoff sweep` and `tuneoff.api.run` / `sweep` all go through `prepare_run` / `prepare_sweep` and
`Experiment.run`; a front end only says how the runs are shown (`Front`) and prints what comes back
(a `tuneoff.results.Results`).

Errors are raised before any run starts where they can be: a bad config or sweep (`ConfigError`,
or a ValueError/KeyError naming an unknown task, eval set, pattern or model), an unknown executor
(`ExecutorError`), a results folder that cannot be written (`StoreError`). A stop signal while runs
are computed is `Interrupted`, which says what was kept.
"""
from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

import yaml

from tuneoff.budget import Budget
from tuneoff.config import RunConfig, apply_overrides, config_from_dict, load_config
from tuneoff.plan import Observer, Plan, check_reference, plan_store
from tuneoff.record import Record
from tuneoff.results import Results
from tuneoff.signals import Stopped
from tuneoff.sweep import Sweep, SweepConfig, load_sweep, sweep_from

if TYPE_CHECKING:
    import pandas as pd

ConfigSpec = Union[str, os.PathLike, Mapping[str, Any], RunConfig, None]
SweepSpec = Union[str, os.PathLike, Mapping[str, Any], SweepConfig]


class Interrupted(Stopped):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP; a notebook's interrupt) while runs were computed. The
    runs that finished are in the store; `kept` says how many and where. Running the same call
    again goes on from there."""

    def __init__(self, signum: int, kept: str):
        super().__init__(signum)
        self.kept = kept

    def __str__(self) -> str:
        return f"stopped by {self.name}: {self.kept}; run it again to go on (finished runs are skipped)"


class Front:
    """How a front end shows an experiment's runs. This one shows nothing; the command line's
    (`tuneoff.cli.running.Shown`) draws progress bars or lines."""

    def observe(self, plan: Plan, store, slots: int) -> AbstractContextManager[Observer]:
        """A context in which the runs of `plan` are reported to the Observer it yields."""
        return nullcontext(Observer())

    def say(self, text: str) -> None:
        """A line between plans (a round of `until_decided`)."""


def as_overrides(settings: Mapping[str, Any]) -> list[str]:
    """Keyword settings as key=value overrides, read by the same parser as the command line's:
    `train={"max_steps": 5}` is `train.max_steps=5` (a section's keys merge into the config's);
    `method` is one value (a name, or a mapping of the name and its options)."""
    out = []
    for key, value in settings.items():
        if isinstance(value, Mapping) and key != "method" and value:
            out += as_overrides({f"{key}.{k}": v for k, v in value.items()})
            continue
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True).strip()
        out.append(f"{key}={text.removesuffix('...').strip()}")
    return out


def _overrides(overrides: Sequence[str], settings: Mapping[str, Any] | None) -> list[str]:
    bad = [o for o in overrides if not isinstance(o, str)]
    if bad:
        raise TypeError(f"overrides are key=value strings (e.g. 'train.max_steps=5'), got {bad[0]!r}; give "
                        "settings as keywords (train={'max_steps': 5})")
    return [*overrides, *as_overrides(settings or {})]


def config_of(config: ConfigSpec, overrides: Sequence[str] = (), settings: Mapping[str, Any] | None = None,
              check: bool = True) -> RunConfig:
    """A validated run config from a YAML path (its paths read from its folder), a mapping of its
    keys, a RunConfig or None (the defaults), with key=value `overrides` and keyword `settings`
    last; `check`: also what would fail every run alike (`runner.preflight`)."""
    items = _overrides(overrides, settings)
    if config is None or isinstance(config, (str, os.PathLike)):
        cfg = load_config(config, items)
    elif isinstance(config, (RunConfig, Mapping)):
        data = config.resolved() if isinstance(config, RunConfig) else dict(config)
        cfg = config_from_dict(apply_overrides(data, items))
    else:
        raise TypeError(f"a config is a YAML path, a mapping of its keys or a RunConfig, got {type(config).__name__}")
    if check:
        from tuneoff.runner import preflight

        preflight(cfg)  # an unknown task, eval set, pattern or model is an error before any run starts
    return cfg


def sweep_of(spec: SweepSpec, overrides: Sequence[str] = (), settings: Mapping[str, Any] | None = None) -> Sweep:
    """The runs of a sweep from a YAML path (its paths read from its folder), a mapping with its
    `defaults`, `grid`, `methods`, `recommend`, or a SweepConfig, with overrides as for `config_of`."""
    items = _overrides(overrides, settings)
    if isinstance(spec, (str, os.PathLike)):
        return load_sweep(spec, items)
    if isinstance(spec, SweepConfig):
        return sweep_from(spec.model_dump(), items)
    if isinstance(spec, Mapping):
        return sweep_from(dict(spec), items)
    raise TypeError(f"a sweep is a YAML path, a mapping of its keys or a SweepConfig, got {type(spec).__name__}")


def check_runs(runs: list[RunConfig], read_model_config: bool = True) -> None:
    """What would fail every run alike, checked once per distinct value of what it reads."""
    from tuneoff.runner import preflight

    checked = set()
    for run in runs:
        key = (run.task, run.pattern, tuple(run.eval.sets or ()), run.data_dir, run.model,
               run.trust_remote_code, run.output_dir, run.device, run.train.precision, run.model_dtype,
               run.quantization, run.attn_implementation, run.forgetting.text)  # every field preflight reads
        if key not in checked:
            checked.add(key)
            preflight(run, read_model_config=read_model_config)


def open_for_runs(folder: str | Path):
    """The results store runs will write: checked (damaged, unwritable, full) before any run starts,
    created if missing."""
    from tuneoff.claims import lease_seconds
    from tuneoff.store import check_writable, open_store

    check_writable(folder)
    lease_seconds()  # a malformed TUNEOFF_LEASE_S is an error now, not at the first claim
    return open_store(folder)


@dataclass
class Experiment:
    """Runs planned against a results folder: `plan` says which are done, failed, to run."""

    runs: list[RunConfig]
    output_dir: Path
    store: Any            # the results store (None: a dry run on a folder without one)
    plan: Plan
    sweep: Sweep | None = None   # a sweep's expansion: labels, the keys that vary, its budget
    dry_run: bool = False        # planned only to look: the folder was opened read-only

    @property
    def budget(self) -> Budget | None:
        """The budget of a sweep's closing recommendation (its `recommend:` section)."""
        return self.sweep.budget if self.sweep is not None else None

    def run(self, front: Front | None = None, executor: str = "local", address: str | None = None,
            num_cpus: int | None = None, cpus_per_run: int = 1, until_decided: bool = False,
            max_seeds: int = 10) -> Results:
        """Run what the plan has to run, write the folder's summary (summary.md, summary.csv) and
        return the folder's results, with `planned` the records of this experiment's runs."""
        if self.dry_run:
            raise RuntimeError("this experiment was planned as a dry run (the folder opened read-only): "
                               "prepare it again without dry_run to run it")
        from tuneoff.summary import write_folder_summary

        front = front or Front()
        options = (executor, address, num_cpus, cpus_per_run)
        records = self._drive(self.plan, front, options)
        if until_decided:
            records = self._until_decided(front, max_seeds, options)
        md, csv_path = write_folder_summary(self.store)
        return Results(self.store, planned=records, written={"summary.md": md, "summary.csv": csv_path})

    def _drive(self, plan: Plan, front: Front, options: tuple) -> list[Record]:
        """Run `plan` on the executor (`options`: make_executor's); the records of all its runs.
        Nothing to run starts no executor."""
        from tuneoff.executors import make_executor
        from tuneoff.plan import run_plan
        from tuneoff.signals import handled

        ex = make_executor(*options) if plan.todo else make_executor("local")
        try:  # the handlers go on once the executor has started (ray.init sets its own for SIGTERM)
            with front.observe(plan, self.store, ex.slots) as observer, handled():
                return run_plan(plan, self.store, ex, observer)
        except Stopped as e:
            raise Interrupted(e.signum, self._kept(plan, ex.slots)) from None
        finally:
            ex.close()

    def _kept(self, plan: Plan, slots: int) -> str:
        """What a stop left (its claims are given back by then)."""
        from tuneoff.store import StoreError

        try:
            recorded = self.store.statuses()
            kept = f"{sum(run.run_id() in recorded for run in plan.runs)} of {len(plan.runs)} run(s) finished and kept"
        except StoreError:
            kept = "the finished runs are kept"
        flight = "the run in flight was" if slots == 1 else "the runs in flight were"
        return f"{kept} in {self.store.folder}/; {flight} not recorded"

    def _until_decided(self, front: Front, max_seeds: int, options: tuple) -> list[Record]:
        """Seeds added where the answer is not decided (`tuneoff.decide`); the records of every run the
        sweep planned, the added ones included."""
        from tuneoff.decide import until_decided

        def drive(new) -> None:
            plan = plan_store(new, self.store, False)
            front.say(f"--until-decided: {len(new)} run(s) on new data seeds, {len(plan.todo)} to run")
            self._drive(plan, front, options)

        runs = until_decided(self.runs, lambda: cell_states(self.store.records(), self.budget or Budget()), drive,
                             self.output_dir, max_seeds)
        ids = {r.run_id() for r in runs}
        return [r for r in self.store.records() if r.run_id in ids]

    def table(self) -> pd.DataFrame:
        """The planned runs as a DataFrame: number, run id, status (done, failed, to run), method
        and the settings that vary between the runs."""
        import pandas as pd

        status = {**{r: "done" for r in self.plan.done}, **{r: "failed" for r in self.plan.failed}}
        rows = []
        for i, run in enumerate(self.runs, 1):
            rid = run.run_id()
            label = self.sweep.method_label(run) if self.sweep else run.method.name
            varying = self.sweep.describe(run) if self.sweep else {"shots": run.shots, "data_seed": run.data_seed,
                                                                   "seed": run.seed}
            rows.append({"#": i, "run_id": rid, "status": status.get(rid, "to run"), "method": label, **varying})
        return pd.DataFrame(rows)


def prepare_run(config: ConfigSpec = None, overrides: Sequence[str] = (), settings: Mapping[str, Any] | None = None,
                force: bool = False) -> Experiment:
    """The runs of one config (lists of shots and seeds expanded), planned against its output_dir: a
    failed run is run again, `force` reruns done ones too."""
    cfg = config_of(config, overrides, settings)
    runs = cfg.expand()
    store = open_for_runs(cfg.output_dir)
    check_reference(runs, store, {r.run_id() for r in runs} if cfg.implicit_reference else set())
    return Experiment(runs, Path(cfg.output_dir), store, plan_store(runs, store, retry_failed=True, force=force))


def prepare_sweep(spec: SweepSpec, overrides: Sequence[str] = (), settings: Mapping[str, Any] | None = None,
                  retry_failed: bool = False, dry_run: bool = False, executor: str = "local",
                  address: str | None = None) -> Experiment:
    """The runs of a sweep, planned against its output_dir: failed runs are skipped unless
    `retry_failed`. A `dry_run` opens the folder read-only (nothing is created) and does not look
    models up on the hub."""
    from tuneoff.executors import check_executor
    from tuneoff.store import has_manifests, open_store

    check_executor(executor, address)
    sw = sweep_of(spec, overrides, settings)
    check_runs(sw.runs, read_model_config=not dry_run)
    out = Path(sw.output_dir)
    if not dry_run:
        store = open_for_runs(out)
    else:  # read what is there, create nothing (manifests without their store: damaged, say so)
        store = open_store(out, must_exist=True) if (out / "results.sqlite").is_file() or has_manifests(out) else None
    check_reference(sw.runs, store, sw.implicit)
    return Experiment(sw.runs, out, store, plan_store(sw.runs, store, retry_failed, looking=dry_run), sw, dry_run)


def cell_states(records, budget) -> dict[tuple, bool | None]:
    """Per (task, shots) cell of `records`: True where its answer (every domain's) is decided
    (`report.claims.decided`), False where it is not and more data seeds may decide it, None where
    they cannot (`claims.seeds_can_decide`: the differences left are below what the eval sample shows)."""
    from tuneoff.report.claims import decided, seeds_can_decide
    from tuneoff.report.frame import to_frame
    from tuneoff.report.recommend import recommend

    answers, _ = recommend(to_frame(records), budget)
    out: dict[tuple, bool | None] = {}
    for a in answers:
        cell = (a.task, int(a.shots))
        if decided(a):
            out.setdefault(cell, True)
        else:
            out[cell] = False if (out.get(cell) is False or seeds_can_decide(a)) else None
    return out
