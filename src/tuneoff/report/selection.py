"""The report's hyperparameter-selection section: what each method chose per shot count, what the
choice cost, and (where it was asked for) the oracle diagnostic that peeks at the eval sets."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from tuneoff.record import Record, Resources, load
from tuneoff.report.blocks import Bullets, Cell, Figure, Table, Text, msn, num, slug
from tuneoff.report.edges import (GRID, LENGTH, OPTUNA, Edge, count_sentence, edges, epochs, flags, kind, made,
                                  reference, search_text, trials_text)
from tuneoff.report.frame import method_labels
from tuneoff.report.runflags import NO_CHANCE, above_chance, chance_level, of_runs
from tuneoff.report.search_plots import length_curves, lr_curves

PROTOCOL = ("Hyperparameters chosen from the few-shot labels alone, the same way for every method: each "
            "candidate of the method's search space is trained on the training part of each fold of a "
            "stratified k-fold split of the few-shot set (cv) or on the whole set and scored on a separate "
            "few-shot dev split (dev); the best mean held-out score wins, and the chosen values are trained "
            "on the whole few-shot set and evaluated once. frugal: chosen on the reference split and reused "
            "for the other splits of the same task, model, method and shots. The selection's cost is "
            "included in the leaderboard's and the cost plot's time. The search is a grid (every combination of "
            "listed values, at the configured training length) or optuna (a range per key searched by Optuna with "
            "the same number of trials for every method, the training length searched as a fidelity: a trial is "
            "scored at each rung of its length and a poor one is stopped early (pruned); a range whose choice sits "
            "on its edge is extended and searched again, up to its limits).")

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


def _chance(recs: list[Record]) -> list[str]:
    """The selections of these runs that found no candidate above chance on their folds, in words."""
    low = [r for r in recs if above_chance(r) is False]
    if not low:
        return []
    levels = sorted({round(v, 3) for v in map(chance_level, low) if v is not None})
    metric = low[0].selection.metric or "score"
    at = f" ({metric} {'/'.join(f'{v:.3f}' for v in levels)})" if levels else ""
    part = "" if len(low) == len(recs) else f" ({of_runs(len(low), len(recs))})"
    return [f"{NO_CHANCE}{part}: every candidate's mean held-out {metric} was at or below the majority "
            f"baseline's on the same folds{at}; the choice is the best of settings that showed nothing learnt"]


def _chosen_cell(recs: list[Record]) -> Cell:
    k = sum(above_chance(r) is False for r in recs)
    note = "" if not k else f" — {NO_CHANCE}" + ("" if k == len(recs) else f" ({of_runs(k, len(recs))})")
    return Cell(_chosen_text(recs) + note, cls="below" if k else "")


def _advice(e: Edge) -> str:
    """What a reader can do about a choice on an edge."""
    if e.searched == GRID:
        return f"widen it (e.g. select.{e.key}=[...])"
    if e.key == LENGTH and e.untried is not None:
        return (f"try the longer lengths themselves: select.length={{low: {e.value:g}, high: "
                f"{e.untried:g}}} (every trial then trains at least that long), or select.pruner=none")
    if e.key == LENGTH:
        return ("allow a longer length (select.length's limit)" if e.at_limit and e.side == "high" else
                "start the length lower (select.length's low)" if e.side == "low" else
                "allow more extensions (select.extensions)")
    if e.at_limit:
        return f"widen its limits (select.{e.key}: {{low, high, limits: [...]}})"
    return f"allow more extensions (select.extensions) or widen it (select.{e.key}: {{low, high}})"


def _edge_text(e: Edge) -> str:
    if e.searched == GRID:
        return f"{e.key}={e.value_text()} is the {'smallest' if e.side == 'low' else 'largest'} candidate"
    if e.key == LENGTH:
        return (f"the training length {e.value_text()} is its {'first' if e.side == 'low' else 'last'} rung"
                + (f", and the longer lengths the edge rule offered (to {epochs(e.untried)}) were not tried: "
                   "every trial of the extension was pruned before" if e.untried is not None else ""))
    return (f"{e.key}={e.value_text()} is at the {e.side} edge of its range" +
            (", at its limit" if e.at_limit else ", after every extension the search was allowed"))


def _edges(recs: list[Record]) -> list[str]:
    """Choices on an edge of what was searched, in words (with what to do): the best may lie beyond."""
    return list(dict.fromkeys(f"{_edge_text(e)}: the best value may lie beyond the search space; {_advice(e)}"
                              for r in made(recs) for e in edges(r.selection)))


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
    rows, warn = [], []
    for (task, model, label, shots), recs in sorted(groups.items(), key=_order):
        warn += [f"{task}/{model}: {label} at {shots} shots: {e}" for e in _edges(recs)]
        warn += [f"{task}/{model}: {label} at {shots} shots: {e}" for e in _chance(recs)]
        rows.append(_row(task, model, label, shots, recs))
    blocks = [Text(PROTOCOL), Table(
        ["task", "model", "method", "shots", "protocol", "chosen (splits)", "on edge", "search", "candidates",
         "fits", "selection time s", "train time s", "labels used"], rows, title="Chosen hyperparameters and their cost",
        note="on edge: a chosen value at an end of what was searched (key, side; limit: the search could not "
             "extend it further; (n/m): on n of the m selections made). candidates: a grid's candidates, or the "
             "optuna search's trials (pruned: stopped at an early rung of the training length) and its rounds. "
             "selection and train time: mean per run over its splits; frugal runs share one selection, and each "
             "counts its whole cost (what adapting to one new task costs). labels used: the run's few-shot set plus "
             "those the choice was made on (a frugal run at another split also used the reference split's)")]
    sentence = count_sentence([r.selection for recs in groups.values() for r in made(recs)])
    if sentence:
        blocks.append(Text(sentence[0].upper() + sentence[1:]))
    if warn:
        blocks.append(Bullets(warn, kind="warn"))
    blocks += response_blocks(groups)
    blocks += _oracle_blocks(groups)
    return blocks


def _row(task, model, label, shots, recs: list[Record]) -> list[Cell]:
    s0 = (made(recs) or recs)[0].selection
    res = [r.resources or Resources() for r in recs]
    sel_t = float(np.mean([x.selection_time_s or 0.0 for x in res]))
    train_t = float(np.mean([x.train_time_s or 0.0 for x in res]))
    if kind(s0) == OPTUNA:
        tried = trials_text(s0)
    else:
        candidates = s0.candidates or []
        diverged = sum(bool(c.diverged) for c in candidates)
        tried = f"{len(candidates)}" + (f" ({diverged} diverged)" if diverged else "")
    fits = res[0].selection_fits
    return [Cell(str(task)), Cell(str(model)), Cell(str(label)), Cell(str(shots)),
            Cell(f"{s0.protocol}/{s0.budget}" + (f", {s0.folds} folds" if s0.folds else "")),
            _chosen_cell(recs), Cell(flags(recs), cls="below" if flags(recs) else ""), Cell(search_text(s0)),
            Cell(tried), Cell("" if fits is None else str(fits)), Cell(num(sel_t, 1)), Cell(num(train_t, 1)),
            Cell(_labels_used(recs))]


def response_blocks(groups: dict) -> list:
    """The response curves per task and model: score against the learning rate for every method
    (grid candidates, optuna trials at each rung), and against the training length (optuna)."""
    per: dict[tuple, dict] = defaultdict(lambda: defaultdict(dict))
    for (task, model, label, shots), recs in sorted(groups.items(), key=_order):
        ref = reference(recs)
        if ref is not None:
            per[(str(task), str(model))][str(label)][int(shots or 0)] = ref.selection
    blocks = []
    for (task, model), methods in per.items():
        sels = [sel for cells in methods.values() for sel in cells.values()]
        metric = next((s.metric for s in sels if s.metric), "score")
        png, _ = lr_curves(list(methods.items()), metric)
        if png is not None:
            blocks.append(Figure(slug("search_lr", task, model), png, (
                f"{task} · {model}: what the selection saw, on the reference split: held-out {metric} (mean over "
                "folds) against the learning rate (log), a panel per method, a colour per shot count. A grid's "
                "candidates are joined by a line; an optuna trial is a dot at each rung of its training length "
                "(hollow: an earlier rung; dotted lines: the final range). Star = the choice; a red-edged star "
                "and a red title: the choice sits on an edge of what was searched, so the best may lie beyond. "
                "x at the bottom: diverged.")))
        panels = [(f"{label} · {shots} shots", sel) for label, cells in methods.items()
                  for shots, sel in sorted(cells.items()) if kind(sel) == OPTUNA]
        png, _ = length_curves(panels, metric)
        if png is not None:
            blocks.append(Figure(slug("search_length", task, model), png, (
                f"{task} · {model}: optuna trials over the training length, on the reference split: held-out "
                f"{metric} at each rung (log2 epochs), a line per trial coloured by its learning rate; x = pruned "
                "(stopped at that rung); thick = the chosen trial, star = the choice (red-edged, red title: at "
                "the first or last rung, so a length beyond may be better).")))
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
