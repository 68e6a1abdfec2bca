"""The report and `recommend` on a selection's search: choices on an edge of what was searched
(flagged, counted, noted), and the response curves of grid and optuna selections. Synthetic
records in the record's layout (`tuneoff.selection.search`); no models."""
from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from test_report import XSS, make_record, store_with
from tuneoff.budget import budget_from
from tuneoff.cli import app
from tuneoff.record import load
from tuneoff.report import edges as E
from tuneoff.report import write_report
from tuneoff.report.answer import recommendation_blocks
from tuneoff.report.blocks import Bullets, Figure, Table, Text
from tuneoff.report.build import build_sections
from tuneoff.report.frame import to_frame
from tuneoff.report.recommend import recommend
from tuneoff.report.search_plots import length_lines, lr_points
from tuneoff.report.terminal import print_blocks

GRID = (1e-5, 3e-5, 1e-4)
LR_RANGE = {"low": 1e-5, "high": 1e-3, "log": True, "limits": [1e-6, 1e-2]}
LENGTH = {"low": 1.0, "high": 9.0, "limit": 81.0, "factor": 3, "unit": "epochs"}
SPLITS = range(6)


def grid_selection(chosen, scores=(0.6, 0.7, 0.8), space=GRID, shared=False, edges=None, key="train.lr"):
    """A grid selection over `space` (its candidates scoring `scores`); `edges`: as written from now
    on (None: an older record, without them)."""
    cands = [{"values": {key: v}, "label": f"{key}={v:g}", "diverged": False, "error": None,
              "fold_scores": [s, s], "fold_losses": [0.5, 0.5], "mean_score": s, "mean_loss": 0.5, "fits_reused": 0}
             for v, s in zip(space, scores)]
    sel = {"protocol": "cv", "budget": "frugal", "metric": "accuracy", "folds": 2, "fold_seed": 0,
           "reference_data_seed": 0, "shared": shared, "space": {key: list(space)}, "candidates": cands,
           "chosen": {key: chosen}, "chosen_label": f"{key}={chosen:g}", "labels_used": 16, "labels_used_total": 16}
    if edges is not None:
        sel["edges"] = edges
    return sel


def optuna_selection(chosen_trial=1, edges=None, shared=False, length=True):
    """An optuna selection: 4 trials over a learning-rate range, trials 2 and 3 pruned at the first rung,
    trial 1 diverging-free and chosen at its last rung."""
    lrs = [2e-5, 9e-4, 1e-4, 3e-5]
    rungs = (1.0, 3.0, 9.0) if length else (None,)
    trials = []
    for i, lr in enumerate(lrs):
        kept = rungs if i < 2 else rungs[:1]
        trials.append({"number": i, "round": 0, "values": {"train.lr": lr}, "horizon": 9.0 if length else None,
                       "state": "complete" if i < 2 else "pruned", "error": None, "reused": False,
                       "rungs": [{"length": r, "fold_scores": [0.5 + i / 10 + j / 20] * 2, "fold_losses": [0.5, 0.5],
                                  "mean_score": 0.5 + i / 10 + j / 20, "mean_loss": 0.5} for j, r in enumerate(kept)]})
    best = trials[chosen_trial]
    last = best["rungs"][-1]
    chosen = {"train.lr": lrs[chosen_trial], **({"train.epochs": 9.0} if length else {})}
    return {"protocol": "cv", "budget": "frugal", "metric": "accuracy", "folds": 2, "reference_data_seed": 0,
            "shared": shared, "search": "optuna", "space": {"train.lr": dict(LR_RANGE)},
            "length": dict(LENGTH) if length else None, "trials": trials, "trials_budget": 4, "sampler": "tpe",
            "pruner": "halving", "repeats": 1, "rounds": [{"round": 0, "trials": 4, "space": {"train.lr": dict(LR_RANGE)},
                                                           "length": dict(LENGTH) if length else None}],
            "extended": [], "edges": edges or {}, "chosen": chosen, "chosen_label": f"train.lr={lrs[chosen_trial]:g}",
            "chosen_trial": chosen_trial, "chosen_length": last["length"],
            "candidates": [{"values": {"train.lr": t["values"]["train.lr"]}, "label": f"trial {t['number']}",
                            "diverged": False, "error": None, "mean_score": t["rungs"][-1]["mean_score"]}
                           for t in trials],
            "labels_used": 16, "labels_used_total": 16}


def runs(method, selection, accs=None, shots=8, **kw):
    """One run per split of a frugal sweep: the first made the choice, the others reuse it."""
    accs = accs if accs is not None else [0.8 + i / 100 for i in SPLITS]
    recs = []
    for i, a in zip(SPLITS, accs):
        r = make_record(method, acc=a, ood=a, shots=shots, data_seed=i, **kw)
        r["selection"] = {**selection, "shared": i != 0}
        recs.append(r)
    return recs


