"""What was run and on what (the protocol), and the warnings a reader must see before the numbers:
failed runs, scores at or below the majority baseline, runs whose predictions collapsed (each run
judged on its own: "1 of 5 runs collapsed"), selections with no candidate above chance on their
folds, comparisons whose methods saw different numbers of labels, splits that do not match their
seeds, several runs of one setting on one split pooled into one cell."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd

from tuneoff.describe import flatten, method_options
from tuneoff.identity import current_layout
from tuneoff.metrics import direction, not_better
from tuneoff.record import Record, Selection, load
from tuneoff.report.blocks import Bullets, Table, Text, cells, num
from tuneoff.report.edges import from_json, space_text
from tuneoff.report.frame import CELL, collapse_counts, done_rows, frame_metric
from tuneoff.report.labels import labels_table, labels_warning
from tuneoff.report.runflags import COLLAPSED, NO_CHANCE, above_chance, collapse_text, of_runs
from tuneoff.report.searched import chosen_texts, shown
from tuneoff.report.tables import frame_table

MAX_LISTED = 12


def _cap(items: list[str]) -> list[str]:
    return items if len(items) <= MAX_LISTED else items[:MAX_LISTED] + [f"… and {len(items) - MAX_LISTED} more"]


def warnings(frame: pd.DataFrame, agg: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    out = []
    n_done, n_failed = int((runs["status"] == "done").sum()), int((runs["status"] == "failed").sum())
    if n_done == 0:
        out.append(f"No run finished ({n_failed} failed, {len(runs) - n_failed} other): there are no "
                   "results to compare. See the failed runs under Protocol.")
        return out
    if n_failed:
        out.append(f"{n_failed} of {len(runs)} runs failed; they are left out of every number and listed "
                   "under Protocol.")
    # no better than the majority baseline (at or below it; at or above it where lower is better)
    below, lower = [], False
    for (task, model), a in agg.groupby(["task", "model"]):
        m = frame_metric(frame, task)
        main = a[(a["metric"] == m) & (a["subset"] == "overall")]
        maj = a[(a["metric"] == m) & (a["subset"] == "majority")].groupby("eval_set")["mean"].mean()
        for _, r in main.iterrows():
            if r["eval_set"] in maj.index and not_better(m, r["mean"], maj[r["eval_set"]]):
                lower |= direction(m) < 0
                below.append(f"{task}/{model}: {r['variant']} at {int(r['shots'])} shots on {r['eval_set']}: "
                             f"{m} {num(r['mean'])} vs majority {num(maj[r['eval_set']])}"
                             + (" (lower is better)" if direction(m) < 0 else ""))
    if below:
        out.append(("No better than" if lower else "At or below") + " the majority baseline (no better than "
                   "always predicting the most frequent label): " + "; ".join(_cap(below)))
    out += _collapse_warning(frame) + _chance_warning(runs) + _edge_warning(runs) + labels_warning(runs)
    # splits
    d = runs[(runs["status"] == "done") & runs["split_checksum"].notna()]
    if len(d):
        k = d.groupby(["task", "shots", "data_seed"])["split_checksum"].nunique()
        bad = [f"{t} {int(s)} shots data_seed {ds}" for (t, s, ds), n in k.items() if n > 1]
        if bad:
            out.append("The same (task, shots, data_seed) has different split checksums across runs, so "
                       "methods did not see the same examples: " + "; ".join(_cap(bad)))
        k = d.groupby(["task", "shots", "split_checksum"])["data_seed"].nunique()
        same = [f"{t} {int(s)} shots ({ck})" for (t, s, ck), n in k.items() if n > 1]
        if same:
            out.append("Different data seeds drew the identical split (same checksum), so the seeds are not "
                       "independent: " + "; ".join(_cap(same)))
    dup = d.groupby(["task", "model", "variant", "shots", "data_seed", "seed"]).size()
    dup = [f"{t}/{mo}: {v} at {int(s)} shots, data_seed {ds}, seed {sd} ({n} runs)"
           for (t, mo, v, s, ds, sd), n in dup.items() if n > 1]
    if dup:
        out.append("Several runs share a method label and a split (they differ only in what cannot change a "
                   "score, e.g. forgetting.*, or in the reference split of a frugal selection) and are pooled as if "
                   "they were seeds: " + "; ".join(_cap(dup)))
    if len(agg) and agg["count"].max() <= 1:
        out.append("One run per configuration: no standard deviation (shown as –) and no paired test.")
    return out


def _collapse_warning(frame: pd.DataFrame) -> list[str]:
    c = collapse_counts(frame)
    items = [f"{t}/{mo}: {v} at {int(s)} shots on {es}: {collapse_text(k, n, lab, sh)}"
             for t, mo, v, s, es, n, k, lab, sh in c.itertuples(index=False)]
    return [f"Predictions collapsed onto one label (a run giving one label to ≥{COLLAPSED:.0%} of an eval set, each "
            "run judged on its own; listed under Protocol): " + "; ".join(_cap(items))] if items else []


def no_chance(runs: pd.DataFrame) -> list[tuple]:
    """(task, model, variant, shots, runs whose selection had no candidate above chance, done runs) per
    cell that has one."""
    d = runs[runs["status"] == "done"]
    out = []
    for (t, mo, v, s), g in d.groupby(["task", "model", "variant", "shots"], sort=True, dropna=False):
        k = int(g["selection_above_chance"].eq(False).sum())
        if k:
            out.append((t, mo, v, s, k, len(g)))
    return out


def _chance_warning(runs: pd.DataFrame) -> list[str]:
    items = [f"{t}/{mo}: {v} at {int(s)} shots" + ("" if k == n else f" ({of_runs(k, n)})")
             for t, mo, v, s, k, n in no_chance(runs)]
    return [f"Selection found {NO_CHANCE} (every candidate scored at or below the majority baseline on the "
            "held-out folds: the choice is the best of settings that showed nothing learnt): "
            + "; ".join(_cap(items))] if items else []


EDGE_WARNING = ("Hyperparameters chosen on an edge of what the selection searched, so the best value may lie "
                "beyond it (the Hyperparameter selection section lists each with what to do): ")


def _edge_warning(runs: pd.DataFrame) -> list[str]:
    """The choices on an edge of their search (`report.edges`) per cell, for the warnings: the same
    choices the selection section lists."""
    d = runs[runs["status"] == "done"]
    if "selection_edges" not in d:
        return []
    items = []
    for (t, mo, v, s), g in d.groupby(["task", "model", "variant", "shots"], sort=True, dropna=False):
        counts = Counter(e.flag() for x in g["selection_edges"] for e in from_json(x))
        if counts:
            items.append(f"{t}/{mo}: {v} at {int(s)} shots: " + ", ".join(
                f if k == len(g) else f"{f} ({of_runs(k, len(g))})" for f, k in counts.items()))
    return [EDGE_WARNING + "; ".join(_cap(items))] if items else []


def _join(values) -> str:
    """Distinct values, numbers in numeric order and integers without ".0"."""
    vals = {v for v in values if not pd.isna(v)}
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in vals):
        vals = sorted(vals)
        out = [str(int(v)) if float(v).is_integer() else f"{v:g}" for v in vals]
    else:
        out = sorted(str(v) for v in vals)
    return ", ".join(out) if out else "–"


def protocol_blocks(frame: pd.DataFrame, runs: pd.DataFrame, records: list[Record | dict]) -> list:
    records = [load(r) for r in records]
    blocks: list = []
    n_done = int((runs["status"] == "done").sum())
    n_failed = int((runs["status"] == "failed").sum())
    blocks.append(Text(f"{len(runs)} runs: {n_done} done, {n_failed} failed"
                       + (f", {len(runs) - n_done - n_failed} other" if len(runs) - n_done - n_failed else "")
                       + f". Tasks: {_join(runs['task'])}. Models: {_join(runs['model'])}. "
                       f"Shots per class: {_join(runs['shots'])}. Data seeds: {_join(runs['data_seed'])}. "
                       f"Training seeds: {_join(runs['seed'])}."))
    if len(runs):
        per = (runs.groupby(["task", "model", "variant"], dropna=False)["status"].value_counts()
               .unstack(fill_value=0).reset_index())
        blocks.append(frame_table(per, "Runs per method"))
    failed = runs[runs["status"] == "failed"]
    if len(failed):
        blocks.append(frame_table(failed[["run_id", "task", "model", "variant", "shots", "data_seed", "seed",
                                          "error"]], "Failed runs"))
    ev = done_rows(frame)
    ov = ev[ev["subset"] == "overall"]
    if len(ov):
        sizes = ov.groupby(["task", "eval_set", "domain"])["n"].agg(_join).reset_index(name="examples")
        caps = _eval_caps(records)
        sizes["cap (eval.max_examples)"] = sizes["task"].map(lambda t: caps.get(t, "–"))
        blocks.append(frame_table(sizes, "Eval sets", note=(
            "A set larger than its cap is evaluated on a sample of the cap's size, stratified by label and the "
            "set's subset fields (e.g. HANS's heuristic) in proportion, drawn with a fixed seed: the same "
            "examples in every run. A set at or under its cap is used whole.")))
    d = runs[runs["status"] == "done"]
    if len(d):
        sp = (d.groupby(["task", "shots", "data_seed"], dropna=False)
              .agg(split_checksum=("split_checksum", _join), examples=("split_n", _join),
                   train_pool=("train_pool", _join), runs=("run_id", "count")).reset_index())
        blocks.append(frame_table(sp, "Few-shot splits",
                                  note="One checksum per (task, shots, data_seed): every method saw the same examples."))
    blocks += labels_table(runs)
    blocks += _collapsed_runs(frame)
    blocks += _methods(runs, records)
    blocks += _env(records)
    notes = [n for r in records for n in (r.notes or [])]
    if notes:
        counts = pd.Series(notes, dtype=object).value_counts()
        blocks.append(Bullets([f"{n} ({c} runs)" for n, c in counts.items()]))
    return blocks


def _collapsed_runs(frame: pd.DataFrame) -> list:
    """Every run whose predictions collapsed on an eval set, with how many of its cell's runs did."""
    d = done_rows(frame)
    d = d[(d["subset"] == "overall") & d["collapsed"].eq(True)]
    if d.empty:
        return []
    counts = {tuple(r[:5]): (r[6], r[5]) for r in collapse_counts(frame).itertuples(index=False)}
    rows = [cells([r["run_id"], r["task"], r["model"], r["variant"], int(r["shots"]), r["data_seed"], r["seed"],
                   r["eval_set"], f"{r['top_share']:.0%} {r['top_label']}",
                   f"{of_runs(*counts[tuple(r[c] for c in CELL)])} collapsed"]) for _, r in d.iterrows()]
    return [Table(["run", "task", "model", "method", "shots", "data_seed", "seed", "eval set", "predicted",
                   "its cell"], rows, title="Runs whose predictions collapsed onto one label",
                  note=f"A run that gave one label to ≥{COLLAPSED:.0%} of an eval set, each run judged on its own; "
                       "its cell (method, shots, eval set) pools it with the runs beside it, so a mean can hide it.")]


