"""Patterns, verbalizers and demonstrations as exact strings, and the token ids of answer words.

Whitespace is never added behind the caller's back: a prompt is the template with its {field}
slots filled, the answer word (" Yes", whitespace included) follows it directly, and a context of
demonstrations is ``instruction + sep + demo_1 + sep + ... + demo_k + sep`` followed directly by the
query. What you read in `full_prompt` is what the model sees.
"""
from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneoff.tasks import Pattern, Task

CONTENT_FREE = "N/A"  # the content-free input of contextual calibration (Zhao et al., 2021)


class PromptError(ValueError):
    """A pattern that does not fit its task, or an answer word the model cannot score."""


def template_fields(template: str) -> list[str]:
    """The {field} slots of a template, in order of appearance ('{{' and '}}' are literal braces)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise PromptError(f"template {template!r} is malformed ({e}); write literal braces as '{{{{' and '}}}}'") from None


def template_tail(template: str) -> str:
    """The literal text after the last slot: what always precedes the answer word."""
    tail = ""
    for literal, f, _, _ in string.Formatter().parse(template):  # literals come unescaped
        tail = "" if f is not None else tail + literal
    return tail


def template_head(template: str) -> str:
    """The literal text before the first slot: what every rendered query starts with ("" if a slot
    comes first)."""
    for literal, _, _, _ in string.Formatter().parse(template):  # literals come unescaped
        return literal
    return ""


def check_pattern(pattern: "Pattern", task: "Task") -> None:
    """Every slot must be a text field of the task and every label must have an answer word."""
    for f in template_fields(pattern.template):
        if f not in task.text_fields:
            raise PromptError(f"pattern {pattern.name!r} uses the field {{{f}}}, which task {task.name!r} does not "
                              f"have; its text fields are: {', '.join(task.text_fields)}")
    missing = [lab for lab in task.label_names if lab not in pattern.verbalizer]
    if missing:
        raise PromptError(f"pattern {pattern.name!r} has no answer word for label(s) {missing}; "
                          f"its verbalizer covers {sorted(pattern.verbalizer)}")


def render(pattern: "Pattern", example: dict) -> str:
    """The template with the example's fields filled in, nothing added around it."""
    fields = template_fields(pattern.template)
    lacking = [f for f in fields if f not in example]
    if lacking:
        raise PromptError(f"pattern {pattern.name!r} uses the field {{{lacking[0]}}}, which the example "
                          f"{example.get('id', '?')!r} does not have; its fields are: "
                          f"{', '.join(k for k in example if k not in ('id', 'label'))}")
    return pattern.template.format_map({f: str(example[f]) for f in fields})


def answer_words(pattern: "Pattern", label_names: tuple[str, ...]) -> list[str]:
    """The verbalizer's words in label-id order."""
    return [pattern.verbalizer[lab] for lab in label_names]


def demonstration(pattern: "Pattern", example: dict, label_names: tuple[str, ...]) -> str:
    """One solved example: the rendered template followed directly by its gold answer word."""
    return render(pattern, example) + pattern.verbalizer[label_names[example["label"]]]


def context(pattern: "Pattern", demos: list[dict], label_names: tuple[str, ...], separator: str = "\n\n",
            instruction: str | None = None) -> str:
    """Everything before the query: [instruction, demo_1, ..., demo_k], each followed by `separator`."""
    parts = ([instruction] if instruction else []) + [demonstration(pattern, d, label_names) for d in demos]
    return "".join(p + separator for p in parts)


def full_prompt(pattern: "Pattern", example: dict, ctx: str = "") -> str:
    """The exact text whose continuation is scored: the context (if any) and the rendered query."""
    return ctx + render(pattern, example)


def content_free_example(task: "Task", text: str = CONTENT_FREE) -> dict:
    """An input with `text` in every text field, for contextual calibration."""
    return {"id": "content-free", **{f: text for f in task.text_fields}}


# -- token ids -----------------------------------------------------------------------------------


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def context_ids(tokenizer, context: str, query_start: str) -> list[int]:
    """Token ids of a context as it is tokenized with a query after it.

    A byte-level BPE merges trailing whitespace differently at the end of a text than before a
    word: a context ending in the separator "\n\n" alone gives one token ("ĊĊ"), but the same
    separator before the query's first word gives two ("Ċ", "Ċ"), as between the demonstrations
    inside the context and in the whole prompt's own tokenization. So the ids are those of
    context + `query_start` minus those of `query_start`, where that split is clean; else the
    context's own."""
    if context and query_start:
        whole, start = _ids(tokenizer, context + query_start), _ids(tokenizer, query_start)
        if start and len(whole) > len(start) and whole[-len(start):] == start:
            return whole[:-len(start)]
    return _ids(tokenizer, context)


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (e.g. [CLS] ... [SEP], or BOS)."""
    probe = "a b"
    bare, full = _ids(tokenizer, probe), list(tokenizer(probe)["input_ids"])
    for i in range(len(full) - len(bare) + 1):
        if full[i:i + len(bare)] == bare:
            return full[:i], full[i + len(bare):]
    return [], []


def answer_token_ids(tokenizer, words: list[str], before: str, is_decoder: bool) -> list[list[int]]:
    """Token ids of each answer word as it follows `before` (the end of the prompt).

    Decoder: ids(before + word) minus ids(before), so a word is tokenized the way it appears after
    the prompt (" Yes" -> "ĠYes"); a word of several tokens is scored by the sum of their log-probs.
    Masked LM: one mask stands for the whole word, so each word must be exactly one token.
    """
    out = []
    for w in words:
        if not w.strip():
            raise PromptError(f"answer word {w!r} is empty")
        if is_decoder:
            head, whole = _ids(tokenizer, before), _ids(tokenizer, before + w)
            if whole[:len(head)] != head or len(whole) == len(head):
                raise PromptError(f"answer word {w!r} merges with the end of the prompt {before[-20:]!r} when "
                                  "tokenized; start the word with a space or end the template with one")
            out.append(whole[len(head):])
        else:
            ids = _ids(tokenizer, w)
            if len(ids) != 1:
                pieces = tokenizer.convert_ids_to_tokens(ids)
                raise PromptError(f"answer word {w!r} is {len(ids)} tokens {pieces} for this masked LM; scoring "
                                  "with one mask needs a single-token word per label (pick another verbalizer)")
            out.append(ids)
    if len({tuple(x) for x in out}) < len(out):
        raise PromptError(f"answer words {words} do not all have different token ids")
    return out