def _selection_blocks(records):
    sections, _ = build_sections(records, n_boot=100)
    return next(s for s in sections if s.id == "selection").blocks


def _table(blocks) -> dict[str, dict[str, str]]:
    t = next(b for b in blocks if isinstance(b, Table) and b.title == "Chosen hyperparameters and their cost")
    return {f"{r[2].text}@{r[3].text}": dict(zip(t.header, (c.text for c in r))) for r in t.rows}


# -- the edge flag ---------------------------------------------------------------------------------

def test_an_edge_choice_is_flagged_and_an_interior_one_is_not():
    recs = runs("finetune", grid_selection(1e-4)) + runs("lora", grid_selection(3e-5, scores=(0.6, 0.9, 0.7)))
    blocks = _selection_blocks(recs)
    rows = _table(blocks)
    assert rows["finetune@8"]["on edge"] == "train.lr high" and rows["lora@8"]["on edge"] == ""
    assert rows["finetune@8"]["search"] == "grid" == rows["lora@8"]["search"]
    texts = [b.text for b in blocks if isinstance(b, Text)]
    assert any(t.startswith("1 of 2 choices sits on an edge of its grid") for t in texts)  # one per cell, not per split
    warn = [i for b in blocks if isinstance(b, Bullets) and b.kind == "warn" for i in b.items]
    assert len(warn) == 1 and "finetune at 8 shots: train.lr=0.0001 is the largest candidate" in warn[0]


def test_old_grid_records_get_their_edges_computed():
    """A grid record written before `edges` was recorded: computed from its space and choice (numeric
    lists of 3 or more); a record that carries `edges` is taken at its word."""
    old = grid_selection(1e-5)
    assert "edges" not in old
    assert [(e.key, e.side, e.value, e.searched) for e in E.edges(old)] == [("train.lr", "low", 1e-5, "grid")]
    assert E.edges(grid_selection(3e-5)) == []
    assert E.edges(grid_selection(8, space=(2, 8), key="method.r")) == []  # two values: no interior to miss
    assert E.choices(grid_selection(8, space=(2, 8), key="method.r")) == []
    calibrate = {**grid_selection(1e-5), "space": {"method.calibrate": [False, True]}, "chosen": {"method.calibrate": True}}
    assert E.edges(calibrate) == [] and E.choices(calibrate) == []
    new = grid_selection(1e-4, edges={"train.lr": {"side": "high", "value": 1e-4, "extendable": False}})
    assert [e.flag() for e in E.edges(new)] == ["train.lr high"]  # a grid is never "at its limit"
    assert E.edges(grid_selection(1e-4, edges={})) == []
    sentence = E.count_sentence([grid_selection(1e-5), grid_selection(3e-5), grid_selection(1e-4)])
    assert sentence.startswith("2 of 3 choices sit on an edge of their grid")
    assert E.count_sentence([calibrate]) is None


def test_optuna_edges_flag_the_limit_and_the_length():
    at_limit = optuna_selection(1, edges={"train.lr": {"side": "high", "value": 9e-4, "extendable": False},
                                          "length": {"side": "high", "value": 9.0, "extendable": True}})
    recs = runs("finetune", at_limit) + runs("lora", optuna_selection(0))
    blocks = _selection_blocks(recs)
    rows = _table(blocks)
    assert rows["finetune@8"]["on edge"] == "train.lr high (limit); length high"
    assert rows["lora@8"]["on edge"] == ""
    assert rows["finetune@8"]["search"] == "optuna (tpe, halving)"
    assert rows["finetune@8"]["candidates"] == "4 trials: 2 pruned"
    texts = [b.text for b in blocks if isinstance(b, Text)]
    assert any(t.startswith("2 of 4 choices sit on an edge of their search space (train.lr: 1 of 2, length: 1 of 2)")
               and "1 of them at a limit of the search" in t for t in texts)
    warn = " ".join(i for b in blocks if isinstance(b, Bullets) and b.kind == "warn" for i in b.items)
    assert "train.lr=0.0009 is at the high edge of its range, at its limit" in warn
    assert "the training length 9 epochs is its last rung" in warn