NO_TRAINING = "not used: the method does not train"


def _value(v) -> str:
    """A setting's value as a reader types it: text bare unless it hides whitespace (then quoted
    with its escapes, as in the config), true/false, none, numbers as Python writes them."""
    if isinstance(v, str):
        return v if v and v.isprintable() and v.strip() == v else json.dumps(v)
    if v is None:
        return "none"
    return json.dumps(v) if isinstance(v, (bool, list, dict)) else str(v)


def settings_text(sections: list) -> str:
    """Settings of several runs as "key = value" lines, the values of runs that differ joined
    ("–": none)."""
    keys = sorted({k for s in sections if isinstance(s, dict) for k in s})
    lines = [f"{k} = {', '.join(dict.fromkeys(_value(s[k]) for s in sections if isinstance(s, dict) and k in s))}"
             for k in keys]
    return "\n".join(lines) or "–"


def trains(method: str, records: list[Record]) -> bool:
    """Whether a method trains: as its class says (`Method.trains`); a method this installation
    cannot load, by its runs (a training step recorded)."""
    from tuneoff.registry import get_method

    try:
        return bool(get_method(method).trains)
    except Exception:  # noqa: BLE001 - not registered here, or its module cannot be imported
        return any((r.resources.train_steps or 0) > 0 for r in records if r.resources)


