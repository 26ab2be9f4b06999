"""CRM push cost: API calls and time for 0, 100 and 10,000 changed accounts, HubSpot behind `responses`.

    python bench/crm_push.py --as-of YYYY-MM-DD

The fake answers the search and batch-update endpoints with HubSpot's JSON shapes (like
tests/integration/test_crm_hubspot.py's FakeHubSpot, indexed by key so the fake itself is
not the bottleneck at 100k companies). The real ``sync`` runs against the bench warehouse:
a first approved push, then runs where 0, 100 and 10,000 accounts changed (their
``mart.account_segments`` quadrant rewritten). The adapter's search pacing
(SEARCH_INTERVAL, 0.25 s between searches in production) is set to 0 here; the result
reports the pacing a real HubSpot would add (search calls x interval).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

BASE = "https://api.hubapi.com"
COMPANIES = f"{BASE}/crm/v3/objects/companies"
KEY = "postsales_account_id"


class FakeHubSpot:
    def __init__(self, account_ids: list[str]):
        self.companies = {str(5000 + i): {KEY: account_id} for i, account_id in enumerate(account_ids)}
        self.by_key = {key.lower(): crm_id for crm_id, key in zip(self.companies, account_ids, strict=True)}

    def search(self, request):
        body = json.loads(request.body)
        [flt] = body["filterGroups"][0]["filters"]
        # Each matching company once, however many of the IN values (key, lowercase key) match it.
        matched = dict.fromkeys(self.by_key[v.lower()] for v in flt["values"] if v.lower() in self.by_key)
        hits = [
            {"id": crm_id, "properties": {p: self.companies[crm_id].get(p) for p in body["properties"]}}
            for crm_id in matched
        ]
        return 200, {}, json.dumps({"total": len(hits), "results": hits})

    def update(self, request):
        results = []
        for item in json.loads(request.body)["inputs"]:
            for name, value in item["properties"].items():
                self.companies[item["id"]][name] = value or None
            results.append({"id": item["id"], "properties": self.companies[item["id"]]})
        return 200, {}, json.dumps({"status": "COMPLETE", "results": results})


def main() -> int:
    import responses
    import sqlalchemy as sa

    from postsales import warehouse
    from postsales.crm.config import CrmSyncConfig, HubSpotCrm, load_crm_sync
    from postsales.crm.hubspot import SEARCH_INTERVAL, HubSpotAdapter
    from postsales.crm.sync import sync
    from postsales.retry import RetryPolicy

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
        # A fresh fake CRM: forget what an earlier bench run pushed to it.
        conn.execute(sa.text("delete from ops.crm_sync_state where target = 'hubspot:companies'"))
        conn.commit()
    fake = FakeHubSpot(ids)
    adapter = HubSpotAdapter("pat-bench-token", HubSpotCrm(), KEY, RetryPolicy(sleep=lambda s: None), search_interval=0)
    runs = {}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, f"{COMPANIES}/search", callback=fake.search)
        mock.add_callback(responses.POST, f"{COMPANIES}/batch/update", callback=fake.update)

        def measured(label: str, **kwargs) -> None:
            mock.calls.reset()
            adapter.calls = 0
            started = time.perf_counter()
            result = sync(as_of, config=config, adapter=adapter, run_id=f"bench_{label}", **kwargs)
            seconds = time.perf_counter() - started
            by_endpoint = Counter(call.request.url.rsplit("/", 1)[-1] for call in mock.calls)
            runs[label] = {
                "seconds": seconds,
                "accounts_considered": result["accounts_considered"],
                "accounts_changed": result["accounts_changed"],
                "fields_changed": result["fields_changed"],
                "write_calls": result["write_calls"],
                "read_calls": by_endpoint.get("search", 0),
                "api_calls": len(mock.calls),
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
    print(json.dumps({"accounts": len(ids), "search_interval_seconds": SEARCH_INTERVAL, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
