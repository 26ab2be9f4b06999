"""Shared DAG defaults: owner, retries with backoff, timeouts, pool, params, callback.

DAG files import from here at parse time, so this module imports only Airflow's
light definitions and nothing that touches a database.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param
from airflow.timetables.interval import CronDataIntervalTimetable

log = logging.getLogger(__name__)

OWNER = "data-engineering"
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")

# DuckDB allows one writer process: every task that writes the warehouse takes a
# slot of this pool. `make` creates it with 1 slot; raise it on PostgreSQL.
WAREHOUSE_POOL = "postsales_warehouse"


def on_task_failure(context) -> None:
    """Log the failure with what an on-call engineer needs to find it."""
    ti = context.get("task_instance")
    log.error(
        "postsales task failed: dag=%s task=%s run=%s try=%s log=%s error=%s",
        getattr(ti, "dag_id", None),
        getattr(ti, "task_id", None),
        context.get("run_id"),
        getattr(ti, "try_number", None),
        getattr(ti, "log_url", None),
        context.get("exception"),
    )


DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    # The environment may shorten the first retry delay (tests do); reading it is not I/O.
    "retry_delay": timedelta(seconds=float(os.environ.get("POSTSALES_RETRY_DELAY_SECONDS", "30"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": on_task_failure,
}


def daily() -> CronDataIntervalTimetable:
    """Midnight-to-midnight UTC intervals (``@daily`` in Airflow 3 has start == end)."""
    return CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def monthly() -> CronDataIntervalTimetable:
    """Calendar-month intervals, run on the 1st for the month just ended."""
    return CronDataIntervalTimetable("0 0 1 * *", timezone="UTC")


EXTRACT_PARAMS = {
    "full_refresh": Param(
        False,
        type="boolean",
        description="Read everything in the source and replace the tables, not just the data interval.",
    ),
    "allow_empty": Param(
        False,
        type="boolean",
        description="Allow a source that returns no rows to empty an interval that already holds rows.",
    ),
}


CRM_SYNC_PARAMS = {
    "dry_run": Param(False, type="boolean", description="Write the diff report only; no write call to the CRM."),
    "approve_first_push": Param(
        False, type="boolean", description="Allow the first push to a CRM (otherwise it is a dry run)."
    ),
    "approve_large_change": Param(
        False, type="boolean", description="Allow more than safety.max_changed_share of accounts to change."
    ),
    "push_backfill": Param(False, type="boolean", description="Push even though this run is a backfill."),
}
