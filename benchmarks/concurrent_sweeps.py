"""Several `tuneoff sweep` processes on one sweep file and one results folder, some of them killed:
is every run computed exactly once, and is nothing lost?

    python benchmarks/concurrent_sweeps.py --procs 2
    python benchmarks/concurrent_sweeps.py --procs 4
    python benchmarks/concurrent_sweeps.py --procs 4 --kill 2      # SIGKILL 2 of them mid-sweep
    python benchmarks/concurrent_sweeps.py --procs 1 --restarts 20 # kill and restart one process 20 times

A sweep of `--runs` tiny runs (demo task, tiny random BERT, 2 optimizer steps, 20 eval examples per
set) in a fresh temporary folder; the processes start `--stagger` s apart. Killed processes are
not restarted (the survivors must take over their runs), except with `--restarts`, where one
process is killed at a random moment and started again, `--restarts` times, then run to the end.
Prints one line: processes, runs, kills, runs lost, runs computed twice, attempts, wall and CPU time.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import yaml


def _done(db: Path) -> int:
    try:
        with closing(sqlite3.connect(db, timeout=30)) as con:
            return con.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _start(cfg: Path, folder: Path, i: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = (folder / f"proc{i}.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "tuneoff.cli", "sweep", str(cfg)], env=env, cwd=folder,
                            stdout=log, stderr=subprocess.STDOUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=24)
    ap.add_argument("--kill", type=int, default=0, help="processes to SIGKILL mid-sweep (not restarted)")
    ap.add_argument("--restarts", type=int, default=0, help="kill-and-restart cycles of process 0")
    ap.add_argument("--stagger", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.kill >= args.procs:
        ap.error("--kill must leave at least one process alive")
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="tuneoff-concurrent-"))
    out = folder / "res"
    cfg = folder / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"defaults": {
        "task": "demo", "model": "tiny-bert", "shots": 2, "seed": 0, "data_seed": list(range(args.runs)),
        "train.max_steps": 2, "eval.max_examples": 20, "output_dir": str(out)}}))
    db = out / "results.sqlite"
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    for i in range(args.procs):
        procs.append(_start(cfg, folder, i))
        time.sleep(args.stagger)
    kills = 0
    for i in range(args.restarts):  # kill process 0 at a random moment after it has made progress
        target = min(args.runs - 1, _done(db) + rng.randint(1, 2))
        while _done(db) < target and procs[0].poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if procs[0].poll() is None:
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            kills += 1
        procs[0] = _start(cfg, folder, 100 + i)
    victims = rng.sample(range(args.procs), args.kill)
    for v in victims:  # kill while the sweep is under way
        target = _done(db) + rng.randint(1, 3)
        while _done(db) < target and procs[v].poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if procs[v].poll() is None:
            procs[v].send_signal(signal.SIGKILL)
            kills += 1
    codes = [p.wait() for p in procs]
    wall = time.time() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    with closing(sqlite3.connect(db)) as con:
        done = con.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
        per_run = con.execute("SELECT run_id, SUM(outcome IN ('done','failed','adopted')), COUNT(*) "
                              "FROM attempts GROUP BY run_id").fetchall()
        claims = con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    twice = sum(1 for _, computed, _ in per_run if computed > 1)
    attempts = sum(n for _, _, n in per_run)
    survivors_ok = all(c == 0 for i, c in enumerate(codes) if i not in victims)
    print(f"processes={args.procs} runs={args.runs} kills={kills} lost={args.runs - done} "
          f"computed_twice={twice} attempts={attempts} claims_left={claims} survivors_exit_0={survivors_ok} "
          f"wall_s={wall:.1f} cpu_s={cpu:.1f} folder={folder}")


if __name__ == "__main__":
    main()
