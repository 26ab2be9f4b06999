"""Small helpers for values crossing between pandas, JSON and database drivers."""

from __future__ import annotations

from typing import Any


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA; False for everything else (lists included)."""
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-likes have no single truth value
        return False


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is 0: undefined is not zero."""
    return numerator / denominator if denominator else None
