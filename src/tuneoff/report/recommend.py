"""The answer a user came for: per task, shot count and eval domain, the best method (over every
model in the store) that fits a budget, what the data can say of every other fitting method
against it, and, where that is decided, the cheapest of the best and the methods equivalent to it.

- A candidate is a method variant on a model ("pattern · smollm2-135m"); its score per run is the
  task's main metric, averaged over the eval sets of the domain, with its eval-sample variance
  (`report.claims.eval_variance`, summed over those sets / their count squared).
- It fits the budget when its figures do (`budget_figures`): its CPU time and FLOPs (set-up +
  training + selection) as the mean run, the figures the leaderboard and the cost plot show; its
  peak memory and trainable parameters as the worst run. A candidate without the figure a limit
  needs is left out, with that reason. No limit reads wall time, which other load on the machine
  moves; it is shown beside the CPU time.
- The best is the fitting candidate with the best mean: the highest, or the lowest for a metric
  where lower is better (`tuneoff.metrics.direction`). Every other fitting candidate is compared
  with it on the runs that share a few-shot split under the one rule of `report.claims` (the rule
  of the report's paired comparisons too): worse (separated), equivalent within the budget's
  margin (TOST), not separated (with the smallest difference it could have detected), or too few
  pairs; Holm over those comparisons.
- A candidate beats chance when the 95% interval of its margin over the majority baseline (always
  the most frequent label, on the same eval sets), over splits and the eval sample
  (`claims.interval`), lies above 0: its score minus the baseline, or the baseline minus its score
  where lower is better. (Records without the majority baseline are not checked.)
- Verdicts: "best" (every other fitting candidate worse), "equivalent" (every other worse or shown
  equivalent), both decided (`claims.decided`) and naming the cheapest of the best and its
  equivalents that beats chance, by CPU time (set-up + training + selection, the mean run:
  `method_cpu_s`, which other load on the machine moves far less than wall time; FLOPs beside it);
  "not separated" (some fitting candidate is neither worse nor equivalent: no winner and no
  cheapest is named; each such candidate is said with how far it trails the best and the 95%
  interval of that difference, `claims.diff_interval`); "not above chance" (neither the best nor
  any candidate not separated from it is shown to beat the majority baseline); "no recommendation"
  (nothing fits, one candidate fits, or the best has fewer runs than a test needs).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from tuneoff.budget import Budget
from tuneoff.metrics import direction
from tuneoff.report import wording
from tuneoff.report.claims import (EQUIVALENT, NOT_SEPARATED, SEPARATED, TOO_FEW, Rule, compare,
                                   decided, eval_variance, interval, judge, one_label, phrase, trails)
from tuneoff.report.edges import Edge, from_json
from tuneoff.report.frame import done_rows, frame_metric, memory_column

__all__ = ["AXES", "Answer", "recommend", "budget_figures", "run_scores", "above_chance", "decided", "fmt_cost"]

# The recorded figure behind each budget axis, and how a candidate's runs make one figure: CPU time
# and FLOPs (set-up + training + selection) as the mean run, the figures the leaderboard and the
# cost plot show; memory and trainable parameters as the worst run. Wall time (the same parts) is
# shown beside the CPU time, never budgeted: other load on the machine moves it.
AXES = {"cpu_time": "CPU time (s), mean run", "flops": "FLOPs, mean run", "memory": "peak memory (MB), worst run",
        "trainable_params": "trainable parameters, worst run"}
MEAN_AXES = ("cpu_time", "flops")
TIME_PARTS = ("setup_time_s", "selection_time_s", "train_time_s")  # the wall time shown beside
# The cost the cheapest is decided on (CPU time, the budget's figure), and the figure shown beside it.
CPU, FLOPS = "method_cpu_s", "adapt_flops_approx"
CPU_PARTS = "setup_cpu_s + train_cpu_s + selection_cpu_s"


def fmt_cost(axis: str, value: float) -> str:
    """A cost as people read it: 131 s CPU, 2.1e14 FLOPs, 4096 MB, 1.2M parameters."""
    if axis in ("cpu_time", "wall_time"):
        unit = "CPU" if axis == "cpu_time" else "wall"
        return f"{value:.0f} s {unit}" if value >= 10 else f"{value:.2g} s {unit}"
    if axis == "flops":
        return f"{value:.2g} FLOPs".replace("e+", "e")
    if axis == "memory":
        return f"{value:.0f} MB"
    from tuneoff.report.blocks import count

    return f"{count(value)} trainable parameters"


def budget_figures(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per run (index as `runs`): the figure each budget axis is checked against (`AXES`), the wall
    time shown beside the CPU time, and the evaluation time; and, per axis, which recorded field(s)
    it is."""
    have = [c for c in TIME_PARTS if c in runs.columns and runs[c].notna().any()]
    mem = memory_column(runs)
    out = pd.DataFrame(index=runs.index)
    out["cpu_time"] = runs[CPU] if CPU in runs.columns else np.nan
    out["flops"] = runs[FLOPS] if FLOPS in runs.columns else np.nan
    out["memory"] = runs[mem] if mem in runs.columns else np.nan
    out["trainable_params"] = runs["params_trainable"] if "params_trainable" in runs.columns else np.nan
    out["wall_time"] = runs[have].sum(axis=1, min_count=1) if have else np.nan  # shown, never a budget
    out["eval_time"] = runs["eval_time_s"] if "eval_time_s" in runs.columns else np.nan  # shown, never a budget
    names = {"cpu_time": CPU_PARTS, "flops": FLOPS, "memory": mem, "trainable_params": "params_trainable"}
    return out, names


