"""Turn raw source strings into typed columns.

A value that is present but does not parse becomes null here; the gate then
quarantines the row because its raw value was set while its typed value is not.
"""

from __future__ import annotations

import pandas as pd

TRUE_VALUES = frozenset({"true", "t", "1", "yes", "y"})
FALSE_VALUES = frozenset({"false", "f", "0", "no", "n"})


def coerce(raw: pd.Series, column_type: str) -> pd.Series:
    if column_type == "string":
        return raw.astype("object").where(raw.notna(), None)
    if column_type in ("integer", "number"):
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        if column_type == "integer":
            numbers = numbers.where(numbers.isna() | (numbers == numbers.round()))
        return numbers
    if column_type == "date":
        return pd.to_datetime(raw, format="ISO8601", errors="coerce").dt.normalize().astype("datetime64[us]")
    if column_type == "timestamp":
        # Naive timestamps are read as UTC; everything is stored as naive UTC.
        parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
        return parsed.dt.tz_localize(None).astype("datetime64[us]")
    if column_type == "boolean":
        lowered = (
            raw.astype("object").where(raw.notna(), None).map(lambda v: v if v is None else str(v).strip().lower())
        )
        return lowered.map(lambda v: True if v in TRUE_VALUES else (False if v in FALSE_VALUES else None)).astype(
            "object"
        )
    raise ValueError(f"unknown column type {column_type!r}")
