"""pattern, icl and distill on tiny random models: what trains, how labels are scored, the prefix
cache and the demonstrations (distill: test_distill.py). Integration tests on SmolLM2 are marked slow."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tuneoff import prompts  # noqa: E402
from tuneoff.config import ConfigError, load_config  # noqa: E402
from tuneoff.evaluate import predict  # noqa: E402
from tuneoff.methods import MethodError  # noqa: E402
from tuneoff.methods.base import batch_to  # noqa: E402
from tuneoff.methods.icl import draw_demos, make_context  # noqa: E402
from tuneoff.pipeline import Toolbox, prepare  # noqa: E402
from tuneoff.plan import run_one  # noqa: E402
from tuneoff.store import Store  # noqa: E402
from tuneoff.train import train  # noqa: E402

DEMO_DATA = Path(__file__).resolve().parents[1] / "src" / "tuneoff" / "tasks" / "data" / "demo"


def prep(*overrides, model="tiny-llama"):
    return prepare(load_config(None, [f"model={model}", "device=cpu", "shots=8", "data_seed=0", *overrides]))


@pytest.fixture(scope="module")
def words_task(tmp_path_factory) -> str:
    """The demo data with a two-token answer word."""
    y = tmp_path_factory.mktemp("task") / "words.yaml"
    y.write_text(_words_yaml())
    return str(y)


def _words_yaml(*patterns: str) -> str:
    return ("name: words\ntext_fields: [text]\nlabel_names: [negative, positive]\n"
            f"train: {DEMO_DATA / 'train.jsonl'}\neval:\n  - {{name: test, path: {DEMO_DATA / 'test.jsonl'}}}\n"
            "patterns:\n"
            "  multi: {template: '{text} It was', verbalizer: {negative: ' bad', positive: ' very good'}}\n"
            + "".join(patterns))


def trainable(method) -> set[str]:
    return {n for n, p in method.model.named_parameters() if p.requires_grad}


def hand_logprobs(model, ids: list[int], word: list[int]) -> float:
    """log p(word | ids) from full, unpadded forward passes: the sum over the word's tokens."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids + word[:-1]])).logits[0].log_softmax(-1)
    return float(sum(logits[len(ids) - 1 + j, t] for j, t in enumerate(word)))


# -- what trains -------------------------------------------------------------------------------


def test_trainable_parameters_per_method():
    p = prep("method=pattern")
    assert trainable(p.method) == {n for n, _ in p.method.model.named_parameters()}
    assert p.method.model.get_output_embeddings() is not None  # the LM head, not a classifier
    i = prep("method=icl", "method.k=2")
    assert trainable(i.method) == set() and not i.method.trains
    d = prep("method=distill", "method.k=2")
    assert trainable(d.method) == {n for n, _ in d.method.model.named_parameters()}
    lora = prep("method=distill", "method.k=2", "method.student=lora", "method.lora_r=2")
    names = trainable(lora.method)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)


# -- pattern -----------------------------------------------------------------------------------


def test_pattern_scores_are_lm_logprobs_at_the_last_real_token():
    p = prep("method=pattern", "pattern=gpt3")
    m, exs = p.method, p.few[:4]
    batch = m.collate(exs)
    assert batch["attention_mask"].sum(1).unique().numel() > 1  # really padded
    with torch.no_grad():
        got = m.class_logits(batch)
    words = m.scorer.answers
    for r, ex in enumerate(exs):
        ids = m.tokenizer(prompts.render(m.scorer.pattern, ex), add_special_tokens=False)["input_ids"]
        for c, w in enumerate(words):
            assert got[r, c].item() == pytest.approx(hand_logprobs(m.model, ids, w), abs=1e-4)
    assert m.prompt_example(exs[0]) == exs[0]["text"] + " question: Is this review positive? Yes or No? answer:"


