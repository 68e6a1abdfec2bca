"""The report reads well: the Methods table as "key = value" lines (escaped in HTML and Markdown),
no training settings for a method that does not train, the warnings naming the selection's edge
choices, a figure for a single shot count that draws no curve, point labels that do not overlap,
and an environment table that fits the page. Synthetic records; no models."""
from __future__ import annotations

import itertools
import re

import matplotlib
import numpy as np
import pytest

from test_report import XSS, make_record, store_with
from test_report_search import grid_selection, runs
from tuneoff.report import plots, write_report
from tuneoff.report.blocks import Bullets, Table, Text
from tuneoff.report.build import build_sections
from tuneoff.report.frame import aggregate, to_frame
from tuneoff.report.protocol import NO_TRAINING, settings_text


def _section(records, sid):
    sections, _ = build_sections(records, n_boot=100)
    return next(s for s in sections if s.id == sid).blocks


def _methods_table(records) -> dict[str, dict[str, str]]:
    t = next(b for b in _section(records, "protocol") if isinstance(b, Table) and b.title == "Methods")
    return {r[1].text: dict(zip(t.header, (c.text for c in r))) for r in t.rows}


def _recs():
    icl = [make_record("icl", options={"k": 2, "separator": "\n\n", "instruction": XSS}, data_seed=d,
                       resources={"params_trainable": 0, "train_steps": 0}) for d in range(3)]
    lora = [make_record("lora", options={"r": 8, "target_modules": None}, data_seed=d) for d in range(3)]
    return icl + lora


# -- the Methods table -----------------------------------------------------------------------------

def test_methods_table_shows_settings_as_lines_and_no_training_for_icl():
    rows = _methods_table(_recs())
    assert rows["lora"]["options"] == "r = 8\ntarget_modules = none"
    assert rows["lora"]["training settings (config.train)"] == "lr = 1e-05"
    assert rows["icl"]["training settings (config.train)"] == NO_TRAINING  # its config's train section is unused
    opts = rows["icl"]["options"].split("\n")
    assert opts == ["instruction = " + XSS, "k = 2", 'separator = "\\n\\n"']  # hidden whitespace shown escaped
    assert not any("{" in v for r in rows.values() for v in r.values())  # no JSON


def test_how_often_a_training_kept_its_state_is_not_a_training_setting():
    """`train.resume_every` changes no result; runs made before it existed lack it. Shown, it made the
    runs' settings look different ("resume_every = 600.0" joined to nothing) where they were not."""
    recs = [make_record("lora", data_seed=d) for d in range(3)]
    for r in recs[1:]:
        r["config"]["train"]["resume_every"] = 600.0
    assert _methods_table(recs)["lora"]["training settings (config.train)"] == "lr = 1e-05"


def test_settings_of_runs_that_differ_are_joined_per_key():
    assert settings_text([{"lr": 1e-5, "epochs": 8}, {"lr": 3e-5, "epochs": 8}, None]) == "epochs = 8\nlr = 1e-05, 3e-05"
    assert settings_text([{}, {}]) == "–"
    assert settings_text([{"calibrate": True, "layers": [1, 2], "name": " x"}]) == \
        'calibrate = true\nlayers = [1, 2]\nname = " x"'


def test_the_methods_cells_keep_their_lines_and_stay_escaped_in_html_and_markdown(tmp_path):
    paths = write_report(store_with(tmp_path, _recs()), n_boot=100)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    methods = html.split("<h3>Methods</h3>")[1].split("</table>")[0]
    assert "r = 8<br>target_modules = none" in methods and "<script>" not in methods
    assert "instruction = &lt;script&gt;alert(1)&lt;/script&gt;<br>k = 2" in methods
    assert re.search(r'<td class="wrap">[^<]*' + re.escape(NO_TRAINING), methods)
    row = next(line for line in md.split("### Methods")[1].splitlines() if line.startswith("| demo | lora |"))
    assert "r = 8<br>target\\_modules = none" in row or "r = 8<br>target_modules = none" in row
    assert "<script>" not in md


# -- the warnings ----------------------------------------------------------------------------------

