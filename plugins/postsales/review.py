"""Inputs for the annual threshold review: suggested value-tier boundaries and health weights.

Both are recommendations, written to ``mart.review_recommendations`` with the number of
accounts each would move and the full old -> new migration matrix in
``mart.review_migration_matrix``. Nothing here edits ``segmentation.yaml``: a person
decides at the review. Definitions: docs/metrics.md, "Annual review recommendations".
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from postsales import warehouse
from postsales.outcomes import EvaluationSettings, load_settings
from postsales.segment.bands import band_label
from postsales.segment.rules import Bands, SegmentationRules, load_rules
from postsales.tables import table

log = logging.getLogger(__name__)

review_recommendations = table("mart.review_recommendations")
review_migration_matrix = table("mart.review_migration_matrix")
TABLES = (review_recommendations, review_migration_matrix)

# --- value tiers -------------------------------------------------------------------------


def suggest_tier_minimums(arr: Any, target_shares: dict[str, float], round_to: float) -> dict[str, float]:
    """Minimum ARR of every tier but the first, at the cumulative target-share quantiles.

    The quantile is the lower one (an ARR value some account has), rounded to the nearest
    ``round_to``, at least ``round_to`` and strictly above the previous minimum.
    """
    import numpy as np

    values = np.sort(np.asarray(arr, dtype=float))
    labels = list(target_shares)
    minimums: dict[str, float] = {}
    cumulative, previous = 0.0, 0.0
    for label in labels[1:]:
        cumulative += target_shares[labels[labels.index(label) - 1]]
        # The lower quantile, values[floor(q * (n - 1))], with a tolerance: shares that add up in
        # floating point (0.6 + 0.3 = 0.8999...) must not fall to the value below.
        index = min(len(values) - 1, math.floor(cumulative * (len(values) - 1) + 1e-9))
        quantile = float(values[index]) if len(values) else 0.0
        rounded = max(round_to, round(quantile / round_to) * round_to)
        rounded = max(rounded, previous + round_to)
        minimums[label] = rounded
        previous = rounded
    return minimums


def with_minimums(bands: Bands, minimums: dict[str, float]) -> Bands:
    """``bands`` with the given minimums (and the previous band's maximum moved with each)."""
    new = [band.model_dump() for band in bands.bands]
    for index, band in enumerate(new):
        if band["label"] in minimums:
            band["min"] = minimums[band["label"]]
            new[index - 1]["max"] = minimums[band["label"]]
    return Bands.model_validate({**bands.model_dump(), "bands": new})


def _matrix(old: list[str], new: list[str]) -> list[dict[str, Any]]:
    from collections import Counter

    return [
        {"from_label": a, "to_label": b, "accounts": n}
        for (a, b), n in sorted(Counter(zip(old, new, strict=True)).items())
    ]


def review_value_tiers(customers: Any, rules: SegmentationRules, settings: EvaluationSettings) -> tuple[list, list]:
    """Recommendations and the migration matrix for the ARR band boundaries."""
    bands = rules.customer_value.arr_band
    config = settings.review.value_tiers
    arr = customers["arr"].dropna().astype(float).to_numpy()
    minimums = suggest_tier_minimums(arr, config.target_shares, config.round_to)
    suggested = with_minimums(bands, minimums)
    old = [band_label(v, bands) for v in arr]
    new = [band_label(v, suggested) for v in arr]
    total = len(arr)
    recommendations = []
    for label, minimum in minimums.items():
        current = next(band.min for band in bands.bands if band.label == label)
        low, high = sorted((float(current), minimum))
        moved = int(((arr >= low) & (arr < high)).sum())
        share_now = sum(1 for v in old if v == label) / total if total else 0.0
        share_then = sum(1 for v in new if v == label) / total if total else 0.0
        recommendations.append(
            {
                "area": "value_tier_boundary",
                "item": f"{label} minimum ARR",
                "current_value": float(current),
                "suggested_value": minimum,
                "accounts_moved": moved,
                "basis": (
                    f"{label} holds {100 * share_now:.0f}% of {total} customers now; target "
                    f"{100 * config.target_shares[label]:.0f}%, {100 * share_then:.0f}% with the suggested minimum "
                    f"(quantile of current ARR, rounded to {config.round_to:,.0f})"
                ),
            }
        )
    return recommendations, [{"area": "value_tier", **row} for row in _matrix(old, new)]


# --- health weights -----------------------------------------------------------------------


def suggest_weights(current: dict[str, float], aucs: dict[str, float | None], shrinkage: float, step: float):
    """Weights moved towards each component's signal above chance (AUC - 0.5).

    suggested = (1 - shrinkage) * current + shrinkage * signal / sum(signal), rounded to
    ``step`` (each at least one step) so that they still sum to 1. No signal anywhere:
    the current weights.
    """
    signal = {name: max((aucs.get(name) or 0.5) - 0.5, 0.0) for name in current}
    total = sum(signal.values())
    if total <= 0:
        return dict(current)
    raw = {name: (1 - shrinkage) * current[name] + shrinkage * signal[name] / total for name in current}
    units_total = round(1 / step)
    units = {name: max(1, math.floor(value / step + 1e-9)) for name, value in raw.items()}
    # Largest remainders (beyond the units already given) take the units left; never below one unit.
    by_remainder = sorted(raw, key=lambda n: raw[n] / step - units[n], reverse=True)
    index = 0
    while sum(units.values()) < units_total:
        units[by_remainder[index % len(by_remainder)]] += 1
        index += 1
    while sum(units.values()) > units_total:
        largest = max(units, key=units.get)
        units[largest] -= 1
    return {name: round(units[name] * step, 10) for name in current}


def rescore(components: Any, weights: dict[str, float], min_coverage: float) -> Any:
    """Health score per account from component scores, as the SQL engine computes it."""
    import numpy as np

    frame = components.copy()
    frame["weight"] = frame["component"].map(weights)
    present = frame[frame["score"].notna()]
    grouped = present.assign(weighted=present["score"] * present["weight"]).groupby("account_id")
    weighted, covered = grouped["weighted"].sum(), grouped["weight"].sum()
    score = (weighted / covered).where(covered >= min_coverage - 1e-9)
    return score.reindex(frame["account_id"].unique()).astype(float).replace({np.inf: np.nan})


def review_health_weights(components: Any, signal: Any, rules: SegmentationRules, settings: EvaluationSettings):
    review = settings.review
    current = {name: spec.weight for name, spec in rules.health.components.items()}
    column = f"auc_{review.signal_outcome}"
    at_horizon = signal[signal["horizon_months"] == review.signal_horizon_months]
    aucs = {row.component: getattr(row, column) for row in at_horizon.itertuples()}
    aucs = {k: (None if v is None or v != v else float(v)) for k, v in aucs.items()}
    suggested = suggest_weights(current, aucs, review.weight_shrinkage, review.weight_step)
    bands = rules.customer_status.health_band
    old_scores = rescore(components, current, rules.health.min_coverage)
    new_scores = rescore(components, suggested, rules.health.min_coverage)
    old = [band_label(v, bands) for v in old_scores.to_numpy()]
    new = [band_label(v, bands) for v in new_scores.reindex(old_scores.index).to_numpy()]
    moved = sum(a != b for a, b in zip(old, new, strict=True))
    recommendations = [
        {
            "area": "health_weight",
            "item": name,
            "current_value": current[name],
            "suggested_value": suggested[name],
            "accounts_moved": moved,
            "basis": (
                f"AUC for {review.signal_outcome.replace('_', ' ')} within {review.signal_horizon_months} months: "
                + (f"{aucs[name]:.3f}" if aucs.get(name) is not None else "no outcomes")
                + f"; {review.weight_shrinkage:.0%} of the way to signal-proportional weights. "
                "accounts_moved: accounts whose health band changes when all suggested weights apply together"
            ),
        }
        for name in current
    ]
    return recommendations, [{"area": "health_band", **row} for row in _matrix(old, new)]


# --- running ---------------------------------------------------------------------------


def recommend(
    as_of: date,
    *,
    warehouse_url: str | None = None,
    settings: EvaluationSettings | None = None,
    rules: SegmentationRules | None = None,
) -> dict[str, Any]:
    """Replace the as-of date's recommendations and migration matrices.

    Reads the as-of date's segments and health components (segmenting the date first if
    needed) and the health-component signal written by :func:`postsales.outcomes.evaluate_health`.
    """
    import pandas as pd

    from postsales.outcomes import health_component_signal
    from postsales.segment.engine import account_segments, ensure_segments, health_components

    rules = rules or load_rules()
    settings = settings or load_settings(rules=rules)
    eng = warehouse.engine(warehouse_url)
    ensure_segments([as_of], warehouse_url=warehouse_url)
    with eng.connect() as conn:
        customers = pd.DataFrame(
            conn.execute(
                sa.select(account_segments.c.account_id, account_segments.c.arr).where(
                    account_segments.c.as_of_date == as_of
                )
            ).all(),
            columns=["account_id", "arr"],
        )
        components = pd.DataFrame(
            conn.execute(
                sa.select(
                    health_components.c.account_id, health_components.c.component, health_components.c.score
                ).where(health_components.c.as_of_date == as_of)
            ).all(),
            columns=["account_id", "component", "score"],
        )
        signal = pd.DataFrame(
            conn.execute(
                sa.select(
                    health_component_signal.c.horizon_months,
                    health_component_signal.c.component,
                    health_component_signal.c.auc_churn,
                    health_component_signal.c.auc_churn_or_contraction,
                ).where(health_component_signal.c.as_of_date == as_of)
            ).all(),
            columns=["horizon_months", "component", "auc_churn", "auc_churn_or_contraction"],
        )
    components["score"] = pd.to_numeric(components["score"], errors="coerce").astype(float)
    tier_recs, tier_matrix = review_value_tiers(customers, rules, settings)
    weight_recs, weight_matrix = review_health_weights(components, signal, rules, settings)
    computed_at = datetime.now(UTC).replace(tzinfo=None)
    recommendations = pd.DataFrame(
        [
            {"as_of_date": as_of, **row, "rules_version": rules.version, "computed_at": computed_at}
            for row in tier_recs + weight_recs
        ],
        columns=[c.name for c in review_recommendations.c],
    )
    matrix = pd.DataFrame(
        [{"as_of_date": as_of, **row} for row in tier_matrix + weight_matrix],
        columns=[c.name for c in review_migration_matrix.c],
    )
    with eng.begin() as conn:
        in_partition = review_recommendations.c.as_of_date == as_of
        warehouse.replace_rows(conn, review_recommendations, in_partition, recommendations)
        warehouse.replace_rows(conn, review_migration_matrix, review_migration_matrix.c.as_of_date == as_of, matrix)
    summary = {
        row["item"]: (row["current_value"], row["suggested_value"], row["accounts_moved"])
        for row in tier_recs + weight_recs
    }
    log.info("annual review recommendations as of %s: %s", as_of, summary)
    return {"as_of_date": as_of.isoformat(), "recommendations": summary}
