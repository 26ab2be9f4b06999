"""Items 3 and 6: every include/sql query on Spark (through Spark Connect) vs DuckDB, same rows?

1. ``--load``: copy every table of a DuckDB warehouse filled by the project's own DAG chain
   (capture_params.py, i.e. `make run` on a small demo) into a Spark warehouse: DuckDB writes each
   table to Parquet, Spark creates a Parquet table (partitioned as its home in include/tables says,
   staging.usage_daily by usage_date) and inserts the file; the views of include/sql/staging and
   segment/account_segments_current are created from the transpiled files. Timed.
2. For every include/sql/<stage>/<name>.sql: render it (warehouse.render_sql), transpile it with
   sqlglot (``--read`` postgres or duckdb, write spark; ``--transforms`` applies spark_sql.py's
   AST rewrites), run it on Spark with spark.sql(query, args=params) and on DuckDB with the same
   parameters (as the pipeline bound them: params.json), and compare the rows.

    .venv/bin/python scripts/spark_spike/compare_queries.py --duckdb REF.duckdb --params params.json \
        --remote sc://127.0.0.1:15002 [--load DIR] [--read postgres] [--transforms] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
import sqlglot

sys.path.insert(0, str(Path(__file__).resolve().parent))

import spark_sql

from postsales import paths, warehouse

SCHEMAS = ("raw", "staging", "ops", "mart")
# The files the pipeline runs only inside a larger SQLAlchemy statement (cohorts' _text_query) or
# only when there is an earlier date to compare with: parameters given here.
EXTRA_PARAMS = {
    "cohorts/account_acquisitions.sql": [{"snapshot_month": {"date": "2026-10-01"}}],
    "cohorts/account_industries.sql": [{"next_month": {"date": "2026-11-01"}}],
    "cohorts/account_quadrants.sql": [{"next_month": {"date": "2026-11-01"}}],
    "reports/quadrant_migration.sql": [{"as_of_date": {"date": "2026-10-31"}, "compared_to": {"date": "2026-07-31"}}],
}
VIEWS = {  # created in Spark from the same files the warehouse makes its views of
    "staging.account_versions": "staging/account_versions.sql",
    "staging.contract_versions": "staging/contract_versions.sql",
    "staging.accounts_current": "staging/accounts_current.sql",
    "staging.contracts_current": "staging/contracts_current.sql",
    "mart.account_segments_current": "segment/account_segments_current.sql",
}
TRANSFORM_VIEWS = True
SPARK_TYPES = {
    "VARCHAR": "STRING",
    "DOUBLE": "DOUBLE",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "BOOLEAN": "BOOLEAN",
    "INTEGER": "INT",
    "BIGINT": "BIGINT",
}


def decode(value):
    if isinstance(value, dict):
        ((kind, text),) = value.items()
        return {"date": date.fromisoformat, "datetime": datetime.fromisoformat, "decimal": Decimal}[kind](text)
    return value


def partition_columns(schema: str, table: str) -> list[str]:
    """Spark partitions: the home's partition columns when they are dates (the mart tables), usage by day."""
    if (schema, table) == ("staging", "usage_daily"):
        return ["usage_date"]
    if schema != "mart":
        return []
    from postsales.tables import home_of
    from postsales.tables import table as home_table

    home = home_of(home_table(f"{schema}.{table}"))
    return [c for c in home.partition if c in ("as_of_date", "snapshot_month", "compared_to")]


