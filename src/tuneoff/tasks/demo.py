"""The built-in `demo` task: restaurant-review sentiment, tested in-domain and on other domains.

Its texts were generated for tuneoff by ``data/demo/generate.py`` and ship inside the package, so
the tool runs offline out of the box.
"""
from __future__ import annotations

from pathlib import Path

from tuneoff.tasks.base import EvalSet, Pattern, Source, Task

_DIR = Path(__file__).parent / "data" / "demo"

DEMO = Task(
    name="demo",
    description="built-in: restaurant-review sentiment; OOD = gadget and hotel reviews (offline)",
    text_fields=("text",),
    label_names=("negative", "positive"),
    train=Source(path=str(_DIR / "train.jsonl")),
    eval_sets=(
        EvalSet("in_domain", Source(path=str(_DIR / "test.jsonl"))),
        EvalSet("out_of_domain", Source(path=str(_DIR / "ood.jsonl")), domain="out"),
    ),
    patterns={
        "minimal": Pattern("minimal", "{text} It was", {"negative": " terrible", "positive": " great"}),
        "gpt3": Pattern("gpt3", "{text} question: Is this review positive? Yes or No? answer:",
                        {"negative": " No", "positive": " Yes"}),
        "eval-harness": Pattern("eval-harness", "{text}\nQuestion: Is this review positive or negative?\nAnswer:",
                                {"negative": " negative", "positive": " positive"}),
    },
    default_pattern="eval-harness",
    instruction="Is the review positive or negative?",
)
