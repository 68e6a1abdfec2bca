"""The report: frame, aggregation, paired tests, HTML/Markdown/CSV output, edge cases.
Synthetic records that follow the schema in tuneoff/record.py; no models."""
from __future__ import annotations

import base64
import importlib.util
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuneoff.report import aggregate, bootstrap_p, method_labels, paired_tests, pareto_front, to_frame, write_report
from tuneoff.report.build import build_sections
from tuneoff.store import Store

XSS = "<script>alert(1)</script>"


def scores(acc, n=100, mcc=None, f1=None):
    return {"n": n, "accuracy": acc, "mcc": acc - 0.5 if mcc is None else mcc, "f1": acc if f1 is None else f1}


def make_record(method="finetune", acc=0.8, ood=0.6, shots=8, data_seed=0, seed=0, task="demo", model="tiny",
                options=None, status="done", error=None, pattern=None, labels=("negative", "positive"),
                label_acc=None, heuristics=(), pred_dist=None, resources=None, prompt="a prompt", env=None,
                checksum=None, majority=0.5):
    """A run record from a few numbers. `ood=None`: no out-of-domain set. `label_acc`: per-label
    accuracy (recall) of every eval set; `heuristics`: names of a HANS-like subset field."""
    options = options or {}
    cfg = {"task": task, "model": model, "method": {"name": method, **options}, "pattern": pattern,
           "shots": shots, "data_seed": data_seed, "seed": seed, "train": {"lr": 1e-5}}
    run_id = f"{task}-{model}-{method}-{sorted(options.items())}-{pattern}-{shots}-{data_seed}-{seed}"
    rec = {"run_id": run_id, "status": status, "error": error, "created_at": "2025-01-01T00:00:00",
           "config": cfg, "task": task, "model": model, "method": method, "shots": shots,
           "data_seed": data_seed, "seed": seed, "pattern": pattern, "method_options": options}
    if status != "done":
        return rec

    def eval_set(a, domain):
        la = label_acc or {lab: a for lab in labels}
        subsets = {f"label={lab}": scores(v, 50) for lab, v in la.items()}
        for h in heuristics:
            subsets[f"heuristic={h}"] = scores(a, 100 // max(len(heuristics), 1))
            for lab, v in la.items():
                subsets[f"heuristic={h}|label={lab}"] = scores(v, 10)
        dist = pred_dist or {lab: 1 / len(labels) for lab in labels}
        return {"domain": domain, "n": 100, "overall": {**scores(a), "pred_dist": dist},
                "majority": {"label": 0, **scores(majority, mcc=0.0)}, "subsets": subsets}

    rec["metrics"] = {"in_domain": eval_set(acc, "in")}
    if ood is not None:
        rec["metrics"]["out_of_domain"] = eval_set(ood, "out")
    rec["split"] = {"ids": [1, 2], "checksum": checksum or f"ck-{task}-{shots}-{data_seed}", "n": 2 * shots,
                    "train_pool": 1000}
    rec["resources"] = {"params_total": 1_000_000, "params_trainable": 1_000_000, "peak_memory_mb": 900.0,
                        "train_time_s": 10.0 * shots, "train_cpu_s": 15.0 * shots, "setup_time_s": 1.0,
                        "setup_cpu_s": 1.5, "eval_time_s": 2.0, "train_steps": 10,
                        "train_examples": 2 * shots, "train_tokens": 1000, "eval_examples": 200,
                        "eval_tokens": 5000, "train_flops_approx": 1e12, "eval_flops_approx": 1e11,
                        **(resources or {})}
    rec["train"] = {"losses": [0.7, 0.5]}
    rec["prompt"] = prompt
    rec["notes"] = []
    rec["env"] = env or {"python": "3.11.9", "torch": "2.4.0", "transformers": "4.46.0", "peft": "0.13.0",
                         "accelerate": "1.0.0", "platform": "Linux", "cpu": "x86_64", "device": "cpu"}
    return rec


SEEDS = [(ds, s) for ds in range(3) for s in range(2)]  # 6 splits per cell


def sweep():
    """A realistic little sweep: 4 method variants x 3 shot sizes x 6 seeds, one failed run."""
    rng = np.random.default_rng(0)
    recs = []
    for shots in (8, 32, 128):
        for ds, s in SEEDS:
            base = 0.55 + 0.05 * np.log2(shots / 8)
            for method, opts, bonus, res in [
                ("finetune", {"lr_head": 1e-3}, 0.0, {}),
                ("lora", {"r": 8}, 0.03, {"params_trainable": 20_000}),
                ("lora", {"r": 16}, 0.04, {"params_trainable": 40_000}),
                ("icl", {}, -0.02, {"params_trainable": 0, "train_time_s": 0.0, "train_cpu_s": 0.0}),
            ]:
                a = float(np.clip(base + bonus + rng.normal(0, 0.02), 0, 1))
                recs.append(make_record(method, acc=a, ood=a - 0.1, shots=shots, data_seed=ds, seed=s,
                                        options=opts, resources=res, prompt=f"Review: {XSS} It was"))
    recs.append(make_record("lora", options={"r": 8}, shots=8, data_seed=9, status="failed",
                            error=f"RuntimeError: CUDA out of memory {XSS}"))
    return recs


def _section(sections, sid):
    return next(s for s in sections if s.id == sid)


def store_with(tmp_path, records):
    st = Store(tmp_path / "results")
    for r in records:
        st.put(r)
    return st.folder


# -- frame ------------------------------------------------------------------------------------------

def test_method_labels_distinguish_differing_options_only():
    recs = [make_record("lora", options={"r": 8, "alpha": 16}), make_record("lora", options={"r": 16, "alpha": 16}),
            make_record("finetune", options={"lr_head": 1e-3}, seed=1),
            make_record("finetune", options={"lr_head": 1e-3}, seed=2)]
    labels = method_labels(recs)
    assert sorted(labels.values()) == ["finetune", "finetune", "lora(r=16)", "lora(r=8)"]
    two = method_labels([make_record("lora", options={"r": 8, "alpha": 16}),
                         make_record("lora", options={"r": 16, "alpha": 32})])
    assert sorted(two.values()) == ["lora(alpha=16, r=8)", "lora(alpha=32, r=16)"]
    frame = to_frame(recs)
    assert set(frame["method_label"]) == {"finetune", "lora(r=8)", "lora(r=16)"}


def test_frame_one_row_per_run_eval_set_subset_and_failed_runs_kept():
    ok = make_record(heuristics=("lexical_overlap", "subsequence"))
    bad = make_record(status="failed", error="ValueError: boom", seed=7)
    frame = to_frame([ok, bad])
    # per eval set: overall + majority + 2 labels + 2 heuristics x (1 + 2 labels)
    assert len(frame[frame["run_id"] == ok["run_id"]]) == 2 * (2 + 2 + 2 * 3)
    failed = frame[frame["status"] == "failed"]
    assert len(failed) == 1 and failed["error"].iloc[0] == "ValueError: boom"
    assert failed[["accuracy", "mcc", "f1"]].isna().all(axis=None)
    row = frame[(frame["run_id"] == ok["run_id"]) & (frame["subset"] == "heuristic=subsequence|label=positive")]
    assert row["accuracy"].iloc[0] == pytest.approx(0.8) and row["n"].iloc[0] == 10
    for col in ("params_trainable", "peak_memory_mb", "train_time_s", "train_cpu_s", "method_cpu_s",
                "split_checksum", "method_options", "domain"):
        assert col in frame.columns
    assert frame.loc[frame["run_id"] == ok["run_id"], "method_cpu_s"].iloc[0] == pytest.approx(1.5 + 15.0 * 8)


def test_main_metric_from_task_config():
    frame = to_frame([make_record(task="cola"), make_record(task="sst2")])
    assert dict(zip(frame["task"], frame["main_metric"])) == {"cola": "mcc", "sst2": "accuracy"}


# -- aggregation ------------------------------------------------------------------------------------

def test_aggregate_mean_std_count_by_hand():
    recs = [make_record(acc=a, data_seed=ds, seed=s) for a, (ds, s) in zip([0.6, 0.7, 0.8], [(0, 0), (0, 1), (1, 0)])]
    recs.append(make_record("icl", acc=0.9))
    agg = aggregate(to_frame(recs))
    key = (agg["subset"] == "overall") & (agg["eval_set"] == "in_domain") & (agg["metric"] == "accuracy")
    ft = agg[key & (agg["method_label"] == "finetune")].iloc[0]
    assert ft["mean"] == pytest.approx(0.7)
    assert ft["std"] == pytest.approx(0.1)  # sqrt(((-.1)^2 + 0 + .1^2) / (3 - 1))
    assert ft["count"] == 3
    icl = agg[key & (agg["method_label"] == "icl")].iloc[0]
    assert icl["count"] == 1 and np.isnan(icl["std"])
    mcc = agg[(agg["subset"] == "overall") & (agg["eval_set"] == "out_of_domain") & (agg["metric"] == "mcc")
              & (agg["method_label"] == "finetune")].iloc[0]
    assert mcc["mean"] == pytest.approx(0.1)  # ood acc 0.6 -> mcc 0.1 in every run


# -- paired tests -----------------------------------------------------------------------------------

def _pair_records(diffs, base=(0.60, 0.62, 0.58, 0.65, 0.61, 0.59, 0.63, 0.64), **kw):
    recs = []
    for i, d in enumerate(diffs):
        recs.append(make_record("finetune", acc=base[i], ood=None, data_seed=i, **kw))
        recs.append(make_record("lora", acc=base[i] + d, ood=None, data_seed=i, **kw))
    return recs


def eval_n(recs, n):
    """The records with eval sets of `n` examples (their overall scores unchanged)."""
    for r in recs:
        for m in (r.get("metrics") or {}).values():
            m["n"] = m["overall"]["n"] = n
    return recs


def test_paired_tests_match_scipy_and_mean_difference():
    diffs = [0.05, -0.01, 0.03, 0.02, 0.04, -0.02, 0.06]
    t = paired_tests(to_frame(_pair_records(diffs)), "accuracy")
    assert len(t) == 1
    r = t.iloc[0]
    assert r["method_a"] == "lora" and r["n_pairs"] == 7
    assert r["mean_diff"] == pytest.approx(np.mean(diffs))
    assert r["p_wilcoxon"] == pytest.approx(stats.wilcoxon(np.array(diffs)).pvalue)
    # the bootstrap, by hand: resample pairs, centre on the observed mean, count as extreme
    d = np.array(diffs)
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, len(d), size=(10_000, len(d)))].mean(axis=1)
    p = ((np.abs(means - d.mean()) >= abs(d.mean()) - 1e-12).sum() + 1) / 10_001
    assert r["p_bootstrap"] == pytest.approx(p)
    assert r["p_ttest"] == pytest.approx(stats.ttest_rel(np.array(base := (0.60, 0.62, 0.58, 0.65, 0.61, 0.59, 0.63))
                                                         + np.array(diffs), base).pvalue)
    assert r["p_ttest_holm"] == pytest.approx(r["p_ttest"])  # one comparison in the cell
    assert r["significant"] == (p < 0.05 and r["p_ttest"] < 0.05)


