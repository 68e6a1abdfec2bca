"""Pattern-based fine-tuning, and the one LM scorer that pattern, icl and distill share.

A label's score is the LM's log-probability of its verbalizer word right after the prompt, read
through the pretrained LM head (never a new head):

- decoder: batches are right-padded; the word's first token is predicted at the example's last
  real token; a word of several tokens is appended (one row per label) and its tokens' log-probs
  are summed.
- masked LM: a mask token is appended directly after the rendered template and stands for the
  whole answer word, its leading whitespace included (the pattern alone decides whitespace, as for
  decoders); words must be single tokens.

A shared context (instruction + demonstrations) is a `Prefix`: its ids are encoded once, and its
keys/values are built once and shared by every row of every batch (methods/shared_prefix.py), with
positions continuing after it; models that path does not fit get them copied into each row's cache.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tuneoff import prompts
from tuneoff.methods import Method, MethodError, MethodOptions, register
from tuneoff.methods.base import set_trainable
from tuneoff.methods.kvcache import cache_arg, cache_of, dynamic_cache
from tuneoff.methods.shared_prefix import KWARG as SHARED
from tuneoff.methods.shared_prefix import attend_with
from tuneoff.models import unwrap, window_of


@dataclass
class Prefix:
    """A context shared by every query: its text, token ids and (once built) per-layer keys/values."""

    text: str
    ids: list[int]
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def cache(self, rows: int, config):
        """A fresh DynamicCache holding the prefix for `rows` sequences (a forward pass grows the
        cache in place, so every batch gets its own; the stored tensors are never modified)."""
        return dynamic_cache([(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.kv],
                             config)


class LMScorer:
    """Encodes prompts and scores the task's answer words with a (causal or masked) LM."""

    def __init__(self, task, pattern, tokenizer, is_decoder: bool, max_length: int, window: int):
        prompts.check_pattern(pattern, task)
        self.task, self.pattern, self.tok, self.is_decoder = task, pattern, tokenizer, is_decoder
        self.words = prompts.answer_words(pattern, task.label_names)
        self.answers = prompts.answer_token_ids(tokenizer, self.words, prompts.template_tail(pattern.template),
                                                is_decoder)
        self.head, self.tail = prompts.special_tokens_around(tokenizer)
        if is_decoder:
            self.tail = []  # an appended EOS would end the text before the answer
        elif tokenizer.mask_token_id is None:
            raise MethodError("this masked LM's tokenizer has no mask token")
        self.extra = max(len(a) for a in self.answers) - 1 if is_decoder else 1  # answer tokens in the input
        self.max_length, self.window = max_length, window
        self._head_ok: bool | None = None
        self._shared_ok: bool | None = None  # does the shared-prefix attention fit this model (checked once)?

    # -- text and ids ----------------------------------------------------------------------------
    def prompt(self, example: dict, prefix: Prefix | None = None) -> str:
        text = prompts.full_prompt(self.pattern, example, prefix.text if prefix else "")
        return text if self.is_decoder else text + self.tok.mask_token

    def prefix(self, text: str) -> Prefix:
        """The context's ids as they are before a query (prompts.context_ids): the separator that
        ends it is tokenized as in the whole prompt, not as the end of a text."""
        start = prompts.template_head(self.pattern.template) or "x"  # a slot first: the query starts with text
        return Prefix(text, self.head + prompts.context_ids(self.tok, text, start))

    def query_budget(self, prefix: Prefix | None) -> int:
        """Tokens a query may have (it is cut from the left beyond that)."""
        used = len(prefix.ids) if prefix else len(self.head) + len(self.tail)
        return min(self.max_length, self.window - used) - self.extra

    def encode(self, examples: list[dict], prefix: Prefix | None = None, inline: bool = True) -> dict:
        """Right-padded ids of [prefix if inline] + query (+ mask), with "labels" and "attention_mask".
        With `inline=False` the prefix is left out: it comes from its cache."""
        budget = self.query_budget(prefix)
        if budget < 1:
            raise MethodError(f"the context takes {len(prefix.ids) if prefix else 0} of the model's "
                              f"{self.window} positions: no room is left for the input")
        rows = []
        for ex in examples:
            q = prompts._ids(self.tok, prompts.render(self.pattern, ex))[-budget:]
            if not self.is_decoder:
                q = q + [self.tok.mask_token_id]
            start = (prefix.ids if inline else []) if prefix else self.head
            rows.append(start + q + self.tail)
        width = max(len(r) for r in rows)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
        return {"input_ids": ids, "attention_mask": mask,
                "labels": torch.tensor([ex.get("label", -100) for ex in examples], dtype=torch.long)}

    # -- the model -------------------------------------------------------------------------------
    @torch.no_grad()
    def build(self, model, prefix: Prefix) -> Prefix:
        """Run the prefix once and keep its keys/values."""
        lm = unwrap(model)
        ids = torch.tensor([prefix.ids], device=lm.device)
        out = lm.get_decoder()(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        prefix.kv = [(layer.keys, layer.values) for layer in cache_of(out).layers]
        return prefix

    def _logits(self, lm, ids, mask, prefix: Prefix | None, rows_at: torch.Tensor, cols_at: torch.Tensor,
                used: torch.Tensor | None = None):
        """LM logits at the given (row, column) positions of the input, via the backbone and the LM
        head, so the [batch, length, vocab] tensor is never built. With a built prefix, its keys and
        values are shared by every row (methods/shared_prefix.py); the first batch also runs the cache
        path and keeps the shared one only if both give the same logits where they are `used` (default:
        all; a padding position's own output differs, as the shared path does not mask pads)."""
        if self._head_ok is None:
            self._head_ok = self._check_head(lm)
        if prefix is None or prefix.kv is None:
            return self._forward(lm, ids, mask, {"use_cache": False}, rows_at, cols_at)  # no cache to build
        n, p = ids.shape[0], len(prefix.ids)
        positions = (p + torch.arange(ids.shape[1], device=ids.device)).expand(n, -1)
        shared = None
        if self._shared_ok is not False:
            try:
                with attend_with(lm):
                    shared = self._forward(lm, ids, mask, {SHARED: prefix.kv, "position_ids": positions,
                                                           "use_cache": False}, rows_at, cols_at)
            except (TypeError, KeyError, AttributeError, RuntimeError, ValueError):
                if self._shared_ok:
                    raise
                self._shared_ok = False  # an architecture the shared path does not fit
            if self._shared_ok:
                return shared
        cached = self._forward(lm, ids, torch.cat([mask.new_ones(n, p), mask], dim=1),
                               {cache_arg(lm.get_decoder()): prefix.cache(n, lm.config), "use_cache": True,
                                "position_ids": positions}, rows_at, cols_at)
        if self._shared_ok is None:
            sel = used if used is not None else slice(None)
            self._shared_ok = bool(torch.allclose(shared[sel], cached[sel], atol=1e-4, rtol=1e-4))
        return cached

    def _forward(self, lm, ids, mask, kw: dict, rows_at: torch.Tensor, cols_at: torch.Tensor) -> torch.Tensor:
        if not self._head_ok:
            return lm(input_ids=ids, attention_mask=mask, **kw).logits[rows_at, cols_at]
        hidden = lm.get_decoder()(input_ids=ids, attention_mask=mask, **kw).last_hidden_state
        return lm.get_output_embeddings()(hidden[rows_at, cols_at])

    @torch.no_grad()
    def _check_head(self, lm) -> bool:
        """Does backbone + output embeddings give the model's logits (no soft-capping, scaling)?"""
        if not (hasattr(lm, "get_decoder") and lm.get_output_embeddings() is not None) or not self.is_decoder:
            return False
        ids = torch.tensor([self.head + prompts._ids(self.tok, "a b c")], device=lm.device)
        was_training = lm.training
        lm.eval()  # no dropout in the comparison
        full = lm(input_ids=ids).logits[0, -1]
        mine = lm.get_output_embeddings()(lm.get_decoder()(input_ids=ids).last_hidden_state[0, -1])
        lm.train(was_training)
        return torch.allclose(full, mine, atol=1e-4, rtol=1e-4)

    def scores(self, model, batch: dict, prefix: Prefix | None = None) -> torch.Tensor:
        """Log-probability of each label's answer word, [batch, num_labels] (prefix: a built cache)."""
        lm = unwrap(model)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        n, dev = ids.shape[0], ids.device
        last = mask.sum(1) - 1  # the last real token of each right-padded row
        if not self.is_decoder:
            pos = (ids == self.tok.mask_token_id).long().argmax(1)
            logp = lm(input_ids=ids, attention_mask=mask).logits[torch.arange(n, device=dev), pos].log_softmax(-1)
            return logp[:, [a[0] for a in self.answers]]
        if self.extra == 0:  # every word is one token: one row per example
            logp = self._logits(lm, ids, mask, prefix, torch.arange(n, device=dev), last).log_softmax(-1)
            return logp[:, [a[0] for a in self.answers]]
        # several tokens: one row per (example, label) with the word's tokens but the last appended
        c, a = len(self.answers), self.extra + 1
        ids = F.pad(ids, (0, self.extra), value=self.tok.pad_token_id or 0).repeat_interleave(c, 0)
        mask = F.pad(mask, (0, self.extra)).repeat_interleave(c, 0)
        last = last.repeat_interleave(c)
        target = torch.zeros(n * c, a, dtype=torch.long, device=dev)
        valid = torch.zeros(n * c, a, dtype=torch.bool, device=dev)
        for r in range(n * c):
            word = self.answers[r % c]
            for j, t in enumerate(word):
                target[r, j], valid[r, j] = t, True
                if j < len(word) - 1:
                    ids[r, last[r] + 1 + j], mask[r, last[r] + 1 + j] = t, 1
        rows = torch.arange(n * c, device=dev)[:, None].expand(-1, a)
        cols = last[:, None] + torch.arange(a, device=dev)[None]
        logp = self._logits(lm, ids, mask, prefix, rows, cols.clamp(max=ids.shape[1] - 1), valid).log_softmax(-1)
        tok_lp = logp.gather(-1, target[..., None])[..., 0] * valid
        return tok_lp.sum(-1).view(n, c)


def scorer_for(method: Method, name: str | None = None) -> LMScorer:
    """The scorer of the task's pattern `name` (None: the run's `pattern`, else the task's default)
    for the method's model."""
    task = method.task
    try:
        pattern = task.pattern(name if name is not None else method.ctx.pattern)
        return LMScorer(task, pattern, method.tokenizer, method.ctx.loaded.is_decoder, method.max_length,
                        window_of(method.model))
    except (KeyError, prompts.PromptError) as e:
        raise MethodError(str(e).strip('"')) from None


class PatternOptions(MethodOptions):
    """No options of its own: the run config's `pattern` picks the template and answer words."""


@register
class PatternFinetune(Method):
    name = "pattern"
    description = "pattern-based fine-tuning: all weights, labels scored as verbalizer words by the LM head"
    Options = PatternOptions
    head = "lm"
    version = 2  # 2: the resolved pattern (name and template) is recorded

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.scorer = scorer_for(self)

    def setup(self, train, pool):
        set_trainable(self.model, True)

    def prompt_example(self, example: dict) -> str:
        return self.scorer.prompt(example)

    def collate(self, examples: list[dict]) -> dict:
        return self.scorer.encode(examples)

    def class_logits(self, batch: dict) -> torch.Tensor:
        return self.scorer.scores(self.model, batch)
