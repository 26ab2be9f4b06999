"""Cohort SQL on DuckDB and PostgreSQL: hand-computed MRR, movements and retention, point in time,
idempotency, identities on generated demo data, an independent pandas check, and backend agreement.

The hand-built contracts and their expected values live in tests/cohort_fixtures.py.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import cohort_fixtures as fx
from postsales import cohorts, tables, warehouse
from postsales_dev import demo

TABLES = cohorts.OUTPUTS
DEMO_SNAPSHOTS = (date(2024, 6, 1), date(2025, 6, 1), date(2026, 10, 1))
DEMO_PIT_SNAPSHOT = date(2025, 6, 1)


# --- helpers ----------------------------------------------------------------------------------


def load_contracts(url: str, frame: pd.DataFrame) -> None:
    eng = warehouse.engine(url)
    tables = warehouse.ensure_schema(eng)
    with eng.begin() as conn:
        warehouse.insert_frame(conn, tables.staging["contracts"], frame)


def _sort_key(row: dict) -> tuple:
    return tuple((value is None, "" if value is None else value) for value in row.values())


def rows(url: str, table: sa.Table, snapshot_month: date | None = None) -> list[dict]:
    """The table's rows (one snapshot or all) as dicts, sorted in Python (collations differ)."""
    statement = sa.select(table)
    if snapshot_month is not None:
        statement = statement.where(table.c.snapshot_month == snapshot_month)
    with warehouse.engine(url).connect() as conn:
        return sorted((dict(row._mapping) for row in conn.execute(statement)), key=_sort_key)


def snapshot_rows(url: str, *snapshot_months: date) -> dict[str, list[dict]]:
    return {f"{t.name}@{m}": rows(url, t, m) for t in TABLES for m in snapshot_months}


def by_account_month(url: str, snapshot_month: date) -> dict[tuple[str, date], dict]:
    return {(r["account_id"], r["month"]): r for r in rows(url, cohorts.mrr_monthly, snapshot_month)}


def month_before(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


def assert_close(actual: float, expected: float, what: str, tolerance: float = 1e-9) -> None:
    assert math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance), f"{what}: {actual} != {expected}"


@pytest.fixture
def hand(warehouse_url: str) -> str:
    """The hand-built contracts loaded, with the December and May 2024 snapshots computed."""
    load_contracts(warehouse_url, fx.frame(fx.CONTRACTS))
    for month in (fx.SNAPSHOT, fx.EARLY_SNAPSHOT):
        cohorts.compute_snapshot(month, warehouse_url=warehouse_url)
    return warehouse_url


# --- hand-computed fixture --------------------------------------------------------------------


def test_mrr_monthly_matches_hand_computed_values(hand):
    actual = by_account_month(hand, fx.SNAPSHOT)
    expected = fx.december_expected()
    assert set(actual) == set(expected), "one row per account and month from its first MRR month"
    for key, (mrr, movement) in expected.items():
        row = actual[key]
        assert row["snapshot_month"] == fx.SNAPSHOT
        assert row["mrr"] == mrr, key
        assert row["arr"] == mrr * 12, key
        assert row["movement"] == movement, key
        previous = actual.get((key[0], month_before(key[1])))
        assert row["mrr_change"] == mrr - (previous["mrr"] if previous else 0), key
    # Never customers: a zero-ARR pilot alone, and a contract active on no month's last day.
    assert not {a for a, _ in actual} & {"PILOTONLY", "SHORT"}


def test_may_snapshot_sees_only_what_was_known_at_the_end_of_may(hand):
    actual = {key: row["mrr"] for key, row in by_account_month(hand, fx.EARLY_SNAPSHOT).items()}
    assert actual == fx.may_expected()


