"""Time in Re-evaluate carries over between as-of dates; the explanation answers "why"."""

from __future__ import annotations

import json
from datetime import date, datetime

import sqlalchemy as sa

import segment_fixtures as fx
from postsales import warehouse
from postsales.segment.engine import account_segments, compute_segments
from postsales.segment.rules import load_rules

DATES = [date(2024, 1, 1), date(2024, 5, 1), date(2024, 6, 29), date(2024, 6, 30), date(2024, 9, 1)]


def _load(url: str) -> None:
    fx.load_staging(
        url,
        accounts=[fx.account("R"), fx.account("L"), fx.account("G")],
        contracts=[
            fx.contract("R-1", "R", date(2023, 1, 1), None, 20_000),
            fx.contract("L-1", "L", date(2023, 1, 1), None, 20_000),
            fx.contract("G-1", "G", date(2023, 1, 1), None, 20_000),
        ],
        surveys=[
            # R: a detractor for the whole year: Re-evaluate on every date
            fx.nps("R", datetime(2023, 12, 15, 10, 0), 2),
            # L: detractor, then a promoter (leaves Re-evaluate), then a detractor again
            fx.nps("L", datetime(2023, 12, 1, 10, 0), 4),
            fx.nps("L", datetime(2024, 3, 1, 10, 0), 10),
            fx.nps("L", datetime(2024, 8, 1, 10, 0), 5),
            fx.nps("G", datetime(2023, 12, 1, 10, 0), 9),
        ],
    )


def _dwell(rows: dict, account_id: str) -> tuple:
    row = rows[account_id]
    return row["quadrant"], row["reevaluate_since"], row["reevaluate_days"], row["recommended_quadrant"]


def test_reevaluate_dwell_carries_over_and_resets(warehouse_url):
    _load(warehouse_url)
    by_date = {}
    for as_of in DATES:
        compute_segments(as_of, warehouse_url=warehouse_url)
        by_date[as_of] = fx.segments(warehouse_url, as_of)

    start = date(2024, 1, 1)
    assert [_dwell(by_date[d], "R") for d in DATES] == [
        ("Re-evaluate", start, 0, "Re-evaluate"),
        ("Re-evaluate", start, 121, "Re-evaluate"),  # 31 + 29 + 31 + 30
        ("Re-evaluate", start, 180, "Re-evaluate"),  # exactly reevaluate_max_days: not yet
        ("Re-evaluate", start, 181, "Manage"),  # more than 180 days
        ("Re-evaluate", start, 244, "Manage"),
    ]
    # L: NPS 10 from 2024-03-01; 20k of a 100k wallet (share 0.2 of a large wallet): Grow; NPS 5 from
    # 2024-08-01. Re-evaluate overlays the Grow cell all three are in.
    assert [_dwell(by_date[d], "L") for d in DATES] == [
        ("Re-evaluate", start, 0, "Re-evaluate"),
        ("Grow", None, None, "Grow"),
        ("Grow", None, None, "Grow"),
        ("Grow", None, None, "Grow"),
        ("Re-evaluate", date(2024, 9, 1), 0, "Re-evaluate"),  # a new spell starts
    ]
    assert {_dwell(by_date[d], "G") for d in DATES} == {("Grow", None, None, "Grow")}
    assert by_date[DATES[-1]]["L"]["quadrant_rule"] == "low_nps"
    assert by_date[date(2024, 5, 1)]["L"]["quadrant_rule"] == "large_wallet_low_share"
    # On the plane R stays Grow throughout; the overlay is what makes it Re-evaluate.
    assert {by_date[d]["R"]["plane_quadrant"] for d in DATES} == {"Grow"}

    # Re-running the last date is idempotent (the previous date is still 2024-06-30).
    compute_segments(DATES[-1], warehouse_url=warehouse_url)
    again = fx.segments(warehouse_url, DATES[-1])
    assert fx.comparable_segments(again) == fx.comparable_segments(by_date[DATES[-1]])


