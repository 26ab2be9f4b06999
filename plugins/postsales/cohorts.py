"""Cohort analysis: monthly MRR, the MRR movement bridge and cohort retention, per snapshot.

Everything is computed inside the warehouse by the queries in ``include/sql/cohorts/``
(one per output table, DuckDB and PostgreSQL alike). A snapshot for month M
(``snapshot_month`` = first day of M) sees only contract versions known at the end of M,
so later loads never change it; see ``docs/metrics.md`` ("Cohorts and MRR") for the
definitions and rules.

Each table is partitioned by ``snapshot_month``: :func:`compute_snapshot` replaces one
snapshot's partition in all three tables in a single transaction, so a rerun leaves
identical rows and readers never see a half-written snapshot.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import Field

from postsales import paths, warehouse
from postsales.config import StrictModel, Text, load_yaml
from postsales.tables import table

if TYPE_CHECKING:
    from postsales.segment.rules import SegmentationRules

log = logging.getLogger(__name__)

STAGE = "cohorts"
MOVEMENTS = ("new", "expansion", "contraction", "churn", "reactivation", "unchanged")
COHORT_GRAINS = ("month", "year")

mrr_monthly = table("mart.mrr_monthly")
mrr_movements = table("mart.mrr_movements")
cohort_retention = table("mart.cohort_retention")
account_cohort_segments = table("mart.account_cohort_segments")
cohort_retention_by_segment = table("mart.cohort_retention_by_segment")
pricing_cohort_comparison = table("mart.pricing_cohort_comparison")
cohort_quarterly_expansion = table("mart.cohort_quarterly_expansion")
TABLES = (
    mrr_monthly,
    mrr_movements,
    cohort_retention,
    account_cohort_segments,
    cohort_retention_by_segment,
    pricing_cohort_comparison,
    cohort_quarterly_expansion,
)


class PricingChange(StrictModel):
    change_date: date
    description: Text = ""


class CohortSettings(StrictModel):
    version: int
    segment_dimensions: list[Literal["value_tier_at_acquisition", "industry_group", "quadrant"]] = Field(
        default_factory=list
    )
    pricing: PricingChange


def load_settings(path: Path | None = None) -> CohortSettings:
    return load_yaml(path or paths.rules_dir() / "cohorts.yaml", CohortSettings)


def _text_query(name: str, *columns: sa.Column) -> sa.Subquery:
    return sa.text(warehouse.sql_text(STAGE, name)).columns(*columns).subquery(name)


def compile_account_segments(settings: CohortSettings, rules: SegmentationRules) -> sa.Select:
    """Every acquired account's segment per dimension (plus 'all'), as known at the snapshot."""
    from postsales.segment.bands import band_case, group_case

    acquisitions = _text_query(
        "account_acquisitions",
        sa.column("account_id", sa.Text),
        sa.column("cohort_month", sa.Date),
        sa.column("starting_arr", sa.Float(53)),
    )
    snapshot = sa.bindparam("snapshot_month", type_=sa.Date)

    def rows(dimension: str, value: sa.ColumnElement, source=None, join_on=None) -> sa.Select:
        select = sa.select(
            snapshot.label("snapshot_month"),
            acquisitions.c.account_id,
            sa.literal(dimension).label("dimension"),
            value.label("segment_value"),
        )
        return select.select_from(acquisitions.outerjoin(source, join_on)) if source is not None else select

    parts = [rows("all", sa.literal("all"))]
    for dimension in settings.segment_dimensions:
        if dimension == "value_tier_at_acquisition":
            parts.append(rows(dimension, band_case(acquisitions.c.starting_arr, rules.customer_value.arr_band)))
        elif dimension == "industry_group":
            industries = _text_query("account_industries", sa.column("account_id", sa.Text), sa.column("industry"))
            # no account row, or an empty industry: the group's missing label (Unknown)
            value = group_case(industries.c.industry, rules.firmographic.industry_group)
            parts.append(rows(dimension, value, industries, industries.c.account_id == acquisitions.c.account_id))
        elif dimension == "quadrant":
            quadrants = _text_query("account_quadrants", sa.column("account_id", sa.Text), sa.column("quadrant"))
            value = sa.func.coalesce(quadrants.c.quadrant, sa.literal("Not segmented"))
            parts.append(rows(dimension, value, quadrants, quadrants.c.account_id == acquisitions.c.account_id))
    return sa.union_all(*parts).subquery("segments").select()


