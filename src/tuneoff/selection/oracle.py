"""A diagnostic, never a result: what a protocol that peeks at the eval sets would report.

After the choice is made and the chosen run evaluated, every other candidate of the search space
is trained on the whole few-shot set and scored on the eval sets too. The oracle score of an eval
set is the best candidate's score there; its distance to the selected run's score is how much
choosing on the eval set would flatter the method. Its cost (a full run per candidate) is recorded
apart and is not part of the method's cost.
"""
from __future__ import annotations

from tuneoff.config import RunConfig
from tuneoff.pipeline import Toolbox, eval_targets, fit_and_score
from tuneoff.resources import Timer


def _main(metrics: dict, metric: str) -> dict[str, float]:
    return {name: m["overall"][metric] for name, m in metrics.items()}


def _candidate(toolbox: Toolbox, cfg: RunConfig, row: dict, metric: str, progress) -> dict:
    """One other candidate trained on the whole few-shot set and scored on the eval sets."""
    cand = cfg.candidate(row["values"])
    data = toolbox.data(cand)
    got = fit_and_score(toolbox, cand, data, data.few, eval_targets(data), progress=progress)
    entry = {"values": row["values"], "label": row["label"], "chosen": False, "error": None}
    if got.diverged is not None:
        return {**entry, "scores": {}, "error": str(got.diverged)}
    return {**entry, "scores": _main(got.metrics, metric)}


def oracle(cfg: RunConfig, sel, chosen_metrics: dict, progress=None, toolbox: Toolbox | None = None) -> dict:
    """Every candidate's eval-set scores (the chosen one's are the run's own), and the best per set."""
    toolbox = toolbox or Toolbox.shared()
    metric = sel.record["metric"]
    rows, time_s = [], 0.0
    for row in sel.record["candidates"]:
        if row["values"] == sel.chosen:
            rows.append({"values": row["values"], "label": row["label"], "chosen": True,
                         "scores": _main(chosen_metrics, metric), "error": None})
            continue
        with Timer() as t:
            rows.append(_candidate(toolbox, cfg, row, metric, progress))
        time_s += t.seconds
    best = {}
    for name, score in _main(chosen_metrics, metric).items():
        top = max((r for r in rows if name in r["scores"]), key=lambda r: r["scores"][name])
        best[name] = {"score": top["scores"][name], "label": top["label"], "selected_score": score,
                      "gap": top["scores"][name] - score}
    return {"note": "diagnostic: chosen on the eval sets, which selection never sees; not a result",
            "metric": metric, "candidates": rows, "best": best, "cost": {"time_s": round(time_s, 3),
                                                                         "runs": len(rows) - 1}}
