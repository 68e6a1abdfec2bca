"""The linear probe's training time with its features computed once vs the plain probe (every step runs
the backbone: version 1 in train mode, as before; and in eval mode, the cached probe's reference), in
one process, interleaved, best of N.

    python benchmarks/probe_speed.py --model minilm-l6 --repeats 3
    python benchmarks/probe_speed.py --model smollm2-135m --repeats 2 --once

Binary MNLI from --data-dir (16 per class, 10 epochs, batch 8, max_length 128). Prints per variant the
best wall and CPU seconds of the whole training (the cached probe's feature pass included), per
epoch, the tokens the backbone ran on, and the speed-up; plus whether the cached probe's eval
predictions equal the eval-mode plain probe's.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--eval-examples", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--once", action="store_true", help="the eval-mode plain probe in the first round only")
    a = ap.parse_args()
    import torch

    from tuneoff.config import load_config
    from tuneoff.evaluate import predict
    from tuneoff.pipeline import Toolbox, prepare
    from tuneoff.train import train

    out = tempfile.mkdtemp(prefix="tuneoff-probe-")
    cfg = load_config(None, [f"model={a.model}", "method=head", "task=mnli", f"data_dir={a.data_dir}",
                             f"shots={a.shots}", "data_seed=0", "seed=0", f"train.epochs={a.epochs}",
                             "train.batch_size=8", "max_length=128", "train.lr=1e-2", "device=cpu",
                             f"eval.max_examples={a.eval_examples}", f"output_dir={out}"])

    def one(variant: str):
        prep = prepare(cfg)
        m = prep.method
        if variant != "cached":
            m._feature_pass = lambda examples: 0
        if variant == "plain, train mode (v1)":
            m.start_training = lambda examples: (m.model.train(), 0)[1]
        t0, c0 = time.perf_counter(), time.process_time()
        stats = train(m, prep.few, cfg.train, 0, Toolbox.shared().accelerator(prep.device))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        probs, _ = predict(m, prep.evals["validation_matched"], 32, prep.device)
        return wall, cpu, stats.tokens + stats.forward_tokens, probs

    variants = ["plain, train mode (v1)", "plain, eval mode", "cached"]
    best: dict = {}
    probs: dict = {}
    for r in range(a.repeats):
        for v in variants:
            if a.once and r and v == "plain, eval mode":
                continue
            wall, cpu, tok, p = one(v)
            b = best.get(v)
            best[v] = (min(wall, b[0]) if b else wall, min(cpu, b[1]) if b else cpu, tok)
            probs[v] = p
    print(f"model {a.model}, MNLI {a.shots}/class, {a.epochs} epochs, batch 8, threads {torch.get_num_threads()}, "
          f"best of {a.repeats}, load {os.getloadavg()}")
    print("| variant | train wall s | train CPU s | per epoch wall s | backbone tokens | speed-up (wall, CPU) |")
    print("|---|---|---|---|---|---|")
    ref = best[variants[0]]
    for v in variants:
        w, c, tok = best[v]
        print(f"| {v} | {w:.2f} | {c:.2f} | {w / a.epochs:.3f} | {tok} | {ref[0] / w:.1f}x, {ref[1] / c:.1f}x |")
    d = abs(probs["cached"] - probs["plain, eval mode"]).max()
    same = (probs["cached"].argmax(-1) == probs["plain, eval mode"].argmax(-1)).mean()
    print(f"cached vs plain eval-mode probe: max |prob diff| {d:.2e}, identical predictions {same:.0%}")


if __name__ == "__main__":
    main()
