"""The typing rules in pandas: the reference ``typing_sql`` is tested against, value by value.

This is how the extract typed raw source strings before issue 18 (the gate on pandas), kept as an
independent implementation of the same rules (tests/integration/test_typing_sql.py). A value
that is present but does not parse becomes null; "parses" includes "fits the warehouse". The
limits are typing_sql's own (one place for each rule).
"""

from __future__ import annotations

import pandas as pd

from postsales.validate.typing_sql import BIGINT_MAX, EXACT_FLOAT_INTEGER, FALSE_VALUES, NUMBER_LIMIT, TRUE_VALUES


def coerce(raw: pd.Series, column_type: str) -> pd.Series:
    if column_type == "string":
        return raw.astype("object").where(raw.notna(), None)
    if column_type == "number":
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        # + 0.0 turns -0.0 into 0.0: a "-0" in the source is zero, not a signed zero in the warehouse.
        return numbers.where(numbers.abs() < NUMBER_LIMIT) + 0.0
    if column_type == "integer":
        return _integers(raw)
    if column_type == "date":
        # Dates with a time or an offset (2024-01-01T00:00:00Z, mixed offsets in one column) are
        # read as instants and typed as the date of the UTC instant, like timestamps.
        return _instants(raw).dt.tz_localize(None).dt.normalize().astype("datetime64[us]")
    if column_type == "timestamp":
        # Naive timestamps are read as UTC; everything is stored as naive UTC.
        return _instants(raw).dt.tz_localize(None).astype("datetime64[us]")
    if column_type == "boolean":
        lowered = (
            raw.astype("object").where(raw.notna(), None).map(lambda v: v if v is None else str(v).strip().lower())
        )
        return lowered.map(lambda v: True if v in TRUE_VALUES else (False if v in FALSE_VALUES else None)).astype(
            "object"
        )
    raise ValueError(f"unknown column type {column_type!r}")


def _integers(raw: pd.Series) -> pd.Series:
    """Whole numbers that fit BIGINT, exactly, as Int64; anything else null.

    Digits-only values are parsed as text (exact over BIGINT's whole range); other spellings
    of a whole number (``12.0``, ``1e3``, Parquet floats) only within ±2**53, where float64 is exact.
    """
    text = raw.astype("object").where(raw.notna(), None).astype("string").str.strip()
    digits = text.str.fullmatch(r"[+-]?[0-9]+").fillna(False).astype(bool)
    negative = text.str.startswith("-").fillna(False).astype(bool)
    magnitude = text.str.lstrip("+-").str.lstrip("0")
    length = magnitude.str.len().fillna(0)
    # Of two 19-digit numbers, the larger text is the larger number.
    limit = pd.Series(str(BIGINT_MAX), index=raw.index, dtype="string").where(~negative, str(BIGINT_MAX + 1))
    fits = digits & ((length < 19) | ((length == 19) & (magnitude <= limit).fillna(False).astype(bool)))
    result = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    if fits.any():
        result[fits] = text[fits].str.lstrip("+").astype("Int64")
    floats = pd.to_numeric(text.where(~digits), errors="coerce").astype("float64")
    whole = floats.notna() & (floats.abs() <= EXACT_FLOAT_INTEGER) & (floats == floats.round())
    if whole.any():
        result[whole] = floats[whole].astype("int64")
    return result


def _instants(raw: pd.Series) -> pd.Series:
    """ISO 8601 values from a full calendar date on (``2024-01-15``, ``2024-01-15T10:00:00+02:00``), in UTC.

    pandas also reads ``2024-01`` or ``2024`` as the first of the month or year and ``20240115``
    as a date; a CRM date field cut short is not a date, so those are not valid, nor is year 0.
    """
    text = raw.astype("object").where(raw.notna(), None).astype("string").str.strip()
    full_date = text.str.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:$|[T ])").fillna(False).astype(bool)
    parsed = pd.to_datetime(text.where(full_date), format="ISO8601", errors="coerce", utc=True)
    # numpy has a year 0 (0000-01-01); Python's dates and the databases' start at year 1.
    return parsed.where(parsed.dt.year >= 1)
