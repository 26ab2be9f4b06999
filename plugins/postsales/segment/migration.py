"""How accounts moved between two segmentation dates: the migration matrix.

``mart.segment_migration_matrix`` holds, for an as-of date and the date it is compared to,
the number of accounts per (from, to) pair of each dimension (value tier, quadrant).
Accounts present on only one side appear as ``(new)`` / ``(gone)``. The segment revision
compares with the previous revision, the annual review with the year before.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date
from typing import Any

import sqlalchemy as sa

from postsales import warehouse
from postsales.tables import table

log = logging.getLogger(__name__)

DIMENSIONS = ("value_tier", "quadrant")
NEW, GONE = "(new)", "(gone)"

segment_migration_matrix = table("mart.segment_migration_matrix")
TABLES = (segment_migration_matrix,)


def migration_matrix(as_of: date, compared_to: date, *, warehouse_url: str | None = None) -> dict[str, Any]:
    """Replace the (as_of, compared_to) matrix; both dates are segmented first if needed."""
    from postsales.segment.engine import account_segments, ensure_segments

    ensure_segments(sorted({compared_to, as_of}), warehouse_url=warehouse_url)
    eng = warehouse.engine(warehouse_url)
    columns = [account_segments.c.account_id, *(account_segments.c[d] for d in DIMENSIONS)]
    with eng.connect() as conn:
        on = account_segments.c.as_of_date
        before = {r.account_id: r for r in conn.execute(sa.select(*columns).where(on == compared_to))}
        after = {r.account_id: r for r in conn.execute(sa.select(*columns).where(on == as_of))}
    rows, moved = [], {}
    for dimension in DIMENSIONS:
        pairs = Counter(
            (
                getattr(before[a], dimension) if a in before else NEW,
                getattr(after[a], dimension) if a in after else GONE,
            )
            for a in set(before) | set(after)
        )
        moved[dimension] = sum(n for (old, new), n in pairs.items() if old != new and old != NEW and new != GONE)
        rows += [
            {"as_of_date": as_of, "compared_to": compared_to, "dimension": dimension, "from_label": old,
             "to_label": new, "accounts": n}
            for (old, new), n in sorted(pairs.items())
        ]  # fmt: skip
    import pandas as pd

    frame = pd.DataFrame(rows, columns=[c.name for c in segment_migration_matrix.c])
    partition = sa.and_(
        segment_migration_matrix.c.as_of_date == as_of, segment_migration_matrix.c.compared_to == compared_to
    )
    with eng.begin() as conn:
        warehouse.replace_rows(conn, segment_migration_matrix, partition, frame)
    summary = {
        "as_of_date": as_of.isoformat(),
        "compared_to": compared_to.isoformat(),
        "accounts_now": len(after),
        "accounts_then": len(before),
        "moved": moved,
    }
    log.info("segment migration %s vs %s: %s", as_of, compared_to, summary)
    return summary
