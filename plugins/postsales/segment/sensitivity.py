"""How many accounts would change quadrant if a threshold of the 2x2 moved (docs/metrics.md,
"Threshold sensitivity"): the figures a CS leader approving the rules sees next to them.

Each of the two axis thresholds moves by ``MOVES`` (−10 %, +10 %) on its own, the other rules
unchanged. The accounts of the as-of date are reclassified set-based in the warehouse from
their stored feature rows with the same compiled rules as the segmentation (``quadrant_plane``
and ``quadrant_overlay``): the moved cell, then the same ``still_grow`` refinement and the same
Re-evaluate overlay. Compared with the quadrant stored in ``mart.account_segments``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import partial

import sqlalchemy as sa

from postsales.segment.engine import Gaps, account_features, account_segments, quadrant_overlay, quadrant_plane
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

    ``variant`` is the index in ``variants``; ``from_quadrant`` the stored quadrant.
    """
    features, segments = account_features, account_segments
    base = (
        sa.select(*features.c, segments.c.quadrant.label("stored_quadrant"))
        .select_from(
            features.join(
                segments,
                sa.and_(segments.c.as_of_date == features.c.as_of_date, segments.c.account_id == features.c.account_id),
            )
        )
        .where(features.c.as_of_date == sa.bindparam("as_of_date"))
        .cte("sensitivity_base")
    )
    reclassified = []
    for index, (axis, move) in enumerate(variants):
        moved = moved_rules(rules, axis, move)
        gaps = Gaps(moved)
        c = base.c
        _, _, plane_quadrant, plane_rule = quadrant_plane(c, moved, partial(gaps.unknown, c))
        plane = sa.select(*c, plane_quadrant.label("plane_quadrant"), plane_rule.label("plane_rule")).cte(
            f"sensitivity_plane_{index}"
        )
        quadrant, _ = quadrant_overlay(plane.c, moved, partial(gaps.unknown, plane.c))
        reclassified.append(
            sa.select(
                sa.literal(index).label("variant"),
                plane.c.stored_quadrant.label("from_quadrant"),
                quadrant.label("to_quadrant"),
            )
        )
    every = sa.union_all(*reclassified).subquery("reclassified")
    return (
        sa.select(every.c.variant, every.c.from_quadrant, every.c.to_quadrant, sa.func.count().label("accounts"))
        .where(every.c.from_quadrant != every.c.to_quadrant)
        .group_by(every.c.variant, every.c.from_quadrant, every.c.to_quadrant)
        .order_by(every.c.variant, every.c.from_quadrant, every.c.to_quadrant)
    )


def quadrant_sensitivity(
    conn: sa.Connection, as_of: date, rules: SegmentationRules, moves: tuple[float, ...] = MOVES
) -> list[Sensitivity]:
    """One row per (axis, move), share of wallet first; empty when ``as_of`` has no segments."""
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
