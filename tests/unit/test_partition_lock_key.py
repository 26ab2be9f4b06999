"""A partition has one lock key whatever the Python type of the value naming it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pendulum
import pytest

from postsales import warehouse
from postsales.segment.engine import account_segments


@pytest.fixture(scope="module")
def conn():
    with warehouse.engine("duckdb:///:memory:").connect() as connection:
        yield connection


def key(conn, value):
    return warehouse.partition_lock_key(conn, account_segments, account_segments.c.as_of_date == value)


def test_a_pendulum_date_and_a_datetime_date_lock_the_same_partition(conn):
    # A monthly task's month end (pendulum, from its data interval) and another's (datetime.date).
    month_end = (pendulum.datetime(2026, 9, 1) - timedelta(microseconds=1)).date()
    assert type(month_end) is not date
    assert key(conn, month_end) == key(conn, date(2026, 8, 31))
    assert key(conn, date(2026, 8, 30)) != key(conn, date(2026, 8, 31))


def test_aware_and_naive_moments_of_the_same_instant_share_a_key(conn):
    naive = datetime(2026, 8, 31, 22, 0)
    assert key(conn, pendulum.datetime(2026, 8, 31, 22, tz="UTC")) == key(conn, naive)
    assert key(conn, datetime(2026, 9, 1, 0, 0, tzinfo=UTC) - timedelta(hours=2)) == key(conn, naive)
    assert key(conn, naive + timedelta(microseconds=1)) != key(conn, naive)
