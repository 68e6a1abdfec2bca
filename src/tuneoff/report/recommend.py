"""The answer a user came for: per task, shot count and eval domain, the best method (over every
model in the store) that fits a budget, the methods statistically tied with it, and the cheapest
of those.

- A candidate is a method variant on a model ("pattern · smollm2-135m"); its score per run is the
  task's main metric, averaged over the eval sets of the domain.
- It fits the budget when every one of its runs does (worst run), on the figures `budget_figures`
  names; a candidate without the figure a limit needs is left out, with that reason.
- The best is the fitting candidate with the best mean: the highest, or the lowest for a metric
  where lower is better (`tuneoff.metrics.direction`). Every other fitting candidate is
  compared with it on the runs that share a few-shot split (same data_seed and seed, same split
  checksum) by a two-sided paired t-test (scipy.stats.ttest_rel); the p-values are Holm-corrected
  over those comparisons. Tied = Holm-adjusted p >= ALPHA, or fewer than MIN_PAIRS pairs.
- A candidate beats chance when the 95% interval over its runs (Student t) of its margin over the
  majority baseline (always the most frequent label, on the same eval sets) lies above 0: its score
  minus the baseline, or the baseline minus its score where lower is better. Only such
  a candidate is named the cheapest: a method tied with the best because nothing separates, but no
  better than always saying one label, is no answer. (Records without the majority baseline are not
  checked.)
- No recommendation (said plainly) when nothing fits, when only one candidate fits, when the
  best has fewer than MIN_PAIRS runs, or when neither the best nor any method tied with it is shown
  to beat the majority baseline; "the data cannot separate them" when every other fitting
  candidate is tied with the best.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from tuneoff.budget import Budget
from tuneoff.metrics import direction
from tuneoff.report.edges import Edge, from_json
from tuneoff.report.frame import done_rows, frame_metric, memory_column
from tuneoff.report.stats import holm, paired_t, t_interval

ALPHA = 0.05
MIN_PAIRS = 3
TEST = "two-sided paired t-test (scipy.stats.ttest_rel) on per-split scores"

CHANCE = ("beating it means the 95% Student-t interval over splits of the score minus the baseline "
          "lies above 0")
LOWER = " (the baseline minus the score: lower is better)"


def chance_rule(metric: str) -> str:
    """CHANCE, for a metric where lower is better with the margin it means."""
    return CHANCE + (LOWER if direction(metric) < 0 else "")

# The recorded figure behind each budget. Parts of a run's cost that the record gains later
# (set-up, hyperparameter selection) count as soon as they appear; the first memory figure present wins.
TIME_PARTS = ("setup_time_s", "selection_time_s", "train_time_s")
AXES = {"train_time": "training time (s)", "memory": "peak memory (MB)", "trainable_params": "trainable parameters"}


def fmt_cost(axis: str, value: float) -> str:
    """A cost as people read it: 131 s, 4096 MB, 1.2M parameters."""
    if axis == "train_time":
        return f"{value:.0f} s training" if value >= 10 else f"{value:.2g} s training"
    if axis == "memory":
        return f"{value:.0f} MB"
    from tuneoff.report.blocks import count

    return f"{count(value)} trainable parameters"


def budget_figures(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per run (index as `runs`): the figure each budget axis is checked against; and, per axis,
    which recorded field(s) it is."""
    have = [c for c in TIME_PARTS if c in runs.columns and runs[c].notna().any()]
    mem = memory_column(runs)
    out = pd.DataFrame(index=runs.index)
    out["train_time"] = runs[have].sum(axis=1, min_count=1) if have else np.nan
    out["memory"] = runs[mem] if mem in runs.columns else np.nan
    out["trainable_params"] = runs["params_trainable"] if "params_trainable" in runs.columns else np.nan
    out["eval_time"] = runs["eval_time_s"] if "eval_time_s" in runs.columns else np.nan  # shown, never a budget
    names = {"train_time": " + ".join(have or ["train_time_s"]), "memory": mem, "trainable_params": "params_trainable"}
    return out, names


