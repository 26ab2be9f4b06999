"""Item 5: Great Expectations 1.24.1 against Spark.

A) GX's Spark data source with a Spark Connect session (SPARK_REMOTE / an active Connect session) and
   a Connect DataFrame as a dataframe asset: the gate's kinds of expectation, SUMMARY with
   unexpected_index_column_names=[_row] as sql_gate.run_checks asks, then COMPLETE for one.
B) (--thrift) GX's SQL data source on PyHive's hive:// dialect to the Thrift server: a query asset, as
   the gate uses on DuckDB/PostgreSQL.
C) The same suite through GX's SQL engine on DuckDB (the gate's engine today), for scale.

    SPARK_REMOTE=sc://127.0.0.1:15002 .venv/bin/python scripts/spark_spike/gx_spark.py --parquet FILE [--thrift]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import great_expectations as gx
import great_expectations.expectations as gxe

ap = argparse.ArgumentParser()
ap.add_argument("--parquet", required=True, help="staging.contracts as Parquet (compare_queries.py --load writes it)")
ap.add_argument("--thrift", help="host:port of a Thrift server holding table default.gate_contracts")
ap.add_argument("--skip-connect", action="store_true")
args = ap.parse_args()

GATE_SQL = """
select row_number() over (order by contract_id, updated_at) as _row, contract_id, account_id,
       start_date, end_date, arr - 1000 as arr_number, arr, plan, updated_at
from {src}
"""


def suite() -> gx.ExpectationSuite:
    s = gx.ExpectationSuite(name="contracts_contract")
    for e in [
        gxe.ExpectColumnValuesToNotBeNull(column="contract_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="account_id"),
        gxe.ExpectColumnValuesToBeBetween(column="arr_number", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="plan", value_set=["Starter", "Growth", "Business", "Enterprise"]),
        gxe.ExpectColumnValuesToBeNull(
            column="end_date", row_condition='col("arr")<0', condition_parser="great_expectations"
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="end_date", column_B="start_date", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
    ]:
        s.add_expectation(e)
    return s


def run(context, batch_definition, batch_parameters=None) -> dict:
    ctx_suite = context.suites.add(suite())
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="v", data=batch_definition, suite=ctx_suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="c",
            validation_definitions=[validation],
            actions=[],
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["_row"]},
        )
    )
    t = time.perf_counter()
    result = checkpoint.run(batch_parameters=batch_parameters)
    checkpoint_s = time.perf_counter() - t
    vr = next(iter(result.run_results.values()))
    per = {}
    for r in vr.results:
        problem = (
            (r.exception_info or {}).get("exception_message")
            if "raised_exception" in (r.exception_info or {})
            else None
        )
        if not problem:
            problem = next(
                (
                    v.get("exception_message")
                    for v in (r.exception_info or {}).values()
                    if isinstance(v, dict) and v.get("raised_exception")
                ),
                None,
            )
        per[r.expectation_config.type] = {
            "success": r.success,
            "unexpected_count": r.result.get("unexpected_count"),
            "rows": (r.result.get("partial_unexpected_index_list") or [])[:3],
            "error": (problem or "")[:200] or None,
        }
    batch = batch_definition.get_batch(batch_parameters=batch_parameters)
    t = time.perf_counter()
    every = batch.validate(
        gxe.ExpectColumnValuesToBeBetween(column="arr_number", min_value=0),
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": ["_row"],
            "exclude_unexpected_values": True,
        },
    )
    complete_s = time.perf_counter() - t
    return {
        "checkpoint_s": round(checkpoint_s, 2),
        "complete_s": round(complete_s, 2),
        "success": vr.success,
        "expectations": per,
        "complete_rows": (every.result.get("unexpected_index_list") or [])[:5],
    }


out = {"gx": gx.__version__}
ctx = gx.get_context(mode="ephemeral")

if not args.skip_connect:
    # A) Spark data source on a Connect session
    from pyspark.sql import SparkSession

    t = time.perf_counter()
    spark = SparkSession.builder.remote(os.environ.get("SPARK_REMOTE", "sc://127.0.0.1:15002")).getOrCreate()
    df = spark.sql(GATE_SQL.format(src=f"parquet.`{args.parquet}`"))
    try:
        source = ctx.data_sources.add_spark(name="spark_gate")
        asset = source.add_dataframe_asset(name="contracts_gate")
        bd = asset.add_batch_definition_whole_dataframe("whole")
        out["A_spark_connect"] = run(ctx, bd, {"dataframe": df})
        out["A_spark_connect"]["session_type"] = type(source.get_execution_engine().spark).__module__
    except Exception as exc:
        out["A_spark_connect"] = f"{type(exc).__name__}: {str(exc)[:400]}"
    out["A_total_s"] = round(time.perf_counter() - t, 2)

if args.thrift:
    # B) SQL data source over PyHive (Thrift server)
    t = time.perf_counter()
    ctx_b = gx.get_context(mode="ephemeral")
    try:
        src = ctx_b.data_sources.add_sql(name="thrift", connection_string=f"hive://{args.thrift}/default?auth=NOSASL")
        asset = src.add_query_asset("contracts_gate", query=GATE_SQL.format(src="default.gate_contracts"))
        out["B_thrift_sql"] = run(ctx_b, asset.add_batch_definition_whole_table("whole"))
    except Exception as exc:
        out["B_thrift_sql"] = f"{type(exc).__name__}: {str(exc)[:600]}"
    out["B_total_s"] = round(time.perf_counter() - t, 2)

# C) DuckDB through GX's SQL engine, as the gate runs today: the project's own data source
#    (postsales.validate.gx_warehouse) on one DuckDB connection, a query asset.
import sqlalchemy as sa  # noqa: E402

from postsales.validate import gx_warehouse  # noqa: E402

t = time.perf_counter()
gate_file = f"/tmp/gx_spike_gate_{os.getpid()}.duckdb"
duck = sa.create_engine(f"duckdb:///{gate_file}", poolclass=sa.pool.NullPool)
with duck.begin() as conn:
    conn.exec_driver_sql(f"create or replace table gate_contracts as select * from read_parquet('{args.parquet}')")
with duck.connect() as conn, gx_warehouse.on_connection(conn) as ctx_c:
    src = ctx_c.data_sources.get(gx_warehouse.DATASOURCE)
    asset = src.add_query_asset("contracts_gate", query=GATE_SQL.format(src="gate_contracts"))
    try:
        out["C_duckdb_sql"] = run(ctx_c, asset.add_batch_definition_whole_table("whole"))
    except Exception as exc:
        out["C_duckdb_sql"] = f"{type(exc).__name__}: {str(exc)[:400]}"
out["C_total_s"] = round(time.perf_counter() - t, 2)
os.unlink(gate_file)
print(json.dumps(out, indent=1, default=str))
