"""How much each cost figure moves when other work loads the CPU: the same run, repeated, alternately
with nothing added and with one busy-loop process per core beside it (in one process, interleaved).

    python benchmarks/load_sensitivity.py --repeats 3
    python benchmarks/load_sensitivity.py --model tiny-bert --steps 40 --repeats 2   # a quick look

Prints, per condition, the mean of each figure (wall and process CPU time of set-up + training and of
evaluation, tokens, FLOPs) and the ratio loaded / unloaded, with the load average beside it.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile

FIGURES = ("setup_time_s", "setup_cpu_s", "train_time_s", "train_cpu_s", "eval_time_s", "eval_cpu_s",
           "train_tokens", "train_flops_approx")


def _spin(stop) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1_000_003


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--method", default="finetune")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eval-examples", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=os.cpu_count(), help="busy-loop processes when loaded")
    a = ap.parse_args()
    from tuneoff.config import load_config
    from tuneoff.runner import run_record

    out = tempfile.mkdtemp(prefix="tuneoff-load-")
    cfg = load_config(None, [f"model={a.model}", f"method={a.method}", f"train.max_steps={a.steps}", "shots=8",
                             "data_seed=0", "seed=0", f"eval.max_examples={a.eval_examples}", "device=cpu",
                             f"output_dir={out}"])
    run_record(cfg, out)  # warm: data read, model files in the page cache
    got: dict[str, list[dict]] = {"unloaded": [], "loaded": []}
    for _ in range(a.repeats):
        for cond in ("unloaded", "loaded"):
            stop, procs = mp.Event(), []
            if cond == "loaded":
                procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(a.busy)]
                for p in procs:
                    p.start()
            rec = run_record(cfg, out)
            load1 = os.getloadavg()[0]
            stop.set()
            for p in procs:
                p.join()
            assert rec["status"] == "done", rec.get("error")
            got[cond].append({**{k: rec["resources"][k] for k in FIGURES}, "load1": load1})
    print(f"{a.model} {a.method}, {a.steps} steps, {a.eval_examples} eval examples per set, {a.repeats} repeats, "
          f"{a.busy} busy-loop processes when loaded, {os.cpu_count()} CPUs")
    print(f"{'figure':22} {'unloaded':>10} {'loaded':>10} {'loaded/unloaded':>16}")
    for k in (*FIGURES, "load1"):
        u = statistics.fmean(r[k] for r in got["unloaded"])
        lo = statistics.fmean(r[k] for r in got["loaded"])
        print(f"{k:22} {u:10.3f} {lo:10.3f} {lo / u if u else float('nan'):16.2f}")
    for cond, rows in got.items():
        print(cond, "train wall:", [round(r["train_time_s"], 1) for r in rows],
              "train cpu:", [round(r["train_cpu_s"], 1) for r in rows])


if __name__ == "__main__":
    main()
