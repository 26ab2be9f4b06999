"""What a task reads from its run: the data interval, the as-of dates, the history check, and the
``airflow dags trigger`` command a task logs for a person to run.

Helpers called from task bodies (``context`` is Airflow's ``get_current_context()``), not tasks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


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


def evaluation_as_of() -> date:
    """The as-of date of a monthly run (evaluation, revision, review): the last day of its data interval."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return (data_interval(context)[1] - timedelta(microseconds=1)).date()


def require_history(as_of: date) -> None:
    """Fail at once when ``as_of`` lies before the first paid contract (postsales.history)."""
    from airflow.sdk import get_current_context

    from postsales.history import require_history as require

    require(as_of, dag_id=get_current_context()["dag"].dag_id)


def trigger_command(context, **params) -> str:
    """The ``airflow dags trigger`` command for another run of this run's month with ``params``,
    quoted for a shell (a rules version is free text from YAML)."""
    import json
    import shlex

    conf = {"month": f"{data_interval(context)[0]:%Y-%m}"}
    if context["params"].get("force"):
        conf["force"] = True
    return f"airflow dags trigger {context['dag'].dag_id} --conf {shlex.quote(json.dumps(conf | params))}"
