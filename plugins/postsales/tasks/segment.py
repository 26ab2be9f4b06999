"""Segmentation tasks: segments, the tier-migration forecast, the segmentation report
(``account_segmentation``); segments and forecast as of a month's end and the migration matrix
(``segment_revision``, ``annual_segmentation_review``)."""

from __future__ import annotations

import logging

from airflow.sdk import task

from postsales.assets import (
    FORECAST_READS,
    FORECASTS,
    MIGRATION,
    MIGRATION_READS,
    SEGMENT_READS,
    SEGMENTATION_REPORT_READS,
    SEGMENTS,
    combined,
)
from postsales.pools import WAREHOUSE_POOL

log = logging.getLogger(__name__)


@task(pool=WAREHOUSE_POOL, inlets=SEGMENT_READS, outlets=SEGMENTS)
def segment_accounts() -> dict:
    """Compute segments for the run's as-of date (``tasks.context.segmentation_as_of``); returns counts for the log."""
    from airflow.sdk import get_current_context

    from postsales.segment.engine import compute_segments
    from postsales.tasks.context import segmentation_as_of

    context = get_current_context()
    as_of = segmentation_as_of(
        context["params"].get("as_of_date"),
        context.get("triggering_asset_events"),
        getattr(context.get("dag_run"), "run_after", None),
    )
    summary = compute_segments(as_of)
    log.info("segmentation as of %s: %s", as_of, summary)
    return summary


@task(pool=WAREHOUSE_POOL, inlets=FORECAST_READS, outlets=FORECASTS)
def forecast_tier_migration(segments: dict) -> dict:
    """Tier-migration forecast as of the segmentation run's date (joins mart.account_segments)."""
    from datetime import date

    from postsales.forecast import compute_forecast

    return compute_forecast(date.fromisoformat(segments["as_of_date"]))


@task(pool=WAREHOUSE_POOL, inlets=SEGMENTATION_REPORT_READS)
def write_segmentation_report(segments: dict, forecasts: dict) -> str:
    """Write the as-of date's segmentation report (the 2x2); returns (and logs) its path."""
    from datetime import date

    from postsales.reports.segmentation_report import write_report

    path = write_report(date.fromisoformat(segments["as_of_date"]))
    log.info("segmentation report: %s", path)
    return str(path)


@task(pool=WAREHOUSE_POOL, inlets=combined(SEGMENT_READS, FORECAST_READS), outlets=SEGMENTS + FORECASTS)
def segment_and_forecast() -> dict:
    """Segments and the forecast as of the run's interval end (the date tags are pushed for)."""
    from postsales.forecast import compute_forecast
    from postsales.segment.engine import compute_segments
    from postsales.tasks.context import evaluation_as_of, require_history

    as_of = evaluation_as_of()
    require_history(as_of)
    summary = compute_segments(as_of)
    summary["forecast"] = compute_forecast(as_of)
    return summary


# Segments the compared date first when it has no segmentation (ensure_segments).
@task(pool=WAREHOUSE_POOL, inlets=MIGRATION_READS, outlets=MIGRATION)
def segment_migration(segments: dict, months: int | None = None) -> dict:
    """The migration matrix from ``months`` before the segments' as-of date to it; without
    ``months``, since the previous revision (``revision_interval_months`` of crm_sync.yaml)."""
    from datetime import date

    from dateutil.relativedelta import relativedelta

    from postsales.segment.migration import migration_matrix

    if months is None:
        from postsales.crm.config import load_crm_sync

        months = load_crm_sync().schedules.revision_interval_months
    as_of = date.fromisoformat(segments["as_of_date"])
    return migration_matrix(as_of, as_of - relativedelta(months=months))
