"""What a report is made of, independent of its format: sections holding text, tables and figures.
The HTML and Markdown writers render the same blocks, so both hold the same numbers. Text here is
plain (never markup); the writers escape it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Cell:
    text: str
    bold: bool = False
    cls: str = ""  # css class: "below" (at or under the majority baseline), "baseline", "yes"
    bg: str | None = None  # background colour, e.g. a heat map of per-subset accuracy


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]
    title: str = ""
    groups: list[tuple[str, int]] | None = None  # optional header row above: (label, columns spanned)
    note: str = ""
    row_cls: list[str] | None = None  # css class per row
    wrap: tuple[int, ...] = ()  # columns of long text, wrapped (a cell's lines, "\n", are kept in every format)


@dataclass
class Figure:
    name: str  # file stem for the PNG written beside the Markdown
    png: bytes
    caption: str = ""


@dataclass
class Text:
    text: str
    kind: str = "p"  # "p", "pre" (verbatim), "warn" (a warning line)


@dataclass
class Bullets:
    items: list[str]
    kind: str = "ul"  # "ul" or "warn"


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)


def slug(*parts) -> str:
    """A figure's file stem from its parts (letters, digits, '-', '.'; anything else '_')."""
    s = "_".join(str(p) for p in parts)
    return "".join(c if c.isalnum() or c in "-." else "_" for c in s)[:80]


def isnan(x) -> bool:
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def num(x, digits: int = 3) -> str:
    return "–" if isnan(x) else f"{float(x):.{digits}f}"


def msn(mean, std, n=None, digits: int = 3) -> str:
    """"mean ± std (n)"; std is "–" when it cannot be computed (one run)."""
    if isnan(mean):
        return "–"
    s = f"{float(mean):.{digits}f} ± {num(std, digits)}"
    return s if n is None else f"{s} ({int(n)})"


def pval(p) -> str:
    if isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def count(x) -> str:
    """1234567 -> 1.23M; 0 -> 0."""
    if isnan(x):
        return "–"
    x = float(x)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def heat(v) -> str | None:
    """Background for a score in [0, 1]: red at 0, white at 0.5, green at 1."""
    if isnan(v):
        return None
    v = min(max(float(v), 0.0), 1.0)
    if v < 0.5:
        t = v / 0.5
        r, g, b = 255, int(160 + 95 * t), int(160 + 95 * t)
    else:
        t = (v - 0.5) / 0.5
        r, g, b = int(255 - 95 * t), int(255 - 20 * t), int(255 - 95 * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def cells(values) -> list[Cell]:
    return [v if isinstance(v, Cell) else Cell("" if v is None else str(v)) for v in values]
