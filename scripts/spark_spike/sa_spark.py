"""Prototype of the recommended integration: a ``spark+connect://host:port`` SQLAlchemy dialect over a
PEP 249 shim on a Spark Connect session. Every statement SQLAlchemy compiles (with its PostgreSQL
compiler, named :params) goes through spark_sql.to_spark (sqlglot + the spike's rewrites) and then
spark.sql(sql, args=params). No transactions (Spark has none). A spike, not the implementation:
no type adaptation, no DDL compiler for USING parquet / PARTITIONED BY, no reflection beyond has_table.

    import sa_spark; sa_spark.register()
    engine = sqlalchemy.create_engine("spark+connect://127.0.0.1:15002")
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import spark_sql
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGCompiler, PGIdentifierPreparer, PGTypeCompiler
from sqlalchemy.engine import default

# --- PEP 249 module surface -------------------------------------------------------------------
apilevel = "2.0"
threadsafety = 1
paramstyle = "named"


class Error(Exception):
    pass


class Warning(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


STATS = {"statements": 0, "transpile_s": 0.0, "spark_s": 0.0, "schema_s": 0.0}


class Connection:
    def __init__(self, remote: str) -> None:
        from pyspark.sql import SparkSession

        self.spark = SparkSession.builder.remote(remote).getOrCreate()
        self._schema: dict | None = None

    def schema(self) -> dict:
        """The warehouse's columns and types, for the type-aware rewrites: read once per connection
        (the implementation would take them from the table homes instead)."""
        if self._schema is None:
            t = time.monotonic()
            schema: dict = {}
            for db in ("raw", "staging", "ops", "mart"):
                for row in self.spark.sql(f"show tables in {db}").collect():
                    fields = self.spark.table(f"{db}.{row.tableName}").schema.fields
                    schema.setdefault(db, {})[row.tableName] = {f.name: f.dataType.simpleString() for f in fields}
            self._schema = schema
            STATS["schema_s"] += time.monotonic() - t
        return self._schema

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:  # no transactions on Spark
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


@lru_cache(maxsize=512)
def _transpiled(sql: str, schema_key: int, conn_id: int) -> str:
    return spark_sql.to_spark(sql, read="postgres", schema=_SCHEMAS[conn_id])


_SCHEMAS: dict[int, dict] = {}


class Cursor:
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self._rows: list[tuple] = []

    def execute(self, operation: str, parameters: dict[str, Any] | None = None) -> None:
        conn = self.connection
        _SCHEMAS[id(conn)] = conn.schema()
        t = time.monotonic()
        try:
            sql = _transpiled(operation, 0, id(conn))
        except Exception as exc:
            raise ProgrammingError(f"cannot transpile: {exc}") from exc
        STATS["transpile_s"] += time.monotonic() - t
        t = time.monotonic()
        try:
            frame = conn.spark.sql(sql, args=dict(parameters or {}))
            fields = frame.schema.fields
            rows = [tuple(r) for r in frame.collect()] if fields else []
        except Exception as exc:
            raise DatabaseError(str(exc).strip().splitlines()[0]) from exc
        finally:
            STATS["spark_s"] += time.monotonic() - t
            STATS["statements"] += 1
        self.description = [(f.name, f.dataType.simpleString(), None, None, None, None, True) for f in fields] or None
        self._rows = rows
        self.rowcount = len(rows) if fields else -1

    def executemany(self, operation: str, seq: list[dict[str, Any]]) -> None:
        for parameters in seq:
            self.execute(operation, parameters)

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = size or self.arraysize
        out, self._rows = self._rows[:size], self._rows[size:]
        return out

    def fetchall(self) -> list[tuple]:
        out, self._rows = self._rows, []
        return out

    def close(self) -> None:
        self._rows = []


def connect(remote: str) -> Connection:
    return Connection(remote)


# --- the dialect --------------------------------------------------------------------------------


class SparkDialect(default.DefaultDialect):
    name = "spark"
    driver = "connect"
    supports_statement_cache = True
    default_paramstyle = "named"
    statement_compiler = PGCompiler  # Core compiles to the PostgreSQL flavour the transpiler reads
    preparer = PGIdentifierPreparer
    type_compiler_cls = PGTypeCompiler
    supports_native_boolean = True
    supports_sane_rowcount = False
    supports_sane_multi_rowcount = False
    supports_native_decimal = True
    postfetch_lastrowid = False

    @classmethod
    def import_dbapi(cls) -> Any:
        import sys

        return sys.modules[__name__]

    def create_connect_args(self, url: sa.URL) -> tuple[list, dict]:
        return [], {"remote": f"sc://{url.host or '127.0.0.1'}:{url.port or 15002}"}

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        return (4, 3, 0)

    def _get_default_schema_name(self, connection: Any) -> str:
        return "default"

    def get_isolation_level(self, dbapi_connection: Any) -> str:
        return "AUTOCOMMIT"

    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_ping(self, dbapi_connection: Any) -> bool:
        return True

    def has_table(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> bool:
        spark = connection.connection.driver_connection.spark
        return spark.catalog.tableExists(f"{schema or 'default'}.{table_name}")


def register() -> None:
    sa.dialects.registry.register("spark.connect", __name__, "SparkDialect")
