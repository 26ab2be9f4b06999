"""What a team might write without the pipeline: pandas, per-account loops and groupby-apply.

    python bench/naive_pandas.py --snapshot-month YYYY-MM-01 --as-of YYYY-MM-DD [--max-accounts N]

1. MRR movements: load the contracts, keep each contract's latest version, then for every
   account loop over its months, sum the ARR active on each month's last day and classify
   the change (new / expansion / contraction / churn / reactivation), like mrr_monthly.sql.
2. Usage features: load every usage row of the last 180 days into pandas and groupby-apply
   per account (the 90-day averages and trend segmentation reads).

``--max-accounts`` keeps the first N accounts (by id) so a large scale can be sampled; the
result then says so and the orchestrator extrapolates linearly to all accounts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta


def month_ends(first: date, last: date) -> list[tuple[date, date]]:
    months = []
    current = first.replace(day=1)
    while current <= last:
        following = (current + timedelta(days=32)).replace(day=1)
        months.append((current, following - timedelta(days=1)))
        current = following
    return months


def mrr_movements(contracts, snapshot_month: date):
    import pandas as pd

    # Latest version of each contract: groupby-apply, the way it is often written.
    latest = contracts.groupby("contract_id", group_keys=False).apply(
        lambda versions: versions.sort_values(["updated_at", "_loaded_at"]).tail(1)
    )
    paid = latest[(latest["arr"] > 0) & (latest["start_date"] <= snapshot_month + timedelta(days=31))]
    paid = paid[paid["start_date"] < (snapshot_month + timedelta(days=32)).replace(day=1)]
    rows = []
    for account_id, account_contracts in paid.groupby("account_id"):
        months = month_ends(min(account_contracts["start_date"]), snapshot_month)
        previous = None
        started = False
        for month_start, month_end in months:
            arr = 0.0
            for contract in account_contracts.itertuples():
                ends = contract.end_date
                if contract.start_date <= month_end and (pd.isna(ends) or ends >= month_end):
                    arr += float(contract.arr)
            if not started and arr == 0:
                continue  # the account's first month is its first month with MRR
            started = True
            if previous is None:
                movement = "new"
            elif previous == 0 and arr > 0:
                movement = "reactivation"
            elif previous > 0 and arr == 0:
                movement = "churn"
            elif arr > previous:
                movement = "expansion"
            elif arr < previous:
                movement = "contraction"
            else:
                movement = "unchanged" if arr > 0 else None
            change = arr - (previous or 0.0)
            rows.append((account_id, month_start, arr / 12, change / 12, movement))
            previous = arr
    frame = pd.DataFrame(rows, columns=["account_id", "month", "mrr", "mrr_change", "movement"])
    totals = frame.groupby("month").agg(mrr=("mrr", "sum"), customers=("mrr", lambda m: int((m > 0).sum())))
    return frame, totals


def usage_features(usage, as_of: date):
    import pandas as pd

    window_start = pd.Timestamp(as_of - timedelta(days=89))
    previous_start = pd.Timestamp(as_of - timedelta(days=179))

    def features(rows):
        recent = rows[rows["usage_date"] >= window_start]
        before = rows[(rows["usage_date"] < window_start) & (rows["usage_date"] >= previous_start)]
        seats = recent["licensed_seats"].max() if len(recent) else 0
        active = recent["active_users"].mean() if len(recent) else 0.0
        return pd.Series(
            {
                "usage_days": len(recent),
                "active_users_avg": active,
                "seat_utilization": active / seats if seats else None,
                "events_avg": recent["events"].mean() if len(recent) else 0.0,
                "features_used_avg": recent["features_used"].mean() if len(recent) else 0.0,
                "active_users_trend": (active / before["active_users"].mean() - 1)
                if len(before) and before["active_users"].mean()
                else None,
            }
        )

    return usage.groupby("account_id").apply(features)


def main() -> int:
    import duckdb

    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshot-month", required=True, type=date.fromisoformat)
    parser.add_argument("--as-of", required=True, type=date.fromisoformat)
    parser.add_argument("--max-accounts", type=int)
    args = parser.parse_args()
    con = duckdb.connect(os.environ["POSTSALES_WAREHOUSE_URL"].removeprefix("duckdb:///"), read_only=True)
    accounts = con.execute("select count(distinct account_id) from staging.accounts").fetchone()[0]
    sample = "true"
    if args.max_accounts and args.max_accounts < accounts:
        sample = (
            "account_id in (select distinct account_id from staging.accounts "
            f"order by account_id limit {int(args.max_accounts)})"
        )
    result: dict = {"accounts": accounts, "sampled_accounts": min(accounts, args.max_accounts or accounts)}

    started = time.perf_counter()
    contracts = con.execute(
        f"select contract_id, account_id, start_date, end_date, arr, updated_at, _loaded_at "
        f"from staging.contracts where {sample}"
    ).df()
    contracts["start_date"] = contracts["start_date"].dt.date
    contracts["end_date"] = contracts["end_date"].map(lambda v: None if v is None or v != v else v.date())
    frame, totals = mrr_movements(contracts, args.snapshot_month)
    result["mrr_seconds"] = time.perf_counter() - started
    result["mrr_rows"] = len(frame)
    result["snapshot_mrr"] = float(totals["mrr"].iloc[-1]) if len(totals) else 0.0

    started = time.perf_counter()
    usage = con.execute(
        "select account_id, usage_date, active_users, licensed_seats, events, features_used "
        f"from staging.usage_daily where {sample} and usage_date > $start and usage_date <= $as_of",
        {"start": args.as_of - timedelta(days=180), "as_of": args.as_of},
    ).df()
    usage["usage_date"] = usage["usage_date"].astype("datetime64[ns]")
    result["usage_rows_loaded"] = len(usage)
    features = usage_features(usage, args.as_of)
    result["features_seconds"] = time.perf_counter() - started
    result["feature_rows"] = len(features)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
