"""How training cost grows with the few-shot set: training time vs shots per class, per method family,
on one model, in one process (each cell a fresh model; sizes interleaved per repeat, best of N).

    python benchmarks/cost_growth.py --shots 2 8 32 128 --methods finetune pattern lora head --epochs 1

Binary MNLI from --data-dir, batch 8, max_length 128, a fixed learning rate (no selection: selection
multiplies the training cost by its number of fits, see docs/selection), one pass over the set by
default. Prints per method and size the training examples, tokens, wall and CPU seconds, and the CPU
seconds per training example: a flat last column means cost grows linearly with the examples.
Model loading and evaluation are left out.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

LR = {"finetune": 2e-5, "pattern": 2e-5, "adaptive": 2e-5, "lora": 5e-4, "head": 1e-2, "ia3": 5e-3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--shots", type=int, nargs="+", default=[2, 8, 32, 128])
    ap.add_argument("--methods", nargs="+", default=["finetune", "pattern", "lora", "head"])
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    import torch

    from tuneoff.config import load_config
    from tuneoff.pipeline import Toolbox, prepare
    from tuneoff.train import train

    out = tempfile.mkdtemp(prefix="tuneoff-growth-")
    best: dict = {}
    for _ in range(a.repeats):
        for method in a.methods:
            for shots in a.shots:
                cfg = load_config(None, [f"model={a.model}", f"method={method}", "task=mnli", f"data_dir={a.data_dir}",
                                         f"shots={shots}", "data_seed=0", "seed=0", f"train.epochs={a.epochs}",
                                         "train.batch_size=8", "max_length=128", f"train.lr={LR.get(method, 1e-4)}",
                                         "train.warmup_ratio=0", "device=cpu", f"output_dir={out}"])
                prep = prepare(cfg)
                t0, c0 = time.perf_counter(), time.process_time()
                stats = train(prep.method, prep.method.train_examples(prep.few), cfg.train, 0,
                              Toolbox.shared().accelerator(prep.device))
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                key = (method, shots)
                tok = stats.tokens + getattr(stats, "forward_tokens", 0)
                b = best.get(key)
                best[key] = (min(wall, b[0]) if b else wall, min(cpu, b[1]) if b else cpu, stats.examples, tok)
                del prep
    print(f"model {a.model}, binary MNLI, {a.epochs:g} epoch(s), batch 8, max_length 128, threads "
          f"{torch.get_num_threads()}, best of {a.repeats}, load at the end {tuple(round(x, 1) for x in os.getloadavg())}\n")
    print("| method | shots per class | training examples | tokens | wall s | CPU s | CPU s per example |")
    print("|---|---|---|---|---|---|---|")
    for (method, shots), (w, c, n, tok) in best.items():
        print(f"| {method} | {shots} | {n} | {tok:,} | {w:.1f} | {c:.1f} | {c / max(n, 1):.3f} |")


if __name__ == "__main__":
    main()
