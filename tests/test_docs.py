"""The manual: the README and the documentation site (mkdocs.yml, docs/). The site builds with
warnings as errors; every config key (with its default), command option, registered method, model and
task is documented; the methods reference is what the registry gives now; and every `tuneoff` command
in a code block is run here on tiny settings, validated, or named as a job measured elsewhere."""
import importlib.util
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from typer.testing import CliRunner

from tuneoff.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REQUIRED = "required"
runner = CliRunner()


def manual_pages() -> list[Path]:
    """The README and the site's own pages (the Python API page and the published comparisons'
    folders are written and checked apart)."""
    return [ROOT / "README.md", *sorted(p for p in DOCS.glob("*.md") if p.name != "api.md"),
            *sorted((DOCS / "reference").glob("*.md"))]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in `text`: its rows of cells, the header first (separator rows left out)."""
    found, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
                rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif rows:
            found.append(rows)
            rows = []
    return found


def table_rows(text: str) -> list[list[str]]:
    """The rows of every table in `text`, headers left out."""
    return [row for table in tables(text) for row in table[1:]]


# -- the site -------------------------------------------------------------------------------------

def test_the_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: it is the `docs` extra, which ./setup.sh "
                                         "installs")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    # the README's sections and benchmarks/RESULTS.md are included, not copied
    assert "0.904 ± 0.055" in (site / "getting-started" / "index.html").read_text(encoding="utf-8")
    assert "0.519 ± 0.016" in (site / "comparisons" / "index.html").read_text(encoding="utf-8")
    assert "Cost figures under load" in (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    # the published stores and run records stay out of the site
    assert not list(site.rglob("*.sqlite")) and not list(site.rglob("manifest.json"))


def test_a_list_follows_a_blank_line():
    """Python-Markdown (the site's) reads a list right after a paragraph line as part of the paragraph,
    where GitHub shows a list: a blank line before it reads as a list in both."""
    item = re.compile(r"([-*+]|\d+\.) ")
    for page in manual_pages():
        fenced, before = False, ""
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced and item.match(line):
                assert not before.strip() or item.match(before) or before.startswith(" "), (
                    f"{page.relative_to(ROOT)}:{n}: put a blank line before this list")
            before = line


# -- every key, option, method, model and task ------------------------------------------------------

def _model_in(annotation) -> tuple[type[BaseModel] | None, str]:
    """The config section a field's annotation holds (Optional and list unwrapped), and the suffix its
    keys take ("[]" for a list of entries)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    for arg in typing.get_args(annotation):
        model, suffix = _model_in(arg)
        if model is not None:
            return model, ("[]" if typing.get_origin(annotation) is list else "") + suffix
    return None, ""


def config_keys(model: type[BaseModel], prefix: str = "") -> dict[str, object]:
    """Every key of a config section -> its default (REQUIRED where it has none); a section's keys
    dotted below it, and an optional section (null) or a list of entries itself too."""
    out = {}
    for name, field in model.model_fields.items():
        key = prefix + name
        default = field.get_default(call_default_factory=True)
        section, suffix = _model_in(field.annotation)
        if section is None:
            out[key] = REQUIRED if default is PydanticUndefined else default
            continue
        out.update(config_keys(section, f"{key}{suffix}."))
        if not isinstance(default, BaseModel):  # an optional section (null) or a list of entries
            out[key] = default
    return out


def documented_default(cell: str):
    """A default as the docs write it, read as a `key=value` on the command line would be."""
    from tuneoff.config.loading import parse_override

    cell = cell.strip().strip("`")
    return REQUIRED if cell == REQUIRED else parse_override(f"key={cell}")[1]


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b)
    return a == b


def test_every_config_key_is_documented_with_its_default():
    from tuneoff.config import RunConfig
    from tuneoff.sweep import SweepConfig

    expected = {**config_keys(RunConfig), **config_keys(SweepConfig)}
    rows = {row[0].strip("`"): row[1] for table in tables((DOCS / "configuration.md").read_text())
            if table[0][:2] == ["key", "default"] for row in table[1:]}
    missing = sorted(set(expected) - set(rows))
    assert not missing, f"docs/configuration.md has no row for {missing}"
    for key, cell in rows.items():
        if key in expected:
            assert same(documented_default(cell), expected[key]), (
                f"docs/configuration.md gives {key} the default {cell}; the config class has {expected[key]!r}")
        else:  # a section's own row, or a pattern such as select.<key>
            assert "<" in key or any(k.startswith(key + ".") for k in expected), (
                f"docs/configuration.md documents {key!r}, which no config class has")


