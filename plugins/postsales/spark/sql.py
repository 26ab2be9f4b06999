"""The one place SQL written for DuckDB and PostgreSQL becomes Spark SQL.

Every query of include/sql (and, through the Spark dialect, every compiled SQLAlchemy
statement) is written once, in the dialect DuckDB and PostgreSQL share, and transpiled here by
sqlglot. sqlglot alone gets 31 of the 35 files right; each rewrite below names what sqlglot
(30.30.0, pinned) does not do, and ``tests/integration/test_spark_sql_files.py`` checks every
file's rows on a real Spark against DuckDB's:

* ``generate_series(a, b) as t (c)`` in FROM: sqlglot writes ``EXPLODE(SEQUENCE(a, b), _u(t))``,
  which Spark rejects (``UNRESOLVED_ROUTINE _u``) and which loses the column alias. Written
  ``LATERAL EXPLODE(CASE WHEN b >= a THEN SEQUENCE(a, b) END) AS t(c)``: lateral, because a bound
  may name a column of an earlier FROM item (PostgreSQL's functions in FROM are lateral), and
  guarded, because ``SEQUENCE(0, -1)`` counts down to ``[0, -1]`` where
  ``generate_series(0, -1)`` is empty (``EXPLODE(NULL)`` gives no row).
* ``date - date``: a number of days on DuckDB and PostgreSQL, an ``INTERVAL DAY`` on Spark.
  Which subtractions are of two dates needs the columns' types: the query is typed with
  sqlglot's optimizer against the warehouse's schema (:func:`warehouse_schema`), then each is
  written ``DATEDIFF(a, b)``.
* ``select *``: Spark stores a partitioned table's partition columns last, so a star over one
  returns its columns in another order than DuckDB and PostgreSQL. Typed against the schema
  (the homes' column order), the star is expanded in that order.
* nested ``WITH``: sqlglot's Hive-family generator hoists every CTE to the top (right for Spark
  2), so two subqueries with a CTE of the same name collide (``DUPLICATED_CTE_NAMES``). Spark 3
  and later take nested ``WITH``: :class:`Spark4` keeps them.
* ``FLOAT(53)`` (SQLAlchemy's ``Float(53)``): sqlglot writes ``DOUBLE(53)``, which Spark rejects;
  written ``DOUBLE``.
* JSON of compiled Core (``segment.engine``'s explanation, compiled for PostgreSQL):
  ``json_build_object(k, v, ...)`` has no Spark function of that name: written
  ``TO_JSON(NAMED_STRUCT(k, v, ...))``; ``array_to_json(a)`` is ``TO_JSON(a)``;
  ``string_to_array(s, sep)`` is ``SPLIT(s, sep)`` (sqlglot writes ``STRING_TO_ARRAY``, which Spark
  lacks; ``SPLIT`` takes a regex, so the separator is quoted as sqlglot quotes it for ``split``);
  ``CAST(x AS JSON)`` stays ``x`` (JSON is text on Spark; sqlglot writes ``TO_JSON(x)``, which
  quotes a JSON text: ``'[]'`` becomes ``'"[]"'``). Each call becomes JSON text, so an object
  nested in another is a string inside it (double-encoded): the Spark dialect's statements build
  nested ``NAMED_STRUCT``s instead and call ``TO_JSON`` once (``segment.engine.json_object``).
  Spark's ``TO_JSON`` drops null fields unless ``spark.sql.jsonGenerator.ignoreNullFields`` is
  false, as the dialect's sessions set it (``postsales.spark.dialect``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import ClassVar

import sqlalchemy as sa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

READ = "postgres"  # the dialect the queries are written in (DuckDB's reads the same)

# The warehouse's column types (postsales.tables.COLUMN_TYPES and SQL_TYPES) as sqlglot's schema names them.
TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (sa.Boolean, "boolean"),
    (sa.BigInteger, "bigint"),
    (sa.Integer, "int"),
    (sa.Float, "double"),
    (sa.Numeric, "decimal"),
    (sa.DateTime, "timestamp"),
    (sa.Date, "date"),
    (sa.Text, "text"),
    (sa.String, "text"),
)

Schema = dict[str, dict[str, dict[str, str]]]  # {schema: {table or view: {column: type}}}, in column order


class Spark4(Spark):
    """Spark 3 and later: nested ``WITH`` is allowed, so CTEs are not hoisted to the top."""

    class Generator(SparkGenerator):
        EXPRESSIONS_WITHOUT_NESTED_CTES: ClassVar[set] = set()


def type_name(column_type: sa.types.TypeEngine) -> str:
    for python_type, name in TYPE_NAMES:
        if isinstance(column_type, python_type):
            return name
    raise TypeError(f"no Spark type for the warehouse column type {column_type!r}")


def warehouse_schema(tables: Iterable[sa.Table], views: Mapping[str, str] | None = None) -> Schema:
    """The schema the type-aware rewrites read: every table's columns, then each view's (``name ->
    select``, given in the order they depend on each other), typed by sqlglot from its select."""
    schema: Schema = {}
    for table in tables:
        schema.setdefault(table.schema or "main", {})[table.name] = {c.name: type_name(c.type) for c in table.columns}
    for name, select in (views or {}).items():
        view_schema, view = name.split(".", 1)
        tree = _typed(sqlglot.parse_one(select, read=READ), schema)
        schema.setdefault(view_schema, {})[view] = {
            column.alias_or_name: (column.type.sql(READ).lower() if column.type else "text") for column in tree.selects
        }
    return schema


# The warehouse's views, in the order they read each other: qualified name -> include/sql file.
def views() -> dict[str, str]:
    """Each view's select: the staging views ``ensure_schema`` makes (each reads tables only) and
    ``mart.account_segments_current``."""
    from postsales import warehouse

    return warehouse.staging_views() | {
        "mart.account_segments_current": warehouse.sql_text("segment", "account_segments_current")
    }


# sqlglot's type names (TYPE_NAMES) as Spark's DDL writes them. A warehouse timestamp has no time
# zone (DuckDB TIMESTAMP, PostgreSQL timestamp without time zone): TIMESTAMP_NTZ, not Spark's TIMESTAMP.
SPARK_TYPES = {
    "boolean": "BOOLEAN",
    "bigint": "BIGINT",
    "int": "INT",
    "double": "DOUBLE",
    "decimal": "DECIMAL(38, 6)",
    "timestamp": "TIMESTAMP_NTZ",
    "date": "DATE",
    "text": "STRING",
}


def partition_columns(table: sa.Table) -> list[str]:
    """The columns Spark stores ``table`` partitioned by: its home's partition when every column
    of it is a date (as_of_date, snapshot_month, a usage day), else none. A partition replaced as
    a range (staging's updated_at) or per run (raw, ops) is not one of Spark's directories."""
    from postsales.tables import home_of

    partition = home_of(table).partition if "home" in table.info else []
    if partition and all(isinstance(table.c[name].type, sa.Date) for name in partition):
        return list(partition)
    return []


def spark_name(table: sa.Table) -> str:
    """The table's name in Spark SQL: ``schema.`name```."""
    return f"{table.schema}.`{table.name}`"


def column_type(column: sa.Column) -> str:
    """The column's type in Spark's DDL and casts."""
    return SPARK_TYPES[type_name(column.type)]


def stored_columns(table: sa.Table) -> list[sa.Column]:
    """The columns in the order Spark stores them: the partition columns last."""
    partition = partition_columns(table)
    return [c for c in table.columns if c.name not in partition] + [table.c[name] for name in partition]


def create_table(table: sa.Table) -> str:
    """``CREATE TABLE`` of ``table`` on Spark: Parquet, partitioned by :func:`partition_columns`.
    Spark stores partition columns last; every read names its columns (see ``select *`` above)."""
    partition = partition_columns(table)
    ddl = ",\n    ".join(f"`{c.name}` {column_type(c)}" for c in stored_columns(table))
    statement = f"CREATE TABLE {spark_name(table)} (\n    {ddl}\n) USING PARQUET"
    if partition:
        statement += f" PARTITIONED BY ({', '.join(f'`{name}`' for name in partition)})"
    return statement


def to_spark(sql: str, schema: Schema | None = None) -> str:
    """``sql`` (``:name`` parameters kept, Spark binds them) as Spark SQL. Without ``schema`` the
    rewrites that need the columns' types (``date - date``, ``select *``) are not made."""
    return _to_spark(sql, _frozen(schema))


@lru_cache(maxsize=512)
def _to_spark(sql: str, schema: tuple | None) -> str:
    tree = sqlglot.parse_one(sql, read=READ)
    tree = tree.transform(_generate_series_to_sequence)
    tree = tree.transform(_double_without_precision)
    tree = _json_functions(tree)
    if schema is not None:
        tree = _typed(tree, _thawed(schema)).transform(_date_minus_date)
    return tree.sql(dialect=Spark4, pretty=True)


def _typed(tree: exp.Expression, schema: Schema) -> exp.Expression:
    """``tree`` qualified against ``schema`` (stars expanded in its column order) and typed."""
    tree = qualify(tree, schema=schema, dialect=READ, validate_qualify_columns=False, quote_identifiers=False)
    return annotate_types(tree, schema=schema, dialect=READ)


def _generate_series_to_sequence(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Table) and isinstance(node.this, (exp.GenerateSeries, exp.ExplodingGenerateSeries)):
        series = node.this
        if series.args.get("step") is not None:
            raise NotImplementedError("generate_series with a step: add it to postsales.spark.sql")
        start, end = series.args["start"], series.args["end"]
        sequence = exp.Anonymous(this="SEQUENCE", expressions=[start.copy(), end.copy()])
        guarded = exp.Case(ifs=[exp.If(this=exp.GTE(this=end.copy(), expression=start.copy()), true=sequence)])
        return exp.Lateral(this=exp.Explode(this=guarded), alias=node.args.get("alias"))
    return node


def _double_without_precision(node: exp.Expression) -> exp.Expression:
    if (
        isinstance(node, exp.DataType)
        and node.this in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT)
        and node.expressions
    ):
        return exp.DataType(this=exp.DataType.Type.DOUBLE)
    return node


