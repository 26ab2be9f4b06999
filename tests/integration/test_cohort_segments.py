"""Cohort x segment triangles and the pricing & packaging comparison, on the hand-built contracts.

Acquisitions in the December 2024 snapshot (tests/cohort_fixtures.py), starting ARR -> MRR:
  2024-01  MIDSTART 12,000 (1,000), RENEW 12,000 (1,000), DOWN 36,000 (3,000), REACT 12,000 (1,000)
  2024-02  FLAT 6,000 (500), VERS 18,000 (1,500: the version known in December)
  2024-03  OVERLAP 24,000 (2,000)    2024-04  LATELOAD 6,000 (500)
  2024-05  PILOT 12,000 (1,000)      2024-11  LASTDAY 2,400 (200)
Only DOWN starts at Mid-Market ARR (>= 25,000); no account rows are loaded, so every
account's industry group is 'Unknown'. The snapshot segments its month's last day first: every
account paying on 2024-12-31 is segmented with quadrant 'Unclassified' (no account row: no wallet
potential to place it on the 2x2);
REACT, churned at the end of August, is 'Not segmented'.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date

import pytest
import sqlalchemy as sa

import cohort_fixtures as fx
from postsales import cohorts, warehouse

DECEMBER = date(2024, 12, 1)


@pytest.fixture
def december(warehouse_url):
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)
    with eng.begin() as conn:
        warehouse.insert_frame(conn, warehouse.tables().staging["contracts"], fx.frame(fx.CONTRACTS))
    settings = cohorts.load_settings().model_copy(
        update={"pricing": cohorts.PricingChange(change_date=date(2024, 3, 1))}
    )
    cohorts.compute_snapshot(DECEMBER, warehouse_url=warehouse_url, settings=settings)
    return warehouse_url


def select(url, table, **where):
    query = sa.select(table).where(table.c.snapshot_month == DECEMBER)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with warehouse.engine(url).connect() as conn:
        return [row._asdict() for row in conn.execute(query)]


def test_each_account_gets_one_segment_per_dimension(december):
    found = defaultdict(dict)
    for row in select(december, cohorts.account_cohort_segments):
        assert row["dimension"] not in found[row["account_id"]]
        found[row["account_id"]][row["dimension"]] = row["segment_value"]
    accounts = {"MIDSTART", "RENEW", "DOWN", "REACT", "FLAT", "VERS", "OVERLAP", "LATELOAD", "PILOT", "LASTDAY"}
    assert set(found) == accounts
    for account, dimensions in found.items():
        assert dimensions == {
            "all": "all",
            "value_tier_at_acquisition": "Mid-Market" if account == "DOWN" else "SMB",
            "industry_group": "Unknown",
            "quadrant": "Not segmented" if account == "REACT" else "Unclassified",
        }


def test_the_quadrant_view_does_not_depend_on_what_ran_before(december):
    """Computed again after other dates were segmented (as model_evaluation does), the snapshot
    reads the same month-end segmentation: identical rows."""
    from postsales.segment.engine import compute_segments

    before = select(december, cohorts.account_cohort_segments)
    for day in (date(2024, 12, 15), date(2024, 11, 30)):
        compute_segments(day, warehouse_url=december)
    cohorts.compute_snapshot(DECEMBER, warehouse_url=december)
    key = lambda row: (row["account_id"], row["dimension"])  # noqa: E731
    assert sorted(select(december, cohorts.account_cohort_segments), key=key) == sorted(before, key=key)


def test_segment_triangle_by_hand(december):
    rows = {
        r["months_since_start"]: r
        for r in select(
            december,
            cohorts.cohort_retention_by_segment,
            dimension="value_tier_at_acquisition",
            segment_value="Mid-Market",
            cohort_grain="month",
        )
    }
    # DOWN: 3,000 MRR in January; renewed at 24,000 ARR (2,000 MRR) from April (k = 3).
    assert set(rows) == set(range(12))
    assert (rows[0]["cohort_customers"], rows[0]["starting_mrr"], rows[0]["mrr"]) == (1, 3000.0, 3000.0)
    assert rows[3]["mrr"] == 2000.0
    assert math.isclose(rows[3]["nrr"], 2 / 3) and math.isclose(rows[3]["grr"], 2 / 3)
    assert rows[3]["logo_retention"] == 1.0


def test_segments_add_up_to_all(december):
    total = defaultdict(lambda: defaultdict(float))
    measures = ("cohort_customers", "active_customers", "starting_mrr", "mrr")
    for row in select(december, cohorts.cohort_retention_by_segment):
        key = (row["dimension"], row["cohort_grain"], row["cohort_month"], row["months_since_start"])
        for measure in measures:
            total[key][measure] += row[measure]
    alls = {k[1:]: v for k, v in total.items() if k[0] == "all"}
    assert alls
    for (dimension, *cell), sums in total.items():
        for measure in measures:
            assert math.isclose(sums[measure], alls[tuple(cell)][measure]), (dimension, cell, measure)
    plain = select(december, cohorts.cohort_retention)
    assert len(plain) == sum(1 for k in total if k[0] == "all")


def test_pricing_comparison_by_hand(december):
    rows = {
        (r["pricing_period"], r["months_since_start"]): r for r in select(december, cohorts.pricing_cohort_comparison)
    }
    before0, after0 = rows[("before", 0)], rows[("after", 0)]
    assert (before0["cohorts"], before0["cohort_customers"], before0["starting_mrr"]) == (2, 6, 8000.0)
    assert (after0["cohorts"], after0["cohort_customers"], after0["starting_mrr"]) == (4, 4, 3700.0)
    # k = 3: January at April (MIDSTART 1,000, RENEW 1,000, DOWN 2,000, REACT churned) and
    # February at May (FLAT 500, VERS 1,500): 5 of 6 active, 6,000 of 8,000 MRR kept.
    before3 = rows[("before", 3)]
    assert math.isclose(before3["logo_retention"], 5 / 6)
    assert math.isclose(before3["nrr"], 0.75) and math.isclose(before3["grr"], 0.75)
    # After the change, cohorts that reached k = 3: OVERLAP (2,500 with the add-on), LATELOAD
    # (500), PILOT (1,000) against 3,500 at the start.
    after3 = rows[("after", 3)]
    assert (after3["cohorts"], after3["cohort_customers"]) == (3, 3)
    assert math.isclose(after3["nrr"], 4000 / 3500) and math.isclose(after3["grr"], 1.0)
    assert {r["pricing_change_date"] for r in rows.values()} == {date(2024, 3, 1)}


def test_quarterly_expansion_by_hand(december):
    rows = {(r["cohort_month"], r["quarter_start"]): r for r in select(december, cohorts.cohort_quarterly_expansion)}
    # OVERLAP (cohort 2024-03): the add-on from 2024-05-10 adds 500 MRR in Q2; opening MRR for
    # Q2 is its March MRR, 2,000.
    q2 = rows[(date(2024, 3, 1), date(2024, 4, 1))]
    assert (q2["expansion_mrr"], q2["opening_mrr"], q2["expansion_rate"]) == (500.0, 2000.0, 0.25)
    # RENEW is upgraded at renewal in July (Q3): +500 for the January cohort.
    q3 = rows[(date(2024, 1, 1), date(2024, 7, 1))]
    assert q3["expansion_mrr"] == 500.0
