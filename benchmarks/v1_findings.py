"""v1's findings read again in v2's store: the fourth part of `v1_v2.py` (docs/cola-mnli-v2/README.md,
"What changed from v1").

Each store is judged by the report's own rules, on its own runs (`report.recommend`, `report.stats`):

1. Above chance: for every method both stores ran in a cell (task, model, shots, domain), whether the
   95% interval of its margin over the majority baseline (over the splits and the eval sample) lies
   above 0 in v1 and in v2. A v2 cell with fewer runs than `PLANNED` splits is pending, not judged.
2. Separations: every pair of methods v1's paired tests separated (Holm within each task x model x
   eval set x shots, both tests below 0.05), and what v2's tests say of the same two methods there;
   then the pairs v2 separates that v1 ran and did not separate. A pair with fewer than 5 splits in
   v2 is pending.
3. The answer: per task x shots x domain, each store's recommendation (its verdict, the best mean,
   what is not separated from it).

Methods are matched by name (icl(k=4, ...) in v1 is icl(k=2) in v2: their k and labels differ by the
protocol); a v2 method v1 did not run is v2's own, not a change, and is left out here.
"""
from __future__ import annotations

import math

import pandas as pd

from tuneoff.report.claims import MIN_PAIRS
from tuneoff.report.frame import to_frame
from tuneoff.report.recommend import recommend
from tuneoff.report.stats import paired_tests

PLANNED = 5  # splits per cell in the comparison's plan: fewer, and a v2 figure is pending


def base(variant: str) -> str:
    """A method variant's method: 'icl(k=4, select=dev/frugal)' -> 'icl'."""
    return str(variant).split("(")[0].strip()


def _answers(recs, model: str | None) -> dict:
    answers, _ = recommend(to_frame(recs))
    out = {}
    for a in answers:
        c = a.candidates
        if model is not None and len(c):
            c = c[c["model"] == model]
        out[(a.task, a.shots, a.domain)] = (a, c)
    return out


def _state(row) -> str:
    return "above" if bool(row["beats_chance"]) else "not above"


def _lower(row) -> str:
    lo = row["margin_lo"]
    return f"{lo:+.3f} ({int(row['n'])})" if isinstance(lo, float) and math.isfinite(lo) else f"– ({int(row['n'])})"


def chance_rows(new, old, model: str | None = None) -> list[dict]:
    """One row per (task, shots, domain, model, method) both stores ran: each side's lower end of the
    margin's interval (runs) and the verdict ('holds: above chance', 'holds: not above chance', 'no
    longer above chance', 'now above chance', or 'pending: n of 5 splits')."""
    return _chance(_answers(new, model), _answers(old, model))


def _chance(a: dict, b: dict) -> list[dict]:
    rows = []
    for key in sorted(set(a) & set(b)):
        ca, cb = a[key][1], b[key][1]
        for _, r1 in cb.iterrows():
            for _, r2 in ca[(ca["model"] == r1["model"]) & (ca["variant"].map(base) == base(r1["variant"]))].iterrows():
                s1, s2 = _state(r1), _state(r2)
                if int(r2["n"]) < PLANNED:
                    verdict = f"pending: {int(r2['n'])} of {PLANNED} splits"
                elif s1 == s2:
                    verdict = f"holds: {s1} chance"
                else:
                    verdict = "no longer above chance" if s1 == "above" else "now above chance"
                rows.append({"task": key[0], "shots": key[1], "domain": key[2], "model": r1["model"],
                             "v1": r1["variant"], "v2": r2["variant"], "v1_lower": _lower(r1),
                             "v2_lower": _lower(r2), "verdict": verdict})
    return rows


def _tests(recs, model: str | None) -> pd.DataFrame:
    t = paired_tests(to_frame(recs))
    if model is not None:
        t = t[t["model"] == model]
    return t.assign(base_a=t["method_a"].map(base), base_b=t["method_b"].map(base))


