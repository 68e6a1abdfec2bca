"""Prompts are exact strings: every space and newline is checked."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from tuneoff import prompts  # noqa: E402
from tuneoff.models import tiny_tokenizer  # noqa: E402
from tuneoff.tasks import Pattern, get_task  # noqa: E402

DEMO = get_task("demo")
HARNESS = DEMO.patterns["eval-harness"]
NEG = {"id": "a", "text": "Cold soup.", "label": 0}
POS = {"id": "b", "text": "Great  pasta!", "label": 1}  # two spaces are kept as they are


def test_render_is_the_template_filled_in_and_nothing_else():
    assert prompts.render(HARNESS, NEG) == "Cold soup.\nQuestion: Is this review positive or negative?\nAnswer:"
    minimal = DEMO.patterns["minimal"]
    assert prompts.render(minimal, POS) == "Great  pasta! It was"


def test_render_does_not_interpret_braces_in_the_text():
    p = Pattern("p", "{{literal}} {text}:", {"negative": " no", "positive": " yes"})
    assert prompts.render(p, {"text": "a {text} b"}) == "{literal} a {text} b:"
    assert prompts.template_fields(p.template) == ["text"]
    assert prompts.template_tail(p.template) == ":"
    assert prompts.template_tail("{a} x {{y}} z:") == " x {y} z:"
    assert prompts.template_tail("{a}") == ""


def test_demonstration_is_prompt_plus_gold_word():
    assert prompts.demonstration(HARNESS, POS, DEMO.label_names) == (
        "Great  pasta!\nQuestion: Is this review positive or negative?\nAnswer: positive")


def test_context_and_full_prompt_exact_with_instruction_and_default_separator():
    ctx = prompts.context(DEMO.patterns["minimal"], [NEG, POS], DEMO.label_names,
                          instruction="Is the review positive or negative?")
    assert ctx == ("Is the review positive or negative?\n\n"
                   "Cold soup. It was terrible\n\n"
                   "Great  pasta! It was great\n\n")
    query = {"id": "q", "text": "Fine.", "label": 1}
    assert prompts.full_prompt(DEMO.patterns["minimal"], query, ctx) == ctx + "Fine. It was"


def test_context_custom_separator_without_instruction():
    ctx = prompts.context(DEMO.patterns["gpt3"], [POS, NEG], DEMO.label_names, separator="\n###\n")
    assert ctx == ("Great  pasta! question: Is this review positive? Yes or No? answer: Yes\n###\n"
                   "Cold soup. question: Is this review positive? Yes or No? answer: No\n###\n")
    assert prompts.context(HARNESS, [], DEMO.label_names) == ""


def test_missing_field_names_the_field_and_the_task_fields():
    bad = Pattern("bad", "{text} {title} It was", {"negative": " bad", "positive": " good"})
    with pytest.raises(prompts.PromptError) as e:
        prompts.check_pattern(bad, DEMO)
    assert "{title}" in str(e.value) and "text fields are: text" in str(e.value) and "'demo'" in str(e.value)
    with pytest.raises(prompts.PromptError, match=r"\{title\}.*fields are: text"):
        prompts.render(bad, NEG)


def test_verbalizer_must_cover_every_label():
    half = Pattern("half", "{text}", {"negative": " bad"})
    with pytest.raises(prompts.PromptError, match="positive"):
        prompts.check_pattern(half, DEMO)


def test_content_free_example_fills_every_text_field():
    mnli = get_task("mnli")
    ex = prompts.content_free_example(mnli)
    assert prompts.render(mnli.patterns["gpt3"], ex) == "N/A question: N/A Yes or No? answer:"


def test_answer_ids_decoder_multi_token_and_masked_lm_rejects_them():
    texts = ["it was very good", "it was bad"]
    dec = tiny_tokenizer(texts, decoder=True)
    ids = prompts.answer_token_ids(dec, [" bad", " very good"], " It was", is_decoder=True)
    assert [dec.convert_ids_to_tokens(x) for x in ids] == [["bad"], ["very", "good"]]
    enc = tiny_tokenizer(texts, decoder=False)
    assert prompts.answer_token_ids(enc, [" bad", " good"], " It was", is_decoder=False) == [
        [enc.convert_tokens_to_ids("bad")], [enc.convert_tokens_to_ids("good")]]
    with pytest.raises(prompts.PromptError, match=r"' very good' is 2 tokens \['very', 'good'\].*single-token"):
        prompts.answer_token_ids(enc, [" bad", " very good"], " It was", is_decoder=False)
    with pytest.raises(prompts.PromptError, match="different token ids"):
        prompts.answer_token_ids(dec, [" bad", " Bad"], " It was", is_decoder=True)  # lower-cased: same id


def test_special_tokens_around():
    texts = ["a b"]
    enc = tiny_tokenizer(texts, decoder=False)
    assert prompts.special_tokens_around(enc) == ([enc.cls_token_id], [enc.sep_token_id])
    assert prompts.special_tokens_around(tiny_tokenizer(texts, decoder=True)) == ([], [])


def _byte_level_bpe(texts):
    """A small byte-level BPE (the kind of tokenizer GPT-2, Llama 3 and SmolLM use), trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tk)


def test_the_context_is_tokenized_as_it_is_before_the_query():
    """With a byte-level BPE, "\\n\\n" at the end of a text is one merged token, but before the query's
    first word it is two, as between demonstrations: the context's ids must be the latter, so that
    context ids + query ids are the whole prompt's own tokenization."""
    pattern = Pattern("p", "Review: {text}\nAnswer:", {"negative": " no", "positive": " yes"})
    ctx = prompts.context(pattern, [NEG, POS], ("negative", "positive"), "\n\n", "Say yes or no.")
    tok = _byte_level_bpe([ctx + prompts.render(pattern, NEG)] * 50 + ["\n\n"] * 50)
    query = prompts.render(pattern, POS)
    alone = prompts._ids(tok, ctx)
    fixed = prompts.context_ids(tok, ctx, prompts.template_head(pattern.template))
    assert fixed + prompts._ids(tok, query) == prompts._ids(tok, ctx + query)
    assert fixed != alone  # the trained merges do join the trailing "\n\n": the check can fail
    assert prompts.template_head(pattern.template) == "Review: " and prompts.template_head("{text} x") == ""
    # a tokenizer that splits cleanly either way (word-level) keeps the context's own ids
    word = tiny_tokenizer([ctx, query], decoder=True)
    assert prompts.context_ids(word, ctx, "Review: ") == prompts._ids(word, ctx)
