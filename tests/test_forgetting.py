"""Forgetting: the LM loss per token on a general-text sample before and after adaptation."""
import pytest

from tuneoff import forgetting, models
from tuneoff.config import load_config
from tuneoff.runner import preflight, run_record

BASE = ["task=demo", "shots=4", "data_seed=0", "seed=0", "eval.max_examples=8", "train.batch_size=4",
        "device=cpu"]


def _run(tmp_path, *extra):
    rec = run_record(load_config(None, BASE + list(extra)), tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    return rec


@pytest.mark.parametrize("method", ["icl", "head"])
def test_frozen_methods_change_nothing(method, tmp_path):
    # icl trains nothing and head trains only the new classifier: the LM is untouched by construction
    rec = _run(tmp_path, "model=tiny-llama", f"method={method}", "method.k=1" if method == "icl" else "train.lr=1e-2",
               "train.max_steps=3")
    f = rec["forgetting"]
    assert f["status"] == "done" and f["tokens"] > 100
    assert f["lm_loss_delta"] == 0.0 and f["lm_loss_before"] == f["lm_loss_after"] > 0
    assert f["text"] == forgetting.BUILTIN


@pytest.fixture(scope="module")
def pretrained_tiny(tmp_path_factory):
    """A tiny Llama (tied LM head) that has learnt the general-text sample: a model with something
    to forget, unlike a random one whose loss is about log(vocabulary) whatever it is trained on."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tuneoff.tasks import get_task
    from tuneoff.data import load_train

    text = forgetting.read_text(None)
    demo = [ex["text"] for ex in load_train(get_task("demo"), None)]
    tok = models.tiny_tokenizer([text, *demo, "negative positive"], decoder=True)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(cfg)
    chunks = forgetting.token_chunks(tok, text, 256, 512)  # the tokens a run measures on (max_tokens=256)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-2)
    for _ in range(60):
        for ids in chunks:
            x = torch.tensor([ids])
            lm(input_ids=x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad()
    folder = tmp_path_factory.mktemp("pretrained") / "tiny-lm"
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("method", ["finetune", "pattern"])
def test_full_fine_tuning_at_a_high_learning_rate_forgets(method, tmp_path, pretrained_tiny):
    rec = _run(tmp_path, f"model={pretrained_tiny}", f"method={method}", "train.lr=5e-2", "train.max_steps=10",
               "train.max_grad_norm=null")
    f = rec["forgetting"]
    assert f["lm_loss_before"] < 4.0, f  # it had learnt the text (a random model: about log(vocab) = 6.7)
    assert f["lm_loss_delta"] > 0.5, f
    assert f["head"] == ("the input embeddings (tied to the LM head)" if method == "finetune"
                         else "the model's LM head")


def test_no_pretrained_lm_head_is_na_never_a_number(tmp_path):
    rec = _run(tmp_path, "model=tiny-bert", "method=finetune", "train.max_steps=1")
    assert rec["forgetting"]["status"] == "n/a"
    assert "not a causal LM" in rec["forgetting"]["reason"]
    assert "lm_loss_delta" not in rec["forgetting"]


def test_own_text_file_and_a_missing_one(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("the food was good and the room was bad . " * 40)
    rec = _run(tmp_path, "model=tiny-llama", "method=icl", "method.k=1", f"forgetting.text={text}",
               "forgetting.max_tokens=64")
    assert rec["forgetting"]["text"] == str(text) and rec["forgetting"]["tokens"] == 63
    with pytest.raises(ValueError, match="forgetting.text .* is not a file"):
        preflight(load_config(None, BASE + ["forgetting.text=/nonexistent.txt"]))


def test_disabled_records_nothing_and_default_settings_keep_run_ids(tmp_path):
    rec = _run(tmp_path, "model=tiny-llama", "method=icl", "method.k=1", "forgetting.enabled=false")
    assert "forgetting" not in rec
    cfg = load_config(None, BASE + ["method=icl"])
    assert cfg.run_id() == load_config(None, BASE + ["method=icl", "forgetting.max_tokens=256"]).run_id()
    assert cfg.run_id() != load_config(None, BASE + ["method=icl", "forgetting.max_tokens=100"]).run_id()


def test_untied_classifier_reads_the_pretrained_lm_head_from_the_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = models.tiny_tokenizer(["when in the course of human events it becomes necessary"], decoder=True)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    lm = models.load(str(tmp_path / "m"), "lm")
    clf = models.load(str(tmp_path / "m"), "classifier")
    chunks = forgetting.token_chunks(lm.tokenizer, forgetting.read_text(None), 200, 512)
    a, b = forgetting.measure(lm.model, lm, chunks), forgetting.measure(clf.model, clf, chunks)
    assert b["head"] == "the pretrained LM head read from the checkpoint (frozen)"
    assert a["lm_loss"] == pytest.approx(b["lm_loss"], rel=1e-6)


@pytest.mark.parametrize("method, changes", [("lora", True), ("prompt-tuning", False)])
def test_peft_methods_are_measured_on_the_adapted_backbone(method, changes, tmp_path):
    # LoRA's low-rank updates sit inside the backbone; a soft prompt is not part of the general text
    rec = _run(tmp_path, "model=tiny-llama", f"method={method}", "train.lr=1e-2", "train.max_steps=3")
    assert (rec["forgetting"]["lm_loss_delta"] != 0.0) == changes, rec["forgetting"]