@dataclass
class Answer:
    task: str
    shots: int
    domain: str
    metric: str
    eval_sets: list[str]
    verdict: str  # "best" | "equivalent" | "not separated" | "no recommendation" | "not above chance"
    sentence: str
    candidates: pd.DataFrame  # one row per candidate: scores, costs, fits, p-values, claim
    best: str | None = None
    tied: list[str] = field(default_factory=list)  # not separated from the best (equivalent included)
    cheapest: str | None = None  # named only when decided
    notes: list[str] = field(default_factory=list)  # a fitting candidate's choice on an edge of its search
    equivalent: list[str] = field(default_factory=list)  # shown equivalent to the best within the margin
    cost: str = ""  # the figure the cheapest was decided on
    rule: Rule = field(default_factory=Rule)
    brief: str = ""  # the sentence as listed beside the rule (`report.answer`): without what the rule says

    @property
    def listed(self) -> str:
        """The answer as a list of answers gives it, beside the rule: `brief`, else its sentence."""
        return self.brief or self.sentence


def run_scores(frame: pd.DataFrame, domain: str) -> pd.DataFrame:
    """One row per done run: task, shots, candidate, split keys, its score on `domain`, its
    eval-sample variance (`eval_var`) and the majority baseline's score on the same eval sets
    (`baseline`; NaN where not recorded)."""
    rows = done_rows(frame)
    d = rows[(rows["subset"] == "overall") & (rows["domain"] == domain)]
    if d.empty:
        return pd.DataFrame(columns=["run_id", "task", "shots", "candidate", "score", "eval_var", "baseline",
                                     "eval_sets"])
    metrics = {t: frame_metric(d, t) for t in d["task"].unique()}

    def values(part):
        return part.assign(value=[row[metrics[row["task"]]] for _, row in part.iterrows()])
    d = values(d).assign(metric=d["task"].map(metrics))
    d = d.assign(var=[eval_variance(m, v, n, one_label(p)) for m, v, n, p in
                      zip(d["metric"], d["value"], d["n"], d["pred_dist"])])
    maj = rows[(rows["subset"] == "majority") & (rows["domain"] == domain)]
    base = values(maj).groupby("run_id")["value"].mean() if not maj.empty else pd.Series(dtype=float)
    g = d.groupby("run_id", sort=False)
    out = g.agg(task=("task", "first"), shots=("shots", "first"), model=("model", "first"),
                variant=("variant", "first"), data_seed=("data_seed", "first"), seed=("seed", "first"),
                checksum=("split_checksum", "first"), metric=("metric", "first"), score=("value", "mean"),
                eval_var=("var", lambda s: s.sum(min_count=len(s)) / len(s) ** 2),
                eval_sets=("eval_set", lambda s: ", ".join(sorted(set(s))))).reset_index()
    out["baseline"] = out["run_id"].map(base).astype(float)
    out["candidate"] = out["variant"] + " · " + out["model"].astype(str)
    return out.dropna(subset=["score"])