def test_five_seeds_can_show_a_difference_and_holm_counts_the_cell():
    """With 5 pairs the Wilcoxon test cannot reach 0.05 (its smallest p is 0.0625), so the claim rests
    on the paired t-test, Holm-adjusted over the cell's comparisons, and the bootstrap. Eval sets of
    100,000 examples: the eval sample's own noise is negligible (`test_claims_stats` covers it)."""
    recs = []
    for i, (base, d) in enumerate(zip((0.60, 0.62, 0.58, 0.65, 0.61), (0.10, 0.12, 0.09, 0.11, 0.13))):
        recs.append(make_record("finetune", acc=base, ood=None, data_seed=i))
        recs.append(make_record("lora", acc=base + d, ood=None, data_seed=i))
        recs.append(make_record("head", acc=base + 0.01 * (-1) ** i, ood=None, data_seed=i))
    small = paired_tests(to_frame(recs), "accuracy").set_index(["method_a", "method_b"])  # 100 examples
    assert bool(small.loc[("lora", "finetune"), "significant_old"]) and not small.loc[("lora", "finetune"), "significant"]
    t = paired_tests(to_frame(eval_n(recs, 100_000)), "accuracy").set_index(["method_a", "method_b"])
    assert len(t) == 3 and (t["n_pairs"] == 5).all()
    lf = t.loc[("lora", "finetune")]
    assert lf["p_wilcoxon"] == pytest.approx(0.0625) and bool(lf["significant"])
    ps = list(t["p_ttest"])
    order = np.argsort(ps)
    expected = np.maximum.accumulate([min(1.0, (3 - k) * ps[i]) for k, i in enumerate(order)])
    assert list(t["p_ttest_holm"].iloc[order]) == pytest.approx(list(expected))
    fh = t.loc[("head", "finetune")] if ("head", "finetune") in t.index else t.loc[("finetune", "head")]
    assert not bool(fh["significant"])  # ±0.01 around zero: no claim


