"""Bad input that must stop before any run, with a message naming the problem and what to do; text
from data and configs shown literally in the summary, the report, the CSV files and the terminal.

Each case list below is a module constant, one bad input a case; `test_the_bad_inputs_covered_number_
at_least_100` counts them with those of the other test files (ELSEWHERE)."""
from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from test_faults import TINY, _cli, _flat  # noqa: F401  (the same CLI helpers)
from tuneoff.store import Store
from tuneoff.tasks import TaskError, load_task_yaml

# -- bad input, before any run ---------------------------------------------------------------------

def test_a_label_given_twice_is_an_error(toy_task):
    text = toy_task.read_text().replace("label_names: [negative, positive]", "label_names: [positive, positive]")
    toy_task.write_text(text)
    res = _cli("validate", f"task={toy_task}")
    assert res.exit_code == 2 and "'label_names' lists 'positive' more than once" in _flat(res.output), res.output


def _bomb(indent: str = "") -> str:
    """The nested-anchor "billion laughs": nine levels of nine aliases each, 9**9 values expanded."""
    lines, prev = [f'{indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'], "a"
    for name in "bcdefghi":
        lines.append(f"{indent}{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    return "\n".join(lines) + "\n"


BOMB = "uses YAML aliases (*name of an anchor &name) that expand to more than 100,000 values: write the values " \
       "out, or use fewer aliases"

# key=value on the command line (`tuneoff validate ...`): (the overrides, the message)
OVERRIDES = [
    ("train.lr=inf", "config key 'train.lr': Input should be a finite number"),
    ("train.lr=nan", "config key 'train.lr': Input should be a finite number"),
    ("shots=true", "config key 'shots': got true: a boolean"),
    ("data_seed=[0,false]", "config key 'data_seed': got [0, false]: a boolean"),
    ("train.lr=-1", "config key 'train.lr': Input should be greater than 0, got -1"),
    ("train.batch_size=0", "config key 'train.batch_size': Input should be greater than or equal to 1, got 0"),
    ("train.warmup_ratio=1.5", "config key 'train.warmup_ratio': Input should be less than 1, got 1.5"),
    ("train.optimizer=sgd", "config key 'train.optimizer': Input should be 'adamw' or 'adamw_fused', got \"sgd\""),
    ("train.precision=fp16", "config key 'train.precision': Input should be 'fp32' or 'bf16', got \"fp16\""),
    ("device=tpu", "config key 'device': Input should be 'auto', 'cpu' or 'cuda', got \"tpu\""),
    ("max_length=4", "config key 'max_length': Input should be greater than or equal to 8, got 4"),
    ("eval.max_examples=0", "config key 'eval.max_examples': Input should be greater than or equal to 1, got 0"),
    ("forgetting.max_tokens=8", "config key 'forgetting.max_tokens': Input should be greater than or equal to 16"),
    ("shots=[8,-1]", "config key 'shots': shots must be >= 1 per class, got -1"),
    ("seed=[1,1]", "config key 'seed': lists 1 more than once; give each value once"),
    ("train=5", "config key 'train': is a section: give its keys (train.KEY=VALUE, or `train:` with keys under it)"),
    ("output_dir=", "config key 'output_dir': has no value (an empty `key=` or `key:`); give one, or leave the key"),
    ("save=maybe", "config key 'save': Input should be a valid boolean, unable to interpret input, got \"maybe\""),
    ("eval.sets=in_domain", "config key 'eval.sets': Input should be a valid list (e.g. [a, b]), got \"in_domain\""),
    ("method=lora method.r=0", "config key 'method.r': Input should be greater than or equal to 1, got 0"),
    ("method=lora method.scoring=bogus", "config key 'method.scoring': Input should be 'head' or 'pattern'"),
    ("method=lora method.alpah=16", "unknown config key 'method.alpah' (did you mean 'method.alpha'?); allowed:"),
    ("shot=8", "unknown config key 'shot' (did you mean 'shots'?); allowed: attn_implementation, data_dir,"),
    ("eval.batchsize=8", "unknown config key 'eval.batchsize' (did you mean 'eval.batch_size'?)"),
    ("select.protocol=loo", "config key 'select.protocol': Input should be 'cv', 'dev' or 'none', got \"loo\""),
    ("select.folds=1", "config key 'select.folds': Input should be greater than or equal to 2, got 1"),
    ("select.protocl=cv", "select key 'protocl' (did you mean 'protocol'?) is neither a selection setting"),
    ("select.shots=[8]", "select key 'shots': 'shots' defines the comparison and cannot be searched; search train.*"),
    ("select.train.lr=1e-4", "select key 'train.lr' needs a non-empty list of candidate values or a range {low: ..., high: ...}, got 0.0001"),
    ("method=icl method.k=16 shots=8", "shots=8 per class, but icl needs 16 per class (method.k=16): lower method.k"),
    (".lr=1", "override '.lr=1' has an empty key"),
    ("model=minilm", "model 'minilm' is not an embedded alias (minilm-l6, smollm2-135m), a local folder, or a hub id"),
    ("forgetting.text=/no/such.txt", "forgetting.text '/no/such.txt' is not a file; give a UTF-8 text file, or leave"),
    ("task=demo method=pattern pattern=gtp3", "task 'demo' has no pattern 'gtp3'; it has: minimal, gpt3, eval-harness"),
]


@pytest.mark.parametrize("overrides, message", OVERRIDES)
def test_a_bad_setting_is_an_error_naming_the_key_and_what_to_give(overrides, message):
    res = _cli("validate", "model=tiny-bert", *overrides.split())
    assert res.exit_code == 2 and message in _flat(res.output), res.output


def _file(path: Path, content) -> Path:
    """`content` written to `path`: text, bytes as they are, or None for a folder there."""
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# a run config file (`tuneoff validate PATH`): (its content, the message; PATH is the file's path)
CONFIG_FILES = [
    ("", "config file 'PATH' is empty: it must hold a mapping of keys (a run's settings, e.g. task: demo,"),
    ("[]\n", "config file 'PATH' must hold a mapping of keys (a run's settings, e.g. task: demo, model: minilm-l6, "
             "method: lora, shots: [8, 32]), got []"),
    ("false\n", "config file 'PATH' must hold a mapping of keys (a run's settings, e.g. task: demo"),
    ("{}\n", "config file 'PATH' holds an empty mapping: it must hold a mapping of keys"),
    ("task: demo\nshots: 8\ntask: cola\n", "config file 'PATH': the key 'task' is given twice (first on line 1, "
                                          "again on line 3): give each key once"),
    ("train:\n  lr: 1.0e-4\n  lr: 1.0e-3\n", "config file 'PATH': the key 'lr' is given twice (first on line 2, "
                                             "again on line 3)"),
    ("trian:\n  lr: 1.0e-4\n", "unknown config key 'trian' (did you mean 'train'?); allowed:"),
    ("task: demo\n\tshots: 8\n", "config file 'PATH' is not valid YAML: while scanning a plain scalar at line 1, "
                                  "column 7 found a tab character that violates indentation at line 2, column 1"),
    ("task: demo\nx: &a [*a]\n", "config file 'PATH' " + BOMB),  # an alias inside itself: endless
    (b"task: d\xe9mo\n", "config file 'PATH' is not UTF-8 text (byte 0xe9 at offset 7): save it as UTF-8"),
    (None, "config file 'PATH' is a folder, not a file: give the path of a YAML file"),
]


@pytest.mark.parametrize("content, message", CONFIG_FILES)
def test_a_bad_config_file_is_named_with_what_it_must_hold(tmp_path, content, message):
    path = _file(tmp_path / "run.yaml", content)
    res = _cli("validate", path)
    assert res.exit_code == 2 and message.replace("PATH", str(path)) in _flat(res.output), res.output


def test_a_sweep_config_given_to_run_says_to_run_it_with_sweep_and_validate_checks_it(tmp_path):
    path = _file(tmp_path / "run.yaml", "defaults:\n  task: demo\n  output_dir: " + str(tmp_path / "res") + "\n")
    res = _cli("run", path)
    assert res.exit_code == 2 and (f"{str(path)!r} is a sweep config (it has 'defaults'), not a run config: run it "
                                   f"with `tuneoff sweep {path}`") in _flat(res.output), res.output
    res = _cli("validate", path)  # validate takes either
    assert res.exit_code == 0 and f"valid: sweep {path}:" in _flat(res.output), res.output
    assert not (tmp_path / "res").exists()


SWEEP_HOLDS = "(defaults: the settings every run shares, grid: keys with lists of values, and/or methods: the methods"
# a sweep config file (`tuneoff sweep PATH --dry-run`): (its content, the message)
SWEEP_FILES = [
    ("", f"sweep config 'PATH' is empty: it must hold a mapping of keys {SWEEP_HOLDS}"),
    ("[]\n", f"sweep config 'PATH' must hold a mapping of keys {SWEEP_HOLDS} to compare), got []"),
    ("false\n", f"sweep config 'PATH' must hold a mapping of keys {SWEEP_HOLDS} to compare), got false"),
    ("{}\n", f"sweep config 'PATH' holds an empty mapping: it must hold a mapping of keys {SWEEP_HOLDS}"),
    ("methods: [lora]\nmethods: [head]\n", "sweep config 'PATH': the key 'methods' is given twice (first on line 1, "
                                           "again on line 2)"),
    ("methds: [finetune]\n", "unknown sweep key 'methds' (did you mean 'methods'?); allowed: defaults, grid, "
                             "methods, recommend"),
    ("grid: {train.lr: 0.001}\n", "grid key 'train.lr' needs a non-empty list of values, got 0.001"),
    ("grid: {method: [lora]}\n", "grid key 'method': list methods (with their options) under `methods:`"),
    ("grid: {tasks: [demo], task: [demo]}\n", "grid key 'task' is given twice (once by its plural alias)"),
    ("grid: {train.epoch: [1, 2]}\n", "unknown config key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("methods: [{name: lora, overrides: {method.r: 8}}]\n", "'method.r' cannot be overridden: give method options "
                                                            "in the entry itself (e.g. {name: lora, r: 8})"),
    ("methods: [{name: lora, rr: 8}]\n", "unknown config key 'method.rr' (did you mean 'method.r'?)"),
    ("methods: [{r: 8}]\n", "sweep key 'methods.0.name': is required and missing"),
    ("grid: {output_dir: [a, b]}\n", "runs name several output_dir values: ['a', 'b']; set output_dir once, under "
                                     "defaults:"),
    ("defaults: [task]\n", "sweep key 'defaults': is a section: give its keys"),
    ("recommend: {max_memory: huge}\n", "memory 'huge': write a number with a unit, such as 4GB or 512MB"),
    ("defaults: {select.protocol: cv, select.train.lr: [1.0e-4, 1.0e-3]}\ngrid: {train.lr: [1.0e-4]}\n",
     "'train.lr' is both in the grid and in select's search space"),
]


@pytest.mark.parametrize("content, message", SWEEP_FILES)
def test_a_bad_sweep_file_is_named_with_what_it_must_hold(tmp_path, content, message):
    path = _file(tmp_path / "sweep.yaml", content)
    res = _cli("sweep", path, "--dry-run")
    assert res.exit_code == 2 and message.replace("PATH", str(path)) in _flat(res.output), res.output


TASK = "name: x\ntext_fields: [text]\nlabel_names: [a, b]\ntrain: t.jsonl\neval:\n  - {name: e, path: e.jsonl}\n"
PATTERN = "patterns:\n  p: {template: '{text} It was', verbalizer: {a: ' A', b: ' B'}}\n"
# a task file (`task=PATH`): (its content, the message)
TASK_FILES = [
    ("", "task file 'PATH' is empty: it must hold a mapping of keys (name:, text_fields:, label_names:, train: and"),
    ("false\n", "task file 'PATH' must hold a mapping of keys (name:, text_fields:, label_names:, train: and eval:"),
    (TASK + "label_map: {0: 1}\nlabel_map: {0: 0}\n", "task file 'PATH': the key 'label_map' is given twice (first "
                                                     "on line 7, again on line 8)"),
    (TASK.replace("name: x", "name: ''"), "'name' is empty: give the task a name"),
    (TASK.replace("name: x\n", "name: x\nnmae: y\n"), "unknown keys ['nmae'] (did you mean 'name'?)"),
    (TASK + PATTERN.replace("{text}", "{txt}"), "pattern 'p' template has the slot {txt}, which is not a text field; "
                                                "slots name text fields: {text}"),
    (TASK + PATTERN.replace("{text} It", "{text} { It"), "pattern 'p': template '{text} { It was' is malformed"),
    (TASK + PATTERN.replace("' B'", "' A'"), "pattern 'p' verbalizer gives the word ' A' to several labels; each "
                                            "label needs a word of its own"),
    (TASK + PATTERN.replace("' A'", "1"), "pattern 'p'.verbalizer: 'a' should be a valid string, got 1"),
    (TASK + "patterns: [p]\n", "'patterns' should be a valid dictionary, got ['p']"),
    (TASK.replace("[a, b]", "a, b"), "'label_names' needs at least two labels, as a list such as [negative, positive]"),
    (TASK.replace("eval:\n  - ", "eval: "), "'eval' must be a list of eval sets, at least one, each with a 'name'"),
    (TASK.replace("e.jsonl}", "e.jsonl, optional: maybe}"), "eval 'e': 'optional' should be a valid boolean"),
    (TASK.replace("e.jsonl}", "e.jsonl, subset_fields: 3}"), "eval 'e': 'subset_fields' should be a list, got 3"),
    (b"name: caf\xe9\n", "task file 'PATH' is not UTF-8 text (byte 0xe9 at offset 9): save it as UTF-8"),
    (None, "task file 'PATH' is a folder, not a file: give the path of a YAML file"),
]


@pytest.mark.parametrize("content, message", TASK_FILES)
def test_a_bad_task_file_is_named_with_the_key_and_what_to_do(tmp_path, content, message):
    path = _file(tmp_path / "task.yaml", content)
    with pytest.raises(TaskError) as e:
        load_task_yaml(path)
    assert message.replace("PATH", str(path)) in _flat(str(e.value))


# an alias bomb in each place YAML is read: refused at once, not expanded (9**9 values) into memory
BOMBS = {
    "config": ("validate", "run.yaml", "task: demo\nx:\n" + _bomb("  "), "config file"),
    "sweep": ("sweep", "sweep.yaml", "methods: [finetune]\nanchors:\n" + _bomb("  "), "sweep config"),
    "task": ("validate", "task.yaml", TASK + "description:\n" + _bomb("  "), "task file"),
    "override": ("validate", None, "x=[" + ", ".join(f"&{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in
                                                    zip("abcdefgh", "bcdefghi")) + "]", "override"),
}


@pytest.mark.parametrize("kind", BOMBS)
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, kind):
    command, name, content, what = BOMBS[kind]
    if kind == "override":  # its first anchor is a list of strings, as in a file
        content = content.replace("x=[", "x=[&a [lol, lol, lol, lol, lol, lol, lol, lol, lol], ")
    path = _file(tmp_path / name, content) if name else None
    arg = {"config": path, "sweep": path, "task": f"task={path}", "override": content}[kind]
    empty = _file(tmp_path / "empty.yaml", "")
    _cli(command, {"config": empty, "sweep": empty, "task": f"task={empty}", "override": "x=1"}[kind])  # imports
    start = time.monotonic()
    res = _cli(command, arg, *(["--dry-run"] if command == "sweep" else []))
    assert time.monotonic() - start < 5, "the aliases were expanded"
    where = f"{what} {str(path)!r}" if path else f"override {content!r}"
    assert res.exit_code == 2 and f"{where} {BOMB}" in _flat(res.output), res.output


