"""What giving a run a pristine model costs: a fresh load from the safetensors files (what every run
does) vs keeping one loaded model in memory and copying it (deep copy) or restoring its weights in
place from a CPU copy of its state; each followed by one write to every weight (what a training step
does: the pages of a memory-mapped file are copied only when written). In one process, interleaved,
best of N, wall and CPU seconds.

    python benchmarks/load_vs_copy.py --repeats 3
"""
from __future__ import annotations

import argparse
import copy
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["minilm-l6:classifier", "smollm2-135m:lm"])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import torch

    from tuneoff import models

    print(f"threads {torch.get_num_threads()}, best of {a.repeats}, load {os.getloadavg()}")
    print("| model | fresh load + write | deep copy + write | restore state in place + write | kept in memory |")
    print("|---|---|---|---|---|")
    for item in a.models:
        spec, head = item.split(":")
        kept = models.load(spec, head, 2, seed=0).model
        state = {k: v.clone() for k, v in kept.state_dict().items()}

        def write(model):
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1.0)

        def fresh():
            write(models.load(spec, head, 2, seed=0).model)

        def deep():
            write(copy.deepcopy(kept))

        def restore():
            kept.load_state_dict(state)
            write(kept)

        best = {}
        for _ in range(a.repeats):
            for name, fn in (("fresh", fresh), ("deep", deep), ("restore", restore)):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                w, c = time.perf_counter() - t0, time.process_time() - c0
                b = best.get(name, (w, c))
                best[name] = (min(w, b[0]), min(c, b[1]))
        mb = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
        cells = " | ".join(f"{best[n][0]:.2f} s ({best[n][1]:.2f} s CPU)" for n in ("fresh", "deep", "restore"))
        print(f"| {spec} ({head}) | {cells} | {mb:.0f} MB more resident |")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
