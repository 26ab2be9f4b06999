"""SQLAlchemy on Spark Connect: ``spark+connect://host:port`` (docs/spark-spike.md, section 2).

Core statements compile with SQLAlchemy's PostgreSQL compiler and named ``:params``: the SQL our
queries are written in. A PEP 249 shim over a Connect ``SparkSession`` sends every statement
through the one transpile function, :func:`postsales.spark.sql.to_spark`, typed against the
warehouse's schema (the table homes, the staging tables of expectations.yaml and the views, read
once per process), then runs ``spark.sql(sql, args=params)``: Spark binds the parameters on the
server with their types (a date stays a date, a Decimal a decimal, None a NULL).

* Transactions are no-ops: Spark has none (``begin`` is a parse error). Every statement is its
  own commit.
* Reflection (``has_table``, ``get_table_names``, ``get_columns``) reads the catalog
  (``SHOW TABLES IN``, ``DESCRIBE``): Spark has no information_schema.
* Each session sets ``spark.sql.jsonGenerator.ignoreNullFields`` to false: ``TO_JSON`` then
  writes a null field as ``null``, as DuckDB's ``json_object`` and PostgreSQL's
  ``json_build_object`` do, instead of leaving it out.
* ``rowcount`` is -1 but for a query (its number of rows): Spark does not report rows written.

Not here yet: the DDL compiler (``USING PARQUET PARTITIONED BY``, see
:func:`postsales.spark.sql.create_table`) and the warehouse's write primitives.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGCompiler, PGIdentifierPreparer, PGTypeCompiler
from sqlalchemy.engine import default

from postsales.spark.sql import Schema, to_spark

DEFAULT_PORT = 15002
SESSION_CONF = {
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    # The warehouse's timestamps have no time zone (TIMESTAMP_NTZ): a datetime parameter compared
    # with one must not move by the server's zone.
    "spark.sql.session.timeZone": "UTC",
}


def register() -> None:
    """Make ``spark+connect://`` known to ``sqlalchemy.create_engine`` (idempotent)."""
    sa.dialects.registry.register("spark.connect", "postsales.spark.dialect", "SparkConnectDialect")


@cache
def warehouse_schema() -> Schema:
    """The warehouse's columns, in the homes' order, for the transpiler's typed rewrites."""
    from postsales import tables, warehouse
    from postsales.spark import sql

    every = [*tables.catalog().sorted_tables, *warehouse.tables().metadata.sorted_tables]
    return sql.warehouse_schema(every, sql.views())


# --- PEP 249 ------------------------------------------------------------------------------------

apilevel = "2.0"
threadsafety = 1
paramstyle = "named"


class Error(Exception):
    pass


class Warning(Exception):  # PEP 249 names it so
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


def connect(remote: str) -> Connection:
    return Connection(remote)


class Connection:
    """A Connect session; commit and rollback do nothing (Spark has no transactions)."""

    def __init__(self, remote: str) -> None:
        from pyspark.sql import SparkSession

        try:
            self.spark = SparkSession.builder.remote(remote).create()
            for key, value in SESSION_CONF.items():
                self.spark.conf.set(key, value)
        except Exception as exc:
            raise OperationalError(f"cannot open a Spark Connect session on {remote}: {exc}") from exc

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.spark.stop()


