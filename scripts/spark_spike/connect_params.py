"""Item 2: what the warehouse layer's primitives look like over Spark Connect.

* spark.sql(query, args={name: value}) with :name markers, for the Python types the pipeline binds
  (params.json: date, int, float, str) plus Decimal, datetime, bool and None;
* DELETE / UPDATE / MERGE on a Parquet table (replace_rows' delete, crm_sync_state's upsert);
* information_schema / SHOW / DESCRIBE for ensure_schema; transactions; createDataFrame from pandas
  for insert_frame (pandas 3.1.1 with pyspark 4.3.0) and its speed.

    .venv/bin/python scripts/spark_spike/connect_params.py [--remote sc://127.0.0.1:15002]
"""

import json
import sys
import time
from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession

remote = sys.argv[sys.argv.index("--remote") + 1] if "--remote" in sys.argv else "sc://127.0.0.1:15002"
spark = SparkSession.builder.remote(remote).getOrCreate()
out: dict = {"bind": {}, "statements": {}}


def first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:220]}"


for label, value in {
    "date": date(2026, 10, 31),
    "datetime": datetime(2026, 10, 31, 12, 30),
    "decimal": Decimal("1234.567890"),
    "str_quote": "O'Brien; drop table x",
    "int": 12,
    "float": 0.25,
    "bool": True,
    "none": None,
}.items():
    try:
        row = spark.sql("select :v as v, typeof(:v) as t", args={"v": value}).collect()[0]
        out["bind"][label] = f"{row['v']!r} as {row['t']}"
    except Exception as exc:
        out["bind"][label] = first_line(exc)
# None compared with = yields NULL in SQL anyway; is a typed null possible?
try:
    out["bind"]["none_cast_date"] = repr(spark.sql("select cast(:v as date) as v", args={"v": None}).collect()[0][0])
except Exception as exc:
    out["bind"]["none_cast_date"] = first_line(exc)
# a date parameter in a partition spec and in arithmetic
try:
    out["bind"]["date_plus_interval"] = repr(
        spark.sql("select cast(:d as date) + interval '1' month as v", args={"d": date(2026, 1, 31)}).collect()[0][0]
    )
except Exception as exc:
    out["bind"]["date_plus_interval"] = first_line(exc)

spark.sql("create database if not exists spike")
spark.sql("drop table if exists spike.dml")
spark.sql("create table spike.dml (k string, v double, d date) using parquet partitioned by (d)")
spark.sql("insert into spike.dml values ('a', 1.0, date'2026-10-31'), ('b', 2.0, date'2026-10-30')")
for label, sql in {
    "delete_where": "delete from spike.dml where d = date'2026-10-31'",
    "update": "update spike.dml set v = 3 where k = 'a'",
    "merge": "merge into spike.dml t using (select 'a' as k, 9.0 as v, date'2026-10-31' as d) s"
    " on t.k = s.k when matched then update set v = s.v",
    "alter_drop_partition": "alter table spike.dml drop if exists partition (d = date'2026-10-31')",
    "alter_add_column": "alter table spike.dml add columns (extra string)",
    "begin_transaction": "begin transaction",
    "information_schema_columns": "select table_schema, table_name, column_name"
    " from information_schema.columns limit 1",
    "system_information_schema": "select * from system.information_schema.columns limit 1",
    "show_tables": "show tables in spike",
    "describe_table": "describe table spike.dml",
    "comment_on_view": "comment on table spike.dml is 'postsales:abc'",
    "create_temp_view": "create or replace temporary view work_t as select 1 as x",
    "create_temp_table": "create temporary table work_tt (x int) using parquet",
}.items():
    try:
        rows = spark.sql(sql).collect()
        out["statements"][label] = f"ok {[tuple(r) for r in rows][:2]}"
    except Exception as exc:
        out["statements"][label] = first_line(exc)

# insert_frame: a pandas frame of the shape the pipeline writes
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

n = 50_000
frame = pd.DataFrame(
    {
        "as_of_date": pd.Series([date(2026, 10, 31)] * n, dtype="object"),
        "account_id": [f"ACC-{i:06d}" for i in range(n)],
        "arr": np.random.default_rng(1).random(n) * 1e5,
        "segment": pd.Series(["Enterprise", None] * (n // 2), dtype="str"),
    }
)
spark.sql("drop table if exists spike.frames")
spark.sql(
    "create table spike.frames (account_id string, arr double, segment string, as_of_date date)"
    " using parquet partitioned by (as_of_date)"
)
try:
    t = time.perf_counter()
    df = spark.createDataFrame(frame)
    df.select("account_id", "arr", "segment", "as_of_date").write.insertInto("spike.frames", overwrite=True)
    out["insert_frame_50k_rows_s"] = round(time.perf_counter() - t, 2)
    out["insert_frame_schema"] = df.schema.simpleString()
    out["insert_frame_rows_back"] = spark.sql("select count(*), count(segment) from spike.frames").collect()[0][:]
except Exception as exc:
    out["insert_frame"] = first_line(exc)
print(json.dumps(out, indent=1, default=str))
