"""The result tables of the real-data comparison (docs/cola-mnli-cpu/README.md) from its store.

    python benchmarks/real_table.py docs/cola-mnli-cpu [examples/cola-mnli-cpu.yaml]
    python benchmarks/real_table.py --times docs/cola-mnli-cpu
    python benchmarks/real_table.py --two-level docs/cola-mnli-v2 examples/cola-mnli-v2.yaml

Per task, method and shot count: the task's main metric on each eval set as mean ± std (n runs)
over data seeds, its 95% interval over seeds (Student t, n − 1 degrees of freedom; with --two-level
over the seeds and the eval sample, as the report's claims read it: `report.claims.interval`), the best run
(for a like-for-like line beside a study that reports its best run), accuracy beside it, and the
majority baseline. Then HANS per heuristic and gold label, and the side-by-side with the figures of
arXiv 2405.13181 (iamvarada/llm_finetuning, Results/*.csv, best of its runs). With the sweep config
given, every cell says how many of its planned runs are done, so a partial store is labelled so.

--times prints the measured time table instead: per cell, in the order the cells started, the
selection's wall and CPU seconds (the run that computed it: data seed 0 under frugal selection),
training (load + set-up + training) and evaluation (eval sets + forgetting) as the mean over the
cell's runs, the torch threads, and the total wall and CPU time of the runs, by part and by shot
count, with each selection counted once (the runs that reuse it record its cost but did not spend it).
"""
from __future__ import annotations

import datetime as _dt
import math
import statistics
import sys
from collections import defaultdict

from tuneoff.describe import main_metric, method_name, method_options
from tuneoff.report import blocks
from tuneoff.report import claims
from tuneoff.report.stats import t_interval
from tuneoff.store import Store

# The study's own figures (OPT-125m, best of its runs, accuracy in-domain / out-of-domain), as in
# its results files: vanilla = vanilla_*_baseline*.csv, PBFT = pbft_*.csv, distillation =
# few_shot_context_distillation_mnli_baseline_results.csv.
STUDY = [
    ("cola", "finetune", 16, 0.527, 0.531), ("cola", "finetune", 128, 0.631, 0.624),
    ("cola", "pattern", 128, 0.641, 0.632),
    ("mnli", "finetune", 16, 0.593, 0.494), ("mnli", "finetune", 128, 0.688, 0.500),
    ("mnli", "pattern", 128, 0.674, 0.501), ("mnli", "distill", 128, 0.671, 0.500),
]
OOD = {"cola": "out_of_domain", "mnli": "hans"}
IN = {"cola": "in_domain", "mnli": "validation_matched"}


def name_of(method: str, options: dict) -> str:
    """A method as these tables name it: with its k where it has one (icl, distill)."""
    return f"{method}(k={options['k']})" if "k" in options else method


MODELS: set = set()  # the store's models: a method is named with its model where there are several


def label(rec: dict) -> str:
    return with_model(name_of(method_name(rec), method_options(rec)), rec["model"])


def with_model(name: str, model: str) -> str:
    return f"{name} · {model}" if len(MODELS) > 1 else name


TWO_LEVEL = False  # --two-level: intervals over the splits and the eval sample (`report.claims.interval`)


def interval(values: list[float], eval_vars: list[float] | None = None) -> str:
    if len(values) < 2:
        return "–"
    lo, hi = claims.interval(values, eval_vars) if TWO_LEVEL else t_interval(values)
    return f"[{lo:.3f}, {hi:.3f}]"


def eval_var(m: dict, metric: str) -> float:
    """One run's eval-sample variance of `metric` on the eval set `m` (`report.claims.eval_variance`)."""
    o = m["overall"]
    return claims.eval_variance(metric, o[metric], o.get("n") or m.get("n"), claims.one_label(o.get("pred_dist")))


def msn(values: list[float]) -> str:
    """The report's "mean ± std (n)" over runs ("–" for no run)."""
    if not values:
        return "–"
    return blocks.msn(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan,
                      len(values))


def planned_counts(config: str | None, folder: str) -> dict:
    if not config:
        return {}
    from tuneoff.sweep import load_sweep

    sweep = load_sweep(config, [f"output_dir={folder}"])
    out: dict = defaultdict(int)
    for run in sweep.runs:
        out[(run.task, with_model(name_of(run.method.name, run.method.model_extra or {}), run.model), run.shots)] += 1
    return out


