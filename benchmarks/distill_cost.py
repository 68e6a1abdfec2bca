"""Context distillation's cost against pattern-based fine-tuning on the same model and examples, in one
process, interleaved, best of N: distill's teacher pass (its set-up, once per run) is counted.

    python benchmarks/distill_cost.py --repeats 2

Binary MNLI from --data-dir (16 per class), smollm2-135m, batch 8, max_length 128, distill k=2. Prints
per method the best set-up and training seconds (wall and CPU), the training time per epoch, and
distill / pattern per epoch with the teacher pass spread over the epochs, and over one epoch alone.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    import torch

    from tuneoff.config import load_config
    from tuneoff.pipeline import Toolbox, prepare
    from tuneoff.train import train

    out = tempfile.mkdtemp(prefix="tuneoff-distill-")
    common = [f"model={a.model}", "task=mnli", f"data_dir={a.data_dir}", f"shots={a.shots}", "data_seed=0",
              "seed=0", f"train.epochs={a.epochs}", "train.batch_size=8", "max_length=128", "train.lr=1e-5",
              "device=cpu", "eval.max_examples=8", "eval.batch_size=8", "forgetting.enabled=false",
              f"output_dir={out}"]
    cfgs = {"pattern": load_config(None, common + ["method=pattern"]),
            "distill": load_config(None, common + ["method=distill", f"method.k={a.k}"])}
    best: dict = {}
    for _ in range(a.repeats):
        for name, cfg in cfgs.items():
            prep = prepare(cfg)
            setup = prep.timers["setup"]
            t0, c0 = time.perf_counter(), time.process_time()
            stats = train(prep.method, prep.method.train_examples(prep.few), cfg.train, 0, Toolbox.shared().accelerator(prep.device))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            row = (setup.seconds, setup.cpu_seconds, wall, cpu, stats.examples,
                   getattr(prep.method, "teacher_forwards", 0))
            b = best.get(name)
            best[name] = row if b is None else tuple(min(x, y) for x, y in zip(row[:4], b[:4])) + row[4:]
            del prep
    print(f"{a.model}, MNLI {a.shots}/class, {a.epochs} epochs, batch 8, distill k={a.k}, threads "
          f"{torch.get_num_threads()}, best of {a.repeats}, load {os.getloadavg()}")
    print("| method | set-up wall s (CPU) | train wall s (CPU) | per epoch wall s (CPU) | examples | teacher forwards |")
    print("|---|---|---|---|---|---|")
    for name, (sw, sc, tw, tc, n, tf) in best.items():
        print(f"| {name} | {sw:.2f} ({sc:.2f}) | {tw:.2f} ({tc:.2f}) | {tw / a.epochs:.2f} ({tc / a.epochs:.2f}) "
              f"| {n} | {tf} |")
    p, d = best["pattern"], best["distill"]
    for i, what in ((2, "wall"), (3, "CPU")):
        spread = (d[i] + d[i - 2] - p[i - 2]) / p[i]
        one = (d[i] / a.epochs + d[i - 2] - p[i - 2]) / (p[i] / a.epochs)
        print(f"distill / pattern per epoch ({what}): teacher spread over {a.epochs} epochs {spread:.2f}x; "
              f"one epoch with the whole teacher pass {one:.2f}x")


if __name__ == "__main__":
    main()