def load(spark, duck: sa.Engine, out_dir: Path) -> dict:
    """Copy every table of ``duck`` into Spark; returns timings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = {"tables": 0, "rows": 0}
    t0 = time.monotonic()
    with duck.connect() as conn:
        raw = conn.connection.driver_connection
        tables = raw.execute(
            "select schema_name, table_name from duckdb_tables() where schema_name in ('raw','staging','ops','mart')"
            " and database_name = current_database() order by 1, 2"
        ).fetchall()
        columns = {}
        for schema, table in tables:
            columns[(schema, table)] = raw.execute(
                "select column_name, data_type from duckdb_columns() where schema_name = ? and table_name = ?"
                " and database_name = current_database() order by column_index",
                [schema, table],
            ).fetchall()
            raw.execute(
                f"copy (select * from {schema}.\"{table}\") to '{out_dir}/{schema}.{table}.parquet' (format parquet)"
            )
    timings["duckdb_export_s"] = round(time.monotonic() - t0, 2)
    t1 = time.monotonic()
    for schema in SCHEMAS:
        spark.sql(f"create database if not exists {schema}")
    per_table = {}
    for (schema, table), cols in columns.items():
        t = time.monotonic()
        parts = partition_columns(schema, table)
        ordered = [c for c in cols if c[0] not in parts] + [c for p in parts for c in cols if c[0] == p]
        ddl = ", ".join(f"`{name}` {SPARK_TYPES[dtype]}" for name, dtype in ordered)
        spark.sql(f"drop table if exists {schema}.`{table}`")
        spark.sql(
            f"create table {schema}.`{table}` ({ddl}) using parquet"
            + (f" partitioned by ({', '.join(parts)})" if parts else "")
        )
        created = time.monotonic() - t
        names = ", ".join(f"`{name}`" for name, _ in ordered)
        casts = ", ".join(f"cast(`{name}` as {SPARK_TYPES[dtype]}) as `{name}`" for name, dtype in ordered)
        spark.sql(
            f"insert into {schema}.`{table}` ({names}) select {casts} from parquet.`{out_dir}/{schema}.{table}.parquet`"
        )
        per_table[f"{schema}.{table}"] = {
            "create_s": round(created, 2),
            "insert_s": round(time.monotonic() - t - created, 2),
        }
        timings["tables"] += 1
    timings["spark_create_and_insert_s"] = round(time.monotonic() - t1, 2)
    t2 = time.monotonic()
    for view, file in VIEWS.items():
        sql = transpile(warehouse.render_sql(paths.sql_dir() / file), "postgres", TRANSFORM_VIEWS)
        spark.sql(f"create or replace view {view} as\n{sql}")
    timings["views_s"] = round(time.monotonic() - t2, 2)
    timings["per_table"] = per_table
    return timings


SCHEMA: dict = {}  # {schema: {table or view: {column: type}}}, in the warehouse's column order


def read_schema(duck: sa.Engine) -> dict:
    with duck.connect() as conn:
        rows = conn.connection.driver_connection.execute(
            "select schema_name, table_name, column_name, data_type from duckdb_columns()"
            " where schema_name in ('raw','staging','ops','mart') and database_name = current_database()"
            " order by schema_name, table_name, column_index"
        ).fetchall()
    schema: dict = {}
    for s, t, c, typ in rows:
        schema.setdefault(s, {}).setdefault(t, {})[c] = typ
    return schema


def transpile(sql: str, read: str, transforms: bool) -> str:
    if transforms:
        return spark_sql.to_spark(sql, read=read, schema=SCHEMA or None)
    return sqlglot.transpile(sql, read=read, write="spark", pretty=True)[0]


def normal(value):
    """One spelling per value, whatever the engine returned it as."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value == 0:
            return 0.0
        return float(f"{value:.10g}")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)  # BIGINT vs INT vs DOUBLE of the same number: compare the number
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):
        return normal(value.item())
    return value


