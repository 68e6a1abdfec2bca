"""Text from data, configs and error messages, made inert for where it is shown: a Markdown table
cell or line (no raw HTML, no links or images, no emphasis, no `|` that breaks the table, one line)
and the terminal (rich markup such as `[bold]` is shown, not rendered). HTML output escapes with
`html.escape` in `tuneoff.report.html`."""
from __future__ import annotations

import re

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


def term(text) -> str:
    """Text for a rich console or table cell, shown literally."""
    return _rich_escape("" if text is None else str(text))
