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
* ``select *`` (``expand_stars``): Spark puts a partitioned table's partition columns last, so a
  ``select *`` over one returns its columns in another order than DuckDB/PostgreSQL. Qualifying the
  query against the homes' column order expands the star in that order.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp


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
    if schema is not None:
        tree = _date_minus_date(tree, schema, read)
    return tree.sql(dialect="spark", pretty=True)
