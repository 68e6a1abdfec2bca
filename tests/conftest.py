import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The CLI's consoles take the width from COLUMNS when they are made, if it is set then, and keep it:
# tests give each command its own COLUMNS, so one inherited from the runner (pytest-xdist's workers
# have COLUMNS=80) must not fix it for every test
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def toy_task(tmp_path) -> Path:
    """A learnable custom task: the label is given away by the words 'good'/'bad'."""
    import random

    rng = random.Random(0)
    nouns = ["cake", "soup", "film", "phone", "room", "book", "song", "game", "car", "lamp"]
    def rows(n, offset):
        out = []
        for i in range(n):
            label = i % 2
            word = "good" if label else "bad"
            out.append({"idx": offset + i, "text": f"the {rng.choice(nouns)} was {word}", "label": label})
        return out
    write_jsonl(tmp_path / "train.jsonl", rows(60, 0))
    write_jsonl(tmp_path / "test.jsonl", rows(20, 100))
    write_jsonl(tmp_path / "ood.jsonl", rows(20, 200))
    y = tmp_path / "toy.yaml"
    y.write_text(
        "name: toy\n"
        "text_fields: [text]\n"
        "label_names: [negative, positive]\n"
        "train: train.jsonl\n"
        "eval:\n"
        "  - {name: test, path: test.jsonl}\n"
        "  - {name: shifted, path: ood.jsonl, domain: out}\n"
        "patterns:\n"
        "  simple: {template: '{text} It was', verbalizer: {negative: ' bad', positive: ' good'}}\n"
    )
    return y
