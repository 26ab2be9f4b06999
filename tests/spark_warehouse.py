"""A warehouse on Spark for the Spark tests: the tables of a DuckDB warehouse the pipeline filled,
copied through Parquet, created as postsales.spark.sql.create_table makes them (partitioned,
partition columns last), and the views made from their own files."""

from __future__ import annotations

from postsales import tables, warehouse
from postsales.spark.sql import Schema, column_type, create_table, spark_name, stored_columns, to_spark, views
from postsales.spark.sql import warehouse_schema as schema_of


def copy_to_spark(spark, duck_url: str, directory) -> Schema:
    """Every table of the DuckDB warehouse at ``duck_url`` into Spark, through a Parquet file each,
    then the views; returns the schema the transpiler types against."""
    every = [*tables.catalog().sorted_tables, *warehouse.tables().metadata.sorted_tables]
    for schema in warehouse.SCHEMAS:
        spark.sql(f"create database if not exists {schema}")
    with warehouse.engine(duck_url).connect() as conn:
        for table in every:
            file = directory / f"{table.schema}.{table.name}.parquet"
            conn.exec_driver_sql(f"copy (select * from {table.schema}.\"{table.name}\") to '{file}' (format parquet)")
            spark.sql(f"drop table if exists {spark_name(table)}")
            spark.sql(create_table(table))
            names = ", ".join(f"`{c.name}`" for c in stored_columns(table))
            casts = ", ".join(f"cast(`{c.name}` as {column_type(c)})" for c in stored_columns(table))
            spark.sql(f"insert into {spark_name(table)} ({names}) select {casts} from parquet.`{file}`")
    selects = views()
    schema = schema_of(every, selects)
    for name, select in selects.items():
        spark.sql(f"create or replace view {name} as\n{to_spark(select, schema)}")
    return schema
