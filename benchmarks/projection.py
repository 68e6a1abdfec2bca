"""The sweep's dry-run projection beside what the runs took, per group, and the projection of the rest.

    python benchmarks/projection.py examples/cola-mnli-v2.yaml data_dir=PATH [--seed 0] [--work]

For each group of the sweep (task, model, method entry, shots): the runs of data seed `--seed`
(under frugal selection, the runs that make each selection), priced from first principles as the
dry run prices a folder where no run has finished (`tuneoff.estimate.Costs` with a `Pricer` and no
records: its work at the speed a short calibration measures here), beside the CPU and wall seconds
those runs recorded (selection, set-up, training, evaluation), and the ratio. Then the runs left,
priced as the dry run prices them now (from the finished runs of the folder, else their work), one
at a time and on two processes.

`--work` adds, per run of the seed that made its selection, the selection's work as the dry run prices
it (`tuneoff.pricing.selection_work`: FLOPs trained and scored, the first round and the most the
edge rule's rounds may add) beside the FLOPs the selection record counted. It checks the work the
projection prices, apart from the speed it prices it at: CPU seconds depend on the machine a run
ran on and the calibration on the load when it runs; the FLOPs on neither. Beside it, the run's
own parts (load, set-up, training, evaluation) priced at the speed calibrated now and the CPU
seconds they took: the same-machine check where the run ran on this machine.
"""
from __future__ import annotations

import argparse
from collections import defaultdict

from tuneoff.estimate import Costs
from tuneoff.pricing import inputs, selection_work
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


def work_table(first, done: dict, label, pricer: Pricer) -> None:
    """The selections' FLOPs as priced (first round; with every extension) beside those recorded, and
    the run's own parts priced at the speed calibrated now beside their CPU seconds."""
    print("\n| run | selection FLOPs priced: first round | with every extension | recorded | "
          "recorded ÷ first round | rounds recorded | run's own parts: priced / CPU |")
    print("|---|---|---|---|---|---|---|")
    for run in first:
        rec = done.get(run.run_id())
        sel = rec.selection.to_dict() if rec is not None and rec.selection is not None else None
        if sel is None or sel.get("shared") or not (sel.get("cost") or {}).get("flops_approx"):
            continue
        work, extra = selection_work(run, inputs(run))
        got, priced = sel["cost"]["flops_approx"], work.flops
        ratio = f"{got / priced:.2f}" if priced else "–"
        rounds = len(sel.get("rounds") or [1])
        own, cpu = pricer.parts(run)[0], _spent(rec, (*TRAINING, *EVALUATION))[1]
        print(f"| {run.task} · {run.model} · {label(run)} · {run.shots} | {priced:.3g} | "
              f"{priced + extra.flops:.3g} | {got:.3g} | {ratio} | {rounds} | {hm(own)} / {hm(cpu)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--seed", type=int, default=0, help="the data seed whose runs are compared (default 0)")
    ap.add_argument("--work", action="store_true", help="also the selections' FLOPs, priced beside recorded")
    args = ap.parse_args()
    sweep = load_sweep(args.config, args.overrides)
    store = open_store(sweep.runs[0].output_dir, must_exist=True)
    done = {r.run_id: r for r in store.records(status="done")}
    label = lambda run: sweep.method_label(run)
    first = [r for r in sweep.runs if r.data_seed == args.seed]
    first_principles = Pricer()
    before = Costs([], first_principles).groups(first, label)
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
    if args.work:
        work_table(first, done, label, first_principles)
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
