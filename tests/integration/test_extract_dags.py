"""Both extract DAGs end to end through Airflow's dag.test(), on DuckDB and PostgreSQL."""

from __future__ import annotations

import json

import pandas as pd
import pendulum
import sqlalchemy as sa

import tiny
from postsales import warehouse

# A run after midnight of day 2 covers day 1: [2024-03-01, 2024-03-02).
DAY1_RUN = pendulum.datetime(2024, 3, 2, tz="UTC")
DAY2_RUN = pendulum.datetime(2024, 3, 3, tz="UTC")


def test_retry_delays_are_short_in_tests(dags):
    # tests/conftest.py shortens retry delays for the session (they are read at import).
    assert dags.get_dag("usage_extract").get_task("extract_usage_daily").retry_delay.total_seconds() == 1


def run(dags, dag_id: str, logical_date, **conf):
    dag_run = dags.get_dag(dag_id).test(logical_date=logical_date, run_conf=conf or None)
    states = {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}
    return str(dag_run.state), states


def counts(url: str) -> dict[str, tuple[int, int, int]]:
    with warehouse.engine(url).connect() as conn:
        runs = pd.read_sql(sa.text("select * from ops.extract_runs"), conn)
    return {row.source_table: (row.rows_read, row.rows_loaded, row.rows_quarantined) for row in runs.itertuples()}


def as_tuple(expected: dict) -> tuple[int, int, int]:
    return expected["read"], expected["loaded"], expected["quarantined"]


def staging_rows(url: str) -> dict[str, list]:
    out = {}
    with warehouse.engine(url).connect() as conn:
        for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
            frame = pd.read_sql(sa.text(f"select * from staging.{entity}"), conn)
            frame = frame.drop(columns=["_run_id", "_loaded_at"]).astype(str)
            out[entity] = sorted(map(tuple, frame.itertuples(index=False)))
    return out


def test_both_dags_load_day1(dags, warehouse_url, tiny_source):
    assert run(dags, "crm_extract", DAY1_RUN) == (
        "success",
        {
            "extract_accounts": ("success", 1),
            "extract_contracts": ("success", 1),
            "extract_survey_responses": ("success", 1),
            "summarize_run": ("success", 1),
        },
    )
    assert run(dags, "usage_extract", DAY1_RUN) == (
        "success",
        {"extract_usage_daily": ("success", 1), "summarize_run": ("success", 1)},
    )
    assert counts(warehouse_url) == {
        "accounts": as_tuple(tiny.ACCOUNTS_DAY1),
        "contracts": as_tuple(tiny.CONTRACTS_DAY1),
        "survey_responses": as_tuple(tiny.SURVEYS_DAY1),
        "usage_daily": as_tuple(tiny.USAGE_DAY1),
    }


def test_rerunning_a_dag_interval_is_idempotent(dags, warehouse_url, tiny_source):
    for _ in range(3):
        assert run(dags, "crm_extract", DAY1_RUN)[0] == "success"
        assert run(dags, "usage_extract", DAY1_RUN)[0] == "success"
        if _ == 0:
            first = staging_rows(warehouse_url)
    assert staging_rows(warehouse_url) == first
    assert len(first["accounts"]) == tiny.ACCOUNTS_DAY1["loaded"]


def test_full_refresh_param_reads_everything(dags, warehouse_url, tiny_source):
    assert run(dags, "crm_extract", DAY2_RUN, full_refresh=True)[0] == "success"
    assert counts(warehouse_url)["accounts"] == (103, 99, 4)  # both days: 102 + 1 rows


def test_contract_error_fails_without_retry(dags, warehouse_url, tiny_source):
    columns = [c for c in tiny.ACCOUNT_COLUMNS if c != "industry"]
    tiny.write_csv(tiny_source / "accounts.csv", columns, [{c: r[c] for c in columns} for r in tiny.ACCOUNTS])
    state, tasks = run(dags, "crm_extract", DAY1_RUN)
    assert state == "failed"
    assert tasks["extract_accounts"] == ("failed", 1)  # a DataContractError: no retries for bad input
    assert tasks["extract_contracts"][0] == "upstream_failed"