def test_every_command_and_option_is_documented():
    import typer.main

    text = (DOCS / "configuration.md").read_text()
    for name, command in typer.main.get_command(app).commands.items():
        assert f"`tuneoff {name}" in text, f"docs/configuration.md does not list `tuneoff {name}`"
        for param in command.params:
            if param.param_type_name == "option":
                assert any(opt in text for opt in param.opts), (
                    f"docs/configuration.md does not give `tuneoff {name}`'s option {param.opts[-1]}")


def test_every_registered_method_has_a_row_in_the_methods_table():
    from tuneoff.registry import list_methods

    names = {m.name for m in list_methods()}
    rows = {re.sub(r"`([^`]+)`.*", r"\1", row[0]) for row in table_rows((DOCS / "methods.md").read_text())
            if row[0].startswith("`")}
    assert not names - rows, (f"docs/methods.md has no row (what it trains, how it scores a label) for "
                              f"{sorted(names - rows)}")
    assert not rows - names, f"docs/methods.md has rows for methods the registry lacks: {sorted(rows - names)}"


def test_the_methods_reference_is_what_the_registry_gives_now():
    from tuneoff.registry import list_methods

    generate = _generate()

    page = generate.PAGE.read_text(encoding="utf-8")
    assert page == generate.methods_page(), (
        "docs/reference/methods.md is out of date: run `python docs/reference/generate.py`")
    for method in list_methods():  # and so every method and option is on it
        assert f"## `{method.name}`" in page
        assert all(f"`method.{option}`" in page for option in method.Options.model_fields)


def test_every_model_and_built_in_task_is_documented():
    from tuneoff.models import MODEL_DESCRIPTIONS
    from tuneoff.tasks import list_tasks

    models = (DOCS / "models.md").read_text()
    assert all(f"`{alias}`" in models for alias in MODEL_DESCRIPTIONS), "a model alias is missing in docs/models.md"
    tasks = " ".join(row[0] for row in table_rows((DOCS / "tasks.md").read_text()))
    assert all(f"`{t.name}`" in tasks for t in list_tasks()), "a built-in task is missing in docs/tasks.md's table"


# -- the commands the manual shows ------------------------------------------------------------------

@dataclass(frozen=True)
class How:
    """How a documented command is exercised: `run` (as written, then `extra`), `validate` (its
    arguments through `tuneoff validate`), `parse` (its sweep file read and expanded) or `measured`
    (a job too large for a test, measured where `where` says)."""

    kind: str
    extra: tuple[str, ...] = ()
    where: str = ""


# tiny settings: a random 2-layer model, one optimizer step, 8 examples per eval set, no forgetting
# pass; a run keeps its methods and its selection
TINY = ("model=tiny-bert", "shots=4", "data_seed=0", "train.max_steps=1", "eval.max_examples=8",
        "forgetting.enabled=false")
SWEEP_TINY = ("methods=[head]", "model=tiny-bert", "data_seed=[0]", "train.max_steps=1", "eval.max_examples=8",
              "forgetting.enabled=false")
RUN, VALIDATE = How("run"), How("validate")

