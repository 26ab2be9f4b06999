"""Task helpers in postsales.tasks.context: the monthly DAGs' `month` param (what the form accepts is what
the task computes) and the trigger commands a task logs. (Failing at once on what no retry can fix
is the DAGs' retry policy: tests/dags/test_dag_integrity.py.)"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from postsales.dag_defaults import MONTH_PARAMS
from postsales.tasks.context import data_interval

MONTHLY = SimpleNamespace(params={"month": None})
DAILY = SimpleNamespace(params={"full_refresh": False})
OCTOBER = {"data_interval_start": pendulum.datetime(2026, 10, 1, tz="UTC"),
           "data_interval_end": pendulum.datetime(2026, 11, 1, tz="UTC")}  # fmt: skip


def accepted(value) -> bool:
    from airflow.sdk.definitions.param import Param

    try:
        Param(value, **{k: v for k, v in MONTH_PARAMS["month"].schema.items()}).resolve()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("value", ["2026-03", "1999-12", None])
def test_good_months_are_accepted_and_computed(value):
    assert accepted(value)
    start, end = data_interval({"params": {"month": value}, "dag": MONTHLY, **OCTOBER})
    expected = value or "2026-10"
    assert (start.isoformat(), end.isoformat()) == (
        f"{expected}-01T00:00:00+00:00",
        pendulum.parse(f"{expected}-01").add(months=1).isoformat(),
    )


@pytest.mark.parametrize("value", ["2026-13", "2026-1", "2026-10\n", "0000-01", "2026-10; rm -rf /", "", "10-2026"])
def test_bad_months_are_refused_by_the_form_and_by_the_task(value):
    assert not accepted(value)
    with pytest.raises(AirflowFailException, match="is not a calendar month: use YYYY-MM"):
        data_interval({"params": {"month": value}, "dag": MONTHLY, **OCTOBER})


def test_only_the_monthly_dags_read_it():
    # A daily extract run given a "month" (e.g. a backfill's --dag-run-conf) keeps its own day.
    start, end = data_interval({"params": {"month": "2026-03"}, "dag": DAILY, **OCTOBER})
    assert (start.month, end.month) == (10, 11)


def test_a_logged_trigger_command_is_one_shell_word_whatever_the_version():
    import shlex
    from types import SimpleNamespace

    import pendulum

    from postsales.tasks.context import trigger_command

    start = pendulum.datetime(2026, 10, 1, tz="UTC")
    context = {"params": {"force": True}, "dag": SimpleNamespace(dag_id="annual_segmentation_review"),
               "data_interval_start": start, "data_interval_end": start.add(months=1)}  # fmt: skip
    version = "2027.01'; rm -rf ~; echo '"
    words = shlex.split(trigger_command(context, approve_rules_version=version))
    assert words[:5] == ["airflow", "dags", "trigger", "annual_segmentation_review", "--conf"] and len(words) == 6
    assert json.loads(words[5]) == {"month": "2026-10", "force": True, "approve_rules_version": version}
