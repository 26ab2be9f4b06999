"""History starts where the data starts: contracts since 2017 can be snapshotted and backfilled,
and a run for a month before the first paid contract fails at once with a message, not empty."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pendulum
import pytest
import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.extract import extract_entity
from postsales.history import NoHistoryError, require_history
from postsales.sources import Interval

ACCOUNTS = [
    tiny._account("H1", created_at="2016-11-01T09:00:00", updated="2024-03-01T10:00:00"),
    tiny._account("H2", created_at="2018-05-01T09:00:00", updated="2024-03-01T10:00:00"),
    tiny._account("H3", created_at="2018-05-01T09:00:00", updated="2024-03-01T10:00:00"),
]
CONTRACTS = [
    # H1: a customer since January 2017, evergreen at 12,000 ARR (MRR 1,000).
    tiny._contract("H1-C1", "H1", start="2017-01-10", end="", arr="12000", updated="2024-03-01T11:00:00"),
    # H2: 24,000 ARR from June 2018 for a year, then renewed at 36,000 (MRR 2,000 -> 3,000).
    tiny._contract("H2-C1", "H2", start="2018-06-01", end="2019-05-31", arr="24000", updated="2024-03-01T11:00:00"),
    tiny._contract("H2-C2", "H2", start="2019-06-01", end="", arr="36000", updated="2024-03-01T11:00:00"),
    # H3: a free pilot only: not a paying customer, so it does not start history.
    tiny._contract("H3-C1", "H3", start="2016-06-01", end="2016-12-31", arr="0", updated="2024-03-01T11:00:00"),
]


@pytest.fixture
def history_source(tmp_path, monkeypatch):
    source = tmp_path / "history_source"
    tiny.write_csv(source / "accounts.csv", tiny.ACCOUNT_COLUMNS, ACCOUNTS)
    tiny.write_csv(source / "contracts.csv", tiny.CONTRACT_COLUMNS, CONTRACTS)
    tiny.write_csv(source / "survey_responses.csv", tiny.SURVEY_COLUMNS, [])
    tiny.write_csv(source / "usage_daily" / "2024-03-01.csv", tiny.USAGE_COLUMNS, [])
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(source))
    return source


def load_history(first_load_day=tiny.DAY1):
    interval = Interval(first_load_day, tiny.DAY2, full_refresh=True)
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=interval, run_id="history", build_data_docs=False)


def movements(url: str, snapshot: date) -> dict[date, tuple[float, int]]:
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(
            sa.text("select month, mrr, customers from mart.mrr_movements where snapshot_month = :s"), {"s": snapshot}
        ).all()
    return {(r.month if isinstance(r.month, date) else date.fromisoformat(str(r.month)[:10])): (float(r.mrr),
            int(r.customers)) for r in rows}  # fmt: skip


def test_history_starts_at_the_first_paid_contract(warehouse_url, history_source):
    load_history()
    # Loaded in 2024, yet known for 2017: the earliest version stands for the time before it.
    assert require_history(date(2017, 1, 31), dag_id="cohort_analysis") == date(2017, 1, 10)
    assert require_history(date(2017, 1, 10), dag_id="cohort_analysis") == date(2017, 1, 10)
    with pytest.raises(NoHistoryError) as before:
        require_history(date(2017, 1, 9), dag_id="cohort_analysis")
    message = str(before.value)
    assert "history starts in 2017-01" in message and "2017-01-10" in message
    assert "airflow backfill create --dag-id cohort_analysis --from-date 2017-01-01" in message


def test_an_empty_warehouse_says_to_load_first(warehouse_url):
    with pytest.raises(NoHistoryError, match=r"holds no contracts.*crm_extract"):
        require_history(date(2019, 3, 31), dag_id="model_evaluation")


def test_cohort_snapshots_back_to_2017_and_a_month_before_fails(dags, warehouse_url, history_source):
    load_history()
    dag = dags.get_dag("cohort_analysis")
    # March 2019 through the month param, and through the scheduler's own interval (logical date =
    # interval start for a run created by the scheduler; dag.test infers the month before it).
    assert dag.test(run_conf={"month": "2019-03"}).state == "success"
    march = movements(warehouse_url, date(2019, 3, 1))
    # By hand: H1 1,000 from January 2017; H2 2,000 from June 2018.
    assert march[date(2017, 1, 1)] == (1000.0, 1)
    assert march[date(2018, 5, 1)] == (1000.0, 1)
    assert march[date(2018, 6, 1)] == (3000.0, 2)
    assert march[date(2019, 3, 1)] == (3000.0, 2)
    assert min(march) == date(2017, 1, 1) and max(march) == date(2019, 3, 1) and len(march) == 27
    assert dag.test(logical_date=pendulum.datetime(2019, 4, 1, tz="UTC"), run_conf={"month": None}).state == "success"
    assert movements(warehouse_url, date(2019, 3, 1)) == march
    # The first month with a paying customer computes; the month before fails, writing nothing.
    assert dag.test(run_conf={"month": "2017-01"}).state == "success"
    assert movements(warehouse_url, date(2017, 1, 1)) == {date(2017, 1, 1): (1000.0, 1)}
    failed = dag.test(run_conf={"month": "2016-12"})
    assert failed.state == "failed"
    ti = failed.get_task_instance("compute_cohort_snapshot")
    assert ti.state == "failed" and ti.try_number == 1  # failed at once, not retried
    assert movements(warehouse_url, date(2016, 12, 1)) == {}


def test_model_evaluation_before_the_data_fails_at_once(dags, duckdb_url, history_source):
    load_history()
    failed = dags.get_dag("model_evaluation").test(run_conf={"month": "2016-12"})
    assert failed.state == "failed"
    for task_id in ("backtest_forecast", "evaluate_health"):
        ti = failed.get_task_instance(task_id)
        assert ti.state == "failed" and ti.try_number == 1, task_id


def test_a_backfill_can_reach_2017(dags):
    """The monthly DAGs start with history (2000 by default), so a backfill of 2017 is accepted."""
    dags.get_dag("cohort_analysis")  # parsed; dag.test above serialized it to the metadata DB
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "backfill", "create", "--dag-id", "cohort_analysis",
         "--from-date", "2017-01-01", "--to-date", "2017-03-01", "--dry-run"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for month in ("2017-01-01", "2017-02-01", "2017-03-01"):
        assert month in result.stdout, result.stdout[-2000:]