def test_obvious_difference_is_significant_and_none_is_not():
    big = paired_tests(to_frame(eval_n(_pair_records([0.10, 0.12, 0.11, 0.13, 0.09, 0.10, 0.12, 0.11]), 100_000)),
                       "accuracy")
    assert big["p_bootstrap"].iloc[0] < 0.05 and big["p_ttest_holm"].iloc[0] < 0.05
    assert bool(big["significant"].iloc[0])
    same = paired_tests(to_frame(_pair_records([0.0] * 8)), "accuracy").iloc[0]
    assert same["p_bootstrap"] == pytest.approx(1.0)
    assert np.isnan(same["p_wilcoxon"]) and "zero" in same["note"]
    assert not same["significant"]
    assert bootstrap_p([0.1, 0.2, 0.3], seed=3) == bootstrap_p([0.1, 0.2, 0.3], seed=3)


def test_too_few_or_unpaired_runs_never_significant():
    few = paired_tests(to_frame(_pair_records([0.3, 0.3, 0.3])), "accuracy").iloc[0]
    assert few["n_pairs"] == 3 and np.isnan(few["p_wilcoxon"]) and np.isnan(few["p_bootstrap"])
    assert np.isnan(few["p_ttest"]) and np.isnan(few["p_ttest_holm"])
    assert not few["significant"] and few["claim"] == "too few pairs (3 < 5): no test" and few["note"] == ""
    unpaired = [make_record("finetune", acc=0.5, ood=None, data_seed=i) for i in range(6)]
    unpaired += [make_record("lora", acc=0.9, ood=None, data_seed=10 + i) for i in range(6)]
    r = paired_tests(to_frame(unpaired), "accuracy").iloc[0]
    assert r["n_pairs"] == 0 and not r["significant"] and r["claim"] == "no paired runs: no test" and r["note"] == ""