def test_multi_token_word_scores_the_sum_of_its_token_logprobs(words_task):
    p = prep(f"task={words_task}", "method=pattern", "pattern=multi")
    m, exs = p.method, p.few[:3]
    assert [len(a) for a in m.scorer.answers] == [1, 2]
    with torch.no_grad():
        got = m.class_logits(m.collate(exs))
    for r, ex in enumerate(exs):
        ids = m.tokenizer(ex["text"] + " It was", add_special_tokens=False)["input_ids"]
        very_good = m.scorer.answers[1]
        by_hand = hand_logprobs(m.model, ids, very_good[:1]) + hand_logprobs(m.model, ids + very_good[:1], very_good[1:])
        assert got[r, 1].item() == pytest.approx(by_hand, abs=1e-4)
        assert got[r, 0].item() == pytest.approx(hand_logprobs(m.model, ids, m.scorer.answers[0]), abs=1e-4)


def test_pattern_field_the_task_lacks_is_a_clear_error_when_the_task_is_read(tmp_path):
    """A slot that names no text field is refused with the task file, before any run."""
    from tuneoff.tasks.schema import TaskError

    y = tmp_path / "words.yaml"
    y.write_text(_words_yaml("  titled: {template: '{title}: {text} It was', verbalizer: {negative: ' bad', "
                             "positive: ' good'}}\n"))
    with pytest.raises(TaskError, match=r"\{title\}, which is not a text field; slots name text fields: \{text\}"):
        prep(f"task={y}", "method=pattern", "pattern=titled")


def test_pattern_loss_falls_on_demo():
    p = prep("method=pattern", "train.lr=3e-3", "train.max_steps=24")
    stats = train(p.method, p.few, p.cfg.train, 0, Toolbox.shared().accelerator(p.device))
    assert sum(stats.losses[-4:]) / 4 < 0.5 * sum(stats.losses[:3]) / 3


def test_pattern_masked_lm_scores_at_the_appended_mask(words_task):
    p = prep("method=pattern", model="tiny-bert")
    m, ex = p.method, p.few[0]
    m.model.eval()  # BERT has dropout; the evaluator does the same
    assert m.prompt_example(ex) == prompts.render(m.scorer.pattern, ex) + "[MASK]"
    batch = m.collate([ex])
    ids = batch["input_ids"][0].tolist()
    assert ids[0] == m.tokenizer.cls_token_id and ids[-2:] == [m.tokenizer.mask_token_id, m.tokenizer.sep_token_id]
    with torch.no_grad():
        got = m.class_logits(batch)[0]
        lp = m.model(input_ids=batch["input_ids"]).logits[0, -2].log_softmax(-1)
    assert torch.allclose(got, lp[[a[0] for a in m.scorer.answers]], atol=1e-5)
    with pytest.raises(MethodError, match="' very good' is 2 tokens"):
        prep(f"task={words_task}", "method=pattern", "pattern=multi", model="tiny-bert")


# -- icl ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [["pattern=gpt3"], ["method.calibrate=true"]])
def test_icl_cache_equals_no_cache(extra):
    p = prep("method=icl", "method.k=3", *extra)
    m, exs = p.method, p.evals["in_domain"][:10]
    assert m.prefix.kv is not None and m.prefix.kv[0][0].shape[2] == len(m.prefix.ids)
    with torch.no_grad():
        cached = m.class_logits(m.collate(exs))
        no_context = m.scorer.scores(m.model, m.scorer.encode(exs))
        assert not torch.allclose(cached, no_context, atol=1e-3)  # the cached context is really used
        m.options.use_cache = False
        inline = m.collate(exs)
        assert inline["input_ids"].shape[1] > len(m.prefix.ids)  # the context really is in the input
        plain = m.class_logits(inline)
    assert torch.allclose(cached, plain, atol=1e-4)
    assert m.prompt_example(exs[0]).startswith(p.task.instruction + "\n\n")


def test_icl_cache_equals_no_cache_multi_token(words_task):
    p = prep(f"task={words_task}", "method=icl", "pattern=multi", "method.k=2")
    m, exs = p.method, p.evals["test"][:6]
    with torch.no_grad():
        cached = m.class_logits(m.collate(exs))
        m.options.use_cache = False
        plain = m.class_logits(m.collate(exs))
    assert torch.allclose(cached, plain, atol=1e-4)


