"""Same inputs and the same labels for every method family.

- Two text fields reach a decoder's classification head joined by the task's `pair_separator` (a
  decoder's tokenizer glued the pair: "...on the matA cat..."); an encoder keeps its tokenizer's pair
  format; a single text is unchanged. The exact input of the first eval and training example is
  recorded, and only the runs whose input changed (a classification head on a task of several text
  fields) changed their method version.
- distill's teacher may calibrate where icl's may: selection searches it, in the grid and in optuna.
- Every run records the labels its result depended on, selection included (`labels_seen`).
Tiny random models, a few steps each; the embedded models' tokenizers only where they are installed.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from tuneoff import models  # noqa: E402
from tuneoff.config import load_config  # noqa: E402
from tuneoff.methods import list_methods  # noqa: E402
from tuneoff.methods.base import ClassifierMethod, Context  # noqa: E402
from tuneoff.methods.finetune import Finetune  # noqa: E402
from tuneoff.pipeline import prepare  # noqa: E402
from tuneoff.plan import run_one  # noqa: E402
from tuneoff.registry import get_method  # noqa: E402
from tuneoff.selection import search  # noqa: E402
from tuneoff.selection.cache import NoCache  # noqa: E402
from tuneoff.store import Store  # noqa: E402
from tuneoff.tasks import TaskError, get_task, load_task_yaml  # noqa: E402

from conftest import write_jsonl  # noqa: E402

PREMISE, HYPOTHESIS = "The cat sat on the mat", "A cat is sitting."  # no final punctuation on the premise
CLASSIFIER_HEADS = sorted(c.name for c in list_methods() if issubclass(c, ClassifierMethod))


def pair_task(folder, separator: str | None = None):
    """A toy task of two text fields (the second gives the label away), with a pattern whose "|" puts
    that character into a tiny model's vocabulary."""
    nouns = ["cake", "soup", "film", "phone", "room", "book", "song", "game"]

    def rows(n, offset):
        return [{"idx": offset + i, "premise": f"the {nouns[i % len(nouns)]} sat on the mat",
                 "hypothesis": f"it was {'good' if i % 2 else 'bad'}", "label": i % 2} for i in range(n)]

    write_jsonl(folder / "train.jsonl", rows(40, 0))
    write_jsonl(folder / "test.jsonl", rows(10, 100))
    path = folder / "pairs.yaml"
    path.write_text("name: pairs\ntext_fields: [premise, hypothesis]\nlabel_names: [different, same]\n"
                    + (f"pair_separator: {separator!r}\n" if separator is not None else "")
                    + "train: train.jsonl\neval:\n  - {name: test, path: test.jsonl}\n"
                    "patterns:\n  simple: {template: '{premise} | {hypothesis} ?',\n"
                    "                  verbalizer: {different: ' bad', same: ' good'}}\n")
    return str(path)


def prep(task, model, method="finetune", *extra):
    return prepare(load_config(None, [f"task={task}", f"model={model}", f"method={method}", "shots=4",
                                      "data_seed=0", "seed=0", "device=cpu", "train.max_steps=1", *extra]))


def installed(alias: str) -> bool:
    try:
        models.check_spec(alias)
    except models.ModelError:
        return False
    return True


def with_tokenizer(task, alias: str) -> Finetune:
    """A classification head's input side on an embedded model's own tokenizer (no weights loaded)."""
    from transformers import AutoConfig, AutoTokenizer

    path = models.resolve(alias)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    loaded = models.Loaded(torch.nn.Linear(1, 1), tok, models.is_decoder_config(AutoConfig.from_pretrained(path)),
                           alias)
    ctx = Context(task=task, loaded=loaded, device=torch.device("cpu"), seed=0, data_seed=0, max_length=256,
                  eval_batch_size=8)
    return Finetune(Finetune.Options(), ctx)


# -- the input a classification head reads ---------------------------------------------------------

