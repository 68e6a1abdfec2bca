"""The method checks as a Markdown table, with the runs of the same split from a second store.

    python benchmarks/method_checks_table.py docs/method-checks docs/cola-mnli-cpu

One row per done run of the first store (benchmarks/method_checks.yaml: each added method once, CoLA,
16 per class, data seed 0), then the runs of the second store on the same task, shots and data seed
(docs/cola-mnli-cpu: the study's methods on that split, same settings) for reference: the model, the
learning rate selection chose, the main metric in-domain and out-of-domain (CoLA: MCC; 0 is chance),
trainable parameters, the training and selection CPU seconds, and the run's peak memory. A run that
failed is listed with its error. One split per method: a check that each method trains and scores on
real data at a stated cost, not a comparison between them.
"""
from __future__ import annotations

import sys

from tuneoff.describe import main_metric, method_name, method_options
from tuneoff.store import open_store

HEAD = ("method", "model", "chosen", "in-domain", "out-of-domain", "trainable", "train CPU s", "selection CPU s",
        "peak MB")


def _fmt(x, spec=".3f") -> str:
    return "–" if x is None else format(x, spec)


def _label(rec) -> str:
    opts = method_options(rec)
    shown = {k: v for k, v in opts.items() if k in ("placement", "type")}
    return method_name(rec) + "".join(f" {k}={v}" for k, v in shown.items())


def _chosen(rec) -> str:
    chosen = (rec.selection.to_dict().get("chosen") or {}) if rec.selection is not None else {}
    return ", ".join(f"{k.removeprefix('train.')} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in chosen.items()) or "–"


def _score(rec, domain: str) -> str:
    metric = main_metric(rec)
    vals = [(m.get("overall") or {}).get(metric) for m in (rec.metrics or {}).values() if m.get("domain") == domain]
    vals = [v for v in vals if v is not None]
    return _fmt(sum(vals) / len(vals)) if vals else "–"


def row(rec) -> list[str]:
    res = rec.resources.to_dict() if rec.resources is not None else {}
    if rec.status != "done":
        return [_label(rec), str(rec.model), "failed: " + (rec.error or "?")[:120], "", "", "", "", "", ""]
    return [_label(rec), str(rec.model), _chosen(rec), _score(rec, "in"), _score(rec, "out"),
            f"{res.get('params_trainable', 0):,}", _fmt(res.get("train_cpu_s"), ".0f"),
            _fmt(res.get("selection_cpu_s"), ".0f"), _fmt(res.get("peak_memory_mb"), ".0f")]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "|".join("---" for _ in HEAD) + "|"]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows])


def main(checks: str, reference: str | None = None) -> None:
    recs = [r for r in open_store(checks, must_exist=True).records() if r.status in ("done", "failed")]
    print(f"{len(recs)} run(s) of {checks}/ ({sum(r.status == 'done' for r in recs)} done)\n")
    print(table([row(r) for r in recs]))
    cells = {(r.task, r.shots, r.data_seed) for r in recs}
    if reference:
        ref = [r for r in open_store(reference, must_exist=True).records(status="done")
               if (r.task, r.shots, r.data_seed) in cells]
        print(f"\nThe same split in {reference}/ ({len(ref)} run(s)):\n")
        print(table([row(r) for r in sorted(ref, key=_label)]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
