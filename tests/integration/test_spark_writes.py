"""postsales.spark.writes on a real Spark: a partition replaced is replaced whole, alone, the same
on a rerun, emptied by an empty result, and kept when the job computing it fails."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from postsales.spark.sql import create_table
from postsales.spark.writes import overwrite_partition, rewrite_table

pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]  # the first test may start the Spark server

JAN, FEB = date(2026, 1, 31), date(2026, 2, 28)


def scratch(name: str, *columns: sa.Column, partition: list[str] | None = None) -> sa.Table:
    """A table as a home defines one (``info["home"]`` gives its partition), in a scratch schema."""
    from types import SimpleNamespace

    table = sa.Table(name, sa.MetaData(), *columns, schema="spark_writes")
    table.info["home"] = SimpleNamespace(partition=partition or [])
    return table


@pytest.fixture
def features(spark):
    spark.sql("create database if not exists spark_writes")
    table = scratch(
        "features",
        sa.Column("as_of_date", sa.Date),
        sa.Column("account_id", sa.Text),
        sa.Column("arr", sa.Float(53)),
        partition=["as_of_date"],
    )
    spark.sql(f"drop table if exists {table.schema}.{table.name}")
    spark.sql(create_table(table))
    return table


def rows_of(spark, table) -> list[tuple]:
    return sorted(
        tuple(r)
        for r in spark.table(f"{table.schema}.{table.name}").select("as_of_date", "account_id", "arr").collect()
    )


def accounts(spark, n: int, arr: float = 1.0):
    return spark.sql(
        f"select concat('A', cast(id as string)) as account_id, id * :arr as arr from range({n})", args={"arr": arr}
    )


def test_a_partition_is_replaced_alone_and_the_same_on_a_rerun(spark, features):
    assert overwrite_partition(spark, features, {"as_of_date": JAN}, accounts(spark, 3)) == 3
    assert overwrite_partition(spark, features, {"as_of_date": FEB}, accounts(spark, 2, 10.0)) == 2
    january = [(JAN, "A0", 0.0), (JAN, "A1", 1.0), (JAN, "A2", 2.0)]
    february = [(FEB, "A0", 0.0), (FEB, "A1", 10.0)]
    assert rows_of(spark, features) == sorted(january + february)

    assert overwrite_partition(spark, features, {"as_of_date": JAN}, accounts(spark, 1, 5.0)) == 1
    assert rows_of(spark, features) == sorted([(JAN, "A0", 0.0), *february])  # February untouched
    overwrite_partition(spark, features, {"as_of_date": JAN}, accounts(spark, 1, 5.0))
    assert rows_of(spark, features) == sorted([(JAN, "A0", 0.0), *february])  # a rerun: identical


def test_an_empty_result_empties_the_partition(spark, features):
    overwrite_partition(spark, features, {"as_of_date": JAN}, accounts(spark, 3))
    overwrite_partition(spark, features, {"as_of_date": FEB}, accounts(spark, 2))
    assert overwrite_partition(spark, features, {"as_of_date": JAN}, accounts(spark, 0)) == 0
    assert {r[0] for r in rows_of(spark, features)} == {FEB}


def test_a_failing_job_keeps_the_partitions_rows(spark, features):
    overwrite_partition(spark, features, {"as_of_date": JAN}, accounts(spark, 3))
    before = rows_of(spark, features)
    failing = spark.sql(
        "select concat('A', cast(id as string)) as account_id, "
        "case when id = 7 then cast(raise_error('row 7 is bad') as double) else id end as arr from range(20)"
    )
    with pytest.raises(Exception, match="row 7 is bad"):
        overwrite_partition(spark, features, {"as_of_date": JAN}, failing)
    assert rows_of(spark, features) == before


def test_the_partition_values_must_be_the_tables_partition(spark, features):
    with pytest.raises(ValueError, match=r"partitioned by \['as_of_date'\] on Spark; got values for \['day'\]"):
        overwrite_partition(spark, features, {"day": JAN}, accounts(spark, 1))


def test_an_unpartitioned_table_keeps_the_rows_outside_the_replaced_ones(spark):
    spark.sql("create database if not exists spark_writes")
    runs = scratch(
        "runs", sa.Column("run_id", sa.Text), sa.Column("finished_at", sa.DateTime), sa.Column("rows", sa.BigInteger)
    )
    spark.sql("drop table if exists spark_writes.runs")
    spark.sql(create_table(runs))
    first = spark.sql("select 'r1' as run_id, timestamp_ntz'2026-01-31 10:00:00' as finished_at, 5 as rows")
    second = spark.sql("select 'r2' as run_id, timestamp_ntz'2026-02-28 10:00:00' as finished_at, 7 as rows")
    rewrite_table(spark, runs, None, {}, first)
    assert rewrite_table(spark, runs, "run_id = :run", {"run": "r2"}, second) == 1
    again = spark.sql("select 'r2' as run_id, timestamp_ntz'2026-02-28 11:00:00' as finished_at, 8 as rows")
    rewrite_table(spark, runs, "run_id = :run", {"run": "r2"}, again)  # r2 replaced, r1 kept
    got = sorted(tuple(r) for r in spark.table("spark_writes.runs").collect())
    assert got == [("r1", datetime(2026, 1, 31, 10), 5), ("r2", datetime(2026, 2, 28, 11), 8)]
