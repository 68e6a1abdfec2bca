"""pet on tiny random models: the ensemble's score is its members' mean, the members read different
patterns in their own orders and all train, what is counted, and distillation on the training pool
without its labels (never an eval set)."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import random  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from test_lm_methods import prep  # noqa: E402
from tuneoff.config import load_config  # noqa: E402
from tuneoff.evaluate import predict  # noqa: E402
from tuneoff.methods.base import batch_to  # noqa: E402
from tuneoff.methods.pet import TOKENS, combine  # noqa: E402
from tuneoff.pipeline import Toolbox, build_method, pick_device  # noqa: E402
from tuneoff.resources import count_parameters  # noqa: E402
from tuneoff.runner import evaluate_saved, run_record  # noqa: E402
from tuneoff.store import Store  # noqa: E402
from tuneoff.train import train  # noqa: E402

TRAIN = ("train.max_steps=3", "train.batch_size=4", "train.lr=1e-3")
DISTILL = ("method=pet", "method.distill=true", "method.unlabelled=12", "method.member_epochs=1", *TRAIN)


def trained(*overrides, model="tiny-llama"):
    d = prep("method=pet", *TRAIN, *overrides, model=model)
    stats = train(d.method, d.method.train_examples(d.few), d.cfg.train, 0, Toolbox.shared().accelerator(d.device))
    return d, stats


def states(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-bert"])
def test_the_ensemble_scores_a_label_by_the_mean_of_its_members_logits(model):
    d, _ = trained(model=model)
    m, exs = d.method, d.evals["in_domain"][:6]
    with torch.no_grad():
        own = [scorer.scores(lm, batch_to(scorer.encode(exs), d.device))  # each member alone, on its own input
               for scorer, lm in zip(m.scorers, m.model.members)]
        got = m.class_logits(batch_to(m.collate(exs), d.device))
    assert len(own) == 3 and not torch.allclose(own[0], own[1])
    assert torch.allclose(got, torch.stack(own).mean(0), atol=1e-6)
    probs, _ = predict(m, exs, 4, d.device)  # the evaluator: the softmax of that mean
    assert torch.allclose(torch.tensor(probs), torch.stack(own).mean(0).softmax(-1), atol=1e-5)


def test_combining_probabilities_and_weights():
    scores = torch.randn(3, 5, 2)
    weights = torch.tensor([0.5, 0.25, 1.0])
    w = weights / weights.sum()
    want = (w[:, None, None] * scores.softmax(-1)).sum(0)
    assert torch.allclose(combine(scores, weights, "probs").softmax(-1), want, atol=1e-6)
    assert torch.allclose(combine(scores, weights, "logits"), (w[:, None, None] * scores).sum(0), atol=1e-6)
    # a member of weight 0 counts for nothing
    zero = torch.tensor([1.0, 0.0, 0.0])
    assert torch.allclose(combine(scores, zero, "probs").softmax(-1), scores[0].softmax(-1), atol=1e-6)


def test_members_read_different_patterns_start_alike_and_all_train():
    fresh = prep("method=pet").method
    pristine = [states(lm) for lm in fresh.model.members]
    assert all(torch.equal(pristine[0][n], s[n]) for s in pristine[1:] for n in s)  # one pretrained start
    d, stats = trained()
    m = d.method
    assert [s.pattern.name for s in m.scorers] == list(d.task.patterns)  # every pattern the task declares
    assert len({s.pattern.template for s in m.scorers}) == 3
    after = [states(lm) for lm in m.model.members]
    for k, s in enumerate(after):
        assert any(not torch.equal(s[n], pristine[k][n]) for n in s), f"member {k} did not train"
    assert any(not torch.equal(after[0][n], after[1][n]) for n in after[0])
    assert stats.steps == 3 and len({p.data_ptr() for lm in m.model.members for p in lm.parameters()}) == \
        sum(1 for lm in m.model.members for _ in lm.parameters())  # no weight shared between members


def test_each_member_takes_every_example_once_an_epoch_in_its_own_order():
    m = prep("method=pet").method
    few = m.train_examples(prep("method=pet").few)
    m.start_training(few)
    loop_order = [few[i] for i in torch.randperm(len(few)).tolist()]
    seen = [[x["id"] for x in m._member_batch(k, loop_order)] for k in range(3)]
    assert seen[0] == [x["id"] for x in loop_order]  # member 0: the loop's own order, as a pattern run's
    assert all(sorted(s) == sorted(x["id"] for x in few) for s in seen)
    assert seen[1] != seen[0] and seen[2] != seen[1]
    m.model.eval()  # scoring: every member reads the same examples
    assert all(m._member_batch(k, loop_order) == loop_order for k in range(3))


def test_parameters_counted_are_every_members_and_tokens_the_members_mean():
    single = count_parameters(prep("method=pattern").method.model)
    d = prep("method=pet", "method.patterns=[minimal, gpt3]")
    counted = count_parameters(d.method.model)
    assert len(d.method.scorers) == 2
    assert counted == {"params_total": 2 * single["params_total"], "params_trainable": 2 * single["params_trainable"]}
    batch = d.method.collate(d.few[:4])
    lengths = [int(batch[f"{k}.attention_mask"].sum()) for k in range(2)]
    assert lengths[0] != lengths[1] and int(batch[TOKENS]) == round(sum(lengths) / 2)


def test_weights_are_each_patterns_accuracy_before_training():
    d = prep("method=pet", "method.weighting=train_accuracy", "method.combine=probs")
    m = d.method
    for k, name in enumerate(d.task.patterns):
        alone = prep("method=pattern", f"pattern={name}")
        probs, _ = predict(alone.method, alone.few, 8, alone.device)
        accuracy = (probs.argmax(-1) == [ex["label"] for ex in alone.few]).mean()
        assert m.weights[k].item() == pytest.approx(accuracy)
    exs = d.evals["in_domain"][:5]
    with torch.no_grad():
        batch = batch_to(m.collate(exs), d.device)
        got = m.class_logits(batch).softmax(-1)
        members = torch.stack(m.member_scores(batch)).softmax(-1)
    w = m.weights / m.weights.sum()
    assert torch.allclose(got, (w[:, None, None] * members).sum(0), atol=1e-6)
    assert m.audit(d.few)["ensemble"]["weighting"] == "train_accuracy"


def test_patterns_the_task_lacks_are_refused_at_set_up(tmp_path):
    cfg = load_config(None, ["model=tiny-llama", "method=pet", "method.patterns=[minimal, nope]", "shots=8",
                             "data_seed=0", f"output_dir={tmp_path}"])
    record = run_record(cfg, tmp_path / "run")
    assert record["status"] == "failed" and "task 'demo' has no pattern(s) ['nope']; it has: minimal, gpt3, " \
        "eval-harness" in record["error"]
    assert "build_method" in record["traceback"]


def test_options_without_effect_are_noted():
    m = prep("method=pet", "method.temperature=3", "pattern=gpt3").method
    assert any("method.temperature has no effect without method.distill=true" in n for n in m.notes)
    assert any("pattern='gpt3' has no effect" in n for n in m.notes)


# -- distillation --------------------------------------------------------------------------------

def distilled(pool_labels):
    """pet distilled with the pool's labels outside the few-shot set changed by `pool_labels`."""
    cfg = load_config(None, ["model=tiny-llama", "device=cpu", "shots=8", "data_seed=0", *DISTILL])
    data = Toolbox().data(cfg)
    few = {ex["id"] for ex in data.few}
    pool = [ex if ex["id"] in few else pool_labels(ex) for ex in data.pool]
    device = pick_device(cfg.device)
    method, _ = build_method(cfg, data, data.few, device, pool)
    stats = train(method, method.train_examples(data.few), cfg.train, 0, Toolbox.shared().accelerator(device))
    return data, method, stats


