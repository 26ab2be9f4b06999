"""CRM push cost: API calls and time for 0, 100 and 10,000 changed accounts, HubSpot behind an HTTP-level fake.

    python bench/crm_push.py --as-of YYYY-MM-DD

The fake (``postsales_dev.hubspot_fake``: a real HTTP server on 127.0.0.1, HubSpot's JSON
shapes, the search indexed by key so the fake itself is not the bottleneck at 100k companies)
answers the official client the adapter is built on. The real ``sync`` runs against the bench
warehouse: a first approved push, then runs where 0, 100 and 10,000 accounts changed (their
``mart.account_segments`` quadrant rewritten). The client's search pacing (SEARCH_INTERVAL,
0.25 s between searches in production) is set to 0 here; the result reports the pacing a real
HubSpot would add (search calls x interval).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "devtools")]

KEY = "postsales_account_id"


def main() -> int:
    import sqlalchemy as sa

    from postsales import warehouse
    from postsales.crm.config import CrmSyncConfig, HubSpotCrm, load_crm_sync
    from postsales.crm.hubspot import HubSpotAdapter
    from postsales.crm.sync import sync
    from postsales.hubspot_api import SEARCH_INTERVAL, HubSpotClient
    from postsales.retry import RetryPolicy
    from postsales_dev.hubspot_fake import FakePortal, HubSpotServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--as-of", required=True, type=date.fromisoformat)
    args = parser.parse_args()
    as_of = args.as_of

    fields = {name: {"crm_field": name} for name in load_crm_sync().fields}
    config = CrmSyncConfig(
        version="bench",
        adapter="hubspot",
        hubspot=HubSpotCrm(),
        key={"crm_key_field": KEY},
        fields=fields,
        manual_override_field="manual_segment_lock",
    )
    eng = warehouse.engine()
    with eng.connect() as conn:
        ids = [
            row[0]
            for row in conn.execute(
                sa.text("select account_id from mart.account_segments where as_of_date = :d order by account_id"),
                {"d": as_of},
            )
        ]
    server = HubSpotServer()
    portal = FakePortal()
    for i, account_id in enumerate(ids):
        portal.add("companies", 5000 + i, {KEY: account_id})
    portal.install(server)
    client = HubSpotClient(
        "pat-bench-token", host=server.url, retry=RetryPolicy(sleep=lambda s: None), search_interval=0
    )
    adapter = HubSpotAdapter(client, HubSpotCrm(), KEY)
    with eng.begin() as conn:  # a fresh fake CRM: forget what an earlier bench run pushed to it
        conn.execute(sa.text("delete from ops.crm_sync_state where target = :t"), {"t": adapter.describe()})
    runs = {}
    try:

        def measured(label: str, **kwargs) -> None:
            server.reset()
            adapter.calls = 0
            started = time.perf_counter()
            result = sync(as_of, config=config, adapter=adapter, run_id=f"bench_{label}", **kwargs)
            seconds = time.perf_counter() - started
            by_endpoint = Counter(call.request.path.rsplit("/", 1)[-1] for call in server.calls)
            runs[label] = {
                "seconds": seconds,
                "accounts_considered": result["accounts_considered"],
                "accounts_changed": result["accounts_changed"],
                "fields_changed": result["fields_changed"],
                "write_calls": result["write_calls"],
                "read_calls": by_endpoint.get("search", 0),
                "api_calls": len(server.calls),
                "search_pacing_seconds": by_endpoint.get("search", 0) * SEARCH_INTERVAL,
            }
            print(f"{label}: {runs[label]}", file=sys.stderr)

        measured("first_push", approve_first_push=True, approve_large_change=True)
        for changed in (0, 100, 10_000):
            if changed:
                with eng.begin() as conn:
                    # Flip the quadrant of the first `changed` accounts: one field changes on each.
                    conn.execute(
                        sa.text(
                            "update mart.account_segments set quadrant = quadrant || ' (bench)' "
                            "where as_of_date = :d and account_id in "
                            "(select account_id from mart.account_segments where as_of_date = :d "
                            "order by account_id limit :n)"
                        ),
                        {"d": as_of, "n": changed},
                    )
            measured(f"changed_{changed}", approve_large_change=True)
        with eng.begin() as conn:  # leave the segments as the pipeline wrote them
            conn.execute(
                sa.text(
                    "update mart.account_segments set quadrant = replace(quadrant, ' (bench)', '') "
                    "where as_of_date = :d"
                ),
                {"d": as_of},
            )
    finally:
        server.close()
    print(json.dumps({"accounts": len(ids), "search_interval_seconds": SEARCH_INTERVAL, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
