"""Item 4 on the real tables: replace_from_query's Spark form, on the warehouse compare_queries.py loaded.

mart.account_features' partition for an as-of date is refilled from include/sql/segment/account_features.sql
(transpiled as compare_queries.py does) with INSERT OVERWRITE ... PARTITION (as_of_date = :as_of_date),
twice (rerun), and compared with DuckDB's rows of that partition (which replace_from_query wrote).

    PYTHONPATH=plugins .venv/bin/python scripts/spark_spike/write_path.py --duckdb REF.duckdb [--remote ...]
"""

import argparse
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_queries as cq

from postsales import paths, warehouse
from postsales.tables import table as home_table

ap = argparse.ArgumentParser()
ap.add_argument("--duckdb", required=True)
ap.add_argument("--remote", default="sc://127.0.0.1:15002")
ap.add_argument("--as-of", default="2026-10-31")
a = ap.parse_args()
from pyspark.sql import SparkSession  # noqa: E402

spark = SparkSession.builder.remote(a.remote).getOrCreate()
duck = sa.create_engine(f"duckdb:///{a.duckdb}", connect_args={"read_only": True})
cq.SCHEMA.update(cq.read_schema(duck))
as_of = date.fromisoformat(a.as_of)
params = {"as_of_date": as_of, "usage_window_days": 90, "nps_window_days": 365, "csat_window_days": 180}
table = home_table("mart.account_features")
columns = [c.name for c in table.columns if c.name != "as_of_date"]
query = cq.transpile(warehouse.render_sql(paths.sql_dir() / "segment/account_features.sql"), "postgres", True)
cols = ", ".join(f"`{c}`" for c in columns)
statement = (
    f"insert overwrite table mart.account_features partition (as_of_date = :as_of_date)\n"
    f"select {cols} from (\n{query}\n) as query_result"
)
snapshots = []
for attempt in ("first", "rerun"):
    t = time.monotonic()
    spark.sql(statement, args=params)
    took = time.monotonic() - t
    rows = [
        tuple(cq.normal(v) for v in r)
        for r in spark.sql(
            f"select {cols} from mart.account_features where as_of_date = :d", args={"d": as_of}
        ).collect()
    ]
    snapshots.append(Counter(rows))
    print(f"{attempt}: insert overwrite of one partition {took:.2f}s, {len(rows)} rows")
with duck.connect() as conn:
    duck_rows = [
        tuple(cq.normal(v) for v in r)
        for r in conn.execute(
            sa.text(f"select {cols.replace('`', chr(34))} from mart.account_features where as_of_date = :d"),
            {"d": as_of},
        )
    ]
print("rerun identical:", snapshots[0] == snapshots[1])
print(
    "same rows as DuckDB's partition (written by replace_from_query):",
    snapshots[1] == Counter(duck_rows),
    len(duck_rows),
)
others = spark.sql("select count(distinct as_of_date), count(*) from mart.account_features").collect()[0]
print("partitions in the table after: ", others[0], "rows:", others[1])