def test_distillation_reads_no_label_of_the_pool_and_no_eval_set():
    rng = random.Random(0)
    data, kept, stats = distilled(lambda ex: ex)
    _, shuffled, _ = distilled(lambda ex: {**ex, "label": rng.randrange(2)})
    _, removed, _ = distilled(lambda ex: {k: v for k, v in ex.items() if k != "label"})
    ids = [ex["id"] for ex in kept.inputs]
    assert len(ids) == 12 and all("label" not in ex for ex in kept.inputs)
    assert not set(ids) & {ex["id"] for ex in data.few}  # unlabelled_from=rest: outside the few-shot set
    assert set(ids) <= {ex["id"] for ex in data.pool}
    eval_texts = {ex["text"] for exs in data.evals.values() for ex in exs}
    assert not {ex["text"] for ex in kept.inputs} & eval_texts
    for other in (shuffled, removed):
        assert [ex["id"] for ex in other.inputs] == ids
        assert all(torch.equal(kept.teacher[i], other.teacher[i]) for i in ids)
        a, b = states(kept.model), states(other.model)
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert stats.steps == 3 and set(kept.teacher) == set(ids)


def test_distillation_trains_every_member_then_the_student_and_counts_them():
    data, m, stats = distilled(lambda ex: ex)
    pristine = states(prep("method=pet", "method.distill=true", "method.unlabelled=12").method.model)
    student = states(m.model)
    assert any(not torch.equal(student[n], pristine[n]) for n in student)  # the student trained on soft labels
    audit = m.audit(data.few)["ensemble"]
    members = audit["members"]
    n = count_parameters(m.model)["params_trainable"]
    assert [x["pattern"] for x in members] == list(data.task.patterns)
    assert all(x["train_steps"] == 2 and x["params_trainable"] == n for x in members)  # 16 shots / batch 8
    assert sum(x["params_trainable"] for x in members) + n == 4 * n
    assert stats.forward_tokens == sum(x["train_tokens"] + x["soft_label_tokens"] for x in members)
    teacher = torch.stack([m.teacher[i] for i in audit["unlabelled_ids"]])
    assert torch.isfinite(teacher).all() and teacher.shape == (12, 2)
    assert len({tuple(t.tolist()) for t in teacher}) > 1  # soft labels that tell inputs apart


def test_a_distilled_run_reloads_to_the_same_predictions(tmp_path):
    cfg = load_config(None, ["task=demo", "model=tiny-bert", "shots=8", "data_seed=0", "eval.max_examples=12",
                             "save=true", f"output_dir={tmp_path}", *DISTILL])
    store = Store(cfg.output_dir)
    run_dir = store.run_dir(cfg.run_id())
    record = run_record(cfg, run_dir)
    assert record["status"] == "done", record.get("traceback")
    store.put(record)
    assert record["ensemble"]["student_pattern"] == "eval-harness"  # the run's pattern: the task's default
    recorded, again = evaluate_saved(run_dir)
    for name, m in recorded.items():
        for key in ("accuracy", "mcc", "brier", "ece"):
            assert again[name]["overall"][key] == pytest.approx(m["overall"][key], abs=1e-6)
    assert record["resources"]["params_trainable"] == count_parameters(
        prep("method=pattern", "eval.max_examples=12", model="tiny-bert").method.model)["params_trainable"]
