"""The recommendation as report blocks: one sentence per (task, shots, domain), the budget and the
figures it was checked on, the rule, and a table per answer. `tuneoff recommend` prints these same
blocks, so the terminal and the report say the same thing."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tuneoff.budget import Budget
from tuneoff.metrics import direction
from tuneoff.report.blocks import Bullets, Cell, Table, Text, count, msn, num, pval
from tuneoff.report.recommend import ALPHA, AXES, MIN_PAIRS, TEST, Answer, recommend

RULE = (f"How it is decided: a candidate is a method on a model; its score per run is the task's main metric "
        f"averaged over the eval sets of the domain. It fits the budget when its worst run does. The best is "
        f"the fitting candidate with the highest mean; each other fitting candidate is compared with it on the "
        f"runs that share a few-shot split (same data seeds, same split checksum) by a {TEST}; "
        f"the p-values are Holm-corrected for the number of comparisons (alpha {ALPHA}). Tied = not significantly worse, or fewer than "
        f"{MIN_PAIRS} pairs. The cheapest of the tied set is the one with the least training time, then the "
        "fewest trainable parameters, then the least memory, among those that beat chance: the 95% Student-t "
        "interval over splits of the score minus the majority baseline (always the most frequent label, on the "
        "same eval sets) lies above 0. When neither the best nor any method tied with it beats chance, there is "
        "no recommendation. With few splits almost nothing separates: "
        "that is what the data says, not a tie in the methods.")
MARGIN = {1: "mean score minus the majority baseline",
          -1: "the majority baseline minus the mean score (lower is better)"}
LOWER_RULE = (" For a metric where lower is better the best is the fitting candidate with the lowest mean, "
              "and the margin over the majority baseline is the baseline minus the score.")


def budget_text(budget: Budget, names: dict[str, str]) -> str:
    limits = budget.limits()
    parts = []
    for axis, label in AXES.items():
        lim = f"≤ {limits[axis]:g}" if axis in limits else "no limit"
        parts.append(f"{label} {lim} (recorded as {names[axis]}, worst run)")
    scope = []
    if budget.shots:
        scope.append("shots " + ", ".join(map(str, budget.shots)))
    if budget.domain:
        scope.append("in-domain only" if budget.domain == "in" else "out-of-domain only")
    return "Budget: " + "; ".join(parts) + "." + (f" For: {'; '.join(scope)}." if scope else "")


def _status(row, a: Answer) -> str:
    if not row["fits"]:
        return "over: " + row["why_out"]
    cheap = ", cheapest" if row["candidate"] == a.cheapest and a.tied else ""
    chance = ", not above chance" if not row["beats_chance"] else ""
    if row["candidate"] == a.best:
        return "best" + cheap + chance
    if not a.best:
        return "–"
    if np.isnan(row["p_holm"]):
        return "tied (too few pairs)" + cheap + chance
    return ("tied" + cheap + chance) if row["tied"] else "worse" + chance


def _margin(row, sign: int) -> str:
    """The mean margin over the majority baseline (better is above 0) and its 95% lower end."""
    if not np.isfinite(row["baseline"]):
        return "–"
    d = sign * (row["mean"] - row["baseline"])
    return f"{d:+.3f} ({row['margin_lo']:+.3f})" if np.isfinite(row["margin_lo"]) else f"{d:+.3f}"


def answer_table(a: Answer) -> Table:
    sign = direction(a.metric)
    c = a.candidates.assign(better=sign * a.candidates["mean"])
    c = c.sort_values(["fits", "better"], ascending=[False, False])
    margin = "− majority (95% low)" if sign > 0 else "majority − (95% low)"
    header = ["method · model", f"{a.metric} ± std (n)", margin, "train s", "memory MB", "trainable",
              "pairs", "p", "p Holm", "verdict"]
    rows = []
    for _, r in c.iterrows():
        status = _status(r, a)
        rows.append([Cell(r["candidate"], bold=r["candidate"] in (a.best, a.cheapest)),
                     Cell(msn(r["mean"], r["std"], r["n"])), Cell(_margin(r, sign)), Cell(num(r["train_time"], 1)),
                     Cell(num(r["memory"], 0)), Cell(count(r["trainable_params"])), Cell(str(int(r["pairs"])) if r["pairs"] else "–"),
                     Cell(pval(r["p"])), Cell(pval(r["p_holm"])),
                     Cell(status, cls="yes" if status.startswith("best") else "")])
    where = "in-domain" if a.domain == "in" else "out-of-domain"
    return Table(header, rows, title=f"{a.task} · {a.shots} shots · {where} ({', '.join(a.eval_sets)}): {a.verdict}",
                 note=f"{margin.split(' (')[0]}: {MARGIN[sign]}, in brackets the lower end of its 95% "
                      "interval over splits (not above chance: that end is not above 0); p: paired t-test against "
                      "the best; p Holm: Holm-adjusted over this table's comparisons; costs are each method's worst run; cheapest: "
                      "of the best and those tied with it that beat chance.")


def recommendation_blocks(frame: pd.DataFrame, budget: Budget | None = None) -> tuple[list, list[Answer]]:
    """(blocks, answers) for a frame of runs and a budget."""
    budget = budget or Budget()
    answers, names = recommend(frame, budget)
    if not answers:
        return [Text("No recommendation: no finished runs match the budget's shots and domain.")], answers
    blocks: list = [Text(budget_text(budget, names)), Bullets([a.sentence for a in answers])]
    notes = list(dict.fromkeys(n for a in answers for n in a.notes))  # each domain's answer names the same
    if notes:
        blocks.append(Bullets(notes, kind="warn"))
    blocks.append(Text(RULE + (LOWER_RULE if any(direction(a.metric) < 0 for a in answers) else "")))
    blocks += [answer_table(a) for a in answers]
    return blocks, answers