def test_unreachable_source_is_retried_then_fails(dags, duckdb_url, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(tmp_path / "unmounted"))
    state, tasks = run(dags, "usage_extract", DAY1_RUN)
    assert state == "failed"
    assert tasks["extract_usage_daily"] == ("failed", 3)  # first try + 2 retries
    # The run summary says so: a run is not just "failed" or "success", it says how many retries it took.
    with warehouse.engine(duckdb_url).connect() as conn:
        retries, tries = conn.execute(sa.text("select retries, task_tries from ops.run_summary")).one()
    assert (retries, json.loads(tries)) == (2, {"extract_usage_daily": 3, "summarize_run": 1})


def test_manual_run_without_logical_date_takes_the_last_complete_interval(dags, warehouse_url, tiny_source):
    # The UI's "Trigger" sends no logical date, so the run has no data interval in its context;
    # it extracts the last complete day before it was triggered, as a scheduled run would.
    dag_run = dags.get_dag("crm_extract").test(
        logical_date=None,
        run_after=DAY1_RUN + pendulum.duration(hours=7),
        run_conf={"full_refresh": False, "allow_empty": False},  # dag.test() keeps an earlier run's params
    )
    assert str(dag_run.state) == "success"
    assert dag_run.logical_date is None
    assert counts(warehouse_url)["accounts"] == as_tuple(tiny.ACCOUNTS_DAY1)
    with warehouse.engine(warehouse_url).connect() as conn:
        intervals = conn.execute(sa.text("select distinct interval_start, interval_end from ops.extract_runs")).all()
    assert [(str(start)[:10], str(end)[:10]) for start, end in intervals] == [("2024-03-01", "2024-03-02")]
    with warehouse.engine(warehouse_url).connect() as conn:
        summary = conn.execute(
            sa.text("select data_interval_start, data_interval_end from ops.run_summary where run_id = :run_id"),
            {"run_id": dag_run.run_id},
        ).one()
    assert (str(summary[0])[:19], str(summary[1])[:19]) == ("2024-03-01 00:00:00", "2024-03-02 00:00:00")


def test_bad_values_do_not_fail_the_run_and_a_malformed_file_fails_at_once(dags, warehouse_url, tiny_source, caplog):
    daily = {"full_refresh": False, "allow_empty": False}  # dag.test() keeps an earlier test's params
    # A value the warehouse cannot hold (an OverflowError, retried three times, before #16) is quarantined.
    rows = [*tiny.ACCOUNTS, tiny._account("X-HUGE", employee_count="1e400")]
    tiny.write_csv(tiny_source / "accounts.csv", tiny.ACCOUNT_COLUMNS, rows)
    assert run(dags, "crm_extract", DAY1_RUN, **daily)[1]["extract_accounts"] == ("success", 1)
    read, loaded, quarantined = as_tuple(tiny.ACCOUNTS_DAY1)
    assert counts(warehouse_url)["accounts"] == (read + 1, loaded, quarantined + 1)
    # A batch-level data error (a column named twice) is not retried: retrying reads the same file.
    day1 = tiny_source / "usage_daily" / "2024-03-01.csv"
    rows = [{**row, "seats": "1"} for row in tiny.USAGE_FILES["2024-03-01"]]
    tiny.write_csv(day1, [*tiny.USAGE_COLUMNS, "seats"], rows)
    day1.write_text(day1.read_text().replace(",seats\n", ",active_users\n", 1))  # pandas read it as active_users.1
    state, tasks = run(dags, "usage_extract", DAY1_RUN, **daily)
    assert (state, tasks["extract_usage_daily"]) == ("failed", ("failed", 1))
    assert f"DataContractError: {day1}: the header names 'active_users' (2 times)" in caplog.text
