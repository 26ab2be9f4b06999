"""Hand-built contracts for the cohort tests, the MRR they produce (worked out by hand), and an
independent pandas implementation of the MRR rules to cross-check the SQL.

ARR values are multiples of 12 so every MRR is a round number. Each contract is signed
(``updated_at``) five days before it starts unless noted; ``SNAPSHOT`` is December 2024.

Accounts, their contracts (start .. end, ARR) and what each exercises:

- MIDSTART: 2024-01-15 .. 2025-01-14, 12000. A mid-month start counts from its first month.
- RENEW: 2024-01-01 .. 2024-06-30, 12000; 2024-07-01 .. 2025-06-30, 18000. Renewal the day after the
  end (no churn), upgrade at renewal.
- FLAT: 2024-02-01 .. 2024-04-30, 6000; 2024-05-01 .. evergreen, 6000. A same-price renewal does not
  double-count; evergreen.
- OVERLAP: 2024-03-01 .. 2025-02-28, 24000; add-on 2024-05-10 .. 2025-02-28, 6000. Overlaps are summed.
- DOWN: 2024-01-01 .. 2024-03-31, 36000; 2024-04-01 .. 2025-03-31, 24000. Downgrade at renewal.
- REACT: 2024-01-10 .. 2024-03-09, 12000; 2024-06-01 .. 2024-08-31, 9600. Churn, months at 0,
  reactivation, a contract ending on a month's last day.
- PILOT: 2024-02-01 .. 2024-04-30, 0 (pilot); 2024-05-01 .. 2025-04-30, 12000. A zero-ARR pilot does
  not make a customer.
- PILOTONLY: 2024-03-01 .. 2024-05-31, 0. Never a customer: no rows.
- SHORT: 2024-10-05 .. 2024-10-20, 12000. Active on no month's last day: no MRR, no rows.
- VERS: 2024-02-01 .. 2025-01-31 in three versions: 12000 (updated 2024-01-05), 18000 (2024-06-15),
  24000 (2025-01-10). Point in time: the latest version known at the snapshot.
- LATELOAD: 2024-04-01 .. evergreen, 6000, its only version updated 2025-02-01. No version known
  yet: the earliest loaded version stands in.
- LASTDAY: 2024-11-30 .. evergreen, 2400. A start on a month's last day counts in that month.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd

SNAPSHOT = date(2024, 12, 1)
EARLY_SNAPSHOT = date(2024, 5, 1)
LOADED_AT = datetime(2025, 3, 1, 6, 0)


def contract(contract_id, account_id, start, end, arr, updated=None, plan="Growth"):
    start_date = date.fromisoformat(start)
    signed = datetime.combine(start_date - timedelta(days=5), datetime.min.time()).replace(hour=10)
    return {
        "contract_id": contract_id,
        "account_id": account_id,
        "start_date": start_date,
        "end_date": date.fromisoformat(end) if end else None,
        "arr": float(arr),
        "plan": plan,
        "updated_at": datetime.fromisoformat(updated) if updated else signed,
    }


CONTRACTS = [
    contract("MIDSTART-1", "MIDSTART", "2024-01-15", "2025-01-14", 12000),
    contract("RENEW-1", "RENEW", "2024-01-01", "2024-06-30", 12000),
    contract("RENEW-2", "RENEW", "2024-07-01", "2025-06-30", 18000),
    contract("FLAT-1", "FLAT", "2024-02-01", "2024-04-30", 6000),
    contract("FLAT-2", "FLAT", "2024-05-01", None, 6000),
    contract("OVERLAP-1", "OVERLAP", "2024-03-01", "2025-02-28", 24000),
    contract("OVERLAP-2", "OVERLAP", "2024-05-10", "2025-02-28", 6000),
    contract("DOWN-1", "DOWN", "2024-01-01", "2024-03-31", 36000),
    contract("DOWN-2", "DOWN", "2024-04-01", "2025-03-31", 24000),
    contract("REACT-1", "REACT", "2024-01-10", "2024-03-09", 12000),
    contract("REACT-2", "REACT", "2024-06-01", "2024-08-31", 9600),
    contract("PILOT-1", "PILOT", "2024-02-01", "2024-04-30", 0, plan="Pilot"),
    contract("PILOT-2", "PILOT", "2024-05-01", "2025-04-30", 12000),
    contract("PILOTONLY-1", "PILOTONLY", "2024-03-01", "2024-05-31", 0, plan="Pilot"),
    contract("SHORT-1", "SHORT", "2024-10-05", "2024-10-20", 12000),
    contract("VERS-1", "VERS", "2024-02-01", "2025-01-31", 12000, updated="2024-01-05T10:00:00"),
    contract("VERS-1", "VERS", "2024-02-01", "2025-01-31", 18000, updated="2024-06-15T10:00:00"),
    contract("VERS-1", "VERS", "2024-02-01", "2025-01-31", 24000, updated="2025-01-10T10:00:00"),
    contract("LATELOAD-1", "LATELOAD", "2024-04-01", None, 6000, updated="2025-02-01T10:00:00"),
    contract("LASTDAY-1", "LASTDAY", "2024-11-30", None, 2400),
]

# Data that arrives after December 2024: later versions and contracts starting later.
# None of it may change the December (or May) snapshot.
LATE_CONTRACTS = [
    contract("MIDSTART-1", "MIDSTART", "2024-01-15", "2025-01-14", 24000, updated="2025-01-20T09:00:00"),
    contract("REACT-2", "REACT", "2024-06-01", "2025-05-31", 9600, updated="2025-01-03T09:00:00"),
    contract("RENEW-3", "RENEW", "2025-07-01", "2026-06-30", 30000, updated="2025-01-21T09:00:00"),
    contract("NEWCO-1", "NEWCO", "2025-01-15", None, 12000, updated="2025-01-10T09:00:00"),
]

# MRR by account for January .. December 2024 in the December snapshot (0 = a row at 0).
_MONTHS_2024 = [date(2024, m, 1) for m in range(1, 13)]
DECEMBER_MRR = {
    "MIDSTART": [1000] * 12,
    "RENEW": [1000] * 6 + [1500] * 6,
    "FLAT": [None] + [500] * 11,
    "OVERLAP": [None, None, 2000, 2000] + [2500] * 8,
    "DOWN": [3000] * 3 + [2000] * 9,
    "REACT": [1000, 1000, 0, 0, 0, 800, 800, 800, 0, 0, 0, 0],
    "PILOT": [None] * 4 + [1000] * 8,
    "VERS": [None] + [1500] * 11,  # v2: the version known at the end of December
    "LATELOAD": [None] * 3 + [500] * 9,  # no version known by December: earliest loaded version
    "LASTDAY": [None] * 10 + [200] * 2,
}
DECEMBER_MOVEMENTS = {
    "MIDSTART": ["new"] + ["unchanged"] * 11,
    "RENEW": ["new"] + ["unchanged"] * 5 + ["expansion"] + ["unchanged"] * 5,
    "FLAT": [None, "new"] + ["unchanged"] * 10,
    "OVERLAP": [None, None, "new", "unchanged", "expansion"] + ["unchanged"] * 7,
    "DOWN": ["new", "unchanged", "unchanged", "contraction"] + ["unchanged"] * 8,
    "REACT": ["new", "unchanged", "churn", None, None, "reactivation"] + ["unchanged"] * 2 + ["churn"] + [None] * 3,
    "PILOT": [None] * 4 + ["new"] + ["unchanged"] * 7,
    "VERS": [None, "new"] + ["unchanged"] * 10,
    "LATELOAD": [None] * 3 + ["new"] + ["unchanged"] * 8,
    "LASTDAY": [None] * 10 + ["new", "unchanged"],
}

# May 2024 snapshot, January .. May: VERS still at v1 (12000), RENEW-2 and REACT-2 are signed or
# unknown but start later, LATELOAD again from its only (later) version.
MAY_MRR = {
    "MIDSTART": [1000] * 5,
    "RENEW": [1000] * 5,
    "FLAT": [None, 500, 500, 500, 500],
    "OVERLAP": [None, None, 2000, 2000, 2500],
    "DOWN": [3000, 3000, 3000, 2000, 2000],
    "REACT": [1000, 1000, 0, 0, 0],
    "PILOT": [None, None, None, None, 1000],
    "VERS": [None, 1000, 1000, 1000, 1000],
    "LATELOAD": [None, None, None, 500, 500],
}

# mart.mrr_movements for the December snapshot: month -> (mrr, customers, new, expansion,
# contraction, churned, reactivation, net_new).
DECEMBER_BRIDGE = {
    date(2024, 1, 1): (6000, 4, 6000, 0, 0, 0, 0, 6000),
    date(2024, 2, 1): (8000, 6, 2000, 0, 0, 0, 0, 2000),
    date(2024, 3, 1): (9000, 6, 2000, 0, 0, -1000, 0, 1000),
    date(2024, 4, 1): (8500, 7, 500, 0, -1000, 0, 0, -500),
    date(2024, 5, 1): (10000, 8, 1000, 500, 0, 0, 0, 1500),
    date(2024, 6, 1): (10800, 9, 0, 0, 0, 0, 800, 800),
    date(2024, 7, 1): (11300, 9, 0, 500, 0, 0, 0, 500),
    date(2024, 8, 1): (11300, 9, 0, 0, 0, 0, 0, 0),
    date(2024, 9, 1): (10500, 8, 0, 0, 0, -800, 0, -800),
    date(2024, 10, 1): (10500, 8, 0, 0, 0, 0, 0, 0),
    date(2024, 11, 1): (10700, 9, 200, 0, 0, 0, 0, 200),
    date(2024, 12, 1): (10700, 9, 0, 0, 0, 0, 0, 0),
}

# mart.cohort_retention for the December snapshot, monthly grain:
# (cohort_month, k) -> (cohort_customers, active_customers, starting_mrr, mrr, retained mrr = Σ min(mrr, start)).
# January cohort: MIDSTART 1000, RENEW 1000, DOWN 3000, REACT 1000.
_JAN = [
    (4, 4, 6000, 6000, 6000),  # k=0 January
    (4, 4, 6000, 6000, 6000),  # k=1 February
    (4, 3, 6000, 5000, 5000),  # k=2 March: REACT churned
    (4, 3, 6000, 4000, 4000),  # k=3 April: DOWN 3000 -> 2000
    (4, 3, 6000, 4000, 4000),  # k=4 May
    (4, 4, 6000, 4800, 4800),  # k=5 June: REACT back at 800
    (4, 4, 6000, 5300, 4800),  # k=6 July: RENEW 1500, capped at its start 1000 for GRR
    (4, 4, 6000, 5300, 4800),  # k=7 August
    (4, 3, 6000, 4500, 4000),  # k=8 September: REACT gone again
    (4, 3, 6000, 4500, 4000),  # k=9
    (4, 3, 6000, 4500, 4000),  # k=10
    (4, 3, 6000, 4500, 4000),  # k=11 December
]
MONTHLY_COHORTS = {
    **{(date(2024, 1, 1), k): row for k, row in enumerate(_JAN)},
    **{(date(2024, 2, 1), k): (2, 2, 2000, 2000, 2000) for k in range(11)},  # FLAT 500, VERS 1500
    **{(date(2024, 3, 1), k): (1, 1, 2000, 2000 if k < 2 else 2500, 2000) for k in range(10)},  # OVERLAP
    **{(date(2024, 4, 1), k): (1, 1, 500, 500, 500) for k in range(9)},  # LATELOAD
    **{(date(2024, 5, 1), k): (1, 1, 1000, 1000, 1000) for k in range(8)},  # PILOT
    **{(date(2024, 11, 1), k): (1, 1, 200, 200, 200) for k in range(2)},  # LASTDAY
}
# Yearly grain, cohort 2024, k = months since 1 January 2024; the base is the 2024 accounts
# acquired by that month (all ten from November on).
YEARLY_COHORTS = {
    (date(2024, 1, 1), k): row
    for k, row in enumerate(
        [
            (4, 4, 6000, 6000, 6000),
            (6, 6, 8000, 8000, 8000),
            (7, 6, 10000, 9000, 9000),
            (8, 7, 10500, 8500, 8500),
            (9, 8, 11500, 10000, 9500),
            (9, 9, 11500, 10800, 10300),
            (9, 9, 11500, 11300, 10300),
            (9, 9, 11500, 11300, 10300),
            (9, 8, 11500, 10500, 9500),
            (9, 8, 11500, 10500, 9500),
            (10, 9, 11700, 10700, 9700),
            (10, 9, 11700, 10700, 9700),
        ]
    )
}


def expected_rows(mrr_by_account: dict[str, list], months: list[date] | None = None) -> dict[tuple[str, date], float]:
    months = months or _MONTHS_2024
    return {
        (account, month): float(value)
        for account, values in mrr_by_account.items()
        for month, value in zip(months, values, strict=True)
        if value is not None
    }


def december_expected() -> dict[tuple[str, date], tuple[float, str | None]]:
    mrr = expected_rows(DECEMBER_MRR)
    movements = {
        (account, month): movement
        for account, values in DECEMBER_MOVEMENTS.items()
        for month, movement in zip(_MONTHS_2024, values, strict=True)
        if DECEMBER_MRR[account][month.month - 1] is not None
    }
    return {key: (value, movements[key]) for key, value in mrr.items()}


def may_expected() -> dict[tuple[str, date], float]:
    return expected_rows(MAY_MRR, _MONTHS_2024[:5])


def frame(rows: list[dict], run_id: str = "cohort_fixture", loaded_at: datetime = LOADED_AT) -> pd.DataFrame:
    """Rows ready for ``warehouse.insert_frame`` into ``staging.contracts``."""
    return pd.DataFrame(rows).assign(_run_id=run_id, _source="tests/cohort_fixtures.py", _loaded_at=loaded_at)


# --- an independent implementation of the MRR rules (plain pandas, month by month) -------------


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def contracts_as_known(contracts: pd.DataFrame, snapshot_month: date) -> pd.DataFrame:
    """Each contract's version as known at the end of ``snapshot_month``."""
    cutoff = pd.Timestamp(_next_month(snapshot_month))
    ordered = contracts.sort_values(["contract_id", "updated_at", "_loaded_at"])
    known = ordered[ordered["updated_at"] < cutoff].groupby("contract_id").tail(1)
    earliest = ordered.groupby("contract_id").head(1)
    fallback = earliest[
        ~earliest["contract_id"].isin(known["contract_id"]) & (earliest["start_date"] < _next_month(snapshot_month))
    ]
    return pd.concat([known, fallback], ignore_index=True)


