"""The project's own warehouse calls, unchanged, on Spark through the prototype dialect (sa_spark.py),
compared with the same calls on the DuckDB warehouse the DAG chain filled.

    PYTHONPATH=plugins .venv/bin/python scripts/spark_spike/sa_spark_demo.py --duckdb REF.duckdb
"""

import argparse
import sys
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_queries as cq
import sa_spark

from postsales import cohorts, warehouse
from postsales.segment import engine
from postsales.segment.rules import load_rules
from postsales.tables import table as home_table

ap = argparse.ArgumentParser()
ap.add_argument("--duckdb", required=True)
ap.add_argument("--remote", default="127.0.0.1:15002")
a = ap.parse_args()

sa_spark.register()
spark_engine = sa.create_engine(f"spark+connect://{a.remote}", poolclass=sa.pool.StaticPool)
duck = sa.create_engine(f"duckdb:///{a.duckdb}", connect_args={"read_only": True})
rules = load_rules()
as_of = date(2026, 10, 31)
segments = home_table("mart.account_segments")


def plain(value):
    """query_frame on DuckDB returns datetime64 columns (pandas Timestamps) and float64 for integers;
    elsewhere (PostgreSQL, Spark) Python values: compare the values."""
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return value.date() if value == value.normalize() else value.to_pydatetime()
    if value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value


def rows(result_rows) -> Counter:
    return Counter(tuple(cq.normal(plain(v)) for v in r) for r in result_rows)


calls = {
    "warehouse.query(reports/segmentation_accounts)": lambda c: warehouse.query(
        c, "reports", "segmentation_accounts", as_of_date=as_of
    ),
    "warehouse.query(cohorts/mrr_movements)": lambda c: warehouse.query(
        c, "cohorts", "mrr_movements", snapshot_month=date(2026, 10, 1)
    ),
    "warehouse.query_frame(forecast/account_trajectories)": lambda c: [
        tuple(r)
        for r in warehouse.query_frame(
            c, "forecast", "account_trajectories", as_of_date=as_of, months=12, usage_days=30
        )
        .astype(object)
        .itertuples(index=False)
    ],
    "Core select (compute_segments' quadrant counts)": lambda c: c.execute(
        sa.select(segments.c.quadrant, sa.func.count())
        .where(segments.c.as_of_date == as_of)
        .group_by(segments.c.quadrant)
    ).all(),
    "Core select with expanding IN": lambda c: c.execute(
        sa.select(segments.c.account_id, segments.c.value_tier).where(
            segments.c.as_of_date == as_of, segments.c.value_tier.in_(["SMB", "Enterprise"])
        )
    ).all(),
    "Core select (cohorts.compile_account_segments)": lambda c: c.execute(
        cohorts.compile_account_segments(cohorts.load_settings(), rules),
        {"snapshot_month": date(2026, 10, 1), "next_month": date(2026, 11, 1)},
    ).all(),
}
with spark_engine.connect() as sconn, duck.connect() as dconn:
    t = time.monotonic()
    sconn.execute(sa.text("select 1")).all()
    print(f"connect + schema read + first statement: {time.monotonic() - t:.2f}s")
    for label, call in calls.items():
        t = time.monotonic()
        try:
            got = call(sconn)
        except Exception as exc:
            print(f"{label}: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            continue
        took = time.monotonic() - t
        want = call(dconn)
        print(f"{label}: {'MATCH' if rows(got) == rows(want) else 'DIFF'} ({len(want)} rows, spark {took:.2f}s)")

    # a Core insert ... select, as compute_segments runs it, into a scratch copy of mart.account_segments
    sconn.execute(sa.text("create database if not exists spike"))
    sconn.execute(sa.text("drop table if exists spike.account_segments"))
    sconn.execute(sa.text("create table spike.account_segments like mart.account_segments"))
    scratch = sa.Table("account_segments", sa.MetaData(), *(c.copy() for c in segments.columns), schema="spike")
    t = time.monotonic()
    try:
        sconn.execute(
            scratch.insert().from_select([c.name for c in scratch.c], engine.compile_segments(rules, "postgresql")),
            {"as_of_date": as_of, "computed_at": datetime(2026, 11, 1, 6, 0)},
        )
        n = sconn.execute(sa.select(sa.func.count()).select_from(scratch)).scalar_one()
        print(f"Core insert-from-select (compute_segments): {n} rows in {time.monotonic() - t:.2f}s")
    except Exception as exc:
        print(f"Core insert-from-select: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
print("shim totals:", {k: round(v, 2) if isinstance(v, float) else v for k, v in sa_spark.STATS.items()})
