"""The warehouse engine: DuckDB's memory cap (its own default is 80 % of the machine per process)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from postsales import warehouse


def memory_limit(url: str) -> str:
    with warehouse.engine(url).connect() as conn:
        return conn.execute(sa.text("select current_setting('memory_limit')")).scalar_one()


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    warehouse.dispose_all()


def test_duckdb_is_capped_at_512_megabytes_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv(warehouse.DUCKDB_MEMORY_LIMIT_ENV, raising=False)
    assert memory_limit(f"duckdb:///{tmp_path / 'w.duckdb'}") == "488.2 MiB"  # DuckDB's 512MB = 512 * 10^6 bytes


def test_the_environment_sets_the_cap(tmp_path, monkeypatch):
    monkeypatch.setenv(warehouse.DUCKDB_MEMORY_LIMIT_ENV, "3GB")
    assert memory_limit(f"duckdb:///{tmp_path / 'w.duckdb'}") == "2.7 GiB"


def test_a_limit_in_the_url_wins_and_the_file_is_where_the_path_says(tmp_path, monkeypatch):
    monkeypatch.setenv(warehouse.DUCKDB_MEMORY_LIMIT_ENV, "3GB")
    path = tmp_path / "nested" / "w.duckdb"
    assert memory_limit(f"duckdb:///{path}?memory_limit=500MB") == "476.8 MiB"
    assert path.is_file()


def settings_of(url: str) -> tuple[str, str]:
    with warehouse.one_connection(url) as eng, eng.connect() as conn:
        return conn.execute(
            sa.text("select current_setting('memory_limit'), current_setting('preserve_insertion_order')::text")
        ).one()


def test_an_extract_connection_is_capped_at_256_megabytes_and_writes_rows_in_any_order(tmp_path, monkeypatch):
    monkeypatch.delenv(warehouse.DUCKDB_MEMORY_LIMIT_ENV, raising=False)
    assert tuple(settings_of(f"duckdb:///{tmp_path / 'w.duckdb'}")) == ("244.1 MiB", "false")


def test_the_environment_and_the_url_set_the_extract_cap_too(tmp_path, monkeypatch):
    monkeypatch.setenv(warehouse.DUCKDB_MEMORY_LIMIT_ENV, "3GB")
    assert settings_of(f"duckdb:///{tmp_path / 'w.duckdb'}")[0] == "2.7 GiB"
    assert settings_of(f"duckdb:///{tmp_path / 'w.duckdb'}?memory_limit=500MB")[0] == "476.8 MiB"


def test_a_large_batch_raises_the_default_extract_cap_but_never_a_configured_one(tmp_path, monkeypatch):
    monkeypatch.delenv(warehouse.DUCKDB_MEMORY_LIMIT_ENV, raising=False)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"

    def cap_after(url: str, rows: int) -> str:
        with warehouse.one_connection(url) as eng:
            warehouse.fit_extract_memory(eng, rows)
            with eng.connect() as conn:
                return conn.execute(sa.text("select current_setting('memory_limit')")).scalar_one()

    assert cap_after(url, 26_800_000) == "244.1 MiB"  # 214 MB wanted: the default 256MB stays
    assert cap_after(url, 80_000_000) == "610.3 MiB"  # 8 bytes a row: 640MB
    assert cap_after(f"{url}?memory_limit=300MB", 80_000_000) == "286.1 MiB"
    monkeypatch.setenv(warehouse.DUCKDB_MEMORY_LIMIT_ENV, "300MB")
    assert cap_after(url, 80_000_000) == "286.1 MiB"


def test_result_frame_keeps_columns_by_name(tmp_path):
    with warehouse.engine(f"duckdb:///{tmp_path / 'w.duckdb'}").connect() as conn:
        frame = warehouse.result_frame(conn.execute(sa.text("select 2 as b, 'x' as a union all select 3, 'y'")))
    assert list(frame.columns) == ["b", "a"]
    assert frame.sort_values("b").to_dict("records") == [{"b": 2, "a": "x"}, {"b": 3, "a": "y"}]
