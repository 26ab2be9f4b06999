"""include/sql/reports/quadrant_summary.sql: the 2x2 per quadrant, on accounts placed by the
shipped rules (share of wallet 0.8, wallet size 25,000), every figure worked out by hand."""

from __future__ import annotations

from datetime import date

import segment_fixtures as fx
from postsales import warehouse
from postsales.reports.segmentation_report import capacity_weights
from postsales.segment import engine as seg

FIRST, LATER = date(2024, 1, 1), date(2024, 7, 1)  # 182 days: past the 180-day Re-evaluate limit


def features(wallet: float | None, arr: float, tenure: int, **values) -> dict:
    return {
        "account_known": True,
        "wallet_potential_arr": wallet,
        "arr": arr,
        "wallet_share": arr / wallet if wallet else None,
        "tenure_months": tenure,
        **values,
    }


ACCOUNTS = {
    "G1": features(200_000, 20_000, 2),  # Grow: share 0.1, 180k unrealised
    "G2": features(100_000, 40_000, 24),  # Grow: share 0.4, 60k unrealised
    "P1": features(60_000, 54_000, 30, nps_latest=8),  # Protect: share 0.9, 6k unrealised
    "P2": features(40_000, 60_000, 24),  # Protect: share 1.5, nothing unrealised (not -20k)
    "R1": features(60_000, 54_000, 30, nps_latest=5),  # Re-evaluate over Protect: 0.9, 6k
    "M1": features(10_000, 9_000, 30),  # Manage: share 0.9, 1k
    "M2": features(10_000, 3_000, 2),  # Manage: share 0.3, 7k
    "U1": features(None, 50_000, 30),  # Unclassified: no wallet potential
}


def segment(url: str, as_of: date) -> None:
    rows, _ = fx.evaluate(url, [fx.feature_row(a, **values) for a, values in ACCOUNTS.items()], as_of=as_of)
    with warehouse.engine(url).begin() as conn:
        conn.execute(seg.account_segments.insert(), list(rows.values()))


def test_quadrant_summary_by_hand(warehouse_url):
    segment(warehouse_url, FIRST)
    segment(warehouse_url, LATER)  # R1 has been in Re-evaluate since FIRST: recommended Manage
    with warehouse.engine(warehouse_url).connect() as conn:
        rows = [
            dict(r._mapping)
            for r in warehouse.query(conn, "reports", "quadrant_summary", as_of_date=LATER, **capacity_weights())
        ]
    total_arr = 290_000  # 20 + 40 + 54 + 60 + 54 + 9 + 3 + 50 thousand
    expected = [
        # quadrant, accounts, ARR, wallet, unrealised, mean share, to move, part of accounts, of ARR
        ("Grow", 2, 60_000, 300_000, 240_000, 0.25, 0, 2 / 8, 60_000 / total_arr),
        ("Protect", 2, 114_000, 100_000, 6_000, 1.2, 0, 2 / 8, 114_000 / total_arr),
        ("Re-evaluate", 1, 54_000, 60_000, 6_000, 0.9, 1, 1 / 8, 54_000 / total_arr),
        ("Manage", 2, 12_000, 20_000, 8_000, 0.6, 0, 2 / 8, 12_000 / total_arr),
        ("Unclassified", 1, 50_000, None, None, None, 0, 1 / 8, 50_000 / total_arr),
    ]
    columns = ["quadrant", "account_count", "arr", "wallet", "unrealized_wallet", "avg_share_of_wallet",
               "recommended_to_move", "part_of_accounts", "part_of_arr"]  # fmt: skip
    actual = [tuple(row[c] for c in columns) for row in rows]
    assert [row[0] for row in actual] == [row[0] for row in expected]
    assert not fx.close(actual, expected, tol=1e-12), fx.close(actual, expected, tol=1e-12)
