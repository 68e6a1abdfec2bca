"""The recommendation's sentences: one per (task, shots, domain), worded from the claims of
`report.claims` ("worse", "equivalent within ±m (TOST p=…)", "not separated (smallest detectable
difference …)"), never "tied" or "matches". Text only; `report.recommend` decides."""
from __future__ import annotations

import numpy as np

from tuneoff.metrics import direction
from tuneoff.report.claims import EQUIVALENT, SEPARATED, TOO_FEW, p_is, phrase, short, trails

CHANCE = ("beating it means the 95% interval, over splits and the eval sample, of the score minus the baseline "
          "lies above 0")
LOWER = " (the baseline minus the score: lower is better)"


def chance_rule(metric: str) -> str:
    """CHANCE, for a metric where lower is better with the margin it means."""
    return CHANCE + (LOWER if direction(metric) < 0 else "")


def head(a) -> str:
    return f"{a.task}, {a.shots} shots per class, {'in-domain' if a.domain == 'in' else 'out-of-domain'} ({a.metric})"


def refusal(head_: str, why: str) -> str:
    return f"{head_}: no recommendation — {why}"


def score(row) -> str:
    return f"{row['mean']:.3f} ± {row['std']:.3f} over {int(row['n'])} splits"


def _secs(t: float) -> str:
    return f"{t:.0f} s" if t >= 10 else f"{t:.2g} s"


def cost(row, key: str) -> str:
    """The cheapest's cost as the sentence gives it: CPU time with the wall time beside it (or wall
    time alone, in a store without CPU time), FLOPs, evaluation."""
    cpu = key.startswith("CPU")
    parts = [f"{_secs(row['cpu_time'])} CPU" if cpu else f"{_secs(row['wall_time'])} wall"]
    if cpu and np.isfinite(row["wall_time"]):
        parts[0] += f" ({_secs(row['wall_time'])} wall)"
    if np.isfinite(row["flops"]):
        parts.append(f"{row['flops']:.2g} FLOPs".replace("e+", "e"))
    if np.isfinite(row["eval_time"]):
        parts.append(f"{row['eval_time']:.0f} s evaluation")
    return ", ".join(parts)


def test_text(a, comps: dict, others: list, brief: bool = False) -> str:
    """How the cell was tested. `brief`: its pairs and comparisons alone, for a list of answers
    printed beside the rule that gives the tests (`report.answer.RULE`)."""
    pairs = sorted({c.n for c in comps.values()})
    r = a.rule
    # the comparisons' numbers of pairs: "5 pairs each", "1 or 5 pairs per comparison" (not "1/5", a fraction)
    n = (f"{pairs[0]} pairs each" if len(pairs) == 1 else
         f"{', '.join(map(str, pairs[:-1]))} or {pairs[-1]} pairs per comparison" if pairs else "no pairs")
    if brief:
        return f"{n}, Holm over {len(others)} comparison{'s' if len(others) != 1 else ''}"
    return (f"two-level paired t-test and bootstrap over splits and the eval sample, {n}, Holm-corrected over "
            f"{len(others)} comparison(s), alpha {r.alpha}; equivalence by TOST within ±{r.margin:g}")


def _names(c, idx) -> list[str]:
    return [str(c.loc[i, "candidate"]) for i in idx]


