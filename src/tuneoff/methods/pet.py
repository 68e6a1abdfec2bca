"""PET, pattern-exploiting training (Schick & Schütze, 2021): one model per pattern-verbalizer pair
(PVP), each trained as `pattern` trains (every weight; a label's score is the LM's log-probability
of its verbalizer word, read through the pretrained LM head), their class logits averaged; and,
optionally, PET's last step: the ensemble's soft labels on unlabelled inputs distilled into one model.

The ensemble (distill=false). Every member starts from the same pretrained weights (copies of the
loaded model) and reads the inputs through its own pattern. The one training loop trains them
together, at the run's learning rate and length (what a search chooses, shared by every member):
each step every member takes a batch of the few-shot set in its own order (the loop's shuffle
composed with a fixed permutation seeded by seed + the member's index; member 0 keeps the loop's
order, that of a `pattern` run with the same seed), and the loss is the members' mean cross-entropy
(the loop clips the gradient of that mean, every member's together). The members are one module's
parts, so they are all in memory while they train: the loop trains one model, and a search scores
it at its rungs mid-way. A label's score is the members' weighted mean of class logits
(`combine=logits`, PET's) or the log of their weighted mean class probabilities (`combine=probs`);
the weights are equal, or each member's accuracy on the few-shot set before training
(`weighting=train_accuracy`, PET's weighted variant).

Distillation (distill=true). The members train first, one after another (one in memory at a time),
each a `pattern` method trained by the one loop for `member_epochs` at `member_lr` (fixed, as PET's
are); each scores the unlabelled inputs (drawn from the task's training pool, their labels never
read; never an eval set) and is dropped. The ensemble's class scores, combined as above, are the
soft labels; the student (the loaded model, scored with the run's `pattern`) is then trained by the
loop, at the run's learning rate and length, on T^2 * KL(softmax(teacher/T) || softmax(student/T)),
PET's distillation loss (as `distill`'s). The members train in `start_training`, inside the run's
training time; their weights are not kept: the student is the model evaluated and saved.
"""
from __future__ import annotations

import copy
import dataclasses
import gc
import random
from typing import Literal

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from pydantic import Field, field_validator

from tuneoff.config import TrainConfig
from tuneoff.methods import Method, MethodError, MethodOptions, register
from tuneoff.methods.base import batch_to, set_trainable
from tuneoff.methods.distill import soft_label_loss, with_teacher
from tuneoff.methods.pattern import LMScorer, PatternFinetune, PatternOptions, scorer_for
from tuneoff.resources import count_parameters
from tuneoff.train import train as train_loop

# What a run of each kind counts in its resources (the record says it under ensemble.counted).
COUNTED = {
    False: "params: every member's weights (all trained), summed; train and eval tokens: each input once, at its "
           "mean length over the members' patterns, so the FLOPs estimate (those tokens through every member's "
           "parameters) is the members' work summed; time and CPU: every member's",
    True: "params: the student's (the model evaluated; each member's trainable count is under ensemble.members); "
          "train tokens: the student's steps, plus as forward-only tokens the members' training, their pass over "
          "the unlabelled inputs and any weighting pass (so the FLOPs estimate counts the members' training at a "
          "third of its cost); time and CPU: all of it, the members' training included",
}
TOKENS = "attention_mask"  # the batch key whose sum the loop and the evaluator count as the batch's tokens


class PetOptions(MethodOptions):
    patterns: list[str] | None = Field(
        None, description="the task's patterns (pattern-verbalizer pairs) to ensemble, by name; null = every pattern "
                          "the task declares")
    combine: Literal["logits", "probs"] = Field(
        "logits", description="how the members' class scores are averaged: their logits (PET), or their class "
                              "probabilities")
    weighting: Literal["equal", "train_accuracy"] = Field(
        "equal", description="each member's weight in the average: equal, or its accuracy on the few-shot set "
                             "before training (PET's weighted variant)")
    distill: bool = Field(False, description="PET's last step: train the members first, then one model (the run's "
                                             "pattern) on their soft labels for unlabelled inputs of the train pool")
    temperature: float = Field(2.0, gt=0, description="distill: softmax temperature T of the soft labels and the "
                                                      "student (PET: 2)")
    unlabelled: int = Field(256, ge=1, description="distill: inputs drawn from the training pool to distil on "
                                                   "(their labels are never read)")
    unlabelled_from: Literal["rest", "pool"] = Field(
        "rest", description="distill: draw them from the pool outside the few-shot set (rest), or from the whole "
                            "pool (pool: the few-shot inputs may be drawn too, their labels unused)")
    member_lr: float = Field(3e-5, gt=0, description="distill: each member's learning rate (the members train "
                                                     "before the student, at fixed settings)")
    member_epochs: float = Field(9.0, gt=0, description="distill: each member's passes over the few-shot set")

    @field_validator("patterns", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("patterns")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or len(set(v)) < len(v)):
            raise ValueError(f"patterns must name one or more of the task's patterns, each once; got {v}")
        return v


