"""Task bodies called from the DAG files; the DAG files only wire them.

A task body lets a ``postsales.errors.NotRetryableError`` (bad input, a broken rules file, a
date before the data, a CRM refusing the credentials) propagate: the retry policy every task
gets from ``postsales.dag_defaults`` fails the task at once on it, and retries anything else.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

log = logging.getLogger(__name__)


def require_history(as_of: date) -> None:
    """Fail at once when ``as_of`` lies before the first paid contract (postsales.history)."""
    from airflow.sdk import get_current_context

    from postsales.history import require_history as require

    require(as_of, dag_id=get_current_context()["dag"].dag_id)


def data_interval(context) -> tuple[datetime, datetime]:
    """The interval the run computes.

    1. the calendar month named by the ``month`` param (monthly DAGs: recompute any month
       without a logical date that would collide with the scheduler's runs);
    2. else the run's data interval;
    3. a run triggered without a logical date (the UI's default for a manual run) has none:
       it gets the last complete interval of the DAG's timetable before it was triggered,
       the interval Airflow itself infers for a manual run.
    """
    import pendulum

    month = (context.get("params") or {}).get("month")
    if month is not None and "month" in getattr(context.get("dag"), "params", {}):  # the monthly DAGs' param
        import re

        from postsales.dag_defaults import MONTH_PATTERN

        if not isinstance(month, str) or not re.fullmatch(MONTH_PATTERN.strip("^$"), month):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"param month={month!r} is not a calendar month: use YYYY-MM, e.g. 2026-03")
        start = pendulum.datetime(int(month[:4]), int(month[5:]), 1, tz="UTC")
        return start, start.add(months=1)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return start, end
    run_after = pendulum.instance(context["dag_run"].run_after)
    inferred = context["dag"].timetable.infer_manual_data_interval(run_after=run_after)
    return inferred.start, inferred.end


def extract(entity: str) -> dict:
    """Extract ``entity`` for the current run's data interval; returns the summary.

    The interval travels with the Asset event (``extra``), so a DAG scheduled on the
    Asset knows which data the event stands for even though it has no logical date.
    """
    from airflow.sdk import get_current_context

    from postsales.assets import STAGING
    from postsales.extract import extract_entity
    from postsales.sources import Interval

    context = get_current_context()
    params = context["params"]
    interval = Interval.from_airflow(*data_interval(context), bool(params.get("full_refresh")))
    summary = extract_entity(
        entity, interval=interval, run_id=context["run_id"], allow_empty=bool(params.get("allow_empty"))
    )
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
    return ((run_after or datetime.now(UTC)) - timedelta(days=1)).date()


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
    start, end = data_interval(context)
    require_history((end - timedelta(microseconds=1)).date())
    return compute_snapshot(start.date().replace(day=1))


def cohort_report(snapshot: dict) -> str:
    """Write the snapshot's HTML report; returns (and logs) its path."""
    from postsales.reports.cohort_report import write_report

    path = write_report(date.fromisoformat(snapshot["snapshot_month"]))
    log.info("cohort report: %s", path)
    return str(path)


def segmentation_report(as_of_date: str) -> str:
    """Write the as-of date's segmentation report (the 2x2); returns (and logs) its path."""
    from postsales.reports.segmentation_report import write_report

    path = write_report(date.fromisoformat(as_of_date))
    log.info("segmentation report: %s", path)
    return str(path)


def forecast(as_of_date: str) -> dict:
    """Tier-migration forecast as of the segmentation run's date (joins mart.account_segments)."""
    from postsales.forecast import compute_forecast

    return compute_forecast(date.fromisoformat(as_of_date))


def evaluation_as_of() -> date:
    """The as-of date of a monthly evaluation run: the last day of its data interval."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return (data_interval(context)[1] - timedelta(microseconds=1)).date()


def backtest_forecast() -> dict:
    from postsales import evaluation

    as_of = evaluation_as_of()
    require_history(as_of)
    return evaluation.backtest_forecast(as_of)


def health_outcomes() -> dict:
    from postsales import evaluation

    as_of = evaluation_as_of()
    require_history(as_of)
    return evaluation.evaluate_health(as_of)


def review_recommendations() -> dict:
    from postsales import evaluation

    return evaluation.recommend_review(evaluation_as_of())


def evaluation_report(*results: dict) -> str:
    """Write the evaluation report for the run's as-of date; returns (and logs) its path."""
    from postsales import evaluation

    path = evaluation.write_report(evaluation_as_of())
    log.info("evaluation report: %s", path)
    return str(path)


# --- CRM sync: segment revision and annual review -----------------------------------------


def month_is_due(kind: str) -> bool:
    """Short-circuit: is the run's month a revision (or the annual review) month, or forced?"""
    from airflow.sdk import get_current_context

    from postsales.crm.config import load_crm_sync

    context = get_current_context()
    if context["params"].get("force"):
        log.info("%s forced by the 'force' param", kind)
        return True
    schedules = load_crm_sync().schedules
    run_month = evaluation_as_of() + timedelta(days=1)
    due = (
        schedules.is_revision_month(run_month.replace(day=1))
        if kind == "revision"
        else run_month.month == schedules.annual_review_month
    )
    log.info(
        "%s %s due in %s (revision_interval_months %s from %s, annual_review_month %s)",
        kind, "is" if due else "is not", f"{run_month:%Y-%m}", schedules.revision_interval_months,
        schedules.revision_anchor_month, schedules.annual_review_month,
    )  # fmt: skip
    return due


def segment_and_forecast() -> dict:
    """Segments and the forecast as of the run's interval end (the date tags are pushed for)."""
    from postsales.forecast import compute_forecast
    from postsales.segment.engine import compute_segments

    as_of = evaluation_as_of()
    require_history(as_of)
    summary = compute_segments(as_of)
    summary["forecast"] = compute_forecast(as_of)
    return summary


def migration_since(as_of_date: str, months: int) -> dict:
    from dateutil.relativedelta import relativedelta

    from postsales.segment.migration import migration_matrix

    as_of = date.fromisoformat(as_of_date)
    return migration_matrix(as_of, as_of - relativedelta(months=months))


def revision_months() -> int:
    from postsales.crm.config import load_crm_sync

    return load_crm_sync().schedules.revision_interval_months


def crm_dry_run(as_of_date: str) -> dict:
    """The diff report, without any write call."""
    from postsales.crm.sync import sync

    return sync(date.fromisoformat(as_of_date), dry_run=True, run_id=_sync_run_id("dry_run"))


def crm_push(as_of_date: str, *, approved: bool = False) -> dict:
    """Push the tags; a backfilled run pushes only when its `push_backfill` param says so."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from postsales.crm.sync import SafetyValveTripped, sync

    context = get_current_context()
    params = context["params"]
    run_type = str(getattr(getattr(context.get("dag_run"), "run_type", ""), "value", "")).lower()
    if run_type == "backfill" and not params.get("push_backfill"):
        log.info("backfilled run: not pushing to the CRM (set push_backfill to push)")
        return {"mode": "not_pushed", "reason": "backfill"}
    try:
        return sync(
            date.fromisoformat(as_of_date),
            dry_run=bool(params.get("dry_run")),
            approve_first_push=approved or bool(params.get("approve_first_push")),
            approve_large_change=approved or bool(params.get("approve_large_change")),
            run_id=_sync_run_id("push"),
        )
    except SafetyValveTripped as exc:
        # Not retryable: a person must look at the diff report and approve.
        from postsales.crm.sync import report_path

        raise AirflowFailException(
            f"CRM push stopped before any write: {exc}. Read the diff report "
            f"({report_path(_sync_run_id('push'))}, or ops.crm_sync_runs); if the change is meant, approve it "
            f"with a new run: {trigger_command(context, approve_large_change=True)}"
        ) from exc


def trigger_command(context, **params) -> str:
    """The ``airflow dags trigger`` command for another run of this run's month with ``params``,
    quoted for a shell (a rules version is free text from YAML)."""
    import json
    import shlex

    conf = {"month": f"{data_interval(context)[0]:%Y-%m}"}
    if context["params"].get("force"):
        conf["force"] = True
    return f"airflow dags trigger {context['dag'].dag_id} --conf {shlex.quote(json.dumps(conf | params))}"


def _sync_run_id(step: str) -> str:
    from airflow.sdk import get_current_context

    context = get_current_context()
    return f"{context['run_id']}:{step}:{context['ti'].try_number}"


def rules_version_approved() -> bool:
    """The annual review's approval gate: the run's `approve_rules_version` param must name
    the segmentation rules version now in include/rules/segmentation.yaml."""
    from airflow.sdk import get_current_context

    from postsales.segment.rules import load_rules

    context = get_current_context()
    approved = context["params"].get("approve_rules_version")
    current = load_rules().version
    if approved == current:
        log.info("rules version %s approved: segments will be pushed", current)
        return True
    log.warning(
        "awaiting approval: review the report; to apply rules %s and push the tags run %s",
        current,
        trigger_command(context, force=True, approve_rules_version=current),
    )
    return False


# --- monitoring --------------------------------------------------------------------------


def summarize_run() -> dict:
    """Write the run's row of ops.run_summary from the upstream tasks' XCom summaries and states."""
    from airflow.sdk import get_current_context

    from postsales.dag_defaults import TRY_NUMBER_KEY, tries_since_clear
    from postsales.monitoring import RunFacts, write_run_summary

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    run_id = context["run_id"]
    upstream = sorted(task_id for task_id in context["dag"].task_ids if task_id != ti.task_id)
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=upstream, run_ids=[run_id]).get(run_id, {})
    results = {task_id: ti.xcom_pull(task_ids=task_id) for task_id in upstream}
    tries = {task_id: ti.xcom_pull(task_ids=task_id, key=TRY_NUMBER_KEY) for task_id in upstream}
    tries[ti.task_id] = tries_since_clear(ti)
    if getattr(context["dag"].timetable, "periodic", False):
        interval_start, interval_end = data_interval(context)  # inferred for a run without a logical date
    else:  # asset-triggered: no interval
        interval_start, interval_end = dag_run.data_interval_start, dag_run.data_interval_end
    started = getattr(dag_run, "start_date", None)
    called = getattr(dag_run, "run_after", None)
    if getattr(dag_run, "triggering_user_name", None) == "dag_test" and (
        started is None or called is None or abs((started - called).total_seconds()) > 60
    ):
        # dag.test() starts a run at its logical date: only one left to its default (the moment
        # dag.test was called, as make run does) is when the run started; a past one is not.
        started = None
    return write_run_summary(
        RunFacts(
            dag_id=ti.dag_id,
            run_id=run_id,
            run_type=str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", None))),
            data_interval_start=interval_start,
            data_interval_end=interval_end,
            started_at=started,
            task_states={task_id: states.get(task_id) for task_id in upstream},
            task_results={task_id: value for task_id, value in results.items() if value is not None},
            task_tries={task_id: value for task_id, value in tries.items() if value is not None},
        )
    )