class Cursor:
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self._rows: list[tuple] = []

    def execute(self, operation: str, parameters: dict[str, Any] | None = None) -> None:
        try:
            sql = to_spark(operation, warehouse_schema())
        except Exception as exc:
            raise ProgrammingError(f"cannot transpile to Spark SQL: {exc}") from exc
        self.run(sql, parameters)

    def run(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        """``sql``, already Spark SQL, with ``parameters`` bound by the server."""
        try:
            frame = self.connection.spark.sql(sql, args=dict(parameters or {}))
            fields = frame.schema.fields
            rows = [tuple(row) for row in frame.collect()] if fields else []
        except Exception as exc:
            raise DatabaseError(str(exc).split("JVM stacktrace:")[0].strip()) from exc
        self.description = [(f.name, f.dataType.simpleString(), None, None, None, None, True) for f in fields] or None
        self._rows = rows
        self.rowcount = len(rows) if fields else -1

    def executemany(self, operation: str, seq_of_parameters: list[dict[str, Any]]) -> None:
        for parameters in seq_of_parameters:
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

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass


# --- the dialect --------------------------------------------------------------------------------

# Spark's type names (DESCRIBE's data_type) as SQLAlchemy types, for get_columns.
_TYPES: dict[str, sa.types.TypeEngine] = {
    "string": sa.Text(),
    "boolean": sa.Boolean(),
    "tinyint": sa.SmallInteger(),
    "smallint": sa.SmallInteger(),
    "int": sa.Integer(),
    "bigint": sa.BigInteger(),
    "float": sa.Float(24),
    "double": sa.Float(53),
    "date": sa.Date(),
    "timestamp": sa.DateTime(timezone=True),
    "timestamp_ntz": sa.DateTime(),
    "binary": sa.LargeBinary(),
}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


def spark_type(name: str) -> sa.types.TypeEngine:
    name = name.strip().lower()
    if decimal := _DECIMAL.fullmatch(name):
        return sa.Numeric(int(decimal[1]), int(decimal[2]))
    if name.startswith(("varchar", "char")):
        return sa.Text()
    return _TYPES.get(name, sa.types.NullType())


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class SparkConnectDialect(default.DefaultDialect):
    name = "spark"
    driver = "connect"
    supports_statement_cache = True
    default_paramstyle = "named"
    # Core compiles to the PostgreSQL flavour postsales.spark.sql reads.
    statement_compiler = PGCompiler
    preparer = PGIdentifierPreparer
    type_compiler_cls = PGTypeCompiler
    supports_native_boolean = True
    supports_native_decimal = True
    supports_sane_rowcount = False
    supports_sane_multi_rowcount = False
    postfetch_lastrowid = False
    supports_schemas = True
    default_schema_name = "default"

    @classmethod
    def import_dbapi(cls) -> Any:
        return sys.modules[__name__]

    def create_connect_args(self, url: sa.URL) -> tuple[list, dict]:
        return [], {"remote": f"sc://{url.host or '127.0.0.1'}:{url.port or DEFAULT_PORT}"}

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        version = self._spark(connection).version
        return tuple(int(part) for part in re.findall(r"\d+", version)[:3])

    def _get_default_schema_name(self, connection: Any) -> str:
        return self._spark(connection).catalog.currentDatabase()

    def get_isolation_level(self, dbapi_connection: Any) -> str:
        return "AUTOCOMMIT"

    def get_default_isolation_level(self, dbapi_conn: Any) -> str:
        return "AUTOCOMMIT"

    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_ping(self, dbapi_connection: Any) -> bool:
        dbapi_connection.spark.sql("select 1").collect()
        return True

    # --- reflection, through the catalog --------------------------------------------------------

    @staticmethod
    def _spark(connection: Any) -> Any:
        return connection.connection.driver_connection.spark

    def _catalog_rows(self, connection: Any, sql: str) -> list[Any]:
        return self._spark(connection).sql(sql).collect()

    def get_schema_names(self, connection: Any, **kw: Any) -> list[str]:
        return [row[0] for row in self._catalog_rows(connection, "SHOW DATABASES")]

    def has_schema(self, connection: Any, schema_name: str, **kw: Any) -> bool:
        return self._spark(connection).catalog.databaseExists(schema_name)

    def _tables(self, connection: Any, schema: str | None) -> list[Any]:
        schema = schema or self.default_schema_name
        if not self.has_schema(connection, schema):
            return []
        return self._catalog_rows(connection, f"SHOW TABLES IN {_quoted(schema)}")

    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        # SHOW TABLES lists views too, and a temporary view in every database
        views = set(self.get_view_names(connection, schema))
        return [
            row.tableName
            for row in self._tables(connection, schema)
            if not row.isTemporary and row.tableName not in views
        ]

    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        schema = schema or self.default_schema_name
        if not self.has_schema(connection, schema):
            return []
        return [row.viewName for row in self._catalog_rows(connection, f"SHOW VIEWS IN {_quoted(schema)}")]

    def has_table(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> bool:
        return any(row.tableName == table_name for row in self._tables(connection, schema))

    def get_columns(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        if not self.has_table(connection, table_name, schema):
            raise sa.exc.NoSuchTableError(f"{schema}.{table_name}" if schema else table_name)
        name = f"{_quoted(schema or self.default_schema_name)}.{_quoted(table_name)}"
        columns = []
        for row in self._catalog_rows(connection, f"DESCRIBE TABLE {name}"):
            if not row.col_name or row.col_name.startswith("#"):  # the partition section follows
                break
            columns.append(
                {
                    "name": row.col_name,
                    "type": spark_type(row.data_type),
                    "nullable": True,
                    "default": None,
                    "comment": row.comment,
                }
            )
        return columns

    def get_pk_constraint(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> dict:
        return {"constrained_columns": [], "name": None}

    def get_foreign_keys(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> list:
        return []

    def get_indexes(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> list:
        return []
