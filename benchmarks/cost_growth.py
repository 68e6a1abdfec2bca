"""How training time grows with shots per class: one epoch per method and shot count on the same model
(binary MNLI from --data-dir, batch 8, max_length 128), in one process; time per example stays flat
when cost is linear in the examples.

    python benchmarks/cost_growth.py --shots 2 8 32 128 --methods finetune pattern lora
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
    ap.add_argument("--shots", type=int, nargs="*", default=[2, 8, 32, 128])
    ap.add_argument("--methods", nargs="*", default=["finetune", "pattern", "lora"])
    a = ap.parse_args()
    import torch

    from tuneoff.config import load_config
    from tuneoff.runner import accelerator_for, prepare, release
    from tuneoff.train import train

    out = tempfile.mkdtemp(prefix="tuneoff-growth-")
    print(f"{a.model}, MNLI, 1 epoch, batch 8, max_length 128, threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()}")
    print("| method | shots/class | examples | tokens | train wall s | train CPU s | ms per example (wall) | ms per token (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for method in a.methods:
        for shots in a.shots:
            cfg = load_config(None, [f"model={a.model}", f"method={method}", "task=mnli", f"data_dir={a.data_dir}",
                                     f"shots={shots}", "data_seed=0", "seed=0", "train.epochs=1",
                                     "train.batch_size=8", "max_length=128", "train.lr=1e-5", "device=cpu",
                                     "eval.max_examples=8", "forgetting.enabled=false", f"output_dir={out}"])
            prep = prepare(cfg)
            t0, c0 = time.perf_counter(), time.process_time()
            stats = train(prep.method, prep.method.train_examples(prep.few), cfg.train, 0, accelerator_for(prep.device))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            release(accelerator_for(prep.device))
            tok = stats.tokens + stats.forward_tokens
            print(f"| {method} | {shots} | {stats.examples} | {tok} | {wall:.1f} | {cpu:.1f} | "
                  f"{1000 * wall / stats.examples:.0f} | {1000 * cpu / tok:.2f} |", flush=True)
            del prep
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
