"""The one place a query of include/sql becomes Spark SQL: sqlglot's transpiler plus the AST rewrites
this spike found necessary. Each rewrite names what sqlglot 30.30.0 does not do; compare_queries.py
checks the result on Spark against DuckDB.

* generate_series(a, b) AS t(c) in FROM: sqlglot writes ``EXPLODE(SEQUENCE(a, b), _u(t))``, which
  Spark rejects (UNRESOLVED_ROUTINE `_u`) and which loses the column alias. Rewritten to
  ``LATERAL EXPLODE(CASE WHEN b >= a THEN SEQUENCE(a, b) END) AS t(c)``: LATERAL because a bound may
  name a column of an earlier FROM item (PostgreSQL's functions in FROM are lateral; Spark's range()
  wants constants: NON_FOLDABLE_ARGUMENT), and the CASE because SEQUENCE(0, -1) counts down to
  [0, -1] where generate_series(0, -1) is empty (explode(NULL) gives no rows).
* date - date: an integer number of days on PostgreSQL and DuckDB, an INTERVAL DAY on Spark (ANSI).
  Which subtractions are date - date needs the column types: the query is qualified and annotated
  with sqlglot's optimizer against the warehouse schema, then each is written DATEDIFF(a, b).
* nested WITH: sqlglot's Hive-family generator hoists every nested CTE to the top
  (EXPRESSIONS_WITHOUT_NESTED_CTES, right for Spark 2), so two subqueries each with a CTE named
  ``first_months`` (cohorts.compile_account_segments embeds three include/sql files) collide:
  DUPLICATED_CTE_NAMES. Spark 3+ takes nested WITH: the ``Spark4`` dialect below keeps them.
* FLOAT(53): SQLAlchemy's PostgreSQL compiler writes sa.Float(53) as FLOAT(53); sqlglot writes
  DOUBLE(53), which Spark rejects (UNSUPPORTED_DATATYPE): the precision is dropped.
* json_build_object(k, v, ...) (segment.engine.json_object's PostgreSQL branch): no Spark function
  of that name; written TO_JSON(NAMED_STRUCT(k, v, ...)); array_to_json(a) is TO_JSON(a),
  string_to_array(s, ',') is SPLIT(s, ',') (sqlglot parses it but writes STRING_TO_ARRAY), and
  CAST(x AS JSON) stays x (sqlglot writes TO_JSON(x), which quotes a JSON text: '[]' -> '"[]"').
* ``select *`` (``expand_stars``): Spark puts a partitioned table's partition columns last, so a
  ``select *`` over one returns its columns in another order than DuckDB/PostgreSQL. Qualifying the
  query against the homes' column order expands the star in that order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator


class Spark4(Spark):
    """Spark as of 3.x/4.x: nested WITH is allowed, so sqlglot must not hoist CTEs."""

    class Generator(SparkGenerator):
        EXPRESSIONS_WITHOUT_NESTED_CTES: ClassVar[set] = set()


def _double_without_precision(node: exp.Expression) -> exp.Expression:
    if (
        isinstance(node, exp.DataType)
        and node.this in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT)
        and node.expressions
    ):
        return exp.DataType(this=exp.DataType.Type.DOUBLE)
    return node


def _string_to_array_and_json_casts(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.StringToArray):  # sqlglot writes STRING_TO_ARRAY for Spark, which has none
        return exp.Anonymous(this="SPLIT", expressions=[node.this.copy(), node.expression.copy()])
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.JSON):
        # JSON is text on Spark; sqlglot writes CAST(x AS JSON) as TO_JSON(x): '[]' -> '"[]"'
        return node.this.copy()
    return node


def _json_build_object(tree: exp.Expression) -> exp.Expression:
    # innermost first: transform() does not descend into a node it has just replaced
    calls = [
        n
        for n in tree.find_all(exp.Anonymous)
        if str(n.this).lower() in ("json_build_object", "array_to_json", "string_to_array")
    ]
    for node in reversed(calls):
        if str(node.this).lower() == "string_to_array":  # the separator is a literal ',' here (SPLIT takes a regex)
            replacement = exp.Anonymous(this="SPLIT", expressions=[e.copy() for e in node.expressions])
        elif str(node.this).lower() == "array_to_json":
            replacement = exp.Anonymous(this="TO_JSON", expressions=[e.copy() for e in node.expressions])
        else:
            struct = exp.Anonymous(this="NAMED_STRUCT", expressions=[e.copy() for e in node.expressions])
            replacement = exp.Anonymous(this="TO_JSON", expressions=[struct])
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _generate_series_to_range(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Table) and isinstance(node.this, (exp.GenerateSeries, exp.ExplodingGenerateSeries)):
        series = node.this
        if series.args.get("step") is not None:
            raise NotImplementedError("generate_series with a step")
        start, end = series.args["start"], series.args["end"]
        sequence = exp.Anonymous(this="SEQUENCE", expressions=[start.copy(), end.copy()])
        guarded = exp.Case(ifs=[exp.If(this=exp.GTE(this=end.copy(), expression=start.copy()), true=sequence)])
        return exp.Lateral(this=exp.Explode(this=guarded), alias=node.args.get("alias"))
    return node


def _date_minus_date(tree: exp.Expression, schema: dict, read: str) -> exp.Expression:
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    tree = qualify(tree, schema=schema, dialect=read, validate_qualify_columns=False, quote_identifiers=False)
    tree = annotate_types(tree, schema=schema, dialect=read)

    def rewrite(node: exp.Expression) -> exp.Expression:
        if (
            isinstance(node, exp.Sub)
            and node.this.type is not None
            and node.expression.type is not None
            and node.this.type.is_type(exp.DataType.Type.DATE)
            and node.expression.type.is_type(exp.DataType.Type.DATE)
        ):
            return exp.DateDiff(this=node.this.copy(), expression=node.expression.copy(), unit=exp.var("DAY"))
        return node

    return tree.transform(rewrite)


def to_spark(sql: str, read: str = "postgres", schema: dict[str, Any] | None = None) -> str:
    """``sql`` (a rendered include/sql query, :name parameters kept) as Spark SQL. ``schema``
    ({schema: {table: {column: type}}}, the homes' column order) enables the type-aware rewrites."""
    tree = sqlglot.parse_one(sql, read=read)
    tree = tree.transform(_generate_series_to_range)
    tree = tree.transform(_double_without_precision)
    tree = tree.transform(_string_to_array_and_json_casts)
    tree = _json_build_object(tree)
    if schema is not None:
        tree = _date_minus_date(tree, schema, read)
    return tree.sql(dialect=Spark4, pretty=True)
