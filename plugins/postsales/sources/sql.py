"""The ``sql`` source: the same entities read from any SQLAlchemy database.

Column names are mapped in ``include/rules/sources.yaml``; unmapped columns are
kept as extras. The URL comes from an Airflow connection or an environment
variable, never from YAML, and never appears in a log or an error.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from postsales import warehouse
from postsales.config import SqlEntityMapping
from postsales.config import SqlSource as SqlSourceConfig
from postsales.errors import ConfigError, DataContractError, SourceUnavailableError, safe_url
from postsales.sources import (
    Interval,
    SourceRead,
    entity_mapping,
    lineage_error,
    source_read,
    text_table,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)


def resolve_url(config: SqlSourceConfig) -> str:
    if config.conn_id:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(config.conn_id).get_uri()
    url = os.environ.get(config.url_env or "")
    if not url:
        raise SourceUnavailableError(
            f"the sql source has no URL: set the environment variable {config.url_env} "
            "or sql.conn_id (an Airflow connection) in include/rules/sources.yaml."
        )
    return url


def _url_source(config: SqlSourceConfig, url: str | None) -> str:
    """Where the URL came from, for a message (resolve_url's order)."""
    if url:
        return "the URL it was given"
    if config.conn_id:
        return f"sql.conn_id (the Airflow connection {config.conn_id!r})"
    return f"${config.url_env}"


class SqlSource:
    name = "sql"

    def __init__(self, config: SqlSourceConfig, url: str | None = None):
        self.config = config
        self._url = url

    def url(self) -> str:
        """The database's URL: the one given, else from the connection or environment (a secret: never log it)."""
        return self._url or resolve_url(self.config)

    def read(self, entity: str, incremental_column: str, interval: Interval) -> SourceRead:
        mapping = self._mapping(entity)
        engine = sa.create_engine(self.url())
        origin = _origin(mapping)
        try:
            with self._source_errors(entity, engine, origin), engine.connect() as conn:
                statement = _statement(conn, entity, origin, mapping, incremental_column, interval)
                rows = conn.execute(statement)
                frame = warehouse.result_frame(rows, dtype="object")
        finally:
            engine.dispose()
        return source_read(frame.map(_text), entity, origin, _lineage_fix(entity))

    def load_text(
        self, eng: sa.Engine, entity: str, incremental_column: str, interval: Interval, table_name: str
    ) -> TextTable:
        """The rows :meth:`read` returns, landed as text in ``raw.<table_name>``: fetched from a
        server-side cursor (where the driver has one) in chunks of ``text_table.CHUNK_ROWS``."""
        mapping = self._mapping(entity)
        engine = sa.create_engine(self.url())
        origin = _origin(mapping)
        where = f"{entity} ({origin})"
        errors = self._source_errors(entity, engine, origin)
        try:
            with ExitStack() as stack:
                with errors:
                    conn = stack.enter_context(engine.connect())
                    statement = _statement(conn, entity, origin, mapping, incremental_column, interval)
                    streaming = conn.execution_options(stream_results=True, yield_per=text_table.CHUNK_ROWS)
                    result = streaming.execute(statement)
                columns = list(result.keys())
                problem = lineage_error(columns, where, _lineage_fix(entity))
                if problem:
                    raise problem
                names = text_table.unlandable_names(columns, eng.dialect.name)
                if names:
                    fix = _lineage_fix(entity).format(column=next(iter(names))).replace("{{", "{").replace("}}", "}")
                    raise text_table.unlandable_error(where, names, fix)

                def chunks():
                    with self._source_errors(entity, engine, origin):  # the source failing mid-way
                        yield from result.partitions()

                landed = text_table.land_rows(eng, table_name, columns, chunks(), _text, origin, where)
        finally:
            engine.dispose()
        text_table.log_landed(entity, landed.rows, origin, landed.table)
        return landed

    def _mapping(self, entity: str) -> SqlEntityMapping:
        return entity_mapping(self.config.tables, entity, "sql.tables", "its table and column names")

    @contextmanager
    def _source_errors(self, entity: str, engine: sa.Engine, origin: str) -> Iterator[None]:
        """A missing table fails at once; an unreachable database is retried (the URL without password)."""
        shown = safe_url(engine.url)
        try:
            yield
        except sa.exc.NoSuchTableError:
            # The database answered: a wrong table, schema or database is not fixed by a retry.
            raise DataContractError(
                f"{entity}: the sql source {shown} has no table {origin.removeprefix('sql:')!r}. Fix: set "
                f"sql.tables.{entity}.table (and schema) in include/rules/sources.yaml to the table holding "
                f"{entity}, or point {_url_source(self.config, self._url)} at the database that holds it."
            ) from None
        except sa.exc.OperationalError as exc:
            raise SourceUnavailableError(
                f"{entity}: cannot reach the sql source at {shown}: {type(exc.orig).__name__}"
            ) from None


def _origin(mapping: SqlEntityMapping) -> str:
    return f"sql:{mapping.schema_name + '.' if mapping.schema_name else ''}{mapping.table}"


def _statement(
    conn: sa.Connection, entity: str, origin: str, mapping: SqlEntityMapping, incremental_column: str, interval
) -> sa.Select:
    """The entity's query: every column under our name, pre-filtered to the interval."""
    table = sa.Table(mapping.table, sa.MetaData(), schema=mapping.schema_name, autoload_with=conn)
    missing = [source for source in mapping.columns.values() if source not in table.c]
    if missing:
        raise DataContractError(
            f"{entity} ({origin}): mapped column(s) {missing} not in the table; it has "
            f"{list(table.c.keys())}. Fix: correct sql.tables.{entity}.columns in "
            "include/rules/sources.yaml."
        )
    statement = sa.select(*_labelled_columns(entity, origin, table, mapping.columns))
    source_column = mapping.columns.get(incremental_column, incremental_column)
    if not interval.full_refresh and source_column in table.c:
        # A padded pre-filter in the database; the exact interval is applied afterwards,
        # so text-typed timestamps and time zones cannot drop a row at the boundary.
        low, high = interval.widened()
        column = table.c[source_column]
        statement = statement.where(
            sa.or_(column.is_(None), sa.and_(column >= _bound(conn, low), column < _bound(conn, high)))
        )
    return statement


def _text(value) -> str | None:
    """A database value as the text the gate reads: ISO 8601 for dates and times, else ``str``."""
    return None if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))


