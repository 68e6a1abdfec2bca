"""Text from data, configs and error messages, made inert for where it is shown: a Markdown table
cell or line (no raw HTML, no links or images, no emphasis, no `|` that breaks the table, one line),
the terminal (no escape sequence or control character reaches it; rich markup such as `[bold]` is
shown, not rendered) and a CSV cell (a spreadsheet does not run a name such as `=cmd|...` as a
formula). HTML output escapes with `html.escape` in `tuneoff.report.html`."""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable

from rich.markup import escape as _rich_escape

# Markdown punctuation that can start a link, image, emphasis, code, strike-through, heading or
# table cell; `_` only where it could open or close emphasis (not inside a word: lexical_overlap)
_MD_PUNCT = re.compile(r"([\\`*\[\]!|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md(text) -> str:
    """One Markdown table cell or line of text, shown literally."""
    s = "" if text is None else str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_PUNCT.sub(r"\\\1", s)
    return s.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


# terminal escape sequences (CSI such as `ESC [2J`, OSC such as a window title, two-character ESC
# sequences), then any other C0 or C1 control character but newline and tab
_TERM_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?"
                          r"|\x1b[ -/]*[0-~]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def term(text) -> str:
    """Text for a rich console or table cell, shown literally: without escape sequences or control
    characters (newline and tab kept), rich markup escaped."""
    s = "" if text is None else str(text)
    return _rich_escape(_CONTROL.sub("", _TERM_ESCAPE.sub("", s)))


# a number, or a mean ± std of numbers, as the summaries write them: left as it is though it may start
# with '-' ('-0.024 ± 0.059'); any other text cell starting with a formula character is one
_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
_NUMERIC = re.compile(rf"{_NUMBER}( ± {_NUMBER})?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """`value` for a CSV cell: text that a spreadsheet would read as a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMERIC.fullmatch(value):
        return "'" + value
    return value


def write_csv(path: Path, columns: list[str], rows: Iterable, line_end: str = "\r\n") -> Path:
    """Write a CSV file (the csv module's dialect; `line_end` ends each line): the header, then each
    row (a dict, read by `columns`, or a sequence in their order), every cell through `csv_cell`."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator=line_end)
        w.writerow([csv_cell(c) for c in columns])
        for row in rows:
            cells = [row.get(c) for c in columns] if isinstance(row, dict) else row
            w.writerow([csv_cell(v) for v in cells])
    return Path(path)
