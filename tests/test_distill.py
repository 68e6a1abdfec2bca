"""Context distillation on tiny random models: the teacher (the LM with its context, computed
once), the student's input, the loss over labelled and unlabelled inputs, the LoRA student."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from test_lm_methods import prep  # noqa: E402
from tuneoff import prompts  # noqa: E402
from tuneoff.config import ConfigError, load_config  # noqa: E402
from tuneoff.methods import MethodError  # noqa: E402
from tuneoff.methods.base import batch_to  # noqa: E402
from tuneoff.methods.icl import draw_demos  # noqa: E402
from tuneoff.pipeline import Toolbox  # noqa: E402
from tuneoff.plan import run_one  # noqa: E402
from tuneoff.store import Store  # noqa: E402
from tuneoff.train import train  # noqa: E402

# -- distill -----------------------------------------------------------------------------------


def test_distill_teacher_is_the_lm_with_context_and_computed_once():
    d = prep("method=distill", "method.k=2", "method.unlabelled=4", "train.max_steps=3", "train.batch_size=4")
    m = d.method
    examples = m.train_examples(d.few)
    assert len(examples) == 16 + 4 and set(m.teacher) == {ex["id"] for ex in examples}
    # the teacher of an input outside the demonstrations is exactly icl with the same context
    icl = prep("method=icl", "method.k=2").method
    assert [x["id"] for x in icl.demos] == [x["id"] for x in make_demos(m, d.few)]
    assert m.scorer._shared_ok is True  # the teacher scored through the context shared by a batch's rows
    outside = m.unlabelled[:2]
    icl.options.use_cache = False  # the whole text run for every input
    with torch.no_grad():
        want = icl.class_logits(icl.collate(outside))
    assert torch.allclose(torch.stack([m.teacher[ex["id"]] for ex in outside]), want, atol=1e-4)
    # during training the backbone runs once per step (the student), never for the teacher
    calls, before = [], m.teacher_forwards
    hook = m.model.get_decoder().register_forward_hook(lambda *a: calls.append(1))
    stats = train(m, examples, d.cfg.train, 0, Toolbox.shared().accelerator(d.device))
    hook.remove()
    assert len(calls) == stats.steps == 3 and m.teacher_forwards == before


def make_demos(m, few):
    return draw_demos(few, m.options.k, m.options.demo_seed, m.task)


def test_distill_teacher_context_differs_from_student_input_and_leaves_the_example_out():
    d = prep("method=distill", "method.k=2")
    m = d.method
    for ex in d.few:
        student, teacher = m.prompt_example(ex), m.teacher_prompt(ex)
        assert student == prompts.render(m.scorer.pattern, ex)
        assert teacher.startswith(d.task.instruction + "\n\n") and teacher.endswith("\n\n" + student)
        own = prompts.demonstration(m.scorer.pattern, ex, d.task.label_names) + "\n\n"
        assert own not in m.teacher_context[ex["id"]]
        assert m.teacher_context[ex["id"]].count("\nAnswer: ") == 4  # still k per class
    shared = {m.teacher_context[ex["id"]] for ex in d.few}
    assert 1 < len(shared) <= 1 + 4  # the shared context, plus one per demonstration that was swapped


def test_distill_loss_falls_and_unlabelled_inputs_skip_the_cross_entropy():
    d = prep("method=distill", "method.k=2", "method.unlabelled=8", "method.ce_weight=1.0",
             "train.lr=3e-3", "train.max_steps=24")
    m = d.method
    assert all(ex["label"] == -100 for ex in m.unlabelled)
    assert not {ex["id"] for ex in m.unlabelled} & {ex["id"] for ex in d.few}
    m.model.train()
    only_unlabelled = batch_to(m.collate(m.unlabelled[:4]), d.device)
    assert torch.isfinite(m.loss(only_unlabelled))
    for ex in m.train_examples(d.few):  # a sharp teacher to learn from (a random tiny LM barely cares about context)
        m.teacher[ex["id"]] = torch.tensor([0.0, -4.0]) if len(ex["text"]) % 2 else torch.tensor([-4.0, 0.0])
    stats = train(m, m.train_examples(d.few), d.cfg.train, 0, Toolbox.shared().accelerator(d.device))
    assert sum(stats.losses[-4:]) / 4 < 0.5 * sum(stats.losses[:3]) / 3


def test_distill_lora_student_is_lora_set_up_with_the_distill_options():
    """student=lora is lora's own set-up (scoring=pattern): the same target layers, rank, scale and
    dropout, and the same adapter init from the run's seed."""
    d = prep("method=distill", "method.k=2", "method.student=lora", "method.lora_r=4", "method.lora_alpha=8",
             "method.lora_dropout=0.1").method
    lora = prep("method=lora", "method.scoring=pattern", "method.r=4", "method.alpha=8", "method.dropout=0.1").method
    dc, lc = d.model.peft_config["default"], lora.model.peft_config["default"]
    assert (set(dc.target_modules), dc.r, dc.lora_alpha, dc.lora_dropout) == \
        (set(lc.target_modules), lc.r, lc.lora_alpha, lc.lora_dropout) == ({"q_proj", "v_proj"}, 4, 8, 0.1)
    mine = {n: p for n, p in d.model.named_parameters() if p.requires_grad}
    theirs = {n: p for n, p in lora.model.named_parameters() if p.requires_grad}
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[n], theirs[n]) for n in mine)
    # the lora student's own set-up was version 3 (the full student stayed at 2); the teacher's context
    # tokenized as before the input is version 4 for both; the teacher's calibration searched, 5
    base = ["model=tiny-llama", "shots=8", "data_seed=0", "method=distill"]
    assert load_config(None, base + ["method.student=lora"]).method_version == 5
    assert load_config(None, base).method_version == 5


