"""Where history starts: a date before the first paid contract cannot be computed.

A monthly run (cohort snapshot, model evaluation, segment revision) for such a date would
otherwise succeed and write empty partitions. It fails instead, naming the first month that
can be computed and the backfill command to run from there.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa

from postsales import warehouse
from postsales.errors import DataContractError

STAGE = "history"


class NoHistoryError(DataContractError):
    """The date lies before the data starts: retrying cannot help."""


def first_paid_contract_start(as_of: date, *, warehouse_url: str | None = None) -> tuple[date | None, int]:
    """(first day a paid contract starts, contracts known) among the versions known at ``as_of``."""
    eng = warehouse.engine(warehouse_url)
    try:
        with eng.connect() as conn:
            row = warehouse.query(conn, STAGE, "first_paid_contract", next_day=as_of + timedelta(days=1))[0]
    except sa.exc.DBAPIError:
        # No staging.contract_versions before the first extract (read, not created: replacing the
        # views here would wait for every reader of them on PostgreSQL).
        if sa.inspect(eng).has_table("contracts", schema="staging"):
            raise
        return None, 0
    first = row.first_paid_start
    if isinstance(first, datetime):
        first = first.date()
    return first, int(row.contracts_known or 0)


def require_history(as_of: date, *, dag_id: str, warehouse_url: str | None = None) -> date:
    """The first paid contract's start when ``as_of`` is on or after it; else :class:`NoHistoryError`."""
    first, known = first_paid_contract_start(as_of, warehouse_url=warehouse_url)
    if known == 0:
        raise NoHistoryError(
            f"{dag_id} as of {as_of}: staging.contracts holds no contracts, so there is nothing to compute. "
            'Load the source first: trigger crm_extract with {"full_refresh": true}, then rerun this run.'
        )
    if first is None:
        raise NoHistoryError(
            f"{dag_id} as of {as_of}: none of the {known} contracts known then has arr > 0, so there is no "
            "customer to compute. Check staging.contracts.arr, then rerun this run."
        )
    if first > as_of:
        raise NoHistoryError(
            f"{dag_id} as of {as_of}: history starts in {first:%Y-%m} (the first paid contract starts on "
            f"{first}), so there is nothing to compute before it. Backfill from there: airflow backfill create "
            f"--dag-id {dag_id} --from-date {first:%Y-%m}-01 --to-date <last month>"
        )
    return first
