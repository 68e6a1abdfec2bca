"""A results folder for Python: its runs as tables (the summary's, the report's), the recommendation
within a budget, the report and its figures. `tuneoff show`, `recommend` and `report` print these
same objects; `tuneoff.api.load` opens a folder, and `tuneoff.api.run` / `sweep` return one.

Every table is built by the code the command line and the report use (`tuneoff.summary`,
`tuneoff.report`), so a number in a notebook is the number in the report.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from tuneoff.budget import Budget, budget_from
from tuneoff.record import Record, load as load_record

if TYPE_CHECKING:
    import pandas as pd

    from tuneoff.report.recommend import Answer

# the report's figures of one task and model: Results.plot(kind)
PLOTS = ("curves", "in_vs_out", "cost")


def counts_text(counts: dict[str, int]) -> str:
    """{'done': 10, 'failed': 1} -> "10 done, 1 failed" (done and failed first); "none" for no runs."""
    order = sorted(counts, key=lambda s: ({"done": 0, "failed": 1}.get(s, 2), s))
    return ", ".join(f"{counts[s]} {s}" for s in order) or "none"


def budget_of(budget: Budget | dict | None = None, **limits: Any) -> Budget:
    """A Budget from a Budget, a mapping of its fields, or its fields as keywords (None: unset);
    a value that cannot be read is a `BudgetError` that shows how to write it."""
    given = {k: v for k, v in limits.items() if v is not None}
    if isinstance(budget, Budget):
        budget = budget.model_dump(exclude_unset=True)
    return budget_from(**{**dict(budget or {}), **given})


@dataclass
class Figure:
    """A report figure: PNG bytes (None when there is nothing to draw; `notes` say why), shown
    inline by a notebook."""

    png: bytes | None
    caption: str = ""
    notes: list[str] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the PNG to `path`; returns it."""
        if self.png is None:
            raise ValueError(f"nothing to save: {'; '.join(self.notes) or 'no figure'}")
        p = Path(path)
        p.write_bytes(self.png)
        return p

    def _repr_png_(self) -> bytes | None:
        return self.png

    def __repr__(self) -> str:
        what = f"{len(self.png)} bytes of PNG" if self.png is not None else "nothing drawn"
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"<Figure {self.caption}: {what}{notes}>"


@dataclass
class Recommendation:
    """Which method to use within a budget, per task, shot count and eval domain: the answers of
    `tuneoff recommend` and the report's first section, under the one rule of `report.claims`.

    `answers`: one `tuneoff.report.recommend.Answer` each (`verdict`, `best`, `cheapest`, `tied`,
    `equivalent`, `sentence`, `candidates`); `blocks`: the same as report blocks (text, bullets, a
    table per answer). `print(rec)` gives the sentences; `rec.table()` every candidate's figures."""

    answers: list[Answer]
    budget: Budget
    blocks: list

    def __iter__(self) -> Iterator[Answer]:
        return iter(self.answers)

    def __len__(self) -> int:
        return len(self.answers)

    @property
    def sentences(self) -> list[str]:
        """One sentence per answer: the best, what the data can say of the others, the cheapest."""
        return [a.sentence for a in self.answers]

    def table(self) -> pd.DataFrame:
        """One row per (task, shots, domain, candidate): its mean, std, runs, costs, whether it fits
        the budget, its comparison with the best (p Holm, claim), and the answer's verdict."""
        import pandas as pd

        parts = [a.candidates.assign(task=a.task, shots=a.shots, domain=a.domain, metric=a.metric,
                                     verdict=a.verdict) for a in self.answers]
        if not parts:
            return pd.DataFrame(columns=["task", "shots", "domain", "candidate", "verdict"])
        t = pd.concat(parts, ignore_index=True)
        first = ["task", "shots", "domain", "metric", "candidate", "verdict"]
        return t[first + [c for c in t.columns if c not in first]]

    def plot(self, task: str | None = None, shots: int | None = None, domain: str = "in") -> Figure:
        """The recommendation's front for one answer: the mean score against each budget figure,
        the best starred, those not separated from it highlighted, the limits drawn."""
        from tuneoff.report.decision_plots import recommendation_front

        found = [a for a in self.answers if (task is None or a.task == task) and (shots is None or a.shots == shots)
                 and a.domain == domain]
        if not found:
            have = ", ".join(f"{a.task} at {a.shots} shots ({a.domain})" for a in self.answers) or "none"
            raise ValueError(f"no answer for task={task} shots={shots} domain={domain}; the answers: {have}")
        a = found[0]
        png, notes = recommendation_front(a, self.budget.limits())
        return Figure(png, f"{a.task}, {a.shots} shots, {a.domain}-domain", notes)

    def __str__(self) -> str:
        from tuneoff.report.blocks import Bullets, Text

        # the budget, the whole sentences (the rule is not printed beside them) and any notes; the rule
        # and the tables are in the Markdown and table()
        lines = [self.blocks[0].text] if self.blocks and isinstance(self.blocks[0], Text) else []
        lines += [f"- {a.sentence}" for a in self.answers]
        lines += [f"- {item}" for b in self.blocks if isinstance(b, Bullets) and b.kind == "warn" for item in b.items]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Recommendation for {len(self.answers)} answer(s):\n{self}"

    def _repr_markdown_(self) -> str:
        from tuneoff.report.blocks import Section
        from tuneoff.report.markdown import render_markdown

        text, _ = render_markdown([Section("recommendation", "Recommendation", self.blocks)], "", "")
        return text.split("\n", 2)[2]  # without the document's title line