def test_the_warnings_name_the_choices_on_an_edge_else_say_there_are_none():
    inside = runs("finetune", grid_selection(3e-5, scores=(0.6, 0.9, 0.7)))
    blocks = _section(inside, "summary")
    assert any(isinstance(b, Text) and b.text == "No warnings." for b in blocks)
    edge = runs("finetune", grid_selection(1e-4)) + runs("lora", grid_selection(3e-5, scores=(0.6, 0.9, 0.7)))
    blocks = _section(edge, "summary")
    assert not any(isinstance(b, Text) and b.text == "No warnings." for b in blocks)
    warns = [i for b in blocks if isinstance(b, Bullets) and b.kind == "warn" for i in b.items]
    edges = [w for w in warns if "edge of what the selection searched" in w]
    assert len(edges) == 1 and "demo/tiny: finetune at 8 shots: train.lr high" in edges[0]
    assert "lora" not in edges[0] and "Hyperparameter selection" in edges[0]


# -- learning curves -------------------------------------------------------------------------------

def _agg(shots_per_method: dict[str, tuple[int, ...]]):
    recs = [make_record(m, acc=0.6 + 0.01 * s ** 0.5, shots=s, data_seed=d)
            for m, shots in shots_per_method.items() for s in shots for d in range(3)]
    frame = to_frame(recs)
    return aggregate(frame, ["accuracy"]), [("in_domain", "in"), ("out_of_domain", "out")]


@pytest.fixture
def errorbars(monkeypatch):
    """The points drawn with error bars, per call: (x values)."""
    calls = []
    real = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, x, *a, **k: calls.append(list(np.atleast_1d(x))) or real(self, x, *a, **k))
    return calls


def test_one_shot_count_draws_points_with_error_bars_and_says_why(errorbars):
    agg, sets = _agg({"finetune": (8,), "lora": (8,), "icl": (8,)})
    png, notes = plots.learning_curves(agg, "accuracy", sets, ["finetune", "lora", "icl"])
    assert png.startswith(b"\x89PNG") and len(notes) == 1
    assert "8 examples per class" in notes[0] and "no curve to draw" in notes[0]
    assert sorted(x for call in errorbars for x in call) == [0, 0, 1, 1, 2, 2]  # a method per place, per panel
    blocks = _section([make_record("finetune", data_seed=d) for d in range(3)], "learning-curves")
    assert "the only shot count" in blocks[0].caption and "no curve to draw" in blocks[0].caption


def test_a_method_at_one_shot_count_among_curves_is_a_point_with_its_error_bar(errorbars):
    agg, sets = _agg({"finetune": (8, 32), "icl": (8,)})
    png, notes = plots.learning_curves(agg, "accuracy", sets, ["finetune", "icl"])
    assert png is not None and notes == []
    assert errorbars == [[8.0], [8.0]]  # icl in each panel; finetune a line with its band


# -- point labels ----------------------------------------------------------------------------------

def _boxes(ax):
    from matplotlib.text import Text as MplText

    renderer = ax.figure.canvas.get_renderer()
    return [MplText.get_window_extent(t, renderer) for t in ax.texts if t.get_text()]


def _overlaps(a, b) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_of_crowded_points_never_overlap_each_other_or_a_point(seed):
    fig, ax = plots.plt.subplots(figsize=(4.4, 3.9))
    rng = np.random.default_rng(seed)
    x, y = 10 ** rng.uniform(0.6, 1.4, 14), rng.uniform(0.6, 0.68, 14)
    ax.scatter(x, y)
    ax.set_xscale("log")
    ax.set_xlim(1, 100)
    ax.set_ylim(0.4, 0.95)
    fig.tight_layout()
    names = [f"{m} · smollm2-135m" for m in ("finetune", "prefix-tuning", "prompt-tuning", "lora", "ia3", "bitfit",
                                             "adaptive", "half", "head", "icl", "pattern", "distill", "adapter",
                                             "setfit")]
    plots.place_labels(ax, x, y, names)
    boxes = _boxes(ax)
    assert len(boxes) == len(names)
    assert not [(i, j) for i, j in itertools.combinations(range(len(boxes)), 2) if _overlaps(boxes[i], boxes[j])]
    points = ax.transData.transform(np.column_stack([x, y]))
    assert not [(i, k) for i, b in enumerate(boxes) for k, (px, py) in enumerate(points)
                if b.x0 < px < b.x1 and b.y0 < py < b.y1]  # no label covers a point's centre
    plots.plt.close(fig)


