"""What a method is: typed options plus a small class that decides what trains and how a label is scored.

The one training loop (`tuneoff.train`) calls `collate`, `loss` and `param_groups`; the one evaluator
(`tuneoff.evaluate`) calls `collate` and `class_logits`. A method changes nothing else, so
differences between methods in the results come from the methods.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from tuneoff import prompts
from tuneoff.registry import MethodError
from tuneoff.space import Length, Range, is_number

if TYPE_CHECKING:
    from tuneoff.models import Loaded
    from tuneoff.tasks import Task


class MethodOptions(BaseModel):
    """Options of a method; subclasses add fields, each with a one-line description."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Context:
    """What a method gets to build itself: the task, the model as loaded and where it runs, and the
    few run settings a method reads (never the whole run config). `pipeline.method_context` builds it."""

    task: "Task"
    loaded: "Loaded"
    device: torch.device
    seed: int  # the training seed: adapter init, re-initialised layers, half's default choice
    data_seed: int  # the few-shot split's seed (distill draws its unlabelled inputs with it)
    max_length: int  # tokens per input after truncation, in training and evaluation
    eval_batch_size: int  # examples per batch of a set-up pass that scores (distill's teacher)
    pattern: str | None = None  # the prompt pattern of an LM-scored method; None = the task's default
    dtype: torch.dtype = torch.float32  # the frozen weights' dtype, which every forward pass autocasts to


def widened(values: list):
    """A grid's positive numbers as a log range half a decade wider on each side, with limits three
    decades below and two above; any other list (flags, names) as it is."""
    if len(values) < 2 or not all(is_number(v) and v > 0 for v in values):
        return list(values)
    low, high = min(values), max(values)
    return Range(low / 3, high * 3, limits=(low / 1000, high * 100))


NO_DECAY = ("bias", "LayerNorm.weight", "layernorm", "layer_norm", "norm.weight")


