"""In-context learning: what a query costs as the context of demonstrations grows.

One model and one set of queries; for each number of demonstrations (in total, balanced over the
labels, drawn by icl's own `draw_demos` from one few-shot split), the context is built once and the
queries are scored after it. Every batch is scored after every context in turn, best of N per
batch, so that drift in machine load hits every row alike (wall and CPU time). Paths: `shared`
(tuneoff's default: the context's keys/values shared by every row of a batch), `copied` (the
context's keys/values expanded into every row's cache, the path before it) and `uncached` (the
whole text run for every query). With a
cached context the cost per query should grow by the attention over the context only; uncached, it
grows with the whole context per query. Predictions of every path must agree.

    python benchmarks/icl_growth.py --data-dir ../shared/data --n 200 --demos 0 2 4 8 16 32 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tuneoff import evaluate  # noqa: E402
from tuneoff.config import load_config  # noqa: E402
from tuneoff.methods.icl import DemoContext, draw_demos  # noqa: E402
from tuneoff.pipeline import prepare  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def icl_prepared(data_dir: str | None, model: str, n: int, shots: int, k: int):
    """tuneoff's icl on binary MNLI (else the demo task): the prepared run and its first eval set."""
    task = ["task=mnli", f"data_dir={data_dir}"] if data_dir else ["task=demo"]
    cfg = load_config(None, [*task, f"model={model}", "method=icl", f"method.k={k}", f"shots={shots}",
                             "data_seed=0", f"eval.max_examples={n}", "train.max_length=128"])
    prep = prepare(cfg)
    return prep, next(iter(prep.evals.values()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None, help="folder with mnli/ (else the demo task)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=200, help="eval examples (stratified cap)")
    ap.add_argument("--shots", type=int, default=32, help="few-shot examples per class to draw demonstrations from")
    ap.add_argument("--demos", type=int, nargs="+", default=[0, 2, 4, 8, 16, 32], help="demonstrations in total")
    ap.add_argument("--paths", nargs="+", default=["shared", "copied"], choices=["shared", "copied", "uncached"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="then profile the shared path at the smallest and "
                                                            "largest context (torch.profiler, self CPU per op)")
    a = ap.parse_args()
    prep, exs = icl_prepared(a.data_dir, a.model, a.n, a.shots, 1)
    m, task = prep.method, prep.task
    contexts = {}
    for d in a.demos:
        if d % task.num_labels:
            raise SystemExit(f"--demos {d}: not a multiple of the {task.num_labels} labels")
        contexts[d] = draw_demos(prep.few, d // task.num_labels, m.options.demo_seed, task)
    evaluate.predict(m, exs[:a.batch_size], a.batch_size, prep.device)  # warm-up; checks the shared path once
    if "shared" in a.paths and m.scorer._shared_ok is not True:
        raise SystemExit("the shared-prefix attention does not fit this model (it fell back to the cache)")
    print(f"model {a.model}, {len(exs)} queries, batch {a.batch_size}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, best of {a.repeats}", flush=True)
    build: dict[int, tuple[float, float]] = {}
    for d, demos in contexts.items():
        ctx, wall, cpu = timed(lambda: DemoContext.build(m.scorer, m.model, task, demos, m.options, prep.few))
        contexts[d], build[d] = ctx, (wall, cpu)
    tokens = {d: len(ctx.prefix.ids) for d, ctx in contexts.items()}
    # batch by batch (the evaluator's length-sorted batches), every (context, path) on the same batch
    # in turn, best of N per batch: load that drifts within seconds hits every row alike
    fields = task.text_fields
    exs = sorted(exs, key=lambda ex: sum(len(ex[f]) for f in fields))
    best: dict[tuple[int, str], list[float]] = {}
    probs: dict[tuple[int, str], list[np.ndarray]] = {}
    for i in range(0, len(exs), a.batch_size):
        batch = exs[i:i + a.batch_size]
        times: dict[tuple[int, str], tuple[float, float]] = {}
        for r in range(a.repeats):
            for d, ctx in contexts.items():
                m.context = ctx
                for path in a.paths:
                    m.options.use_cache = path != "uncached"
                    m.scorer._shared_ok = {"shared": True, "copied": False}.get(path, True)
                    p, wall, cpu = timed(lambda: evaluate.predict(m, batch, a.batch_size, prep.device)[0])
                    times[d, path] = min(times.get((d, path), (wall, cpu)), (wall, cpu))
                    if r == 0:
                        probs.setdefault((d, path), []).append(p)
        for key, (wall, cpu) in times.items():
            acc = best.setdefault(key, [0.0, 0.0])
            acc[0], acc[1] = acc[0] + wall, acc[1] + cpu
    m.scorer._shared_ok = True
    probs = {key: np.concatenate(ps) for key, ps in probs.items()}
    base = 2 if 2 in contexts else a.demos[0]
    print(f"\n| demonstrations | context tokens | context built (wall / CPU) | "
          + " | ".join(f"{p}: ms per query (wall / CPU) | ×{base} demos (wall / CPU)" for p in a.paths)
          + " | same predictions |")
    print("|---" * (3 + 2 * len(a.paths) + 1) + "|")
    for d in contexts:
        cells = [str(d), str(tokens[d]), f"{build[d][0]:.2f} / {build[d][1]:.2f} s"]
        for path in a.paths:
            w, c = best[d, path]
            w0, c0 = best[base, path]
            cells += [f"{1e3 * w / len(exs):.0f} / {1e3 * c / len(exs):.0f}", f"{w / w0:.2f} / {c / c0:.2f}"]
        ref = probs[d, a.paths[0]]
        agree = [f"{path} {np.mean(probs[d, path].argmax(-1) == ref.argmax(-1)):.3f} "
                 f"(max dp {np.abs(probs[d, path] - ref).max():.0e})" for path in a.paths[1:]]
        print("| " + " | ".join(cells + ["; ".join(agree) or "-"]) + " |", flush=True)
    if a.profile:
        profile(m, exs, {d: contexts[d] for d in (base, max(contexts))}, a.batch_size, prep.device)


def profile(m, exs, contexts: dict, batch_size: int, device) -> None:
    """Self CPU time per operator of scoring the queries through the shared path after each context."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    m.options.use_cache, m.scorer._shared_ok = True, True
    per: dict[int, dict[str, float]] = {}
    for d, ctx in contexts.items():
        m.context = ctx
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            evaluate.predict(m, exs, batch_size, device)
        per[d] = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    lo, hi = contexts
    print(f"\nself CPU time (s) per operator, shared path, {len(exs)} queries: {lo} vs {hi} demonstrations")
    for op in sorted(per[hi], key=lambda op: -per[hi][op])[:12]:
        print(f"  {op:52s} {per[lo].get(op, 0.0):7.2f} {per[hi][op]:7.2f}")
    print(f"  {'total':52s} {sum(per[lo].values()):7.2f} {sum(per[hi].values()):7.2f}")


if __name__ == "__main__":
    main()
