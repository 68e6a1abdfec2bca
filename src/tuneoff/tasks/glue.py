"""GLUE tasks (CoLA with its out-of-domain dev set, binary MNLI with HANS, MNLI 3-way, RTE, SST-2).

Local files use the column names and label ids of the hub datasets (`nyu-mll/glue`, `hans`), so a
folder of JSONL/CSV copies (``<data_dir>/cola/train.jsonl`` ...) is read by the same code.
"""
from __future__ import annotations

from tuneoff.tasks.base import EvalSet, Pattern, Source, Task

GLUE = "nyu-mll/glue"

# MNLI as in the few-shot fine-tuning literature: drop neutral, contradiction -> "not entailment",
# so that 0 = entailment and 1 = not entailment, as in HANS.
MNLI_BINARY = {0: 0, 1: None, 2: 1}


def _nli_patterns(a: str, b: str, words: dict[str, tuple[str, str, str]]) -> dict[str, Pattern]:
    """The NLI patterns of the few-shot literature; `words[label] = (minimal/gpt3 word, harness word)`."""
    return {
        "minimal": Pattern("minimal", f"{{{a}}} {{{b}}} ?", {k: v[0] for k, v in words.items()}),
        "gpt3": Pattern("gpt3", f"{{{a}}} question: {{{b}}} Yes or No? answer:", {k: v[0] for k, v in words.items()}),
        "eval-harness": Pattern(
            "eval-harness", f"{{{a}}}\nQuestion: {{{b}}} True or False?\nAnswer:", {k: v[1] for k, v in words.items()}
        ),
    }


_NLI2 = {"entailment": (" Yes", " True"), "not_entailment": (" No", " False")}
_NLI3 = {"entailment": (" Yes", " True"), "neutral": (" Maybe", " Neither"), "contradiction": (" No", " False")}

_nli3_patterns = _nli_patterns("premise", "hypothesis", _NLI3)
_nli3_patterns["gpt3"] = Pattern("gpt3", "{premise} question: {hypothesis} Yes, No or Maybe? answer:",
                                 _nli3_patterns["gpt3"].verbalizer)
_nli3_patterns["eval-harness"] = Pattern(
    "eval-harness", "{premise}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:",
    _nli3_patterns["eval-harness"].verbalizer)

_SENTIMENT = {
    "minimal": Pattern("minimal", "{sentence} It was", {"negative": " terrible", "positive": " great"}),
    "gpt3": Pattern("gpt3", "{sentence} question: Is this positive? Yes or No? answer:",
                    {"negative": " No", "positive": " Yes"}),
    "eval-harness": Pattern("eval-harness", "{sentence}\nQuestion: Is this sentence positive or negative?\nAnswer:",
                            {"negative": " negative", "positive": " positive"}),
}

_COLA = {
    "minimal": Pattern("minimal", "{sentence} Correct?", {"unacceptable": " No", "acceptable": " Yes"}),
    "gpt3": Pattern("gpt3", "{sentence} question: Is this sentence grammatical? Yes or No? answer:",
                    {"unacceptable": " No", "acceptable": " Yes"}),
    "eval-harness": Pattern("eval-harness", "{sentence}\nQuestion: Does this sentence make sense?\nAnswer:",
                            {"unacceptable": " no", "acceptable": " yes"}),
}

HANS_EVAL = EvalSet(
    "hans", Source(local="hans/validation", hub=("jhu-cogsci/hans", "plain_text", "validation")),
    domain="out", subset_fields=("heuristic",), label_map={0: 0, 1: 1},
)

TASKS = [
    Task(
        name="cola",
        description="CoLA: is the sentence grammatical? OOD = CoLA out-of-domain dev",
        text_fields=("sentence",),
        label_names=("unacceptable", "acceptable"),
        train=Source(local="cola/train", hub=(GLUE, "cola", "train")),
        eval_sets=(
            # GLUE's validation split is the in-domain dev (527 rows) followed by the OOD dev (516).
            EvalSet("in_domain", Source(local="cola/validation", hub=(GLUE, "cola", "validation[:527]"))),
            EvalSet("out_of_domain", Source(local="cola/ood", hub=(GLUE, "cola", "validation[527:]")), domain="out"),
        ),
        main_metric="mcc",
        patterns=_COLA,
        default_pattern="eval-harness",
        instruction="Is the sentence grammatically acceptable?",
    ),
    Task(
        name="mnli",
        description="MNLI, binary (entailment vs not; neutral dropped). OOD = HANS per heuristic",
        text_fields=("premise", "hypothesis"),
        label_names=("entailment", "not_entailment"),
        train=Source(local="mnli/train", hub=(GLUE, "mnli", "train")),
        label_map=MNLI_BINARY,
        eval_sets=(
            EvalSet("validation_matched", Source(local="mnli/validation_matched", hub=(GLUE, "mnli", "validation_matched"))),
            EvalSet("validation_mismatched",
                    Source(local="mnli/validation_mismatched", hub=(GLUE, "mnli", "validation_mismatched")),
                    optional=True),
            HANS_EVAL,
        ),
        patterns=_nli_patterns("premise", "hypothesis", _NLI2),
        default_pattern="gpt3",
        instruction="Does the premise entail the hypothesis?",
    ),
    Task(
        name="mnli-3way",
        description="MNLI with its three labels (entailment, neutral, contradiction); no HANS",
        text_fields=("premise", "hypothesis"),
        label_names=("entailment", "neutral", "contradiction"),
        train=Source(local="mnli/train", hub=(GLUE, "mnli", "train")),
        eval_sets=(
            EvalSet("validation_matched", Source(local="mnli/validation_matched", hub=(GLUE, "mnli", "validation_matched"))),
            EvalSet("validation_mismatched",
                    Source(local="mnli/validation_mismatched", hub=(GLUE, "mnli", "validation_mismatched")),
                    optional=True),
        ),
        patterns=_nli3_patterns,
        default_pattern="gpt3",
        instruction="Does the premise entail, contradict, or say nothing about the hypothesis?",
    ),
    Task(
        name="rte",
        description="RTE: does sentence 1 entail sentence 2?",
        text_fields=("sentence1", "sentence2"),
        label_names=("entailment", "not_entailment"),
        train=Source(local="rte/train", hub=(GLUE, "rte", "train")),
        eval_sets=(EvalSet("validation", Source(local="rte/validation", hub=(GLUE, "rte", "validation"))),),
        patterns=_nli_patterns("sentence1", "sentence2", _NLI2),
        default_pattern="gpt3",
        instruction="Does the first sentence entail the second?",
    ),
    Task(
        name="sst2",
        description="SST-2: movie review sentiment",
        text_fields=("sentence",),
        label_names=("negative", "positive"),
        train=Source(local="sst2/train", hub=(GLUE, "sst2", "train")),
        eval_sets=(EvalSet("validation", Source(local="sst2/validation", hub=(GLUE, "sst2", "validation"))),),
        patterns=_SENTIMENT,
        default_pattern="minimal",
        instruction="Is the review positive or negative?",
    ),
]
