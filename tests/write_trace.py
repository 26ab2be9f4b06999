"""The warehouse tables each Airflow task writes, read off the SQL it sends (tests only).

Used by the ``dags`` fixture: every ``dag.test()`` in the suite fails when a task writes a
table whose Asset it does not declare as an outlet (postsales.assets).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event

# A statement that changes rows of a table in one of the warehouse's schemas. Temporary work
# tables (no schema, or a name starting with "_" such as raw._load_gate_*) are left out.
WRITE = re.compile(
    r'^\s*(?:insert\s+into|delete\s+from|update|merge\s+into|copy)\s+"?(raw|staging|mart|ops)"?\s*\.\s*"?([a-z]\w*)"?',
    re.IGNORECASE,
)


def written_table(statement: str) -> str | None:
    """``schema.table`` a statement writes, or None for a read, DDL or a statement outside the warehouse schemas."""
    match = WRITE.match(statement)
    return f"{match[1].lower()}.{match[2].lower()}" if match else None


@contextmanager
def task_writes() -> Iterator[dict[str, set[str]]]:
    """Collect, per task id, the warehouse tables written while that task ran (in this process)."""
    from airflow.sdk import get_current_context

    found: dict[str, set[str]] = defaultdict(set)

    def record(conn, cursor, statement, parameters, context, executemany):
        table = written_table(statement)
        if table is None:
            return
        try:
            task_id = get_current_context()["ti"].task_id
        except RuntimeError:  # not inside a task: a test's own setup
            return
        found[task_id].add(table)

    event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(sa.Engine, "before_cursor_execute", record)
