"""Where selection's scores come from: folds of the few-shot set, or a separate few-shot dev split.

cv: scikit-learn's StratifiedKFold (shuffled, seeded by the split's data seed) over the few-shot
set. Folds = min(select.folds, examples per class), so every held-out fold holds at least one
example of every label and every fold-training set holds at least one too: at 2 per class this is
2 folds of 1 per class each (the rule for very small sets); 1 per class cannot be cross-validated
and is refused by the config (use the dev protocol).

dev: n per class more examples drawn from the train pool outside the few-shot set, with a seed of
their own; the candidates train on the whole few-shot set and are scored there. It costs as many
labels again as the few-shot set, and the record counts them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from tuneoff.data import checksum, sample_few_shot

DEV_SEED_SALT = 7919  # the dev split's seed is (data seed, this): never the few-shot split's own draw


@dataclass
class Fold:
    train: list[dict]
    heldout: list[dict]

    def describe(self) -> dict:
        ids = [ex["id"] for ex in self.heldout]
        return {"n_train": len(self.train), "n_heldout": len(self.heldout), "heldout_ids": ids,
                "train_checksum": checksum([ex["id"] for ex in self.train]), "heldout_checksum": checksum(ids)}


def cv_folds(few: list[dict], k: int, seed: int) -> list[Fold]:
    """k stratified, disjoint held-out folds covering the few-shot set once each."""
    y = np.array([ex["label"] for ex in few])
    per_class = np.bincount(y).min() if len(y) else 0
    if k < 2 or per_class < k:
        raise ValueError(f"{k}-fold cross-validation needs at least {k} examples of every label; the "
                         f"smallest label has {per_class}")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold([few[i] for i in tr], [few[i] for i in te]) for tr, te in skf.split(np.zeros(len(y)), y)]


def dev_split(pool: list[dict], few: list[dict], shots: int, seed: int, task) -> list[dict]:
    """`shots` per class from the pool outside the few-shot set, with the dev split's own seed."""
    taken = {ex["id"] for ex in few}
    rest = [ex for ex in pool if ex["id"] not in taken]
    return sample_few_shot(rest, shots, [seed, DEV_SEED_SALT], task)
