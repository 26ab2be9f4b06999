"""Connection settings for Airflow's own metadata database, as `make` sets it up.

Imported by Airflow through ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS`` while it configures
its metadata database. They apply to SQLite only: with any other database (set in the
environment, ``airflow.cfg``, a ``_cmd`` or a secret) ``METADATA_CONNECT_ARGS`` is empty.
"""

from __future__ import annotations

import sqlite3


class _WriteLockFirstCursor(sqlite3.Cursor):
    """Opens a transaction that may write with ``BEGIN IMMEDIATE``, never a deferred one."""

    def execute(self, sql, parameters=(), /):
        if not self.connection.in_transaction and sql.lstrip()[:9].upper() == "SAVEPOINT":
            # A SAVEPOINT outside a transaction would start a deferred one: its first read fixes
            # a snapshot, and if the scheduler commits before its first write, SQLite refuses the
            # write at once ("database is locked", no waiting) — `airflow backfill create` does
            # one SAVEPOINT per run. Take the write lock first, waiting for it like any writer.
            super().execute("BEGIN IMMEDIATE")
        return super().execute(sql, parameters)


class WriteLockFirstConnection(sqlite3.Connection):
    def cursor(self, factory=_WriteLockFirstCursor):
        return super().cursor(factory)


# SQLite takes one writer at a time. Under `make airflow` the scheduler writes all the time,
# and `airflow backfill create` or `airflow dags unpause` failed with "database is locked"
# (then the scheduler stopped on the runs a failed backfill left half made):
# - timeout: wait up to a minute for the write lock (sqlite3 gives up after 5 s);
# - isolation_level IMMEDIATE: sqlite3 opens the transaction before an INSERT / UPDATE /
#   DELETE with BEGIN IMMEDIATE, and a SAVEPOINT (above) does the same.
SQLITE_CONNECT_ARGS = {"timeout": 60, "isolation_level": "IMMEDIATE", "factory": WriteLockFirstConnection}


def metadata_connect_args() -> dict:
    """:data:`SQLITE_CONNECT_ARGS` when Airflow's metadata database is SQLite, else nothing."""
    from airflow.configuration import conf  # already loaded: Airflow is configuring its database

    return dict(SQLITE_CONNECT_ARGS) if conf.get("database", "sql_alchemy_conn").startswith("sqlite") else {}


METADATA_CONNECT_ARGS = metadata_connect_args()
