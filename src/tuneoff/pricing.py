"""What a run will compute, counted before it runs: the work behind `tuneoff.estimate`'s first-
principles price, which `tuneoff.throughput` turns into seconds.

A run's work (`Work`) is counted in the units its time grows with:

- model loads (the run's; one per fold model of a selection);
- optimizer steps, and the trainable parameters they update (AdamW's pass over them);
- training FLOPs, `resources.approx_flops`: (4·N + 2·N_trainable) per token passed forward and
  backward, 2·N per token of a pass made once before the steps (`head`'s frozen features);
- forward FLOPs, 2·N per token scored: the eval sets (capped by eval.max_examples), a selection's
  held-out parts, the set-up passes of icl (its context) and distill (its teacher), forgetting's
  256-token text before and after (decoders), and attention over a demonstration context.

Tokens per example are the task's own: the mean over (up to `SAMPLE` of) the train pool's and each
eval set's examples as the method sees them, capped at max_length: a classification head gets the
text fields as a pair (a decoder: joined by a space), an LM-scored method (`uses_pattern`) the
pattern's rendered prompt. Only the tokenizer is loaded (`tokenizer_for`); N comes from the model's
config, built on the meta device (no weights), else `EMBEDDED_PARAMS` for an embedded alias whose
config is not on disk yet. Data is read only from local files: a task on the hub is "unknown" to a
dry run, which uses no network. N_trainable is N times `TRAINABLE`'s share for the method.

Examples passed in training = the steps × the examples per step (shots × labels × epochs, or
max_steps × batch size); a run whose selection searches the training length is priced at the
length's end, the longest its first round may choose (the edge rule may extend it: `selection_work`). `head`'s steps run no layer of the model: only its feature
pass counts. A selection's work is in `selection_work`.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields, replace
from functools import lru_cache

from tuneoff import data as data_mod
from tuneoff import models
from tuneoff.config import candidates
from tuneoff.prompts import render
from tuneoff.resources import approx_flops, count_parameters
from tuneoff.space import Range
from tuneoff.tasks import get_task
from tuneoff.train import epoch_steps, stop_step

SAMPLE = 1000  # examples tokenized per set (drawn with a fixed seed): the mean of more moves little
# Share of the parameters that get weight gradients, measured on smollm2-135m runs
# (docs/cola-mnli-cpu: params_trainable / params_total); a method not listed trains them all.
TRAINABLE = {"finetune": 1.0, "pattern": 1.0, "half": 0.6, "adaptive": 0.6, "lora": 0.004, "ia3": 0.001,
             "bitfit": 0.001, "prompt-tuning": 0.0, "prefix-tuning": 0.001, "head": 0.0,
             # measured on smollm2-135m runs of the demo task at the methods' default options (the LoRA
             # variants have lora's shapes; ln-tuning's share is its norm weights, 61 × 576)
             "rslora": 0.004, "pissa": 0.004, "olora": 0.004, "loraplus": 0.004, "peft": 0.004, "dora": 0.004,
             "vera": 0.0003, "adalora": 0.005, "loha": 0.007, "ln-tuning": 0.0003, "adapter": 0.009,
             "pet": 3.0}  # pet: its three members (the built-in tasks declare three patterns) train every weight
# (parameters without the task's head, layers, hidden size), read from the models' configs once: for
# an embedded alias whose config is not on disk yet (smollm2's before its first dequantisation)
EMBEDDED_PARAMS = {"minilm-l6": (22_713_216, 6, 384), "smollm2-135m": (134_515_008, 30, 576)}
FORGETTING_PASSES = 2  # before and after adaptation


@dataclass
class Work:
    """What a run (or a part of it) computes, in the units its time grows with."""

    loads: float = 0.0        # model loads
    steps: float = 0.0        # optimizer steps
    step_params: float = 0.0  # trainable parameters updated, summed over the steps
    train_flops: float = 0.0  # forward and backward passes of training (and passes made once before it)
    eval_flops: float = 0.0   # forward passes that score or set up

    def __add__(self, other: "Work") -> "Work":
        return Work(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def times(self, k: float) -> "Work":
        return Work(*(getattr(self, f.name) * k for f in fields(self)))

    @property
    def flops(self) -> float:
        """Training and scoring FLOPs together."""
        return self.train_flops + self.eval_flops


@dataclass(frozen=True)
class Inputs:
    """What a run's work is counted from: the model's size and the task's tokens per example."""

    params: int                    # N, with the run's head
    layers: int
    hidden: int
    decoder: bool
    tokens: float                  # per training example, as the method sees it
    evals: tuple                   # (name, examples, tokens per example) per eval set
    num_labels: int