def test_a_decoder_reads_two_text_fields_joined_by_the_tasks_separator(tmp_path):
    p = prep(pair_task(tmp_path, " | "), "tiny-llama")
    m, ex = p.method, p.data.few[0]
    joined = ex["premise"] + " | " + ex["hypothesis"]
    assert m.texts([ex]) == ([joined], None)
    batch = m.collate([ex])
    assert batch["input_ids"][0].tolist() == m.tokenizer(joined)["input_ids"]
    bar = m.tokenizer.convert_tokens_to_ids("|")
    assert bar != m.tokenizer.unk_token_id and bar in batch["input_ids"][0].tolist()  # the model sees it
    assert m.prompt_example(ex) == joined  # lowercase words: the tiny tokenizer's own decoding


def test_a_joined_text_too_long_is_cut_from_its_start_as_a_patterns_query_is(tmp_path):
    m = prep(pair_task(tmp_path, " | "), "tiny-llama", "finetune", "max_length=8").method
    ex = {"id": "x", "premise": "the cake the soup the film sat on the mat", "hypothesis": "it was good", "label": 1}
    assert m.prompt_example(ex) == "sat on the mat | it was good"  # the hypothesis whole, the head reads its end
    encoder = prep(pair_task(tmp_path, " | "), "tiny-bert", "finetune", "max_length=8").method
    assert encoder.prompt_example(ex) == "[CLS] the cake the [SEP] it was [SEP]"  # an encoder: its own rule


def test_the_default_separator_is_a_line_break(tmp_path):
    task = load_task_yaml(pair_task(tmp_path))
    assert task.pair_separator == "\n" and get_task("mnli").pair_separator == "\n"
    m = prep(str(tmp_path / "pairs.yaml"), "tiny-llama").method
    ex = {"id": "x", "premise": "a b", "hypothesis": "c", "label": 0}
    assert m.texts([ex]) == (["a b\nc"], None)


def test_an_encoder_keeps_its_tokenizers_pair_format(tmp_path):
    p = prep(pair_task(tmp_path, " | "), "tiny-bert")
    m, ex = p.method, p.data.few[0]
    assert m.texts([ex]) == ([ex["premise"]], [ex["hypothesis"]])
    batch = m.collate([ex])
    pair = m.tokenizer(ex["premise"], ex["hypothesis"])
    assert {k: v[0].tolist() for k, v in batch.items() if k != "labels"} == dict(pair)  # segment ids if any
    assert m.prompt_example(ex) == f"[CLS] {ex['premise']} [SEP] {ex['hypothesis']} [SEP]"


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-bert"])
def test_a_single_text_is_read_as_it_always_was(model, toy_task):
    m, ex = (p := prep(str(toy_task), model)).method, p.data.few[0]
    assert m.texts([ex]) == ([ex["text"]], None)
    assert m.collate([ex])["input_ids"][0].tolist() == m.tokenizer(ex["text"])["input_ids"]


@pytest.mark.skipif(not installed("smollm2-135m"), reason="the embedded SmolLM2 is not installed")
def test_smollm2_reads_the_premise_and_hypothesis_apart():
    m = with_tokenizer(get_task("mnli"), "smollm2-135m")
    ex = {"id": "0", "premise": PREMISE, "hypothesis": HYPOTHESIS, "label": 0}
    glued = m.tokenizer(PREMISE, HYPOTHESIS)["input_ids"]  # what the tokenizer's pair gave before
    assert m.tokenizer.decode(glued) == "The cat sat on the matA cat is sitting."
    ids = m.collate([ex])["input_ids"][0].tolist()
    assert m.prompt_example(ex) == "The cat sat on the mat\nA cat is sitting."
    newline = m.tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert ids == glued[:6] + newline + glued[6:]  # one token more, every other token as it was