def test_explanation_says_why_an_account_is_in_reevaluate(warehouse_url):
    _load(warehouse_url)
    as_of = date(2024, 5, 1)
    compute_segments(as_of, warehouse_url=warehouse_url)
    rows = fx.segments(warehouse_url, as_of)
    row = rows["R"]
    assert row["quadrant"] == "Re-evaluate"
    explanation = json.loads(row["explanation"])

    version = load_rules().version
    assert row["rules_version"] == version
    assert explanation["rules_version"] == version
    assert explanation["as_of_date"] == "2024-05-01"
    quadrant = explanation["quadrant"]
    assert quadrant["value"] == "Re-evaluate"
    assert quadrant["rule"] == "low_nps"
    assert quadrant["inputs"]["nps_latest"] == 2
    # every field the quadrant reads is reported, with its value: the two axes, still_grow, the reasons
    assert set(quadrant["inputs"]) == {
        "wallet_share",
        "wallet_potential_arr",
        "tenure_months",
        "arr_growth_365d",
        "nps_latest",
        "csat_avg",
        "usage_trend",
        "arr_change_90d",
    }
    assert quadrant["inputs"]["wallet_share"] == 0.2
    assert quadrant["inputs"]["wallet_potential_arr"] == 100_000
    assert quadrant["inputs"]["tenure_months"] == 16
    assert quadrant["inputs"]["csat_avg"] is None
    # every assignment is explained
    assert set(explanation) >= {
        "firmographic_segment",
        "value_tier",
        "lifecycle_stage",
        "status_segment",
        "adoption_segment",
        "health_score",
        "quadrant",
        "engagement_model",
        "case_study_candidate",
    }
    for name in ("value_tier", "lifecycle_stage", "adoption_segment", "engagement_model"):
        assert explanation[name]["value"] == row[name], name
    assert explanation["lifecycle_stage"]["rule"] == row["lifecycle_rule"]
    assert explanation["health_score"]["components"]["nps"] == {
        "feature": "nps_latest",
        "value": 2,
        "score": 20,
        "weight": 0.25,
    }

    # L (NPS 10) is not in Re-evaluate: its explanation names the rule that placed it.
    other = json.loads(rows["L"]["explanation"])["quadrant"]
    assert (other["value"], other["rule"], other["inputs"]["nps_latest"]) == ("Grow", "large_wallet_low_share", 10)


def test_segments_from_before_the_2x2_gain_its_columns_and_the_dwell_carries_over(warehouse_url):
    """mart.account_segments created by rules 2026.11 (no axis columns): the next run adds them,
    and an account already in Re-evaluate there keeps its dwell under the 2x2."""
    _load(warehouse_url)
    eng = warehouse.engine(warehouse_url)
    new_columns = ("share_of_wallet", "wallet_size", "quadrant_cell", "plane_quadrant")
    old = sa.MetaData()
    kept = [c.copy() for c in account_segments.columns if c.name not in new_columns]
    table = sa.Table("account_segments", old, *kept, schema="mart")
    with eng.begin() as conn:  # the extracts made today's table: put the old one in its place
        conn.execute(sa.text("drop table mart.account_segments"))
        old.create_all(conn)
    earlier = date(2024, 5, 1)
    old_row = {c.name: "x" for c in table.columns if not c.nullable and c.type.python_type is str}
    old_row |= {
        "as_of_date": earlier,
        "account_id": "R",
        "quadrant": "Re-evaluate",
        "quadrant_rule": "low_nps",
        "recommended_quadrant": "Re-evaluate",
        "reevaluate_since": date(2024, 1, 1),
        "reevaluate_days": 121,
        "case_study_candidate": False,
        "rules_version": "2026.11.0",
        "computed_at": datetime(2024, 5, 2),
    }
    with eng.begin() as conn:
        conn.execute(table.insert(), [old_row])

    compute_segments(date(2024, 6, 30), warehouse_url=warehouse_url)
    rows = fx.segments(warehouse_url, date(2024, 6, 30))
    # R: 20k of a 100k wallet, NPS 2: Re-evaluate over Grow since 2024-01-01, 181 days: move to Manage
    assert _dwell(rows, "R") == ("Re-evaluate", date(2024, 1, 1), 181, "Manage")
    assert [rows["R"][c] for c in new_columns] == [0.2, 100_000, "Large wallet · Low share", "Grow"]
    assert [fx.segments(warehouse_url, earlier)["R"][c] for c in new_columns] == [None] * 4
    with eng.begin() as conn:
        assert warehouse.add_missing_columns(conn, [account_segments]) == []
