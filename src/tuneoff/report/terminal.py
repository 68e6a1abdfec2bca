"""Tables on the terminal, readable at any width (80 columns is the default of many terminals and of
any piped or logged output), and report blocks printed there.

Names (methods, models, tasks, eval sets) and numbers are never cut or wrapped; free text wraps. A
table that does not fit so is drawn narrower: its key columns (what names a row) as a heading over
the rows that share them, or, where no rows share one or the rest still does not fit, one block per
row. The layout is chosen when the table is printed, for the width it is printed at. Text from
records is printed as text, never as rich markup: cells given as strings are rich markup the caller
escaped (`tuneoff.escape.term`).

Prose (messages, errors, warnings, the recommendation's text, a table's title and caption) is printed
by `say`: wrapped between words at the width, never inside a word, so a path, a run id or a command
that a message names copies whole from the screen or a log. A table is printed by its `print`."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rich import box
from rich.cells import cell_len
from rich.console import Group
from rich.padding import Padding
from rich.table import Table as RichTable
from rich.text import Text as RichText

from tuneoff.escape import term as escape
from tuneoff.report.blocks import Bullets, Figure, Table, Text

NAME, NUMBER, TEXT = "name", "number", "text"
TEXT_MIN = 20  # the narrowest a wrapping column is drawn in a table; narrower, the rows become blocks
MAX_PAIRS = 4  # a row's block puts up to this many short fields on one line


@dataclass(frozen=True)
class Col:
    """A column: `kind` NAME or NUMBER cells are kept whole, TEXT cells wrap; a `key` column names
    its row (a narrow layout shows it as the heading of the row's block)."""

    header: str  # rich markup, escaped
    kind: str = TEXT
    key: bool = False
    justify: str = "left"

    @property
    def whole(self) -> bool:
        return self.kind != TEXT


def say(console, markup: str, style: str = "", indent: int = 0) -> None:
    """Print `markup` (rich markup, its text from data escaped; `style` over all of it) wrapped
    between words at the console's width, each line after a paragraph's first indented by `indent`
    spaces. A word longer than what a line holds (a path, a command) goes whole on a line of its
    own, where a terminal folds it without a line break; rich's own wrapping would cut it with a
    newline, and the path pasted from the screen or a log would be two. Tabs are expanded, emoji
    codes are not (`:name:` in a path stays as it is)."""
    text = console.render_str(markup, style=style, highlight=False, emoji=False)
    indent = indent if indent < console.width // 2 else 0
    for para in text.split("\n", allow_blank=True):
        para.expand_tabs()
        starts, start, words = [], 0, 0
        for word in re.finditer(r"\S+", para.plain):
            if words and cell_len(para.plain[start:word.end()]) + (indent if starts else 0) > console.width:
                starts.append(start := word.start())
            words += 1
        for k, line in enumerate(para.divide(starts)):
            line.rstrip()
            console.print(RichText(" " * indent) + line if k and indent else line, soft_wrap=True)


def _text(cell) -> RichText:
    return cell.copy() if isinstance(cell, RichText) else RichText.from_markup("" if cell is None else str(cell))


def _width(text: RichText) -> int:
    return max((cell_len(line) for line in text.plain.split("\n")), default=0)


def _word(text: RichText) -> int:
    return max((cell_len(w) for w in text.plain.split()), default=0)


class FitTable:
    """A table that keeps its names whole at the width it is printed at (see the module's note).
    `styles`: a rich style per row (e.g. "red" for a flagged row), or None. Printed by `print`: its
    title and caption are prose (a custom task's path in a title stays whole), not rich's table title
    and caption, which are cut at the table's width."""

    def __init__(self, cols: list[Col], rows: list[list], title: str | None = None, caption: str | None = None,
                 styles: list[str | None] | None = None):
        self.cols, self.title, self.caption = cols, title or None, caption or None
        self.heads = [_text(c.header) for c in cols]
        self.rows = [[_text(c) for c in row] for row in rows]
        self.styles = list(styles) if styles else [None] * len(self.rows)

    def need(self, i: int) -> int:
        """The narrowest column `i` can be drawn: its widest cell and header if it is kept whole,
        else up to TEXT_MIN (its header wrapping between words)."""
        widest = max((_width(r[i]) for r in self.rows), default=0)
        if self.cols[i].whole:
            return max(_width(self.heads[i]), widest)
        return max(_word(self.heads[i]), min(widest, TEXT_MIN))

    def fits(self, idx: list[int], width: int, edges: bool) -> bool:
        # per column: a cell's padding either side, a divider; the outer edges of a boxed table
        extra = 3 * len(idx) + (1 if edges else -1)
        return sum(self.need(i) for i in idx) + extra <= width

    def groups(self, keys: list[int]) -> list[tuple[RichText, list[int]]]:
        """(heading, rows) for each run of neighbouring rows with the same key cells."""
        runs: list[list[int]] = []
        last = None
        for r, row in enumerate(self.rows):
            key = tuple(row[i].plain for i in keys)
            if key != last:
                runs.append([])
                last = key
            runs[-1].append(r)
        return [(self.heading(rows, keys), rows) for rows in runs]

    def heading(self, rows: list[int], keys: list[int]) -> RichText:
        """The key cells of `rows` (which share them), in the rows' style only where every one of
        them has it: a flagged row's red marks that row, not the others under its heading."""
        r = rows[0]
        parts = [self.rows[r][i] for i in keys if self.rows[r][i].plain.strip()]
        head = RichText(" · ").join(parts or self.rows[r][:1])
        head.stylize("bold")
        if self.styles[r] and all(self.styles[i] == self.styles[r] for i in rows):
            head.stylize(self.styles[r])
        return head

    def print(self, console) -> None:
        """The title, the table laid out for the console's width, the caption."""
        if self.title:
            say(console, self.title, style="bold")
        console.print(Group(*self.layout(console.width)))
        if self.caption:
            say(console, self.caption)

    def __rich_console__(self, console, options):
        raise TypeError("a FitTable is printed by its print(console): rich would cut its title and caption")

    def layout(self, width: int):
        """The table's renderables at `width`, without its title and caption."""
        every = list(range(len(self.cols)))
        keys = [i for i in every if self.cols[i].key]
        rest = [i for i in every if i not in keys]
        if self.fits(every, width, edges=True):
            yield self._table()
        elif keys and rest and len(self.groups(keys)) < len(self.rows) and self.fits(rest, width, edges=False):
            yield from self._grouped(keys, rest, width)
        else:
            yield from self._stacked(keys, width)

    def _table(self) -> RichTable:
        t = RichTable()
        for i, c in enumerate(self.cols):
            t.add_column(self.heads[i], justify=c.justify, no_wrap=c.whole, overflow="fold",
                         min_width=self.need(i) if c.whole else None)
        for row, style in zip(self.rows, self.styles):
            t.add_row(*row, style=style)
        return t

    def _widths(self, idx: list[int], room: int) -> dict[int, int]:
        """Widths of the columns `idx` within `room`: whole columns their widest cell, the wrapping
        ones their widest cell, cut down from the widest until they fit (never under their need)."""
        natural = {i: max([self.need(i)] + [_width(r[i]) for r in self.rows]) for i in idx}
        wrap = [i for i in idx if not self.cols[i].whole]
        fixed = sum(natural[i] for i in idx if self.cols[i].whole)
        cap = max([natural[i] for i in wrap], default=0)
        while wrap and cap > 1 and fixed + sum(min(natural[i], cap) for i in wrap) > room:
            cap -= 1
        return {i: natural[i] if self.cols[i].whole else max(self.need(i), min(natural[i], cap)) for i in idx}

    def _part(self, rest: list[int], widths: dict[int, int], header: bool) -> RichTable:
        t = RichTable(box=box.SIMPLE_HEAD, show_edge=False, show_header=header)
        for i in rest:
            c = self.cols[i]
            t.add_column(self.heads[i], justify=c.justify, no_wrap=c.whole, overflow="fold", width=widths[i])
        return t

    def _grouped(self, keys: list[int], rest: list[int], width: int):
        """The key columns as a heading over the rows that share them; the other columns aligned
        under one header."""
        widths = self._widths(rest, width - 3 * len(rest) + 1)
        yield self._part(rest, widths, header=True)
        for heading, rows in self.groups(keys):
            yield heading
            t = self._part(rest, widths, header=False)
            for r in rows:
                t.add_row(*[self.rows[r][i] for i in rest], style=self.styles[r])
            yield t

    def _stacked(self, keys: list[int], width: int):
        """One block per row: its key cells as the heading, then its fields, the short ones several
        to a line, each longer text on lines of its own."""
        keys = keys or [0]
        fields = [i for i in range(len(self.cols)) if i not in keys]
        for r, row in enumerate(self.rows):
            yield RichText("")
            yield self.heading([r], keys)
            shown = [i for i in fields if row[i].plain.strip()]
            short = [i for i in shown if self.cols[i].whole or _width(self._pair(i, row[i])) <= width // 2]
            if short:
                yield Padding(_flow([self._pair(i, row[i]) for i in short], width - 2), (0, 0, 0, 2))
            long = [i for i in shown if i not in short]
            if long:  # free text: a line of its own, wrapped beside its name
                g = RichTable.grid(padding=(0, 1, 0, 0))
                g.add_column(style="dim", no_wrap=True)
                g.add_column(overflow="fold")
                for i in long:
                    g.add_row(self.heads[i].copy().append(":"), row[i])
                yield Padding(g, (0, 0, 0, 2))
        if self.caption:
            yield RichText("")

    def _pair(self, i: int, cell: RichText) -> RichText:
        out = self.heads[i].copy()
        out.stylize("dim")
        return out.append(": ").append_text(cell)


def _flow(pairs: list[RichText], width: int) -> RichTable:
    """Short fields in a grid of as many columns as fit `width` (at most MAX_PAIRS), row by row."""
    for per in range(min(MAX_PAIRS, len(pairs)), 0, -1):
        cols = [max(_width(p) for p in pairs[j::per]) for j in range(per)]
        if sum(cols) + 3 * (per - 1) <= width:
            break
    g = RichTable.grid(padding=(0, 3, 0, 0))
    for _ in range(per):
        g.add_column(overflow="fold")
    for k in range(0, len(pairs), per):
        g.add_row(*pairs[k:k + per])
    return g


def block_table(b: Table) -> FitTable:
    """A report table for the terminal: its first column names the row, its last (a verdict, a
    note) and those it says hold long text wrap, the figures between are kept whole."""
    n = len(b.header)
    cols = [Col(escape(h), NAME if j == 0 else TEXT if (j == n - 1 and n > 1) or j in b.wrap else NUMBER, key=j == 0)
            for j, h in enumerate(b.header)]
    rows = [[RichText.from_markup(escape(c.text), style="bold" if c.bold else "") for c in row] for row in b.rows]
    return FitTable(cols, rows, title=escape(b.title) if b.title else None, caption=escape(b.note) if b.note else None)


def print_blocks(console, blocks: list) -> None:
    """Report blocks in the terminal. A table's note that an earlier table printed already (the
    recommendation's per-answer tables share theirs) is not printed again."""
    noted: set[str] = set()
    for b in blocks:
        if isinstance(b, Table):
            block_table(replace(b, note="") if b.note in noted else b).print(console)
            noted.add(b.note)
            console.print()
        elif isinstance(b, Bullets):
            for item in b.items:
                say(console, f"• {escape(item)}")
            console.print()
        elif isinstance(b, Text):
            say(console, escape(b.text))
            console.print()
        elif isinstance(b, Figure):
            continue  # figures are for the HTML/Markdown report