class Unknown(Exception):
    """The work cannot be counted (data or model not readable here); the message says why."""


# -- inputs --------------------------------------------------------------------------------------

_loaded: dict[tuple, object] = {}


def forget() -> None:
    """Read data, tokenizers and model configs again at their next use."""
    _loaded.clear()


def _once(key: tuple, fn):
    if key not in _loaded:
        try:
            _loaded[key] = fn()
        except Unknown as e:
            _loaded[key] = e
        except Exception as e:  # noqa: BLE001 - a price is never worth failing a dry run for
            _loaded[key] = Unknown(f"{type(e).__name__}: {str(e)[:200]}")
    got = _loaded[key]
    if isinstance(got, Unknown):
        raise Unknown(str(got))
    return got


def _local(source, data_dir) -> bool:
    return bool(source.path) or data_dir is not None


def task_data(task_spec: str, data_dir: str | None, sets: tuple | None, cap: int | None):
    """(task, train pool, {eval set: examples, capped}) read from local files; Unknown otherwise."""
    task = get_task(task_spec)
    if not _local(task.train, data_dir):
        raise Unknown(f"task {task.name!r} reads its data from the hub, which a dry run does not; pass data_dir")
    pool = _once(("pool", task_spec, data_dir), lambda: data_mod.load_train(task, data_dir))
    evals = {}
    for name in sets or [es.name for es in task.eval_sets]:
        es = task.eval_set(name)
        if not _local(es.source, data_dir):
            raise Unknown(f"eval set {name!r} of {task.name!r} is on the hub, which a dry run does not read")
        exs = _once(("eval", task_spec, data_dir, name), lambda es=es: data_mod.load_eval(task, es, data_dir))
        if exs is not None:
            evals[name] = data_mod.cap_eval(exs, cap, es.subset_fields)
    return task, pool, evals


def tokenizer_for(cfg, task, texts: list[str]):
    """The run's tokenizer, nothing else of the model: a tiny model's is built from the task's texts,
    an embedded GGUF model's is read from its file when it is not dequantised yet; a hub id only from
    the local cache."""
    from transformers import AutoTokenizer

    if cfg.model in models.TINY:
        return models.tiny_tokenizer(texts, models.TINY[cfg.model] == "llama")
    emb = models.EMBEDDED.get(cfg.model)
    if emb is not None and models.needs_dequantising(cfg.model):
        return AutoTokenizer.from_pretrained(models._package_dir(cfg.model), gguf_file=emb.gguf_file)
    return AutoTokenizer.from_pretrained(models.resolve(cfg.model), local_files_only=True,
                                         trust_remote_code=cfg.trust_remote_code)


def model_shape(cfg, num_labels: int, head: str, vocab: int) -> tuple[int, int, int, bool]:
    """(N with the run's head, layers, hidden size, decoder?) from the model's config, built on the
    meta device (no weights read); `EMBEDDED_PARAMS` for an embedded alias not on disk yet."""
    import torch
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM,
                              AutoModelForSequenceClassification)

    if cfg.model in models.EMBEDDED and models.needs_dequantising(cfg.model):
        n, layers, hidden = EMBEDDED_PARAMS[cfg.model]
        return n + (num_labels * (hidden + 1) if head == "classifier" else 0), layers, hidden, True
    if cfg.model in models.TINY:
        config = models.tiny_config(models.TINY[cfg.model], vocab, 0)  # its vocabulary: the task's words
    else:
        config = AutoConfig.from_pretrained(models.resolve(cfg.model), local_files_only=True,
                                            trust_remote_code=cfg.trust_remote_code)
    decoder = models.is_decoder_config(config)
    config.num_labels = num_labels
    cls = (AutoModelForSequenceClassification if head == "classifier"
           else AutoModelForCausalLM if decoder else AutoModelForMaskedLM)
    with torch.device("meta"):
        model = cls.from_config(config, trust_remote_code=cfg.trust_remote_code)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0)
    return count_parameters(model)["params_total"], int(layers), int(hidden), decoder