def _open_part(a, comps: dict, open_: list) -> str:
    """The candidates not separated from the best (cheapest first), each with how far it trails the
    best and that difference's interval, and what the cell could see. None of them is named the
    cheapest: only an equivalence test within the margin could show one as good as the best."""
    c = a.candidates
    key = "cpu_time" if a.cost.startswith("CPU") else "wall_time"
    order = sorted(open_, key=lambda i: (c.loc[i, key] if np.isfinite(c.loc[i, key]) else np.inf))
    tested = [i for i in order if comps[i].verdict != TOO_FEW]
    few = [i for i in order if comps[i].verdict == TOO_FEW]
    parts = []
    if tested:
        mdd = [comps[i].mdd for i in tested]
        span = short(min(mdd)) if short(min(mdd)) == short(max(mdd)) else f"{short(min(mdd))}–{short(max(mdd))}"
        floor = min(comps[i].mdd_floor for i in tested)
        each = ", ".join(f"{c.loc[i, 'candidate']} {trails(comps[i])}" for i in tested)
        order_ = f" (cheapest first, by {a.cost.split(' (')[0]})" if len(tested) > 1 else ""
        parts.append(f"not separated from it{order_}: {each} (smallest detectable difference {span}; the eval "
                     f"sample alone hides differences below {short(floor)}, however many splits)")
    if few:
        parts.append(f"{phrase(comps[few[0]], a.rule).split(':')[0]} to test: {', '.join(_names(c, few))}")
    return "; ".join(parts)


def _more(comps: dict, open_: list) -> str:
    """What more data could decide: seeds, unless the eval sample alone hides every difference seen."""
    tested = [comps[i] for i in open_ if comps[i].verdict != TOO_FEW]
    if tested and all(abs(c.diff) < c.mdd_floor for c in tested):
        return ("more data seeds cannot decide it: the eval sample alone hides differences this small (a larger "
                "eval set may)")
    return "more data seeds (or a larger eval set) may decide"


def sentence(a, head_: str, comps: dict, others: list, open_: list, not_real: list, brief: bool = False) -> str:
    """The answer's sentence for its verdict (`Answer.verdict`). `brief`: without what the rule
    printed beside it says for every answer (how chance is beaten, which tests at what alpha)."""
    c = a.candidates
    b = c.set_index("candidate").loc[a.best]
    test = test_text(a, comps, others, brief)
    worse = [i for i in others if comps[i].verdict == SEPARATED]
    equiv = [f"{c.loc[i, 'candidate']} (TOST {p_is(comps[i].p_tost_holm)})" for i in others
             if comps[i].verdict == EQUIVALENT]
    worse_part = (f"{len(worse)} other fitting method(s) worse" if worse else "")
    if a.verdict == "not above chance":
        base = f"{a.metric} {b['baseline']:.3f}" if np.isfinite(b["baseline"]) else "not recorded"
        return (f"{head_}: no recommendation — neither the best, {a.best} ({score(b)}), nor any method not "
                f"separated from it is shown to beat the majority baseline (always the most frequent label: "
                f"{base}){'' if brief else '; ' + chance_rule(a.metric)}. ({test})")
    if a.verdict == "best":
        text = (f"{head_}: {a.best} is the best that fits ({score(b)}); every other fitting method is worse "
                f"({test}).")
    elif a.verdict == "equivalent":
        text = (f"{head_}: best is {a.best} ({score(b)}); shown equivalent within ±{a.rule.margin:g} to it: "
                f"{', '.join(equiv)}{'; ' + worse_part if worse_part else ''}. Cheapest of these that beats chance, "
                f"by {a.cost}: {a.cheapest} ({cost(c.set_index('candidate').loc[a.cheapest], a.cost)}). ({test})")
    else:
        parts = [_open_part(a, comps, open_)] + ([f"equivalent within ±{a.rule.margin:g}: {', '.join(equiv)}"]
                                                 if equiv else []) + ([worse_part] if worse_part else [])
        text = (f"{head_}: no decision — {'highest' if direction(a.metric) > 0 else 'lowest'} mean: {a.best} "
                f"({score(b)}); {'; '.join(parts)}. Not separated is not equal: no winner and no cheapest is named; "
                f"{_more(comps, open_)}. ({test})")
    if not_real:
        base = f"{a.metric} {b['baseline']:.3f}" if np.isfinite(b["baseline"]) else "not recorded"
        text += (f" Not shown to beat chance: {', '.join(_names(c, not_real))} (95% interval over splits and the "
                 f"eval sample not {'above' if direction(a.metric) > 0 else 'below'} the majority baseline, {base}).")
    return text
