"""How many accounts would change quadrant if a threshold of the 2x2 moved (docs/metrics.md,
"Threshold sensitivity"): the figures a CS leader approving the rules sees next to them.

Each of the two axis thresholds moves by ``MOVES`` (−10 %, +10 %) on its own, the other rules
unchanged. The accounts of the as-of date are reclassified set-based in the warehouse by the
engine's own layers: layers 1-3 once (the thresholds play no part in them, and the quadrant's
rules may read their values), then layer 4 (cell, ``still_grow``, Re-evaluate overlay) per
moved threshold. Each is compared with the same layer 4 under the unmoved thresholds, the
current rules' baseline: the quadrant stored in ``mart.account_segments`` may come from older
rules, and how many stored quadrants differ from the baseline is reported on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from postsales.segment.engine import Gaps, account_segments, layer3, layer4
from postsales.segment.rules import SegmentationRules

AXES = ("share_of_wallet", "wallet_size")
MOVES = (-0.10, 0.10)


@dataclass(frozen=True)
class Sensitivity:
    """One moved threshold: how many accounts change quadrant, and between which."""

    axis: str
    move: float
    threshold: float
    new_threshold: float
    accounts_changing: int
    moves: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return f"{self.move:+.0%}"


def moved_rules(rules: SegmentationRules, axis: str, move: float) -> SegmentationRules:
    """``rules`` with one axis threshold multiplied by (1 + move); rounded so 0.8 − 10 % is 0.72."""
    quadrant = rules.quadrant
    spec = getattr(quadrant, axis)
    moved = spec.model_copy(update={"threshold": round(spec.threshold * (1 + move), 10)})
    return rules.model_copy(update={"quadrant": quadrant.model_copy(update={axis: moved})})


def compile_sensitivity(rules: SegmentationRules, variants: list[tuple[str, float]]) -> sa.Select:
    """(variant, from_quadrant, to_quadrant, accounts) for :as_of_date, only the pairs that differ.

    ``variant`` is the index in ``variants``; ``from_quadrant`` the quadrant under ``rules``
    unmoved (the baseline), ``to_quadrant`` under the moved threshold.
    """
    gaps = Gaps(rules)
    values = layer3(rules, gaps)
    baseline = layer4(values, rules, gaps, "sensitivity_baseline")
    reclassified = []
    for index, (axis, move) in enumerate(variants):
        moved = layer4(values, moved_rules(rules, axis, move), gaps, f"sensitivity_{index}")
        reclassified.append(
            sa.select(
                sa.literal(index).label("variant"),
                baseline.c.quadrant.label("from_quadrant"),
                moved.c.quadrant.label("to_quadrant"),
            ).select_from(baseline.join(moved, moved.c.account_id == baseline.c.account_id))
        )
    every = sa.union_all(*reclassified).subquery("reclassified")
    return (
        sa.select(every.c.variant, every.c.from_quadrant, every.c.to_quadrant, sa.func.count().label("accounts"))
        .where(every.c.from_quadrant != every.c.to_quadrant)
        .group_by(every.c.variant, every.c.from_quadrant, every.c.to_quadrant)
        .order_by(every.c.variant, every.c.from_quadrant, every.c.to_quadrant)
    )


def compile_stored_differences(rules: SegmentationRules) -> sa.Select:
    """(rules_version, accounts): per rules version of the stored rows of :as_of_date, how many
    stored quadrants differ from the quadrant ``rules`` give today (only versions with one)."""
    gaps = Gaps(rules)
    baseline = layer4(layer3(rules, gaps), rules, gaps, "stored_baseline")
    stored = account_segments
    return (
        sa.select(stored.c.rules_version, sa.func.count().label("accounts"))
        .select_from(
            stored.join(
                baseline,
                sa.and_(stored.c.as_of_date == baseline.c.as_of_date, stored.c.account_id == baseline.c.account_id),
            )
        )
        .where(stored.c.quadrant != baseline.c.quadrant)
        .group_by(stored.c.rules_version)
        .order_by(stored.c.rules_version)
    )


def stored_differences(conn: sa.Connection, as_of: date, rules: SegmentationRules) -> dict[str, int]:
    """Rules version -> accounts whose stored quadrant differs from today's rules (empty: none)."""
    return dict(conn.execute(compile_stored_differences(rules), {"as_of_date": as_of}).all())


def quadrant_sensitivity(
    conn: sa.Connection, as_of: date, rules: SegmentationRules, moves: tuple[float, ...] = MOVES
) -> list[Sensitivity]:
    """One row per (axis, move), share of wallet first; no account changes when ``as_of`` has none."""
    variants = [(axis, move) for axis in AXES for move in moves]
    pairs: dict[int, dict[tuple[str, str], int]] = {index: {} for index in range(len(variants))}
    for row in conn.execute(compile_sensitivity(rules, variants), {"as_of_date": as_of}):
        pairs[row.variant][(row.from_quadrant, row.to_quadrant)] = row.accounts
    return [
        Sensitivity(
            axis=axis,
            move=move,
            threshold=getattr(rules.quadrant, axis).threshold,
            new_threshold=getattr(moved_rules(rules, axis, move).quadrant, axis).threshold,
            accounts_changing=sum(pairs[index].values()),
            moves=pairs[index],
        )
        for index, (axis, move) in enumerate(variants)
    ]