def _texts(task, examples: list[dict]) -> list[str]:
    return [" ".join(ex[f] for f in task.text_fields) for ex in examples]


def mean_tokens(tok, task, examples: list[dict], pattern, decoder: bool, max_length: int) -> float:
    """Mean tokens per example (up to `SAMPLE` of them) as the method sees them, capped at max_length."""
    if not examples:
        return 0.0
    exs = examples if len(examples) <= SAMPLE else random.Random(0).sample(examples, SAMPLE)
    if pattern is not None:  # LM-scored: the rendered prompt, one special token before it
        lens = [len(tok(render(pattern, ex), add_special_tokens=False)["input_ids"]) + 1 for ex in exs]
    elif decoder or len(task.text_fields) == 1:
        lens = [len(ids) for ids in tok(_texts(task, exs))["input_ids"]]
    else:  # an encoder's pair, as `ClassifierMethod.collate` gives it
        rest = [" ".join(ex[f] for f in task.text_fields[1:]) for ex in exs]
        lens = [len(ids) for ids in tok([ex[task.text_fields[0]] for ex in exs], rest)["input_ids"]]
    return sum(min(n, max_length) for n in lens) / len(lens)


def inputs(cfg) -> Inputs:
    """The model's size and the task's tokens per example for `cfg` (cached per task, data, model and
    view); Unknown where the data or the model cannot be read here."""
    head = cfg.method_class.head_for(cfg.method_options)
    view = (cfg.pattern or "default") if cfg.uses_pattern else "fields"
    key = ("inputs", cfg.task, cfg.data_dir, cfg.model, head, view, cfg.max_length,
           tuple(cfg.eval.sets or ()), cfg.eval.max_examples)
    return _once(key, lambda: _inputs(cfg, head))


def _inputs(cfg, head: str) -> Inputs:
    task, pool, evals = task_data(cfg.task, cfg.data_dir, tuple(cfg.eval.sets or ()), cfg.eval.max_examples)
    vocab = _texts(task, pool) + [t for exs in evals.values() for t in _texts(task, exs)]
    vocab += [p.template for p in task.patterns.values()]
    tok = _once(("tokenizer", cfg.model, cfg.task, cfg.data_dir), lambda: tokenizer_for(cfg, task, vocab))
    n, layers, hidden, decoder = _once(("shape", cfg.model, task.num_labels, head, len(tok)),
                                       lambda: model_shape(cfg, task.num_labels, head, len(tok)))
    pattern = task.pattern(cfg.pattern) if cfg.uses_pattern else None
    per = [(name, len(exs), mean_tokens(tok, task, exs, pattern, decoder, cfg.max_length))
           for name, exs in evals.items()]
    return Inputs(n, layers, hidden, decoder, mean_tokens(tok, task, pool, pattern, decoder, cfg.max_length),
                  tuple(per), task.num_labels)


# -- a run's work ----------------------------------------------------------------------------------

def trainable(cfg, n: int) -> float:
    """N_trainable of the run's method: N times its `TRAINABLE` share (distill: its student's)."""
    if not cfg.method_class.trains:
        return 0.0
    if cfg.method.name == "distill":
        return n * (1.0 if cfg.method_options.student == "full" else TRAINABLE["lora"])
    return n * TRAINABLE.get(cfg.method.name, 1.0)


def context_tokens(cfg, inp: Inputs) -> float:
    """Tokens of icl's or distill's context: k demonstrations per class (each its prompt and answer)
    and the instruction line; 0 for other methods."""
    k = getattr(cfg.method_options, "k", None) if cfg.method.name in ("icl", "distill") else None
    return 0.0 if k is None else k * inp.num_labels * (inp.tokens + 2) + 16


def forward(inp: Inputs, tokens: float, context: float = 0.0) -> float:
    """FLOPs of scoring `tokens` tokens, each also attending over `context` cached positions."""
    return approx_flops(inp.params, 0, tokens, False) + 4.0 * inp.layers * inp.hidden * context * tokens