def test_pairs_with_different_split_checksums_are_dropped():
    recs = _pair_records([0.1] * 6)
    recs[1]["split"]["checksum"] = "something-else"  # lora on data_seed 0 saw another split
    r = paired_tests(to_frame(recs), "accuracy").iloc[0]
    assert r["n_pairs"] == 5 and "checksums differ" in r["note"]


def test_pareto_front():
    cost = [1, 2, 3, 4, 10]
    score = [0.5, 0.4, 0.7, 0.7, 0.9]
    assert list(pareto_front(cost, score)) == [0, 2, 4]


# -- the written report ---------------------------------------------------------------------------

def _html_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_write_report_has_every_section_and_escapes(tmp_path):
    recs = sweep()
    folder = store_with(tmp_path, recs)
    paths = write_report(folder)
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == []  # every figure closed
    html = paths["html"].read_text()
    for sid in ("summary", "leaderboard", "learning-curves", "in-vs-out", "cost", "subsets", "paired", "protocol"):
        assert f'<section id="{sid}">' in html
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert {a.split("_")[0] for a, _ in imgs} >= {"curves", "in", "cost"}
    for _, data in imgs:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # both the prompt and the error, escaped
    assert "CUDA out of memory" in html  # the failed run is listed
    assert "http://" not in html and "https://" not in html  # self-contained
    text = _html_text(html)
    assert "lora(r=8)" in text and "lora(r=16)" in text and "majority baseline" in text
    assert "significant" in text and "Wilcoxon" in text
    # leaderboard cells are mean ± std (n); the best per column is bold
    assert re.search(r"<b>0\.\d{3} ± 0\.\d{3} \(6\)</b>", html)
    md = paths["md"].read_text()
    assert "| method |" in md and "lora(r=16)" in md and "<script" not in md
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (paths["md"].parent / png).is_file()


