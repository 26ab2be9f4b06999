"""Parallel runs on PostgreSQL (the pool has several slots there) that replace the same partition
at once leave it as one run would: no duplicate rows."""

from __future__ import annotations

import threading
from datetime import date

import pytest
import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.cohorts import compute_snapshot
from postsales.extract import extract_entity
from postsales.segment.engine import compute_segments
from postsales.sources import Interval


def at_once(*calls) -> None:
    """Run the calls in threads released together; re-raise the first error."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call):
        try:
            barrier.wait()
            call()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.postgres
def test_two_runs_replacing_the_same_partitions_at_once(pg_database, tiny_source, monkeypatch):
    url = pg_database
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", url)
    with warehouse.engine(url).begin() as conn:
        for schema in warehouse.SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=Interval(tiny.DAY1, tiny.DAY3, full_refresh=True), run_id="r",
                       build_data_docs=False)  # fmt: skip
    as_of, month = date(2024, 3, 31), date(2024, 3, 1)
    for _ in range(3):  # an empty partition the first time, a filled one after
        at_once(*(lambda: compute_segments(as_of, warehouse_url=url),) * 2)
        at_once(*(lambda: compute_snapshot(month, warehouse_url=url),) * 2)
    with warehouse.engine(url).connect() as conn:
        for table, key, where in (
            ("mart.account_segments", "account_id", f"as_of_date = '{as_of}'"),
            ("mart.account_features", "account_id", f"as_of_date = '{as_of}'"),
            ("mart.mrr_monthly", "account_id, month", f"snapshot_month = '{month}'"),
            ("mart.mrr_movements", "month", f"snapshot_month = '{month}'"),
        ):
            rows, keys = conn.execute(
                sa.text(f"select count(*), count(distinct ({key})) from {table} where {where}")
            ).one()
            assert rows == keys and rows > 0, f"{table}: {rows} rows for {keys} keys"
    warehouse.dispose_all()
