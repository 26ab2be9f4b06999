"""Shared pieces of the self-contained HTML reports: number formats, tables, page shell."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 6px;border:1px solid #e3e3e3;text-align:right}
th{background:#fafafa}.heat td{min-width:34px}.scroll{overflow-x:auto}.kpi{display:inline-block;margin-right:28px}
.kpi b{display:block;font-size:22px}.key{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.note{color:#666;font-size:12px}td.text{text-align:left}.plain td,.plain th{white-space:nowrap}
.plain td.long{white-space:normal;min-width:320px}
.swatch{display:inline-block;min-width:44px;padding:1px 4px;margin-right:2px;font-size:11px;text-align:center}
.legend{font-size:12px}th.axis{text-align:center;font-weight:normal;font-style:italic}
"""


@dataclass(frozen=True)
class Section:
    title: str
    body_html: str


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * float(value):.0f}%"


def money(value: float | None) -> str:
    return "–" if value is None else f"{float(value):,.0f}"


def number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "No rows.") -> str:
    """A plain table; the first cell of each row is a header cell, text cells align left."""
    body = []
    for row in rows:
        cells = [f"<th>{html.escape(str(row[0]))}</th>"]
        for value in row[1:]:
            text = isinstance(value, str) and not value[:1].isdigit()
            css = (' class="text long"' if len(value) > 40 else ' class="text"') if text else ""
            cells.append(f"<td{css}>{html.escape(str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return f"<div class=scroll><table class=plain><tr>{head}</tr>{''.join(body)}</table></div>"


def page(title: str, heading: str, intro_html: str, sections: Sequence[Section]) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f"<h2>{html.escape(s.title)}</h2>{s.body_html}" for s in sections)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1>"
        f"<p class=note>Generated {generated}. Definitions: docs/metrics.md. Money in the reporting currency.</p>"
        f"{intro_html}{body}</body></html>"
    )


def write_page(path: Path, text: str) -> Path:
    """Write a rendered report page (its folder created) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