def test_csv_one_row_per_run_eval_set_subset(tmp_path):
    recs = sweep()
    paths = write_report(store_with(tmp_path, recs))
    csv = pd.read_csv(paths["csv"])
    done = [r for r in recs if r["status"] == "done"]
    expected = sum(2 + len(m["subsets"]) for r in done for m in r["metrics"].values()) + 1  # + failed run
    assert len(csv) == expected
    assert csv["run_id"].nunique() == len(recs)
    assert (csv["status"] == "failed").sum() == 1
    if importlib.util.find_spec("pyarrow"):
        assert len(pd.read_parquet(paths["parquet"])) == expected
    else:
        assert "parquet" not in paths


def test_always_entailment_model_is_visible_in_subsets(tmp_path):
    labels = ("entailment", "non-entailment")
    recs = [make_record("icl", task="mnli", labels=labels, acc=0.5, ood=0.5, data_seed=i, heuristics=("lexical_overlap",),
                        label_acc={"entailment": 1.0, "non-entailment": 0.0},
                        pred_dist={"entailment": 1.0, "non-entailment": 0.0}) for i in range(2)]
    sections, _ = build_sections(recs, n_boot=200)
    sub = next(s for s in sections if s.id == "subsets")
    table = sub.blocks[0]
    assert "label=entailment" in table.header and "heuristic=lexical_overlap|label=non-entailment" in table.header
    row = [c.text for c in table.rows[0]]
    assert row[table.header.index("label=entailment")].startswith("1.00")
    assert row[table.header.index("heuristic=lexical_overlap|label=non-entailment")].startswith("0.00")
    assert "entailment 1.00" in row[-1]
    summary = " ".join(" ".join(b.items) for b in _section(sections, "summary").blocks if hasattr(b, "items"))
    assert "collapsed" in summary and "majority baseline" in summary


def test_cola_leaderboard_uses_mcc(tmp_path):
    recs = [make_record(task="cola", acc=0.7, data_seed=i) for i in range(2)]
    sections, _ = build_sections(recs, n_boot=200)
    lb = next(s for s in sections if s.id == "leaderboard")
    assert lb.blocks[0].title.endswith("mcc")
    assert lb.blocks[0].rows[0][1].text.startswith("0.200")  # mcc = acc - 0.5 in make_record


def test_edge_cases_one_shot_one_seed_no_ood_no_subsets_no_training(tmp_path):
    recs = [make_record("finetune", ood=None, labels=()), make_record(
        "icl", ood=None, labels=(), resources={"params_trainable": 0, "train_time_s": 0.0, "train_steps": 0,
                                               "train_cpu_s": 0.0, "setup_cpu_s": 0.0})]
    for r in recs:
        for m in r["metrics"].values():
            m["subsets"] = {}
    paths = write_report(store_with(tmp_path, recs), n_boot=200)
    html = paths["html"].read_text()
    text = _html_text(html)
    assert "± – (1)" in text  # one seed: std cannot be computed
    assert "no out-of-domain eval set" in text
    assert "set-up + training (+ selection) CPU time (s): 0 for icl" in text  # zero cost on a log axis is drawn, with a note
    assert 'alt="cost_' in html and 'alt="curves_' in html
    assert "One run per configuration" in text


def test_all_runs_failed_still_writes_a_report(tmp_path):
    recs = [make_record(status="failed", error=f"OSError: no model {XSS}", seed=i) for i in range(3)]
    paths = write_report(store_with(tmp_path, recs), n_boot=200)
    html = paths["html"].read_text()
    assert "No run finished" in html and "No finished runs" in html
    assert html.count("OSError: no model") == 3 and "<script" not in html.lower()
    assert len(pd.read_csv(paths["csv"])) == 3


def test_write_report_custom_paths(tmp_path):
    folder = store_with(tmp_path, _pair_records([0.1] * 5))
    out = tmp_path / "out"
    paths = write_report(folder, html_path=out / "r.html", md_path=out / "r.md", csv_path=out / "r.csv", n_boot=200)
    assert paths["html"] == out / "r.html" and paths["md"].is_file() and paths["csv"].is_file()
    assert (out / "r_figures").is_dir()
    assert not (folder / "report.html").exists()


