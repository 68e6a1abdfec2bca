"""Forgetting, the price of adaptation: the language-modelling loss per token on a held-out
general-text sample, measured before adaptation (the model as loaded) and after it (the model as
evaluated), within the same run.

The loss is read through the model's pretrained LM head, next token after next token (causal LMs):
- an LM-head model (pattern, icl, distill, lora with scoring=pattern): its own LM head;
- a classification-head model whose LM head is tied to its input embeddings (smollm2): the input
  embeddings are that head, so finetune, head, lora, ... on it are measured too;
- a classification-head model with an untied LM head: the pretrained `lm_head.weight` is read from
  the checkpoint's safetensors and kept frozen, so the figure shows how far the backbone drifted
  from what that head expects.
Where no pretrained LM head exists (an encoder such as minilm-l6, a masked LM, a head that the
load had to initialise) the record says "n/a" with the reason: never a made-up number.
Methods that add inputs in front of the text (prompt-tuning, prefix-tuning) are measured on the
text alone: without its soft prompt, such a model is the pretrained one.
"""
from __future__ import annotations

import json
import time
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F

from tuneoff.models import unwrap, window_of

BUILTIN = "builtin:general.txt"
CHUNK = 256  # tokens per forward pass (fewer if the model's window is smaller)


class TextError(ValueError):
    """The text file to measure on cannot be read."""


class NotMeasurable(Exception):
    """The model has no pretrained LM head to read the loss through; the message says why."""


def read_text(path: str | None) -> str:
    if path is None:
        return (files("tuneoff") / "texts" / "general.txt").read_text(encoding="utf-8")
    p = Path(path)
    if not p.is_file():
        raise TextError(f"forgetting.text {path!r} is not a file; give a UTF-8 text file, or leave "
                                "it unset for the shipped public-domain sample")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TextError(f"forgetting.text {path!r} is not UTF-8 text ({e.reason})") from None


def _checkpoint_lm_head(source: str) -> torch.Tensor | None:
    """`lm_head.weight` from a checkpoint folder (or cached hub id) in safetensors, or None."""
    from safetensors import safe_open
    from transformers.utils import cached_file

    def _file(name):
        try:
            return cached_file(source, name, _raise_exceptions_for_missing_entries=False)
        except (OSError, ValueError):
            return None

    index = _file("model.safetensors.index.json")
    shard = json.loads(Path(index).read_text())["weight_map"].get("lm_head.weight") if index else None
    path = _file(shard) if shard else _file("model.safetensors")
    if not path:
        return None
    with safe_open(path, framework="pt") as f:
        return f.get_tensor("lm_head.weight") if "lm_head.weight" in f.keys() else None


def lm_reader(model: torch.nn.Module, loaded) -> tuple[torch.nn.Module, torch.nn.Module | torch.Tensor, str]:
    """(backbone, LM head, how it was found) of `model`; raises NotMeasurable when it has none.
    The head is a module (the model's own) or a frozen weight tensor (tied or from the checkpoint)."""
    if not loaded.is_decoder:
        raise NotMeasurable("not a causal LM (an encoder or masked LM): no next-token loss to read")
    new = loaded.info.get("newly_initialised") or []
    if any("lm_head" in k for k in new):
        raise NotMeasurable("the LM head was initialised at load time, not pretrained")
    m = unwrap(model)
    backbone = getattr(m, m.base_model_prefix, None)
    if backbone is None:
        raise NotMeasurable(f"cannot find the backbone of {type(m).__name__}")
    head = m.get_output_embeddings()
    if head is not None:
        return backbone, head, "the model's LM head"
    config = m.config.get_text_config() if hasattr(m.config, "get_text_config") else m.config
    if getattr(config, "tie_word_embeddings", False):
        return backbone, m.get_input_embeddings().weight, "the input embeddings (tied to the LM head)"
    weight = _checkpoint_lm_head(str(loaded.info.get("source", ""))) if loaded.info.get("source") else None
    if weight is None:
        raise NotMeasurable("untied LM head not found in the checkpoint's safetensors (lm_head.weight)")
    return backbone, weight, "the pretrained LM head read from the checkpoint (frozen)"


def token_chunks(tokenizer, text: str, max_tokens: int, window: int) -> list[list[int]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    size = max(2, min(CHUNK, window))
    return [ids[i:i + size] for i in range(0, len(ids), size) if len(ids[i:i + size]) > 1]


@torch.no_grad()
def lm_loss(model: torch.nn.Module, loaded, chunks: list[list[int]]) -> tuple[float, int, str]:
    """(mean next-token cross-entropy in nats per token, tokens predicted, how the head was read)."""
    backbone, head, how = lm_reader(model, loaded)
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    total, count = 0.0, 0
    try:
        for ids in chunks:
            x = torch.tensor([ids], device=device)
            h = backbone(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0, :-1]
            logits = head(h) if isinstance(head, torch.nn.Module) else h @ head.to(device, h.dtype).T
            total += float(F.cross_entropy(logits.float(), x[0, 1:], reduction="sum"))
            count += len(ids) - 1
    finally:
        backbone.train(was_training)
    return total / max(count, 1), count, how


def measure(model, loaded, chunks) -> dict:
    """{"lm_loss", "tokens", "head", "seconds"} or {"na": reason}."""
    start = time.perf_counter()
    try:
        loss, n, how = lm_loss(model, loaded, chunks)
    except NotMeasurable as e:
        return {"na": str(e)}
    return {"lm_loss": loss, "tokens": n, "head": how, "seconds": time.perf_counter() - start}


DIGITS = 4  # float32 sums differ in the last digits with the number of CPU threads


def result(before: dict, after: dict, text: str | None) -> tuple[dict, float]:
    """The run record's `forgetting`: loss before and after, their difference (after − before: >0
    means the adapted model models general text worse), or n/a with the reason; and the seconds the
    two measurements took (a resource of the run)."""
    source = text or BUILTIN
    seconds = round(before.get("seconds", 0.0) + after.get("seconds", 0.0), 3)
    if "na" in before or "na" in after:
        return {"status": "n/a", "reason": before.get("na") or after.get("na"), "text": source}, seconds
    b, a = round(before["lm_loss"], DIGITS), round(after["lm_loss"], DIGITS)
    return {"status": "done", "lm_loss_before": b, "lm_loss_after": a, "lm_loss_delta": round(a - b, DIGITS),
            "tokens": before["tokens"], "head": before["head"], "text": source}, seconds


class Probe:
    """Forgetting as a run measures it: `before` on the model as loaded (before the method touches
    it), `after` on the model as evaluated; `result` is the record's `forgetting` and the seconds."""

    def __init__(self, text: str | None, max_tokens: int):
        self.text, self.max_tokens = text, max_tokens
        self.chunks: list[list[int]] = []
        self.before_: dict = {}
        self.after_: dict = {}

    def before(self, loaded) -> None:
        self.chunks = token_chunks(loaded.tokenizer, read_text(self.text), self.max_tokens, window_of(loaded.model))
        self.before_ = measure(loaded.model, loaded, self.chunks)

    def after(self, model, loaded) -> None:
        self.after_ = measure(model, loaded, self.chunks)

    def result(self) -> tuple[dict, float]:
        return result(self.before_, self.after_, self.text)
