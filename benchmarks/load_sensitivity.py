"""How much each cost figure moves when other work loads the CPU: the same run, repeated, alternately
with nothing added and with one busy-loop process per core beside it (in one process, interleaved).

    python benchmarks/load_sensitivity.py --repeats 3
    python benchmarks/load_sensitivity.py --model tiny-bert --steps 40 --repeats 2   # a quick look

Prints, per condition, the mean of each figure (wall and process CPU time of set-up + training and of
evaluation, tokens, FLOPs) and the ratio loaded / unloaded, with the load average beside it.

`--against icl,train`: the thread policy measured against the tools people use. benchmarks/icl_vs_lmeval.py
(tuneoff's icl against lm-evaluation-harness) and benchmarks/train_vs_trainer.py (tuneoff's loop against
the HF Trainer) run quiet and beside a fixed load (`--busy` busy-loop processes, each pinned to its own
core), each with tuneoff's threads as before the policy (torch's default, as the other tool) and with
the policy (`threads=auto`); the other tool keeps torch's default throughout. Printed: per pair and
policy, tuneoff's speed over the other tool's quiet and loaded, and how far the load moved that ratio
(the goal: loaded within 1.5x of quiet).

    PYTHONPATH=$PWD/src .venv-bench/bin/python benchmarks/load_sensitivity.py --against icl,train \
        --data-dir /work/shared/data --busy 1
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIGURES = ("setup_time_s", "setup_cpu_s", "train_time_s", "train_cpu_s", "eval_time_s", "eval_cpu_s",
           "train_tokens", "train_flops_approx")


def _spin(stop, core: int | None = None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1_000_003


@contextlib.contextmanager
def busy_loops(n: int, pinned: bool = False):
    """`n` busy-loop processes for the duration (pinned: the i-th to the i-th CPU this process may use)."""
    stop = mp.Event()
    cores = sorted(os.sched_getaffinity(0)) if pinned else []
    procs = [mp.Process(target=_spin, args=(stop, cores[i % len(cores)] if pinned else None), daemon=True)
             for i in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join()


# the thread policy's measurement (--against): tuneoff's threads before the policy, and with it
POLICIES = {"before": "as-is", "after": "auto"}
# the order of the four measurements: quiet and loaded alternate, so that drift hits both policies alike
ORDER = (("quiet", "before"), ("loaded", "before"), ("loaded", "after"), ("quiet", "after"))
HERE = Path(__file__).resolve().parent


def _measure(pair: str, policy: str, a, folder: Path) -> dict:
    """One run of icl_vs_lmeval.py or train_vs_trainer.py (its own output shown as it goes), its figures."""
    out = folder / f"{pair}-{policy}-{time.monotonic_ns()}.json"
    if pair == "icl":
        cmd = [sys.executable, str(HERE / "icl_vs_lmeval.py"), "--data-dir", a.data_dir, *shlex.split(a.icl_args)]
    else:  # the Trainer at torch's default threads, as people run it (unless --train-args says otherwise)
        import torch

        cmd = [sys.executable, str(HERE / "train_vs_trainer.py"), "--threads", str(torch.get_num_threads()),
               *shlex.split(a.train_args), "--tools", "tuneoff,trainer"]
    cmd += ["--tuneoff-threads", POLICIES[policy], "--json", str(out)]
    subprocess.run(cmd, check=True, env={**os.environ, "TUNEOFF_BENCH_DATA": a.data_dir, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.read_text())


def _ratios(pair: str, got: dict) -> dict[str, tuple[float, str]]:
    """Per comparison: tuneoff's examples/s over the other tool's (wall; best of the repeats), and the threads."""
    if pair == "icl":
        return {"icl vs lm-eval": (got["tuneoff"]["ex_s"] / got["lm-eval"]["ex_s"],
                                   f"{sorted(set(got['tuneoff_threads']))} vs {got['other_threads']}")}
    out = {}
    for case in dict.fromkeys(k.split("/")[0] for k in got):
        ours, theirs = got[f"{case}/tuneoff"], got[f"{case}/trainer"]
        speed = max(r["examples"] / r["wall_s"] for r in ours) / max(r["examples"] / r["wall_s"] for r in theirs)
        out[f"{case} vs Trainer"] = (speed, f"{sorted({r['threads'] for r in ours})} vs "
                                            f"{sorted({r['threads'] for r in theirs})}")
    return out


def against(a) -> None:
    pairs = a.against.split(",")
    busy = 1 if a.busy is None else a.busy
    folder = Path(tempfile.mkdtemp(prefix="tuneoff-against-"))
    got: dict = {}
    for cond, policy in ORDER:
        for pair in pairs:
            print(f"== {pair}, {cond}, threads {policy} the policy ({POLICIES[policy]})", flush=True)
            with busy_loops(busy if cond == "loaded" else 0, pinned=True):
                figures = _measure(pair, policy, a, folder)
                load1 = os.getloadavg()[0]
            for name, (ratio, threads) in _ratios(pair, figures).items():
                got.setdefault((name, policy), {})[cond] = (ratio, threads, load1)
    print(f"\ntuneoff's examples/s over the other tool's (wall), quiet and beside {busy} busy loop(s) pinned to "
          f"{busy} core(s) of {len(os.sched_getaffinity(0))}; the other tool at torch's default threads")
    print("| comparison | tuneoff's threads | quiet | loaded | quiet ÷ loaded | threads quiet; loaded | load avg |")
    print("|---|---|---|---|---|---|---|")
    for (name, policy), c in got.items():
        (q, qt, ql), (lo, lt, ll) = c["quiet"], c["loaded"]
        print(f"| {name} | {policy} the policy | {q:.2f} | {lo:.2f} | {q / lo:.2f}{' ✓' if q / lo <= 1.5 else ''} | "
              f"{qt}; {lt} | {ql:.1f}; {ll:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps([{"comparison": n, "policy": p, **{k: list(v) for k, v in c.items()}}
                                            for (n, p), c in got.items()], indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", help="icl, train or both (icl,train): the thread policy against lm-eval and the "
                                      "Trainer, quiet and loaded (see the module's docstring)")
    ap.add_argument("--data-dir", default=os.environ.get("TUNEOFF_BENCH_DATA", "/work/shared/data"))
    ap.add_argument("--icl-args", default="--n 200 --chunk 40", help="--against: icl_vs_lmeval.py's own arguments")
    ap.add_argument("--train-args", default="--epochs 2 --repeats 2 --cases ft-minilm,lora-minilm,ft-smollm,lora-smollm",
                    help="--against: train_vs_trainer.py's own arguments")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--method", default="finetune")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eval-examples", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="--against: also write the ratios to this file")
    ap.add_argument("--busy", type=int, default=None, help="busy-loop processes when loaded (default: one per core; "
                                                            "--against: 1, pinned)")
    a = ap.parse_args()
    if a.against:
        return against(a)
    a.busy = os.cpu_count() if a.busy is None else a.busy
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
            with busy_loops(a.busy if cond == "loaded" else 0):
                rec = run_record(cfg, out)
                load1 = os.getloadavg()[0]
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