def above_chance(margins, eval_vars=None) -> tuple[float, bool]:
    """(lower end of the 95% interval of the mean of `margins` = score minus majority baseline per
    run, signed by the metric's direction so that better is above 0, over splits and, given
    `eval_vars`, the eval sample (`claims.interval`); whether it is above 0). Fewer than 2 runs with
    a baseline: (NaN, False)."""
    lo = interval(margins, eval_vars)[0]
    return lo, bool(lo > 0)


def _candidates(scores: pd.DataFrame, costs: pd.DataFrame, limits: dict[str, float], names: dict,
                sign: int = 1) -> pd.DataFrame:
    """One row per candidate; `sign` = the metric's direction (+1: higher is better)."""
    rows = []
    for cand, g in scores.groupby("candidate", sort=True):
        c = costs.loc[g["run_id"]]
        figure = {axis: _figure(c[axis], "mean" if axis in MEAN_AXES else "max") for axis in AXES}
        over = [f"{fmt_cost(a, figure[a])} > {fmt_cost(a, lim).split(' ', 1)[0]}" for a, lim in limits.items()
                if figure[a] > lim]
        missing = [f"no {names[a]} recorded" for a in limits if np.isnan(figure[a])]
        margins = sign * (g["score"] - g["baseline"])
        lo, beats = above_chance(margins, g["eval_var"])
        if g["baseline"].isna().all():  # a store without the majority baseline: nothing to check against
            beats = True
        rows.append({"candidate": cand, "model": g["model"].iloc[0], "variant": g["variant"].iloc[0],
                     "mean": g["score"].mean(), "std": g["score"].std(ddof=1), "n": len(g), **figure,
                     "baseline": g["baseline"].mean(), "margin_lo": lo, "margin_lo_old": above_chance(margins)[0],
                     "beats_chance": beats, "eval_time": float(c["eval_time"].max()),
                     "wall_time": _figure(c["wall_time"], "mean"),
                     "fits": not over and not missing, "why_out": "; ".join(over + missing)})
    return pd.DataFrame(rows)


def _figure(values: pd.Series, how: str) -> float:
    """A candidate's figure from its runs' (`how`: mean or max); NaN unless every run has it."""
    return float(getattr(values, how)()) if values.notna().all() else np.nan


def _pairs(scores: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, ...]:
    """Scores of `a` and `b` on their shared splits, and each score's eval-sample variance."""
    def by_split(c):  # several runs of one candidate on a split (a setting outside its label) are averaged
        g = scores[scores["candidate"] == c].groupby(["data_seed", "seed"], dropna=False)
        return {k: (float(v["score"].mean()), float(v["eval_var"].mean()), v["checksum"].iloc[0]) for k, v in g}
    sa, sb = by_split(a), by_split(b)
    keys = [k for k in sorted(set(sa) & set(sb), key=str)
            if pd.isna(sa[k][2]) or pd.isna(sb[k][2]) or sa[k][2] == sb[k][2]]
    cols = np.array([(sa[k][0], sb[k][0], sa[k][1], sb[k][1]) for k in keys], float).reshape(-1, 4).T
    return cols[0], cols[1], cols[2], cols[3]


def cost_key(cands: pd.DataFrame) -> tuple[str, str]:
    """(column, what it is) the cheapest is decided on: CPU time where every candidate has it,
    else the wall time of the mean run (a store written before CPU time was recorded)."""
    if cands["cpu_time"].notna().all():
        return "cpu_time", "CPU time (set-up + training + selection, mean run)"
    return "wall_time", "wall time (no CPU time recorded; mean run, which other load on the machine moves)"


def _cheapest(cands: pd.DataFrame, sign: int = 1) -> str:
    """Least CPU time (`cost_key`), then fewest FLOPs, trainable parameters, memory, then best mean."""
    key = cands[[cost_key(cands)[0], "flops", "trainable_params", "memory", "mean"]].copy()
    key["mean"] = -sign * key["mean"]
    return str(cands.loc[key.fillna(np.inf).sort_values(list(key.columns)).index[0], "candidate"])


