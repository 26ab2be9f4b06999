"""Every query in include/sql, transpiled by postsales.spark.sql, runs on a real Spark and returns
the rows it returns on DuckDB (test_sql_files checks DuckDB against PostgreSQL).

The warehouse is filled on DuckDB by the pipeline itself on the tiny data, then copied table by
table into Spark (Parquet, created as postsales.spark.sql.create_table makes them: partitioned,
partition columns last), with the staging views made from their own files.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_sql_files import AUDIT_COLUMNS, BIND, PARAMS, SQL_DIR, SQL_FILES, load, normalise, results

from postsales import paths, tables, warehouse
from postsales.spark.sql import SPARK_TYPES, create_table, partition_columns, to_spark, type_name, warehouse_schema

pytestmark = [pytest.mark.spark, pytest.mark.slow]

VIEWS = {  # in the order they read each other
    **{f"staging.{name}": f"staging/{name}.sql" for name in ("account_versions", "contract_versions")},
    **{f"staging.{name}": f"staging/{name}.sql" for name in ("accounts_current", "contracts_current")},
    "mart.account_segments_current": "segment/account_segments_current.sql",
}


def copy_to_spark(spark, duck_url: str, directory) -> list[sa.Table]:
    """Every table of the DuckDB warehouse into Spark, through a Parquet file each."""
    every = [*tables.catalog().sorted_tables, *warehouse.tables().metadata.sorted_tables]
    for schema in warehouse.SCHEMAS:
        spark.sql(f"create database if not exists {schema}")
    with warehouse.engine(duck_url).connect() as conn:
        for table in every:
            file = directory / f"{table.schema}.{table.name}.parquet"
            conn.exec_driver_sql(f"copy (select * from {table.schema}.\"{table.name}\") to '{file}' (format parquet)")
            spark.sql(f"drop table if exists {table.schema}.`{table.name}`")
            spark.sql(create_table(table))
            partition = partition_columns(table)
            ordered = [c for c in table.columns if c.name not in partition] + [table.c[p] for p in partition]
            names = ", ".join(f"`{c.name}`" for c in ordered)
            casts = ", ".join(f"cast(`{c.name}` as {SPARK_TYPES[type_name(c.type)]})" for c in ordered)
            spark.sql(f"insert into {table.schema}.`{table.name}` ({names}) select {casts} from parquet.`{file}`")
    return every


def spark_results(spark, schema) -> dict[str, list]:
    out = {}
    for path in SQL_FILES:
        text = warehouse.render_sql(path)
        names = set(BIND.findall(text))
        frame = spark.sql(to_spark(text, schema), args={name: PARAMS[name] for name in names})
        keep = [i for i, column in enumerate(frame.columns) if column not in AUDIT_COLUMNS]
        rows = [tuple(normalise(row[i]) for i in keep) for row in frame.collect()]
        out[str(path.relative_to(SQL_DIR))] = sorted(rows, key=repr)
    return out


def test_every_sql_file_returns_duckdbs_rows_on_spark(spark, tmp_path, tiny_source, monkeypatch):
    duck = f"duckdb:///{tmp_path / 'w.duckdb'}"
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", duck)
    load(duck)
    expected = results(duck)

    copied = copy_to_spark(spark, duck, tmp_path)
    views = {name: warehouse.render_sql(paths.sql_dir() / file) for name, file in VIEWS.items()}
    schema = warehouse_schema(copied, views)
    for name, select in views.items():
        spark.sql(f"create or replace view {name} as\n{to_spark(select, schema)}")
    # Spark really stores a partitioned table's partition column last: the star expansion matters.
    assert spark.table("mart.account_segments").columns[-1] == "as_of_date"

    got = spark_results(spark, schema)

    assert sorted(got) == sorted(expected) and len(got) == len(SQL_FILES)
    differing = {name: (expected[name][:3], got[name][:3]) for name in expected if got[name] != expected[name]}
    assert not differing, differing
    assert all(expected.values()), "every query should return rows on the tiny data"
