"""What a sweep's runs spend outside their measured work (loading the model and data, set-up, the
record), as a share of each run: the runs of a sweep file run one after another in one process, as
`tuneoff sweep` runs them locally.

    python benchmarks/run_overhead.py examples/quick.yaml 'methods=[finetune,head,lora]' \
        'defaults.shots=[8]' 'defaults.data_seed=[0,1]' --repeats 1

Per run: its wall time (the `run_record` call), its work (training + evaluation + forgetting +
the training and evaluation of the selection fits it ran, not those reused from an earlier run), the rest (overhead) and its share, and the
recorded model-load and set-up times; then the totals.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    from tuneoff.runner import run_record
    from tuneoff.sweep import load_sweep

    out = tempfile.mkdtemp(prefix="tuneoff-overhead-")
    runs = load_sweep(a.sweep, [*a.overrides, f"defaults.output_dir={out}"]).runs
    print(f"{len(runs)} runs of {a.sweep} {' '.join(a.overrides)}; load {os.getloadavg()}")
    print("| run | wall s | work s | overhead s (share) | load s | setup s | selection fits |")
    print("|---|---|---|---|---|---|---|")
    tot_wall = tot_work = 0.0
    for cfg in runs:
        t0 = time.perf_counter()
        rec = run_record(cfg, os.path.join(out, cfg.run_id()))
        wall = time.perf_counter() - t0
        if rec["status"] != "done":
            print(f"| {cfg.method.name} failed: {rec['error']} |")
            continue
        r = rec["resources"]
        fits = r.get("selection_fits", 0)
        # fits reused from an earlier run (frugal selection) cost this run a lookup, not their time
        done_here = 1 - rec["selection"]["cost"]["fits_reused"] / fits if fits else 0.0
        work = r["train_time_s"] + r["eval_time_s"] + r["forgetting_time_s"] + r.get("selection_time_s", 0.0) * done_here
        tot_wall, tot_work = tot_wall + wall, tot_work + work
        print(f"| {cfg.method.name} {cfg.model} shots={cfg.shots} data_seed={cfg.data_seed} | {wall:.1f} | {work:.1f} | "
              f"{wall - work:.1f} ({(wall - work) / wall:.0%}) | {r['load_time_s']:.2f} | {r['setup_time_s']:.2f} "
              f"| {fits} |")
    print(f"| total | {tot_wall:.1f} | {tot_work:.1f} | {tot_wall - tot_work:.1f} ({(tot_wall - tot_work) / tot_wall:.0%}) "
          f"| | | |  load {os.getloadavg()}")


if __name__ == "__main__":
    main()