def test_variant_adds_pattern_only_when_a_method_used_several():
    recs = [make_record("pet", pattern="gpt3"), make_record("pet", pattern="minimal"), make_record("finetune")]
    frame = to_frame(recs)
    assert set(frame["variant"]) == {"pet [gpt3]", "pet [minimal]", "finetune"}
    assert set(frame["method_label"]) == {"pet", "finetune"}


def test_warnings_for_split_problems_and_pooled_runs():
    recs = [make_record(data_seed=0, checksum="same"), make_record(data_seed=1, checksum="same"),
            make_record("lora", data_seed=0, checksum="other")]
    dup = make_record("lora", data_seed=0, checksum="other")
    dup["run_id"] += "-lr2"  # same method label and split, another train.lr
    recs.append(dup)
    sections, _ = build_sections(recs, n_boot=200)
    warn = " ".join(_section(sections, "summary").blocks[0].items)
    assert "different split checksums" in warn  # data_seed 0: "same" for finetune, "other" for lora
    assert "identical split" in warn  # data_seeds 0 and 1 drew the same examples
    assert "pooled as if they were seeds" in warn


def test_empty_results_folder_still_writes_a_report(tmp_path):
    paths = write_report(store_with(tmp_path, []), n_boot=200)
    html = paths["html"].read_text()
    assert "No runs recorded" in html and '<section id="protocol">' in html
    assert paths["csv"].is_file()


def test_a_method_that_cannot_run_appears_as_na_with_its_reason(tmp_path):
    """bitfit on a model without biases fails every run: its leaderboard row says n/a and why
    (escaped), instead of the method silently missing from the ranking."""
    why = f"MethodError: the model has no bias terms {XSS}"
    recs = [make_record("finetune", data_seed=i) for i in range(2)]
    recs += [make_record("bitfit", data_seed=i, status="failed", error=why + "\ntraceback line") for i in range(2)]
    sections, _ = build_sections(recs, n_boot=200)
    lb = next(s for s in sections if s.id == "leaderboard").blocks[0]
    rows = {r[0].text: [c.text for c in r] for r in lb.rows}
    assert rows["bitfit"][1] == f"n/a: {why}" and set(rows["bitfit"][2:]) == {""}
    assert rows["finetune"][1].startswith("0.80")
    html = write_report(store_with(tmp_path, recs), n_boot=200)["html"].read_text()
    assert "n/a: MethodError: the model has no bias terms" in _html_text(html) and XSS not in html


def test_protocol_states_eval_caps_and_how_hyperparameters_were_chosen():
    """The protocol section says what a reader needs to weigh the numbers: each task's eval cap, and
    per method how its hyperparameters were chosen, with a selected key shown as "selected" rather
    than the config's unused value."""
    sel = {"protocol": "cv", "budget": "frugal", "folds": 2, "reference_data_seed": 0,
           "space": {"train.lr": [1e-05, 0.0001]}, "chosen": {"train.lr": 0.0001}}
    recs = []
    for i in range(2):
        r = make_record("finetune", data_seed=i)
        r["config"]["eval"] = {"max_examples": 600}
        r["selection"] = sel
        recs.append(r)
        r = make_record("head", data_seed=i)
        r["config"]["eval"] = {"max_examples": None}
        recs.append(r)
    for r in recs:
        r["task"] = r["config"]["task"] = "demo" if r["method"] == "finetune" else "other"
    sections, _ = build_sections(recs, n_boot=200)
    blocks = _section(sections, "protocol").blocks
    evals = next(b for b in blocks if getattr(b, "title", "") == "Eval sets")
    cap = evals.header.index("cap (eval.max_examples)")
    caps = {r[0].text: r[cap].text for r in evals.rows}
    assert caps == {"demo": "600", "other": "none"}
    methods = next(b for b in blocks if getattr(b, "title", "") == "Methods")
    rows = {r[1].text: [c.text for c in r] for r in methods.rows}
    assert "lr = selected: 0.0001" in rows["finetune"][4].split("\n") and rows["head"][4] == "lr = 1e-05"
    assert rows["finetune"][5] == ("2-fold cross-validation in the few-shot set; frugal: chosen on data seed 0, "
                                   "reused for the other seeds; train.lr ∈ {1e-05, 0.0001}")
    assert rows["head"][5] == "off"