@pytest.mark.skipif(not installed("minilm-l6"), reason="the embedded MiniLM is not installed")
def test_minilm_keeps_cls_sep_and_segment_ids():
    m = with_tokenizer(get_task("mnli"), "minilm-l6")
    ex = {"id": "0", "premise": PREMISE, "hypothesis": HYPOTHESIS, "label": 0}
    batch, pair = m.collate([ex]), m.tokenizer(PREMISE, HYPOTHESIS)
    assert batch["input_ids"][0].tolist() == pair["input_ids"]
    assert batch["token_type_ids"][0].tolist() == pair["token_type_ids"]
    assert m.prompt_example(ex) == "[CLS] the cat sat on the mat [SEP] a cat is sitting. [SEP]"


@pytest.mark.parametrize("separator", ["", "x", "and", " then"])
def test_a_separator_that_would_fuse_with_a_word_is_refused(tmp_path, separator):
    with pytest.raises(TaskError, match="'pair_separator'.*would fuse"):
        load_task_yaml(pair_task(tmp_path, separator))


def test_the_record_shows_the_exact_input_of_an_eval_and_a_training_example(tmp_path):
    task = pair_task(tmp_path, " | ")
    cfg = load_config(None, [f"task={task}", "model=tiny-llama", "method=finetune", "shots=4", "data_seed=0",
                             "device=cpu", "train.max_steps=1", f"output_dir={tmp_path / 'out'}"])
    rec = run_one(cfg, Store(tmp_path / "out"))
    assert rec["status"] == "done", rec.get("error")
    p = prep(task, "tiny-llama")
    ev, tr = p.data.evals["test"][0], p.data.few[0]
    assert rec["prompt_example"] == {"id": ev["id"], "from": "test"}
    assert rec["prompt"] == f"{ev['premise']} | {ev['hypothesis']}"
    assert rec["train_prompt_example"] == {"id": tr["id"], "from": "train"}
    assert rec["train_prompt"] == f"{tr['premise']} | {tr['hypothesis']}"
    assert rec["pattern"] is None  # a classification head renders no pattern


# -- versions and run ids -----------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSIFIER_HEADS)
def test_only_a_classification_heads_runs_on_pair_tasks_change_version(name):
    cls, opts = get_method(name), get_method(name).Options()
    single, pair = cls.version_for(opts, get_task("cola")), cls.version_for(opts, get_task("mnli"))
    assert single == cls.version_for(opts) == cls.version and pair == single + 1


def test_lm_scored_methods_keep_their_version_on_pair_tasks():
    for name, opts in [("pattern", {}), ("icl", {}), ("distill", {}), ("lora", {"scoring": "pattern"})]:
        cls = get_method(name)
        o = cls.Options(**opts)
        assert cls.version_for(o, get_task("mnli")) == cls.version_for(o, get_task("cola"))


def test_run_ids_change_for_pair_tasks_only(monkeypatch):
    def run_id(*over):
        return load_config(None, ["model=smollm2-135m", "shots=16", "data_seed=0", *over]).run_id()

    cola, mnli = run_id("task=cola", "method=finetune"), run_id("task=mnli", "method=finetune")
    monkeypatch.setattr(ClassifierMethod, "version_for", classmethod(lambda cls, o, t=None: cls.version))
    assert run_id("task=cola", "method=finetune") == cola  # single text: the id it always had
    assert run_id("task=mnli", "method=finetune") != mnli  # a pair: a new id
    assert load_config(None, ["task=no-such-task", "method=finetune"]).expand()[0].method_version == 1


def test_a_version_that_goes_with_the_task_does_not_split_a_methods_label():
    from tuneoff.describe import labels
    from tuneoff.record import Record

    def rec(i, task, version=None):
        c = load_config(None, [f"task={task}", "method=finetune", "model=smollm2-135m", "shots=16", "data_seed=0"])
        return Record.create(run_id=str(i), config=c.resolved(), task=task, model=c.model, method="finetune",
                             method_version=version or c.method_version, status="done")

    cola, mnli = rec(0, "cola"), rec(1, "mnli")
    assert (cola.method_version, mnli.method_version) == (1, 2)
    assert [lab.variant for lab in labels([cola, mnli])] == ["finetune", "finetune"]  # one row across tasks
    old = rec(2, "mnli", version=1)  # a glued-pair run from before, in the same store: told apart
    assert [lab.variant for lab in labels([cola, mnli, old])] == [
        "finetune(version=1)", "finetune(version=2)", "finetune(version=1)"]


