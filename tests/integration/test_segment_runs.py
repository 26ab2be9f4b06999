"""compute_segments replaces one as-of date's partition, all tables in one transaction."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

import segment_fixtures as fx
from postsales.segment.engine import compute_segments
from postsales.segment.rules import load_rules

AS_OF = fx.SCENARIO_AS_OF
OTHER = date(2024, 3, 31)


def _all(url: str, as_of: date) -> dict:
    return {
        "features": fx.features(url, as_of),
        "segments": fx.segments(url, as_of),  # computed_at included: the rows were not rewritten
        "components": fx.health_components(url, as_of),
    }


def test_rerun_replaces_only_its_date(warehouse_url):
    fx.load_scenario(warehouse_url)
    summary = compute_segments(OTHER, warehouse_url=warehouse_url)
    # A, B, and D (whose contract ends 2024-06-29); C's contracts start in June
    assert (summary["as_of_date"], summary["accounts"]) == ("2024-03-31", 3)
    assert sum(summary["quadrants"].values()) == 3
    assert summary["rules_version"] == load_rules().version
    assert sorted(fx.segments(warehouse_url, OTHER)) == ["A", "B", "D"]
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    other_before, before = _all(warehouse_url, OTHER), _all(warehouse_url, AS_OF)

    compute_segments(AS_OF, warehouse_url=warehouse_url)
    assert _all(warehouse_url, OTHER) == other_before
    after = _all(warehouse_url, AS_OF)
    assert after["features"] == before["features"]
    assert after["components"] == before["components"]
    assert fx.comparable_segments(after["segments"]) == fx.comparable_segments(before["segments"])


def test_a_failing_run_leaves_the_previous_result(warehouse_url):
    fx.load_scenario(warehouse_url)
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    before = _all(warehouse_url, AS_OF)

    # New usage changes A's features; then the segment statement fails (bands on a text
    # feature): the feature rows written earlier in the same run must be rolled back.
    fx.load_staging(warehouse_url, usage_rows=[fx.usage("A", date(2024, 6, 29), 1, 10, 1, 1)])
    shipped = load_rules()
    value = shipped.customer_value
    broken = shipped.model_copy(
        update={
            "customer_value": value.model_copy(
                update={"arr_band": value.arr_band.model_copy(update={"feature": "industry"})}
            )
        }
    )
    with pytest.raises(sa.exc.DBAPIError):
        compute_segments(AS_OF, rules=broken, warehouse_url=warehouse_url)
    assert _all(warehouse_url, AS_OF) == before

    # and a good run picks the new usage up
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    assert fx.features(warehouse_url, AS_OF)["A"]["usage_days"] == 3
