"""postsales.spark.sql's rewrites, each on the smallest query that needs it (no Spark: the SQL text).

test_spark_sql_files runs every include/sql file on a real Spark against DuckDB; these pin down
what each rewrite writes, so a sqlglot upgrade that changes it fails here first, by name.
"""

from __future__ import annotations

import sqlalchemy as sa

from postsales import tables, warehouse
from postsales.spark.sql import create_table, partition_columns, to_spark, warehouse_schema

SCHEMA = {"mart": {"t": {"account_id": "text", "as_of_date": "date", "started": "date", "arr": "double"}}}


def flat(sql: str) -> str:
    return " ".join(sql.split())


def test_generate_series_is_a_guarded_lateral_sequence_keeping_its_alias():
    sql = to_spark("select n.k from mart.t cross join generate_series(0, :months) as n (k)")
    assert "LATERAL EXPLODE(CASE WHEN :months >= 0 THEN SEQUENCE(0, :months) END) AS n(k)" in flat(sql)


def test_date_minus_date_is_datediff_only_when_both_sides_are_dates():
    sql = flat(to_spark("select as_of_date - started as days, as_of_date - 1 as before from mart.t", SCHEMA))
    assert "DATEDIFF(DAY, t.started, t.as_of_date) AS days" in sql  # Spark: whole days from start to end
    assert "t.as_of_date - 1 AS before" in sql  # a date minus days stays a date
    assert "DATEDIFF" not in to_spark("select as_of_date - started from mart.t")  # untyped: unchanged


def test_a_star_is_expanded_in_the_schemas_column_order():
    sql = flat(to_spark("select * from mart.t", SCHEMA))
    assert "SELECT t.account_id AS account_id, t.as_of_date AS as_of_date, t.started AS started, t.arr AS arr" in sql


def test_nested_ctes_stay_nested_and_double_precision_loses_its_precision():
    sql = flat(
        to_spark(
            "select * from (with a as (select 1 as x) select x from a) as one "
            "cross join (with a as (select cast(2 as float(53)) as y) select y from a) as two"
        )
    )
    assert sql.count("WITH a AS") == 2  # hoisted, the two would be one duplicated name
    assert "CAST(2 AS DOUBLE)" in sql and "DOUBLE(53)" not in sql


def test_the_schema_types_views_from_their_select():
    account_segments = tables.table("mart.account_segments")
    view = warehouse.sql_text("segment", "account_segments_current")
    schema = warehouse_schema([account_segments], {"mart.account_segments_current": view})
    current = schema["mart"]["account_segments_current"]
    assert list(current) == [c.name for c in account_segments.columns]
    assert current["as_of_date"] == "date"


def test_spark_tables_are_partitioned_by_date_partitions_only_last():
    segments = tables.table("mart.account_segments")
    assert partition_columns(segments) == ["as_of_date"]
    ddl = create_table(segments)
    assert ddl.endswith("USING PARQUET PARTITIONED BY (`as_of_date`)")
    assert ddl.index("`as_of_date` DATE") > ddl.index("`account_id` STRING")
    # staging.accounts is replaced as a range of updated_at (a timestamp), raw per run: no Spark partition.
    assert partition_columns(warehouse.tables().staging["accounts"]) == []
    assert partition_columns(tables.table("raw.accounts")) == []
    assert partition_columns(warehouse.tables().staging["usage_daily"]) == ["usage_date"]
    assert "`_loaded_at` TIMESTAMP_NTZ" in create_table(warehouse.tables().staging["accounts"])
    assert isinstance(segments.c.as_of_date.type, sa.Date)


def test_json_build_object_is_to_json_of_a_named_struct():
    sql = flat(to_spark("select json_build_object(:k, x, :k2, y) from mart.t"))
    assert "TO_JSON(NAMED_STRUCT(:k, x, :k2, y))" in sql and "JSON_BUILD_OBJECT" not in sql


def test_array_to_json_of_string_to_array_is_to_json_of_a_literal_split():
    sql = flat(to_spark("select array_to_json(string_to_array(nullif(s, ''), ',')) from mart.t"))
    # SPLIT takes a regex: the separator is quoted (\\Q...\\E), as sqlglot writes PostgreSQL's split
    assert "TO_JSON(SPLIT(NULLIF(s, ''), CONCAT('\\\\Q', ',', '\\\\E')))" in sql
    assert "STRING_TO_ARRAY" not in sql and "ARRAY_TO_JSON" not in sql


def test_a_cast_to_json_stays_the_json_text():
    sql = flat(to_spark("select coalesce(j, cast('[]' as json)) from mart.t"))
    assert "COALESCE(j, '[]')" in sql and "TO_JSON" not in sql