def main(folder: str, config: str | None = None) -> None:
    store = Store(folder, reading=True)
    done, failed = store.records("done"), store.records("failed")
    MODELS.update(r["model"] for r in done + failed)
    planned = planned_counts(config, folder)
    cells: dict = defaultdict(list)
    for r in done:
        cells[(r["task"], label(r), r["shots"])].append(r)
    errors: dict = {}
    for r in failed:
        errors.setdefault((r["task"], label(r), r["shots"]), (r.get("error") or "failed").splitlines()[0])
    keys = sorted(set(cells) | set(errors) | set(planned), key=lambda k: (k[0], k[1], k[2]))
    total_planned = sum(planned.values()) if planned else None
    print(f"{len(done)} runs done, {len(failed)} failed"
          + (f", of {total_planned} planned" + (" (partial)" if len(done) + len(failed) < total_planned else "")
             if total_planned else "") + "\n")
    for task in sorted({k[0] for k in keys}):
        metric = next((main_metric(r) for k in keys if k[0] == task for r in cells.get(k, [])), "accuracy")
        es_in, es_out = IN.get(task, "in_domain"), OOD.get(task, "out_of_domain")
        print(f"### {task}: {metric} (in-domain {es_in} / out-of-domain {es_out})\n")
        print(f"| method | shots | runs | {metric} in | 95% interval in | best in | {metric} out | 95% interval out "
              f"| best out | accuracy in / out |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        majority = {}
        for key in keys:
            if key[0] != task:
                continue
            recs = cells.get(key, [])
            n_plan = planned.get(key)
            runs = f"{len(recs)} of {n_plan}" if n_plan else str(len(recs))
            if not recs:
                why = f"n/a: {errors[key]}" if key in errors else "not run yet"
                print(f"| {key[1]} | {key[2]} | {runs} | {why} | | | | | | |")
                continue
            row = []
            for es in (es_in, es_out):
                vals = [r["metrics"][es]["overall"][metric] for r in recs if es in r["metrics"]]
                evs = [eval_var(r["metrics"][es], metric) for r in recs if es in r["metrics"]]
                row += [msn(vals), interval(vals, evs), f"{max(vals):.3f}" if vals else "–"]
                for r in recs:
                    if es in r["metrics"]:
                        majority[es] = r["metrics"][es]["majority"]
            acc = [blocks.num(statistics.fmean(v)) if v else "–" for v in
                   ([r["metrics"][es]["overall"]["accuracy"] for r in recs if es in r["metrics"]] for es in (es_in, es_out))]
            print(f"| {key[1]} | {key[2]} | {runs} | " + " | ".join(row) + f" | {acc[0]} / {acc[1]} |")
        base = " / ".join(f"{es}: " + (f"{metric} {m.get(metric, 0):.3f}, " if metric != "accuracy" else "")
                          + f"accuracy {m['accuracy']:.3f} (label id {m['label']})" for es, m in majority.items())
        print(f"\nMajority baseline (always the most frequent label): {base}\n")
        if task == "mnli":
            hans_table([r for k, rs in cells.items() if k[0] == task for r in rs])
    study_table(cells)


def hans_table(recs: list[dict]) -> None:
    subsets = sorted({s for r in recs for s in (r["metrics"].get("hans", {}).get("subsets") or {}) if "|" in s})
    if not subsets:
        return
    print("HANS accuracy per heuristic | gold label (mean over runs):\n")
    print("| method | shots | " + " | ".join(s.replace("heuristic=", "").replace("|label=", " · ") for s in subsets) + " |")
    print("|---|---|" + "---|" * len(subsets))
    by: dict = defaultdict(list)
    for r in recs:
        by[(label(r), r["shots"])].append(r)
    for (name, shots), rs in sorted(by.items()):
        vals = [statistics.fmean(r["metrics"]["hans"]["subsets"][s]["accuracy"] for r in rs
                                 if s in r["metrics"].get("hans", {}).get("subsets", {})) for s in subsets]
        print(f"| {name} | {shots} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    print()


def study_table(cells: dict) -> None:
    print("### Beside arXiv 2405.13181 (OPT-125m, best of its runs; accuracy in-domain / out-of-domain)\n")
    print("| task | method | shots | study (best run) | tuneoff best run | tuneoff mean ± std (n) |")
    print("|---|---|---|---|---|---|")
    for task, method, shots, a_in, a_out in STUDY:
        recs = cells.get((task, method, shots), [])
        if method == "distill":
            recs = next((v for k, v in cells.items() if k[0] == task and k[1].startswith("distill") and k[2] == shots), [])
        es = (IN[task], OOD[task])
        vals = [[r["metrics"][e]["overall"]["accuracy"] for r in recs if e in r["metrics"]] for e in es]
        best = " / ".join(f"{max(v):.3f}" if v else "–" for v in vals)
        mean = " / ".join(msn(v) for v in vals)
        print(f"| {task} | {method} | {shots} | {a_in:.3f} / {a_out:.3f} | {best} | {mean} |")
    print()


TASK_NAMES = {"cola": "CoLA", "mnli": "MNLI"}
TRAINING, EVALUATION = ("load", "setup", "train"), ("eval", "forgetting")


def _spent(rec: dict, names: tuple[str, ...]) -> tuple[float, float]:
    """(wall, CPU) seconds of a run's resource parts `names`, summed (a part without a figure: 0)."""
    res = rec.get("resources") or {}
    return tuple(sum(float(res.get(f"{n}_{kind}_s") or 0) for n in names) for kind in ("time", "cpu"))


def _part(recs: list[dict], names: tuple[str, ...]) -> tuple[float, float]:
    """Mean (wall, CPU) seconds over `recs` of the summed resource parts `names`."""
    spent = [_spent(r, names) for r in recs]
    return statistics.fmean(w for w, _ in spent), statistics.fmean(c for _, c in spent)


def times(folder: str) -> None:
    done = Store(folder, reading=True).records("done")
    MODELS.update(r["model"] for r in done)
    cells: dict = defaultdict(list)
    for r in sorted(done, key=lambda r: r.get("created_at") or ""):
        cells[(label(r), r["task"], r["shots"])].append(r)
    print("| run | runs | selection wall / CPU s | training wall / CPU s (mean) "
          "| evaluation wall / CPU s (mean) | threads |")
    print("|---|---|---|---|---|---|")
    fmt = lambda wc: f"{wc[0]:,.0f} / {wc[1]:,.0f}"
    # wall/CPU seconds spent, by part and by shot count; a selection is counted once, by the run
    # that computed it: the runs that reuse it (frugal) record its cost too, but did not spend it
    spent: dict = defaultdict(lambda: [0.0, 0.0])
    spans = []  # each run's (start, start + its own wall time)
    for (name, task, shots), recs in cells.items():
        chose = [r for r in recs if (r.get("resources") or {}).get("selection_time_s")
                 and not (r.get("selection") or {}).get("shared")]
        sel = fmt(_part(chose, ("selection",))) if chose else "–"
        threads = sorted({str((r.get("env") or {}).get("cpu_threads", "?")) for r in recs})
        print(f"| {name} · {TASK_NAMES.get(task, task)} · {shots} shots | {len(recs)} | {sel} "
              f"| {fmt(_part(recs, TRAINING))} | {fmt(_part(recs, EVALUATION))} | {', '.join(threads)} |")
        own = {id(r) for r in chose}
        for r in recs:
            run_wall = 0.0
            parts = ((("selection", ("selection",)),) if id(r) in own else ()) + (
                ("training", TRAINING), ("evaluation", EVALUATION))
            for part, names in parts:
                wall, cpu = _spent(r, names)
                run_wall += wall
                for key in (part, shots, "all"):
                    spent[key][0] += wall
                    spent[key][1] += cpu
            start = _dt.datetime.fromisoformat(r["created_at"])  # a record's created_at is its start
            spans.append((start, start + _dt.timedelta(seconds=run_wall)))
    hours = lambda key: f"{spent[key][0] / 3600:.1f}"
    print(f"\n{len(done)} runs; their wall times sum to {hours('all')} process-hours "
          f"({spent['all'][1] / 3600:.1f} CPU-hours), each selection counted once: "
          + ", ".join(f"{hours(p)} {p}" for p in ("selection", "training", "evaluation")) + "; "
          + ", ".join(f"{hours(s)} at {s} shots" for s in sorted(k for k in spent if isinstance(k, int)))
          + ".")
    # calendar hours with at least one run going: the union of [start, start + the run's own time]
    going, end = 0.0, None
    for s, e in sorted(spans):
        if end is None or s > end:
            going, end = going + (e - s).total_seconds(), e
        elif e > end:
            going, end = going + (e - end).total_seconds(), e
    print(f"At least one run was going for {going / 3600:.1f} hours of the calendar "
          "(each run from its start for its own wall time; a run stopped before it finished is not counted).")


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--two-level" in args:
        args.remove("--two-level")
        TWO_LEVEL = True
    if args[:1] == ["--times"]:
        times(args[1])
    else:
        main(*args[:2])
