"""The recommendation as report blocks: one sentence per (task, shots, domain), the budget and the
figures it was checked on, the rule, and a table per answer. `tuneoff recommend` prints these same
blocks, so the terminal and the report say the same thing, under the one rule of `report.claims`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tuneoff.budget import Budget
from tuneoff.metrics import direction
from tuneoff.report.blocks import Bullets, Cell, Table, Text, count, msn, num, pval
from tuneoff.report.claims import NOT_SEPARATED, SEPARATED, rule_text
from tuneoff.report.recommend import AXES, Answer, recommend

RULE = ("How it is decided: a candidate is a method on a model; its score per run is the task's main metric "
        "averaged over the eval sets of the domain. It fits the budget when its CPU time and FLOPs (set-up + training "
        "+ selection, the mean run: the leaderboard's and the cost plot's figures) and its peak memory and trainable "
        "parameters (the worst run) are within the limits; wall time, which other load on the machine moves, is "
        "shown beside the CPU time and limits nothing. The best is "
        "the fitting candidate with the highest mean; each other fitting candidate is compared with it under the "
        "rule below, Holm-corrected over those comparisons. The answer is decided when every other fitting "
        "candidate is worse (verdict best) or worse or equivalent (verdict equivalent); then the cheapest of the "
        "best and its equivalents that beats chance is named, by CPU time (set-up + training + selection, the mean "
        "run; other load on the machine moves it far less than wall time), then FLOPs, trainable parameters and "
        "memory. Beating chance: the 95% interval, over splits and the eval sample, of the score minus the "
        "majority baseline (always the most frequent label, on the same eval sets) lies above 0. When a fitting "
        "candidate is not separated from the best there is no winner and no cheapest (verdict not separated): each "
        "such candidate is listed with how far it trails the best and the 95% interval of that difference; "
        "when neither the best nor any candidate not separated from it beats chance, no recommendation. ")
MARGIN = {1: "mean score minus the majority baseline",
          -1: "the majority baseline minus the mean score (lower is better)"}
LOWER_RULE = (" For a metric where lower is better the best is the fitting candidate with the lowest mean, "
              "and the margin over the majority baseline is the baseline minus the score.")


def budget_text(budget: Budget, names: dict[str, str]) -> str:
    limits = budget.limits()
    parts = []
    for axis, label in AXES.items():
        lim = f"≤ {limits[axis]:g}" if axis in limits else "no limit"
        parts.append(f"{label} {lim} (recorded as {names[axis]})")
    scope = []
    if budget.shots:
        scope.append("shots " + ", ".join(map(str, budget.shots)))
    if budget.domain:
        scope.append("in-domain only" if budget.domain == "in" else "out-of-domain only")
    return ("Budget: " + "; ".join(parts) + ". CPU time and FLOPs count set-up + training + selection; wall time "
            f"is shown beside and limits nothing. Equivalence margin ±{budget.margin:g} on the main metric."
            + (f" For: {'; '.join(scope)}." if scope else ""))


def _status(row, a: Answer) -> str:
    if not row["fits"]:
        return "over: " + row["why_out"]
    cheap = ", cheapest" if row["candidate"] == a.cheapest and a.verdict == "equivalent" else ""
    chance = ", not above chance" if not row["beats_chance"] else ""
    if row["candidate"] == a.best:
        return "best" + cheap + chance
    if not a.best:
        return "–"
    if row["claim"] == SEPARATED:
        return "worse" + chance
    if row["claim"] == NOT_SEPARATED:  # how far it trails, never "tied" and never the cheapest
        return f"{row['says'].split(' (')[0]}, {row['trails']}" + chance
    return row["says"] + cheap + chance


def _margin(row, sign: int, key: str = "margin_lo") -> str:
    """The mean margin over the majority baseline (better is above 0) and its 95% lower end."""
    if not np.isfinite(row["baseline"]):
        return "–"
    d = sign * (row["mean"] - row["baseline"])
    return f"{d:+.3f} ({row[key]:+.3f})" if np.isfinite(row[key]) else f"{d:+.3f}"


def flops(x) -> str:
    """1.23e14 -> 1.2e14; "–" where not recorded."""
    return "–" if not np.isfinite(x) else f"{x:.2g}".replace("e+", "e")


def _old(row, sign: int) -> str:
    """The split-only figures of earlier releases: the margin's 95% lower end, p Holm."""
    lo = f"{row['margin_lo_old']:+.3f}" if np.isfinite(row["baseline"]) and np.isfinite(row["margin_lo_old"]) else "–"
    return f"{lo} · {pval(row['p_holm_old'])}"