def test_a_length_extension_that_no_trial_reached_is_not_read_as_a_limit():
    """The edge rule extended the length (9 -> 27 -> 81 epochs) but every trial of the extension was
    pruned before 9: the choice at 9 is flagged as untried beyond, not as at the limit the search
    reached, and the advice is to try the longer lengths themselves."""
    sel = optuna_selection(1, edges={"length": {"side": "high", "value": 9.0, "extendable": False}})
    for high in (27.0, 81.0):
        sel["rounds"].append({"round": len(sel["rounds"]), "trials": 2, "space": {"train.lr": dict(LR_RANGE)},
                              "length": {**LENGTH, "high": high}})
    sel["trials"].append({"number": 4, "round": 1, "values": {"train.lr": 5e-4}, "horizon": 27.0, "state": "pruned",
                          "error": None, "reused": False, "rungs": [{"length": 1.0, "fold_scores": [0.5, 0.5],
                                                                      "fold_losses": [0.7, 0.7], "mean_score": 0.5,
                                                                      "mean_loss": 0.7}]})
    (edge,) = E.edges(sel)
    assert (edge.untried, edge.at_limit, edge.flag()) == (81.0, False, "length high (longer not tried)")
    assert "extended the length to 81 epochs, but every trial of the extension was pruned" in edge.phrase()
    blocks = _selection_blocks(runs("finetune", sel))
    assert _table(blocks)["finetune@8"]["on edge"] == "length high (longer not tried)"
    warn = " ".join(i for b in blocks if isinstance(b, Bullets) and b.kind == "warn" for i in b.items)
    assert "the longer lengths the edge rule offered (to 81 epochs) were not tried" in warn
    assert "select.length={low: 9, high: 81}" in warn
    # a trial of the extension that trained past the choice: the longer length was tried, and lost
    sel["trials"][-1]["rungs"].append({**sel["trials"][-1]["rungs"][0], "length": 27.0})
    assert [(e.untried, e.at_limit, e.flag()) for e in E.edges(sel)] == [(None, True, "length high (limit)")]
    # no extension at all (the length ends where it started): nothing offered, nothing untried
    assert E.edges(optuna_selection(1, edges={"length": {"side": "high", "value": 9.0, "extendable": True}}))[0].untried is None


def test_a_length_chosen_at_the_first_rung_is_the_length_s_low_edge():
    """The search records only the length's high edge (the one it extends); a length chosen at the
    first rung is read from the record as the low edge, at its limit, with the advice to start lower.
    A choice at a later rung is no edge."""
    sel = optuna_selection(1)
    sel["chosen_length"] = sel["length"]["low"]
    (edge,) = E.edges(sel)
    assert (edge.key, edge.side, edge.value, edge.flag()) == ("length", "low", 1.0, "length low (limit)")
    assert "training length was chosen at its shortest rung (1 epochs)" in edge.phrase()
    blocks = _selection_blocks(runs("finetune", sel))
    assert _table(blocks)["finetune@8"]["on edge"] == "length low (limit)"
    warn = " ".join(i for b in blocks if isinstance(b, Bullets) and b.kind == "warn" for i in b.items)
    assert "the training length 1 epochs is its first rung" in warn and "start the length lower" in warn
    assert E.edges(optuna_selection(1)) == []  # chosen at 9 epochs, no edge written: none
    sel["length"]["low"] = sel["chosen_length"] = 1 / 3  # a third of an epoch reads as the rung is named
    assert "at its shortest rung (0.333 epochs)" in E.edges(sel)[0].phrase()
    sel["chosen_length"] = 3.0
    assert E.edges(sel) == []
    assert E.edges(optuna_selection(1, length=False)) == []  # no length searched: no length edge
    # the search's own length edge is taken at its word
    high = optuna_selection(1, edges={"length": {"side": "high", "value": 9.0, "extendable": True}})
    assert [e.flag() for e in E.edges(high)] == ["length high"]


def test_full_budget_counts_each_split_s_choice():
    """Without frugal sharing, every split made its own choice: the flag says on how many."""
    recs = runs("finetune", grid_selection(1e-4))
    for r in recs[3:]:
        r["selection"] = {**grid_selection(3e-5), "budget": "full"}
    for r in recs:
        r["selection"]["shared"] = False
    rows = _table(_selection_blocks(recs))
    assert rows["finetune@8"]["on edge"] == "train.lr high (3/6)"


# -- response curves -------------------------------------------------------------------------------

def test_response_curves_for_grid_and_optuna_records():
    grid_only = _selection_blocks(runs("finetune", grid_selection(1e-4)))
    figs = {b.name: b for b in grid_only if isinstance(b, Figure)}
    assert list(figs) == ["search_lr_demo_tiny"] and figs["search_lr_demo_tiny"].png.startswith(b"\x89PNG")
    both = _selection_blocks(runs("finetune", grid_selection(1e-4)) + runs("lora", optuna_selection(1)))
    figs = {b.name: b for b in both if isinstance(b, Figure)}
    assert set(figs) == {"search_lr_demo_tiny", "search_length_demo_tiny"}
    assert all(f.png.startswith(b"\x89PNG") for f in figs.values())
    assert "pruned" in figs["search_length_demo_tiny"].caption


