"""The band rule in SQL (band_case) and in Python (band_label) put every value in the same band."""

from __future__ import annotations

import math

import duckdb
import sqlalchemy as sa
from duckdb_engine import Dialect

from postsales.segment.bands import OUT_OF_RANGE, band_case, band_label, band_minimum
from postsales.segment.rules import load_rules

RULES = load_rules()
# The shipped ARR tiers and health bands, and bands that leave negative values out.
BANDS = [
    RULES.customer_value.arr_band,
    RULES.customer_status.health_band,
    type(RULES.customer_value.arr_band).model_validate(
        {
            "feature": "arr",
            "missing_label": "Unknown",
            "bands": [{"label": "low", "min": 0, "max": 10}, {"label": "high", "min": 10}],
        }
    ),
]
VALUES = [None, -1.0, 0.0, 9.999, 10.0, 15.0, 19.999, 20.0, 40.0, 50_000.0, 99_999.99, 100_000.0, 1e12]


def sql_labels(bands) -> list[str]:
    value = sa.column("value", sa.Float)
    select = sa.select(band_case(value, bands)).select_from(sa.text("(select unnest(?) as value) as v"))
    sql = str(select.compile(dialect=Dialect(), compile_kwargs={"literal_binds": True})).replace("?", "$values")
    return [row[0] for row in duckdb.sql(sql.replace("$values", "[" + ", ".join(
        "null" if v is None else repr(v) for v in VALUES) + "]::double[]")).fetchall()]  # fmt: skip


def test_sql_and_python_agree_on_every_value():
    for bands in BANDS:
        assert sql_labels(bands) == [band_label(value, bands) for value in VALUES]


def test_the_labels_are_the_ones_the_rules_give():
    bands = BANDS[2]
    assert [band_label(v, bands) for v in (None, math.nan, -1.0, 0.0, 9.999, 10.0)] == [
        "Unknown", "Unknown", OUT_OF_RANGE, "low", "low", "high",
    ]  # fmt: skip
    assert band_minimum(bands, "high") == 10.0 and band_minimum(bands, "low") == 0.0
