"""Replacing rows on Spark: what ``delete`` + ``insert`` in one transaction is on DuckDB and PostgreSQL.

Spark has no transactions, and a Parquet table takes no ``DELETE``. What it does give
atomically is a partition overwrite in *dynamic* mode (the server's
``partitionOverwriteMode``): the job writes to a staging directory and swaps only the partitions
it wrote at commit, so a job that fails leaves the old rows, and writers of different partitions
do not collide. Measured against the *static* form (``INSERT OVERWRITE … PARTITION (d = :d)``),
which deletes the old rows before the job runs and broke two concurrent writers of one table in
every run: docs/spark-spike.md, section 4.

- :func:`overwrite_partition`: a table partitioned by date (``postsales.spark.sql.partition_columns``)
  gets the rows of one partition replaced. The rows are computed once (cached), counted, then
  written; none at all drops the partition, since a dynamic overwrite replaces only the partitions
  present in its output and would leave the old rows.
- :func:`rewrite_table`: any other table (small: the ops tables, staging replaced by a range)
  keeps its rows outside the replaced ones and is overwritten whole, from a checkpoint (Spark
  cannot overwrite a table while reading it).

Neither is a transaction across tables: a stage that replaces several tables on DuckDB in one
transaction replaces them one after the other here; a failure in between leaves a mix that the
stage's rerun repairs, as every write is keyed on the run's interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from postsales.spark.sql import column_type, partition_columns, spark_name, stored_columns


def overwrite_partition(session: Any, table: sa.Table, partition: Mapping[str, Any], rows: Any) -> int:
    """Replace the rows of ``table`` in ``partition`` ({column: value} for each of its partition
    columns) with ``rows`` (a Spark DataFrame holding the table's other columns, by name, in any
    order); returns how many rows the partition now holds."""
    from pyspark.sql import functions as F

    keys = partition_columns(table)
    if sorted(partition) != sorted(keys):
        raise ValueError(f"{table.fullname} is partitioned by {keys} on Spark; got values for {sorted(partition)}")
    staged = rows.select(
        *(
            (F.lit(partition[c.name]) if c.name in partition else F.col(f"`{c.name}`"))
            .cast(column_type(c))
            .alias(c.name)
            for c in stored_columns(table)
        )
    ).cache()  # computed once: counted, then written
    try:
        count = staged.count()
        if count:
            staged.write.insertInto(spark_name(table), overwrite=True)
        else:
            spec = ", ".join(f"`{name}` = :{name}" for name in keys)
            session.sql(f"ALTER TABLE {spark_name(table)} DROP IF EXISTS PARTITION ({spec})", args=dict(partition))
    finally:
        staged.unpersist()
    return count


def rewrite_table(session: Any, table: sa.Table, replaced: str | None, params: Mapping[str, Any], rows: Any) -> int:
    """Replace the rows of an unpartitioned ``table`` matching the Spark SQL condition ``replaced``
    (every row if None; ``:name`` parameters from ``params``) with ``rows``; returns how many rows
    were written (``rows``' count)."""
    if partition_columns(table):
        raise ValueError(f"{table.fullname} is partitioned on Spark: use overwrite_partition")
    names = [c.name for c in table.columns]
    columns = ", ".join(f"`{name}`" for name in names)
    new = rows.selectExpr(*(f"cast(`{c.name}` as {column_type(c)}) as `{c.name}`" for c in table.columns))
    new = new.localCheckpoint()  # computed once: counted, then written
    count = new.count()
    kept = None
    if replaced is not None:
        kept = session.sql(
            f"SELECT {columns} FROM {spark_name(table)} WHERE NOT coalesce({replaced}, false)", args=dict(params)
        )
    whole = (new if kept is None else kept.unionByName(new)).localCheckpoint()  # read before the overwrite
    whole.write.insertInto(spark_name(table), overwrite=True)
    return count