def training(cfg, inp: Inputs, n: float, start: float = 0.0, end: float | None = None, horizon=None) -> Work:
    """Training on `n` examples from `start` to `end` epochs (default: the whole schedule, or
    `train.max_steps`); the schedule planned for `horizon` epochs (default train.epochs)."""
    if not cfg.method_class.trains or n <= 0:
        return Work()
    train = cfg.train if horizon is None else cfg.train.model_copy(update={"epochs": horizon, "max_steps": None})
    m = max(1, round(n))
    done = stop_step(m, train) if end is None else epoch_steps(m, train, end)
    steps = done - (epoch_steps(m, train, start) if start else 0)
    per_epoch = math.ceil(math.ceil(m / train.batch_size) / train.grad_accum)
    tokens = steps * n / per_epoch * inp.tokens
    n_t = trainable(cfg, inp.params)
    if cfg.method.name == "head":  # its features once, forward only; its steps run no layer of the model
        return Work(train_flops=approx_flops(inp.params, 0, n * inp.tokens, False) if not start else 0.0)
    return Work(steps=steps, step_params=steps * n_t, train_flops=approx_flops(inp.params, n_t, tokens, True))


def setup(cfg, inp: Inputs, n: float) -> Work:
    """The method's set-up passes on `n` labelled examples: icl's context, distill's teacher."""
    ctx = context_tokens(cfg, inp)
    if not ctx:
        return Work()
    if cfg.method.name == "icl":
        return Work(eval_flops=forward(inp, ctx))
    queries = n + cfg.method_options.unlabelled
    contexts = 1 + cfg.method_options.k * inp.num_labels  # each demonstration's example gets its own
    return Work(eval_flops=forward(inp, contexts * ctx) + forward(inp, queries * inp.tokens, ctx))


def scoring(cfg, inp: Inputs, n: float, tokens: float | None = None) -> float:
    """FLOPs of scoring `n` examples (of `tokens` each, default the train pool's)."""
    ctx = context_tokens(cfg, inp) if cfg.method.name == "icl" else 0.0
    per = inp.tokens if tokens is None else tokens
    if ctx and not cfg.method_options.use_cache:
        return forward(inp, n * (per + ctx))
    return forward(inp, n * per, ctx)


def run_work(cfg, inp: Inputs) -> Work:
    """The run's own work, its selection aside: a load, the set-up, training on its few-shot set (and
    distill's unlabelled inputs), the eval sets, forgetting's passes. A run whose selection searches
    the training length trains at most to the length's end: priced so."""
    n = cfg.shots * inp.num_labels
    extra = cfg.method_options.unlabelled if cfg.method.name == "distill" else 0
    length = cfg.search_length()
    work = Work(loads=1) + setup(cfg, inp, n) + training(cfg, inp, n + extra, horizon=length.high if length else None)
    work.eval_flops += sum(scoring(cfg, inp, size, tokens) for _, size, tokens in inp.evals)
    if cfg.forgetting.enabled and inp.decoder:
        work.eval_flops += FORGETTING_PASSES * forward(inp, cfg.forgetting.max_tokens)
    return work


# -- a selection's work ----------------------------------------------------------------------------

PROMOTION_MARGIN = 1.5  # trials of a learning sampler improve, so more reach the later rungs


