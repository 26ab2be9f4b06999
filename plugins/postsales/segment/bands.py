"""Where a value falls in the rules' bands and groups (include/rules/segmentation.yaml), written
once for each engine: as a SQL ``case`` for the warehouse (segments, cohort dimensions) and as
Python for what is computed in pandas (forecast tiers, the review's what-ifs). Both follow the
same rule, min inclusive and max exclusive; tests/unit/test_segment_rules.py checks they agree.
"""

from __future__ import annotations

import math

import sqlalchemy as sa

from postsales.segment.rules import Bands, Groups

# The label of a value no band holds (the bands need not cover every value).
OUT_OF_RANGE = "Out of range"


def band_case(column: sa.ColumnElement, bands: Bands) -> sa.ColumnElement:
    """The band of ``column``, in SQL; null is the missing label."""
    whens = [(column.is_(None), sa.literal(bands.missing_label))]
    for band in bands.bands:
        conditions = []
        if band.min is not None:
            conditions.append(column >= sa.literal(band.min))
        if band.max is not None:
            conditions.append(column < sa.literal(band.max))
        whens.append((sa.and_(*conditions) if conditions else sa.true(), sa.literal(band.label)))
    return sa.case(*whens, else_=sa.literal(OUT_OF_RANGE))


def band_label(value: float | None, bands: Bands) -> str:
    """The band of ``value`` as :func:`band_case` assigns it in the warehouse; None or NaN is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return bands.missing_label
    for band in bands.bands:
        if (band.min is None or value >= band.min) and (band.max is None or value < band.max):
            return band.label
    return OUT_OF_RANGE


def band_minimum(bands: Bands, label: str) -> float:
    """The lower bound of the band ``label`` (0 when it is open)."""
    band = next(band for band in bands.bands if band.label == label)
    return float(band.min) if band.min is not None else 0.0


def group_case(column: sa.ColumnElement, groups: Groups) -> sa.ColumnElement:
    """The group of ``column``, in SQL; null is the missing label, a value of no group the default."""
    whens = [(column.is_(None), sa.literal(groups.missing_label))]
    whens += [(column.in_(list(values)), sa.literal(group)) for group, values in groups.groups.items() if values]
    return sa.case(*whens, else_=sa.literal(groups.default))
