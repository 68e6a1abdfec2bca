"""A selection still running, read from its fit cache: its rounds and trials so far, and their cost.

    python benchmarks/selection_so_far.py examples/cola-mnli-v2.yaml RUN_ID data_dir=PATH data_seed=0

The search is replayed as it runs (`tuneoff.selection.search.select`) on a copy of the folder's fit
cache (`selection.sqlite`, its claims and finished selections left out), with every fit taken from
the cache: it stops at
the first fit not made yet, so nothing trains and the running process is not disturbed. It prints
each round's space and length, then every trial of the rounds so far (its rate, whether it was
stopped, its mean held-out score at each length it was fitted to; a finished round's trials are
whole, the running round's trials are not shown), and the CPU and wall time of those trials' fits.
"""
from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

from tuneoff.selection import fits, search, tuning
from tuneoff.selection.cache import FitCache
from tuneoff.sweep import load_sweep


class _NotMade(Exception):
    pass


def _not_made(*args, **kwargs):
    raise _NotMade()


def main(config: str, run_id: str, overrides: list[str]) -> None:
    sw = load_sweep(config, overrides)
    run = next((r for r in sw.runs if r.run_id() == run_id), None)
    if run is None:
        sys.exit(f"no run {run_id} in {config} with {' '.join(overrides)}")
    loops, rounds = [], []
    start, round_of, kept_of = tuning._Loop.__init__, tuning._Loop.run_round, tuning._Loop.run_kept

    def init(self, *a, **k):
        start(self, *a, **k)
        loops.append(self)

    def run_round(self, space, length, round_no, n):
        rounds.append(f"round {round_no}: {n} trials, length {length}, " + ", ".join(
            f"{k} {v.low:.3g} to {v.high:.3g}" if hasattr(v, "low") else f"{k} {v}" for k, v in space.items()))
        return round_of(self, space, length, round_no, n)

    def run_kept(self, values, length, above, round_no):
        rounds.append(f"round {round_no}: the choice {values} trained to length {length} past {above:g}")
        return kept_of(self, values, length, above, round_no)

    path = Path(run.output_dir) / "selection.sqlite"
    if not path.is_file():
        sys.exit(f"no fit cache at {path}: no selection of this folder has started")
    saved = tuning.fit_rungs, fits.fit, start, round_of, kept_of  # fits.fit: a search without a length
    (tuning.fit_rungs, fits.fit, tuning._Loop.__init__, tuning._Loop.run_round,
     tuning._Loop.run_kept) = _not_made, _not_made, init, run_round, run_kept
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)  # the running store is only read
            dst = sqlite3.connect(Path(tmp) / "selection.sqlite")
            src.backup(dst)
            dst.execute("delete from making")
            dst.execute("delete from fits where fit_id like 'selection:%'")  # a finished one is replayed too
            dst.commit()
            src.close(), dst.close()
            try:
                search.select(run, FitCache(Path(tmp)))
                state = "every fit is made: the selection is finished"
            except _NotMade:
                state = "stopped at the first fit not made yet (the running round)"
    finally:
        tuning.fit_rungs, fits.fit, tuning._Loop.__init__, tuning._Loop.run_round, tuning._Loop.run_kept = saved
    print("\n".join(rounds))
    print(state)
    trials = loops[0].trials if loops else []  # (a search without a length: its trials as fitted so far)
    for t in trials:
        rungs = " ".join(f"{r['length']:.3g}:{r['mean_score']:.3f}" for r in t["rungs"])
        print(f"round {t['round']} trial {t['number']}: {t['label']} {t['state']} {rungs}")
    cpu = sum(t.get("train_cpu_s", 0) + t.get("eval_cpu_s", 0) for t in trials)
    wall = sum(t.get("train_time_s", 0) + t.get("eval_time_s", 0) for t in trials)
    print(f"the rounds so far: {len(trials)} trials, CPU {cpu / 3600:.2f} h, wall {wall / 3600:.2f} h")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
