"""account_features.sql on a hand-built staging set, every value derived by hand.

As of 2024-06-30 (2024 is a leap year): 90 days before is 2024-04-01, 365 days before is
2023-07-01; the NPS window (365 days ending with the as-of date) starts 2023-07-02, the
CSAT window (180 days) starts 2024-01-03; the usage window is 2024-04-02 .. 2024-06-30 and
the one before it 2024-01-03 .. 2024-04-01.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

import segment_fixtures as fx
from postsales.segment.engine import compute_segments

AS_OF = fx.SCENARIO_AS_OF

EXPECTED = {
    "A": {
        "name": "Company A",
        "industry": "Healthcare",
        "employee_count": 150,
        "annual_revenue": 5_000_000,
        "wallet_potential_arr": 60_000,
        "go_live_date": date(2022, 3, 1),
        "referenceable": True,
        "segment_override": None,
        # contracts A-1 (2023-01-15..2024-06-30, 10k), A-2 (evergreen from 2024-02-01, 5k),
        # A-4 (2022-01-01..2024-06-29, 2k); A-3 starts 2024-07-01 and is not counted at all.
        "customer_since": date(2022, 1, 1),
        "active_contracts": 2,  # A-1 (end date inclusive) and A-2
        "arr": 15_000,  # 10k + 5k
        "arr_90d_ago": 17_000,  # 2024-04-01: A-1 + A-2 + A-4
        "arr_365d_ago": 12_000,  # 2023-07-01: A-1 + A-4
        "arr_change_90d": -2_000,
        "arr_growth_365d": 0.25,  # 15k / 12k - 1
        "arr_percentile": 0.0,  # lowest ARR of the three customers
        "wallet_share": 0.25,  # 15k / 60k
        "unrealized_wallet": 45_000,
        "tenure_days": 911,  # 2022-01-01 .. 2024-06-30: 365 + 365 + 181
        "tenure_months": 29,  # 2 years 5 months 29 days
        "days_since_go_live": 852,  # 2022-03-01 .. 2024-06-30: 365 + 366 + 121
        "next_renewal_date": date(2024, 6, 30),  # A-1 ends today; A-2 is evergreen
        "days_to_renewal": 0,
        "nps_latest": 3,  # 2024-06-30 23:00; the 10 at 2024-07-01 00:00 is tomorrow's
        "nps_avg": 17 / 3,  # 6 (2023-07-02 00:00) + 8 + 3; the 10 of 2023-07-01 is outside
        "nps_responses": 3,
        "csat_avg": 4.5,  # 4 (2024-01-03 00:00) and 5; the 1 of 2024-01-02 is outside
        "csat_responses": 2,
        "usage_days": 2,  # 2024-04-02 and 2024-06-30
        "avg_active_users": 6,  # (8 + 4) / 2
        "avg_licensed_seats": 10,
        "seat_utilization": 0.6,  # (8 + 4) / (10 + 10)
        "events_per_active_user": 100 / 12,  # (80 + 20) / (8 + 4)
        "avg_features_used": 7,  # (10 + 4) / 2
        "avg_active_users_previous": 4,  # (5 + 3) / 2: 2024-04-01 and 2024-01-03
        "usage_trend": 1.5,  # 6 / 4
    },
    "B": {
        # version updated 2024-06-30 23:00 (not 2024-05-01, not 2024-07-05)
        "industry": "Software",
        "employee_count": 100,
        "wallet_potential_arr": None,
        "go_live_date": None,
        "customer_since": date(2024, 1, 31),
        "active_contracts": 1,
        "arr": 30_000,
        "arr_90d_ago": 30_000,
        "arr_365d_ago": 0,
        "arr_change_90d": 0,
        "arr_growth_365d": None,  # no ARR a year ago
        "arr_percentile": 1.0,
        "wallet_share": None,
        "unrealized_wallet": None,
        "tenure_days": 151,
        "tenure_months": 4,  # 2024-01-31 .. 2024-06-30: the 31st has not come round
        "days_since_go_live": None,
        "next_renewal_date": None,  # evergreen
        "days_to_renewal": None,
        "nps_latest": None,
        "nps_avg": None,
        "nps_responses": 0,
        "csat_avg": None,
        "csat_responses": 0,
        "usage_days": 0,
        "avg_active_users": None,
        "seat_utilization": None,
        "events_per_active_user": None,
        "usage_trend": None,
    },
    "C": {
        # both versions updated after the as-of date: the earliest (2024-07-10)
        "employee_count": 10,
        "go_live_date": date(2024, 6, 1),
        # C-1 starts on the as-of date (24k, ends 2025-06-29); C-2 as known on 2024-05-20 (1k, ends 2024-12-31)
        "customer_since": date(2024, 6, 1),
        "active_contracts": 2,
        "arr": 25_000,
        "arr_90d_ago": 0,
        "arr_365d_ago": 0,
        "arr_change_90d": 25_000,
        "arr_growth_365d": None,
        "arr_percentile": 0.5,
        "wallet_share": 0.25,  # 25k / 100k
        "unrealized_wallet": 75_000,
        "tenure_days": 29,
        "tenure_months": 0,
        "days_since_go_live": 29,
        "next_renewal_date": date(2024, 12, 31),  # the nearer of the two end dates
        "days_to_renewal": 184,
        "nps_latest": 7,  # 9 and 7 at the same instant: the lower
        "nps_avg": 8,
        "nps_responses": 2,
        "usage_days": 1,
        "avg_active_users": 0,
        "seat_utilization": 0,
        "events_per_active_user": None,  # no active users
        "avg_features_used": 0,
        "avg_active_users_previous": None,
        "usage_trend": None,
    },
}


def _check(actual: dict, expected: dict) -> None:
    problems = []
    for account_id, values in expected.items():
        assert account_id in actual, f"{account_id} missing; got {sorted(actual)}"
        row = actual[account_id]
        for name, value in values.items():
            got = row[name]
            if isinstance(value, int | float) and not isinstance(value, bool) and got is not None:
                ok = float(got) == pytest.approx(value, rel=1e-12, abs=1e-12)
            else:
                ok = got == value
            if not ok:
                problems.append(f"{account_id}.{name}: expected {value!r}, got {got!r}")
    assert not problems, "\n".join(problems)


def test_features_computed_by_hand(warehouse_url):
    fx.load_scenario(warehouse_url)
    result = compute_segments(AS_OF, warehouse_url=warehouse_url)
    assert result["accounts"] == 3

    features = fx.features(warehouse_url, AS_OF)
    # D's only contract ended the day before, E's starts the day after: not customers.
    assert sorted(features) == ["A", "B", "C"]
    assert {row["as_of_date"] for row in features.values()} == {AS_OF}
    _check(features, EXPECTED)


def test_health_components_of_the_scenario(warehouse_url):
    fx.load_scenario(warehouse_url)
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    parts = fx.health_components(warehouse_url, AS_OF)
    assert len(parts) == 3 * 5
    expected_a = {
        # component: (feature, input, score, weight)
        "usage": ("seat_utilization", 0.6, 250 / 3, 0.30),  # (0.6 - 0.1) / 0.6
        "adoption_trend": ("usage_trend", 1.5, 100, 0.15),  # 160, clipped
        "nps": ("nps_latest", 3, 30, 0.25),
        "csat": ("csat_avg", 4.5, 87.5, 0.15),  # (4.5 - 1) / 4
        "contract_trend": ("arr_growth_365d", 0.25, 275 / 3, 0.15),  # (0.25 + 0.3) / 0.6
    }
    for component, (feature, value, score, weight) in expected_a.items():
        row = parts[("A", component)]
        assert row["feature"] == feature
        assert row["input_value"] == pytest.approx(value)
        assert row["score"] == pytest.approx(score)
        assert row["weight"] == pytest.approx(weight)
        assert row["rules_version"] == "2026.12.0"
    # C: utilisation 0 scores 0 (clipped from -16.7); NPS 7 scores 70; the rest are missing.
    assert parts[("C", "usage")]["score"] == 0
    assert parts[("C", "nps")]["score"] == pytest.approx(70)
    assert [parts[("C", c)]["score"] for c in ("adoption_trend", "csat", "contract_trend")] == [None] * 3
    assert all(parts[("B", c)]["input_value"] is None and parts[("B", c)]["score"] is None for c in expected_a)

    segments = fx.segments(warehouse_url, AS_OF)
    # A: 0.3 * 83.33 + 0.15 * 100 + 0.25 * 30 + 0.15 * 87.5 + 0.15 * 91.67 = 25 + 15 + 7.5 + 13.125 + 13.75
    assert segments["A"]["health_score"] == pytest.approx(74.375)
    assert segments["A"]["health_band"] == "Healthy"
    # C: usage + nps carry 0.55 of the weight, below min_coverage 0.6; B has no component at all.
    assert segments["C"]["health_score"] is None
    assert segments["C"]["health_band"] == "Unknown"
    assert segments["B"]["health_score"] is None
    assert segments["B"]["health_band"] == "Unknown"


@pytest.mark.parametrize(
    ("as_of", "tenure_months", "tenure_days"),
    [
        (date(2024, 1, 31), 0, 0),  # the first day
        (date(2024, 2, 29), 0, 29),  # the 31st never comes in February
        (date(2024, 3, 1), 1, 30),
        (date(2024, 3, 30), 1, 59),
        (date(2024, 3, 31), 2, 60),
        (date(2025, 1, 30), 11, 365),
        (date(2025, 1, 31), 12, 366),
    ],
)
def test_tenure_months_counts_whole_calendar_months(duckdb_url, as_of, tenure_months, tenure_days):
    fx.load_staging(
        duckdb_url,
        accounts=[fx.account("T")],
        contracts=[fx.contract("T-1", "T", date(2024, 1, 31), None, 1_000)],
    )
    row = fx.query_features(duckdb_url, as_of)["T"]
    assert (row["tenure_months"], row["tenure_days"]) == (tenure_months, tenure_days)


def test_tenure_months_on_both_backends(warehouse_url):
    fx.load_staging(
        warehouse_url,
        accounts=[fx.account("T")],
        contracts=[fx.contract("T-1", "T", date(2024, 1, 31), None, 1_000)],
    )
    assert fx.query_features(warehouse_url, date(2024, 2, 29))["T"]["tenure_months"] == 0
    assert fx.query_features(warehouse_url, date(2024, 3, 1))["T"]["tenure_months"] == 1


def test_customers_are_the_accounts_paying_on_the_day_as_in_cohorts(warehouse_url):
    """The population comes from the contracts (ARR > 0 on the day), not from the account rows."""
    fx.load_staging(
        warehouse_url,
        accounts=[
            fx.account("P"),
            fx.account("PAID"),
            fx.account("N", created_at=datetime(2024, 7, 1, 0, 0), updated_at=datetime(2024, 7, 1, 0, 0)),
        ],
        contracts=[
            # a zero-ARR pilot alone: no MRR, not a customer (cohorts do not count it either)
            fx.contract("P-1", "P", date(2024, 6, 1), date(2024, 8, 31), 0),
            # a paid contract next to a zero-ARR one: a customer, both contracts active
            fx.contract("PAID-1", "PAID", date(2024, 1, 1), None, 6_000),
            fx.contract("PAID-2", "PAID", date(2024, 6, 1), date(2024, 8, 31), 0),
            # the CRM created N's record after its contract started: the contract makes it a customer,
            # and the only row of N (a version from after the as-of date) stands in for its attributes
            fx.contract("N-1", "N", date(2024, 6, 1), None, 5_000),
            # Q has no account row at all (say, quarantined): still a customer, its attributes missing
            fx.contract("Q-1", "Q", date(2024, 5, 1), None, 7_000),
        ],
    )
    features = fx.query_features(warehouse_url, AS_OF)
    assert sorted(features) == ["N", "PAID", "Q"]
    assert (features["PAID"]["arr"], features["PAID"]["active_contracts"]) == (6_000, 2)
    assert features["N"]["account_known"] is True and features["N"]["industry"] == "Software"
    assert features["Q"]["account_known"] is False
    assert [features["Q"][f] for f in ("name", "industry", "employee_count", "wallet_potential_arr")] == [None] * 4
    q = features["Q"]
    assert (q["arr"], q["wallet_share"], q["unrealized_wallet"]) == (7_000, None, None)


def test_arr_is_summed_exactly_so_equal_arr_ties(warehouse_url):
    # In doubles 10,000.1 + 20,000.2 != 30,000.3, and the order threads add in varies from run to
    # run; summed exactly, T2's two contracts equal T1's one and the two share a percentile.
    fx.load_staging(
        warehouse_url,
        accounts=[fx.account("T1"), fx.account("T2"), fx.account("LOW")],
        contracts=[
            fx.contract("T1-1", "T1", date(2024, 1, 1), None, 30_000.3),
            fx.contract("T2-1", "T2", date(2024, 1, 1), None, 10_000.1),
            fx.contract("T2-2", "T2", date(2024, 2, 1), None, 20_000.2),
            fx.contract("LOW-1", "LOW", date(2024, 1, 1), None, 1_000),
        ],
    )
    features = fx.query_features(warehouse_url, AS_OF)
    assert features["T1"]["arr"] == features["T2"]["arr"] == 30_000.3
    assert features["T1"]["arr_percentile"] == features["T2"]["arr_percentile"] == 0.5
    assert features["LOW"]["arr_percentile"] == 0.0


def test_a_warehouse_created_before_account_known_gets_the_column(warehouse_url):
    import sqlalchemy as sa

    eng = fx.prepare_marts(warehouse_url)
    with eng.begin() as conn:
        conn.execute(sa.text("alter table mart.account_features drop column account_known"))
    fx.load_staging(warehouse_url, accounts=[fx.account("T")], contracts=[fx.contract("T-1", "T", date(2024, 1, 1))])
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    assert fx.features(warehouse_url, AS_OF)["T"]["account_known"] is True