def test_the_cost_and_front_figures_place_their_labels(tmp_path, monkeypatch):
    placed = []
    real = plots.place_labels
    monkeypatch.setattr(plots, "place_labels", lambda ax, xs, ys, texts, **k: placed.append(list(texts))
                        or real(ax, xs, ys, texts, **k))
    from tuneoff.report import decision_plots

    monkeypatch.setattr(decision_plots, "place_labels", plots.place_labels)
    recs = [make_record(m, acc=a + 0.005 * d, shots=s, data_seed=d, resources={"params_trainable": p})
            for m, a, p in (("finetune", 0.8, 10 ** 6), ("lora", 0.79, 10 ** 4), ("head", 0.6, 10 ** 3))
            for s in (8, 32) for d in range(5)]
    write_report(store_with(tmp_path, recs), n_boot=100)
    shots = [sorted(p, key=int) for p in placed if all(t.isdigit() for t in p)]
    assert ["8", "8", "8", "32", "32", "32"] in shots  # the cost figure: each point's shots
    assert any("finetune · tiny" in p for p in placed)  # the front: the best and those not separated from it


# -- the environment -------------------------------------------------------------------------------

def test_the_environment_is_a_column_per_environment_that_wraps(tmp_path):
    long = "Linux-6.18.44-fc-v1045-x86_64-with-glibc2.36-" + "x" * 80
    recs = [make_record("finetune", data_seed=d, env={"python": "3.11.7", "torch": "2.13.0+cpu", "platform": long})
            for d in range(3)] + [make_record("lora", env={"python": "3.12.1", "torch": "2.13.0+cpu", "platform": long})]
    env = next(b for b in _section(recs, "protocol") if isinstance(b, Table) and b.title.startswith("Environment"))
    assert env.header == ["field", "3 runs", "1 run"]
    assert [[c.text for c in r] for r in env.rows] == [["python", "3.11.7", "3.12.1"],
                                                        ["torch", "2.13.0+cpu", "2.13.0+cpu"],
                                                        ["platform", long, long]]
    html = write_report(store_with(tmp_path, recs), n_boot=100)["html"].read_text()
    table = html.split("Environment (library versions, hardware)</h3>")[1].split("</table>")[0]
    assert table.count(f'<td class="wrap">{long}</td>') == 2
    assert "overflow-wrap: anywhere" in html


def test_the_load_a_run_measured_sets_no_environment_apart():
    """Each run records the cores other processes kept busy as it started (`threads.busy_elsewhere`):
    a measurement, not its environment. Runs on one machine with the same libraries are one column,
    with that figure's range; a nested field is a row of its own. (Every run had a column of its own:
    the v2 comparison's 74 runs on two machines made 41.)"""
    def env(busy, platform="linux-a"):
        return {"python": "3.11.7", "platform": platform,
                "threads": {"setting": "auto", "threads": 1, "cores": 2, "busy_elsewhere": busy}}
    recs = [make_record("finetune", data_seed=d, env=env(b)) for d, b in enumerate([0.0, 1.03, 0.5])]
    recs += [make_record("lora", env=env(1.01, "linux-b")), make_record("lora", data_seed=1, env=env(1.01, "linux-b"))]
    table = next(b for b in _section(recs, "protocol") if isinstance(b, Table) and b.title.startswith("Environment"))
    assert table.header == ["field", "3 runs", "2 runs"]
    assert [[c.text for c in r] for r in table.rows] == [
        ["python", "3.11.7", "3.11.7"], ["platform", "linux-a", "linux-b"], ["threads.setting", "auto", "auto"],
        ["threads.threads", "1", "1"], ["threads.cores", "2", "2"], ["threads.busy_elsewhere", "0–1.03", "1.01"]]
    assert "busy_elsewhere" in table.note
