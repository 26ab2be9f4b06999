"""Segments as of a date depend only on what was known by the end of that date."""

from __future__ import annotations

from datetime import date, datetime

import segment_fixtures as fx
from postsales.segment.engine import compute_segments

AS_OF = fx.SCENARIO_AS_OF  # 2024-06-30
LATER = datetime(2024, 9, 1, 6, 0)  # when the later rows are loaded


def _snapshot(url: str) -> dict:
    return {
        "features": fx.features(url, AS_OF),
        "segments": fx.comparable_segments(fx.segments(url, AS_OF)),
        "components": fx.health_components(url, AS_OF),
    }


def _later_rows() -> dict:
    """Everything here is dated after the as-of date."""
    return {
        "accounts": [
            # A new version of A from the first instant of the next day: another industry, size,
            # wallet, go-live and a CRM tier override.
            fx.account(
                "A",
                updated_at=datetime(2024, 7, 1, 0, 0),
                industry="Retail",
                employee_count=5000,
                wallet_potential_arr=1_000_000.0,
                go_live_date=date(2024, 6, 1),
                referenceable=False,
                segment_override="Enterprise",
            ),
            # A later version of C, whose versions were all updated after the as-of date anyway.
            fx.account("C", updated_at=datetime(2024, 9, 1), employee_count=7000),
            # B gets a version too.
            fx.account("B", updated_at=datetime(2024, 8, 1), employee_count=4000, go_live_date=date(2024, 7, 15)),
            # A new account created the next day, whose contract starts then. (A contract back-dated
            # to before the as-of date would count when the date is recomputed, as it does in the
            # cohort snapshot: the fallback to a contract's earliest version, tested in
            # test_customers_and_segments.py.)
            fx.account("N", created_at=datetime(2024, 7, 1, 0, 0), updated_at=datetime(2024, 7, 1, 0, 0)),
        ],
        "contracts": [
            fx.contract("A-5", "A", date(2024, 7, 15), None, 50_000, updated_at=datetime(2024, 7, 10)),
            fx.contract("B-2", "B", date(2024, 8, 1), date(2025, 7, 31), 70_000, updated_at=datetime(2024, 7, 20)),
            fx.contract("D-2", "D", date(2024, 7, 1), None, 8_000, updated_at=datetime(2024, 7, 1, 0, 0)),
            # A-1 re-recorded later with another ARR and end date: the version known on the day counts.
            fx.contract("A-1", "A", date(2023, 1, 15), date(2024, 6, 29), 99_999, updated_at=datetime(2024, 7, 2)),
            fx.contract("N-1", "N", date(2024, 7, 1), None, 40_000, updated_at=datetime(2024, 7, 1, 12, 0)),
        ],
        "surveys": [
            fx.nps("A", datetime(2024, 7, 1, 0, 0), 0),
            fx.nps("B", datetime(2024, 7, 1, 0, 0), 1),
            fx.csat("B", datetime(2024, 7, 2, 9, 0), 1),
            fx.nps("C", datetime(2024, 7, 5, 9, 0), 0),
            fx.csat("C", datetime(2024, 8, 5, 9, 0), 5),
            fx.nps("N", datetime(2024, 7, 5, 9, 0), 10),
        ],
        "usage": [
            fx.usage("A", date(2024, 7, 2), 50, 10, 5000, 40),
            fx.usage("B", date(2024, 7, 1), 9, 10, 900, 20),
            fx.usage("C", date(2024, 7, 1), 5, 5, 50, 2),
            fx.usage("N", date(2024, 7, 2), 1, 1, 1, 1),
        ],
    }


def test_later_data_does_not_change_an_earlier_as_of_date(warehouse_url):
    fx.load_scenario(warehouse_url)
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    before = _snapshot(warehouse_url)
    assert sorted(before["segments"]) == ["A", "B", "C"]

    later = _later_rows()
    fx.load_staging(
        warehouse_url,
        accounts=later["accounts"],
        contracts=later["contracts"],
        surveys=later["surveys"],
        usage_rows=later["usage"],
        loaded_at=LATER,
        run_id="later",
    )
    # the later rows are there and do count for a later date
    after_date = fx.query_features(warehouse_url, date(2024, 9, 1))
    assert sorted(after_date) == ["A", "B", "C", "D", "E", "N"]
    assert after_date["A"]["industry"] == "Retail"

    compute_segments(AS_OF, warehouse_url=warehouse_url)
    assert _snapshot(warehouse_url) == before


def test_a_later_version_moving_a_start_date_back_does_not_change_the_past(warehouse_url):
    fx.load_staging(
        warehouse_url,
        accounts=[fx.account("S")],
        contracts=[
            fx.contract("S-1", "S", date(2023, 1, 1), None, 10_000),
            # signed on 2024-06-10 to start 2024-08-01: not active on 2024-06-30
            fx.contract("S-2", "S", date(2024, 8, 1), None, 90_000, updated_at=datetime(2024, 6, 10)),
        ],
    )
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    before = fx.features(warehouse_url, AS_OF)["S"]
    assert (before["arr"], before["active_contracts"]) == (10_000, 1)

    # On 2024-07-05 the CRM backdates S-2's start to 2024-06-01.
    fx.load_staging(
        warehouse_url,
        contracts=[fx.contract("S-2", "S", date(2024, 6, 1), None, 90_000, updated_at=datetime(2024, 7, 5))],
        loaded_at=LATER,
    )
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    after = fx.features(warehouse_url, AS_OF)["S"]
    assert (after["arr"], after["active_contracts"]) == (10_000, 1)
