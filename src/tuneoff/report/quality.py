"""Tables across models for one task: the cross-model leaderboard (method × model rows, with model
size and cost), calibration (ECE and Brier per eval set) and forgetting (the change of the LM loss
on general text, the price of adaptation)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tuneoff.calibration import DEFINITION
from tuneoff.report.blocks import Cell, Table, count, msn, num
from tuneoff.metrics import direction, get_metric, prob_metric_names
from tuneoff.report.frame import aggregate, memory_column
from tuneoff.report.tables import col_label, leaderboard


def _by_candidate(df: pd.DataFrame) -> pd.DataFrame:
    """The same rows with `variant` = "method · model", so tables built per model span models."""
    return df.assign(variant=df["variant"] + " · " + df["model"].astype(str))


def cross_model_leaderboard(agg: pd.DataFrame, runs: pd.DataFrame, task: str, metric: str, eval_sets) -> Table:
    """The per-model leaderboard over every model of `task`, plus model size, peak memory and the
    change of the LM loss on general text (each at the largest shot count)."""
    a, r = _by_candidate(agg[agg["task"] == task]), _by_candidate(runs[runs["task"] == task])
    t = leaderboard(a, r, metric, eval_sets, title=f"{task} — every model: {metric}")
    done = r[r["status"] == "done"]
    top = done[done["shots"] == done["shots"].max()]
    size = done.groupby("variant")["params_total"].median()
    mem = top.groupby("variant")[memory_column(top)].mean()
    fg = top.groupby("variant")["lm_loss_delta"].mean()
    shots = int(done["shots"].max()) if len(done) else 0
    t.header += ["model params", f"peak memory MB ({shots} shots)", f"Δ LM loss ({shots} shots)"]
    if t.groups and t.groups[-1][0] == "cost":
        t.groups = t.groups[:-1] + [("cost", t.groups[-1][1] + 3)]
    elif t.groups:
        t.groups = t.groups + [("cost", 3)]
    for row in t.rows:
        v = row[0].text
        if v == "majority baseline":
            row += [Cell(""), Cell(""), Cell("")]
        else:
            row += [Cell(count(size.get(v))), Cell(num(mem.get(v), 0)), Cell(num(fg.get(v), 3))]
    t.note += (" Model params: all parameters of the model; Δ LM loss: change of the loss per token on the "
               "general-text sample (see Forgetting), – where not measurable.")
    return t


def _directions(names) -> str:
    """"lower is better" when it holds for every metric of `names`, else which way each one is."""
    ways = {n: "higher" if direction(n) > 0 else "lower" for n in names}
    if len(set(ways.values())) == 1:
        return f"{next(iter(ways.values()))} is better"
    return ", ".join(f"{get_metric(n).heading}: {w} is better" for n, w in ways.items())


def calibration_table(frame: pd.DataFrame, task: str, eval_sets) -> Table | None:
    """Every probability metric of the registry (ECE / Brier) per method · model and eval set."""
    names = prob_metric_names()
    f = _by_candidate(frame[frame["task"] == task])
    agg = aggregate(f, metrics=names)
    agg = agg[agg["subset"] == "overall"]
    if agg.empty:
        return None
    first, headings = names[0], " / ".join(get_metric(n).heading for n in names)
    shots = sorted(int(s) for s in agg["shots"].unique())
    cols = [(s, es, dom) for s in shots for es, dom in eval_sets]
    cell = agg.groupby(["variant", "shots", "eval_set", "metric"])[["mean", "std", "count"]].mean()
    means = agg[agg["metric"] == first].groupby("variant")["mean"].mean()
    rows = []
    for v in means.sort_values(ascending=direction(first) < 0).index:  # best first
        row = [Cell(v)]
        for s, es, _ in cols:
            if (v, s, es, first) in cell.index:
                vals = [num(cell.loc[(v, s, es, n), "mean"]) if (v, s, es, n) in cell.index else "–" for n in names]
                row.append(Cell(f"{' / '.join(vals)} ({int(cell.loc[(v, s, es, first), 'count'])})"))
            else:
                row.append(Cell("–"))
        rows.append(row)
    header = ["method · model"] + [col_label(es, dom) for _, es, dom in cols]
    groups = [("", 1)] + [(f"{s} shots per class", len(eval_sets)) for s in shots]
    return Table(header, rows, title=f"{task} — calibration: {headings}", groups=groups,
                 note=f"mean over seeds (runs); {_directions(names)}; rows by mean {get_metric(first).heading}. "
                      + DEFINITION)


def forgetting_table(runs: pd.DataFrame, task: str) -> Table | None:
    r = _by_candidate(runs[(runs["task"] == task) & (runs["status"] == "done")])
    if r.empty or "forgetting_note" not in r or r["forgetting_note"].isna().all():
        return None
    shots = sorted(int(s) for s in r["shots"].dropna().unique())
    rows = []
    for v, g in r.groupby("variant", sort=False):
        notes = sorted({str(n) for n in g["forgetting_note"].dropna()})
        row = [Cell(v), Cell(num(g["lm_loss_before"].mean()))]
        for s in shots:
            d = g[g["shots"] == s]["lm_loss_delta"].dropna()
            row.append(Cell(msn(d.mean(), d.std(ddof=1), len(d)) if len(d) else "n/a" if notes else "–"))
        row.append(Cell("; ".join(notes) or "not recorded"))
        rows.append((g["lm_loss_delta"].mean() if g["lm_loss_delta"].notna().any() else np.inf, row))
    rows.sort(key=lambda x: x[0])
    header = ["method · model", "LM loss before"] + [f"Δ at {s} shots" for s in shots] + ["read through"]
    return Table(header, [row for _, row in rows], title=f"{task} — forgetting: LM loss per token on general text",
                 note="Δ = after − before adaptation, mean ± std over seeds (runs), nats per token; > 0: the "
                      "adapted model models general text worse. Frozen LMs (icl, head) are 0 by construction.")