def compare(duck_cols, duck_rows, spark_cols, spark_rows, ordered: bool) -> tuple[bool, str]:
    if [c.lower() for c in duck_cols] != [c.lower() for c in spark_cols]:
        return False, f"columns differ: duckdb {duck_cols} spark {spark_cols}"
    d = [tuple(normal(v) for v in r) for r in duck_rows]
    s = [tuple(normal(v) for v in r) for r in spark_rows]
    if ordered and d == s:
        return True, f"{len(d)} rows, same order"
    if Counter(d) == Counter(s):
        return True, f"{len(d)} rows" + (" (same rows, order differs: ties in ORDER BY?)" if ordered else "")
    only_d = list((Counter(d) - Counter(s)).elements())
    only_s = list((Counter(s) - Counter(d)).elements())
    return False, (
        f"{len(d)} rows on duckdb, {len(s)} on spark; {len(only_d)} only on duckdb, {len(only_s)} only on spark;"
        f" e.g. duckdb {only_d[:2]} spark {only_s[:2]}"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duckdb", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--remote", default="sc://127.0.0.1:15002")
    ap.add_argument("--load", help="copy the DuckDB tables into Spark first, through Parquet files in this dir")
    ap.add_argument("--read", default="postgres", choices=["postgres", "duckdb"])
    ap.add_argument("--transforms", action="store_true", help="apply spark_sql.py's rewrites")
    ap.add_argument("--max-param-sets", type=int, default=3)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out")
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args()

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(args.remote).getOrCreate()
    duck = sa.create_engine(f"duckdb:///{args.duckdb}", connect_args={"read_only": True}, poolclass=sa.pool.NullPool)
    SCHEMA.update(read_schema(duck))
    report: dict = {
        "read": args.read,
        "transforms": args.transforms,
        "sqlglot": sqlglot.__version__,
        "spark": spark.version,
    }
    if args.load:
        report["load"] = load(spark, duck, Path(args.load))
        print(json.dumps({k: v for k, v in report["load"].items() if k != "per_table"}), flush=True)

    captured = json.loads(Path(args.params).read_text()) | EXTRA_PARAMS
    files = sorted(str(p.relative_to(paths.sql_dir())) for p in paths.sql_dir().glob("*/*.sql"))
    results = {}
    t_all = time.monotonic()
    for name in files:
        if args.only and name not in args.only:
            continue
        sql = warehouse.render_sql(paths.sql_dir() / name)
        sets = captured.get(name, [{}])
        if len(sets) > args.max_param_sets:  # first, middle, last
            sets = [sets[0], sets[len(sets) // 2], sets[-1]][: args.max_param_sets]
        entry = {"param_sets": len(sets), "runs": []}
        try:
            spark_text = transpile(sql, args.read, args.transforms)
            entry["transpile"] = "ok"
        except Exception as exc:
            entry["transpile"] = f"{type(exc).__name__}: {exc}"
            results[name] = entry
            print(f"{name}: transpile failed: {exc}", flush=True)
            continue
        ordered = sqlglot.parse_one(sql, read=args.read).args.get("order") is not None
        for raw_params in sets:
            params = {k: decode(v) for k, v in raw_params.items() if not k.startswith("_")}
            used = {k: v for k, v in params.items() if f":{k}" in sql}
            run: dict = {"params": {k: str(v) for k, v in used.items()}}
            with duck.connect() as conn:
                t = time.monotonic()
                result = conn.execute(sa.text(sql), used)
                duck_cols, duck_rows = list(result.keys()), [tuple(r) for r in result]
                run["duckdb_s"] = round(time.monotonic() - t, 3)
            try:
                t = time.monotonic()
                frame = spark.sql(spark_text, args=used)
                spark_rows = [tuple(r) for r in frame.collect()]
                run["spark_s"] = round(time.monotonic() - t, 3)
                ok, detail = compare(duck_cols, duck_rows, frame.columns, spark_rows, ordered)
                run["match"] = ok
                run["detail"] = detail
            except Exception as exc:
                run["match"] = False
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                run["error"] = f"{type(exc).__name__}: {first[:400]}"
                if "--trace" in sys.argv:
                    traceback.print_exc()
            entry["runs"].append(run)
        entry["all_match"] = all(r.get("match") for r in entry["runs"])
        results[name] = entry
        first = entry["runs"][0]
        verdict = "MATCH" if entry["all_match"] else "DIFF "
        detail = first.get("detail") or first.get("error")
        line = f"{name:45s} {verdict} duckdb {first.get('duckdb_s')}s spark {first.get('spark_s')}s  {detail}"
        print(line[:600], flush=True)
    report["queries_s"] = round(time.monotonic() - t_all, 1)
    report["results"] = results
    report["summary"] = {
        "files": len(results),
        "match": sum(1 for r in results.values() if r.get("all_match")),
        "differ_or_fail": [n for n, r in results.items() if not r.get("all_match")],
    }
    print(json.dumps(report["summary"], indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