@dataclass
class Answer:
    task: str
    shots: int
    domain: str
    metric: str
    eval_sets: list[str]
    verdict: str  # "best" | "tied" | "cannot separate" | "no recommendation" | "not above chance"
    sentence: str
    candidates: pd.DataFrame  # one row per candidate: scores, costs, fits, p-values, tied
    best: str | None = None
    tied: list[str] = field(default_factory=list)
    cheapest: str | None = None
    notes: list[str] = field(default_factory=list)  # a fitting candidate's choice on an edge of its search


def run_scores(frame: pd.DataFrame, domain: str) -> pd.DataFrame:
    """One row per done run: task, shots, candidate, split keys, its score on `domain` and the
    majority baseline's score on the same eval sets (`baseline`; NaN where not recorded)."""
    rows = done_rows(frame)
    d = rows[(rows["subset"] == "overall") & (rows["domain"] == domain)]
    if d.empty:
        return pd.DataFrame(columns=["run_id", "task", "shots", "candidate", "score", "baseline", "eval_sets"])
    metrics = {t: frame_metric(d, t) for t in d["task"].unique()}

    def values(part):
        return part.assign(value=[row[metrics[row["task"]]] for _, row in part.iterrows()])
    d = values(d).assign(metric=d["task"].map(metrics))
    maj = rows[(rows["subset"] == "majority") & (rows["domain"] == domain)]
    base = values(maj).groupby("run_id")["value"].mean() if not maj.empty else pd.Series(dtype=float)
    g = d.groupby("run_id", sort=False)
    out = g.agg(task=("task", "first"), shots=("shots", "first"), model=("model", "first"),
                variant=("variant", "first"), data_seed=("data_seed", "first"), seed=("seed", "first"),
                checksum=("split_checksum", "first"), metric=("metric", "first"), score=("value", "mean"),
                eval_sets=("eval_set", lambda s: ", ".join(sorted(set(s))))).reset_index()
    out["baseline"] = out["run_id"].map(base).astype(float)
    out["candidate"] = out["variant"] + " · " + out["model"].astype(str)
    return out.dropna(subset=["score"])


def above_chance(margins) -> tuple[float, bool]:
    """(lower end of the 95% Student-t interval of the mean of `margins` = score minus majority
    baseline per run, signed by the metric's direction so that better is above 0; whether it is
    above 0). Fewer than 2 runs with a baseline: (NaN, False)."""
    lo = t_interval(margins)[0]
    return lo, bool(lo > 0)


def _candidates(scores: pd.DataFrame, costs: pd.DataFrame, limits: dict[str, float], names: dict,
                sign: int = 1) -> pd.DataFrame:
    """One row per candidate; `sign` = the metric's direction (+1: higher is better)."""
    rows = []
    for cand, g in scores.groupby("candidate", sort=True):
        c = costs.loc[g["run_id"]]
        worst = {axis: float(c[axis].max()) if c[axis].notna().all() else np.nan for axis in AXES}
        over = [f"{fmt_cost(a, worst[a])} > {fmt_cost(a, lim).split(' ', 1)[0]}" for a, lim in limits.items()
                if worst[a] > lim]
        missing = [f"no {names[a]} recorded" for a in limits if np.isnan(worst[a])]
        lo, beats = above_chance(sign * (g["score"] - g["baseline"]))
        if g["baseline"].isna().all():  # a store without the majority baseline: nothing to check against
            beats = True
        rows.append({"candidate": cand, "model": g["model"].iloc[0], "variant": g["variant"].iloc[0],
                     "mean": g["score"].mean(), "std": g["score"].std(ddof=1), "n": len(g), **worst,
                     "baseline": g["baseline"].mean(), "margin_lo": lo, "beats_chance": beats,
                     "eval_time": float(c["eval_time"].max()),
                     "fits": not over and not missing, "why_out": "; ".join(over + missing)})
    return pd.DataFrame(rows)


