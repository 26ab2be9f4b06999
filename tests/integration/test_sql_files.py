"""Every query in include/sql runs unchanged on DuckDB and PostgreSQL and returns the same rows."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.extract import extract_entity
from postsales.sources import Interval

SQL_DIR = Path(__file__).resolve().parents[2] / "include" / "sql"
SQL_FILES = sorted(SQL_DIR.rglob("*.sql"))
BIND = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")

# Values for every bound parameter any query uses; a new parameter must be added here.
# Load times differ between the two loads.
AUDIT_COLUMNS = {"_loaded_at", "finished_at", "quarantined_at", "computed_at", "explanation"}

PARAMS = {
    "interval_start": datetime(2024, 3, 1),
    "interval_end": datetime(2024, 3, 2),
    "as_of_date": date(2024, 3, 1),
    "nps_window_days": 365,
    "csat_window_days": 180,
    "usage_window_days": 90,
    "snapshot_month": date(2024, 6, 1),
    "cohort_grain": "month",
    "next_month": date(2024, 7, 1),
    "next_day": date(2024, 3, 2),
    "pricing_change_date": date(2024, 2, 1),
    "months": 3,
    "usage_days": 30,
    "high_touch_weight": 1.0,
    "pooled_weight": 0.25,
    "tech_touch_weight": 0.0,
    "compared_to": date(2024, 2, 1),
}


def normalise(value):
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def results(url: str) -> dict[str, list]:
    out = {}
    with warehouse.engine(url).connect() as conn:
        for path in SQL_FILES:
            text = warehouse.render_sql(path)
            names = set(BIND.findall(text))
            unknown = names - PARAMS.keys()
            assert not unknown, f"{path}: add test values for {unknown}"
            rows = conn.execute(sa.text(text), {n: PARAMS[n] for n in names})
            keep = [i for i, column in enumerate(rows.keys()) if column not in AUDIT_COLUMNS]
            frame = [tuple(normalise(row[i]) for i in keep) for row in rows]
            out[str(path.relative_to(SQL_DIR))] = sorted(frame, key=repr)
    return out


def load(url, run_id="sql_files"):
    """Every stage's tables, so every query has something to read."""
    from postsales.cohorts import compute_snapshot
    from postsales.forecast import compute_forecast
    from postsales.segment.engine import compute_segments

    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=Interval(tiny.DAY1, tiny.DAY2), run_id=run_id, build_data_docs=False)
    compute_segments(PARAMS["as_of_date"], warehouse_url=url)
    compute_forecast(PARAMS["as_of_date"], warehouse_url=url)
    warehouse.ensure_schema(warehouse.engine(url))  # no CRM push in the tiny data: empty
    compute_snapshot(PARAMS["snapshot_month"], warehouse_url=url)


@pytest.mark.postgres
def test_sql_files_agree_on_duckdb_and_postgres(tmp_path, tiny_source, pg_database, monkeypatch):
    assert SQL_FILES, "no SQL files found"
    duck = f"duckdb:///{tmp_path / 'w.duckdb'}"
    by_backend = {}
    for url in (duck, pg_database):
        monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", url)
        if url == pg_database:
            with warehouse.engine(url).begin() as conn:
                for schema in warehouse.SCHEMAS:
                    conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
        load(url)
        by_backend[url] = results(url)
    assert by_backend[duck] == by_backend[pg_database]
    non_empty = [name for name, rows in by_backend[duck].items() if rows]
    assert len(non_empty) == len(SQL_FILES), "every query should return rows on the tiny data"
