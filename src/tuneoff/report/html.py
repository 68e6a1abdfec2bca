"""One self-contained HTML file: inline CSS, figures as base64 PNG, no scripts, no network.
Every piece of text is escaped here (html.escape), whatever a record holds."""
from __future__ import annotations

import base64
import datetime as _dt
import html as _html

from tuneoff.report.blocks import Bullets, Figure, Section, Table, Text

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1400px; margin: 0 auto; padding: 0 24px 48px; }
h1 { font-size: 24px; margin: 24px 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-top: 8px; border-top: 2px solid #ddd; }
h3 { font-size: 15px; margin: 20px 0 6px; }
nav { font-size: 13px; margin: 8px 0 16px; }
nav a { margin-right: 14px; color: #0557a8; text-decoration: none; }
.meta { color: #666; font-size: 12px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 4px; font-size: 12.5px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; }
th.group { text-align: center; background: #e6e9ed; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 12em; max-width: 480px; overflow-wrap: anywhere; }
td.below { color: #b00020; }
tr.baseline td, td.baseline { font-style: italic; color: #555; background: #fafafa; }
td.yes { background: #e3f6e3; }
.note { color: #555; font-size: 12px; margin: 2px 0 14px; }
ul.warn { background: #fff7e0; border-left: 4px solid #f0a500; padding: 8px 8px 8px 28px; }
ul.warn li { margin: 3px 0; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; padding: 8px; white-space: pre-wrap;
      word-break: break-word; font-size: 12px; max-height: 260px; overflow: auto; }
figure { margin: 8px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 12px; max-width: 1100px; }
"""

WRAP_COLUMNS = {"error", "note", "options", "training settings (config.train)", "predicted labels (share)"}


def e(text) -> str:
    return _html.escape("" if text is None else str(text), quote=True)


def lines(text) -> str:
    """Escaped text whose lines stay lines (a cell of "key = value" lines)."""
    return "<br>".join(e(line) for line in ("" if text is None else str(text)).split("\n"))


def _table(t: Table) -> str:
    out = []
    if t.title:
        out.append(f"<h3>{e(t.title)}</h3>")
    out.append('<div class="scroll"><table>')
    if t.groups and any(label for label, _ in t.groups):
        out.append("<tr>" + "".join(f'<th class="group" colspan="{int(span)}">{e(label)}</th>'
                                    for label, span in t.groups) + "</tr>")
    # long subset names ("heuristic=x|label=y") may break after "|"
    out.append("<tr>" + "".join(f"<th>{e(h).replace('|', '|<wbr>')}</th>" for h in t.header) + "</tr>")
    for i, row in enumerate(t.rows):
        rc = t.row_cls[i] if t.row_cls and i < len(t.row_cls) else ""
        tds = []
        for j, c in enumerate(row):
            wrap = j in t.wrap or (j < len(t.header) and t.header[j] in WRAP_COLUMNS)
            cls = " ".join(x for x in (c.cls, "wrap" if wrap else "") if x)
            attrs = (f' class="{e(cls)}"' if cls else "") + (f' style="background:{e(c.bg)}"' if c.bg else "")
            body = f"<b>{lines(c.text)}</b>" if c.bold else lines(c.text)
            tds.append(f"<td{attrs}>{body}</td>")
        out.append((f'<tr class="{e(rc)}">' if rc else "<tr>") + "".join(tds) + "</tr>")
    out.append("</table></div>")
    if t.note:
        out.append(f'<p class="note">{e(t.note)}</p>')
    return "\n".join(out)


def _block(b) -> str:
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        return (f'<figure><img alt="{e(b.name)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(b.caption)}</figcaption></figure>")
    if isinstance(b, Bullets):
        cls = ' class="warn"' if b.kind == "warn" else ""
        return f"<ul{cls}>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Text):
        if b.kind == "pre":
            return f"<pre>{e(b.text)}</pre>"
        return f"<p>{e(b.text)}</p>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_html(sections: list[Section], title: str) -> str:
    now = _dt.datetime.now().isoformat(timespec="seconds")
    nav = "".join(f'<a href="#{e(s.id)}">{e(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>", f'<p class="meta">written {e(now)} by tuneoff</p>', f"<nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{e(s.id)}"><h2>{e(s.title)}</h2>')
        parts += [_block(b) for b in s.blocks]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