def _pairs(scores: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    def by_split(c):  # several runs of one candidate on a split (a setting outside its label) are averaged
        g = scores[scores["candidate"] == c].groupby(["data_seed", "seed"], dropna=False)
        return {k: (float(v["score"].mean()), v["checksum"].iloc[0]) for k, v in g}
    sa, sb = by_split(a), by_split(b)
    keys = [k for k in sorted(set(sa) & set(sb), key=str)
            if pd.isna(sa[k][1]) or pd.isna(sb[k][1]) or sa[k][1] == sb[k][1]]
    return np.array([sa[k][0] for k in keys], float), np.array([sb[k][0] for k in keys], float)


def _cheapest(cands: pd.DataFrame, sign: int = 1) -> str:
    """Least training time, then fewest trainable parameters, then least memory, then best mean."""
    key = cands[["train_time", "trainable_params", "memory", "mean"]].copy()
    key["mean"] = -sign * key["mean"]
    return str(cands.loc[key.fillna(np.inf).sort_values(list(key.columns)).index[0], "candidate"])


def _answer(task, shots, domain, scores: pd.DataFrame, costs, budget: Budget, names) -> Answer:
    metric, sets = str(scores["metric"].iloc[0]), sorted(set(", ".join(scores["eval_sets"]).split(", ")))
    sign = direction(metric)
    cands = _candidates(scores, costs, budget.limits(), names, sign)
    cands["p"], cands["p_holm"], cands["pairs"], cands["tied"] = np.nan, np.nan, 0, False
    fit = cands[cands["fits"]]
    fit = fit.assign(better=sign * fit["mean"]).sort_values(["better", "train_time"], ascending=[False, True])
    head = f"{task}, {shots} shots per class, {'in-domain' if domain == 'in' else 'out-of-domain'} ({metric})"

    def no(why):
        return Answer(task, shots, domain, metric, sets, "no recommendation", f"{head}: no recommendation — {why}",
                      cands)
    if fit.empty:
        return no(f"none of the {len(cands)} method(s) fits the budget.")
    best = fit.index[0]
    b = cands.loc[best]
    if len(fit) == 1:
        return no(f"only {b['candidate']} fits the budget, so there is nothing to compare it with.")
    if b["n"] < MIN_PAIRS:
        return no(f"{b['candidate']} has {int(b['n'])} run(s); a paired test needs at least {MIN_PAIRS} "
                  "splits per method (run more data seeds).")
    others = list(fit.index[1:])
    for i in others:
        x, y = _pairs(scores, b["candidate"], cands.loc[i, "candidate"])
        cands.loc[i, "pairs"] = len(x)
        cands.loc[i, "p"] = paired_t(x, y) if len(x) >= MIN_PAIRS else np.nan
    cands.loc[others, "p_holm"] = holm(list(cands.loc[others, "p"]))
    cands.loc[others, "tied"] = ~(cands.loc[others, "p_holm"] < ALPHA)
    tied = [str(cands.loc[i, "candidate"]) for i in others if cands.loc[i, "tied"]]
    top = [best] + [i for i in others if cands.loc[i, "tied"]]
    score = f"{b['mean']:.3f} ± {b['std']:.3f} over {int(b['n'])} splits"
    pairs = sorted({int(cands.loc[i, "pairs"]) for i in others})
    test = (f"{TEST}, {'/'.join(map(str, pairs))} pairs each, Holm-corrected over {len(others)} comparison(s), "
            f"alpha {ALPHA}")
    real = [i for i in top if cands.loc[i, "beats_chance"]]
    base = f"{metric} {b['baseline']:.3f}" if np.isfinite(b["baseline"]) else "not recorded"
    if not real:
        text = (f"{head}: no recommendation — neither the best, {b['candidate']} ({score}), nor any method "
                f"tied with it is shown to beat the majority baseline (always the most frequent label: "
                f"{base}); {chance_rule(metric)}. ({test})")
        return Answer(task, shots, domain, metric, sets, "not above chance", text, cands, str(b["candidate"]), tied)
    cheap = _cheapest(cands.loc[real], sign)
    chance = [str(cands.loc[i, "candidate"]) for i in top if i not in real]
    aside = (f" Not shown to beat chance, so never named the cheapest: {', '.join(chance)} (95% interval "
             f"over splits not {'above' if sign > 0 else 'below'} the majority baseline, {base}).") if chance else ""
    c = cands.set_index("candidate").loc[cheap]
    cost = fmt_cost("train_time", c["train_time"]) + (f", {c['eval_time']:.0f} s evaluation"
                                                        if np.isfinite(c["eval_time"]) else "")
    if not tied:
        verdict = "best"
        text = (f"{head}: {b['candidate']} is the best that fits ({score}); every other fitting method is "
                f"significantly worse ({test}).")
    elif len(tied) == len(others):
        verdict = "cannot separate"
        text = (f"{head}: the data cannot separate the {len(fit)} methods that fit — no winner. "
                f"{'Highest' if sign > 0 else 'Lowest'} mean: {b['candidate']} ({score}). Cheapest of them that "
                f"beats chance: {cheap} ({cost}). ({test})")
    else:
        verdict = "tied"
        text = (f"{head}: best is {b['candidate']} ({score}), statistically tied with {', '.join(tied)}; "
                f"cheapest of the tied set that beats chance: {cheap} ({cost}). ({test})")
    text += aside
    return Answer(task, shots, domain, metric, sets, verdict, text, cands, str(b["candidate"]), tied, cheap)


def edge_notes(a: Answer, scores: pd.DataFrame, edges: pd.Series | None) -> list[str]:
    """A note per fitting candidate (best first) whose selection chose a value on an edge of what it
    searched (`report.edges`): its optimum may lie beyond, and its standing here with it."""
    c = a.candidates
    if edges is None or c.empty:
        return []
    fit = c[c["fits"]]
    order = fit.assign(better=direction(a.metric) * fit["mean"]).sort_values("better", ascending=False)["candidate"]
    notes = []
    for cand in order:
        per = [from_json(edges.get(r)) for r in scores.loc[scores["candidate"] == cand, "run_id"]]
        found: dict[tuple, list[Edge]] = {}
        for es in per:
            for e in {(e.key, e.side): e for e in es}.values():
                found.setdefault((e.key, e.side), []).append(e)
        for es in found.values():
            e = es[0] if len({x.value_text() for x in es}) == 1 else replace(es[0], value=None)
            part = "" if len(es) == len(per) else f" on {len(es)} of {len(per)} splits"
            notes.append(f"note: {cand}'s {e.phrase()} at {a.shots} shots on {a.task}{part}: "
                         "its optimum may lie beyond")
    return notes


def recommend(frame: pd.DataFrame, budget: Budget | None = None) -> tuple[list[Answer], dict[str, str]]:
    """Answers per (task, shots, domain) of the done runs in `frame` (`report.frame.to_frame`), and
    the name of the recorded figure behind each budget axis."""
    budget = budget or Budget()
    runs = frame.drop_duplicates("run_id").set_index("run_id", drop=False)
    costs, names = budget_figures(runs)
    answers = []
    for domain in [budget.domain] if budget.domain else ["in", "out"]:
        scores = run_scores(frame, domain)
        for (task, shots), g in scores.groupby(["task", "shots"], sort=True):
            if budget.shots and int(shots) not in budget.shots:
                continue
            a = _answer(task, int(shots), domain, g, costs, budget, names)
            a.notes = edge_notes(a, g, runs.get("selection_edges"))
            answers.append(a)
    answers.sort(key=lambda a: (a.task, a.shots, a.domain))
    return answers, names
