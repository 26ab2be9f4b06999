"""Hand-built inputs for the segmentation tests and helpers to load and read them.

Staging rows are built as plain dicts (every staging column filled, load columns
included) and loaded with ``warehouse.insert_frame``; feature rows for rule tests go
straight into ``mart.account_features``. The scenario below (``SCENARIO_*``) is the one
whose features are computed by hand in tests/integration/test_segment_features.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from postsales import warehouse
from postsales.segment import engine as seg
from postsales.segment.rules import FEATURES, SegmentationRules, load_rules

LOADED_AT = datetime(2024, 8, 1, 6, 0)
COMPUTED_AT = datetime(2024, 8, 1, 7, 0)

REQUIRED_OUTPUTS = (
    "firmographic_segment",
    "value_tier",
    "lifecycle_stage",
    "status_segment",
    "adoption_segment",
    "quadrant",
    "engagement_model",
    "case_study_candidate",
)
QUADRANTS = {"Grow", "Protect", "Re-evaluate", "Manage"}


# --- staging rows ------------------------------------------------------------------------


def account(
    account_id: str,
    *,
    updated_at: datetime = datetime(2023, 1, 1, 9, 0),
    created_at: datetime = datetime(2022, 1, 1, 9, 0),
    **overrides: Any,
) -> dict[str, Any]:
    row = {
        "account_id": account_id,
        "name": f"Company {account_id}",
        "industry": "Software",
        "employee_count": 120,
        "annual_revenue": 5_000_000.0,
        "country": "US",
        "created_at": created_at,
        "updated_at": updated_at,
        "wallet_potential_arr": 100_000.0,
        "go_live_date": date(2022, 3, 1),
        "lifecycle_stage": None,
        "referenceable": None,
        "segment_override": None,
    }
    unknown = set(overrides) - set(row)
    assert not unknown, f"unknown account columns {unknown}"
    row.update(overrides)
    return row


def contract(
    contract_id: str,
    account_id: str,
    start: date,
    end: date | None = None,
    arr: float = 12_000.0,
    *,
    updated_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "contract_id": contract_id,
        "account_id": account_id,
        "start_date": start,
        "end_date": end,
        "arr": float(arr),
        "plan": "Growth",
        # by default signed (and loaded) the day before it starts
        "updated_at": updated_at or datetime(start.year, start.month, start.day, 8) - timedelta(days=1),
    }


def nps(account_id: str, at: datetime, score: float) -> dict[str, Any]:
    return {"account_id": account_id, "responded_at": at, "survey_type": "nps", "score": float(score)}


def csat(account_id: str, at: datetime, score: float) -> dict[str, Any]:
    return {"account_id": account_id, "responded_at": at, "survey_type": "csat", "score": float(score)}


def usage(account_id: str, day: date, active: int, seats: int, events: int = 0, features: int = 0) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "usage_date": day,
        "active_users": active,
        "licensed_seats": seats,
        "events": events,
        "features_used": features,
    }


def _frame(table: sa.Table, rows: Iterable[Mapping[str, Any]], loaded_at: datetime, run_id: str) -> pd.DataFrame:
    data_columns = [c.name for c in table.c if not c.name.startswith("_")]
    records = []
    for row in rows:
        unknown = set(row) - set(data_columns)
        assert not unknown, f"{table.fullname}: unknown columns {unknown}"
        record = {name: row.get(name) for name in data_columns}
        record.update(_extra=None, _run_id=run_id, _source="segment-tests", _loaded_at=loaded_at)
        records.append(record)
    columns = [*data_columns, "_extra", "_run_id", "_source", "_loaded_at"]
    # object columns: None stays None (no NaN) and integers stay integers.
    return pd.DataFrame({name: pd.Series([r[name] for r in records], dtype=object) for name in columns})


def load_staging(
    url: str,
    *,
    accounts: Iterable[Mapping[str, Any]] = (),
    contracts: Iterable[Mapping[str, Any]] = (),
    surveys: Iterable[Mapping[str, Any]] = (),
    usage_rows: Iterable[Mapping[str, Any]] = (),
    loaded_at: datetime = LOADED_AT,
    run_id: str = "segment-tests",
) -> None:
    """Append rows to the staging tables (created if missing)."""
    eng = warehouse.engine(url)
    tables = warehouse.ensure_schema(eng)
    with eng.begin() as conn:
        for entity, rows in (
            ("accounts", accounts),
            ("contracts", contracts),
            ("survey_responses", surveys),
            ("usage_daily", usage_rows),
        ):
            rows = list(rows)
            if rows:
                table = tables.staging[entity]
                warehouse.insert_frame(conn, table, _frame(table, rows, loaded_at, run_id))


def reset_postgres(url: str) -> None:
    with warehouse.engine(url).begin() as conn:
        for schema in warehouse.SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))


# --- reading results -----------------------------------------------------------------------


def _by_account(url: str, table: sa.Table, as_of: date) -> dict[str, dict[str, Any]]:
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.as_of_date == as_of)).mappings().all()
    out = {row["account_id"]: dict(row) for row in rows}
    assert len(out) == len(rows), "more than one row per account"
    return out


def features(url: str, as_of: date) -> dict[str, dict[str, Any]]:
    return _by_account(url, seg.account_features, as_of)


def segments(url: str, as_of: date) -> dict[str, dict[str, Any]]:
    return _by_account(url, seg.account_segments, as_of)


def health_components(url: str, as_of: date) -> dict[tuple[str, str], dict[str, Any]]:
    table = seg.health_components
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.as_of_date == as_of)).mappings().all()
    return {(row["account_id"], row["component"]): dict(row) for row in rows}


def data_gaps(url: str, as_of: date) -> set[tuple[str, str, str | None]]:
    """mart.account_data_gaps of the date as (account_id, field, dimension)."""
    table = seg.account_data_gaps
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(
            sa.select(table.c.account_id, table.c.field, table.c.dimension).where(table.c.as_of_date == as_of)
        ).all()
    assert len(rows) == len(set(rows)), "a gap recorded twice"
    return {tuple(row) for row in rows}


def query_features(url: str, as_of: date, rules: SegmentationRules | None = None) -> dict[str, dict[str, Any]]:
    """account_features.sql for ``as_of`` without writing anything."""
    rules = rules or load_rules()
    with warehouse.engine(url).connect() as conn:
        rows = warehouse.query(
            conn,
            "segment",
            "account_features",
            as_of_date=as_of,
            nps_window_days=rules.windows.nps_days,
            csat_window_days=rules.windows.csat_days,
            usage_window_days=rules.windows.usage_days,
        )
    return {row._mapping["account_id"]: dict(row._mapping) for row in rows}


# --- rule evaluation straight from feature rows --------------------------------------------


def feature_row(account_id: str, **values: Any) -> dict[str, Any]:
    """A mart.account_features row: every feature missing unless given."""
    unknown = set(values) - set(FEATURES)
    assert not unknown, f"unknown features {unknown}"
    row: dict[str, Any] = dict.fromkeys(FEATURES)
    row.update(values, account_id=account_id)
    return row


def prepare_marts(url: str) -> sa.Engine:
    eng = warehouse.engine(url)
    warehouse.ensure_schema(eng)
    seg.ensure_tables(eng)
    return eng


def evaluate(
    url: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    as_of: date = date(2024, 6, 30),
    rules: SegmentationRules | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Insert feature rows for ``as_of`` and run the compiled rules on them.

    Returns (segments by account, health components by (account, component)); nothing
    but the feature rows is written.
    """
    rules = rules or load_rules()
    eng = prepare_marts(url)
    rows = [{**row, "as_of_date": as_of} for row in rows]
    params = {"as_of_date": as_of, "computed_at": COMPUTED_AT}
    with eng.begin() as conn:
        conn.execute(seg.account_features.delete().where(seg.account_features.c.as_of_date == as_of))
        conn.execute(seg.account_features.insert(), rows)
        out = conn.execute(seg.compile_segments(rules, eng.dialect.name), params).mappings().all()
        parts = conn.execute(seg.compile_health_components(rules), params).mappings().all()
    by_account = {row["account_id"]: dict(row) for row in out}
    assert len(by_account) == len(out) == len(rows), "one output row per feature row"
    return by_account, {(row["account_id"], row["component"]): dict(row) for row in parts}


