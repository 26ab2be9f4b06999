"""Cohort tasks (``cohort_analysis``): the month's snapshot, then its report."""

from __future__ import annotations

import logging

from airflow.sdk import task

from postsales.assets import COHORT_READS, COHORT_REPORT_READS, COHORT_SNAPSHOT
from postsales.pools import WAREHOUSE_POOL

log = logging.getLogger(__name__)


# Segments the month's last day first when no segmentation of that date exists.
@task(pool=WAREHOUSE_POOL, inlets=COHORT_READS, outlets=COHORT_SNAPSHOT)
def compute_cohort_snapshot() -> dict:
    """Compute the cohort snapshot of the run's month (its data interval start)."""
    from datetime import timedelta

    from airflow.sdk import get_current_context

    from postsales.cohorts import compute_snapshot
    from postsales.tasks.context import data_interval, require_history

    context = get_current_context()
    start, end = data_interval(context)
    require_history((end - timedelta(microseconds=1)).date())
    return compute_snapshot(start.date().replace(day=1))


@task(pool=WAREHOUSE_POOL, inlets=COHORT_REPORT_READS)
def write_cohort_report(snapshot: dict) -> str:
    """Write the snapshot's HTML report; returns (and logs) its path."""
    from datetime import date

    from postsales.reports.cohort_report import write_report

    path = write_report(date.fromisoformat(snapshot["snapshot_month"]))
    log.info("cohort report: %s", path)
    return str(path)