def _methods(runs: pd.DataFrame, records: list[Record]) -> list:
    by_id = {r.run_id: r for r in records}
    rows, prompts = [], []
    for (task, variant), g in runs.groupby(["task", "variant"], sort=True):
        recs = [by_id[i] for i in g["run_id"] if i in by_id]
        texts = chosen_texts(recs)
        opts = settings_text([shown(method_options(r), "method.", texts) for r in recs])
        configs = [current_layout(r.config or {}) for r in recs]  # old records: max_length in train
        max_length = texts.get("max_length") or _join(c.get("max_length") for c in configs)
        train = (settings_text([shown(_fit_settings(c.get("train")), "train.", texts) for c in configs])
                 if trains(str(g["method"].iloc[0]), recs) else NO_TRAINING)
        selection = _join(_selection_text(r.selection) for r in recs)
        k = sum(above_chance(r) is False for r in recs)
        if k:
            selection += f"; {NO_CHANCE}" + ("" if k == len(recs) else f" ({of_runs(k, len(recs))})")
        rows.append([task, variant, opts, max_length, train, selection])
        prompt = next((r.prompt for r in recs if r.prompt), None)
        if prompt:
            prompts.append((f"{task} · {variant}", str(prompt)))
    blocks: list = [Table(["task", "method", "options", "max_length", "training settings (config.train)",
                           "hyperparameter selection"],
                          [cells(r) for r in rows], title="Methods", wrap=(2, 4, 5),
                          note="\"selected: v\": the value the selection chose (several: each with its runs, "
                               "most frequent first); the config's value was not used. stop_epochs none: the "
                               "chosen length was trained whole. Runs whose settings differ: each value, joined. "
                               "A method that does not train uses no training settings.")]
    if prompts:
        blocks.append(Text("An eval example as each templated method saw it (verbatim; icl's demonstrations "
                           "come from the few-shot training set):"))
        for name, p in prompts:
            blocks.append(Text(name))
            blocks.append(Text(p, kind="pre"))
    return blocks


