"""Great Expectations, run by the warehouse on the extract's own connection.

One GX context per process (``context()``): importing GX and building a context cost seconds,
paid once however many batches the process gates. Validation goes through GX's SQL execution
engine on a data source (``postsales_warehouse``) whose every query runs on the connection the
extract hands it (``on_connection``), so GX sees the extract's work tables and, on DuckDB, never
opens the warehouse file a second time (a second engine would be a second DuckDB client, and GX's
own engine closes the connection after each query, which on DuckDB discards the result it has not
fetched yet).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from functools import cache
from typing import Any

import sqlalchemy as sa

_CONNECTION: contextvars.ContextVar[sa.Connection | None] = contextvars.ContextVar("gx_connection", default=None)
DATASOURCE = "postsales_warehouse"


def _connection() -> sa.Connection:
    conn = _CONNECTION.get()
    if conn is None:
        raise RuntimeError("Great Expectations used outside gx_warehouse.on_connection()")
    return conn


@cache
def _classes() -> tuple[type, type]:
    """The data source and execution engine classes (defined once: GX registers data source types)."""
    from typing import Literal

    from great_expectations.datasource.fluent import SQLDatasource
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine

    class OnConnectionEngine(SqlAlchemyExecutionEngine):
        """GX's SQL engine, every query on the extract's connection."""

        @contextlib.contextmanager
        def get_connection(self) -> Iterator[sa.Connection]:
            yield _connection()

    class WarehouseDatasource(SQLDatasource):
        type: Literal["postsales_warehouse"] = "postsales_warehouse"  # type: ignore[assignment]

        @property
        def execution_engine_type(self) -> type:
            return OnConnectionEngine

        def test_connection(self, test_assets: bool = True) -> None:
            """The extract's connection is open already; nothing to test."""

        def get_engine(self) -> sa.Engine:
            return _connection().engine

        def get_execution_engine(self) -> Any:
            return _execution_engine(_connection().engine)

    return WarehouseDatasource, OnConnectionEngine


_ENGINES: dict[int, Any] = {}


def _execution_engine(engine: sa.Engine) -> Any:
    # One GX engine per warehouse engine: GX caches metadata (the dialect, inspectors) on it.
    key = id(engine)
    if key not in _ENGINES:
        _ENGINES[key] = _classes()[1](engine=engine, create_temp_table=False)
    return _ENGINES[key]


@cache
def context() -> Any:
    """The process's ephemeral GX context, with the warehouse data source."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _classes()
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    # The connection string is never used to connect (get_engine returns the extract's engine).
    ctx.data_sources.add_postsales_warehouse(name=DATASOURCE, connection_string="sqlite://", create_temp_table=False)
    return ctx


@contextlib.contextmanager
def on_connection(conn: sa.Connection) -> Iterator[Any]:
    """The GX context, its warehouse data source running every query on ``conn``."""
    token = _CONNECTION.set(conn)
    try:
        yield context()
    finally:
        _CONNECTION.reset(token)
