"""Evaluation speed: length-sorted batches (tuneoff's evaluator) vs batches in input order.

Both orders run side by side in one process on the same model and examples; the ratio is what
counts (absolute times on a shared CPU are noisy). Predictions must agree.

    python benchmarks/eval_batching.py --data-dir ../shared/data --n 2000
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tuneoff import evaluate  # noqa: E402
from tuneoff.config import load_config  # noqa: E402
from tuneoff.data import cap_eval  # noqa: E402
from tuneoff.methods.base import batch_to  # noqa: E402
from tuneoff.pipeline import prepare  # noqa: E402


@torch.no_grad()
def in_input_order(method, examples, batch_size, device):
    out = []
    for i in range(0, len(examples), batch_size):
        batch = batch_to(method.collate(examples[i:i + batch_size]), device)
        out.append(torch.softmax(method.class_logits(batch).float(), -1).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None, help="folder with mnli/ and hans/ (else the demo task)")
    ap.add_argument("--n", type=int, default=2000, help="examples per eval set")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    task = ["task=mnli", f"data_dir={a.data_dir}"] if a.data_dir else ["task=demo"]
    cfg = load_config(None, [*task, "model=minilm-l6", "shots=4", "data_seed=0", f"eval.max_examples={a.n}"])
    prep = prepare(cfg)
    torch.set_num_threads(torch.get_num_threads())
    for name, exs in prep.evals.items():
        t_sorted, t_plain = [], []
        for _ in range(a.repeats):  # interleaved, so drift in machine load hits both alike
            t0 = time.perf_counter()
            p_sorted, _ = evaluate.predict(prep.method, exs, a.batch_size, prep.device)
            t_sorted.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            p_plain = in_input_order(prep.method, exs, a.batch_size, prep.device)
            t_plain.append(time.perf_counter() - t0)
        agree = float(np.mean(p_sorted.argmax(-1) == p_plain.argmax(-1)))
        print(f"{cfg.task}/{name}: n={len(exs)} input-order {min(t_plain):.1f}s, length-sorted "
              f"{min(t_sorted):.1f}s, speed-up x{min(t_plain) / min(t_sorted):.2f}, "
              f"max |dp| {np.abs(p_sorted - p_plain).max():.1e}, same predictions {agree:.4f}")


if __name__ == "__main__":
    main()