def _fit_settings(train):
    """A run's training settings without how often it kept its state to resume from (`resume_every`:
    no result depends on it, and runs made before it existed lack it)."""
    return {k: v for k, v in train.items() if k != "resume_every"} if isinstance(train, dict) else train


def _eval_caps(records: list[Record]) -> dict[str, str]:
    """task -> the eval.max_examples of its runs ("none" where uncapped)."""
    caps: dict[str, set] = {}
    for r in records:
        if r.status != "done":
            continue
        cap = ((r.config or {}).get("eval") or {}).get("max_examples")
        caps.setdefault(r.task, set()).add("none" if cap is None else cap)
    return {t: _join(v) for t, v in caps.items()}


def _selection_text(sel: Selection | None) -> str:
    """How a run's hyperparameters were chosen, in words: protocol, folds or dev split, budget, space."""
    if sel is None:
        return "off"
    how = {"cv": f"{sel.folds}-fold cross-validation in the few-shot set",
           "dev": "a separate few-shot dev split"}.get(sel.protocol, str(sel.protocol))
    if sel.budget == "frugal":
        how += f"; frugal: chosen on data seed {sel.reference_data_seed}, reused for the other seeds"
    else:
        how += "; chosen per split"
    space = space_text(sel)
    return f"{how}; {space}" if space else how


MEASURED = ("threads.busy_elsewhere",)  # measured as a run starts (the load beside it), not its environment


def _spread(values: list) -> str:
    got = sorted(v for v in values if v is not None)
    return "–" if not got else f"{got[0]:g}" if got[0] == got[-1] else f"{got[0]:g}–{got[-1]:g}"


def _env(records: list[Record]) -> list:
    """One row per library or hardware field, one column per distinct environment (most runs first):
    narrow enough for the page however many libraries a run records. What a run measured as it
    started (the load beside it) sets no column apart: each column gives its range over its runs."""
    envs = [flatten(r.env) for r in records if r.env]  # a nested field (`threads`) dotted: `threads.cores`
    if not envs:
        return [Text("No environment recorded.")]
    keys = list(dict.fromkeys(k for e in envs for k in e))
    fixed = [k for k in keys if k not in MEASURED]
    groups: dict[str, list[dict]] = {}
    for e in envs:
        groups.setdefault(json.dumps([e.get(k) for k in fixed]), []).append(e)
    columns = sorted(groups.values(), key=len, reverse=True)
    rows = [cells([k] + [_spread([e.get(k) for e in col]) if k in MEASURED else
                         "–" if col[0].get(k) is None else col[0][k] for col in columns]) for k in keys]
    header = ["field"] + [f"{len(c)} run{'s' if len(c) != 1 else ''}" for c in columns]
    note = ("threads.busy_elsewhere: the cores other processes kept busy as the run started (its range over "
            "the column's runs); it sets no column apart." if any(k in MEASURED for k in keys) else "")
    return [Table(header, rows, title="Environment (library versions, hardware)",
                  wrap=tuple(range(1, len(header))), note=note)]
