"""The same report as Markdown: the same tables, figures linked as PNG files written beside it.
Every text from the records goes through `tuneoff.escape.md`: shown literally, never live Markdown or HTML."""
from __future__ import annotations

import html as _html

from tuneoff.escape import md as _md
from tuneoff.report.blocks import Bullets, Figure, Section, Table, Text


def _cell(text: str) -> str:
    """A table cell whose lines stay lines ("<br>" between them, each line escaped)."""
    return "<br>".join(_md(line) for line in str(text).split("\n"))


def _table(t: Table) -> list[str]:
    out = []
    if t.title:
        out += [f"### {_md(t.title)}", ""]
    header = list(t.header)
    if t.groups and any(label for label, _ in t.groups):
        labels = [lab for lab, span in t.groups for _ in range(span)]
        header = [f"{g} · {h}" if g else h for g, h in zip(labels, header)] + header[len(labels):]
    out.append("| " + " | ".join(_md(h) for h in header) + " |")
    out.append("|" + "---|" * len(header))
    for row in t.rows:
        out.append("| " + " | ".join(f"**{_cell(c.text)}**" if c.bold and c.text else _cell(c.text) for c in row) + " |")
    out.append("")
    if t.note:
        out += [f"*{_md(t.note)}*", ""]
    return out


def render_markdown(sections: list[Section], title: str, fig_dir: str) -> tuple[str, dict[str, bytes]]:
    """(markdown text, {png file name: bytes}) — the PNGs go in `fig_dir` beside the .md file."""
    lines = [f"# {_md(title)}", ""]
    figures: dict[str, bytes] = {}
    for s in sections:
        lines += [f"## {_md(s.title)}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                lines += _table(b)
            elif isinstance(b, Figure):
                name = f"{b.name}.png"
                figures[name] = b.png
                lines += [f"![{_md(b.name)}]({fig_dir}/{name})", "", f"*{_md(b.caption)}*", ""]
            elif isinstance(b, Bullets):
                lines += [f"- {'⚠ ' if b.kind == 'warn' else ''}{_md(i)}" for i in b.items] + [""]
            elif isinstance(b, Text):
                if b.kind == "pre":  # an HTML block: shown verbatim, and no raw markup from records
                    lines += ["<pre>" + _html.escape(b.text) + "</pre>", ""]
                else:
                    lines += [_md(b.text), ""]
    return "\n".join(lines), figures
