"""The report's hyperparameter-selection section: what each method chose per shot count, what the
choice cost, and (where it was asked for) the oracle diagnostic that peeks at the eval sets."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from tuneoff.record import Record, Resources, load
from tuneoff.report.blocks import Bullets, Cell, Table, Text, msn, num
from tuneoff.report.frame import method_labels

PROTOCOL = ("Hyperparameters chosen from the few-shot labels alone, the same way for every method: each "
            "candidate of the method's search space is trained on the training part of each fold of a "
            "stratified k-fold split of the few-shot set (cv) or on the whole set and scored on a separate "
            "few-shot dev split (dev); the best mean held-out score wins, and the chosen values are trained "
            "on the whole few-shot set and evaluated once. frugal: chosen on the reference split and reused "
            "for the other splits of the same task, model, method and shots. The selection's cost is "
            "included in the leaderboard's and the cost plot's time.")

ORACLE = ("Diagnostic, not a result: the oracle is the best candidate chosen on the eval set itself, which "
          "selection never sees. The gap (oracle minus selected, mean over splits) is how much a protocol "
          "that peeks would flatter the method; its cost (a full run per candidate) is not the method's.")


def _key(rec: Record, labels: dict) -> tuple:
    c = rec.config or {}
    return (rec.task, rec.model or c.get("model"), labels.get(rec.run_id, rec.method), rec.shots or c.get("shots"))


def _order(item) -> tuple:
    (task, model, label, shots), _ = item
    return str(task), str(model), str(label), int(shots or 0)


def _chosen_text(recs: list[Record]) -> str:
    counts = Counter(r.selection.chosen_label or "" for r in recs)
    return "; ".join(f"{lab} ({n}/{len(recs)})" if len(counts) > 1 else lab for lab, n in counts.most_common())


def _labels_used(recs: list[Record]) -> str:
    """Labelled examples a run's result depended on (its split, the selection's split(s)): a range
    when they differ, as in a frugal sweep whose other splits reuse the reference split's choice."""
    n = sorted({int(s.labels_used_total if s.labels_used_total is not None else s.labels_used or 0)
                for s in (r.selection for r in recs)})
    return str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"


def _edges(recs: list[Record]) -> list[str]:
    """Chosen numeric values at an end of their candidate list (of 3 or more): the best may lie beyond."""
    out = []
    for r in recs:
        s = r.selection
        for key, value in (s.chosen or {}).items():
            values = (s.space or {}).get(key, [])
            nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(nums) >= 3 and value in (min(nums), max(nums)):
                out.append(f"{key}={value:g} is the {'smallest' if value == min(nums) else 'largest'} candidate")
    return list(dict.fromkeys(out))


def selection_blocks(records: list[Record | dict]) -> list:
    records = [load(r) for r in records]
    done = [r for r in records if r.status == "done" and r.selection is not None]
    if not done:
        return [Text("No run in this folder chose its hyperparameters by selection (select: off): each "
                     "trained at the fixed values of its config.")]
    labels = method_labels(records)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in done:
        groups[_key(r, labels)].append(r)
    rows, edges = [], []
    for (task, model, label, shots), recs in sorted(groups.items(), key=_order):
        s0 = recs[0].selection
        edges += [f"{task}/{model}: {label} at {shots} shots: {e}" for e in _edges(recs)]
        res = [r.resources or Resources() for r in recs]
        sel_t = float(np.mean([x.selection_time_s or 0.0 for x in res]))
        train_t = float(np.mean([x.train_time_s or 0.0 for x in res]))
        candidates = s0.candidates or []
        diverged = sum(bool(c.diverged) for c in candidates)
        fits = res[0].selection_fits
        rows.append([Cell(str(task)), Cell(str(model)), Cell(str(label)), Cell(str(shots)),
                     Cell(f"{s0.protocol}/{s0.budget}" + (f", {s0.folds} folds" if s0.folds else "")),
                     Cell(_chosen_text(recs)),
                     Cell(f"{len(candidates)}" + (f" ({diverged} diverged)" if diverged else "")),
                     Cell("" if fits is None else str(fits)), Cell(num(sel_t, 1)), Cell(num(train_t, 1)),
                     Cell(_labels_used(recs))])
    blocks = [Text(PROTOCOL), Table(
        ["task", "model", "method", "shots", "protocol", "chosen (splits)", "candidates", "fits",
         "selection time s", "train time s", "labels used"], rows, title="Chosen hyperparameters and their cost",
        note="selection and train time: mean per run over its splits; frugal runs share one selection, and each "
             "counts its whole cost (what adapting to one new task costs). labels used: the run's few-shot set plus "
             "those the choice was made on (a frugal run at another split also used the reference split's)")]
    if edges:
        blocks.append(Bullets([f"{e}: the best value may lie beyond the search space; widen it "
                               "(e.g. select.train.lr=[...])" for e in edges], kind="warn"))
    blocks += _oracle_blocks(groups)
    return blocks


def _oracle_blocks(groups: dict) -> list:
    rows = []
    for (task, model, label, shots), recs in sorted(groups.items(), key=_order):
        with_oracle = [r for r in recs if r.oracle]
        if not with_oracle:
            continue
        sets = list(with_oracle[0].oracle.get("best", {}))
        for es in sets:
            best = [r.oracle["best"][es] for r in with_oracle if es in r.oracle.get("best", {})]
            sel = [b["selected_score"] for b in best]
            ora = [b["score"] for b in best]
            cost = float(np.mean([r.oracle["cost"]["time_s"] for r in with_oracle]))
            rows.append([Cell(str(task)), Cell(str(model)), Cell(str(label)), Cell(str(shots)), Cell(str(es)),
                         Cell(msn(np.mean(sel), np.std(sel, ddof=1) if len(sel) > 1 else np.nan, len(sel))),
                         Cell(msn(np.mean(ora), np.std(ora, ddof=1) if len(ora) > 1 else np.nan, len(ora))),
                         Cell(f"{np.mean(ora) - np.mean(sel):+.3f}"), Cell(num(cost, 1))])
    if not rows:
        return []
    return [Text(ORACLE), Table(["task", "model", "method", "shots", "eval set", "selected", "oracle (diagnostic)",
                                 "gap", "oracle cost s"], rows, title="Oracle diagnostic (peeks at the eval sets)")]
