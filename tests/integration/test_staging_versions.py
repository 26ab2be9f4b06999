"""staging.contract_versions / staging.account_versions: the one point-in-time rule every query uses."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import sqlalchemy as sa

import segment_fixtures as fx
from postsales import warehouse

AS_OF = """
select {key}, {column}
from staging.{entity}_versions
where
    (valid_from is null or valid_from < :next_day)
    and (valid_to is null or valid_to >= :next_day)
"""


def _as_of(url: str, entity: str, key: str, column: str, next_day: date) -> list[tuple]:
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(sa.text(AS_OF.format(key=key, column=column, entity=entity)), {"next_day": next_day})
        return sorted((row[0], float(row[1]) if isinstance(row[1], float) else row[1]) for row in rows)


def test_contract_versions_by_hand(warehouse_url):
    jan_load, feb_load = datetime(2024, 1, 20), datetime(2024, 2, 20)
    # C-1: version of 10 Jan loaded twice (the later load says 2,000), then one of 5 Mar.
    fx.load_staging(
        warehouse_url,
        contracts=[fx.contract("C-1", "A", date(2023, 1, 1), arr=1_000, updated_at=datetime(2024, 1, 10))],
        loaded_at=jan_load,
    )
    fx.load_staging(
        warehouse_url,
        contracts=[
            fx.contract("C-1", "A", date(2023, 1, 1), arr=2_000, updated_at=datetime(2024, 1, 10)),
            fx.contract("C-2", "A", date(2023, 6, 1), arr=500, updated_at=datetime(2024, 2, 15)),
        ],
        loaded_at=feb_load,
    )
    fx.load_staging(
        warehouse_url,
        contracts=[fx.contract("C-1", "A", date(2023, 1, 1), arr=3_000, updated_at=datetime(2024, 3, 5, 12))],
        loaded_at=datetime(2024, 3, 6),
    )

    with warehouse.engine(warehouse_url).connect() as conn:
        spans = conn.execute(
            sa.text("select contract_id, arr, valid_from, valid_to from staging.contract_versions order by 1, 3, 2")
        ).all()
    # Every loaded row is there; the first load of 10 Jan, superseded by the second, has an empty span.
    assert [(row[0], float(row[1]), row[2], row[3]) for row in spans] == [
        ("C-1", 1_000.0, datetime(2024, 1, 10), datetime(2024, 1, 10)),
        ("C-1", 3_000.0, datetime(2024, 3, 5, 12), None),
        ("C-1", 2_000.0, None, datetime(2024, 3, 5, 12)),
        ("C-2", 500.0, None, None),
    ]

    def arr(next_day: date) -> list[tuple]:
        return _as_of(warehouse_url, "contract", "contract_id", "arr", next_day)

    # Before any version: the earliest stands for the contract (C-1's later load of 10 Jan).
    assert arr(date(2024, 1, 1)) == [("C-1", 2_000.0), ("C-2", 500.0)]
    assert arr(date(2024, 1, 11)) == [("C-1", 2_000.0), ("C-2", 500.0)]
    assert arr(date(2024, 3, 5)) == [("C-1", 2_000.0), ("C-2", 500.0)]  # 5 Mar 12:00 not known at 00:00
    assert arr(date(2024, 3, 6)) == [("C-1", 3_000.0), ("C-2", 500.0)]
    assert arr(date(2030, 1, 1)) == [("C-1", 3_000.0), ("C-2", 500.0)]


def test_versions_agree_with_the_rule_on_random_histories(warehouse_url):
    """Against the rule written independently: the latest version with updated_at before the
    next day (ties: latest load), else the earliest version (ties: latest load)."""
    rng = random.Random(7)
    base = datetime(2024, 1, 1)
    loads: dict[datetime, list[dict]] = {}
    history: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for n in range(40):
        account_id = f"A{n:02d}"
        for version in range(rng.randint(1, 4)):
            updated_at = base + timedelta(days=rng.choice([0, 3, 3, 10, 31, 45]), hours=rng.choice([0, 12]))
            loaded_at = base + timedelta(days=60 + version, minutes=n)
            industry = f"{account_id}-v{version}"
            history.setdefault(account_id, []).append((updated_at, loaded_at, industry))
            loads.setdefault(loaded_at, []).append(fx.account(account_id, updated_at=updated_at, industry=industry))
    for loaded_at, rows in sorted(loads.items()):
        fx.load_staging(warehouse_url, accounts=rows, loaded_at=loaded_at)

    for days in (-1, 0, 1, 3, 4, 10, 11, 31, 32, 45, 46, 90):
        next_day = (base + timedelta(days=days)).date()
        expected = []
        for account_id, versions in history.items():
            known = [v for v in versions if v[0] < datetime.combine(next_day, datetime.min.time())]
            if known:
                pick = max(known, key=lambda v: (v[0], v[1]))
            else:
                earliest = min(v[0] for v in versions)
                pick = max((v for v in versions if v[0] == earliest), key=lambda v: v[1])
            expected.append((account_id, pick[2]))
        assert _as_of(warehouse_url, "account", "account_id", "industry", next_day) == sorted(expected), next_day
