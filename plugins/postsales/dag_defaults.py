"""Shared DAG defaults: owner, retries with backoff, what is never retried, timeouts, tags, docs,
alerts, run summary.

Every DAG file builds its ``@dag(...)`` arguments with :func:`postsales_dag` and ends its
body with :func:`add_run_summary`, so owner, retries and the retry policy, timeouts, the
``postsales`` tag, ``doc_md``, the failure notifier, the duration alert and the run summary
are the same everywhere and configured here.

DAG files import from here at parse time, so this module imports only Airflow's light
definitions and nothing that touches a database, a file, a Variable or a connection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.sdk import (
    DeadlineAlert,
    DeadlineReference,
    ExceptionRetryPolicy,
    Param,
    RetryAction,
    RetryRule,
    SyncCallback,
)
from airflow.timetables.interval import CronDataIntervalTimetable

from postsales.alerts import RUN_OVERDUE, PostsalesAlertNotifier
from postsales.errors import NotRetryableError
from postsales.pools import WAREHOUSE_POOL

__all__ = ["WAREHOUSE_POOL"]  # DAG files import the pool name from here

OWNER = "data-engineering"
COMMON_TAG = "postsales"
# The tag vocabulary: what a DAG may be tagged with and what each tag means (the Airflow UI
# filters on them). A tag outside it fails the DAG file's import, naming the file and the tag.
TAGS = {
    COMMON_TAG: "every DAG of this project",
    "extract": "reads a source into raw / staging",
    "crm": "reads from or writes to the CRM",
    "usage": "product-usage data",
    "segmentation": "computes mart.account_segments and the forecast",
    "cohorts": "cohort and MRR snapshots",
    "evaluation": "scores the model: backtest, health vs outcome, review recommendations",
}

# The earliest interval any DAG can run or be backfilled for. History starts where the data
# starts: a run for a month before the first contract fails and says from when to backfill
# (postsales.history). No DAG catches up, so an early start date schedules nothing by itself.
HISTORY_START_ENV = "POSTSALES_HISTORY_START"
DEFAULT_HISTORY_START = "2000-01-01"


def history_start() -> pendulum.DateTime:
    """The first day of the month of ``POSTSALES_HISTORY_START`` (YYYY-MM-DD), else 2000-01-01, UTC.

    A month's run is named by its first day, so a start date inside a month would leave that
    month's run outside the DAG's history. Reading the environment is not I/O.
    """
    value = os.environ.get(HISTORY_START_ENV) or DEFAULT_HISTORY_START
    try:
        day = date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{HISTORY_START_ENV}={value!r} is not a date: use YYYY-MM-DD, e.g. 2015-01-01") from exc
    return pendulum.datetime(day.year, day.month, 1, tz="UTC")


START_DATE = history_start()

# Posts to the alert webhook (connection `postsales_alerts`), or logs only without it.
on_task_failure = PostsalesAlertNotifier()

# The XCom key under which every task records the try it is on, for the run summary.
TRY_NUMBER_KEY = "postsales_try_number"


def tries_since_clear(ti) -> int:
    """The try a task instance is on, counted from its latest clear (1 = its first try).

    Airflow's try number keeps counting across clears (a rerun from the UI or a backfill with
    ``--reprocess-behavior completed``), and a clear sets ``max_tries = try_number + retries``;
    Airflow finds the first try since the clear the same way (``max_tries - retries + 1``).
    """
    return max(1, ti.try_number - (ti.max_tries - (ti.task.retries or 0)))


def record_try_number(context) -> None:
    """Before each try: push the try it is on, so ``summarize_run`` can report retries per task.

    Airflow clears a task's XComs when a new try starts, so the value left is the last try's.
    """
    ti = context["ti"]
    ti.xcom_push(TRY_NUMBER_KEY, tries_since_clear(ti))


@dataclass(frozen=True)
class RunDuration:
    """How long a run may take: alert after ``alert_after`` from being queued, fail at ``timeout``."""

    alert_after: timedelta
    timeout: timedelta


# Per DAG; a run still going after `alert_after` (counted from when it was queued) posts a
# duration alert, one going after `timeout` (counted from its start) is failed by the scheduler.
RUN_DURATIONS: dict[str, RunDuration] = {
    "crm_extract": RunDuration(alert_after=timedelta(minutes=30), timeout=timedelta(hours=3)),
    "usage_extract": RunDuration(alert_after=timedelta(minutes=30), timeout=timedelta(hours=3)),
    "account_segmentation": RunDuration(alert_after=timedelta(hours=1), timeout=timedelta(hours=4)),
    "cohort_analysis": RunDuration(alert_after=timedelta(hours=1), timeout=timedelta(hours=4)),
    "segment_revision": RunDuration(alert_after=timedelta(hours=1), timeout=timedelta(hours=6)),
    "model_evaluation": RunDuration(alert_after=timedelta(hours=2), timeout=timedelta(hours=8)),
    "annual_segmentation_review": RunDuration(alert_after=timedelta(hours=2), timeout=timedelta(hours=8)),
}
DEFAULT_RUN_DURATION = RunDuration(alert_after=timedelta(hours=1), timeout=timedelta(hours=4))


# Retries are for infrastructure faults (a source or CRM that does not answer, a lost connection,
# a timeout). A NotRetryableError (bad input, a broken rules file, a wrong setting, a CRM that
# refuses the credentials) fails the task at once with its message: a retry would fail the same
# way, only later. Airflow's worker evaluates the policy on the exception the task raised.
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=NotRetryableError,
            action=RetryAction.FAIL,
            reason="not retryable: fix what the error names, then rerun",
        )
    ]
)


DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    # The environment may shorten the first retry delay (tests do); reading it is not I/O.
    "retry_delay": timedelta(seconds=float(os.environ.get("POSTSALES_RETRY_DELAY_SECONDS", "30"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "retry_policy": RETRY_POLICY,
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": on_task_failure,
    "on_execute_callback": record_try_number,
}


def duration_alert(alert_after: timedelta) -> DeadlineAlert:
    """Airflow deadline alert: the run is still going ``alert_after`` after it was queued.

    The scheduler checks deadlines and hands the callback to the executor, which calls
    ``PostsalesAlertNotifier(kind="run_overdue", ...)`` with the DAG run in its context.
    """
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=alert_after,
        callback=SyncCallback(
            PostsalesAlertNotifier,
            kwargs={"kind": RUN_OVERDUE, "expected_minutes": alert_after.total_seconds() / 60},
        ),
        name="postsales run duration",
    )


def without_duration_alerts(bag):
    """Drop the deadline alerts of a DagBag's DAGs before running them with ``dag.test()``.

    Airflow 3.3.2's ``dag.test()`` fails every successful run of a DAG that has a deadline:
    at the end of the run it looks the deadlines up by id, but under ``dag.test()`` they are
    the serialized alerts themselves (``'dict' object has no attribute 'hex'``). The scheduler
    holds the ids and is not affected. No scheduler checks deadlines under ``dag.test()``
    anyway, so the alert cannot fire there. Used by ``make run`` and the DAG tests.
    """
    for dag in bag.dags.values():
        dag.deadline = None
    return bag


def postsales_dag(dag_id: str, doc_md: str | None, *, tags: Sequence[str] = (), **overrides: Any) -> dict[str, Any]:
    """The ``@dag(...)`` keyword arguments every project DAG shares.

    ``dag_id`` picks the run durations in :data:`RUN_DURATIONS`; ``doc_md`` is the DAG
    file's docstring; ``tags`` come after the common ``postsales`` tag. Anything in
    ``overrides`` (schedule, params, start_date, ...) is passed through or replaces a default.
    """
    if not doc_md or not doc_md.strip():
        raise ValueError(f"{dag_id}: the DAG file needs a docstring; it becomes the DAG's doc_md")
    unknown = sorted(set(tags) - TAGS.keys())
    if unknown:
        raise ValueError(
            f"{dag_id}: tags {unknown} are not in the vocabulary (postsales.dag_defaults.TAGS): add them there"
        )
    durations = RUN_DURATIONS.get(dag_id, DEFAULT_RUN_DURATION)
    return {
        "dag_id": dag_id,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": DEFAULT_ARGS,
        "dagrun_timeout": durations.timeout,
        "deadline": duration_alert(durations.alert_after),
        "tags": [COMMON_TAG, *(t for t in tags if t != COMMON_TAG)],
        "doc_md": doc_md,
    } | overrides


SUMMARY_TASK_ID = "summarize_run"


def add_run_summary():
    """Add ``summarize_run`` after every task already in the DAG; call it last in the DAG body.

    It is a teardown task: it runs when upstream tasks failed or were skipped (a short
    circuit does not skip it) and its own state does not decide the run's state.
    """

    from postsales.tasks.monitoring import summarize_run

    summary = summarize_run.override(task_id=SUMMARY_TASK_ID)()
    operator = summary.operator
    for other in operator.dag.tasks:
        if other is not operator and not other.downstream_list:
            other >> operator
    summary.as_teardown()
    return summary


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


# A calendar month as YYYY-MM (the task parses it again, strictly: tasks.context.data_interval).
MONTH_PATTERN = r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$"

MONTH_PARAMS = {
    "month": Param(
        None,
        type=["null", "string"],
        pattern=MONTH_PATTERN,
        maxLength=7,  # the pattern's $ would accept a trailing newline
        description=(
            "Compute this calendar month (YYYY-MM), as of its last day, instead of the run's data interval. "
            "Unset (null) = the run's interval (a run without a logical date: the last complete month)."
        ),
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