# --- comparing -----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Comparable Python values: floats (not Decimal / numpy), ISO dates, parsed JSON."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def close(left: Any, right: Any, path: str = "", tol: float = 1e-9) -> list[str]:
    """Differences between two plain structures (floats within a relative ``tol``)."""
    left, right = plain(left), plain(right)
    if isinstance(left, dict) and isinstance(right, dict):
        diffs = [f"{path}: keys {sorted(set(left) ^ set(right))}"] if set(left) != set(right) else []
        for key in sorted(set(left) & set(right)):
            diffs += close(left[key], right[key], f"{path}.{key}", tol)
        return diffs
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True)) for d in close(a, b, f"{path}[{i}]", tol)]
    if isinstance(left, float) and isinstance(right, float):
        return [] if math.isclose(left, right, rel_tol=tol, abs_tol=tol) else [f"{path}: {left!r} != {right!r}"]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]


def comparable_segments(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Segment rows without computed_at and with the explanation parsed."""
    out = {}
    for account_id, row in rows.items():
        row = {k: v for k, v in row.items() if k != "computed_at"}
        row["explanation"] = json.loads(row["explanation"])
        out[account_id] = row
    return out


# --- the hand-computed scenario (as of SCENARIO_AS_OF) ---------------------------------------

SCENARIO_AS_OF = date(2024, 6, 30)


def scenario() -> dict[str, list[dict[str, Any]]]:
    """Staging rows for the features test; expected values are derived in that test."""
    return {
        "accounts": [
            # A: contracts of every kind, surveys on the window edges, usage in both windows.
            account("A", industry="Healthcare", employee_count=150, wallet_potential_arr=60_000.0, referenceable=True),
            # B: three versions; the one updated last before the next day wins.
            account("B", updated_at=datetime(2024, 5, 1), employee_count=50, go_live_date=None),
            account(
                "B",
                updated_at=datetime(2024, 6, 30, 23, 0),
                employee_count=100,
                go_live_date=None,
                wallet_potential_arr=None,
            ),
            account("B", updated_at=datetime(2024, 7, 5), employee_count=999, industry="Retail", go_live_date=None),
            # C: every version was updated after the as-of date: the earliest is used.
            account("C", updated_at=datetime(2024, 7, 10), employee_count=10, go_live_date=date(2024, 6, 1)),
            account("C", updated_at=datetime(2024, 8, 1), employee_count=20, go_live_date=date(2024, 6, 1)),
            # D: its only contract ended the day before: not a customer.
            account("D"),
            # E: its only contract starts the day after: not a customer.
            account("E"),
        ],
        "contracts": [
            contract("A-1", "A", date(2023, 1, 15), date(2024, 6, 30), 10_000),  # ends on the as-of date: active
            contract("A-2", "A", date(2024, 2, 1), None, 5_000),  # evergreen
            contract("A-3", "A", date(2024, 7, 1), date(2025, 6, 30), 7_000),  # starts after the as-of date
            contract("A-4", "A", date(2022, 1, 1), date(2024, 6, 29), 2_000),  # ended the day before
            contract("B-1", "B", date(2024, 1, 31), None, 30_000),
            contract("C-1", "C", date(2024, 6, 30), date(2025, 6, 29), 24_000),  # starts on the as-of date
            contract("C-2", "C", date(2024, 6, 1), date(2024, 12, 31), 1_000, updated_at=datetime(2024, 5, 20)),
            # a later version of C-2 (updated after the as-of date) is ignored
            contract("C-2", "C", date(2024, 6, 1), date(2024, 12, 31), 9_999, updated_at=datetime(2024, 7, 15)),
            contract("D-1", "D", date(2023, 1, 1), date(2024, 6, 29), 8_000),
            contract("E-1", "E", date(2024, 7, 1), None, 8_000),
        ],
        "surveys": [
            nps("A", datetime(2023, 7, 1, 23, 59), 10),  # before the 365-day window
            nps("A", datetime(2023, 7, 2, 0, 0), 6),  # first instant of the window
            nps("A", datetime(2024, 1, 10, 12, 0), 8),
            nps("A", datetime(2024, 6, 30, 23, 0), 3),  # latest in the window
            nps("A", datetime(2024, 7, 1, 0, 0), 10),  # the next day: after the as-of date
            csat("A", datetime(2024, 1, 2, 23, 59), 1),  # before the 180-day window
            csat("A", datetime(2024, 1, 3, 0, 0), 4),
            csat("A", datetime(2024, 6, 15, 9, 0), 5),
            csat("A", datetime(2024, 7, 1, 0, 0), 1),  # after
            nps("C", datetime(2024, 6, 20, 10, 0), 9),
            nps("C", datetime(2024, 6, 20, 10, 0), 7),  # same instant: the lower score counts
        ],
        "usage": [
            usage("A", date(2024, 7, 1), 100, 100, 1000, 50),  # after the as-of date
            usage("A", date(2024, 6, 30), 8, 10, 80, 10),  # recent window: 2024-04-02 .. 2024-06-30
            usage("A", date(2024, 4, 2), 4, 10, 20, 4),
            usage("A", date(2024, 4, 1), 5, 10, 50, 3),  # previous window: 2024-01-03 .. 2024-04-01
            usage("A", date(2024, 1, 3), 3, 10, 10, 3),
            usage("A", date(2024, 1, 2), 100, 100, 1000, 50),  # before both windows
            usage("C", date(2024, 6, 30), 0, 5, 0, 0),  # zero activity: events per user undefined
        ],
    }


def load_scenario(url: str) -> None:
    data = scenario()
    load_staging(
        url, accounts=data["accounts"], contracts=data["contracts"], surveys=data["surveys"], usage_rows=data["usage"]
    )


# --- accounts on the 2x2 (tests/integration/test_segmentation_report.py) -------------------


def store_segments(url: str, rows: Iterable[Mapping[str, Any]], as_of: date, rules: SegmentationRules | None = None):
    """Insert feature rows for ``as_of`` and store their segments, as compute_segments does."""
    rules = rules or load_rules()
    eng = prepare_marts(url)
    rows = [{**row, "as_of_date": as_of} for row in rows]
    with eng.begin() as conn:
        conn.execute(seg.account_features.delete().where(seg.account_features.c.as_of_date == as_of))
        conn.execute(seg.account_segments.delete().where(seg.account_segments.c.as_of_date == as_of))
        conn.execute(seg.account_features.insert(), rows)
        conn.execute(
            seg.account_segments.insert().from_select(
                [col.name for col in seg.account_segments.c], seg.compile_segments(rules, eng.dialect.name)
            ),
            {"as_of_date": as_of, "computed_at": COMPUTED_AT},
        )


def plane_account(account_id: str, wallet: float | None, arr: float, **values: Any) -> dict[str, Any]:
    """A feature row placed by its wallet and ARR: mature (30 months), flat, passive NPS, content;
    every input of the quadrant's refinements given, so only ``values`` change them."""
    inputs = {
        "account_known": True,
        "name": f"Company {account_id}",
        "arr": arr,
        "wallet_potential_arr": wallet,
        "wallet_share": None if not wallet else arr / wallet,
        "unrealized_wallet": None if not wallet else wallet - arr,
        "tenure_months": 30,
        "arr_growth_365d": 0.0,
        "arr_change_90d": 0.0,
        "nps_latest": 8,
        "csat_avg": 4.0,
        "usage_trend": 1.0,
    }
    return feature_row(account_id, **(inputs | values))


# Share threshold 0.8 (−10 %: 0.72, +10 %: 0.88); wallet threshold 25,000 (−10 %: 22,500, +10 %: 27,500).
PLANE_ACCOUNTS = [
    plane_account("A", 100_000, 20_000),  # share 0.20: Grow; SMB in Grow: pooled
    plane_account("B", 60_000, 54_000),  # 0.90: Protect; Mid-Market: high-touch
    plane_account("C", 60_000, 46_000),  # 0.767: Grow; at 0.72 Protect
    plane_account("D", 60_000, 45_000, tenure_months=6),  # 0.75: Grow; at 0.72 still Grow (first year)
    plane_account("E", 23_000, 20_000),  # small wallet, 0.87: Manage; at 22,500 Protect
    plane_account("F", 26_000, 5_000),  # 0.19: Grow; at 27,500 Manage
    plane_account("G", 27_000, 5_000, nps_latest=3),  # Re-evaluate over Grow; at 27,500 Manage
    plane_account("H", 24_000, 1_000, nps_latest=3),  # small wallet: Manage; at 22,500 Re-evaluate
    plane_account("I", 300_000, 250_000),  # 0.833: Protect; Enterprise: high-touch; at 0.88 Grow
    plane_account("J", None, 10_000),  # no wallet: Unclassified
]
