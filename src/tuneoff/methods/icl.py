"""In-context learning: the frozen LM scores answer words after k solved examples per class.

The context (instruction line + demonstrations, each followed by the separator) is the same for
every query, so it is encoded once and its key/value cache is reused for every batch
(`use_cache=false` runs the whole text each time instead: same numbers, slower). Demonstrations
come from the few-shot training set only, so icl sees the same labelled data as the other methods.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from pydantic import Field

from tuneoff import prompts
from tuneoff.methods import Method, MethodError, MethodOptions, register
from tuneoff.methods.base import batch_to, require_decoder, set_trainable
from tuneoff.methods.pattern import LMScorer, Prefix, scorer_for


class ContextOptions(MethodOptions):
    """How the context of demonstrations is built (shared by icl and distill)."""

    k: int = Field(4, ge=1, description="demonstrations per class, drawn from the few-shot training set")
    demo_seed: int = Field(0, description="seed that, with the split, draws and orders the demonstrations")
    separator: str = Field("\n\n", description="text after the instruction line and after each demonstration")
    instruction: bool = Field(True, description="start the context with the task's one-line instruction")
    calibrate: bool = Field(False, description="contextual calibration: subtract the label log-probs of an 'N/A' input")


class ICLOptions(ContextOptions):
    use_cache: bool = Field(True, description="encode the shared context once and reuse its key/value cache")


def draw_demos(few: list[dict], k: int, seed: int, task, exclude: set[str] = frozenset()) -> list[dict]:
    """k examples per class from `few` (ids in `exclude` left out), balanced, in a shuffled order.

    Which examples and their order depend on the demo seed *and* on the split (the ids of `few`):
    seeded by the demo seed alone, every data seed got the same label order, so every prompt of a
    comparison ended on the same label and the spread over splits hid order sensitivity."""
    rng = random.Random(f"demos/{seed}/" + "|".join(sorted(ex["id"] for ex in few)))
    chosen = []
    for label, name in enumerate(task.label_names):
        pool = [ex for ex in few if ex["label"] == label and ex["id"] not in exclude]
        if k > len(pool):
            raise MethodError(f"k={k} demonstrations per class, but the few-shot set holds only {len(pool)} "
                              f"example(s) of label {name!r} to draw from (shots per class, minus excluded); "
                              f"use k <= {len(pool)} or more shots")
        chosen += rng.sample(pool, k)
    rng.shuffle(chosen)
    return chosen


def instruction_notes(task, opts: ContextOptions) -> list[str]:
    """A note when `instruction=true` cannot take effect because the task has no instruction."""
    if opts.instruction and not task.instruction:
        return [f"task {task.name!r} has no instruction, so instruction=true had no effect: the context starts "
                "with the demonstrations (give the task file an `instruction:` line, or set method.instruction=false)"]
    return []


def make_context(scorer: LMScorer, task, demos: list[dict], opts: ContextOptions) -> Prefix:
    text = prompts.context(scorer.pattern, demos, task.label_names, opts.separator,
                           task.instruction if opts.instruction and task.instruction else None)
    return scorer.prefix(text)


def check_window(scorer: LMScorer, task, demos: list[dict], opts: ContextOptions, queries: list[dict]) -> None:
    """The context plus the longest training query must fit the model's window; if not, say how
    many demonstrations would."""
    longest = max(len(prompts._ids(scorer.tok, prompts.render(scorer.pattern, q))) for q in queries)
    need = min(longest, scorer.max_length) + scorer.extra

    def total(m: int) -> int:
        return len(make_context(scorer, task, demos[:m], opts).ids) + need

    if total(len(demos)) <= scorer.window:
        return
    fit = max((m for m in range(len(demos) + 1) if total(m) <= scorer.window), default=0)
    raise MethodError(
        f"the context of {len(demos)} demonstrations (k={opts.k} per class) and the longest input take "
        f"{total(len(demos))} tokens, more than the model's window of {scorer.window}: {fit} demonstration(s) "
        f"fit, i.e. k <= {fit // task.num_labels} per class")


def content_free_scores(scorer: LMScorer, model, prefix: Prefix, cached: bool) -> torch.Tensor:
    """Label log-probs of the content-free input with the same context, [num_labels]."""
    with torch.no_grad():
        batch = scorer.encode([prompts.content_free_example(scorer.task)], prefix, inline=not cached)
        batch = {k: v.to(scorer_device(model)) for k, v in batch.items()}
        return scorer.scores(model, batch, prefix if cached else None)[0]


def scorer_device(model) -> torch.device:
    return next(model.parameters()).device


@dataclass
class DemoContext:
    """A context of demonstrations, ready for queries: its prefix (with its key/value cache when
    `cached`) and, with calibration, the content-free label scores subtracted from every query's.
    icl scores its eval inputs after one; distill's teacher scores its training inputs after each
    of its contexts."""

    scorer: LMScorer
    model: torch.nn.Module
    prefix: Prefix
    cached: bool
    calibration: torch.Tensor | None = None

    @classmethod
    def build(cls, scorer: LMScorer, model, task, demos: list[dict], opts: ContextOptions, queries: list[dict],
              cached: bool = True) -> "DemoContext":
        """The context of `demos`, checked to leave room for the longest of `queries`; its cache built
        (if `cached`) and its calibration measured (if `opts.calibrate`)."""
        prefix = make_context(scorer, task, demos, opts)
        check_window(scorer, task, demos, opts, queries)
        if cached:
            scorer.build(model, prefix)
        ctx = cls(scorer, model, prefix, cached)
        if opts.calibrate:
            ctx.calibration = content_free_scores(scorer, model, prefix, cached)
        return ctx

    def encode(self, examples: list[dict], cached: bool | None = None) -> dict:
        """A batch of queries; `cached` (default: as built): the context comes from its cache, else
        it is put before each query (the same numbers, slower)."""
        return self.scorer.encode(examples, self.prefix, inline=not self._cached(cached))

    def scores(self, batch: dict, cached: bool | None = None) -> torch.Tensor:
        """Label log-probs of a batch of queries after the context (calibrated), [batch, num_labels]."""
        s = self.scorer.scores(self.model, batch, self.prefix if self._cached(cached) else None)
        return s - self.calibration if self.calibration is not None else s

    def _cached(self, cached: bool | None) -> bool:
        return self.cached if cached is None else cached

    @torch.no_grad()
    def score_batches(self, examples: list[dict], batch_size: int, device: torch.device):
        """(chunk, its scores) for the examples in batches of `batch_size`."""
        for i in range(0, len(examples), batch_size):
            chunk = examples[i:i + batch_size]
            yield chunk, self.scores(batch_to(self.encode(chunk), device))

    def free_cache(self) -> None:
        """Free the key/value cache."""
        self.prefix.kv = None


@register
class InContext(Method):
    name = "icl"
    description = "in-context learning: frozen LM, k demonstrations per class in the prompt, no training"
    Options = ICLOptions
    head = "lm"
    trains = False
    # 2: demonstration order depends on the split; pattern recorded; prompt shown on an eval input.
    # 3: the context ends in its separator tokenized as before the query (prompts.context_ids)
    version = 3
    # nothing trains: the one choice that carries over from a fold to the whole few-shot set is
    # calibration (a demonstration seed would draw other demonstrations from the whole set)
    search_space = {"method.calibrate": [False, True]}

    @classmethod
    def needs_per_class(cls, options):
        return options.k

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        require_decoder(self)
        self.scorer = scorer_for(self)
        self.context: DemoContext | None = None

    def setup(self, train, pool):
        opts = self.options
        set_trainable(self.model, False)
        self.model.eval()
        self.demos = draw_demos(train, opts.k, opts.demo_seed, self.task)
        self.notes += instruction_notes(self.task, opts)
        self.context = DemoContext.build(self.scorer, self.model, self.task, self.demos, opts, train, opts.use_cache)

    @property
    def prefix(self) -> Prefix | None:
        return self.context.prefix if self.context else None

    def prompt_example(self, example: dict) -> str:
        return self.scorer.prompt(example, self.prefix)

    def collate(self, examples: list[dict]) -> dict:
        return self.context.encode(examples, self.options.use_cache)

    def class_logits(self, batch: dict) -> torch.Tensor:
        return self.context.scores(batch, self.options.use_cache)
