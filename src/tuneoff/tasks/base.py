"""What a task is: where its data lives, which fields hold text, its labels, eval sets and patterns."""
from __future__ import annotations

from dataclasses import dataclass, field

from tuneoff.metrics import label_metric_names

# The default text between a task's text fields when a decoder's classification head reads them as
# one text: a line break never fuses the last word of one field with the first of the next, marks
# where the first ends even when it has no final punctuation (23.7% of MNLI premises), and adds no
# word a head could read as a cue. A byte-level BPE keeps it as a token of its own ("mat", "\n", "A").
PAIR_SEPARATOR = "\n"


@dataclass(frozen=True)
class Source:
    """One split of data. `local` is a path relative to the data folder without extension
    (``mnli/train`` -> ``<data_dir>/mnli/train.jsonl`` or ``.csv``); `hub` is
    ``(dataset id, config name or None, split)`` for `datasets.load_dataset`; `path` is an explicit
    file (custom tasks, the built-in demo)."""

    local: str | None = None
    hub: tuple[str, str | None, str] | None = None
    path: str | None = None


@dataclass(frozen=True)
class EvalSet:
    name: str
    source: Source
    domain: str = "in"  # "in" or "out" of the training domain
    subset_fields: tuple[str, ...] = ()  # report metrics per value of these columns (and per label)
    label_map: dict[int, int | None] | None = None  # raw label -> task label; None drops the row
    optional: bool = False  # skipped (with a note) when the data is not there


@dataclass(frozen=True)
class Pattern:
    """A prompt: `template` with {field} slots for the task's text fields; the answer is scored
    right after the rendered template. `verbalizer` maps each label name to its answer word,
    whitespace included (" Yes" is not "Yes")."""

    name: str
    template: str
    verbalizer: dict[str, str]


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    train: Source
    eval_sets: tuple[EvalSet, ...]
    label_map: dict[int, int | None] | None = None  # applies to train and eval sets without their own
    metrics: tuple[str, ...] = field(default_factory=label_metric_names)  # recorded for every subset
    main_metric: str = "accuracy"
    patterns: dict[str, Pattern] = field(default_factory=dict)
    default_pattern: str | None = None
    instruction: str = ""  # a one-line task description, used as context by icl/distill
    # between the text fields of an input when a decoder's classification head reads them as one text
    # (an encoder keeps its tokenizer's pair format, [CLS] a [SEP] b [SEP]); a pattern joins them itself
    pair_separator: str = PAIR_SEPARATOR

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def eval_set(self, name: str) -> EvalSet:
        for es in self.eval_sets:
            if es.name == name:
                return es
        raise KeyError(f"task {self.name!r} has no eval set {name!r}; it has: "
                       f"{', '.join(e.name for e in self.eval_sets)}")

    def pattern(self, name: str | None) -> Pattern:
        name = name or self.default_pattern
        if name is None or name not in self.patterns:
            known = ", ".join(self.patterns) or "none"
            raise KeyError(f"task {self.name!r} has no pattern {name!r}; it has: {known}")
        return self.patterns[name]