@lru_cache(maxsize=None)
def rung_shares(trials: int, factor: int, rungs: int) -> tuple[float, ...]:
    """Share of the trials that reach each rung under Optuna's asynchronous successive halving
    (`SuccessiveHalvingPruner`, reduction factor `factor`): a trial goes on from a rung when its
    score is in the top 1/factor of those reported there so far, and always when fewer than
    `factor` have been, so early trials go further than the synchronous factor^-k. Counted on
    trials whose scores are random (one score per trial, the same order at every rung), averaged
    over 200 orders drawn with a fixed seed, then times `PROMOTION_MARGIN` (at most 1): a sampler
    that learns sends more of its later trials on."""
    rng, sims, reach = random.Random(0), 200, [0] * rungs
    for _ in range(sims):
        seen: list[list[float]] = [[] for _ in range(rungs)]
        for _ in range(trials):
            score = rng.random()
            reach[0] += 1
            for k in range(rungs - 1):
                seen[k].append(score)
                if score < sorted(seen[k])[-max(1, len(seen[k]) // factor)]:
                    break
                reach[k + 1] += 1
    return (1.0, *(min(1.0, PROMOTION_MARGIN * r / (sims * trials)) for r in reach[1:]))


def _folds(cfg, n: int) -> tuple[int, float, float]:
    """(fold models per candidate, examples each trains on, examples each scores)."""
    if cfg.select.protocol != "cv":  # dev: the whole few-shot set, scored on a dev split as large
        return 1, n, n
    k = cfg.folds()
    return k * cfg.select.repeats_for(cfg.shots), n * (k - 1) / k, n / k


def selection_work(cfg, inp: Inputs) -> tuple[Work, Work]:
    """(work, the most the edge rule may add) of the run's selection, made in full.

    grid: every candidate (the lists crossed) trains on each fold's training part for the run's
    length and scores the held-out part. optuna with a length: `trials` trials, each training its
    fold models (folds × repeats) rung by rung up to the length's `high`, scored at every rung
    reached; with pruner=halving a share of the trials reaches each rung (`rung_shares`), without
    every trial reaches the last; with pruner=synchronous every trial fits to the first rung and the
    best third (at least one) of a rung's fits to the next, each from the start. optuna without a
    length (a method that does not train, or `length: false`): like the grid, with `trials` candidates
    (fewer if the lists cross to fewer).

    The edge rule may add up to `extensions` rounds (while a range or the length can extend) of
    trials//2 trials, each with the length one factor longer (9 to 27 to 81 epochs: several times the
    first round, not half of it each), plus under the synchronous pruner the choice trained to each
    new horizon: the most it can add (under `halving`, an estimate: `rung_shares`). The run trained
    at a longer chosen length costs more too, which this does not count."""
    s, space, length = cfg.select, cfg.search_space(), cfg.search_length()
    work, extra = _search_work(cfg, inp, space, length, s.trials), Work()
    ranged = any(isinstance(v, Range) for v in space.values())
    for _ in range(s.extensions if s.search == "optuna" else 0):
        longer = length.extended() if length is not None else None
        if longer is None and not ranged:
            break  # nothing left to extend: the search settles
        if longer is not None and s.pruner == "synchronous":  # the choice itself to the new horizon (run_kept)
            extra = extra + _search_work(cfg, inp, {}, replace(longer, low=longer.above(length.high)[0]), 1)
        length = longer or length
        extra = extra + _search_work(cfg, inp, space, length, max(1, s.trials // 2))
    return work, extra


def _search_work(cfg, inp: Inputs, space: dict, length, trials: int) -> Work:
    """The work of one round of the search (`selection_work`) of `trials` trials over `space` and `length`."""
    s = cfg.select
    n = cfg.shots * inp.num_labels
    extra = cfg.method_options.unlabelled if cfg.method.name == "distill" else 0
    fold_models, n_fit, n_held = _folds(cfg, n)
    ranged = any(isinstance(v, Range) for v in space.values())
    one = Work(loads=1) + setup(cfg, inp, n_fit)
    if s.search == "optuna" and length is not None and s.pruner == "synchronous":
        total, alive = Work(), trials  # a rung's fits each train from the start to it and score once
        for rung in length.rungs():
            part = one + training(cfg, inp, n_fit + extra, 0.0, rung, horizon=length.high)
            part.eval_flops += scoring(cfg, inp, n_held)
            total, alive = total + part.times(alive), length.promoted(alive)
        return total.times(fold_models)
    if s.search == "optuna" and length is not None:
        rungs = length.rungs()
        shares = rung_shares(trials, length.factor, len(rungs)) if s.pruner == "halving" else (1.0,) * len(rungs)
        prev = 0.0
        for share, rung in zip(shares, rungs):
            part = training(cfg, inp, n_fit + extra, prev, rung, horizon=length.high)
            part.eval_flops += scoring(cfg, inp, n_held)
            one, prev = one + part.times(share), rung
        return one.times(trials * fold_models)
    if s.search == "grid":
        count = len(candidates(space))
    else:
        count = trials if ranged else min(trials, len(candidates(space)))
    one = one + training(cfg, inp, n_fit + extra)
    one.eval_flops += scoring(cfg, inp, n_held)
    return one.times(count * fold_models)
