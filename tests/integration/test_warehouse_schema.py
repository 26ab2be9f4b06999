"""Schema setup on PostgreSQL when several tasks start at once on an empty warehouse."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from conftest import _reset_pg
from postsales import warehouse
from postsales.segment import engine as segment_engine


def _all_at_once(url: str, setups: list[Callable[[sa.Engine], object]]) -> list[str]:
    """Run each setup in its own thread and engine, released together; the errors they raised."""
    start, errors = threading.Barrier(len(setups)), []

    def first_run(setup: Callable[[sa.Engine], object]) -> None:
        eng = sa.create_engine(url)
        try:
            start.wait()
            setup(eng)
        except Exception as exc:  # collected: the assertion names them
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            eng.dispose()

    threads = [threading.Thread(target=first_run, args=(setup,)) for setup in setups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgres
def test_concurrent_first_runs_create_the_schema_once(pg_database):
    # Without the schema lock, 3 callers racing like this failed on pg_namespace's unique key
    # in 10 of 10 tries; every round starts from an empty warehouse.
    setups = [warehouse.ensure_schema, warehouse.ensure_schema, segment_engine.ensure_tables, warehouse.ensure_schema]
    for _ in range(3):
        _reset_pg(pg_database)
        assert _all_at_once(pg_database, setups) == []
        with warehouse.engine(pg_database).connect() as conn:
            views = conn.execute(
                sa.text(
                    "select table_schema || '.' || table_name from information_schema.views"
                    " where table_schema in ('staging', 'mart') order by 1"
                )
            ).scalars()
            assert list(views) == [
                "mart.account_segments_current",
                "staging.account_versions",
                "staging.accounts_current",
                "staging.contract_versions",
                "staging.contracts_current",
            ]


@pytest.mark.postgres
def test_setting_up_the_schema_again_does_not_wait_for_readers_of_the_views(pg_database):
    """A second ensure_schema must not replace unchanged views: replacing takes an exclusive lock,
    which waited for every reader and deadlocked with a reader of two views (a Celery backfill)."""
    _reset_pg(pg_database)
    eng = sa.create_engine(pg_database)
    warehouse.ensure_schema(eng)
    reader = eng.connect()
    reader.execute(sa.text("select count(*) from staging.contracts_current")).scalar_one()  # holds its lock
    done = threading.Event()
    second = threading.Thread(target=lambda: (warehouse.ensure_schema(sa.create_engine(pg_database)), done.set()))
    second.start()
    finished_while_read = done.wait(timeout=10)
    reader.rollback()
    reader.close()
    second.join()
    eng.dispose()
    assert finished_while_read, "ensure_schema waited for a reader of an unchanged view"


def test_a_changed_view_definition_is_applied(warehouse_url):
    """A view whose recorded definition differs (an upgrade) is replaced; an unchanged one is not."""
    url = warehouse_url
    eng = warehouse.engine(url)
    warehouse.ensure_schema(eng)
    with eng.begin() as conn:
        conn.execute(sa.text(f"drop view staging.contracts_current{'' if warehouse.is_duckdb(eng) else ' cascade'}"))
        conn.execute(sa.text("create view staging.contracts_current as select 1 as stale"))
        conn.execute(sa.text("comment on view staging.contracts_current is 'postsales:older-release'"))
    warehouse.ensure_schema(eng)
    with eng.connect() as conn:
        columns = list(conn.execute(sa.text("select * from staging.contracts_current")).keys())
    assert "contract_id" in columns and "stale" not in columns


def test_a_current_warehouse_is_only_read(warehouse_url):
    """Every stage calls ensure_schema, once per date it segments: on a warehouse already up to
    date it reads the catalog and changes nothing; a table dropped since is created again."""
    url = warehouse_url
    eng = warehouse.engine(url)
    warehouse.ensure_schema(eng)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.lstrip().split(None, 1)[0].lower())

    sa.event.listen(eng, "before_cursor_execute", record)
    try:
        warehouse.ensure_schema(eng)
        assert set(statements) == {"select"}, statements  # the schema lock, the catalog, the views' stamps
        with eng.begin() as conn:
            conn.execute(sa.text("drop table mart.mrr_monthly"))
        statements.clear()
        warehouse.ensure_schema(eng)
        assert statements.count("create") == 1
    finally:
        sa.event.remove(eng, "before_cursor_execute", record)
    with eng.connect() as conn:
        assert conn.execute(sa.text("select count(*) from mart.mrr_monthly")).scalar() == 0