# Filled in this order, each reading the partitions written before it in the same transaction.
QUERY_OUTPUTS_BEFORE_SEGMENTS = (mrr_monthly, mrr_movements)
QUERY_OUTPUTS_AFTER_SEGMENTS = (
    cohort_retention_by_segment,
    cohort_retention,
    pricing_cohort_comparison,
    cohort_quarterly_expansion,
)
OUTPUTS = (*QUERY_OUTPUTS_BEFORE_SEGMENTS, account_cohort_segments, *QUERY_OUTPUTS_AFTER_SEGMENTS)


def snapshot_month_of(value: date) -> date:
    """``value`` as a plain date, which must be the first day of a month."""
    if isinstance(value, datetime):
        if value.time() != datetime.min.time():
            raise ValueError(f"snapshot_month must be the first day of a month at midnight, got {value.isoformat()}")
        value = value.date()
    if not isinstance(value, date):
        raise TypeError(f"snapshot_month must be a date, got {type(value).__name__}")
    if value.day != 1:
        raise ValueError(
            f"snapshot_month must be the first day of a month, got {value.isoformat()} "
            f"(did you mean {value.replace(day=1).isoformat()}?)"
        )
    return date(value.year, value.month, 1)


def compute_snapshot(
    snapshot_month: date,
    *,
    warehouse_url: str | None = None,
    settings: CohortSettings | None = None,
    rules: SegmentationRules | None = None,
) -> dict[str, Any]:
    """Replace the ``snapshot_month`` partition of the three cohort tables in one transaction.

    Returns the row counts written and the snapshot month's totals, for logging.
    """
    from postsales.segment.engine import ensure_segments
    from postsales.segment.rules import load_rules

    month = snapshot_month_of(snapshot_month)
    settings = settings or load_settings()
    segments_select = compile_account_segments(settings, rules or load_rules())
    next_month = (month + timedelta(days=32)).replace(day=1)
    params = {
        "snapshot_month": month,
        "next_month": next_month,
        "pricing_change_date": settings.pricing.change_date,
    }
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)  # staging.contracts must exist even before the first extract
    # The quadrant dimension reads the segmentation as of the month's last day: computed here
    # when missing, so the snapshot never depends on which DAG happened to segment that date.
    ensure_segments([next_month - timedelta(days=1)], warehouse_url=warehouse_url)
    counts: dict[str, Any] = {"snapshot_month": month.isoformat()}
    with eng.begin() as conn:
        for table in OUTPUTS:
            in_snapshot = table.c.snapshot_month == month
            if table is account_cohort_segments:
                warehouse.delete_partition(conn, table, in_snapshot)
                conn.execute(table.insert().from_select([c.name for c in table.c], segments_select), params)
            else:
                warehouse.replace_from_query(conn, table, in_snapshot, **params)
            counts[f"{table.name}_rows"] = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(in_snapshot)
            ).scalar_one()
        latest = conn.execute(
            sa.select(mrr_movements.c.mrr, mrr_movements.c.customers).where(
                mrr_movements.c.snapshot_month == month, mrr_movements.c.month == month
            )
        ).one_or_none()
    counts["mrr"] = float(latest.mrr) if latest else 0.0
    counts["customers"] = int(latest.customers) if latest else 0
    log.info(
        "cohorts snapshot %s: %s customers, MRR %.2f; rows: %s",
        counts["snapshot_month"],
        counts["customers"],
        counts["mrr"],
        ", ".join(f"{t.name} {counts[f'{t.name}_rows']}" for t in OUTPUTS),
    )
    return counts