# -- distill's teacher calibration ---------------------------------------------------------------

@pytest.mark.parametrize("student", ["full", "lora"])
def test_distill_searches_its_teachers_calibration_as_icl_does(student):
    base = ["task=demo", "model=tiny-llama", "method=distill", "method.k=1", f"method.student={student}",
            "shots=4", "data_seed=0", "select.protocol=cv"]
    grid = load_config(None, [*base, "select.search=grid"]).search_space()
    optuna = load_config(None, [*base, "select.search=optuna"]).search_space()
    icl = load_config(None, ["task=demo", "model=tiny-llama", "method=icl", "method.k=1", "shots=4",
                             "select.protocol=dev", "select.search=grid"]).search_space()
    assert grid["method.calibrate"] == optuna["method.calibrate"] == icl["method.calibrate"] == [False, True]
    assert len(grid["train.lr"]) == 3 and optuna["train.lr"].low < min(grid["train.lr"])


def test_distill_grid_candidates_include_a_calibrated_teacher(tmp_path):
    cfg = load_config(None, ["task=demo", "model=tiny-llama", "method=distill", "method.k=1", "shots=4",
                             "data_seed=0", "seed=0", "device=cpu", "train.max_steps=1", "eval.max_examples=8",
                             "select.protocol=cv", "select.search=grid"]).expand()[0]
    sel = search.select(cfg, NoCache())
    values = [c["values"] for c in sel.record["candidates"]]
    assert {v["method.calibrate"] for v in values} == {False, True} and len(values) == 6
    assert "method.calibrate" in sel.chosen


def test_distill_optuna_trials_sample_the_teachers_calibration():
    cfg = load_config(None, ["task=demo", "model=tiny-llama", "method=distill", "method.k=1", "shots=4",
                             "data_seed=0", "seed=0", "device=cpu", "eval.max_examples=8", "select.protocol=cv",
                             "select.search=optuna", "select.trials=3", "select.extensions=0", "select.repeats=1",
                             "select.pruner=none", "select.length={low: 1, high: 1, limit: 1}"]).expand()[0]
    sel = search.select(cfg, NoCache())
    values = [t["values"] for t in sel.record["trials"]]
    assert len(values) == 3 and all(isinstance(v["method.calibrate"], bool) for v in values)
    assert sel.record["space"]["method.calibrate"] == [False, True] and "method.calibrate" in sel.chosen


# -- the labels every run saw --------------------------------------------------------------------

TINY = ["task=demo", "model=tiny-llama", "shots=4", "data_seed=0", "seed=0", "device=cpu", "train.max_steps=1",
        "eval.max_examples=8"]


@pytest.mark.parametrize("extra, seen", [
    (["method=finetune"], 8),  # the split: 4 per class
    (["method=finetune", "select.protocol=cv", "select.search=grid", "select.train.lr=[1e-4]"], 8),
    (["method=icl", "method.k=4", "select.protocol=dev", "select.search=grid"], 16),  # and its dev split
    (["method=icl", "method.k=4"], 8),
])
def test_every_run_records_the_labels_it_saw(tmp_path, extra, seen):
    rec = run_one(load_config(None, [*TINY, *extra, f"output_dir={tmp_path}"]).expand()[0], Store(tmp_path))
    assert rec["status"] == "done", rec.get("error")
    assert rec["labels_seen"] == rec.labels_seen == seen
    if rec.selection is not None:
        assert rec.labels_seen == rec.selection.labels_used_total
