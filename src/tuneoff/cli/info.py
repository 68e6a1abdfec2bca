"""The commands that describe without running: validate a config, list what is registered."""
from __future__ import annotations

from typing import Optional

import typer
from rich.padding import Padding
from rich.table import Table

from tuneoff.cli.base import app, console, fail, load, message, split_args
from tuneoff.config import ConfigError
from tuneoff.escape import term
from tuneoff.report.terminal import NAME, Col, FitTable, say


@app.command(short_help="Check a config, a run's or a sweep's (types, keys, task, eval sets, pattern, model, method "
                        "options), without running it.")
def validate(
    config: str = typer.Argument(..., help="YAML config, a run's or a sweep's"),
    overrides: Optional[list[str]] = typer.Argument(None),
):
    """Check a config (types, keys, task, eval sets, pattern, model, method options) without running it.
    A sweep config: every run of it, checked as `tuneoff sweep` checks them before its first run."""
    import json

    path, ov = split_args(config, overrides)
    if path is not None and _is_sweep(path):
        return _validate_sweep(path, ov)
    cfg = load(config, overrides)
    console.print_json(json.dumps(cfg.resolved()))
    console.print(f"[green]valid[/]: {len(cfg.expand())} run(s)")
    for one in cfg.per_method() if cfg.select is not None else []:  # a list of methods: a line each
        name = f"{one.method.name}: " if len(cfg.methods) > 1 else ""
        console.print(term(name + selection_line(one)), highlight=False)


def _is_sweep(path: str) -> bool:
    from tuneoff.config.loading import read_yaml, sweep_keys

    try:
        return bool(sweep_keys(read_yaml(path)))
    except ConfigError as e:
        fail(message(e))


def _validate_sweep(path: str, overrides: list[str]) -> None:
    """A sweep config's runs, each checked as a run config is (`tuneoff.experiment.check_runs`), and
    what each method's selection will search; its results folder is not opened."""
    from tuneoff.experiment import check_runs, sweep_of

    try:
        sw = sweep_of(path, overrides)
        check_runs(sw.runs)
    except (ConfigError, ValueError, KeyError) as e:
        fail(message(e))
    dup = f" ({sw.duplicates} duplicate(s) merged)" if sw.duplicates else ""
    say(console, f"[green]valid[/]: sweep {term(path)}: {len(sw.runs)} run(s){dup} → {term(sw.output_dir)}/"
                 + (f"; varying: {term(', '.join(sw.varying))}" if sw.varying else ""))
    lines: dict[str, None] = {}  # each method's selection, once per distinct line (it may differ by shots)
    for run in sw.runs:
        if run.select is not None:
            lines.setdefault(f"{sw.method_label(run)}: {selection_line(run)}")
    for line in lines:
        say(console, term(line))


def selection_line(cfg) -> str:
    """What a config's selection will search, in one line."""
    from tuneoff.config import candidates, finite_points, label

    s, searched = cfg.select, cfg.search_space()
    how = f"{s.folds}-fold cv (capped at the shots per class)" if s.protocol == "cv" else "a dev split of the same size"
    if s.search == "grid":
        cands = candidates(searched)
        return (f"selection ({s.budget}, grid): {len(cands)} candidate(s) on {how}: "
                + "; ".join(label(c) for c in cands))
    space = "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                      for k, v in searched.items())
    length = cfg.search_length()
    if length is not None:
        length_text = f"length: {length}"
    elif cfg.method_class.trains:
        length_text = f"length: train.epochs={cfg.train.epochs:g} (not searched)"
    else:
        length_text = "no length (the method does not train)"
    points = finite_points(searched)
    if length is None and points is not None and len(points) <= s.trials:
        return f"selection ({s.budget}, optuna): each of the {len(points)} point(s) once on {how}: {space}; {length_text}"
    return (f"selection ({s.budget}, optuna {s.sampler}, pruner {s.pruner}): {s.trials} trial(s) on {how}, "
            f"at most {s.extensions} extension(s) by the edge rule: {space}; {length_text}")