class ReportPaths(ValueError):
    """The report's paths collide (the HTML and the Markdown at one path)."""


class Results:
    """The runs of a results folder (or of a list of run records), as the command line and the report
    see them. Every table covers every run of the folder, earlier calls' included, as summary.md and
    the report do; `planned` holds the records of the call that returned it.

    >>> res = load("results/quick")         # doctest: +SKIP
    >>> res.table()                         # the summary table: mean ± std over seeds  # doctest: +SKIP
    >>> print(res.recommend(max_train_time="5m"))  # doctest: +SKIP
    """

    def __init__(self, store=None, records: list | None = None, planned: list | None = None,
                 written: dict[str, Path] | None = None):
        if store is None and records is None:
            raise ValueError("Results need a results store or a list of run records")
        self.store = store
        self.folder: Path | None = Path(store.folder) if store is not None else None
        if records is not None:
            self.__dict__["records"] = [load_record(r) for r in records]
        self._planned = planned
        self.written: dict[str, Path] = dict(written or {})

    @classmethod
    def open(cls, folder: str | os.PathLike) -> "Results":
        """A results folder, opened read-only: nothing in it is created or written. A folder without
        results is a FileNotFoundError; a damaged store a StoreError saying what to do."""
        from tuneoff.store import open_store

        return cls(open_store(folder, must_exist=True))

    @cached_property
    def records(self) -> list[Record]:
        """Every run record of the folder (read once)."""
        return self.store.records()

    @property
    def planned(self) -> list[Record]:
        """The records of the runs the returning call planned (`run`, `sweep`); every record otherwise."""
        return self.records if self._planned is None else self._planned

    @property
    def failed(self) -> list[Record]:
        """The planned runs that did not finish."""
        return [r for r in self.planned if r.status != "done"]

    @property
    def notes(self) -> list[str]:
        """Warnings from reading the store: rows that could not be read, manifests that cannot be read
        although their row is intact (each says how to repair it)."""
        if self.store is None:
            return []
        return [n for n in (self.store.bad_rows_note(), self.store.broken_manifests_note()) if n]

    def counts(self) -> dict[str, int]:
        """Runs per status, e.g. {'done': 10, 'failed': 1}."""
        if self.store is not None:
            return self.store.counts()
        return dict(Counter(r.status for r in self.records))

    def __repr__(self) -> str:
        where = f"{str(self.folder)!r}" if self.folder is not None else "records"
        return f"Results({where}: {counts_text(self.counts())})"

    # -- tables ----------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """The summary table, as `tuneoff show` prints it and summary.csv holds it: per task, model,
        method (and options that differ), shots and eval set, the main metric as mean ± std over
        seeds, the runs, the majority baseline, the most predicted label and any flag, and every
        metric's mean ± std."""
        import pandas as pd

        from tuneoff.summary import summarise

        return pd.DataFrame(summarise(self.records))

    def subsets(self) -> pd.DataFrame:
        """Per-subset accuracy (HANS: per heuristic, and on each gold label), as `tuneoff show` prints it."""
        import pandas as pd

        from tuneoff.summary import summarise_subsets

        return pd.DataFrame(summarise_subsets(self.records))

    @cached_property
    def _frame(self) -> pd.DataFrame:
        from tuneoff.report.frame import to_frame

        return to_frame(self.records)

    def frame(self) -> pd.DataFrame:
        """The report's flat table: one row per (run, eval set, subset), every recorded figure; a
        failed run is one row with its error (runs.csv holds the same)."""
        return self._frame.copy()

    def aggregate(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """The report's aggregate over seeds, as numbers: mean, std and count per task, model, method
        variant, pattern, shots, eval set, subset and metric (by default every metric)."""
        from tuneoff.metrics import all_metric_names
        from tuneoff.report.frame import aggregate

        return aggregate(self._frame, metrics or all_metric_names())

    def runs(self) -> pd.DataFrame:
        """One row per run: its settings, status, costs, flags, and its main metric on each eval set
        (`score_<eval set>`)."""
        from tuneoff.report.frame import done_rows
        from tuneoff.report.frame import runs as per_run

        f = self._frame
        if not len(f):
            return f.copy()
        out = per_run(f)
        d = done_rows(f)
        d = d[d["subset"] == "overall"]
        if len(d):
            score = [row.get(row["main_metric"]) for _, row in d.iterrows()]
            wide = d.assign(score=score).pivot_table(index="run_id", columns="eval_set", values="score", sort=False)
            out = out.merge(wide.add_prefix("score_").reset_index(), on="run_id", how="left")
        return out

    # -- the answer, the report, the figures -------------------------------------------------------
    def recommend(self, budget: Budget | dict | None = None, **limits: Any) -> Recommendation:
        """Which method to use within a budget, per task, shot count and eval domain: the answer of
        `tuneoff recommend` and the report's first section. `budget`: a `tuneoff.budget.Budget` or a
        mapping of its fields; `limits`: its fields as keywords, written as on the command line
        (max_memory="4GB", max_trainable_params="1M", a CPU-time limit "10m"; shots=[8],
        domain="in", margin=0.02; `help(tuneoff.budget.Budget)` lists them). A value that cannot be
        read is a `tuneoff.budget.BudgetError` that shows how to write it.

        >>> print(res.recommend(max_memory="4GB", margin=0.02))   # doctest: +SKIP
        """
        from tuneoff.report.answer import recommendation_blocks

        b = budget_of(budget, **limits)
        blocks, answers = recommendation_blocks(self._frame, b)
        return Recommendation(answers, b, blocks)

    def report(self, path: str | os.PathLike | None = None, *, markdown: str | os.PathLike | None = None,
               csv: str | os.PathLike | None = None, budget: Budget | dict | None = None,
               **limits: Any) -> dict[str, Path]:
        """Write the report of the folder, as `tuneoff report` does: self-contained HTML at `path`
        (default FOLDER/report.html), Markdown beside it (or at `markdown`) with its figures (a `path`
        ending in .md is the Markdown's, and the HTML goes beside it), and every
        run as CSV (default FOLDER/runs.csv). `budget` / `limits` as for `recommend`. Returns
        {kind: path}."""
        from tuneoff.report import write_report

        if self.store is None:
            raise ValueError("the report is written from a results folder: open one with tuneoff.api.load")
        if path and markdown is None and Path(path).suffix.lower() == ".md":
            path, markdown = Path(path).with_suffix(".html"), path  # a Markdown path: the HTML goes beside it
        md = markdown or (Path(path).with_suffix(".md") if path else None)
        if path and md and Path(path).resolve() == Path(md).resolve():
            raise ReportPaths(f"the HTML and the Markdown report would both be written to {path}, one over the "
                             "other: give them different paths (-o report.html --md report.md)")
        return write_report(self.folder, html_path=path, md_path=md, csv_path=csv, store=self.store,
                            budget=budget_of(budget, **limits))

    def plot(self, kind: str = "curves", *, task: str | None = None, model: str | None = None) -> Figure:
        """One of the report's figures for a task and model (needed only where the folder holds
        several): "curves" (main metric against shots per class, ±1 std over seeds, the majority
        baseline dashed), "in_vs_out" (out-of-domain against in-domain score) or "cost" (score
        against each cost, with the Pareto front)."""
        from tuneoff.report import plots
        from tuneoff.report.frame import eval_sets_in_order, frame_metric
        from tuneoff.report.frame import runs as per_run
        from tuneoff.report.tables import variant_order

        if kind not in PLOTS:
            raise ValueError(f"unknown plot {kind!r}; use one of: {', '.join(PLOTS)}")
        agg = self.aggregate()
        task = _one(agg, "task", task)
        model = _one(agg[agg["task"] == task], "model", model)
        a = agg[(agg["task"] == task) & (agg["model"] == model)]
        f = self._frame[(self._frame["task"] == task) & (self._frame["model"] == model)]
        metric, eval_sets = frame_metric(f, task), eval_sets_in_order(f)
        variants = variant_order(a, metric)
        if kind == "curves":
            png, notes = plots.learning_curves(a, metric, eval_sets, variants)
        elif kind == "in_vs_out":
            png, notes = plots.in_vs_out(a, metric, eval_sets, variants)
        else:
            target = next((e for e, d in eval_sets if d == "in"), eval_sets[0][0] if eval_sets else None)
            r = per_run(f)
            png, notes = plots.score_vs_cost(a, r[r["status"] == "done"], metric, target, variants)
        return Figure(png, f"{kind}: {task} · {model} — {metric}", notes)


def _one(agg: pd.DataFrame, key: str, value: str | None) -> str:
    """`value` if given and present, else the one value of `key` in `agg`; an error naming the choices."""
    have = sorted(str(v) for v in agg[key].dropna().unique())
    if value is not None and value in have:
        return value
    if value is None and len(have) == 1:
        return have[0]
    if not have:
        raise ValueError("no finished runs to draw")
    raise ValueError(f"give {key}= one of: {', '.join(have)}" if value is None else
                     f"{key} {value!r} has no finished runs here; the folder holds: {', '.join(have)}")