# data files of a custom task (read when a run loads them): (file name, content, the message)
DATA_FILES = [
    ("t.csv", "sentence,label\na,0\n", "missing column(s) ['text']; expected columns ['text', 'label'] (has "
                                       "['sentence', 'label'])"),
    ("t.jsonl", '{"text": "a"}\n', "missing column(s) ['label']; expected columns ['text', 'label'] (has ['text'])"),
]


@pytest.mark.parametrize("name, content, message", DATA_FILES)
def test_a_data_file_without_a_column_names_it(tmp_path, name, content, message):
    from tuneoff.data import DataError, load_train

    (tmp_path / name).write_text(content)
    task = _file(tmp_path / "task.yaml", TASK.replace("t.jsonl", name))
    with pytest.raises(DataError) as e:
        load_train(load_task_yaml(task), None)
    assert message in _flat(str(e.value)) and name in str(e.value)


# whole commands: (the arguments, the message; FILE is a file that is not a folder)
COMMANDS = [
    (["run", "shots", "8"], "config file 'shots' does not exist; a setting is written key=value, e.g. shots=8"),
    (["recommend", "res", "--max-memory", "huge"], "memory 'huge': write a number with a unit, such as 4GB or 512MB"),
    (["recommend", "res", "--max-train-cpu", "soon"], "CPU time 'soon': write seconds or a duration such as "
                                                       "90s, 10m, 1h30m"),
    (["recommend", "res", "--max-train-time", "soon"], "CPU time 'soon': write seconds or a duration such as "
                                                        "90s, 10m, 1h30m"),
    (["recommend", "res", "--max-flops", "many"], "FLOPs 'many': write a number with a unit, such as 2e15, 500T or "
                                                   "1.5P"),
    (["recommend", "res", "--max-trainable-params", "lots"], "trainable parameters 'lots': write a number with a "
                                                              "unit, such as 1M or 250k"),
    (["recommend", "res", "--domain", "sideways"], "domain: Input should be 'in' or 'out'"),
    (["ls", "things"], "unknown list 'things'; use one of: tasks, methods, models"),
    (["sweep", "FILE", "--executor", "bogus", "--dry-run"], "unknown executor 'bogus'; use local or ray"),
    (["run", "output_dir=FILE/sub"], "output_dir FILE/sub cannot be created: FILE is a file"),
    (["validate", "shots=[" + "8, " * 100 + "8]"], "config key 'shots': lists 8 more than once"),  # no file name
]


