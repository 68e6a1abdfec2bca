"""Where a training run's memory goes, phase by phase, for tuneoff's loop and the HF Trainer alike.

Runs one tool on one case of `train_vs_trainer.py` (same model, data, settings) in a fresh process
with global hooks, so neither loop is changed: the process RSS and its peak (`ru_maxrss`) after each
forward pass of the backbone, before each optimizer step (gradients complete) and after it, plus
the bytes held by the weights, the gradients and the optimizer state after the first step, and the
process CPU time between marks (forward; backward; optimizer step; collate + the next forward).

    PYTHONPATH=$PWD/src .venv-bench/bin/python benchmarks/train_memory.py [--steps 3] \\
        [--cases ft-smollm,lora-smollm] [--tools tuneoff,tuneoff-fused,trainer]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import train_vs_trainer as bench  # noqa: E402

BACKBONES = ("BertModel", "LlamaModel")  # the module a forward pass of every method runs once


def child(tool: str, case: str, steps: int) -> None:
    import torch
    from torch.nn.modules.module import register_module_forward_hook
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    torch.set_num_threads(2)
    import time

    log: list[tuple[str, float, float, float]] = []
    state: dict = {}

    def mark(what: str) -> None:
        log.append((what, round(bench.rss_mb()), round(bench.peak_mb()), time.process_time()))

    def on_forward(module, args, out):
        if type(module).__name__ in BACKBONES and torch.is_grad_enabled():
            mark("after forward")

    def before_step(opt, args, kwargs):
        mark("gradients done, before the optimizer step")

    def after_step(opt, args, kwargs):
        mark("after the optimizer step")
        if "bytes" not in state:
            params = [p for g in opt.param_groups for p in g["params"]]
            size = lambda ts: round(sum(t.numel() * t.element_size() for t in ts) / 2 ** 20)  # noqa: E731
            state["bytes"] = {"trainable weights MB": size(params),
                              "gradients MB": size([p.grad for p in params if p.grad is not None]),
                              "optimizer state MB": size([v for s in opt.state.values() for v in s.values()
                                                          if torch.is_tensor(v) and v.dim() > 0])}

    register_module_forward_hook(on_forward)
    register_optimizer_step_pre_hook(before_step)
    register_optimizer_step_post_hook(after_step)
    mark("imports done")
    epochs = steps / 8  # 64 examples, batch 8: 8 steps per epoch
    precision = "bf16" if tool.endswith("-bf16") else "fp32"
    if tool.startswith("trainer"):
        bench.child_trainer(case, epochs, precision)
    else:
        bench.child_tuneoff(case, epochs, precision, "adamw_fused" if "-fused" in tool else "adamw")
    mark("end")
    print("RESULT " + json.dumps({"log": log, **state}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--cases", default="ft-smollm")
    ap.add_argument("--tools", default="tuneoff,tuneoff-fused,trainer")
    a = ap.parse_args()
    if a.child:
        return child(*a.child, a.steps)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for case in a.cases.split(","):
        for tool in a.tools.split(","):
            p = subprocess.run([sys.executable, __file__, "--child", tool, case, "--steps", str(a.steps)],
                               capture_output=True, text=True, env=env)
            line = next((ln for ln in p.stdout.splitlines()[::-1] if ln.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(p.stderr[-3000:])
            r = json.loads(line[7:])
            print(f"\n{case} {tool}: {r.get('bytes')}")
            prev = None
            for what, rss, peak, cpu in r["log"]:
                since = f"{cpu - prev:7.2f} CPU-s since the last mark" if prev is not None else ""
                print(f"  {what:45s} RSS {rss:6d} MB   peak {peak:6d} MB {since}")
                prev = cpu


if __name__ == "__main__":
    main()