def _judge_all(cands: pd.DataFrame, scores: pd.DataFrame, best, others: list, rule: Rule) -> dict:
    """Each other fitting candidate against the best under the one rule; its figures into `cands`."""
    comps = {}
    for i in others:
        comps[i] = compare(*_pairs(scores, cands.loc[best, "candidate"], cands.loc[i, "candidate"]), rule=rule)
    judge(list(comps.values()), rule)
    for i, c in comps.items():
        for col, v in (("pairs", c.n), ("diff", c.diff), ("p", c.p), ("p_holm", c.p_holm),
                       ("p_tost", c.p_tost_holm), ("mdd", c.mdd), ("mdd_floor", c.mdd_floor),
                       ("p_holm_old", c.p_split_holm), ("claim", c.verdict), ("separated", c.separated),
                       ("says", phrase(c, rule)), ("trails", trails(c) if c.verdict == NOT_SEPARATED else "")):
            cands.loc[i, col] = v
        cands.loc[i, "tied"] = c.verdict in (NOT_SEPARATED, EQUIVALENT, TOO_FEW)
    return comps


def _blank(cands: pd.DataFrame) -> pd.DataFrame:
    cands = cands.copy()
    for col in ("p", "p_holm", "p_tost", "mdd", "mdd_floor", "p_holm_old", "diff"):
        cands[col] = np.nan
    cands["pairs"], cands["claim"], cands["says"], cands["trails"] = 0, "", "", ""
    cands["separated"], cands["tied"] = False, False
    return cands.astype({"claim": object, "says": object, "trails": object, "separated": object, "tied": object})


def _answer(task, shots, domain, scores: pd.DataFrame, costs, budget: Budget, names) -> Answer:
    metric, sets = str(scores["metric"].iloc[0]), sorted(set(", ".join(scores["eval_sets"]).split(", ")))
    sign, rule = direction(metric), Rule(margin=budget.margin)
    cands = _blank(_candidates(scores, costs, budget.limits(), names, sign))
    fit = cands[cands["fits"]]
    fit = fit.assign(better=sign * fit["mean"]).sort_values(["better", "cpu_time"], ascending=[False, True])
    a = Answer(task, shots, domain, metric, sets, "no recommendation", "", cands, rule=rule)
    head = wording.head(a)
    if fit.empty:
        return replace(a, sentence=wording.refusal(head, f"none of the {len(cands)} method(s) fits the budget."))
    best = fit.index[0]
    b = cands.loc[best]
    if len(fit) == 1:
        where = "fits the budget" if budget.limits() else "has finished runs here"
        return replace(a, sentence=wording.refusal(
            head, f"only {b['candidate']} {where}, so there is nothing to compare it with."))
    if b["n"] < rule.min_pairs:
        return replace(a, sentence=wording.refusal(
            head, f"{b['candidate']} has {int(b['n'])} run(s); a test needs at least {rule.min_pairs} "
                  "paired splits per method (run more data seeds)."))
    others = list(fit.index[1:])
    comps = _judge_all(cands, scores, best, others, rule)
    a.best = str(b["candidate"])
    a.tied = [str(cands.loc[i, "candidate"]) for i in others if cands.loc[i, "tied"]]
    a.equivalent = [str(cands.loc[i, "candidate"]) for i in others if comps[i].verdict == EQUIVALENT]
    open_ = [i for i in others if comps[i].verdict in (NOT_SEPARATED, TOO_FEW)]
    top = [best] + [i for i in others if comps[i].verdict != SEPARATED]
    real = [i for i in top if cands.loc[i, "beats_chance"]]
    a.cost = cost_key(cands.loc[top])[1]
    if not real:
        a.verdict = "not above chance"
    elif open_:
        a.verdict = "not separated"
    else:
        a.verdict = "equivalent" if a.equivalent else "best"
        a.cheapest = _cheapest(cands.loc[real], sign)
    low = [i for i in top if i not in real]
    a.sentence = wording.sentence(a, head, comps, others, open_, low)
    a.brief = wording.sentence(a, head, comps, others, open_, low, brief=True)
    return a


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