class Method:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    head: ClassVar[str] = "classifier"  # which head `models.load` puts on the backbone: classifier | lm
    trains: ClassVar[bool] = True  # False: evaluated as loaded (e.g. in-context learning)
    # True: the pretrained weights stay frozen and only added modules (adapters) and a new head train,
    # so the base may load quantized to 4 or 8 bits (`quantization`): lora and the peft family
    frozen_base: ClassVar[bool] = False
    # why `train.gradient_checkpointing` cannot train this method ("": it can), said before any run
    no_checkpointing: ClassVar[str] = ""
    # What hyperparameter selection (`select:`) searches by default: dotted config key -> candidate
    # values, crossed. Three learning rates around what suits training every weight; methods that
    # train fewer weights take larger steps. The same number of candidates for every method.
    search_space: ClassVar[dict[str, list]] = {"train.lr": [1e-5, 3e-5, 1e-4]}
    # What the optuna search (`select.search: optuna`, the default) searches: ranges, None = the grid's
    # numeric keys widened (`widened`: half a decade past the grid on each side, log-uniform, which the
    # edge rule may extend to three decades below and two above), its other keys as they are.
    search_ranges: ClassVar[dict[str, Any] | None] = None
    # ... and the training length it searches as a fidelity: rungs at 1/3, 1, 3 and 9 epochs (the
    # pruner's first look is cheap), extendable to 81; None for a method that does not train
    search_length: ClassVar[Length | None] = Length(1 / 3, 9, 81, 3)
    # Bumped whenever a change alters what a run of this method computes or records; it enters the
    # run id only above 1, so the ids (and stored runs) of methods never bumped stay as they were.
    # `version_for` may give another for some options or tasks (a classification head: one more on a
    # task of several text fields), so a change that touches only those leaves the other ids alone.
    version: ClassVar[int] = 1

    @classmethod
    def head_for(cls, options: MethodOptions) -> str:
        """The head `models.load` must put on the backbone for these options (`head` unless a method's
        options choose, e.g. lora's `scoring`); `pipeline.build_method` calls this, not `head`."""
        return cls.head

    @classmethod
    def needs_per_class(cls, options: MethodOptions) -> int:
        """Labelled examples per class that `setup` needs in its training set (icl: its k
        demonstrations; distill: k + 1, below): the shots, and under cross-validation every fold's
        training part, must hold this many."""
        return 1

    @classmethod
    def search_space_for(cls, options: MethodOptions) -> dict[str, list]:
        """The default search space for these options (`search_space` unless the options choose)."""
        return {k: list(v) for k, v in cls.search_space.items()}

    @classmethod
    def search_ranges_for(cls, options: MethodOptions) -> dict[str, Any]:
        """The default space of the optuna search: `search_ranges`, or the grid's numbers widened."""
        if cls.search_ranges is not None:
            return dict(cls.search_ranges)
        return {k: widened(v) for k, v in cls.search_space_for(options).items()}

    @classmethod
    def search_length_for(cls, options: MethodOptions) -> Length | None:
        """The training length the optuna search takes as its fidelity (None: it does not train)."""
        return cls.search_length if cls.trains else None

    @classmethod
    def version_for(cls, options: MethodOptions, task: "Task | None" = None) -> int:
        """The version of what these options compute on `task` (`version` unless only some options, or
        only some tasks, changed; `task` None: not known, e.g. a task file that is missing)."""
        return cls.version

    def __init__(self, options: MethodOptions, ctx: Context):
        self.options = options
        self.ctx = ctx
        self.task = ctx.task
        self.model: torch.nn.Module = ctx.loaded.model
        self.tokenizer = ctx.loaded.tokenizer
        self.max_length = ctx.max_length
        self.notes: list[str] = []  # said in the run record (e.g. an option that had no effect)
        self.progress = None  # the runner's progress callback(phase, done, total), for long set-ups

    def report(self, phase: str, done: int, total: int | None) -> None:
        """Progress of a long set-up step (e.g. the distillation teacher's pass), if anyone listens."""
        if self.progress:
            self.progress(phase, done, total)

    # -- set-up --------------------------------------------------------------------------------
    def setup(self, train: list[dict], pool: list[dict]) -> None:
        """Called once before training with the few-shot set and the whole training split (for
        methods that draw demonstrations or unlabelled inputs). Decides what is trainable."""

    def train_examples(self, few: list[dict]) -> list[dict]:
        """What the training loop iterates over: the few-shot set, plus any inputs the method adds in
        `setup` (e.g. unlabelled inputs for distillation, whose "label" is -100)."""
        return few

    def prompt_example(self, example: dict) -> str | None:
        """The exact text the model sees for one example (recorded with the run: its rendered prompt, or
        a classification head's input decoded); None: nothing to show."""
        return None

    def audit(self, few: list[dict]) -> dict:
        """What else the run records so a reader can check the method (distill: the prompt its
        teacher saw), as record fields; none by default."""
        return {}

    # -- the calls the shared loop and evaluator make -------------------------------------------
    def start_training(self, examples: list[dict]) -> int:
        """Called by the loop once, before the first step, with what it iterates over: puts the model
        in train mode and may precompute (the linear probe's frozen features). Returns the tokens it
        ran forward only (training compute, counted with the run's training tokens)."""
        self.model.train()
        return 0

    def resume_training(self) -> None:
        """Called by the loop when training goes on after the model was scored mid-way (a search's
        rung): back to the modes `start_training` left."""
        self.model.train()

    def after_optimizer_step(self, step: int, total: int) -> None:
        """Called by the loop after each optimizer step (`step` of the schedule's `total`), before the
        gradients are cleared: for a method whose adapters change as they train (AdaLoRA's rank
        allocation reads that step's gradients). Nothing by default."""

    def finish_training(self) -> int:
        """Called by the loop each time it stops (the schedule's end, or a search's rung, where the
        model is scored next), the model in eval mode: a method whose training ends in a part that is
        not a gradient step does it here (setfit fits its logistic-regression head on the trained
        encoder's embeddings). Returns the tokens it ran forward only, as `start_training`."""
        return 0

    def collate(self, examples: list[dict]) -> dict:
        raise NotImplementedError

    def class_logits(self, batch: dict) -> torch.Tensor:
        """Unnormalised scores, shape [batch, num_labels]."""
        raise NotImplementedError

    def loss(self, batch: dict) -> torch.Tensor:
        return F.cross_entropy(self.class_logits(batch), batch["labels"])

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups of trainable parameters; no decay on biases and norms."""
        decay, no_decay = [], []
        for n, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if any(k in n for k in NO_DECAY) else decay).append(p)
        groups = [{"params": decay, "weight_decay": weight_decay, "lr": lr},
                  {"params": no_decay, "weight_decay": 0.0, "lr": lr}]
        return [g for g in groups if g["params"]]

    # -- saving --------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().contiguous() for n, p in self.model.named_parameters() if p.requires_grad}

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state(), str(folder / "trainable.safetensors"))

    def load(self, folder: Path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(folder / "trainable.safetensors"))
        missing = set(state) - {n for n, _ in self.model.named_parameters()}
        if missing:
            raise MethodError(f"saved weights in {folder} do not fit this model: {sorted(missing)[:5]}")
        self.model.load_state_dict(state, strict=False)


def batch_to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def require_decoder(method: Method, why: str = "") -> None:
    """A MethodError unless the method's model is a decoder (causal) LM; `why` is said after the need."""
    loaded = method.ctx.loaded
    if not loaded.is_decoder:
        raise MethodError(f"{method.name} needs a decoder (causal) LM{why}; {loaded.name!r} is a masked LM "
                          "(try model=smollm2-135m)")


