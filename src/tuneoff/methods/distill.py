"""Context distillation: a student without the context learns the label distribution that the
frozen pretrained LM gives *with* it (the task's instruction and k demonstrations per class).

Teacher and student are the same pretrained LM scoring the same verbalizer words through its LM
head; only the input differs (teacher: context + pattern-rendered input; student: the rendered
input alone). Teacher distributions are computed once, in `setup`, before any weight changes
(icl's context, cache, calibration and batched scoring, no_grad) and looked up by example id at
every step. For `student=full` the model in `setup` *is* the pretrained teacher, so no copy is
kept; for `student=lora` the teacher runs with the adapters disabled.

`student=lora` is `lora`'s own set-up with scoring=pattern (`peft_methods.lora_model`): the same
target layers (the architecture's attention query/value), the adapter init seeded by the run's
seed, and r, alpha, dropout from `lora_r`, `lora_alpha`, `lora_dropout`. These options keep their
own names and defaults (rank 8 and alpha 16 as lora's, dropout 0 where lora's is 0.1): every
distill run's id holds them, those of student=full too, whose results they cannot change; set
`method.lora_dropout=0.1` for lora's dropout.

Loss = T^2 * KL(teacher_T || student_T) over the label words, + ce_weight * cross-entropy on gold
labels (labelled inputs only). ce_weight defaults to 0: the method is then pure context
distillation, and pattern-based fine-tuning on gold labels stays a separate entry of the comparison
(set ce_weight > 0 for the mix).
"""
from __future__ import annotations

import contextlib
import random
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from tuneoff.methods import Method, MethodError, register
from tuneoff.methods.base import require_decoder, set_trainable
from tuneoff.methods.icl import ContextOptions, DemoContext, draw_demos, instruction_notes
from tuneoff.methods.pattern import Prefix, scorer_for


class DistillOptions(ContextOptions):
    temperature: float = Field(1.0, gt=0, description="softmax temperature T of teacher and student over the label words")
    ce_weight: float = Field(0.0, ge=0, description="weight of gold-label cross-entropy (labelled inputs); 0 = pure distillation")
    unlabelled: int = Field(0, ge=0, description="extra inputs drawn from the training pool, labels unused, to distil on")
    student: Literal["full", "lora"] = Field("full", description="train every weight, or LoRA adapters on the frozen model")
    lora_r: int = Field(8, ge=1, description="LoRA rank (student=lora; lora's r)")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator alpha (student=lora; lora's alpha)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input (student=lora; lora's "
                                                              "dropout, whose default is 0.1)")


UNLABELLED = -100  # the "label" of an unlabelled input: ignored by the cross-entropy


def with_teacher(batch: dict, examples: list[dict], teacher: dict, where: str) -> dict:
    """`batch` with each example's teacher scores (looked up by id) under "teacher"; a MethodError
    naming examples that have none (`where`: when and for which inputs the scores were computed)."""
    missing = [ex["id"] for ex in examples if ex["id"] not in teacher]
    if missing:
        raise MethodError(f"no teacher distribution for training example(s) {missing[:3]}: they are computed {where}")
    batch["teacher"] = torch.stack([teacher[ex["id"]] for ex in examples])
    return batch


def soft_label_loss(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), the batch's mean (Hinton et al., 2015)."""
    teacher = teacher.to(student.dtype)
    return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * t * t


