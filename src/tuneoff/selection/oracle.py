"""A diagnostic, never a result: what a protocol that peeks at the eval sets would report.

After the choice is made and the chosen run evaluated, every other candidate of the search space
is trained on the whole few-shot set and scored on the eval sets too. The oracle score of an eval
set is the best candidate's score there; its distance to the selected run's score is how much
choosing on the eval set would flatter the method. Its cost (a full run per candidate) is recorded
apart and is not part of the method's cost.
"""
from __future__ import annotations

from tuneoff.config import RunConfig
from tuneoff.resources import Timer


def _main(metrics: dict, metric: str) -> dict[str, float]:
    return {name: m["overall"][metric] for name, m in metrics.items()}


def oracle(cfg: RunConfig, sel, chosen_metrics: dict, progress=None) -> dict:
    """Every candidate's eval-set scores (the chosen one's are the run's own), and the best per set."""
    from tuneoff import runner
    from tuneoff.train import TrainingDiverged, train

    metric = sel.record["metric"]
    rows, time_s = [], 0.0
    for row in sel.record["candidates"]:
        values = row["values"]
        if values == sel.chosen:
            rows.append({"values": values, "label": row["label"], "chosen": True,
                         "scores": _main(chosen_metrics, metric), "error": None})
            continue
        with Timer() as t:
            prep = runner.prepare(cfg.candidate(values))
            entry = {"values": values, "label": row["label"], "chosen": False, "error": None}
            try:
                if prep.method.trains:
                    acc = runner.accelerator_for(prep.device)
                    train(prep.method, prep.method.train_examples(prep.few), prep.cfg.train, cfg.seed, acc)
                    runner.release(acc)
                metrics, _ = runner.evaluate_all(prep, progress)
                entry["scores"] = _main(metrics, metric)
            except TrainingDiverged as e:
                entry.update(scores={}, error=str(e))
            del prep
        time_s += t.seconds
        rows.append(entry)
    best = {}
    for name, score in _main(chosen_metrics, metric).items():
        top = max((r for r in rows if name in r["scores"]), key=lambda r: r["scores"][name])
        best[name] = {"score": top["scores"][name], "label": top["label"], "selected_score": score,
                      "gap": top["scores"][name] - score}
    return {"note": "diagnostic: chosen on the eval sets, which selection never sees; not a result",
            "metric": metric, "candidates": rows, "best": best, "cost": {"time_s": round(time_s, 3),
                                                                         "runs": len(rows) - 1}}
