"""Cohort analysis: monthly MRR, the MRR movement bridge and cohort retention, per snapshot.

Everything is computed inside the warehouse by the queries in ``include/sql/cohorts/``
(one per output table, DuckDB and PostgreSQL alike). A snapshot for month M
(``snapshot_month`` = first day of M) sees only contract versions known at the end of M,
so later loads never change it; see ``docs/metrics.md`` ("Cohorts and MRR") for the
definitions and rules.

Each table is partitioned by ``snapshot_month``: :func:`compute_snapshot` replaces one
snapshot's partition in all three tables in a single transaction, so a rerun leaves
identical rows and readers never see a half-written snapshot.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from postsales import warehouse

log = logging.getLogger(__name__)

STAGE = "cohorts"
MOVEMENTS = ("new", "expansion", "contraction", "churn", "reactivation", "unchanged")
COHORT_GRAINS = ("month", "year")

metadata = sa.MetaData()

mrr_monthly = sa.Table(
    "mrr_monthly",
    metadata,
    sa.Column("snapshot_month", sa.Date, nullable=False, comment="first day of the snapshot month"),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("month", sa.Date, nullable=False, comment="first day of the month measured"),
    sa.Column("arr", sa.Float(53), nullable=False, comment="ARR of contracts active on the month's last day"),
    sa.Column("mrr", sa.Float(53), nullable=False, comment="arr / 12"),
    sa.Column("movement", sa.Text, comment="new|expansion|contraction|churn|reactivation|unchanged; null at 0"),
    sa.Column("mrr_change", sa.Float(53), nullable=False, comment="mrr - previous month's mrr"),
    schema="mart",
)

mrr_movements = sa.Table(
    "mrr_movements",
    metadata,
    sa.Column("snapshot_month", sa.Date, nullable=False),
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("mrr", sa.Float(53), nullable=False),
    sa.Column("customers", sa.BigInteger, nullable=False, comment="accounts with mrr > 0"),
    sa.Column("new_mrr", sa.Float(53), nullable=False),
    sa.Column("expansion_mrr", sa.Float(53), nullable=False),
    sa.Column("contraction_mrr", sa.Float(53), nullable=False, comment="negative"),
    sa.Column("churned_mrr", sa.Float(53), nullable=False, comment="negative"),
    sa.Column("reactivation_mrr", sa.Float(53), nullable=False),
    sa.Column("net_new_mrr", sa.Float(53), nullable=False, comment="mrr - previous month's mrr"),
    schema="mart",
)

cohort_retention = sa.Table(
    "cohort_retention",
    metadata,
    sa.Column("snapshot_month", sa.Date, nullable=False),
    sa.Column("cohort_grain", sa.Text, nullable=False, comment="month | year"),
    sa.Column("cohort_month", sa.Date, nullable=False, comment="first day of the cohort month or year"),
    sa.Column("months_since_start", sa.Integer, nullable=False),
    sa.Column("cohort_customers", sa.BigInteger, nullable=False),
    sa.Column("active_customers", sa.BigInteger, nullable=False),
    sa.Column("starting_mrr", sa.Float(53), nullable=False),
    sa.Column("mrr", sa.Float(53), nullable=False),
    sa.Column("logo_retention", sa.Float(53), nullable=False),
    sa.Column("grr", sa.Float(53), nullable=False),
    sa.Column("nrr", sa.Float(53), nullable=False),
    schema="mart",
)

# Filled in this order: the last two read the first one's partition inside the same transaction.
OUTPUTS = (mrr_monthly, mrr_movements, cohort_retention)


def snapshot_month_of(value: date) -> date:
    """``value`` as a plain date, which must be the first day of a month."""
    if isinstance(value, datetime):
        if value.time() != datetime.min.time():
            raise ValueError(f"snapshot_month must be the first day of a month at midnight, got {value.isoformat()}")
        value = value.date()
    if not isinstance(value, date):
        raise TypeError(f"snapshot_month must be a date, got {type(value).__name__}")
    if value.day != 1:
        raise ValueError(
            f"snapshot_month must be the first day of a month, got {value.isoformat()} "
            f"(did you mean {value.replace(day=1).isoformat()}?)"
        )
    return date(value.year, value.month, 1)


def compute_snapshot(snapshot_month: date, *, warehouse_url: str | None = None) -> dict[str, Any]:
    """Replace the ``snapshot_month`` partition of the three cohort tables in one transaction.

    Returns the row counts written and the snapshot month's totals, for logging.
    """
    month = snapshot_month_of(snapshot_month)
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)  # staging.contracts must exist even before the first extract
    warehouse.ensure_tables(eng, metadata)
    counts: dict[str, Any] = {"snapshot_month": month.isoformat()}
    with eng.begin() as conn:
        for table in OUTPUTS:
            warehouse.replace_from_query(
                conn, table, table.c.snapshot_month == month, STAGE, table.name, snapshot_month=month
            )
            counts[f"{table.name}_rows"] = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.snapshot_month == month)
            ).scalar_one()
        latest = conn.execute(
            sa.select(mrr_movements.c.mrr, mrr_movements.c.customers).where(
                mrr_movements.c.snapshot_month == month, mrr_movements.c.month == month
            )
        ).one_or_none()
    counts["mrr"] = float(latest.mrr) if latest else 0.0
    counts["customers"] = int(latest.customers) if latest else 0
    log.info(
        "cohorts snapshot %s: %s customers, MRR %.2f; rows: %s",
        counts["snapshot_month"],
        counts["customers"],
        counts["mrr"],
        ", ".join(f"{t.name} {counts[f'{t.name}_rows']}" for t in OUTPUTS),
    )
    return counts
