"""The one evaluator: batched class scores from any method, and the metrics of every eval set.

Per eval set it records the overall metrics, the majority-class baseline, the distribution of
predicted labels (a model that always says one label shows as such), and metrics per label and
per value of the set's subset fields (e.g. HANS heuristic), alone and crossed with the label,
and every probability metric of the registry (ECE, Brier) with the reliability bins of the class
probabilities (`tuneoff.calibration`). Every metric is computed through `tuneoff.metrics`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from tuneoff.calibration import reliability
from tuneoff.methods import Method
from tuneoff.methods.base import batch_to
from tuneoff.metrics import prob_scores, scores
from tuneoff.precision import autocast, free_cached, is_out_of_memory


# where `eval.batch_size=auto` starts: a CPU's default size, and more on a GPU (keyed by "on a GPU")
AUTO_START = {False: 32, True: 256}


@dataclass
class AutoBatch:
    """An eval batch size; with `auto`, it halves when a batch runs out of memory and keeps the size
    that fit for the batches after it."""

    size: int
    auto: bool = False

    @classmethod
    def of(cls, setting: "int | str | AutoBatch", device: torch.device) -> "AutoBatch":
        """`eval.batch_size` (a number or auto) on `device`; an AutoBatch is itself."""
        if isinstance(setting, AutoBatch):
            return setting
        if setting == "auto":
            return cls(AUTO_START[device.type == "cuda"], auto=True)
        return cls(int(setting))

    def backs_off(self, error: BaseException, device: torch.device) -> bool:
        """After an out-of-memory `error`: whether to retry at half the size (auto, above 1)."""
        if not (self.auto and self.size > 1 and is_out_of_memory(error)):
            return False
        free_cached(device)
        self.size //= 2
        return True


@torch.no_grad()
def predict(method: Method, examples: list[dict], batch_size: "int | str | AutoBatch", device: torch.device,
            progress=None) -> tuple[np.ndarray, int]:
    """Class probabilities [N, C] and the number of input tokens processed. Forward passes autocast
    to the frozen weights' dtype (`tuneoff.precision`)."""
    method.model.eval()
    batch_size = AutoBatch.of(batch_size, device)
    # Batches of similar length waste less compute on padding; results go back in input order.
    fields = method.task.text_fields
    order = sorted(range(len(examples)), key=lambda i: sum(len(examples[i][f]) for f in fields))
    probs = np.zeros((len(examples), method.task.num_labels), dtype=np.float32)
    tokens, i = 0, 0
    while i < len(order):
        idx = order[i:i + batch_size.size]
        batch = batch_to(method.collate([examples[j] for j in idx]), device)
        try:
            with autocast(method.ctx.dtype, device):
                logits = method.class_logits(batch).float()
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if batch_size.backs_off(e, device):
                continue  # the same examples again, in a smaller batch
            raise
        probs[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        if "attention_mask" in batch:
            tokens += int(batch["attention_mask"].sum())
        i += len(idx)
        if progress:
            progress(i, len(examples))
    return probs, tokens


def majority_baseline(y_true, num_labels: int) -> dict:
    """Always predicting the eval set's most frequent label."""
    counts = Counter(int(y) for y in y_true)
    label = max(range(num_labels), key=lambda k: (counts.get(k, 0), -k))
    return {"label": label, **scores(y_true, [label] * len(y_true), num_labels)}


def _one_label(pred: np.ndarray, label: int) -> dict:
    """Examples of a single gold label: only accuracy (= recall of that label) is meaningful."""
    return {"n": int(len(pred)), "accuracy": float(np.mean(pred == label))}


def eval_metrics(examples: list[dict], probs: np.ndarray, label_names: tuple[str, ...],
                 subset_fields: tuple[str, ...] = ()) -> dict:
    num_labels = len(label_names)
    y = np.array([ex["label"] for ex in examples])
    pred = probs.argmax(-1) if len(probs) else np.zeros(0, dtype=int)
    overall = scores(y, pred, num_labels)
    overall["pred_dist"] = {label_names[k]: float(np.mean(pred == k)) for k in range(num_labels)}
    y_cal, p_cal = (y, probs) if len(probs) else ([], np.zeros((0, num_labels)))
    overall.update(prob_scores(y_cal, p_cal, num_labels), reliability=reliability(y_cal, p_cal))
    subsets: dict[str, dict] = {}
    for k, name in enumerate(label_names):
        mask = y == k
        if mask.any():
            subsets[f"label={name}"] = _one_label(pred[mask], k)
    for f in subset_fields:
        values = np.array([str(ex.get(f)) for ex in examples])
        for v in sorted(set(values)):
            mask = values == v
            subsets[f"{f}={v}"] = scores(y[mask], pred[mask], num_labels)
            for k, name in enumerate(label_names):
                m2 = mask & (y == k)
                if m2.any():
                    subsets[f"{f}={v}|label={name}"] = _one_label(pred[m2], k)
    return {"overall": overall, "majority": majority_baseline(y, num_labels), "subsets": subsets}