def _lineage_fix(entity: str) -> str:
    return (
        f"map the column to another name in include/rules/sources.yaml, e.g. sql.tables.{entity}.columns: "
        "{{source_note: {column}}}; it is then kept in _extra."
    )


def _labelled_columns(entity: str, origin: str, table: sa.Table, mapping: dict[str, str]) -> list:
    """Each table column under our name: a mapped column once per name mapped to it, any other as it is.

    Two columns under one name would make one frame column out of two; which holds the data is
    anyone's guess, so a mapping that leads there is an error.
    """
    ours: dict[str, list[str]] = {}
    for name, source in mapping.items():
        ours.setdefault(source, []).append(name)
    labelled = [column.label(name) for column in table.c for name in ours.get(column.name, [column.name])]
    for name in dict.fromkeys(label.name for label in labelled):
        sources = [label.element.name for label in labelled if label.name == name]
        if len(sources) > 1:
            mapped = next(source for source in sources if source != name)
            raise ConfigError(
                f"include/rules/sources.yaml: field 'sql.tables.{entity}.columns': {name} is mapped to the "
                f"column {mapped!r} of {origin.removeprefix('sql:')}, which also has a column {name!r}; both would "
                f"be read as {name}. Fix: map the table's {name!r} to another name as well (e.g. "
                f"{name}_in_source: {name}), so it is kept in _extra, or map {name} to it instead of {mapped!r}."
            )
    return labelled


def _bound(conn: sa.Connection, value):
    # SQLite stores timestamps as text; compare with ISO text there.
    return value.isoformat() if conn.dialect.name == "sqlite" else value
