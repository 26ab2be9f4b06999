"""Item 2: do the pipeline's SQLAlchemy Core statements run on Spark when compiled with SQLAlchemy's
PostgreSQL compiler (named :params) and transpiled by sqlglot, as a Spark DBAPI shim would do?

The statements are the real ones the segmentation and cohort stages build from the rules:
segment.engine.compile_segments / compile_health_components / compile_data_gaps and
cohorts.compile_account_segments (which embeds three include/sql files). Each runs on DuckDB
(compiled by duckdb_engine, as the pipeline does) and on Spark, rows compared.

    PYTHONPATH=plugins .venv/bin/python scripts/spark_spike/core_statements.py --duckdb REF.duckdb
"""

import argparse
import sys
import time
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_queries as cq
import spark_sql

from postsales import cohorts
from postsales.segment import engine
from postsales.segment.rules import load_rules

ap = argparse.ArgumentParser()
ap.add_argument("--duckdb", required=True)
ap.add_argument("--remote", default="sc://127.0.0.1:15002")
a = ap.parse_args()
from pyspark.sql import SparkSession  # noqa: E402

spark = SparkSession.builder.remote(a.remote).getOrCreate()
duck = sa.create_engine(f"duckdb:///{a.duckdb}", connect_args={"read_only": True})
cq.SCHEMA.update(cq.read_schema(duck))
rules = load_rules()
as_of = date(2026, 10, 31)
pg = postgresql.dialect(paramstyle="named")
computed_at = datetime(2026, 11, 1, 6, 0)
statements = {
    "segment.compile_segments": (
        engine.compile_segments(rules, "postgresql"),
        engine.compile_segments(rules, "duckdb"),
        {"as_of_date": as_of, "computed_at": computed_at},
    ),
    "segment.compile_health_components": (
        engine.compile_health_components(rules),
        engine.compile_health_components(rules),
        {"as_of_date": as_of},
    ),
    "segment.compile_data_gaps": (
        engine.compile_data_gaps(rules),
        engine.compile_data_gaps(rules),
        {"as_of_date": as_of},
    ),
    "cohorts.compile_account_segments": (
        cohorts.compile_account_segments(cohorts.load_settings(), rules),
        cohorts.compile_account_segments(cohorts.load_settings(), rules),
        {"snapshot_month": date(2026, 10, 1), "next_month": date(2026, 11, 1)},
    ),
}
for name, (for_spark, for_duck, params) in statements.items():
    # As SQLAlchemy hands a statement to a DBAPI: expanding IN parameters rendered, named :params.
    compiled = for_spark.compile(dialect=pg)
    expanded = compiled.construct_expanded_state(params)
    compiled_sql, args = expanded.statement, {k: v for k, v in expanded.parameters.items() if v is not None} | params
    try:
        t = time.monotonic()
        text = spark_sql.to_spark(compiled_sql, read="postgres", schema=cq.SCHEMA)
        transpile_s = time.monotonic() - t
    except Exception as exc:
        print(f"{name}: transpile failed: {type(exc).__name__}: {str(exc)[:300]}")
        continue
    with duck.connect() as conn:
        res = conn.execute(for_duck, params)
        dcols, drows = list(res.keys()), [tuple(r) for r in res]
    try:
        t = time.monotonic()
        df = spark.sql(text, args=args)
        srows = [tuple(r) for r in df.collect()]
        took = time.monotonic() - t
        ok, detail = cq.compare(dcols, drows, df.columns, srows, ordered=False)
        print(
            f"{name}: {'MATCH' if ok else 'DIFF'} ({len(compiled_sql)} chars of SQL, {len(args)} params, "
            f"transpile {transpile_s:.2f}s, spark {took:.2f}s): {detail[:700]}"
        )
        if not ok:
            # which columns differ
            key = [
                i
                for i, c in enumerate(dcols)
                if c in ("account_id", "field", "component", "dimension", "segment_value")
            ]
            dmap = {tuple(r[i] for i in key): r for r in drows}
            cols_differ = {}
            for r in srows:
                d = dmap.get(tuple(r[i] for i in key))
                if d is None:
                    continue
                for i, c in enumerate(dcols):
                    if cq.normal(d[i]) != cq.normal(r[i]):
                        cols_differ.setdefault(c, (d[i], r[i]))
            for c, (dv, sv) in cols_differ.items():
                print(f"    {c}: duckdb {str(dv)[:150]!r} spark {str(sv)[:150]!r}")
    except Exception as exc:
        print(f"{name}: spark failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:400]}")