DISTILL_ONLY = ("temperature", "unlabelled", "unlabelled_from", "member_lr", "member_epochs")


class PetEnsemble(torch.nn.Module):
    """The members' models as one module: what the loop trains, what is counted and saved (as
    `members.<k>.<parameter>`). It is no language model of its own (forgetting reads n/a)."""

    base_model_prefix = ""  # no one backbone to read an LM loss through

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(models)


def combine(scores: torch.Tensor, weights: torch.Tensor, how: str) -> torch.Tensor:
    """Members' class scores [K, B, C] as one [B, C]: their weighted mean (how="logits"), or the log
    of their weighted mean class probabilities ("probs"), whose softmax is that mean."""
    w = (weights / weights.sum()).to(scores)
    if how == "logits":
        return torch.einsum("k,kbc->bc", w, scores)
    return torch.logsumexp(scores.log_softmax(-1) + w.log()[:, None, None], dim=0)


@register
class Pet(Method):
    name = "pet"
    description = ("PET: one pattern model per pattern-verbalizer pair, class logits averaged; optionally distilled "
                   "into one model on unlabelled inputs")
    Options = PetOptions
    head = "lm"

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        names = options.patterns or list(self.task.patterns)
        unknown = [n for n in names if n not in self.task.patterns]
        if unknown:
            raise MethodError(f"pet: task {self.task.name!r} has no pattern(s) {unknown}; it has: "
                              f"{', '.join(self.task.patterns) or 'none'}")
        self.scorers: list[LMScorer] = [scorer_for(self, n) for n in names]
        self.student = scorer_for(self) if options.distill else None
        self.weights = torch.ones(len(names))
        self.setup_tokens = 0  # forward passes made before training (the weighting pass)
        self.orders: list[list[int] | None] = []  # each member's permutation of the training examples
        self.position: dict = {}  # example id -> its index among the training examples
        self.examples: list[dict] = []
        self.few: list[dict] = []  # distill: the few-shot set the members train on
        self.inputs: list[dict] = []  # distill: the unlabelled inputs (no label)
        self.teacher: dict = {}  # distill: example id -> the ensemble's class scores [C]
        self.member_stats: list[dict] = [{} for _ in names]
        self.notes += self._option_notes(names)

    def _option_notes(self, names: list[str]) -> list[str]:
        opts, notes = self.options, []
        if len(names) == 1:
            notes.append(f"pet has one pattern ({names[0]!r}): the ensemble is a single pattern model")
        if not opts.distill:
            changed = [k for k in DISTILL_ONLY if getattr(opts, k) != PetOptions.model_fields[k].default]
            if changed:
                notes.append(f"method.{', method.'.join(changed)} has no effect without method.distill=true")
            if self.ctx.pattern is not None:
                notes.append(f"pattern={self.ctx.pattern!r} has no effect: the ensemble reads its patterns "
                             f"({', '.join(names)}); with method.distill=true it is the student's")
        return notes

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self, train, pool):
        set_trainable(self.model, True)
        self.weights, self.setup_tokens = self._weights(train)
        if self.options.distill:
            self.few = list(train)
            self.inputs = self._unlabelled(train, pool)
        else:  # every member a copy of the pretrained weights, taken before any training
            self.model = PetEnsemble([self.model] + [copy.deepcopy(self.model) for _ in self.scorers[1:]])

    def _weights(self, few: list[dict]) -> tuple[torch.Tensor, int]:
        """Equal, or each pattern's accuracy on the few-shot set with the pretrained model; the tokens read."""
        if self.options.weighting == "equal":
            return torch.ones(len(self.scorers)), 0
        gold = torch.tensor([ex["label"] for ex in few])
        accuracy, tokens = [], 0
        for scorer in self.scorers:
            scores, n = self._class_scores(scorer, self.model, few)
            accuracy.append(float((scores.argmax(-1) == gold).float().mean()))
            tokens += n
        if not any(accuracy):
            self.notes.append("pet: no pattern scored a few-shot example right before training; weights are equal")
            return torch.ones(len(self.scorers)), tokens
        return torch.tensor(accuracy), tokens

    def _unlabelled(self, train: list[dict], pool: list[dict]) -> list[dict]:
        """The inputs to distil on, drawn from the training pool for the split's seed, labels removed."""
        opts = self.options
        few_ids = {ex["id"] for ex in train}
        source = pool if opts.unlabelled_from == "pool" else [ex for ex in pool if ex["id"] not in few_ids]
        if opts.unlabelled > len(source):
            raise MethodError(f"pet: unlabelled={opts.unlabelled}, but the training pool has only {len(source)} "
                              f"inputs to draw from (unlabelled_from={opts.unlabelled_from}); lower method.unlabelled")
        drawn = random.Random(f"pet-unlabelled/{self.ctx.data_seed}").sample(source, opts.unlabelled)
        return [{k: v for k, v in ex.items() if k != "label"} for ex in drawn]

    def train_examples(self, few: list[dict]) -> list[dict]:
        return self.inputs if self.options.distill else few

    @torch.no_grad()
    def _class_scores(self, scorer: LMScorer, model, examples: list[dict]) -> tuple[torch.Tensor, int]:
        """The pattern's class scores [N, C] of these examples (eval mode, no gradient); the tokens read."""
        was_training, out, tokens = model.training, [], 0
        model.eval()
        try:
            for i in range(0, len(examples), self.ctx.eval_batch_size):
                batch = batch_to(scorer.encode(examples[i:i + self.ctx.eval_batch_size]), self.ctx.device)
                out.append(scorer.scores(model, batch).float().cpu())
                tokens += int(batch["attention_mask"].sum())
        finally:
            model.train(was_training)
        return torch.cat(out), tokens

    # -- training --------------------------------------------------------------------------------
    def start_training(self, examples: list[dict]) -> int:
        """The ensemble: each member's order over `examples`. Distill: the members trained and their
        soft labels taken. Returns the tokens run forward only (and, distilling, the members' training)."""
        tokens = self.setup_tokens
        if self.options.distill:
            tokens += self._train_members()
        else:
            self.examples, self.position = list(examples), {ex["id"]: i for i, ex in enumerate(examples)}
            self.orders = [None] + [torch.randperm(len(examples), generator=torch.Generator().manual_seed(
                self.ctx.seed + k)).tolist() for k in range(1, len(self.scorers))]
        self.model.train()
        return tokens

    def _member_batch(self, k: int, examples: list[dict]) -> list[dict]:
        """What member k trains on where the loop's batch is `examples`: the same positions of its own order."""
        order = self.orders[k] if self.model.training and k < len(self.orders) else None
        if order is None:
            return examples
        try:
            return [self.examples[order[self.position[ex["id"]]]] for ex in examples]
        except KeyError:
            raise MethodError("pet: a training batch holds an example that start_training was not given") from None

    def collate(self, examples: list[dict]) -> dict:
        if self.student is not None:
            return self._student_batch(examples)
        out, tokens = {}, 0
        for k, scorer in enumerate(self.scorers):
            enc = scorer.encode(self._member_batch(k, examples))
            out.update({f"{k}.{key}": v for key, v in enc.items()})
            tokens += int(enc["attention_mask"].sum())
        out[TOKENS] = torch.tensor(round(tokens / len(self.scorers)))  # counted, never read as a mask
        return out

    def member_scores(self, batch: dict) -> list[torch.Tensor]:
        """Each member's class logits [B, C] on its own rows of the batch."""
        return [scorer.scores(model, self._part(batch, k))
                for k, (scorer, model) in enumerate(zip(self.scorers, self.model.members))]

    @staticmethod
    def _part(batch: dict, k: int) -> dict:
        return {key.split(".", 1)[1]: v for key, v in batch.items() if key.startswith(f"{k}.")}

    def class_logits(self, batch: dict) -> torch.Tensor:
        if self.student is not None:
            return self.student.scores(self.model, batch)
        return combine(torch.stack(self.member_scores(batch)), self.weights, self.options.combine)

    def loss(self, batch: dict) -> torch.Tensor:
        if self.student is not None:
            return soft_label_loss(self.class_logits(batch), batch["teacher"], self.options.temperature)
        scores = self.member_scores(batch)
        return torch.stack([F.cross_entropy(s, self._part(batch, k)["labels"]) for k, s in enumerate(scores)]).mean()

    # -- distillation ----------------------------------------------------------------------------
    def _train_members(self) -> int:
        """Each member trained by the loop from a copy of the pretrained weights, one at a time; its class
        scores on the unlabelled inputs kept, the member dropped. The ensemble's scores: the teacher."""
        cfg = TrainConfig(lr=self.options.member_lr, epochs=self.options.member_epochs)
        accelerator = Accelerator(cpu=self.ctx.device.type == "cpu")
        pristine = self.model  # the student, untrained until the loop's first step
        scores, tokens = [], 0
        for k, scorer in enumerate(self.scorers):
            phase = f"train member {k + 1}/{len(self.scorers)} ({scorer.pattern.name})"
            loaded = dataclasses.replace(self.ctx.loaded, model=copy.deepcopy(pristine))
            member = PatternFinetune(PatternOptions(), dataclasses.replace(
                self.ctx, loaded=loaded, pattern=scorer.pattern.name, seed=self.ctx.seed + k))
            member.setup(self.few, [])
            stats = train_loop(member, self.few, cfg, self.ctx.seed + k, accelerator,
                               lambda step, steps, loss, phase=phase: self.report(phase, step, steps))
            member_scores, read = self._class_scores(member.scorer, member.model, self.inputs)
            scores.append(member_scores)
            tokens += stats.tokens + read
            self.member_stats[k] = {"params_trainable": count_parameters(member.model)["params_trainable"],
                                    "train_steps": stats.steps, "train_tokens": stats.tokens,
                                    "soft_label_tokens": read, "last_loss": stats.losses[-1]}
            del member, loaded
            gc.collect()  # a model's reference cycles kept it: the next member comes after this one is gone
        teacher = combine(torch.stack(scores), self.weights, self.options.combine)
        self.teacher = {ex["id"]: row for ex, row in zip(self.inputs, teacher)}
        return tokens

    def _student_batch(self, examples: list[dict]) -> dict:
        batch = self.student.encode(examples)
        if self.model.training:  # the loop trains; the evaluator puts the model in eval mode
            batch = with_teacher(batch, examples, self.teacher, "by the ensemble in start_training, for the "
                                                                "unlabelled inputs only")
        return batch

    # -- what the record shows -------------------------------------------------------------------
    def prompt_example(self, example: dict) -> str:
        """The student's input (distill), else the first member's; `audit` gives every member's."""
        return (self.student or self.scorers[0]).prompt(example)

    def audit(self, few: list[dict]) -> dict:
        """Every member's pattern, weight and input for the first training example (and, distilling, its
        training), and what the run's resources count."""
        ex = few[0]
        members = [{"pattern": s.pattern.name, "template": s.pattern.template, "verbalizer": dict(s.pattern.verbalizer),
                    "weight": float(w), "prompt": s.prompt(ex), **stats}
                   for s, w, stats in zip(self.scorers, self.weights, self.member_stats)]
        out = {"members": members, "combine": self.options.combine, "weighting": self.options.weighting,
               "prompt_example": {"id": ex["id"], "from": "train"}, "counted": COUNTED[self.options.distill]}
        if self.student is not None:
            out.update(student_pattern=self.student.pattern.name, unlabelled=len(self.inputs),
                       unlabelled_ids=[x["id"] for x in self.inputs])
        return {"ensemble": out}
