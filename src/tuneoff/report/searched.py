"""The values a selection chose, where the report shows a run's settings: every key the selection
searched (a key of its `space`, a key it chose, and for the optuna search with a training length
`train.epochs` and `train.stop_epochs`) reads as the value(s) chosen, marked "selected", never as
the config's value, which the run did not use."""
from __future__ import annotations

from collections import Counter

from tuneoff.describe import config_of, flatten, fmt
from tuneoff.record import Record, Selection

LENGTH_KEYS = ("train.epochs", "train.stop_epochs")  # what the optuna search's training length sets


def searched(sel: Selection | None) -> list[str]:
    """The dotted keys a selection set in the run it chose for."""
    if sel is None:
        return []
    keys = [*(sel.space or {}), *(sel.chosen or {})]
    if sel.length:  # the length searched: stop_epochs is set too, left unset where the whole length won
        keys += list(sel.get("length_keys") or LENGTH_KEYS)
    return list(dict.fromkeys(keys))


def _text(value) -> str:
    return "none" if value is None else fmt(value)


def chosen_texts(recs: list[Record]) -> dict[str, str]:
    """Searched key -> "selected: 0.0001" over these runs (a run's value is its choice, else what
    the run kept: a stop_epochs left unset); several values most frequent first, with their runs."""
    found: dict[str, Counter] = {}
    for r in recs:
        chosen = (r.selection.chosen or {}) if r.selection else {}
        flat = None
        for key in searched(r.selection):
            if key not in chosen and flat is None:
                flat = flatten(config_of(r))
            value = chosen[key] if key in chosen else flat.get(key)
            found.setdefault(key, Counter())[_text(value)] += 1
    return {k: "selected: " + ", ".join(v if len(c) == 1 else f"{v} ({n})" for v, n in c.most_common())
            for k, c in found.items()}


def shown(settings, prefix: str, texts: dict[str, str]):
    """`settings` (a config section, e.g. train) with each key a selection chose under `prefix`
    ("train.") replaced by what it chose."""
    if not isinstance(settings, dict):
        return settings
    out = dict(settings)
    for key, text in texts.items():
        if key.startswith(prefix):
            out[key[len(prefix):]] = text
    return out