@pytest.mark.parametrize("args, message", COMMANDS)
def test_a_bad_command_line_says_what_to_write(tmp_path, args, message):
    file = _file(tmp_path / "plain.txt", "methods: [finetune]\n")
    res = _cli(*[a.replace("FILE", str(file)) for a in args])
    assert res.exit_code == 2 and message.replace("FILE", str(file)) in _flat(res.output), res.output


def test_a_malformed_lease_is_an_error_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEOFF_LEASE_S", "soon")
    res = _cli("run", *TINY, "data_seed=0", f"output_dir={tmp_path / 'res'}")
    assert res.exit_code == 2 and "TUNEOFF_LEASE_S='soon'" in _flat(res.output) and "run(s)" not in res.output


def test_device_cuda_without_a_gpu_stops_before_the_first_run(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = _cli("run", *TINY, "data_seed=0", "device=cuda", f"output_dir={tmp_path / 'res'}")
    assert res.exit_code == 2 and "device=cuda but no CUDA GPU is visible" in _flat(res.output), res.output
    assert not (tmp_path / "res").exists()


def test_a_model_with_its_own_code_names_tuneofs_key(monkeypatch):
    from tuneoff import models

    def refuse(*a, **k):
        raise ValueError("The repository owner/name contains custom code which must be executed to correctly "
                         "load the model. You can inspect the repository content at https://hf.co/owner/name "
                         "first.\nPlease pass the argument `trust_remote_code=True` to allow custom code to be run.")

    monkeypatch.setattr(models.AutoConfig, "from_pretrained", refuse)
    with pytest.raises(models.ModelError) as e:
        models.check_spec("owner/name")
    assert "set trust_remote_code=true (the config key)" in str(e.value)


# -- escaping ------------------------------------------------------------------------------------

NASTY = ["[x](javascript:alert(1))", "<img src=x onerror=alert(1)>", "a|b", "[bold]loud"]


def test_text_from_data_is_inert_in_summary_report_and_terminal(tmp_path):
    from rich.console import Console

    from test_report import make_record
    from tuneoff.report import write_report
    from tuneoff.summary import print_summary, write_folder_summary

    store = Store(tmp_path)
    store.put(make_record(task=NASTY[0], method="finetune", labels=tuple(NASTY[1:3])))
    store.put(make_record(task=NASTY[0], method="head", status="failed",
                          error="RuntimeError: ![t](http://evil.example/x.png) <script>alert(1)</script> [bold]x"))
    md, _ = write_folder_summary(store)
    write_report(tmp_path, html_path=tmp_path / "r.html", md_path=tmp_path / "r.md", n_boot=50)
    for text in (md.read_text(), (tmp_path / "r.md").read_text()):
        assert "<script>" not in text and "<img" not in text
        assert "[x](javascript" not in text and "![t](http" not in text  # no live link, no remote image
        assert "\\[x\\](javascript:alert(1))" in text
        for line in text.splitlines():  # every table row keeps its number of cells
            if line.startswith("|") and "a\\|b" in line:
                assert "a|b" not in line.replace("a\\|b", "")
    html = (tmp_path / "r.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    console = Console(record=True, width=300)
    print_summary(console, store.records())
    shown = console.export_text()
    assert NASTY[0] in _flat(shown) and "[bold]x" in shown


# -- the count: at least 100 distinct bad inputs, each with its message asserted -------------------

# the cases of this file, one bad input each
HERE = {"OVERRIDES": OVERRIDES, "CONFIG_FILES": CONFIG_FILES, "SWEEP_FILES": SWEEP_FILES, "TASK_FILES": TASK_FILES,
        "BOMBS": BOMBS, "DATA_FILES": DATA_FILES, "COMMANDS": COMMANDS}
# tests that assert the message of bad inputs one by one: test -> how many distinct ones (None: one per
# parametrized case). An input tested in two places counts once (test_cli's train.lrr=1 is test_config's;
# test_data's `labels:` key and unknown task 'nope' are test_tasks' and test_cli's).
ELSEWHERE = {
    "test_bad_input::test_a_label_given_twice_is_an_error": 1,
    "test_bad_input::test_a_malformed_lease_is_an_error_before_any_run": 1,
    "test_bad_input::test_device_cuda_without_a_gpu_stops_before_the_first_run": 1,
    "test_bad_input::test_a_model_with_its_own_code_names_tuneofs_key": 1,
    "test_config::test_unknown_key_names_key_and_allowed_values": 2,
    "test_config::test_wrong_type_names_key": 2,
    "test_config::test_unknown_method_and_method_option": 2,
    "test_config::test_override_without_equals_and_bad_yaml": 4,
    "test_config::test_union_type_errors_are_said_once_in_plain_words": 3,
    "test_config::test_seeds_are_non_negative_and_lists_non_empty": 2,
    "test_config::test_an_option_for_a_method_without_options_says_so": 2,
    "test_config::test_max_length_is_a_top_level_key_and_train_max_length_its_old_name": 1,
    "test_cli::test_bad_input_exits_with_a_clear_message": 3,
    "test_cli::test_a_task_file_given_as_the_config_says_to_write_task_equals": 1,
    "test_cli::test_what_would_fail_every_run_is_an_error_before_any_run": 6,
    "test_cli::test_selection_from_the_command_line": 1,
    "test_tasks::test_a_malformed_task_file_names_the_key_and_what_to_do": None,
    "test_data::test_csv_and_missing_file_errors": 2,
    "test_data::test_missing_column_names_file_and_expected_columns": 1,
    "test_data::test_label_not_in_task": 2,
    "test_data::test_custom_task_yaml_validation": 4,
    "test_data::test_too_many_shots_names_class_and_size": 1,
    "test_data::test_a_missing_or_fractional_label_is_named": None,
    "test_data::test_an_invalid_jsonl_line_and_an_empty_file_are_named": 2,
    "test_faults::test_a_damaged_store_is_named_nothing_is_overwritten_and_repair_rebuilds_it": None,
    "test_faults::test_a_missing_store_beside_manifests_is_damage_not_a_fresh_start": 1,
    "test_faults::test_repair_refuses_a_folder_that_a_live_process_is_using": 1,
    "test_faults::test_a_row_with_invalid_json_is_reported_and_skipped_then_repaired": 1,
    "test_faults::test_a_read_only_store_or_folder_stops_before_any_run": None,
    "test_faults::test_a_store_that_fails_after_the_run_keeps_the_result_in_the_manifest": 1,
    "test_faults::test_a_run_folder_that_fails_after_the_run_keeps_the_record_elsewhere": 1,
    "test_injection::test_a_formula_in_a_name_is_text_in_every_csv": None,
    "test_injection::test_an_escape_sequence_in_a_name_never_reaches_the_terminal": None,
}


def _cases(test: str, count: int | None) -> int:
    module, name = test.split("::")
    fn = getattr(importlib.import_module(module), name)  # a renamed or removed test fails the count
    if count is not None:
        return count
    (mark,) = [m for m in fn.pytestmark if m.name == "parametrize"]
    return len(mark.args[1])


def bad_input_count() -> dict[str, int]:
    """Distinct bad inputs per place: this file's case lists, then each test elsewhere."""
    return {**{name: len(cases) for name, cases in HERE.items()},
            **{test: _cases(test, n) for test, n in ELSEWHERE.items()}}


def test_the_bad_inputs_covered_number_at_least_100():
    counts = bad_input_count()
    assert sum(counts.values()) >= 100, counts
    for cases in (OVERRIDES, CONFIG_FILES, SWEEP_FILES, TASK_FILES, COMMANDS):  # no case given twice
        assert len({repr(c[0]) for c in cases}) == len(cases)
