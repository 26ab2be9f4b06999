"""A self-contained HTML report per cohort snapshot: no scripts, fonts or files to fetch.

Sections: headline retention, cohort retention heatmaps (logo, GRR, NRR), MRR movement
bars per month (inline SVG), and the cohort views that later stages add (by segment,
pricing). Written to ``<data dir>/reports/cohorts_<YYYY-MM>.html``.
"""

from __future__ import annotations

import html
import logging
import math
from datetime import date
from pathlib import Path
from typing import Any

from postsales import paths, warehouse
from postsales.reports.html import Section, page, write_page
from postsales.reports.html import money as _money
from postsales.reports.html import pct as _pct

log = logging.getLogger(__name__)

MAX_MONTHS_SHOWN = 24


def heat_color(value: float | None, metric: str) -> str:
    """Red (low) to green (high); NRR above 100 % deepens the green."""
    if value is None:
        return "#f4f4f4"
    ratio = float(value)
    if metric == "nrr":
        ratio = min(ratio, 1.5) / 1.5
    hue = 120 * max(0.0, min(1.0, ratio))
    return f"hsl({hue:.0f}, 65%, {88 - 30 * max(0.0, min(1.0, ratio)):.0f}%)"


# Colour legend stops per metric: NRR runs past 100 % (its green deepens up to 150 %).
LEGEND_STOPS = {"nrr": (0.0, 0.5, 1.0, 1.25, 1.5)}
DEFAULT_LEGEND_STOPS = (0.0, 0.25, 0.5, 0.75, 1.0)

# What k counts, per cohort grain (docs/metrics.md).
MONTHS_SINCE = {
    "month": "months since acquisition",
    "year": "months since 1 January of the acquisition year",
}


def heat_legend(metric: str, caption: str = "colour scale", note: str = "blank: month not reached yet") -> str:
    """The colour scale of a heatmap: one swatch per stop, labelled with its value."""
    stops = LEGEND_STOPS.get(metric, DEFAULT_LEGEND_STOPS)
    swatches = "".join(
        f'<span class=swatch style="background:{heat_color(stop, metric)}">'
        f"{'≥' if metric == 'nrr' and stop == stops[-1] else ''}{_pct(stop)}</span>"
        for stop in stops
    )
    return f"<p class=legend>{caption}: {swatches} <span class=note>{note}</span></p>"


def heatmap_table(rows: list[Any], metric: str, title: str, grain: str = "month") -> str:
    """Cohorts as rows, k = 0 .. 24 as columns; size is the whole cohort (``cohort_size``)."""
    cohorts: dict[date, dict[int, Any]] = {}
    for row in rows:
        cohorts.setdefault(row.cohort_month, {})[row.months_since_start] = row
    if not cohorts:
        return f"<h3>{html.escape(title)}</h3><p>No cohorts yet.</p>"
    horizon = min(MAX_MONTHS_SHOWN, max(max(months) for months in cohorts.values()))
    label = "%Y" if grain == "year" else "%Y-%m"
    head = "".join(f"<th>{k}</th>" for k in range(horizon + 1))
    body = []
    for cohort, months in sorted(cohorts.items()):
        size = next(iter(months.values())).cohort_size
        cells = []
        for k in range(horizon + 1):
            row = months.get(k)
            value = getattr(row, metric) if row is not None else None
            style = f' style="background:{heat_color(value, metric)}"' if row is not None else ""
            cells.append(f"<td{style}>{_pct(value) if row is not None else ''}</td>")
        body.append(f"<tr><th>{cohort:{label}}</th><td class=n>{size}</td>{''.join(cells)}</tr>")
    return (
        f"<h3>{html.escape(title)}</h3>{heat_legend(metric)}<div class=scroll><table class=heat>"
        f"<tr><th rowspan=2>cohort</th><th rowspan=2>size</th>"
        f"<th colspan={horizon + 1} class=axis>{MONTHS_SINCE[grain]}</th></tr>"
        f"<tr>{head}</tr>{''.join(body)}</table></div>"
    )


MOVEMENT_COLORS = {
    "new_mrr": "#2b8a3e",
    "expansion_mrr": "#74b816",
    "reactivation_mrr": "#1c7ed6",
    "contraction_mrr": "#f08c00",
    "churned_mrr": "#e03131",
}


