"""The built-in tasks stay what they were: their names, sources (local names, hub ids and splits,
the shipped demo files), labels, label maps, eval sets, patterns, metrics and instructions.

tests/data/builtin_tasks.txt holds the exact repr of every built-in `Task`, in registry order, with
the package folder written as <package> (so the snapshot does not depend on where it is installed).
A deliberate change to a built-in task rewrites it:  python tests/test_tasks.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import tuneoff
from tuneoff.tasks import EvalSet, Pattern, Source, Task, list_tasks, load_task_yaml

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


if __name__ == "__main__":
    FROZEN.write_text("".join(line + "\n" for line in current()))
    print(f"wrote {FROZEN}", file=sys.stderr)
