import subprocess
import sys

import pytest

from conftest import write_jsonl
from tuneoff.data import DataError, cap_eval, checksum, load_eval, load_train, sample_few_shot
from tuneoff.tasks import TaskError, get_task, load_task_yaml


@pytest.fixture
def glue_dir(tmp_path):
    write_jsonl(tmp_path / "mnli" / "train.jsonl", [
        {"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "idx": i} for i in range(30)])
    write_jsonl(tmp_path / "mnli" / "validation_matched.jsonl", [
        {"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "idx": i} for i in range(9)])
    write_jsonl(tmp_path / "hans" / "validation.jsonl", [
        {"premise": "a", "hypothesis": "b", "label": i % 2, "idx": i,
         "heuristic": ["lexical_overlap", "subsequence", "constituent"][i % 3]} for i in range(12)])
    (tmp_path / "cola").mkdir()
    (tmp_path / "cola" / "train.csv").write_text("sentence,label,idx\nThe cat sat.,1,0\nCat the sat.,0,1\n")
    return tmp_path


def test_mnli_binary_drops_neutral_and_maps_contradiction(glue_dir):
    task = get_task("mnli")
    train = load_train(task, str(glue_dir))
    assert len(train) == 20  # the 10 neutral rows are dropped
    by_id = {ex["id"]: ex["label"] for ex in train}
    assert by_id["0"] == 0 and by_id["2"] == 1 and "1" not in by_id
    hans = load_eval(task, task.eval_set("hans"), str(glue_dir))
    assert len(hans) == 12 and hans[0]["heuristic"] == "lexical_overlap"
    # mismatched is optional: absent locally -> None, not an error
    assert load_eval(task, task.eval_set("validation_mismatched"), str(glue_dir)) is None
    three = load_train(get_task("mnli-3way"), str(glue_dir))
    assert len(three) == 30


def test_csv_and_missing_file_errors(glue_dir):
    cola = get_task("cola")
    train = load_train(cola, str(glue_dir))
    assert [ex["sentence"] for ex in train] == ["The cat sat.", "Cat the sat."]
    with pytest.raises(DataError, match=r"cola/validation\{\.jsonl"):
        load_eval(cola, cola.eval_set("in_domain"), str(glue_dir))
    with pytest.raises(DataError, match="training file for task 'rte' not found"):
        load_train(get_task("rte"), str(glue_dir))


def test_missing_column_names_file_and_expected_columns(tmp_path):
    write_jsonl(tmp_path / "mnli" / "train.jsonl", [{"premise": "a", "label": 0}])
    with pytest.raises(DataError) as e:
        load_train(get_task("mnli"), str(tmp_path))
    assert "train.jsonl" in str(e.value) and "'hypothesis'" in str(e.value)


def test_label_not_in_task(tmp_path, toy_task):
    write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "label": "neutral"}])
    with pytest.raises(DataError, match="'neutral'.*not one of the task's labels"):
        load_train(load_task_yaml(toy_task), None)
    write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "label": 5}])
    with pytest.raises(DataError, match="label 5"):
        load_train(load_task_yaml(toy_task), None)


