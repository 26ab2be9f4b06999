"""DuckDB lets one process open its file: every task that opens it holds the warehouse pool,
and a task that does not is failed every time, not now and then on the file lock."""

from __future__ import annotations

from datetime import date

import pytest

import tiny
from postsales import warehouse
from postsales.cohorts import compute_snapshot
from postsales.extract import extract_entity
from postsales.sources import Interval


@pytest.fixture
def march_snapshot(duckdb_url, tiny_source):
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=Interval(tiny.DAY1, tiny.DAY3, full_refresh=True), run_id="r",
                       build_data_docs=False)  # fmt: skip
    compute_snapshot(date(2024, 3, 1))
    return duckdb_url


def test_a_task_outside_the_pool_cannot_open_duckdb(dags, march_snapshot, capsys, caplog):
    dag = dags.get_dag("cohort_analysis")
    report = dag.get_task("write_cohort_report")
    report.pool = "default_pool"  # as the task was declared before this change
    try:
        run = dag.test(run_conf={"month": "2024-03"})
    finally:
        report.pool = warehouse_pool = "postsales_warehouse"
    states = {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    assert states["compute_cohort_snapshot"] == ("success", 1)
    assert states["write_cohort_report"] == ("failed", 1)  # a wiring bug: not retried
    logged = capsys.readouterr().out + capsys.readouterr().err + caplog.text
    assert "write_cohort_report opens the DuckDB warehouse" in logged, logged[-3000:]
    assert dag.get_task("write_cohort_report").pool == warehouse_pool
    assert dag.test(run_conf={"month": "2024-03"}).state == "success"


def test_the_check_does_nothing_outside_a_task(march_snapshot):
    # The CLI, the benchmarks and these tests open the warehouse with no Airflow task running.
    warehouse.check_warehouse_pool(march_snapshot)
    with warehouse.engine(march_snapshot).connect() as conn:
        assert conn.exec_driver_sql("select count(*) from mart.mrr_movements").scalar() > 0


def test_duckdb_lets_go_of_the_file_after_each_use(march_snapshot):
    """No connection is kept open between uses, so another process can open the file at once."""
    import subprocess
    import sys

    with warehouse.engine(march_snapshot).connect() as conn:
        conn.exec_driver_sql("select 1")
    path = march_snapshot[len("duckdb:///") :]
    probe = f"import duckdb; duckdb.connect({path!r}).execute('select 1').fetchall()"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-1000:]


def test_a_process_outside_airflow_holding_the_file_is_waited_for(march_snapshot, monkeypatch, caplog):
    """A reader outside the pool (make summary, a notebook) locks the whole file: a task waits."""
    import subprocess
    import sys
    import time

    path = march_snapshot[len("duckdb:///") :]
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({path!r}, read_only=True); "
         "print('held', flush=True); time.sleep(4)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with warehouse.engine(march_snapshot).connect() as conn:
        assert conn.exec_driver_sql("select count(*) from mart.mrr_movements").scalar() > 0
    assert time.monotonic() - started > 1  # it waited for the holder to let go
    holder.wait(timeout=30)
    assert "waiting for the DuckDB warehouse file" in caplog.text and "Conflicting lock" in caplog.text

    monkeypatch.setenv("POSTSALES_DUCKDB_LOCK_WAIT_SECONDS", "1")  # and gives up when told to
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({path!r}); print('held', flush=True); "
         "time.sleep(6)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Exception, match="Could not set lock"), warehouse.engine(march_snapshot).connect():
        pass
    holder.kill()
