"""Every table home (include/tables) is complete and its rules hold on a warehouse the pipeline filled.

The rules live with the table (key, invariants); this module only runs them: on the tiny source
through every stage, on DuckDB and PostgreSQL, and once against rows broken on purpose so a rule
that could never fire is caught. test_cohorts.py runs the cohort tables' rules on the demo data too.
"""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm_fixtures import tiny_warehouse_and_crm
from postsales import cohorts, forecast, monitoring, outcomes, review, tables, warehouse
from postsales.crm import sync
from postsales.segment import engine, migration

ROOT = Path(__file__).resolve().parents[2]
STAGE_MODULES = (cohorts, engine, forecast, outcomes, review, migration, monitoring, sync)
AS_OF = date(2024, 3, 1)
SNAPSHOT = date(2024, 3, 1)
# Tables the tiny run leaves empty (no run of a DAG, no history to backtest or score, no rule input missing).
EMPTY_ON_TINY = {
    "ops.run_summary",
    "mart.forecast_backtest",
    "mart.forecast_tier_calibration",
    "mart.health_outcomes",
    "mart.health_component_signal",
    "mart.review_recommendations",
    "mart.review_migration_matrix",
    "mart.account_data_gaps",
}


def every_table() -> dict[str, sa.Table]:
    """Every warehouse table by name: the stage modules' and the extract's (warehouse.tables())."""
    extract = warehouse.tables()
    found = [
        *(table for module in STAGE_MODULES for table in module.TABLES),
        *extract.raw.values(),
        *extract.staging.values(),
        extract.quarantine,
        extract.extract_runs,
    ]
    by_name = {table.fullname: table for table in found}
    assert len(by_name) == len(found), "a table belongs to one stage"
    return by_name


def test_every_table_has_a_home_and_every_home_a_table():
    by_name = every_table()
    assert sorted(by_name) == sorted(tables.homes())
    for name, table in by_name.items():
        assert tables.home_of(table) is tables.homes()[name]
        if not name.startswith("staging."):  # built per expectations.yaml
            assert table is tables.table(name), f"{name} built outside its home"


@pytest.mark.parametrize("name", sorted(tables.homes()))
def test_a_home_names_what_exists(name):
    home = tables.homes()[name]
    for query in filter(None, [home.filled_by.query, *home.filled_by.reads]):
        assert (ROOT / query).is_file(), f"{name}: {query}"
    module_name, _, attribute = home.filled_by.code.split(" ")[0].rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), attribute)), f"{name}: filled_by.code"
    assert home.tests, f"{name}: no test reads the table"
    for test in home.tests:
        assert (ROOT / test).is_file(), f"{name}: {test}"
    for dag_id in home.filled_by.dags:
        assert dag_id.startswith("every DAG") or (ROOT / "dags" / f"{dag_id}.py").is_file(), f"{name}: {dag_id}"


def test_a_home_that_contradicts_itself_fails_naming_the_file_and_field(tmp_path, monkeypatch):
    from postsales.config import ConfigError

    home = tmp_path / "include" / "tables" / "mart"
    home.mkdir(parents=True)
    (home / "t.yaml").write_text(
        "name: mart.t\ndescription: d\ngrain: g\nkey: [a, b]\npartition: [a]\n"
        "filled_by: {code: postsales.cohorts.compute_snapshot, dags: [cohort_analysis]}\n"
        "columns:\n  - {name: a, type: date}\n"
    )
    monkeypatch.setattr(tables.paths, "include_dir", lambda: tmp_path / "include")
    with pytest.raises(ConfigError, match=r"t\.yaml: .*key.*\['b'\] are not columns"):
        tables.homes()  # another include directory: read afresh


def fill_every_stage(url: str, crm_dir: Path, monkeypatch) -> None:
    """Every stage on the tiny source: extracts, segments, forecast, cohorts, migration, a CRM push."""
    monkeypatch.setenv("POSTSALES_CRM_SYNC_URL", tiny_warehouse_and_crm(crm_dir))
    engine.compute_segments(AS_OF, warehouse_url=url)
    forecast.compute_forecast(AS_OF, warehouse_url=url)
    cohorts.compute_snapshot(SNAPSHOT, warehouse_url=url)
    migration.migration_matrix(AS_OF, AS_OF, warehouse_url=url)
    sync.sync(AS_OF, approve_first_push=True, approve_large_change=True, run_id="invariants", warehouse_url=url)
    warehouse.ensure_schema(warehouse.engine(url))


def counts_and_violations(url: str) -> tuple[dict[str, int], dict[str, dict]]:
    counts, broken = {}, {}
    with warehouse.engine(url).connect() as conn:
        for name, table in sorted(every_table().items()):
            counts[name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            found = tables.violations(conn, table)
            if found:
                broken[name] = found
    return counts, broken


def test_every_home_holds_on_a_warehouse_the_pipeline_filled(warehouse_url, tiny_source, tmp_path, monkeypatch):
    fill_every_stage(warehouse_url, tmp_path, monkeypatch)
    counts, broken = counts_and_violations(warehouse_url)
    assert broken == {}
    assert {name for name, rows in counts.items() if rows == 0} == EMPTY_ON_TINY


@pytest.mark.parametrize(
    ("table", "change", "rule"),
    [
        ("ops.extract_runs", "update ops.extract_runs set rows_loaded = rows_loaded + 1", "rows_add_up"),
        ("staging.contracts", "insert into staging.contracts select * from staging.contracts", "key_unique"),
        ("mart.mrr_movements", "update mart.mrr_movements set net_new_mrr = net_new_mrr + 5", "bridge_adds_up"),
        ("mart.cohort_retention", "update mart.cohort_retention set grr = 1.2", "ratios_in_range"),
        ("mart.mrr_monthly", "update mart.mrr_monthly set movement = 'sideways'", "movement_is_a_known_one"),
        (
            "mart.account_segments",
            "insert into mart.account_segments select * from mart.account_segments",
            "key_unique",
        ),
        ("mart.account_segments", "update mart.account_segments set quadrant = 'Harvest'", "quadrant_is_one_of_four"),
        (
            "mart.cohort_retention_by_segment",
            "delete from mart.cohort_retention_by_segment where dimension = 'all'",
            "all_is_mart_cohort_retention",
        ),
    ],
)
def test_a_broken_row_is_reported_by_its_rule(duckdb_url, tiny_source, tmp_path, monkeypatch, table, change, rule):
    fill_every_stage(duckdb_url, tmp_path, monkeypatch)
    with warehouse.engine(duckdb_url).begin() as conn:
        assert tables.violations(conn, every_table()[table]) == {}
        conn.execute(sa.text(change))
        assert rule in tables.violations(conn, every_table()[table])