def _data_of(task) -> str:
    """Where a task's splits come from: the hub datasets, or the local files under data_dir."""
    sources = [task.train, *(e.source for e in task.eval_sets)]
    hub = list(dict.fromkeys(" ".join(x for x in s.hub[:2] if x) for s in sources if s.hub))
    local = list(dict.fromkeys(s.local.split("/")[0] + "/" for s in sources if s.local))
    if not hub and not local:
        return "built in"
    parts = [f"hub {', '.join(hub)}"] if hub else []
    if local:
        parts.append(f"or data_dir=FOLDER with {', '.join(local)}")
    return "; ".join(parts)


@app.command("ls")
def ls(what: str = typer.Argument(..., help="tasks | methods | models")):
    """List the registered tasks, methods or models."""
    if what == "tasks":
        from tuneoff.tasks import list_tasks

        # one block per task: readable at any terminal width
        for task in list_tasks():
            evals = ", ".join(
                f"{e.name} ({e.domain}{', per ' + '/'.join(e.subset_fields) + ' and label' if e.subset_fields else ''}"
                f"{', if present' if e.optional else ''})" for e in task.eval_sets)
            g = Table.grid(padding=(0, 2), pad_edge=True)
            g.add_column(style="dim", no_wrap=True, min_width=10)
            g.add_column()
            g.add_row("labels", term(", ".join(task.label_names)))
            g.add_row("splits", term(f"train; eval: {evals}"))
            g.add_row("data", term(_data_of(task)))
            others = ", ".join(m for m in task.metrics if m != task.main_metric)
            g.add_row("metric", f"{task.main_metric} (also {others}; the majority baseline beside each)")
            g.add_row("patterns", term(", ".join(task.patterns) + (f" (default {task.default_pattern})"
                                                                    if task.default_pattern else "")))
            console.print(f"[bold]{term(task.name)}[/]: {term(task.description)}", highlight=False)
            console.print(Padding(g, (0, 0, 1, 2)), highlight=False)
        console.print("[dim]or a custom task: the path of a task YAML file (see docs/tasks.md)[/]")
        return
    elif what == "methods":
        from tuneoff.methods import list_methods

        cols = [Col("name", NAME, key=True), Col("trains", NAME), Col("head", NAME), Col("options"),
                Col("search (optuna)"), Col("grid (select.search: grid)"), Col("description")]
        rows = []
        for m in list_methods():
            opts = ", ".join(f"{k}={f.default!r}" if isinstance(f.default, str) else f"{k}={f.default}"
                             for k, f in m.Options.model_fields.items())
            grid = "; ".join(f"{k}: {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vs)}"
                             for k, vs in m.search_space_for(m.Options()).items())
            length = m.search_length_for(m.Options())
            ranges = "; ".join(f"{k}: {v if not isinstance(v, list) else ', '.join(map(str, v))}"
                               for k, v in m.search_ranges_for(m.Options()).items())
            ranges += f"; length: {length}" if length else ""
            rows.append([term(x) for x in (m.name, "yes" if m.trains else "no", m.head, opts, ranges, grid,
                                           m.description)])
        t = FitTable(cols, rows, title="methods")
    elif what == "models":
        from tuneoff.models import EMBEDDED, MODEL_DESCRIPTIONS

        import importlib.util

        rows = []
        for alias, desc in MODEL_DESCRIPTIONS.items():
            emb = EMBEDDED.get(alias)
            ok = "yes" if emb is None or importlib.util.find_spec(emb.package) else f"no: {emb.install}"
            rows.append([term(alias), term(ok), term(desc)])
        t = FitTable([Col("alias", NAME, key=True), Col("installed"), Col("description")], rows,
                     title="models (or any hub id / local folder)")
    else:
        fail(f"unknown list {what!r}; use one of: tasks, methods, models")
    t.print(console)