def test_icl_demos_balanced_deterministic_and_seeded():
    def demos(seed):
        return [d["id"] for d in prep("method=icl", "method.k=3", f"method.demo_seed={seed}").method.demos]

    a, b, c = demos(0), demos(0), demos(1)
    assert a == b and a != c
    p = prep("method=icl", "method.k=3")
    few_ids = {ex["id"] for ex in p.few}
    labels = [d["label"] for d in p.method.demos]
    assert set(a) <= few_ids and labels.count(0) == 3 and labels.count(1) == 3
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)  # shuffled, not grouped
    for d in p.method.demos:
        assert prompts.demonstration(p.method.scorer.pattern, d, p.task.label_names) + "\n\n" in p.method.prefix.text


@pytest.mark.parametrize("k", [2, 4])
def test_icl_demonstration_order_depends_on_the_split(k):
    """Over 24 data seeds the label orders vary, no position always holds the same label, and the
    prompt does not always end on the same label (it did when only the demo seed set the order)."""
    from tuneoff import data as data_mod
    from tuneoff.tasks import get_task

    task = get_task("demo")
    pool = data_mod.load_train(task, None)
    orders = []
    for data_seed in range(24):
        few = data_mod.sample_few_shot(pool, 8, data_seed, task)
        demos = draw_demos(few, k, 0, task)
        assert draw_demos(few, k, 0, task) == demos  # deterministic for one split and demo seed
        labels = [d["label"] for d in demos]
        assert sorted(labels) == [0] * k + [1] * k
        orders.append(tuple(labels))
    assert len(set(orders)) >= 6
    for pos in range(2 * k):
        assert {o[pos] for o in orders} == {0, 1}, f"position {pos} holds one label for every split"
    last = [o[-1] for o in orders]
    assert 0.2 < sum(last) / len(last) < 0.8


def test_changed_methods_get_a_version_in_their_run_id_others_keep_theirs():
    import hashlib
    import json

    def old_id(cfg):  # the id as computed before methods had versions
        d = cfg.resolved()
        for key in ("output_dir", "device", "save"):
            d.pop(key, None)
        d["eval"].pop("batch_size", None)
        d.pop("select", None)
        d.pop("forgetting", None)  # at its defaults it is left out of every id
        for key in ("precision", "optimizer", "stop_epochs", "gradient_checkpointing", "resume_every"):  # added since;
            d["train"].pop(key)                                                            # left out at their defaults
        for key in ("model_dtype", "quantization", "attn_implementation", "threads"):  # so are these
            d.pop(key)
        d["train"]["max_length"] = d.pop("max_length")  # then a training setting
        if cfg.method.name == "icl":
            d["train"] = {"max_length": d["train"]["max_length"]}
        if not cfg.uses_pattern:
            d["pattern"] = None
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    base = ["model=tiny-llama", "shots=8", "data_seed=0", "seed=0"]
    for method, changed in (("finetune", False), ("head", True), ("lora", False), ("icl", True),
                            ("distill", True), ("pattern", True)):
        cfg = load_config(None, base + [f"method={method}"])
        assert (cfg.run_id() != old_id(cfg)) is changed, method
    lora_pattern = load_config(None, base + ["method=lora", "method.scoring=pattern"])
    assert lora_pattern.run_id() != old_id(lora_pattern)


def test_icl_notes_a_task_without_instruction(toy_task):
    m = prep("method=icl", "method.k=1", f"task={toy_task}").method
    assert any("no instruction" in n and "instruction=true had no effect" in n for n in m.notes)
    assert not prep("method=icl", "method.k=1", f"task={toy_task}", "method.instruction=false").method.notes
    assert not prep("method=icl", "method.k=1").method.notes  # the demo task has an instruction