def set_trainable(model: torch.nn.Module, which: bool | set[str]) -> None:
    """Set which parameters train: every one (True), none (False) or those named in `which`."""
    for n, p in model.named_parameters():
        p.requires_grad_(which if isinstance(which, bool) else n in which)


def several_texts(task: "Task | None") -> bool:
    """Whether the task's inputs are two (or more) texts, such as MNLI's premise and hypothesis."""
    return task is not None and len(task.text_fields) > 1


class ClassifierMethod(Method):
    """The input's text fields go to the model as one text or a pair of segments; a classification
    head scores.

    A single text field is the input as it is. Two or more: an encoder gets its tokenizer's pair
    format (the first field, then the others joined by a space: [CLS] a [SEP] b [SEP], with segment
    ids), the format it was pretrained on; a decoder gets one text, the fields joined by the task's
    `pair_separator` (a line break by default), as surely as a pattern joins them for the LM-scored
    methods, and cut from its start where it is too long, as a pattern's query is. A decoder's
    tokenizer has no pair format: given a pair it glued the two together ("The cat sat on the mat" +
    "A cat is sitting." read "...on the matA cat is sitting.")."""

    head = "classifier"

    @classmethod
    def version_for(cls, options: MethodOptions, task: "Task | None" = None) -> int:
        """One above `version` on a task of several text fields, whose fields a decoder now reads joined
        by the task's separator (an encoder's input is unchanged, but whether a model is a decoder is
        not known before it is loaded, and a run id is computed without loading it); a single-text
        task's runs keep `version` and their run ids."""
        return cls.version + 1 if several_texts(task) else cls.version

    def padding_side(self) -> str | None:
        """The side a batch is padded on; None: the tokenizer's own."""
        return None

    def joins_fields(self) -> bool:
        """Whether the text fields reach the model as one text joined by the task's separator (a
        decoder, several fields) rather than as the tokenizer's pair."""
        return self.ctx.loaded.is_decoder and several_texts(self.task)

    def texts(self, examples: list[dict]) -> tuple[list[str], list[str] | None]:
        """The text of each example, and the second segment of each (None: one text)."""
        fields = self.task.text_fields
        if self.joins_fields():
            return [self.task.pair_separator.join(ex[f] for f in fields) for ex in examples], None
        first = [ex[fields[0]] for ex in examples]
        second = [" ".join(ex[f] for f in fields[1:]) for ex in examples] if len(fields) > 1 else None
        return first, second

    def encode(self, examples: list[dict]) -> dict:
        """The model's inputs for these examples (ids, mask, segment ids), truncated and padded."""
        first, second = self.texts(examples)
        side = self.padding_side()
        pad = {"padding_side": side} if side else {}
        if self.joins_fields():
            return self._joined(first, pad)
        return dict(self.tokenizer(first, second, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt", **pad))

    def _joined(self, texts: list[str], pad: dict) -> dict:
        """Joined texts, each cut from its start beyond max_length as a pattern's query is, so the last
        field (the hypothesis), whose end the head reads, stays whole; special tokens kept around it."""
        head, tail = prompts.special_tokens_around(self.tokenizer)
        budget = max(1, self.max_length - len(head) - len(tail))
        rows = [head + ids[-budget:] + tail for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        return dict(self.tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt", **pad))

    def collate(self, examples: list[dict]) -> dict:
        enc = self.encode(examples)
        enc["labels"] = torch.tensor([ex["label"] for ex in examples])
        return enc

    def prompt_example(self, example: dict) -> str:
        """The exact input of one example as the model reads it: its token ids, truncated as in
        training and evaluation, decoded with the special tokens (an encoder's [CLS] a [SEP] b [SEP],
        a decoder's joined text with its separator)."""
        ids = self.encode([example])["input_ids"][0].tolist()
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def class_logits(self, batch: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        return self.model(**inputs).logits
