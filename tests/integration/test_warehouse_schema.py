"""Schema setup on PostgreSQL when several tasks start at once on an empty warehouse."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from conftest import _reset_pg
from postsales import warehouse
from postsales.segment import engine as segment_engine

pytestmark = pytest.mark.postgres


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
