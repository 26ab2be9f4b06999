"""Task bodies called from the DAG files; the DAG files only wire them."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

log = logging.getLogger(__name__)


def extract(entity: str) -> dict:
    """Extract ``entity`` for the current run's data interval; returns the summary.

    The interval travels with the Asset event (``extra``), so a DAG scheduled on the
    Asset knows which data the event stands for even though it has no logical date.
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from postsales.assets import STAGING
    from postsales.errors import DataContractError
    from postsales.extract import extract_entity
    from postsales.sources import Interval

    context = get_current_context()
    params = context["params"]
    interval = Interval.from_airflow(
        context["data_interval_start"], context["data_interval_end"], bool(params.get("full_refresh"))
    )
    try:
        summary = extract_entity(
            entity, interval=interval, run_id=context["run_id"], allow_empty=bool(params.get("allow_empty"))
        )
    except DataContractError as exc:
        # Bad input cannot be fixed by retrying: fail now with the message that says how to fix it.
        raise AirflowFailException(str(exc)) from exc
    context["outlet_events"][STAGING[entity]].extra = {
        "interval_start": summary.interval_start,
        "interval_end": summary.interval_end,
        "full_refresh": summary.full_refresh,
        "rows_loaded": summary.rows_loaded,
    }
    return summary.as_dict()


def segmentation_as_of(param: str | None, triggering_events, run_after: datetime | None) -> date:
    """The as-of date of a segmentation run.

    1. the ``as_of_date`` param when given (manual runs, backfills of history);
    2. else the last complete day of the newest interval the triggering extracts loaded;
    3. else the day before the run.
    """
    if param:
        return date.fromisoformat(str(param))
    ends = [
        datetime.fromisoformat(event.extra["interval_end"])
        for events in (triggering_events or {}).values()
        for event in events
        if (event.extra or {}).get("interval_end")
    ]
    if ends:
        return (max(ends) - timedelta(microseconds=1)).date()
    return ((run_after or datetime.now()) - timedelta(days=1)).date()


def segment() -> dict:
    """Compute segments for the run's as-of date; returns counts for the log."""
    from airflow.sdk import get_current_context

    from postsales.segment.engine import compute_segments

    context = get_current_context()
    as_of = segmentation_as_of(
        context["params"].get("as_of_date"),
        context.get("triggering_asset_events"),
        getattr(context.get("dag_run"), "run_after", None),
    )
    summary = compute_segments(as_of)
    log.info("segmentation as of %s: %s", as_of, summary)
    return summary


def cohort_snapshot() -> dict:
    """Compute the cohort snapshot of the run's month (its data interval start)."""
    from airflow.sdk import get_current_context

    from postsales.cohorts import compute_snapshot

    context = get_current_context()
    month = context["data_interval_start"].date().replace(day=1)
    return compute_snapshot(month)


def cohort_report(snapshot: dict) -> str:
    """Write the snapshot's HTML report; returns (and logs) its path."""
    from postsales.reports.cohort_report import write_report

    path = write_report(date.fromisoformat(snapshot["snapshot_month"]))
    log.info("cohort report: %s", path)
    return str(path)


def forecast(as_of_date: str) -> dict:
    """Tier-migration forecast as of the segmentation run's date (joins mart.account_segments)."""
    from postsales.forecast import compute_forecast

    return compute_forecast(date.fromisoformat(as_of_date))


def evaluation_as_of() -> date:
    """The as-of date of a monthly evaluation run: the last day of its data interval."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return (context["data_interval_end"] - timedelta(microseconds=1)).date()


def backtest_forecast() -> dict:
    from postsales.forecast import compute_forecast, run_backtest

    as_of = evaluation_as_of()
    summary = run_backtest(as_of)
    summary["forecast"] = compute_forecast(as_of)  # the flags the report lists, for the same date
    return summary


def health_outcomes() -> dict:
    from postsales.outcomes import evaluate_health

    return evaluate_health(evaluation_as_of())


def review_recommendations() -> dict:
    from postsales.review import recommend

    return recommend(evaluation_as_of())


def evaluation_report(*results: dict) -> str:
    """Write the evaluation report for the run's as-of date; returns (and logs) its path."""
    from postsales.reports.evaluation_report import write_report

    path = write_report(evaluation_as_of())
    log.info("evaluation report: %s", path)
    return str(path)
