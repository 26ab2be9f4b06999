"""A tiny hand-built file source with known good and bad rows.

Day 1 (2024-03-01) holds 96 ordinary "filler" accounts plus the special cases
below; day 2 (2024-03-02) holds one more account and its rows. Every count the
tests assert is derived here by hand, next to the rows that produce it.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

DAY1 = datetime(2024, 3, 1)
DAY2 = datetime(2024, 3, 2)
DAY3 = datetime(2024, 3, 3)
FILLERS = [f"F{i:03d}" for i in range(1, 97)]

ACCOUNT_COLUMNS = [
    "account_id", "name", "industry", "employee_count", "annual_revenue", "country", "created_at",
    "updated_at", "wallet_potential_arr", "go_live_date", "lifecycle_stage", "referenceable",
    "segment_override", "crm_owner",
]  # fmt: skip


def _account(account_id, updated="2024-03-01T10:00:00", stage="Adoption", **overrides):
    row = {
        "account_id": account_id,
        "name": f"Company {account_id}",
        "industry": "Software",
        "employee_count": "120",
        "annual_revenue": "5000000",
        "country": "US",
        "created_at": "2023-06-01T09:00:00",
        "updated_at": updated,
        "wallet_potential_arr": "50000",
        "go_live_date": "2023-08-01",
        "lifecycle_stage": stage,
        "referenceable": "false",
        "segment_override": "",
        "crm_owner": "owner@example.com",
    }
    row.update(overrides)
    return row


ACCOUNTS = [
    *(_account(a) for a in FILLERS),
    _account("A1", referenceable="true"),
    _account("A2", updated="2024-03-02T08:00:00"),  # day 2
    _account("A3", segment_override="Enterprise", employee_count="9000"),
    _account("A4", stage="Onboarding"),  # bad: unknown lifecycle stage
    _account("", name="No id"),  # bad: null account_id
    _account("A5", name="Dup one"),  # bad: duplicate account_id (both copies)
    _account("A5", name="Dup two"),
]
# Day 1: 96 fillers + A1, A3 good; A4, blank, A5 x2 bad.
ACCOUNTS_DAY1 = {"read": 102, "loaded": 98, "quarantined": 4}
ACCOUNTS_DAY2 = {"read": 1, "loaded": 1, "quarantined": 0}

CONTRACT_COLUMNS = ["contract_id", "account_id", "start_date", "end_date", "arr", "plan", "updated_at"]


def _contract(contract_id, account_id, start="2024-01-15", end="2025-01-14", arr="12000", updated=None):
    return {
        "contract_id": contract_id,
        "account_id": account_id,
        "start_date": start,
        "end_date": end,
        "arr": arr,
        "plan": "Growth",
        "updated_at": updated or "2024-03-01T11:00:00",
    }


CONTRACTS = [
    *(_contract(f"{a}-C1", a) for a in FILLERS),
    _contract("C1", "A1"),
    _contract("C2", "A1", arr="n/a"),  # bad: non-numeric ARR
    _contract("C3", "A9"),  # bad: unknown account
    _contract("C4", "A3", start="2024-02-01", end="2024-01-01"),  # bad: end before start
    _contract("C5", "A1", arr="-100"),  # bad: negative ARR
    _contract("C6", "A2", end="", updated="2024-03-02T09:00:00"),  # day 2, evergreen
]
CONTRACTS_DAY1 = {"read": 101, "loaded": 97, "quarantined": 4}
CONTRACTS_DAY2 = {"read": 1, "loaded": 1, "quarantined": 0}

SURVEY_COLUMNS = ["account_id", "responded_at", "survey_type", "score"]
SURVEYS = [
    *({"account_id": a, "responded_at": "2024-03-01T12:00:00", "survey_type": "nps", "score": "8"} for a in FILLERS),
    {"account_id": "A1", "responded_at": "2024-03-01T12:00:00", "survey_type": "nps", "score": "9"},
    {"account_id": "A1", "responded_at": "2024-03-01T13:00:00", "survey_type": "nps", "score": "11"},  # bad
    {"account_id": "A3", "responded_at": "2024-03-01T12:00:00", "survey_type": "csat", "score": "4"},
    {"account_id": "A3", "responded_at": "2024-03-01T13:00:00", "survey_type": "csat", "score": "0"},  # bad
]
SURVEYS_DAY1 = {"read": 100, "loaded": 98, "quarantined": 2}

USAGE_COLUMNS = ["account_id", "usage_date", "active_users", "licensed_seats", "events", "features_used"]


def _usage(account_id, day="2024-03-01", active="10"):
    return {
        "account_id": account_id,
        "usage_date": day,
        "active_users": active,
        "licensed_seats": "20",
        "events": "300",
        "features_used": "5",
    }


USAGE_FILES = {
    "2024-03-01": [
        *(_usage(a) for a in FILLERS),
        _usage("A1"),
        _usage("A3", active="150"),
        _usage("A9"),  # bad: unknown account
        _usage("A1", day="2099-01-01"),  # bad: future-dated
    ],
    "2024-03-02": [_usage("A1", day="2024-03-02"), _usage("A2", day="2024-03-02")],
}
USAGE_DAY1 = {"read": 100, "loaded": 98, "quarantined": 2}
USAGE_DAY2 = {"read": 2, "loaded": 2, "quarantined": 0}


def write_csv(path: Path, columns: list[str], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def build(directory: Path) -> Path:
    write_csv(directory / "accounts.csv", ACCOUNT_COLUMNS, ACCOUNTS)
    write_csv(directory / "contracts.csv", CONTRACT_COLUMNS, CONTRACTS)
    write_csv(directory / "survey_responses.csv", SURVEY_COLUMNS, SURVEYS)
    for day, rows in USAGE_FILES.items():
        write_csv(directory / "usage_daily" / f"{day}.csv", USAGE_COLUMNS, rows)
    return directory