def test_custom_task_yaml_validation(tmp_path, toy_task):
    task = get_task(str(toy_task))
    assert task.name == "toy" and [e.domain for e in task.eval_sets] == ["in", "out"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntext_fields: [text]\nlabel_names: [a, b]\ntrain: t.jsonl\neval: []\n")
    with pytest.raises(TaskError, match="'eval' must be a list"):
        load_task_yaml(bad)
    bad.write_text("name: x\ntext_fields: [text]\nlabels: [a, b]\ntrain: t.jsonl\neval: []\n")
    with pytest.raises(TaskError, match="unknown keys.*labels"):
        load_task_yaml(bad)
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        get_task("nope")
    base = toy_task.read_text()
    for extra, msg in [("main_metric: auc\n", "main_metric 'auc' is not one of \\['accuracy', 'mcc', 'f1'\\]"),
                       ("default_pattern: fancy\n", "default_pattern 'fancy' is not one of its patterns"),
                       ]:
        bad.write_text(base + extra)
        with pytest.raises(TaskError, match=msg):
            load_task_yaml(bad)
    bad.write_text(base.replace("name: shifted", "name: test"))
    with pytest.raises(TaskError, match="eval set names must be unique"):
        load_task_yaml(bad)


def _demo_pool():
    task = get_task("demo")
    return task, load_train(task, None)


def test_sampler_balanced_deterministic_and_seed_dependent():
    task, pool = _demo_pool()
    a = sample_few_shot(pool, 8, seed=0, task=task)
    b = sample_few_shot(pool, 8, seed=0, task=task)
    c = sample_few_shot(pool, 8, seed=1, task=task)
    assert [e["id"] for e in a] == [e["id"] for e in b]
    assert sorted(e["label"] for e in a) == [0] * 8 + [1] * 8
    assert set(e["id"] for e in a) != set(e["id"] for e in c)
    ids = [[e["id"] for e in sample_few_shot(pool, 4, s, task)] for s in range(10)]
    assert len({checksum(i) for i in ids}) == 10  # ten seeds, ten different splits


def test_sampler_same_across_processes():
    task, pool = _demo_pool()
    here = checksum([e["id"] for e in sample_few_shot(pool, 16, seed=7, task=task)])
    code = ("import random; random.seed(123);"  # global state must not matter
            "from tuneoff.tasks import get_task; from tuneoff.data import *;"
            "t=get_task('demo'); p=load_train(t, None);"
            "print(checksum([e['id'] for e in sample_few_shot(p, 16, 7, t)]))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there


def test_too_many_shots_names_class_and_size():
    task, pool = _demo_pool()
    with pytest.raises(DataError, match="label 'negative' has only 200 training examples"):
        sample_few_shot(pool, 201, 0, task)


def test_cap_eval_is_stratified_and_fixed():
    exs = [{"id": str(i), "label": i % 2, "h": "ab"[i % 4 // 2]} for i in range(400)]
    a = cap_eval(exs, 100, ("h",))
    assert a == cap_eval(exs, 100, ("h",)) and len(a) == 100
    counts = {}
    for e in a:
        counts[(e["label"], e["h"])] = counts.get((e["label"], e["h"]), 0) + 1
    assert set(counts.values()) == {25}
    assert cap_eval(exs, None) is exs


@pytest.mark.parametrize("label, message", [
    (None, "row 0 has no label (empty or null); give every row a label name or id"),
    ("", "row 0 has no label (empty or null)"),
    (0.5, "row 0 has label 0.5, not a whole number; give a label name or id"),
])
def test_a_missing_or_fractional_label_is_named(tmp_path, toy_task, label, message):
    write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "label": label}, {"text": "y", "label": 1}])
    with pytest.raises(DataError) as e:
        load_train(load_task_yaml(toy_task), None)
    assert "train.jsonl" in str(e.value) and message in str(e.value)


def test_a_whole_float_label_and_a_null_text_read_as_they_mean(tmp_path, toy_task):
    write_jsonl(tmp_path / "train.jsonl", [{"text": None, "label": 1.0}, {"text": "y", "label": 0}])
    exs = load_train(load_task_yaml(toy_task), None)
    assert (exs[0]["text"], exs[0]["label"]) == ("", 1)  # not "nan"


def test_an_invalid_jsonl_line_and_an_empty_file_are_named(tmp_path, toy_task):
    (tmp_path / "train.jsonl").write_text('{"text": "x", "label": 0}\n{"text": "y", label: 1}\n')
    with pytest.raises(DataError, match=r"line 2 is not a JSON object .*each line must hold one example"):
        load_train(load_task_yaml(toy_task), None)
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(DataError, match=r"train.jsonl' is empty: it holds no rows"):
        load_train(load_task_yaml(toy_task), None)