JSON_FUNCTIONS = ("json_build_object", "array_to_json", "string_to_array")


def _json_functions(tree: exp.Expression) -> exp.Expression:
    """PostgreSQL's JSON constructors and ``string_to_array`` as Spark's functions (module docstring)."""
    calls = [
        node
        for node in tree.find_all(exp.Anonymous, exp.StringToArray, exp.Cast)
        if isinstance(node, exp.StringToArray)
        or (isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.JSON))
        or (isinstance(node, exp.Anonymous) and str(node.this).lower() in JSON_FUNCTIONS)
    ]
    for node in reversed(calls):  # innermost first: a replaced node's arguments are not visited again
        if isinstance(node, exp.Cast):
            replacement = node.this.copy()
        elif isinstance(node, exp.StringToArray) or str(node.this).lower() == "string_to_array":
            arguments = [node.this, node.expression] if isinstance(node, exp.StringToArray) else node.expressions
            replacement = exp.Split(this=arguments[0].copy(), expression=arguments[1].copy())
        elif str(node.this).lower() == "array_to_json":
            replacement = exp.Anonymous(this="TO_JSON", expressions=[e.copy() for e in node.expressions])
        else:
            struct = exp.Anonymous(this="NAMED_STRUCT", expressions=[e.copy() for e in node.expressions])
            replacement = exp.Anonymous(this="TO_JSON", expressions=[struct])
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _date_minus_date(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Sub) and all(
        side.type is not None and side.type.is_type(exp.DataType.Type.DATE) for side in (node.this, node.expression)
    ):
        return exp.DateDiff(this=node.this.copy(), expression=node.expression.copy(), unit=exp.var("DAY"))
    return node


def _frozen(schema: Schema | None) -> tuple | None:
    """``schema`` as a hashable key of the transpile cache (column order kept)."""
    if schema is None:
        return None
    return tuple(
        (name, tuple((table, tuple(columns.items())) for table, columns in tables.items()))
        for name, tables in schema.items()
    )


def _thawed(frozen: tuple) -> Schema:
    return {name: {table: dict(columns) for table, columns in tables} for name, tables in frozen}