def test_lm_scored_runs_record_their_pattern_and_an_eval_prompt(tmp_path):
    """The resolved pattern is recorded (also the task default), and icl's recorded prompt is built
    from an eval example, never from a training example that may be one of its demonstrations."""
    from tuneoff.store import Store

    base = ["model=tiny-llama", "device=cpu", "shots=4", "data_seed=0", "eval.max_examples=8",
            "train.max_steps=1", f"output_dir={tmp_path}"]
    store = Store(tmp_path)
    icl = run_one(load_config(None, base + ["method=icl", "method.k=1"]), store)
    assert icl["status"] == "done", icl.get("error")
    assert icl["pattern"] == "eval-harness" and icl["method_version"] == 3
    assert icl["pattern_template"] == "{text}\nQuestion: Is this review positive or negative?\nAnswer:"
    assert icl["verbalizer"] == {"negative": " negative", "positive": " positive"}
    shown = icl["prompt_example"]
    assert shown["from"] == "in_domain" and shown["id"] not in icl["split"]["ids"]
    

    evals = Toolbox.shared().data(load_config(None, base + ["method=icl"])).evals
    first = evals["in_domain"][0]
    assert first["id"] == shown["id"] and icl["prompt"].endswith("\n\n" + first["text"] + "\nQuestion: "
                                                                 "Is this review positive or negative?\nAnswer:")
    manifest = json.loads((tmp_path / "runs" / icl["run_id"] / "manifest.json").read_text())
    assert manifest["pattern"] == "eval-harness"
    pat = run_one(load_config(None, base + ["method=pattern", "pattern=minimal"]), store)
    assert (pat["pattern"], pat["pattern_template"]) == ("minimal", "{text} It was")
    head = run_one(load_config(None, base + ["method=finetune"]), store)
    assert head["pattern"] is None and "pattern_template" not in head and head["method_version"] == 1


def test_icl_k_larger_than_the_few_shot_set_is_refused_before_any_run():
    with pytest.raises(ConfigError, match=r"shots=8 per class, but icl needs 9 per class \(method.k=9\)"):
        load_config(None, ["model=tiny-llama", "shots=8", "method=icl", "method.k=9"])


def test_icl_context_longer_than_the_window_says_how_many_fit():
    with pytest.raises(MethodError, match=r"window of 512: (\d+) demonstration") as e:
        prep("method=icl", "shots=20", "method.k=20")
    fit = int(str(e.value).split("window of 512: ")[1].split(" ")[0])
    assert 0 < fit < 40
    p = prep("method=icl", "shots=20", "method.k=1")  # fits; check the count against real lengths
    scorer, demos = p.method.scorer, draw_demos(p.few, 20, 0, p.task)
    longest = max(len(scorer.tok(prompts.render(scorer.pattern, q), add_special_tokens=False)["input_ids"])
                  for q in p.few)
    assert len(make_context(scorer, p.task, demos[:fit], p.method.options).ids) + longest <= 512
    assert len(make_context(scorer, p.task, demos[:fit + 1], p.method.options).ids) + longest > 512


def test_icl_needs_a_decoder():
    with pytest.raises(MethodError, match="decoder"):
        prep("method=icl", model="tiny-bert")


# -- integration on a real LM ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.embedded
def test_smollm2_icl_cache_matches_no_cache():
    pytest.importorskip("gguf")
    p = prep("method=icl", "method.k=4", "eval.max_examples=20", model="smollm2-135m")
    m, exs = p.method, p.evals["in_domain"][:20]
    probs_cached, _ = predict(m, exs, 8, p.device)
    with torch.no_grad():
        cached = m.class_logits(m.collate(exs[:8]))
    m.options.use_cache = False
    probs_plain, _ = predict(m, exs, 8, p.device)
    with torch.no_grad():
        plain = m.class_logits(m.collate(exs[:8]))
    assert (probs_cached.argmax(1) == probs_plain.argmax(1)).all()
    assert torch.allclose(cached, plain, atol=1e-4)


@pytest.mark.slow
@pytest.mark.embedded
def test_smollm2_icl_run_end_to_end(tmp_path):
    pytest.importorskip("gguf")
    args = ["task=demo", "model=smollm2-135m", "method=icl", "shots=8", "data_seed=0", "eval.max_examples=40",
            f"output_dir={tmp_path}"]
    cfg = load_config(None, args)
    rec = run_one(cfg, Store(cfg.output_dir))
    assert rec["status"] == "done", rec.get("error")
    assert rec["prompt"].startswith("Is the review positive or negative?\n\n") and rec["prompt"].endswith("\nAnswer:")
    assert set(rec["metrics"]) == {"in_domain", "out_of_domain"} and rec["resources"]["train_steps"] == 0
    # uncalibrated, this 135M model says " negative" to nearly everything (label bias); calibrated, it reads
    calibrated = run_one(load_config(None, [*args, "method.calibrate=true"]), Store(cfg.output_dir))
    m = calibrated["metrics"]["in_domain"]
    assert calibrated["status"] == "done" and m["overall"]["accuracy"] > m["majority"]["accuracy"] + 0.1