def answer_table(a: Answer) -> Table:
    sign = direction(a.metric)
    c = a.candidates.assign(better=sign * a.candidates["mean"])
    c = c.sort_values(["fits", "better"], ascending=[False, False])
    margin = "− majority (95% low)" if sign > 0 else "majority − (95% low)"
    header = ["method · model", f"{a.metric} ± std (n)", margin, "CPU s", "wall s", "FLOPs", "MB", "trainable",
              "pairs", "p Holm", "split-only, old", "verdict"]
    rows = []
    for _, r in c.iterrows():
        status = _status(r, a)
        rows.append([Cell(r["candidate"], bold=r["candidate"] in (a.best, a.cheapest)),
                     Cell(msn(r["mean"], r["std"], r["n"])), Cell(_margin(r, sign)), Cell(num(r["cpu_time"], 0)),
                     Cell(num(r["wall_time"], 0)), Cell(flops(r["flops"])), Cell(num(r["memory"], 0)),
                     Cell(count(r["trainable_params"])), Cell(str(int(r["pairs"])) if r["pairs"] else "–"),
                     Cell(pval(r["p_holm"])), Cell(_old(r, sign)),
                     Cell(status, cls="yes" if status.startswith("best") else "")])
    where = "in-domain" if a.domain == "in" else "out-of-domain"
    return Table(header, rows, title=f"{a.task} · {a.shots} shots · {where} ({', '.join(a.eval_sets)}): {a.verdict}",
                 note=f"{margin.split(' (')[0]}: {MARGIN[sign]}, in brackets the lower end of its 95% interval over "
                      "splits and the eval sample (not above chance: that end is not above 0); p Holm: the two-level "
                      "paired t-test against the best, Holm-adjusted over this table's comparisons; split-only, old: "
                      "the 95% lower end · p Holm over splits alone, as earlier releases gave them (they decide "
                      "nothing); CPU s: set-up + training + selection CPU time, mean run, the budget's time figure and "
                      "the cheapest's cost (the leaderboard and the cost plot show the same); wall s: the same parts "
                      "in wall time, mean run, shown beside (other load moves it; it limits nothing); FLOPs: training + "
                      "selection, approximate, mean run; MB (peak memory), trainable: the worst run; trails by: the "
                      "best's mean minus this one's, with the 95% interval of that difference over splits and the "
                      "eval sample (before Holm); cheapest: of the best and those equivalent to it that beat chance.")


def recommendation_blocks(frame: pd.DataFrame, budget: Budget | None = None) -> tuple[list, list[Answer]]:
    """(blocks, answers) for a frame of runs and a budget."""
    budget = budget or Budget()
    answers, names = recommend(frame, budget)
    if not answers:
        return [Text("No recommendation: no finished runs match the budget's shots and domain.")], answers
    blocks: list = [Text(budget_text(budget, names)), Bullets([a.listed for a in answers])]
    notes = list(dict.fromkeys(n for a in answers for n in a.notes))  # each domain's answer names the same
    if notes:
        blocks.append(Bullets(notes, kind="warn"))
    lower = LOWER_RULE if any(direction(a.metric) < 0 for a in answers) else ""
    blocks.append(Text(RULE + rule_text(answers[0].rule) + lower))
    blocks += [answer_table(a) for a in answers]
    return blocks, answers
