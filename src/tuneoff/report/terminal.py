"""Report blocks on the terminal (rich), for commands that print a part of the report. Text from
records is printed as text, never as rich markup."""
from __future__ import annotations

from rich.table import Table as RichTable

from tuneoff.escape import term as escape
from tuneoff.report.blocks import Bullets, Figure, Table, Text


def print_blocks(console, blocks: list) -> None:
    for b in blocks:
        if isinstance(b, Table):
            t = RichTable(title=escape(b.title) if b.title else None, caption=escape(b.note) if b.note else None)
            for j, h in enumerate(b.header):  # names and verdicts wrap on a narrow terminal; numbers never
                text = j in (0, len(b.header) - 1)
                t.add_column(escape(h), overflow="fold", no_wrap=not text, min_width=14 if text else None)
            for row in b.rows:
                t.add_row(*[f"[bold]{escape(c.text)}[/]" if c.bold else escape(c.text) for c in row])
            console.print(t)
        elif isinstance(b, Bullets):
            for item in b.items:
                console.print(f"• {escape(item)}", highlight=False)
            console.print()
        elif isinstance(b, Text):
            console.print(escape(b.text), highlight=False)
            console.print()
        elif isinstance(b, Figure):
            continue  # figures are for the HTML/Markdown report
