"""An extract's work tables: TEMPORARY on a DuckDB file (one connection for the whole extract),
tables in ``raw`` elsewhere; in both cases gone when the extract ends."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.extract import extract_entity
from postsales.sources import Interval
from postsales.sources.text_table import create_work_table


def _work_tables(url: str) -> list[str]:
    with warehouse.engine(url).connect() as conn:
        names = conn.execute(sa.text("select table_name from information_schema.tables")).scalars()
        return sorted(name for name in names if name.startswith("_load_"))


def test_one_connection_keeps_temporary_work_tables_for_the_block(duckdb_url):
    with warehouse.one_connection(duckdb_url) as eng:
        assert warehouse.temporary_work_tables(eng)
        table = create_work_table(eng, "_load_text_0123abcd", ["a"])
        assert table.schema is None  # DuckDB's temp catalog
        with eng.begin() as conn:  # a later block of work sees it: the same connection
            conn.execute(sa.text("insert into \"_load_text_0123abcd\" (_row, a, _source) values (1, 'x', 's')"))
        with eng.connect() as conn:
            assert conn.execute(sa.select(table.c.a)).scalars().all() == ["x"]
    # Closed with the block: nothing in the file, and the file is free for the next process.
    assert _work_tables(duckdb_url) == []
    assert not warehouse.temporary_work_tables(warehouse.engine(duckdb_url))  # NullPool: tables in raw


def test_an_extract_on_duckdb_writes_its_work_tables_as_temporary(duckdb_url, tiny_source):
    created: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        found = re.match(r"\s*CREATE (TEMPORARY )?TABLE (\S+)", statement, re.IGNORECASE)
        if found and "_load_" in found.group(2):
            created.append(f"{found.group(1) or ''}{found.group(2)}")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        summary = extract_entity(
            "accounts", interval=Interval(tiny.DAY1, tiny.DAY3, full_refresh=True), run_id="r",
            build_data_docs=False,
        )  # fmt: skip
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert summary.rows_read > 0
    kinds = sorted(re.sub(r"_[0-9a-f]{8}$", "", name) for name in created)
    assert kinds == ["TEMPORARY _load_fail", "TEMPORARY _load_gate", "TEMPORARY _load_text"], created
    assert _work_tables(duckdb_url) == []


@pytest.mark.postgres
def test_postgresql_work_tables_stay_in_raw(pg_database):
    with warehouse.one_connection(pg_database) as eng:
        assert not warehouse.temporary_work_tables(eng)
        table = create_work_table(eng, "_load_text_0123abce", ["a"])
        try:
            assert table.schema == "raw"
        finally:
            table.drop(eng)