def test_distill_needs_more_shots_than_k_before_any_run_and_under_cross_validation():
    # k demonstrations, and a spare of the label for a demonstration's own teacher context
    with pytest.raises(ConfigError, match=r"shots=2 per class, but distill needs 3 per class \(method.k=2\)"):
        load_config(None, ["model=tiny-llama", "shots=2", "method=distill", "method.k=2"])
    assert load_config(None, ["model=tiny-llama", "shots=3", "method=distill", "method.k=2"])
    # 2-fold cross-validation on 4 per class trains each candidate on 2 per class: k=2 cannot run there
    with pytest.raises(ConfigError, match=r"on 2 example\(s\) per class .*distill needs 3 per class"):
        load_config(None, ["model=tiny-llama", "shots=4", "method=distill", "method.k=2", "select.protocol=cv", "select.search=grid",
                           "select.folds=2"])
    assert load_config(None, ["model=tiny-llama", "shots=4", "method=distill", "method.k=1", "select.protocol=cv", "select.search=grid",
                              "select.folds=2"])
    p = prep("method=distill", "shots=3", "method.k=2")
    two_per_class = [ex for label in (0, 1) for ex in [e for e in p.few if e["label"] == label][:2]]
    with pytest.raises(MethodError, match="shots > k"):  # the method's own check, past the config's
        p.method._contexts(two_per_class)


def test_runner_trains_distill_on_labelled_plus_unlabelled(tmp_path):
    cfg = load_config(None, ["model=tiny-llama", "device=cpu", "shots=4", "data_seed=0", "method=distill",
                             "method.k=1", "method.unlabelled=8", "train.epochs=1", "train.batch_size=4",
                             "eval.max_examples=8", f"output_dir={tmp_path}"])
    rec = run_one(cfg, Store(cfg.output_dir))
    assert rec["status"] == "done", rec.get("error")
    assert rec["resources"]["train_steps"] == 4  # (8 labelled + 8 unlabelled) / 4
    assert rec["prompt"].endswith("\nAnswer:")
    assert rec["teacher_prompt"].startswith("Is the review positive or negative?\n\n")
    # the teacher saw training inputs; the recorded student prompt is built from an eval input
    assert rec["teacher_prompt_example"]["from"] == "train" and rec["prompt_example"]["from"] == "in_domain"
    assert rec["prompt_example"]["id"] not in rec["split"]["ids"]
    assert rec["teacher_prompt"].endswith("\nQuestion: Is this review positive or negative?\nAnswer:")
    assert rec["teacher_prompt"].rsplit("\n\n", 1)[1] != rec["prompt"]


