"""Every query in include/sql, transpiled by postsales.spark.sql, runs on a real Spark and returns
the rows it returns on DuckDB (test_sql_files checks DuckDB against PostgreSQL).

The warehouse is filled on DuckDB by the pipeline itself on the tiny data, then copied table by
table into Spark (Parquet, created as postsales.spark.sql.create_table makes them: partitioned,
partition columns last), with the staging views made from their own files.
"""

from __future__ import annotations

import pytest
from test_sql_files import AUDIT_COLUMNS, BIND, PARAMS, SQL_DIR, SQL_FILES, load, normalise, results

from postsales import warehouse
from postsales.spark.sql import to_spark
from spark_warehouse import copy_to_spark

# The first test starts the shared Spark server (10-30 s) and fills and copies a warehouse (~100 s alone,
# several times that on a busy machine): above the suite's 600 s per test.
pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]


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

    schema = copy_to_spark(spark, duck, tmp_path)
    # Spark really stores a partitioned table's partition column last: the star expansion matters.
    assert spark.table("mart.account_segments").columns[-1] == "as_of_date"

    got = spark_results(spark, schema)

    assert sorted(got) == sorted(expected) and len(got) == len(SQL_FILES)
    differing = {name: (expected[name][:3], got[name][:3]) for name in expected if got[name] != expected[name]}
    assert not differing, differing
    assert all(expected.values()), "every query should return rows on the tiny data"