def _same_pair(t: pd.DataFrame, row) -> pd.DataFrame:
    pair = {row["base_a"], row["base_b"]}
    m = (t["task"] == row["task"]) & (t["model"] == row["model"]) & (t["eval_set"] == row["eval_set"]) & (
        t["shots"] == row["shots"])
    return t[m & t.apply(lambda r: {r["base_a"], r["base_b"]} == pair, axis=1)] if m.any() else t.iloc[0:0]


def _said(r) -> str:
    return f"{r['method_a']} − {r['method_b']} = {r['mean_diff']:+.3f} ({int(r['n_pairs'])} pairs): {r['claim']}"


def separation_rows(new, old, model: str | None = None) -> list[dict]:
    """v1's separated pairs, each with what v2 says of the same two methods in the same cell
    ('holds', 'reversed', 'not separated in v2', 'pending: n pairs', 'not run in v2'); then v2's
    separated pairs of methods v1 ran there and did not separate ('new in v2')."""
    t1, t2 = _tests(old, model), _tests(new, model)
    rows = []
    for _, r1 in t1[t1["significant"].astype(bool)].iterrows():
        same = _same_pair(t2, r1)
        if same.empty:
            rows.append({**_key(r1), "v1": _said(r1), "v2": "–", "verdict": "not run in v2"})
        for _, r2 in same.iterrows():
            if int(r2["n_pairs"]) < MIN_PAIRS:
                verdict = f"pending: {int(r2['n_pairs'])} pairs"
            elif not bool(r2["significant"]):
                verdict = "not separated in v2"
            else:
                verdict = "holds" if r2["base_a"] == r1["base_a"] else "reversed"
            rows.append({**_key(r1), "v1": _said(r1), "v2": _said(r2), "verdict": verdict})
    for _, r2 in t2[t2["significant"].astype(bool)].iterrows():
        same = _same_pair(t1, r2)
        if not same.empty and not same["significant"].astype(bool).any():
            rows.append({**_key(r2), "v1": "; ".join(_said(r) for _, r in same.iterrows()), "v2": _said(r2),
                         "verdict": "new in v2"})
    return rows


def _key(r) -> dict:
    return {"task": r["task"], "model": r["model"], "eval_set": r["eval_set"], "shots": int(r["shots"])}


def _answer_text(a) -> str:
    if a.best is None:
        return a.verdict
    tied = ", ".join(a.tied) if a.tied else "none"
    return f"{a.verdict}: best mean {a.best}; not separated from it: {tied}"


def answer_rows(new, old, model: str | None = None) -> list[dict]:
    """Per (task, shots, domain) both stores answer: each store's recommendation in a line."""
    return _answer_lines(_answers(new, model), _answers(old, model))


def _answer_lines(a: dict, b: dict) -> list[dict]:
    return [{"task": k[0], "shots": k[1], "domain": k[2], "v1": _answer_text(b[k][0]), "v2": _answer_text(a[k][0])}
            for k in sorted(set(a) & set(b))]


def _table(rows: list[dict], cols: list[str]) -> None:
    if not rows:
        print("(none)\n")
        return
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |")
    print()


def _counts(rows: list[dict]) -> str:
    n: dict = {}
    for r in rows:
        v = r["verdict"].split(":")[0] if r["verdict"].startswith("pending") else r["verdict"]
        n[v] = n.get(v, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(n.items(), key=lambda kv: -kv[1]))


def print_findings(new, old, model: str | None = None) -> None:
    """The three tables, each with its count of verdicts (each store's recommendation computed once)."""
    a, b = _answers(new, model), _answers(old, model)
    ch = _chance(a, b)
    print(f"### Above chance (the margin's 95% lower end, runs): {len(ch)} method cells both ran; {_counts(ch)}\n")
    _table(ch, ["task", "shots", "domain", "model", "v1", "v1_lower", "v2", "v2_lower", "verdict"])
    sep = separation_rows(new, old, model)
    print(f"### Separations: {_counts(sep) or 'none'}\n")
    _table(sep, ["task", "model", "eval_set", "shots", "v1", "v2", "verdict"])
    print("### The answer (no budget)\n")
    _table(_answer_lines(a, b), ["task", "shots", "domain", "v1", "v2"])
