"""The warehouse tables each Airflow task writes and reads, read off the SQL it sends (tests only).

Used by the ``dags`` fixture: every ``dag.test()`` in the suite fails when a task writes a
table whose Asset it does not declare as an outlet, or reads one whose Asset it does not
declare as an inlet (postsales.assets). The lineage tests compare the OpenLineage events with it.

The SQL is taken where it reaches the database: SQLAlchemy's cursor (every statement the
library sends through SQLAlchemy) and the two driver calls the bulk paths make past it
(``warehouse.insert_frame``: DuckDB's ``execute`` on the raw connection, psycopg's ``COPY``).
It knows nothing of how the library reports lineage, so it can check that report.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache

import sqlalchemy as sa
from sqlalchemy import event

SCHEMAS = r"(raw|staging|mart|ops)"
# A table of the warehouse's schemas, quoted or not. Temporary work tables (no schema, or a name
# starting with "_" such as raw._load_gate_*) do not match: their name must start with a letter.
TABLE = rf'"?{SCHEMAS}"?\s*\.\s*"?([a-z]\w*)"?'

# A statement that changes rows of a table.
WRITE = re.compile(rf"^\s*(?:insert\s+into|delete\s+from|update|merge\s+into|copy)\s+{TABLE}", re.IGNORECASE)
# A table a statement reads: after FROM or JOIN (not the FROM of DELETE FROM, which WRITE has).
READ = re.compile(rf"(?<!delete )\b(?:from|join)\s+{TABLE}", re.IGNORECASE)
COMMENT = re.compile(r"--[^\n]*")


def written_table(statement: str) -> str | None:
    """``schema.table`` a statement writes, or None for a read, DDL or a statement outside the warehouse schemas."""
    match = WRITE.match(statement)
    return f"{match[1].lower()}.{match[2].lower()}" if match else None


def read_tables(statement: str) -> set[str]:
    """The ``schema.table`` a statement reads (FROM, JOIN); a staging view stands for the tables it reads."""
    if re.match(r"^\s*create\b", statement, re.IGNORECASE):
        return set()  # DDL: a view's definition is read when the view is
    found = {f"{m[1].lower()}.{m[2].lower()}" for m in READ.finditer(COMMENT.sub("", statement))}
    views = staging_views()
    return {table for name in found for table in views.get(name, {name})}


@cache
def staging_views() -> dict[str, frozenset[str]]:
    """Each staging view (include/sql/staging/<view>.sql) and the tables it reads."""
    from postsales import paths, warehouse

    views: dict[str, frozenset[str]] = {}
    for path in sorted((paths.sql_dir() / "staging").glob("*.sql")):
        text = COMMENT.sub("", warehouse.render_sql(path))
        views[f"staging.{path.stem}"] = frozenset(f"{m[1].lower()}.{m[2].lower()}" for m in READ.finditer(text))
    return views


TaskKey = tuple[str, str, str]  # dag_id, run_id, task_id


@dataclass
class Trace:
    """Per task (dag id, run id, task id), the tables its statements wrote and read (reads of a
    table it wrote left out)."""

    writes: dict[TaskKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    touched: dict[TaskKey, set[str]] = field(default_factory=lambda: defaultdict(set))

    @property
    def reads(self) -> dict[TaskKey, set[str]]:
        return {key: tables - self.writes.get(key, set()) for key, tables in self.touched.items()}

    def record(self, statement: str) -> None:
        written = written_table(statement)
        read = read_tables(statement)
        if written is None and not read:
            return
        try:
            from airflow.sdk import get_current_context

            ti = get_current_context()["ti"]
        except RuntimeError:  # not inside a task: a test's own setup
            return
        key = (ti.dag_id, ti.run_id, ti.task_id)
        if written is not None:
            self.writes[key].add(written)
        self.touched[key] |= read


@contextmanager
def task_trace() -> Iterator[Trace]:
    """Collect, per task, the warehouse tables written and read while that task ran (in this process)."""
    import psycopg
    from duckdb_engine import ConnectionWrapper

    trace = Trace()

    def on_cursor(conn, cursor, statement, parameters, context, executemany):
        trace.record(statement)

    def duckdb_execute(self, statement, *args, **kwargs):  # DuckDB's raw connection (insert_frame)
        trace.record(str(statement))
        return self._ConnectionWrapper__c.execute(statement, *args, **kwargs)

    copy = psycopg.Cursor.copy

    def psycopg_copy(self, statement, *args, **kwargs):  # PostgreSQL's COPY (insert_frame)
        trace.record(str(statement))
        return copy(self, statement, *args, **kwargs)

    event.listen(sa.Engine, "before_cursor_execute", on_cursor)
    ConnectionWrapper.execute = duckdb_execute
    psycopg.Cursor.copy = psycopg_copy
    try:
        yield trace
    finally:
        event.remove(sa.Engine, "before_cursor_execute", on_cursor)
        del ConnectionWrapper.execute
        psycopg.Cursor.copy = copy
