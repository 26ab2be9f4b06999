"""Cohort pieces that need no warehouse: the pandas reference against the hand-computed values,
the hand fixture's own consistency, snapshot month validation and the shape of the SQL files."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest

import cohort_fixtures as fx
from postsales import cohorts, paths


def test_pandas_reference_reproduces_the_hand_computed_december_snapshot():
    reference = fx.reference_mrr(fx.frame(fx.CONTRACTS), fx.SNAPSHOT)
    assert {(r["account_id"], r["month"]): (r["mrr"], r["movement"]) for r in reference} == fx.december_expected()


def test_pandas_reference_reproduces_the_hand_computed_may_snapshot():
    reference = fx.reference_mrr(fx.frame(fx.CONTRACTS), fx.EARLY_SNAPSHOT)
    assert {(r["account_id"], r["month"]): r["mrr"] for r in reference} == fx.may_expected()


def test_hand_bridge_adds_up():
    expected = fx.december_expected()
    previous_total = 0
    for month, (mrr, customers, *movements, net_new) in sorted(fx.DECEMBER_BRIDGE.items()):
        values = [value for (_, m), (value, _) in expected.items() if m == month]
        assert sum(values) == mrr
        assert sum(v > 0 for v in values) == customers
        assert sum(movements) == net_new == mrr - previous_total
        previous_total = mrr


def test_hand_yearly_cohort_is_the_sum_of_its_monthly_cohorts():
    for (_, k), yearly in fx.YEARLY_COHORTS.items():
        month = k + 1
        parts = [row for (cohort, j), row in fx.MONTHLY_COHORTS.items() if cohort.month + j == month]
        assert tuple(map(sum, zip(*parts, strict=True))) == yearly


@pytest.mark.parametrize(
    "value, expected",
    [(date(2024, 3, 1), date(2024, 3, 1)), (datetime(2024, 3, 1), date(2024, 3, 1))],
)
def test_snapshot_month_accepts_first_days(value, expected):
    result = cohorts.snapshot_month_of(value)
    assert result == expected and type(result) is date


@pytest.mark.parametrize(
    "value, error",
    [
        (date(2024, 3, 15), ValueError),
        (datetime(2024, 3, 1, 12, 0), ValueError),
        ("2024-03-01", TypeError),
    ],
)
def test_snapshot_month_rejects_anything_else(value, error):
    with pytest.raises(error):
        cohorts.snapshot_month_of(value)


def test_one_sql_file_per_output_table_with_bound_and_cast_parameters():
    sql_dir = paths.sql_dir() / cohorts.STAGE
    inputs = {"account_acquisitions", "account_industries", "account_quadrants"}  # read by compiled SQL
    compiled = {cohorts.account_cohort_segments.name}  # built from the YAML rules, no file
    assert sorted(p.stem for p in sql_dir.glob("*.sql")) == sorted(
        {t.name for t in cohorts.OUTPUTS} - compiled | inputs
    )
    for path in sql_dir.glob("*.sql"):
        text = path.read_text()
        binds = re.findall(r"(?<![:\w]):([a-z_]+)", text)
        assert binds and set(binds) <= {"snapshot_month", "next_month", "pricing_change_date"}, path.name
        for name in set(binds):
            assert text.count(f":{name}") == text.count(f"cast(:{name} as date)"), path.name
        assert "::" not in text and "generate_series" not in text, path.name
        assert not text.rstrip().endswith(";"), f"{path.name}: replace_from_query wraps the query in a subquery"