def axis_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10ⁿ, at least 1) giving about ``ticks`` intervals over ``span``."""
    raw = max(span / ticks, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def movement_bars(rows: list[Any]) -> str:
    """Stacked bars per month: gains above the axis, losses below, a y axis in money (inline SVG)."""
    rows = rows[-MAX_MONTHS_SHOWN:]
    if not rows:
        return "<p>No MRR yet.</p>"
    gains = [sum(max(0.0, float(getattr(r, k))) for k in MOVEMENT_COLORS) for r in rows]
    losses = [sum(min(0.0, float(getattr(r, k))) for k in MOVEMENT_COLORS) for r in rows]
    scale_top, scale_bottom = max([*gains, 1.0]), -min([*losses, -1.0])
    left, bar = 80, 28  # the left margin holds the tick labels
    width, height = 40 * len(rows) + left + 10, 260
    zero = 20 + 200 * scale_top / (scale_top + scale_bottom)
    unit = 200 / (scale_top + scale_bottom)
    step = axis_step(scale_top + scale_bottom)
    parts = [
        '<text x="12" y="120" font-size="10" text-anchor="middle" transform="rotate(-90 12 120)">'
        "MRR change per month</text>",
        f'<line x1="{left - 5}" x2="{left - 5}" y1="20" y2="220" stroke="#333"/>',
    ]
    for tick in range(-math.floor(scale_bottom / step), math.floor(scale_top / step) + 1):
        value = tick * step
        y = zero - value * unit
        parts.append(
            f'<line class=grid x1="{left - 8}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
            f'<text class=tick x="{left - 10}" y="{y + 3:.1f}" font-size="9" text-anchor="end">{_money(value)}</text>'
        )
    parts.append(f'<line class=zero x1="{left - 5}" x2="{width}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#333"/>')
    for index, row in enumerate(rows):
        x = left + 40 * index
        up, down = zero, zero
        for key, color in MOVEMENT_COLORS.items():
            amount = float(getattr(row, key))
            if amount > 0:
                up -= amount * unit
                parts.append(
                    f'<rect x="{x}" y="{up:.1f}" width="{bar}" height="{amount * unit:.1f}" fill="{color}">'
                    f"<title>{row.month:%Y-%m} {key}: {_money(amount)}</title></rect>"
                )
            elif amount < 0:
                parts.append(
                    f'<rect x="{x}" y="{down:.1f}" width="{bar}" height="{-amount * unit:.1f}" fill="{color}">'
                    f"<title>{row.month:%Y-%m} {key}: {_money(amount)}</title></rect>"
                )
                down -= amount * unit
        parts.append(
            f'<text x="{x + bar / 2}" y="{height - 5}" font-size="9" text-anchor="middle">{row.month:%y-%m}</text>'
        )
    legend = " ".join(
        f'<span class=key style="background:{color}"></span>{key.replace("_mrr", "")}'
        for key, color in MOVEMENT_COLORS.items()
    )
    return (
        f'<svg class=bars width="{width}" height="{height}" role="img" aria-label="MRR movements per month">'
        f"{''.join(parts)}</svg><p class=legend>{legend}</p>"
    )


def movements_table(rows: list[Any]) -> str:
    head = "<tr><th>month</th><th>MRR</th><th>customers</th>" + "".join(
        f"<th>{k.replace('_mrr', '')}</th>" for k in (*MOVEMENT_COLORS, "net_new_mrr")
    )
    body = "".join(
        f"<tr><th>{r.month:%Y-%m}</th><td>{_money(r.mrr)}</td><td>{r.customers}</td>"
        + "".join(f"<td>{_money(getattr(r, k))}</td>" for k in (*MOVEMENT_COLORS, "net_new_mrr"))
        + "</tr>"
        for r in rows[-MAX_MONTHS_SHOWN:]
    )
    return f"<div class=scroll><table class=plain>{head}</tr>{body}</table></div>"


def segment_table(rows: list[Any]) -> str:
    """One table per dimension: segments as rows, logo retention and NRR at 3/6/12 months."""
    if not rows:
        return "<p>No segment dimensions configured (include/rules/cohorts.yaml).</p>"
    by_dimension: dict[str, dict[str, dict[int, Any]]] = {}
    for row in rows:
        by_dimension.setdefault(row.dimension, {}).setdefault(row.segment_value, {})[row.months_since_start] = row
    months = (3, 6, 12)
    head = "".join(f"<th>logo {k}m</th><th>NRR {k}m</th>" for k in months)
    parts = []
    for dimension, segments in by_dimension.items():
        body = []
        for segment, cells in sorted(segments.items()):
            size = max(cell.customers for cell in cells.values())
            values = "".join(
                f'<td style="background:{heat_color(getattr(cells.get(k), "logo_retention", None), "logo")}">'
                f"{_pct(getattr(cells.get(k), 'logo_retention', None))}</td>"
                f'<td style="background:{heat_color(getattr(cells.get(k), "nrr", None), "nrr")}">'
                f"{_pct(getattr(cells.get(k), 'nrr', None))}</td>"
                for k in months
            )
            body.append(f"<tr><th>{html.escape(str(segment))}</th><td>{size}</td>{values}</tr>")
        parts.append(
            f"<h3>{html.escape(dimension.replace('_', ' '))}</h3><table class=plain>"
            f"<tr><th>segment</th><th>accounts</th>{head}</tr>{''.join(body)}</table>"
        )
    legends = heat_legend("logo", "colour scale, logo", "–: month not reached yet") + heat_legend("nrr", "NRR")
    return legends + "".join(parts)


def pricing_table(rows: list[Any], expansion: list[Any]) -> str:
    if not rows:
        return "<p>No cohorts yet.</p>"
    change = rows[0].pricing_change_date
    body = "".join(
        f"<tr><th>{r.months_since_start}</th><td>{r.pricing_period}</td><td>{r.cohorts}</td>"
        f"<td>{r.cohort_customers}</td><td>{_money(r.starting_mrr)}</td><td>{_pct(r.logo_retention)}</td>"
        f"<td>{_pct(r.grr)}</td><td>{_pct(r.nrr)}</td></tr>"
        for r in rows
    )
    comparison = (
        f"<p>Cohorts acquired before vs on/after the pricing change of {change:%Y-%m-%d}.</p>"
        "<table class=plain><tr><th>months</th><th>acquired</th><th>cohorts</th><th>accounts</th>"
        f"<th>starting MRR</th><th>logo</th><th>GRR</th><th>NRR</th></tr>{body}</table>"
    )
    if not expansion:
        return comparison
    quarter = expansion[0].this_quarter
    lines = "".join(
        f"<tr><th>{r.cohort_month:%Y-%m}</th><td>{r.customers if r.customers is not None else '–'}</td>"
        f"<td>{_money(r.expansion_mrr_this_quarter)}</td><td>{_pct(r.expansion_rate_this_quarter)}</td>"
        f"<td>{_money(r.expansion_mrr_last_quarter)}</td><td>{_pct(r.expansion_rate_last_quarter)}</td></tr>"
        for r in expansion
    )
    return comparison + (
        f"<h3>Expansion this quarter ({quarter:%Y-%m} onwards, to date) vs last quarter</h3>"
        "<p class=note>Expansion MRR from existing customers over the cohort's MRR at the end of the "
        "quarter before.</p><div class=scroll><table class=plain><tr><th>cohort</th><th>accounts</th>"
        "<th>expansion MRR this quarter</th><th>rate</th><th>expansion MRR last quarter</th><th>rate</th></tr>"
        f"{lines}</table></div>"
    )


YEARLY_NOTE = (
    "<p class=note>A yearly cohort is every account acquired in that year (so far, for the current "
    "year): that is its size. Month k counts from 1 January, so during the first year each rate is "
    "over the accounts acquired by then (docs/metrics.md).</p>"
)


def render(snapshot: date, summary: list[Any], sections: list[Section]) -> str:
    kpis = "".join(
        f"<div class=kpi>{row.months_since_start}-month<b>{_pct(row.logo_retention)}</b>"
        f"logo · GRR {_pct(row.grr)} · NRR {_pct(row.nrr)}<br><span class=note>{row.customers} accounts in "
        f"{row.cohorts} cohorts</span></div>"
        for row in summary
    )
    return page(
        f"Cohort report {snapshot:%Y-%m}",
        f"Cohort report — snapshot {snapshot:%B %Y}",
        f"<div id=headline>{kpis or '<p>No cohort has reached one month yet.</p>'}</div>",
        sections,
    )


def report_path(snapshot: date) -> Path:
    return paths.data_dir() / "reports" / f"cohorts_{snapshot:%Y-%m}.html"


def write_report(snapshot: date, *, warehouse_url: str | None = None, extra_sections: list[Section] | None = None):
    """Render the snapshot's report from the warehouse and write it; returns the path."""
    eng = warehouse.engine(warehouse_url)
    with eng.connect() as conn:
        summary = warehouse.query(conn, "reports", "retention_at_months", snapshot_month=snapshot)
        monthly = warehouse.query(conn, "reports", "cohort_triangle", snapshot_month=snapshot, cohort_grain="month")
        yearly = warehouse.query(conn, "reports", "cohort_triangle", snapshot_month=snapshot, cohort_grain="year")
        movements = warehouse.query(conn, "reports", "mrr_movement_history", snapshot_month=snapshot)
        by_segment = warehouse.query(conn, "reports", "segment_retention_summary", snapshot_month=snapshot)
        pricing = warehouse.query(conn, "reports", "pricing_comparison", snapshot_month=snapshot)
        expansion = warehouse.query(conn, "reports", "quarterly_expansion", snapshot_month=snapshot)
    sections = [
        Section(
            "Cohort retention (monthly cohorts)",
            heatmap_table(monthly, "logo_retention", "Logo retention")
            + heatmap_table(monthly, "grr", "Gross revenue retention (GRR)")
            + heatmap_table(monthly, "nrr", "Net revenue retention (NRR)"),
        ),
        Section("MRR movements", movement_bars(movements) + movements_table(movements)),
        Section("Cohorts by segment", segment_table(by_segment)),
        Section("Pricing & packaging", pricing_table(pricing, expansion)),
        Section(
            "Cohort retention (yearly cohorts)",
            YEARLY_NOTE
            + heatmap_table(yearly, "logo_retention", "Logo retention", grain="year")
            + heatmap_table(yearly, "nrr", "NRR", grain="year"),
        ),
        *(extra_sections or []),
    ]
    path = report_path(snapshot)
    write_page(path, render(snapshot, summary, sections))
    log.info("cohort report for %s: %s", snapshot, path)
    return path
