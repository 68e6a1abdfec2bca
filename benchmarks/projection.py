"""The sweep's dry-run projection beside what the runs took, per group, and the projection of the rest.

    python benchmarks/projection.py examples/cola-mnli-v2.yaml data_dir=PATH [--seed 0]

For each group of the sweep (task, model, method entry, shots): the runs of data seed `--seed`
(under frugal selection, the runs that make each selection), priced from first principles as the
dry run prices a folder where no run has finished (`tuneoff.estimate.Costs` with a `Pricer` and no
records: its work at the speed a short calibration measures here), beside the CPU and wall seconds
those runs recorded (selection, set-up, training, evaluation), and the ratio. Then the runs left,
priced as the dry run prices them now (from the finished runs of the folder, else their work), one
at a time and on two processes.
"""
from __future__ import annotations

import argparse
from collections import defaultdict

from tuneoff.estimate import Costs
from tuneoff.store import open_store
from tuneoff.sweep import load_sweep
from tuneoff.throughput import Pricer

from real_table import EVALUATION, TRAINING, _spent  # benchmarks/: run as a script

PARTS = ("selection", *TRAINING, *EVALUATION)


def spent(rec) -> tuple[float, float]:
    """(CPU, wall) seconds of a run's selection, set-up, training and evaluation."""
    wall, cpu = _spent(rec, PARTS)
    return cpu, wall


def hm(s: float | None) -> str:
    if s is None:
        return "–"
    m = round(s / 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--seed", type=int, default=0, help="the data seed whose runs are compared (default 0)")
    args = ap.parse_args()
    sweep = load_sweep(args.config, args.overrides)
    store = open_store(sweep.runs[0].output_dir, must_exist=True)
    done = {r.run_id: r for r in store.records(status="done")}
    label = lambda run: sweep.method_label(run)
    first = [r for r in sweep.runs if r.data_seed == args.seed]
    before = Costs([], Pricer()).groups(first, label)
    print(f"| group | runs done | projected (first principles) | CPU | wall | projected ÷ CPU |")
    print("|---|---|---|---|---|---|")
    tot = defaultdict(float)
    for key, runs, _, seconds in before:
        recs = [done[r.run_id()] for r in runs if r.run_id() in done]
        task, model, _, shots, entry = key
        name = f"{task} · {model} · {entry} · {shots}"
        if len(recs) < len(runs):
            print(f"| {name} | {len(recs)} of {len(runs)} | {hm(seconds)} | | | |")
            continue
        cpu, wall = (sum(x) for x in zip(*(spent(r) for r in recs)))
        tot["proj"] += seconds or 0
        tot["cpu"] += cpu
        tot["wall"] += wall
        ratio = f"{seconds / cpu:.2f}" if seconds and cpu else "–"
        print(f"| {name} | {len(recs)} | {hm(seconds)} | {hm(cpu)} | {hm(wall)} | {ratio} |")
    if tot["cpu"]:
        print(f"| all groups done | | {hm(tot['proj'])} | {hm(tot['cpu'])} | {hm(tot['wall'])} "
              f"| {tot['proj'] / tot['cpu']:.2f} |")
    left = [r for r in sweep.runs if r.run_id() not in done]
    costs = Costs(list(done.values()), Pricer())
    priced = costs.left(left, 1)
    if priced is None:
        print(f"\n{len(left)} runs left; some cannot be priced")
        return
    two = costs.left(left, 2)
    print(f"\n{len(left)} runs left of {len(sweep.runs)}: {hm(priced.seconds)} one at a time, "
          f"{hm(two.seconds)} on two processes" + (" (a lower bound)" if priced.lower_bound else ""))


if __name__ == "__main__":
    main()