COMMANDS = {
    # the main job (its measured output is in the README); saved, so `tuneoff evaluate` has a run
    "tuneoff run": How("run", (*TINY, "save=true")),
    "tuneoff run method=lora shots=[8,32] data_seed=[0,1,2]": VALIDATE,
    "tuneoff run examples/demo.yaml": VALIDATE,
    "tuneoff run task=mnli data_dir=../shared/data model=minilm-l6 shots=16 data_seed=1 seed=0": How(
        "measured", where="docs/tasks.md"),  # a local copy of GLUE MNLI and HANS; its figures are there
    "tuneoff run shots=[2,8,32] data_seed=[0,1,2] select=null train.lr=1e-4 output_dir=results/lr": VALIDATE,
    "tuneoff run task=tickets.yaml method=lora shots=[8,32] data_seed=[0,1,2]": How("run", TINY),
    "tuneoff run select.search=optuna method=lora": VALIDATE,
    "tuneoff run select.search=optuna method=lora 'select.train.lr={low: 1.0e-4, high: 1.0e-1}'": VALIDATE,
    "tuneoff run select.search=optuna method=lora 'select.method.r=[4,16]'": VALIDATE,
    "tuneoff run select.search=grid method=lora": VALIDATE,
    "tuneoff run select.protocol=dev shots=2": VALIDATE,
    "tuneoff validate my.yaml shots=64": RUN,
    "tuneoff ls tasks": RUN,
    "tuneoff show results/": RUN,
    "tuneoff evaluate results/runs/<run_id>": RUN,
    "tuneoff repair results/": RUN,
    # the quick sweep (its published store is docs/quick-sweep), into results/quick
    "tuneoff sweep examples/quick.yaml": How("run", SWEEP_TINY),
    "tuneoff sweep examples/quick.yaml --dry-run": How("run", SWEEP_TINY),
    "tuneoff validate examples/quick.yaml": RUN,
    "tuneoff sweep examples/quick.yaml --retry-failed": How("run", SWEEP_TINY),
    "tuneoff recommend results/quick": RUN,
    "tuneoff recommend results/quick --max-train-cpu 1m --shots 32 --domain out": RUN,
    "tuneoff recommend results/quick --max-memory 4GB --max-trainable-params 1M": RUN,
    "tuneoff report results/quick -o report.html": RUN,
    # the full comparison needs GLUE and HANS, a GPU-sized model and a Ray cluster: its file is read
    "tuneoff sweep examples/paper.yaml --executor ray [--address HOST:PORT]": How("parse"),
    "tuneoff sweep benchmarks/selection.yaml": How("measured", where="docs/selection.md"),
    "tuneoff sweep benchmarks/search.yaml data_dir=PATH": How("measured", where="docs/selection.md"),
    "tuneoff sweep examples/cola-mnli-v2.yaml data_dir=PATH data_seed=0": How("measured", where="docs/selection.md"),
    "tuneoff sweep benchmarks/method_checks.yaml data_dir=PATH": How("measured", where="docs/method-checks.md"),
}