def test_the_curves_hold_every_trial_at_every_rung_and_the_choice():
    sel = optuna_selection(1)
    p = lr_points(sel)
    assert len(p["points"]) == 3 + 3 + 1 + 1  # two complete trials over 3 rungs, two pruned at the first
    assert sum(final for _, _, final in p["points"]) == 4  # each trial's last rung
    assert p["chosen"] == (9e-4, 0.5 + 0.1 + 0.1) and p["bounds"] == (1e-5, 1e-3)
    lines = length_lines(sel)
    assert [(len(x["xs"]), x["state"], x["chosen"]) for x in lines] == [
        (3, "complete", False), (3, "complete", True), (1, "pruned", False), (1, "pruned", False)]
    g = lr_points(grid_selection(1e-4))
    assert [x for x, _, _ in g["points"]] == list(GRID) and g["chosen"] == (1e-4, 0.8)


def test_the_reference_split_s_selection_is_drawn_once():
    """The other splits of a frugal cell reuse its choice: one selection per cell, the reference split's."""
    recs = runs("finetune", grid_selection(1e-4))
    ref = E.reference([load(r) for r in recs])
    assert ref.data_seed == 0 and not ref.selection.shared


# -- recommend's note ------------------------------------------------------------------------------

def _store(edge: bool):
    top = grid_selection(1e-4 if edge else 3e-5, scores=(0.6, 0.7, 0.8) if edge else (0.6, 0.9, 0.7))
    return (runs("finetune", top, accs=[0.80, 0.82, 0.81, 0.83, 0.80, 0.82], model="lm")
            + runs("lora", grid_selection(3e-5, scores=(0.6, 0.9, 0.7)), accs=[0.70, 0.72, 0.69, 0.71, 0.73, 0.70],
                   model="lm"))


def test_recommend_notes_a_choice_on_an_edge_only():
    answers, _ = recommend(to_frame(_store(edge=True)), budget_from())
    notes = {n for a in answers for n in a.notes}
    assert notes == {"note: finetune · lm's learning rate was chosen at the top of its grid (0.0001) at 8 shots on "
                     "demo: its optimum may lie beyond"}
    answers, _ = recommend(to_frame(_store(edge=False)), budget_from())
    assert all(a.notes == [] for a in answers)
    blocks, _ = recommendation_blocks(to_frame(_store(edge=False)), budget_from())
    assert not [b for b in blocks if isinstance(b, Bullets) and b.kind == "warn"]


def test_the_note_reaches_the_terminal_and_the_report(tmp_path):
    folder = store_with(tmp_path, _store(edge=True))
    out = CliRunner().invoke(app, ["recommend", str(folder)], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    printed = " ".join(out.output.split())
    assert printed.count("note: finetune · lm's learning rate was chosen at the top of its grid") == 1  # both domains
    md = write_report(folder, n_boot=100)["md"].read_text()
    rec = md.split("## Recommendation")[1].split("\n## ")[0]
    assert "note: finetune · lm's learning rate was chosen at the top of its grid (0.0001) at 8 shots" in rec


def test_an_optuna_note_says_the_range_reached_its_limit():
    sel = optuna_selection(1, edges={"train.lr": {"side": "high", "value": 9e-4, "extendable": False}})
    recs = runs("finetune", sel, model="lm") + runs("lora", optuna_selection(0), accs=[0.6 + i / 100 for i in SPLITS],
                                                  model="lm")
    answers, _ = recommend(to_frame(recs), budget_from(domain="in"))
    assert answers[0].notes == ["note: finetune · lm's learning rate was chosen at the top of its range (0.0009), "
                                "which the search could not extend further (its limit) at 8 shots on demo: its "
                                "optimum may lie beyond"]


# -- text from data is escaped ---------------------------------------------------------------------

def test_edge_texts_from_data_are_escaped(tmp_path):
    key = f"method.{XSS}[bold]x[/]"
    recs = runs("finetune", grid_selection(3, space=(1, 2, 3), key=key), model="lm")
    recs += runs("lora", grid_selection(2, space=(1, 2, 3), key=key), accs=[0.6 + i / 100 for i in SPLITS], model="lm")
    paths = write_report(store_with(tmp_path, recs), n_boot=100)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    assert XSS not in html and "&lt;script&gt;" in html and XSS not in md
    assert "is the largest candidate" in md and "on an edge" in html
    blocks, _ = recommendation_blocks(to_frame(recs), budget_from())
    console = Console(file=io.StringIO(), width=400, force_terminal=False)
    print_blocks(console, blocks)
    printed = console.file.getvalue()
    assert f"note: finetune · lm's {key} was chosen at the top of its grid (3)" in printed  # markup shown, not run
