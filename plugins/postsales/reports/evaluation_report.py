"""The evaluation report: tier-migration flags, the forecast backtest, health vs outcome,
the annual review's recommendations and the segmentation's data gaps, as one self-contained
HTML page per as-of date.

Written to ``<data dir>/reports/evaluation_<YYYY-MM-DD>.html`` from the mart tables the
model_evaluation DAG fills; a table not computed yet shows as such, never as zeros.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from postsales import paths, warehouse
from postsales.forecast import FLAG_NAMES, account_forecasts, forecast_backtest, forecast_tier_calibration
from postsales.outcomes import ALL_BANDS, health_component_signal, health_outcomes
from postsales.reports.data_gaps import data_gaps
from postsales.reports.data_gaps import section as data_gaps_section
from postsales.reports.html import Section, money, number, page, pct, table, write_page
from postsales.reports.segmentation_report import sensitivity_section
from postsales.review import review_migration_matrix, review_recommendations
from postsales.segment.engine import account_segments
from postsales.segment.migration import segment_migration_matrix
from postsales.segment.rules import load_rules
from postsales.segment.sensitivity import quadrant_sensitivity, stored_differences

log = logging.getLogger(__name__)

FLAGGED_SHOWN = 50
FLAG_TITLES = {
    "smb_to_mm_6_9m": "SMB → Mid-Market within 9 months",
    "mm_to_ent_12_15m": "Mid-Market → Enterprise within 15 months",
    "ent_decline_risk": "Enterprise at risk of decline",
}


def _rows(conn: sa.Connection, table_: sa.Table, as_of: date, *order: sa.ColumnElement) -> list[Any]:
    if not sa.inspect(conn).has_table(table_.name, schema=table_.schema):
        return []
    return list(conn.execute(sa.select(table_).where(table_.c.as_of_date == as_of).order_by(*order)))


def _growth(value: float | None) -> str:
    import math

    return "–" if value is None else f"{100 * math.expm1(float(value)):+.1f}%"


def flags_section(forecasts: list[Any]) -> str:
    if not forecasts:
        return "<p>No forecast for this date yet.</p>"
    statuses: dict[str, int] = {}
    for row in forecasts:
        statuses[row.forecast_status] = statuses.get(row.forecast_status, 0) + 1
    parts = [
        "<p>"
        + ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in sorted(statuses.items()))
        + " (accounts with fewer months of ARR than forecast.yaml min_history_months are not projected).</p>"
    ]
    for flag in FLAG_NAMES:
        flagged = sorted((r for r in forecasts if getattr(r, flag)), key=lambda r: -r.arr)
        reasons = [json.loads(r.explanation).get("flags", {}).get(flag, "") for r in flagged[:FLAGGED_SHOWN]]
        parts.append(f"<h3>{FLAG_TITLES[flag]} (<code>{flag}</code>): {len(flagged)} accounts</h3>")
        parts.append(
            table(
                ["account", "ARR", "growth / month", "months to next tier", "+6m", "+9m", "+12m", "+15m", "evidence"],
                (
                    (
                        r.account_id,
                        money(r.arr),
                        _growth(r.blended_growth_monthly),
                        number(r.months_to_next_tier, 1),
                        r.projected_tier_6m,
                        r.projected_tier_9m,
                        r.projected_tier_12m,
                        r.projected_tier_15m,
                        reason,
                    )
                    for r, reason in zip(flagged[:FLAGGED_SHOWN], reasons, strict=True)
                ),
                empty="No account flagged.",
            )
        )
    return "".join(parts)


def backtest_section(backtest: list[Any], calibration: list[Any]) -> str:
    if not backtest:
        return "<p>No backtest for this date yet.</p>"
    flags = table(
        ["flag", "horizon", "forecast dates", "account-dates", "flagged", "happened", "both", "precision", "recall"],
        (
            (
                r.target,
                f"{r.horizon_months}m",
                r.forecast_dates,
                r.accounts,
                r.predicted_positive,
                r.actual_positive,
                r.true_positive,
                pct(r.precision),
                pct(r.recall),
            )
            for r in backtest
            if r.predicted_positive is not None
        ),
    )
    tiers = table(
        ["horizon", "forecast dates", "account-dates", "projected tier right", "tier unchanged (baseline)"],
        (
            (f"+{r.horizon_months}m", r.forecast_dates, r.accounts, pct(r.accuracy), pct(r.baseline_accuracy))
            for r in backtest
            if r.predicted_positive is None
        ),
    )
    matrices = []
    for horizon in sorted({r.horizon_months for r in calibration}):
        cells = [r for r in calibration if r.horizon_months == horizon]
        actual = sorted({r.actual_tier for r in cells})
        projected = sorted({r.projected_tier for r in cells})
        count = {(r.projected_tier, r.actual_tier): r.accounts for r in cells}
        matrices.append(f"<h3>+{horizon} months: projected (rows) vs actual tier (columns)</h3>")
        matrices.append(
            table(
                ["projected", *actual, "right"],
                (
                    (
                        p,
                        *(count.get((p, a), 0) for a in actual),
                        pct(count.get((p, p), 0) / max(1, sum(count.get((p, a), 0) for a in actual))),
                    )
                    for p in projected
                ),
            )
        )
    return (
        "<p class=note>Forecasts replayed from past dates with only the data known then; an outcome is "
        "the ARR actually reached at the horizon (contracts known today).</p>"
        f"<h3>Flags</h3>{flags}<h3>Projected tier</h3>{tiers}{''.join(matrices)}"
    )


def health_section(outcomes: list[Any], signal: list[Any]) -> str:
    if not outcomes:
        return "<p>No health evaluation for this date yet.</p>"
    parts = []
    for horizon in sorted({r.horizon_months for r in outcomes}):
        rows = [r for r in outcomes if r.horizon_months == horizon]
        overall = next(r for r in rows if r.health_band == ALL_BANDS)
        parts.append(
            f"<h3>Within {horizon} months — AUC churn {number(overall.auc_churn)}, churn or contraction "
            f"{number(overall.auc_churn_or_contraction)}, non-renewal {number(overall.auc_non_renewal)}</h3>"
        )
        parts.append(
            table(
                ["health band", "account-dates", "churn", "contraction", "expansion", "renewal", "churn lift"],
                (
                    (
                        r.health_band,
                        r.account_periods,
                        pct(r.churn_rate),
                        pct(r.contraction_rate),
                        pct(r.expansion_rate),
                        pct(r.renewal_rate),
                        number(r.churn_lift, 2),
                    )
                    for r in rows
                ),
            )
        )
    horizons = sorted({r.horizon_months for r in signal})
    by_component: dict[str, dict[int, Any]] = {}
    for row in signal:
        by_component.setdefault(row.component, {})[row.horizon_months] = row
    components = table(
        ["component", "weight", *(f"AUC churn {h}m" for h in horizons), *(f"AUC churn/contr. {h}m" for h in horizons)],
        (
            (
                name,
                number(next(iter(cells.values())).weight, 2),
                *(number(cells[h].auc_churn) if h in cells else "–" for h in horizons),
                *(number(cells[h].auc_churn_or_contraction) if h in cells else "–" for h in horizons),
            )
            for name, cells in by_component.items()
        ),
    )
    return (
        "<p class=note>AUC: the probability that an account which churned had a lower health score on the start "
        "date than one which did not (0.5 = no signal). Lift: the band's churn rate over all accounts'.</p>"
        + "".join(parts)
        + "<h3>Signal per health component</h3>"
        + components
    )


def review_section(recommendations: list[Any], matrix: list[Any]) -> str:
    if not recommendations:
        return "<p>No review recommendations for this date yet.</p>"
    recs = table(
        ["recommendation", "current", "suggested", "accounts moved", "basis"],
        (
            (
                r.item,
                number(r.current_value, 2) if r.area == "health_weight" else money(r.current_value),
                number(r.suggested_value, 2) if r.area == "health_weight" else money(r.suggested_value),
                r.accounts_moved,
                r.basis,
            )
            for r in recommendations
        ),
    )
    parts = [
        "<p class=note>Inputs for the annual review: nothing is applied automatically; change "
        "include/rules/segmentation.yaml (and its version) to adopt one.</p>",
        recs,
    ]
    for area in ("value_tier", "health_band"):
        cells = [r for r in matrix if r.area == area]
        if not cells:
            continue
        old = sorted({r.from_label for r in cells})
        new = sorted({r.to_label for r in cells})
        count = {(r.from_label, r.to_label): r.accounts for r in cells}
        parts.append(f"<h3>{area.replace('_', ' ')}: current (rows) → suggested (columns)</h3>")
        parts.append(table(["current", *new], ((o, *(count.get((o, n), 0) for n in new)) for o in old)))
    return "".join(parts)


def migration_section(matrix: list[Any]) -> str:
    """Accounts moved between value tiers and quadrants since each compared date."""
    parts = []
    for compared_to in sorted({r.compared_to for r in matrix}, reverse=True):
        for dimension in ("value_tier", "quadrant"):
            cells = [r for r in matrix if r.compared_to == compared_to and r.dimension == dimension]
            old = sorted({r.from_label for r in cells})
            new = sorted({r.to_label for r in cells})
            count = {(r.from_label, r.to_label): r.accounts for r in cells}
            moved = sum(n for (a, b), n in count.items() if a != b and a != "(new)" and b != "(gone)")
            parts.append(
                f"<h3>{dimension.replace('_', ' ')}: {compared_to:%Y-%m-%d} (rows) → now (columns), {moved} moved</h3>"
            )
            parts.append(table(["then", *new], ((o, *(count.get((o, n), 0) for n in new)) for o in old)))
    return "".join(parts)


def _sensitivity(conn: sa.Connection, as_of: date) -> str:
    """How many accounts the 2x2's thresholds moved by ±10 % would move: the rules to approve, with
    their sensitivity."""
    rules = load_rules()
    if not _rows(conn, account_segments, as_of, account_segments.c.account_id):
        return sensitivity_section([], {}, rules.version)
    return sensitivity_section(
        quadrant_sensitivity(conn, as_of, rules), stored_differences(conn, as_of, rules), rules.version
    )


def report_path(as_of: date) -> Path:
    return paths.data_dir() / "reports" / f"evaluation_{as_of:%Y-%m-%d}.html"


def write_report(as_of: date, *, warehouse_url: str | None = None) -> Path:
    eng = warehouse.engine(warehouse_url)
    with eng.connect() as conn:
        forecasts = _rows(conn, account_forecasts, as_of, account_forecasts.c.account_id)
        backtest = _rows(conn, forecast_backtest, as_of, forecast_backtest.c.horizon_months)
        calibration = _rows(conn, forecast_tier_calibration, as_of)
        outcomes = _rows(conn, health_outcomes, as_of, health_outcomes.c.horizon_months)
        signal = _rows(conn, health_component_signal, as_of, health_component_signal.c.horizon_months)
        recommendations = _rows(conn, review_recommendations, as_of)
        matrix = _rows(conn, review_migration_matrix, as_of)
        migration = _rows(conn, segment_migration_matrix, as_of)
        gaps = data_gaps(conn, as_of)
        sensitivity = _sensitivity(conn, as_of)
    counts = {flag: sum(1 for r in forecasts if getattr(r, flag)) for flag in FLAG_NAMES}
    longest = max((r for r in outcomes if r.health_band == ALL_BANDS), key=lambda r: r.horizon_months, default=None)
    kpis = "".join(f"<div class=kpi>{FLAG_TITLES[f]}<b>{n}</b>accounts</div>" for f, n in counts.items())
    if longest is not None:
        kpis += (
            f"<div class=kpi>Health AUC, churn within {longest.horizon_months} months"
            f"<b>{number(longest.auc_churn)}</b>{longest.account_periods} account-dates</div>"
        )
    sections = [
        Section("Tier-migration flags", flags_section(forecasts)),
        Section("Forecast backtest", backtest_section(backtest, calibration)),
        Section("Health score vs outcome", health_section(outcomes, signal)),
        Section("Annual review recommendations", review_section(recommendations, matrix)),
        Section("Quadrant threshold sensitivity (±10 %)", sensitivity),
        data_gaps_section(gaps),
    ]
    if migration:
        sections.insert(0, Section("Segment migration", migration_section(migration)))
    path = write_page(
        report_path(as_of),
        page(
            f"Evaluation report {as_of:%Y-%m-%d}",
            f"Forecast and health evaluation — as of {as_of:%d %B %Y}",
            f"<div id=headline>{kpis}</div>",
            sections,
        ),
    )
    log.info("evaluation report for %s: %s", as_of, path)
    return path