def documented_commands() -> dict[str, list[str]]:
    """Every `tuneoff` command in a shell code block of the manual -> the pages that show it, written
    as run from .venv's bin with environment settings and comments left out."""
    found: dict[str, list[str]] = {}
    block = re.compile(r"^([ \t]*)```(?:bash|sh|console)[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)
    for page in manual_pages():
        for match in block.finditer(page.read_text(encoding="utf-8")):
            for line in match.group(2).splitlines():
                code = re.split(r"\s+#\s", line.strip())[0]
                code = re.sub(r"^(\./setup\.sh && )?(\.venv/bin/)?([A-Z_]+=\S+ )*", "", code).strip()
                if code.startswith("tuneoff "):
                    found.setdefault(" ".join(code.split()), []).append(str(page.relative_to(ROOT)))
    return found


def test_every_documented_command_is_exercised_or_named():
    found = documented_commands()
    unknown = sorted(set(found) - set(COMMANDS))
    assert not unknown, (f"commands shown in the manual that tests/test_docs.py neither runs nor names: "
                         f"{[(c, found[c]) for c in unknown]}; add each to COMMANDS")
    stale = sorted(set(COMMANDS) - set(found))
    assert not stale, f"COMMANDS names commands the manual no longer shows: {stale}"
    for how in COMMANDS.values():
        assert how.kind != "measured" or (ROOT / how.where).is_file()


def test_every_yaml_example_is_valid(tmp_path):
    """Each YAML block of the manual is what it shows: a task file, a sweep file or a run config."""
    from tuneoff import yamlfile
    from tuneoff.config import config_from_dict
    from tuneoff.sweep import sweep_from
    from tuneoff.tasks.schema import load_task_yaml

    block = re.compile(r"^([ \t]*)```yaml[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)
    shown = [(page, "\n".join(line[len(m.group(1)):] for line in m.group(2).splitlines()))  # as if not indented
             for page in manual_pages() for m in block.finditer(page.read_text(encoding="utf-8"))]
    assert len(shown) >= 4
    for page, text in shown:
        data = yamlfile.parse(text)
        where = f"a YAML block of {page.relative_to(ROOT)}"
        if "text_fields" in data:
            (tmp_path / "task.yaml").write_text(text)
            assert load_task_yaml(tmp_path / "task.yaml").label_names, where
        elif "methods" in data:
            assert sweep_from(data, source=where).runs, where
        else:
            config_from_dict(data)


TICKETS = """\
name: tickets
text_fields: [text]
label_names: [bug, feature]
train: data/train.csv
eval:
  - {name: test, path: data/test.csv}
"""


def _tickets(folder: Path) -> None:
    """The task of docs/tasks.md's three steps, with data files in the format its first step shows."""
    page = (DOCS / "tasks.md").read_text()
    assert "\n".join("    " + line for line in TICKETS.splitlines()) in page, "docs/tasks.md's task file changed"
    (folder / "tickets.yaml").write_text(TICKETS)
    (folder / "data").mkdir()
    bug = ["The export button does nothing", "The app crashes on start", "Login fails with an error"]
    feature = ["Please add a dark mode", "Could it sync with my calendar", "Add an export to PDF"]
    rows = [f'"{t} ({i})",{label}' for i in range(4) for label, texts in (("bug", bug), ("feature", feature))
            for t in texts]
    for name in ("train", "test"):
        (folder / "data" / f"{name}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")


def _invoke(args: list[str]):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, f"tuneoff {shlex.join(args)} exited {r.exit_code}:\n{r.output}\n{r.exception!r}"
    return r


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder to run the documented commands in: the examples, the docs' task file and `my.yaml`;
    `results/` and `results/quick` filled by the documented `tuneoff run` and `tuneoff sweep` on tiny
    settings (their results are what the commands that read a results folder read)."""
    folder = tmp_path_factory.mktemp("manual")
    shutil.copytree(ROOT / "examples", folder / "examples")
    shutil.copy(ROOT / "examples" / "demo.yaml", folder / "my.yaml")
    _tickets(folder)
    before = Path.cwd()
    os.chdir(folder)
    try:
        for command in ("tuneoff run", "tuneoff sweep examples/quick.yaml"):
            _invoke(shlex.split(command)[1:] + list(COMMANDS[command].extra))
    finally:
        os.chdir(before)
    return folder


@pytest.mark.parametrize("command", [c for c, how in COMMANDS.items() if how.kind != "measured"])
def test_the_documented_command_runs(command, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    how = COMMANDS[command]
    args = shlex.split(command)[1:]
    if how.kind == "parse":
        from tuneoff.sweep import load_sweep

        assert load_sweep(args[1]).runs, f"{args[1]} gives no runs"
        return
    if how.kind == "validate":
        _invoke(["validate", *args[1:]])
        return
    if "<run_id>" in command:
        saved = [p.parent for p in Path("results/runs").glob("*/weights")]
        assert saved, "`tuneoff run` with save=true saved no run"
        args = [a.replace("results/runs/<run_id>", str(saved[0])) for a in args]
    r = _invoke(args + list(how.extra))
    if command == "tuneoff sweep examples/quick.yaml --dry-run":
        assert "to run now: 0" in " ".join(r.output.split())  # the sweep ran them all


def _generate():
    """docs/reference/generate.py, the program that writes the docs' generated parts."""
    spec = importlib.util.spec_from_file_location("generate_docs", DOCS / "reference" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_recommendation_is_what_the_published_store_gives(monkeypatch):
    """docs/recommend.md shows what `tuneoff recommend` prints for docs/quick-sweep (at the width it
    names, its notes and its paragraph on the rule elided), and quotes docs/cola-mnli-cpu's figures
    as the command gives them."""
    from tuneoff.cli.base import console

    generate = _generate()
    monkeypatch.chdir(ROOT)
    page = (DOCS / "recommend.md").read_text(encoding="utf-8")
    assert f"(`COLUMNS={generate.WIDTH} tuneoff {' '.join(generate.RECOMMEND)}`)" in page
    monkeypatch.setattr(console, "_width", generate.WIDTH)  # as COLUMNS does
    printed = generate.elided(_invoke(generate.RECOMMEND).output)
    assert generate.shown_output(page) == printed, (
        "docs/recommend.md shows another output than `tuneoff recommend` prints now: run "
        "`python docs/reference/generate.py`")
    monkeypatch.setattr(console, "_width", 1000)
    said = " ".join(_invoke(["recommend", "docs/cola-mnli-cpu", "--shots", "128", "--domain", "in"]).output.split())
    for figure in ("0.722 ± 0.026 over 5 splits", "0.077–0.087", "below 0.073", "2 other fitting method(s) worse"):
        assert figure in page and figure in said, figure
