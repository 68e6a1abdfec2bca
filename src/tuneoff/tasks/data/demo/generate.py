"""Generate the built-in `demo` task's data: short one-sentence reviews with binary sentiment.

In-domain: restaurant and food reviews (train.jsonl, test.jsonl).
Out-of-domain: gadget/electronics and hotel-stay reviews (ood.jsonl).

Every sentence is produced from the hand-written templates and word lists of restaurant.py,
gadget.py and hotel.py (one module per domain, beside this script), all written for tuneoff
(nothing is taken from an existing data set). Some templates are deliberately harder than a keyword
lookup: negation ("not bad at all"), mixed opinions where the verdict follows "but", and praise or
complaints with no obvious sentiment word.

Standard library only and deterministic: ``python generate.py`` rewrites the three files
byte-for-byte identically every time (``python generate.py FOLDER`` writes them there instead).

Labels: 0 = negative, 1 = positive. Each line: {"idx": int, "text": str, "label": int}.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

# the domain modules beside this script: run it as `python generate.py` from any folder
from gadget import gadget
from hotel import hotel
from restaurant import restaurant

SEED = 20240611
HERE = Path(__file__).resolve().parent
N_TRAIN_PER_LABEL = 200
N_TEST_PER_LABEL = 100
N_OOD_PER_LABEL = 100
MIN_WORDS, MAX_WORDS = 6, 20


def ood(rng: random.Random, label: int) -> str:
    return gadget(rng, label) if rng.random() < 0.5 else hotel(rng, label)


def _finish(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:]


def _pool(rng: random.Random, make, label: int, n: int, taken: set[str]) -> list[str]:
    """`n` distinct texts of `label`, none already in `taken` (which is updated)."""
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n:
            raise RuntimeError(f"could not make {n} distinct texts for label {label}")
        text = _finish(make(rng, label))
        if not MIN_WORDS <= len(text.split()) <= MAX_WORDS or text.lower() in taken:
            continue
        taken.add(text.lower())
        out.append(text)
    return out


def _write(path: Path, rows: list[tuple[str, int]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for i, (text, label) in enumerate(rows):
            f.write(json.dumps({"idx": i, "text": text, "label": label}, ensure_ascii=False) + "\n")


def main(out: Path = HERE) -> None:
    rng = random.Random(SEED)
    taken: set[str] = set()
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "test": [], "ood": []}
    for label in (0, 1):
        texts = _pool(rng, restaurant, label, N_TRAIN_PER_LABEL + N_TEST_PER_LABEL, taken)
        splits["train"] += [(t, label) for t in texts[:N_TRAIN_PER_LABEL]]
        splits["test"] += [(t, label) for t in texts[N_TRAIN_PER_LABEL:]]
        splits["ood"] += [(t, label) for t in _pool(rng, ood, label, N_OOD_PER_LABEL, taken)]
    for name, rows in splits.items():
        # shuffle each label, then interleave them in randomly ordered (negative, positive) pairs,
        # so that any prefix of the file is (nearly) balanced
        by_label = [[r for r in rows if r[1] == lab] for lab in (0, 1)]
        for part in by_label:
            rng.shuffle(part)
        rows = []
        for pair in zip(*by_label):
            pair = list(pair)
            rng.shuffle(pair)
            rows += pair
        _write(out / f"{name}.jsonl", rows)
        print(f"wrote {name}.jsonl: {len(rows)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
