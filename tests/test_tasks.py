"""The built-in tasks stay what they were: their names, sources (local names, hub ids and splits,
the shipped demo files), labels, label maps, eval sets, patterns, metrics and instructions.

tests/data/builtin_tasks.txt holds the exact repr of every built-in `Task`, in registry order, with
the package folder written as <package> (so the snapshot does not depend on where it is installed).
A deliberate change to a built-in task rewrites it:  python tests/test_tasks.py
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tuneoff
from tuneoff.tasks import BUILTIN_DIR, EvalSet, Pattern, Source, Task, TaskError, get_task, list_tasks, load_task_yaml
from tuneoff.tasks.schema import TaskSpec

FROZEN = Path(__file__).with_name("data") / "builtin_tasks.txt"
PACKAGE = str(Path(tuneoff.__file__).parent)


def current() -> list[str]:
    # repr is stricter than ==: it also fixes field types (tuple, not list) and the order of patterns
    return [repr(t).replace(PACKAGE, "<package>") for t in list_tasks()]


def test_every_builtin_task_is_unchanged_field_by_field():
    frozen = FROZEN.read_text().splitlines()
    now = current()
    assert [line.split("'")[1] for line in now] == [line.split("'")[1] for line in frozen]
    for a, b in zip(frozen, now):
        assert a == b


def test_a_custom_task_file_with_every_key_builds_the_task_it_describes(tmp_path):
    (tmp_path / "tickets.yaml").write_text(
        "name: tickets\n"
        "description: support tickets\n"
        "text_fields: [title, body]\n"
        "label_names: [bug, feature]\n"
        "train: data/train.csv\n"
        "eval:\n"
        "  - {name: test, path: data/test.jsonl}\n"
        "  - {name: other_product, path: /elsewhere/other.jsonl, domain: out}\n"
        "  - {name: by_source, path: data/test.jsonl, subset_fields: [source]}\n"
        "patterns:\n"
        "  simple: {template: '{title} {body} This is a', verbalizer: {bug: ' bug', feature: ' feature'}}\n"
        "  ask: {template: '{title}: bug or feature?', verbalizer: {feature: ' feature', bug: ' bug'}}\n"
        "default_pattern: ask\n"
        "main_metric: f1\n"
        "instruction: Is this ticket a bug report or a feature request?\n")
    d = str(tmp_path)
    expected = Task(
        name="tickets", description="support tickets", text_fields=("title", "body"),
        label_names=("bug", "feature"), train=Source(path=f"{d}/data/train.csv"),
        eval_sets=(EvalSet("test", Source(path=f"{d}/data/test.jsonl")),
                   EvalSet("other_product", Source(path="/elsewhere/other.jsonl"), domain="out"),
                   EvalSet("by_source", Source(path=f"{d}/data/test.jsonl"), subset_fields=("source",))),
        main_metric="f1",
        patterns={"simple": Pattern("simple", "{title} {body} This is a", {"bug": " bug", "feature": " feature"}),
                  "ask": Pattern("ask", "{title}: bug or feature?", {"feature": " feature", "bug": " bug"})},
        default_pattern="ask", instruction="Is this ticket a bug report or a feature request?")
    assert repr(load_task_yaml(tmp_path / "tickets.yaml")) == repr(expected)
    # the optional keys' defaults
    (tmp_path / "min.yaml").write_text("name: m\ntext_fields: text\nlabel_names: [a, b]\ntrain: t.jsonl\n"
                                       "eval: [{name: e, path: e.jsonl}]\n")
    assert repr(load_task_yaml(tmp_path / "min.yaml")) == repr(Task(
        name="m", description="custom task from min.yaml", text_fields=("text",), label_names=("a", "b"),
        train=Source(path=f"{d}/t.jsonl"), eval_sets=(EvalSet("e", Source(path=f"{d}/e.jsonl")),)))


def test_a_copy_of_a_builtin_file_is_a_custom_task_equal_to_the_builtin(tmp_path):
    for task in list_tasks():
        if task.name == "demo":  # its data paths are relative to the package's task folder
            continue
        copy = shutil.copy(BUILTIN_DIR / f"{task.name}.yaml", tmp_path / "copy.yaml")
        assert get_task(str(copy)) == task


BASE = "name: x\ntext_fields: [text]\nlabel_names: [a, b]\ntrain: t.jsonl\neval: [{name: e, path: e.jsonl}]\n"
EVAL = "{name: e, path: e.jsonl}"


@pytest.mark.parametrize("text, message", [
    (BASE.replace("label_names", "labels"), r"unknown keys \['labels'\] \(did you mean 'label_names'\?\); allowed: "
                                            r"\['name', 'description', 'text_fields', 'label_names'"),
    (BASE.replace("label_names: [a, b]\n", ""), "missing required key 'label_names'"),
    (BASE.replace(EVAL, "{name: e, path: e.jsonl, domian: out}"),
     r"eval 'e': unknown keys \['domian'\] \(did you mean 'domain'\?\)"),
    (BASE.replace(EVAL, "{path: e.jsonl}"), "eval entry 1: missing required key 'name'"),
    (BASE.replace(EVAL, "test.jsonl"), "eval entry 1: expected a mapping with keys"),
    (BASE.replace(EVAL, "{name: e, path: e.jsonl, domain: inside}"), "eval 'e': 'domain' should be 'in' or 'out'"),
    (BASE.replace(EVAL, "{name: e}"), "eval 'e': no data: give 'path'"),
    (BASE.replace(EVAL, "{name: e, path: e.jsonl, hub: a/b, split: test}"), "eval 'e': 'path' names a file"),
    (BASE.replace(EVAL, "{name: e, hub: a/b}"), "eval 'e': hub 'a/b' needs a 'split'"),
    (BASE.replace(EVAL, "{name: e, local: e, split: test}"), "'split' belongs to a 'hub' source"),
    (BASE.replace("train: t.jsonl", "train: 3"), "train: expected a file path or a mapping"),
    (BASE.replace("[text]", "[]"), "'text_fields' must be a non-empty list of strings"),
    (BASE.replace("[a, b]", "[a, 1]"), "'label_names' must be a non-empty list of strings"),
    (BASE.replace("[a, b]", "[a]"), "'label_names' needs at least two labels"),
    (BASE.replace("[text]", "[text, text]"), "'text_fields' lists 'text' more than once"),
    (BASE + "patterns:\n  p: {template: x}\n", "pattern 'p': missing required key 'verbalizer'"),
    (BASE + "patterns:\n  p: {template: x, verbalizer: {a: A}, words: 1}\n", r"pattern 'p': unknown keys \['words'\]"),
    (BASE + "patterns:\n  p: {template: x, verbalizer: {a: A}}\n",
     r"pattern 'p' verbalizer must map every label \['a', 'b'\] to a word \(missing \['b'\]\)"),
    (BASE + "label_map: {0: 0, 1: 2}\n", r"label_map maps to \[2\], which are not label ids"),
    (BASE + "label_map: {zero: 0}\n", "label_map: key 'zero' should be a valid integer"),
    ("- a\n- b\n", "must hold a mapping"),
    ("name: [unclosed\n", "is not valid YAML"),
])
def test_a_malformed_task_file_names_the_key_and_what_to_do(tmp_path, text, message):
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(TaskError, match=message):
        load_task_yaml(tmp_path / "t.yaml")


def test_a_custom_task_may_name_local_and_hub_data_and_map_labels(tmp_path):
    (tmp_path / "t.yaml").write_text(BASE.replace("train: t.jsonl", "train: {local: x/train, hub: org/x, split: train}")
                                     .replace(EVAL, "{name: e, local: x/dev, optional: true, subset_fields: src, "
                                                    "label_map: {0: 1, 1: 0, 2: null}}") + "label_map: {5: 1, 6: 0}\n")
    task = load_task_yaml(tmp_path / "t.yaml")
    assert task.train == Source(local="x/train", hub=("org/x", None, "train"))
    assert task.eval_sets == (EvalSet("e", Source(local="x/dev"), optional=True, subset_fields=("src",),
                                      label_map={0: 1, 1: 0, 2: None}),)
    assert task.label_map == {5: 1, 6: 0}


def test_the_documented_task_file_with_every_key_is_valid(tmp_path):
    page = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text()
    block = page.split("Every key the schema accepts:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "tickets.yaml").write_text(block)
    task = load_task_yaml(tmp_path / "tickets.yaml")
    keys = {line.split(":")[0] for line in block.splitlines() if line[:1].isalpha()}
    assert keys == set(TaskSpec.model_fields)  # docs/tasks.md shows every key of the schema
    assert [e.name for e in task.eval_sets] == ["test", "other_product", "by_source", "archive"]


def test_every_shipped_file_of_the_package_is_package_data():
    """Files beside the code (task YAML, demo data, texts) reach a wheel only through package-data."""
    root = Path(__file__).resolve().parents[1]
    package = root / "src" / "tuneoff"
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered = {p for g in globs["tuneoff"] for p in package.glob(g) if p.is_file()}
    shipped = {p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert package / "tasks" / "builtin" / "mnli.yaml" in covered
    assert not shipped - covered, sorted(str(p.relative_to(package)) for p in shipped - covered)


def test_the_demo_generator_writes_the_shipped_files_byte_for_byte(tmp_path):
    demo = Path(tuneoff.__file__).parent / "tasks" / "data" / "demo"
    subprocess.run([sys.executable, "-B", str(demo / "generate.py"), str(tmp_path)], check=True, capture_output=True)
    for name in ("train.jsonl", "test.jsonl", "ood.jsonl"):
        assert (tmp_path / name).read_bytes() == (demo / name).read_bytes(), name


if __name__ == "__main__":
    FROZEN.write_text("".join(line + "\n" for line in current()))
    print(f"wrote {FROZEN}", file=sys.stderr)