def reference_mrr(contracts: pd.DataFrame, snapshot_month: date) -> list[dict]:
    """account_id, month, mrr, movement for every month from each account's first MRR month."""
    as_known = contracts_as_known(contracts, snapshot_month)
    paid = as_known[(as_known["arr"] > 0) & (as_known["start_date"] < _next_month(snapshot_month))]
    if paid.empty:
        return []
    first = min(paid["start_date"])
    month = date(first.year, first.month, 1)
    # Exact decimal sums, like the SQL (numeric): float noise must not turn "unchanged" into a movement.
    arr: dict[tuple[str, date], Decimal] = {}
    months = []
    while month <= snapshot_month:
        months.append(month)
        last_day = _next_month(month) - timedelta(days=1)
        for row in paid.itertuples():
            ends = row.end_date if isinstance(row.end_date, date) else None
            if row.start_date <= last_day and (ends is None or ends >= last_day):
                key = (row.account_id, month)
                arr[key] = arr.get(key, Decimal(0)) + Decimal(repr(float(row.arr)))
        month = _next_month(month)
    rows = []
    for account in sorted({a for a, _ in arr}):
        previous = None
        for month in months:
            value = arr.get((account, month), Decimal(0))
            if previous is None and value == 0:
                continue  # before the first MRR month
            if previous is None:
                movement = "new"
            elif previous == 0 and value > 0:
                movement = "reactivation"
            elif previous > 0 and value == 0:
                movement = "churn"
            elif value > previous:
                movement = "expansion"
            elif value < previous:
                movement = "contraction"
            else:
                movement = "unchanged" if value > 0 else None
            rows.append({"account_id": account, "month": month, "mrr": float(value) / 12, "movement": movement})
            previous = value
    return rows