@register
class ContextDistill(Method):
    name = "distill"
    description = "context distillation: student without context matches the frozen LM's in-context predictions"
    Options = DistillOptions
    head = "lm"
    # 2: the teacher's demonstration order depends on the split; pattern recorded. 3 (student=lora
    # only): the adapters are lora's own (seeded init, resolved target layers). 4 (both students):
    # the teacher's context ends in its separator tokenized as before the input (prompts.context_ids).
    # 5: selection searches the teacher's calibration beside the learning rate, as icl's (a run
    # without selection computes what version 4 did, under a new id; the published version-4 runs,
    # which searched the learning rate alone, stay apart from these in every store and report)
    version = 5

    @classmethod
    def needs_per_class(cls, options):
        return options.k + 1  # k demonstrations, and a spare of the label for a demonstration's own context

    @classmethod
    def search_space_for(cls, options):
        """The learning rate (larger for LoRA adapters) crossed with the teacher's contextual
        calibration, which icl searches too: an uncalibrated teacher can give one label to every
        input (CoLA: "unacceptable"), and its student learns to. The optuna space is the same, the
        rate widened (`widened`) and calibration sampled as a choice."""
        if options.student == "lora":  # adapters take larger steps than a fully trained student
            lr = {"train.lr": [1e-4, 1e-3, 1e-2]}
        else:
            lr = super().search_space_for(options)
        return {**lr, "method.calibrate": [False, True]}

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        require_decoder(self, " for its in-context teacher")
        self.scorer = scorer_for(self)
        self.teacher: dict[str, torch.Tensor] = {}  # example id -> teacher label log-probs [C]
        self.teacher_context: dict[str, str] = {}  # example id -> the context the teacher saw
        self.teacher_forwards = 0
        self.unlabelled: list[dict] = []

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self, train, pool):
        opts = self.options
        few_ids = {ex["id"] for ex in train}
        rest = [ex for ex in pool if ex["id"] not in few_ids]
        if opts.unlabelled > len(rest):
            raise MethodError(f"unlabelled={opts.unlabelled}, but the training pool has only {len(rest)} "
                              "inputs outside the few-shot set")
        rng = random.Random(f"unlabelled/{self.ctx.data_seed}/{opts.demo_seed}")
        self.unlabelled = [{**ex, "label": UNLABELLED} for ex in rng.sample(rest, opts.unlabelled)]
        if opts.student == "lora":
            from tuneoff.methods.peft_methods import LoraOptions, lora_model

            self.model = lora_model(self.ctx, LoraOptions(r=opts.lora_r, alpha=opts.lora_alpha,
                                                          dropout=opts.lora_dropout, scoring="pattern"))
        else:
            set_trainable(self.model, True)
        self.notes += instruction_notes(self.task, opts)
        self._compute_teacher(train)

    def _contexts(self, train: list[dict]) -> dict[tuple, tuple[list[dict], list[dict]]]:
        """Examples grouped by their teacher's demonstrations: the shared set, except that an example
        that is itself a demonstration gets it swapped for another of its label."""
        opts = self.options
        shared = draw_demos(train, opts.k, opts.demo_seed, self.task)
        shared_ids = {d["id"] for d in shared}
        groups: dict[tuple, tuple[list[dict], list[dict]]] = {}  # demo ids -> (demos, examples)
        for ex in train + self.unlabelled:
            demos = shared
            if ex["id"] in shared_ids:
                spare = [d for d in train if d["label"] == ex["label"] and d["id"] not in shared_ids]
                if not spare:
                    raise MethodError(f"distill keeps each example out of its own teacher context, which needs "
                                      f"shots > k per class (k={opts.k}); use more shots or a smaller k")
                swap = random.Random(f"{opts.demo_seed}/{ex['id']}").choice(spare)
                demos = [swap if d["id"] == ex["id"] else d for d in shared]
            groups.setdefault(tuple(d["id"] for d in demos), (demos, []))[1].append(ex)
        return groups

    @torch.no_grad()
    def _compute_teacher(self, train: list[dict]) -> None:
        """icl's scores of each example after its context (cached, calibrated as icl with these options)."""
        opts = self.options
        self.model.eval()
        off = self.model.disable_adapter() if opts.student == "lora" else contextlib.nullcontext()
        groups = list(self._contexts(train).values())
        total, done = sum(len(exs) for _, exs in groups), 0
        self.report("teacher pass", 0, total)
        with off:
            for demos, exs in groups:
                context = DemoContext.build(self.scorer, self.model, self.task, demos, opts, exs)
                for chunk, scores in context.score_batches(exs, self.ctx.eval_batch_size, self.ctx.device):
                    self.teacher_forwards += 1
                    for ex, s in zip(chunk, scores.float().cpu()):
                        self.teacher[ex["id"]] = s
                        self.teacher_context[ex["id"]] = context.prefix.text
                    done += len(chunk)
                    self.report("teacher pass", done, total)
                context.free_cache()

    def train_examples(self, few: list[dict]) -> list[dict]:
        return few + self.unlabelled

    # -- prompts ---------------------------------------------------------------------------------
    def prompt_example(self, example: dict) -> str:
        """What the student (the trained model) sees; `teacher_prompt` gives the teacher's."""
        return self.scorer.prompt(example)

    def teacher_prompt(self, example: dict) -> str:
        return self.scorer.prompt(example, Prefix(self.teacher_context[example["id"]], []))

    def audit(self, few: list[dict]) -> dict:
        """What its teacher saw for the first training example."""
        return {"teacher_prompt": self.teacher_prompt(few[0]),
                "teacher_prompt_example": {"id": few[0]["id"], "from": "train"}}

    # -- training --------------------------------------------------------------------------------
    def collate(self, examples: list[dict]) -> dict:
        batch = self.scorer.encode(examples)
        if self.model.training:  # the loop trains; the evaluator puts the model in eval mode
            batch = with_teacher(batch, examples, self.teacher,
                                 "in setup for the few-shot set and the unlabelled inputs only")
        return batch

    def class_logits(self, batch: dict) -> torch.Tensor:
        return self.scorer.scores(self.model, batch)

    def loss(self, batch: dict) -> torch.Tensor:
        t, labels = self.options.temperature, batch["labels"]
        student = self.class_logits(batch)
        loss = soft_label_loss(student, batch["teacher"], t)
        if self.options.ce_weight and bool((labels != UNLABELLED).any()):
            loss = loss + self.options.ce_weight * F.cross_entropy(student, labels, ignore_index=UNLABELLED)
        return loss