def test_mrr_movements_match_hand_computed_bridge(hand):
    actual = rows(hand, cohorts.mrr_movements, fx.SNAPSHOT)
    assert [r["month"] for r in actual] == sorted(fx.DECEMBER_BRIDGE)
    names = ("mrr", "customers", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr")
    names += ("reactivation_mrr", "net_new_mrr")
    for row in actual:
        assert tuple(row[n] for n in names) == fx.DECEMBER_BRIDGE[row["month"]], row["month"]


@pytest.mark.parametrize("grain, expected", [("month", fx.MONTHLY_COHORTS), ("year", fx.YEARLY_COHORTS)])
def test_cohort_retention_matches_hand_computed_values(hand, grain, expected):
    actual = {
        (r["cohort_month"], r["months_since_start"]): r
        for r in rows(hand, cohorts.cohort_retention, fx.SNAPSHOT)
        if r["cohort_grain"] == grain
    }
    assert set(actual) == set(expected)
    for key, (customers, active, starting, mrr, retained) in expected.items():
        row = actual[key]
        assert (row["cohort_customers"], row["active_customers"]) == (customers, active), key
        assert (row["starting_mrr"], row["mrr"]) == (starting, mrr), key
        assert_close(row["logo_retention"], active / customers, f"{key} logo_retention")
        assert_close(row["grr"], retained / starting, f"{key} grr")
        assert_close(row["nrr"], mrr / starting, f"{key} nrr")


def test_later_versions_and_contracts_do_not_change_earlier_snapshots(hand):
    before = snapshot_rows(hand, fx.SNAPSHOT, fx.EARLY_SNAPSHOT)
    load_contracts(hand, fx.frame(fx.LATE_CONTRACTS, run_id="late", loaded_at=fx.LOADED_AT + timedelta(days=30)))
    for month in (fx.SNAPSHOT, fx.EARLY_SNAPSHOT):
        cohorts.compute_snapshot(month, warehouse_url=hand)
    assert snapshot_rows(hand, fx.SNAPSHOT, fx.EARLY_SNAPSHOT) == before
    # A later snapshot does see them: MIDSTART's amended ARR restates its history, NEWCO is new.
    cohorts.compute_snapshot(date(2025, 1, 1), warehouse_url=hand)
    january = by_account_month(hand, date(2025, 1, 1))
    assert january[("MIDSTART", date(2024, 1, 1))]["mrr"] == 2000
    assert january[("MIDSTART", date(2025, 1, 1))]["movement"] == "churn"  # ended 2025-01-14
    assert (january[("NEWCO", date(2025, 1, 1))]["mrr"], january[("NEWCO", date(2025, 1, 1))]["movement"]) == (
        1000,
        "new",
    )


BASE_COUNTS = {"snapshot_month", "mrr_monthly_rows", "mrr_movements_rows", "cohort_retention_rows", "mrr", "customers"}


def test_rerun_replaces_the_snapshot_with_identical_rows(hand):
    everything = {t.name: rows(hand, t) for t in TABLES}
    first = cohorts.compute_snapshot(fx.SNAPSHOT, warehouse_url=hand)
    second = cohorts.compute_snapshot(fx.SNAPSHOT, warehouse_url=hand)
    assert first == second
    assert {k: v for k, v in first.items() if k in BASE_COUNTS} == {
        "snapshot_month": "2024-12-01",
        "mrr_monthly_rows": 99,
        "mrr_movements_rows": 12,
        "cohort_retention_rows": 64,
        "mrr": 10700.0,
        "customers": 9,
    }
    # Ten accounts were ever customers: each is in 'all' and in the three segment dimensions.
    assert first["account_cohort_segments_rows"] == 10 * 4
    assert {t.name: rows(hand, t) for t in TABLES} == everything


def test_pandas_reference_agrees_with_sql_on_the_fixture(hand):
    contracts = fx.frame(fx.CONTRACTS)
    for month in (fx.SNAPSHOT, fx.EARLY_SNAPSHOT):
        assert_matches_reference(hand, contracts, month)


def test_empty_staging_gives_empty_snapshot(warehouse_url):
    counts = cohorts.compute_snapshot(date(2024, 1, 1), warehouse_url=warehouse_url)
    assert counts == {
        "snapshot_month": "2024-01-01",
        **{f"{table.name}_rows": 0 for table in cohorts.OUTPUTS},
        "mrr": 0.0,
        "customers": 0,
    }


def test_snapshot_month_must_be_a_first_of_month(warehouse_url):
    with pytest.raises(ValueError, match="first day of a month"):
        cohorts.compute_snapshot(date(2024, 1, 31), warehouse_url=warehouse_url)


# --- generated demo data ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_contracts(tmp_path_factory) -> pd.DataFrame:
    """The good rows of the demo generator's contracts.csv, typed like staging.contracts."""
    out = tmp_path_factory.mktemp("cohort_demo")
    demo.generate(out, accounts=80, seed=3)
    bad = {
        entry["key"]["contract_id"]
        for entry in json.loads((out / "_bad_rows.json").read_text())
        if entry["table"] == "contracts"
    }
    raw = pd.read_csv(Path(out) / "contracts.csv", dtype=str, keep_default_na=False)
    raw = raw[~raw["contract_id"].isin(bad)]
    frame = pd.DataFrame(
        {
            "contract_id": raw["contract_id"],
            "account_id": raw["account_id"],
            "start_date": [date.fromisoformat(v) for v in raw["start_date"]],
            "end_date": [date.fromisoformat(v) if v else None for v in raw["end_date"]],
            "arr": raw["arr"].astype(float),
            "plan": raw["plan"],
            "updated_at": [datetime.fromisoformat(v) for v in raw["updated_at"]],
        }
    ).reset_index(drop=True)
    return fx.frame(frame.to_dict(orient="records"), run_id="demo")


@pytest.fixture
def demo_loaded(warehouse_url, demo_contracts) -> str:
    load_contracts(warehouse_url, demo_contracts)
    for month in DEMO_SNAPSHOTS:
        cohorts.compute_snapshot(month, warehouse_url=warehouse_url)
    return warehouse_url


def assert_matches_reference(url: str, contracts: pd.DataFrame, snapshot_month: date) -> None:
    reference = fx.reference_mrr(contracts, snapshot_month)
    expected = {(r["account_id"], r["month"]): (r["mrr"], r["movement"]) for r in reference}
    actual = {key: (row["mrr"], row["movement"]) for key, row in by_account_month(url, snapshot_month).items()}
    assert set(actual) == set(expected), f"{snapshot_month}: account-months differ"
    for key, (mrr, movement) in expected.items():
        assert_close(actual[key][0], mrr, f"{snapshot_month} {key} mrr")
        assert actual[key][1] == movement, f"{snapshot_month} {key} movement"


def test_demo_identities(demo_loaded, demo_contracts):
    url = demo_loaded
    for snapshot_month in DEMO_SNAPSHOTS:
        assert_matches_reference(url, demo_contracts, snapshot_month)
        monthly = rows(url, cohorts.mrr_monthly, snapshot_month)
        bridge = {r["month"]: r for r in rows(url, cohorts.mrr_movements, snapshot_month)}
        retention = rows(url, cohorts.cohort_retention, snapshot_month)
        assert monthly and bridge and retention

        # The bridge, GRR <= 1, k = 0 at 1, no gaps, yearly = sum of monthly, ...: the rules
        # declared with each table (include/tables), checked on the demo's history.
        assert max(r["month"] for r in bridge.values()) == snapshot_month
    with warehouse.engine(url).connect() as conn:
        for table in cohorts.TABLES:
            assert tables.violations(conn, table) == {}, table.fullname

    # The generated history is rich enough for these checks to mean something.
    latest = rows(url, cohorts.mrr_monthly, DEMO_SNAPSHOTS[-1])
    assert {r["movement"] for r in latest} >= {"new", "expansion", "contraction", "churn", "reactivation", "unchanged"}


def test_demo_later_data_does_not_change_an_earlier_snapshot(demo_loaded, demo_contracts):
    url = demo_loaded
    before = snapshot_rows(url, DEMO_PIT_SNAPSHOT)
    cutoff = datetime(2025, 7, 1)
    latest = demo_contracts.sort_values("updated_at").groupby("contract_id").tail(1)
    # A new version of every contract, updated after the snapshot month and after its last version...
    amended = latest.assign(
        arr=latest["arr"] * 2 + 12,
        end_date=None,
        updated_at=[max(u, cutoff) + timedelta(days=1) for u in latest["updated_at"]],
    )
    # ... and new contracts (new accounts and existing ones) starting after the snapshot month.
    new = pd.DataFrame(
        [
            fx.contract(f"LATE-{i}", account, "2025-07-01", None, 24000, updated="2025-06-30T23:59:59")
            for i, account in enumerate(["LATE-ACCOUNT", *sorted(set(demo_contracts["account_id"]))[:10]])
        ]
    )
    later = pd.concat([amended.drop(columns=["_run_id", "_source", "_loaded_at"]), new], ignore_index=True)
    load_contracts(url, fx.frame(later.to_dict(orient="records"), run_id="later", loaded_at=datetime(2026, 12, 1)))
    cohorts.compute_snapshot(DEMO_PIT_SNAPSHOT, warehouse_url=url)
    assert snapshot_rows(url, DEMO_PIT_SNAPSHOT) == before


@pytest.mark.postgres
def test_duckdb_and_postgres_give_the_same_rows(tmp_path, pg_database, demo_contracts):
    with warehouse.engine(pg_database).begin() as conn:
        for schema in warehouse.SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
    duck = f"duckdb:///{tmp_path / 'agree.duckdb'}"
    months = (*DEMO_SNAPSHOTS, fx.SNAPSHOT)
    contracts = pd.concat([demo_contracts, fx.frame(fx.CONTRACTS)], ignore_index=True)
    results = {}
    for url in (duck, pg_database):
        load_contracts(url, contracts)
        for month in months:
            cohorts.compute_snapshot(month, warehouse_url=url)
        results[url] = {t.name: rows(url, t) for t in TABLES}
    assert all(results[duck].values())
    for table in results[duck]:
        assert results[duck][table] == results[pg_database][table], table
