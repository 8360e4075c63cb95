"""One self-contained HTML page, and its markdown summary, from a list of sections.

The page needs nothing but a browser: figures are embedded as `data:image/png;base64,...`, the style is
inline, there is no script and no external link, so it can be mailed, archived or opened offline. The
markdown summary renders the same sections' text and tables (figures are named, not embedded).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from generator.report.tables import Table


@dataclass(frozen=True)
class Figure:
    png: bytes
    caption: str


@dataclass(frozen=True)
class Raw:
    """Data shown folded on the page (as JSON) and left out of the markdown."""

    title: str
    data: Any


Block = str | Table | Figure | Raw  # a str is a paragraph


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; } pre { background: #f7f7f7; padding: .8em; overflow: auto; }
""".strip()


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if _is_number(c) else ''}>{html.escape(c)}</td>" for c in row)
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    alt = html.escape(fig.caption, quote=True)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
    )


def _html_block(block: Block) -> str:
    if isinstance(block, str):
        return f"<p>{html.escape(block)}</p>"
    if isinstance(block, Table):
        return html_table(block)
    if isinstance(block, Figure):
        return html_figure(block)
    text = html.escape(json.dumps(block.data, indent=1, ensure_ascii=False))
    return f"<details><summary>{html.escape(block.title)}</summary><pre>{text}</pre></details>"


def html_page(title: str, sections: Sequence[Section]) -> str:
    body = "\n".join(
        f"<section><h2>{html.escape(s.title)}</h2>\n"
        + "\n".join(_html_block(b) for b in s.blocks)
        + "</section>"
        for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _md_cell(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def md_table(table: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |"]
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def markdown(title: str, sections: Sequence[Section]) -> str:
    parts = [f"# {title}"]
    for s in sections:
        blocks = [b for b in s.blocks if not isinstance(b, Raw)]
        if not blocks:
            continue
        parts.append(f"## {s.title}")
        for b in blocks:
            if isinstance(b, str):
                parts.append(b)
            elif isinstance(b, Table):
                parts.append(md_table(b))
            elif isinstance(b, Figure):
                parts.append(f"*Figure: {b.caption} (in report.html)*")
    return "\n\n".join(parts) + "\n"
