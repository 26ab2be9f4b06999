"""The HubSpot adapter on HubSpot's official client, against a real local HTTP server.

hubspot-api-client talks through urllib3, which ``responses`` never sees: the fakes
(``postsales_dev.hubspot_fake``) answer HTTP requests on 127.0.0.1 with the API's real JSON
shapes, as HubSpot documents them: search requests (``filterGroups``/``filters`` with ``IN``
``values``, ``properties``, ``limit``, ``after``, ``sorts``) and pages (``total``,
``results[].id/properties``, ``paging.next.after``); batch read/update (``inputs``) answered
by 200 ``{"status": "COMPLETE", "results"}`` or 207 with ``errors[]`` (``status``,
``category``, ``message``, ``context.ids``); error bodies (``status``, ``message``,
``correlationId``, ``category``) and the 429 body (``errorType: RATE_LIMIT``, ``policyName``)
with the ``X-HubSpot-RateLimit-*`` headers. The connection is an Airflow connection in an
``AIRFLOW_CONN_<ID>`` environment variable (JSON), as a user sets it.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from postsales.crm.base import Change, WriteInterrupted
from postsales.crm.config import CrmSyncConfig, HubSpotCrm
from postsales.crm.hubspot import HubSpotAdapter, hubspot_value
from postsales.errors import AccessRefusedError, NotRetryableError, PermanentError, TransientError
from postsales.hubspot_api import SEARCH_CAP, HubSpotClient, epoch_ms, parse_timestamp
from postsales.retry import RetryPolicy
from postsales_dev.hubspot_fake import CORRELATION, FakePortal, HubSpotServer

BASE = "https://api.hubapi.com"
COMPANIES = "/crm/v3/objects/companies"
SEARCH = f"{COMPANIES}/search"
BATCH_READ = f"{COMPANIES}/batch/read"
BATCH_UPDATE = f"{COMPANIES}/batch/update"
TOKEN = "pat-eu1-7f3c2a1b-0d4e-4c5f-9a8b-do-not-log-me"
KEY = "postsales_account_id"
PORTAL = 1234567  # the fake server's account id (GET /account-info/v3/details)


@pytest.fixture
def server():
    with HubSpotServer(portal_id=PORTAL) as fake:
        yield fake


def sent(server: HubSpotServer, path: str) -> list:
    """The requests ``server`` received on ``path``."""
    return [call for call in server.calls if call.request.path == path]


def make_adapter(server, key_field=KEY, attempts=4, **kwargs):
    sleeps: list[float] = []
    retry = RetryPolicy(attempts=attempts, backoff_seconds=0.5, sleep=sleeps.append)
    kwargs.setdefault("search_interval", 0)
    client = HubSpotClient(TOKEN, host=server.url, retry=retry, **kwargs)
    return HubSpotAdapter(client, HubSpotCrm(), key_field), sleeps


def company(crm_id: str | int, **properties) -> dict:
    stamp = "2026-03-01T07:30:00.123Z"
    return {
        "id": str(crm_id),
        "properties": {"createdate": "2024-01-05T10:00:00Z", "hs_lastmodifieddate": stamp, "hs_object_id": str(crm_id)}
        | properties,
        "createdAt": "2024-01-05T10:00:00Z",
        "updatedAt": stamp,
        "archived": False,
    }


def page(results: list[dict], after: str | None = None, total: int | None = None) -> dict:
    body: dict = {"total": len(results) if total is None else total, "results": results}
    if after is not None:
        body["paging"] = {"next": {"after": after, "link": f"{BASE}{SEARCH}?after={after}"}}
    return body


def error_body(category: str, message: str) -> dict:
    return {"status": "error", "message": message, "correlationId": CORRELATION, "category": category}


def batch_error(category: str, message: str, ids: list[str]) -> dict:
    return {"status": "error", "category": category, "message": message, "context": {"ids": ids}}


def interrupted(adapter, batch: list[Change]) -> tuple[list, Exception]:
    """An update that stopped part-way: the results it kept, and the error that stopped it."""
    with pytest.raises(WriteInterrupted) as raised:
        adapter.update(batch)
    return raised.value.results, raised.value.__cause__


def changes(n: int, start: int = 1) -> list[Change]:
    return [Change(f"ACC-{i}", str(1000 + i), {"value_tier": "Gold"}) for i in range(start, start + n)]


def body_of(call) -> dict:
    return json.loads(call.request.body)


def connection(monkeypatch, conn_id: str = "hubspot_default", **fields) -> None:
    """The Airflow connection ``conn_id`` as a user sets it: ``AIRFLOW_CONN_<ID>``, JSON."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http"} | fields))


def echo_success(request):
    inputs = json.loads(request.body)["inputs"]
    results = [
        {"id": i["id"], "properties": i["properties"], "createdAt": "2024-01-05T10:00:00Z", "archived": False}
        for i in inputs
    ]
    return 200, {}, json.dumps({"status": "COMPLETE", "results": results, "startedAt": "2026-03-01T08:00:00Z"})


RATE_LIMIT_HEADERS = {
    "X-HubSpot-RateLimit-Daily": "250000",
    "X-HubSpot-RateLimit-Daily-Remaining": "187435",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    "X-HubSpot-RateLimit-Max": "100",
    "X-HubSpot-RateLimit-Remaining": "0",
}


def rate_limited(policy: str = "TEN_SECONDLY_ROLLING") -> dict:
    return {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": CORRELATION,
        "policyName": policy,
        "groupName": "apps:hapikey:12345",
    }


# --- fetch --------------------------------------------------------------------------------


def test_fetch_searches_by_key_follows_paging_and_counts_duplicate_keys(server):
    server.add(
        "POST",
        SEARCH,
        json=page(
            [
                company(101, **{KEY: "ACC-1", "value_tier": "Gold", "manual_segment_lock": "false"}),
                company(102, **{KEY: "ACC-2", "value_tier": None, "manual_segment_lock": "true"}),
            ],
            after="2",
            total=4,
        ),
    )
    server.add(
        "POST",
        SEARCH,
        json=page(
            [
                company(103, **{KEY: "ACC-2", "value_tier": "Silver", "manual_segment_lock": None}),  # same key
                company(104, **{KEY: "acc-3", "value_tier": "Bronze", "manual_segment_lock": None}),  # case differs
            ],
            total=4,
        ),
    )
    adapter, _ = make_adapter(server)

    found = adapter.fetch(["ACC-1", "ACC-2", "ACC-3", "ACC-9"], ["value_tier", "manual_segment_lock"])

    first, second = (body_of(call) for call in server.calls)
    assert first == {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": KEY,
                        "operator": "IN",
                        "values": ["ACC-1", "acc-1", "ACC-2", "acc-2", "ACC-3", "acc-3", "ACC-9", "acc-9"],
                    }
                ]
            }
        ],
        "properties": [KEY, "value_tier", "manual_segment_lock"],
        "limit": 100,
    }
    assert second == first | {"after": "2"}
    assert server.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert set(found) == {"ACC-1", "ACC-2", "ACC-3"}  # ACC-9 is not in the CRM
    assert found["ACC-1"].crm_id == "101"
    assert found["ACC-1"].values == {"value_tier": "Gold", "manual_segment_lock": "false"}
    assert found["ACC-1"].matches == 1
    assert found["ACC-2"].matches == 2  # ambiguous: the sync never writes it
    assert found["ACC-3"].crm_id == "104"
    assert adapter.calls == 0  # reads are not write calls


def test_fetch_chunks_keys_into_in_filters_of_at_most_100_values(server):
    server.add("POST", SEARCH, json=page([]))
    adapter, _ = make_adapter(server)

    assert adapter.fetch([str(n) for n in range(250)], ["value_tier"]) == {}
    values = [body_of(c)["filterGroups"][0]["filters"][0]["values"] for c in server.calls]
    assert [len(v) for v in values] == [100, 100, 50]
    assert [v for chunk in values for v in chunk] == [str(n) for n in range(250)]

    server.reset()
    adapter.fetch([f"ACC-{n}" for n in range(120)], ["value_tier"])  # each key and its lowercase form
    values = [body_of(c)["filterGroups"][0]["filters"][0]["values"] for c in server.calls]
    assert [len(v) for v in values] == [100, 100, 40]
    assert all(len(v) <= 100 for v in values)


def test_fetch_by_record_id_reads_the_batch_and_ignores_missing_ids(server):
    server.add(
        "POST",
        BATCH_READ,
        status=207,
        json={
            "status": "COMPLETE",
            "results": [company(2001, value_tier="Gold")],
            "numErrors": 1,
            "errors": [
                batch_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some COMPANY objects, they may be deleted or not exist. Check that ids are valid.",
                    ["2002"],
                )
            ],
            "startedAt": "2026-03-01T08:00:00Z",
            "completedAt": "2026-03-01T08:00:01Z",
        },
    )
    adapter, _ = make_adapter(server, key_field="hs_object_id")

    found = adapter.fetch(["2001", "2002", "not-an-id"], ["value_tier"])

    assert len(server.calls) == 1
    assert server.calls[0].request.url == f"{server.url}{BATCH_READ}?archived=false"
    assert body_of(server.calls[0]) == {"properties": ["value_tier"], "inputs": [{"id": "2001"}, {"id": "2002"}]}
    assert list(found) == ["2001"]
    assert (found["2001"].crm_id, found["2001"].values) == ("2001", {"value_tier": "Gold"})


def test_fetch_bad_filter_is_permanent_and_rate_limits_are_retried(server):
    server.add("POST", SEARCH, status=429, json=rate_limited("SECONDLY"))  # search 429s carry no rate-limit headers
    server.add("POST", SEARCH, json=page([company(7, **{KEY: "ACC-7"})]))
    adapter, sleeps = make_adapter(server)
    assert list(adapter.fetch(["ACC-7"], [])) == ["ACC-7"]
    assert len(sleeps) == 1  # backoff

    server.add(
        "POST",
        SEARCH,
        status=400,
        json=error_body("VALIDATION_ERROR", "There was a problem with the request.")
        | {"errors": [{"message": "Property 'no_such' does not exist", "code": "PROPERTY_DOESNT_EXIST"}]},
    )
    with pytest.raises(PermanentError, match="VALIDATION_ERROR"):
        adapter.fetch(["ACC-1"], ["no_such"])
    assert len(sleeps) == 1  # not retried


def test_fetch_rejects_property_names_that_are_not_internal_names(server):
    adapter, _ = make_adapter(server)
    with pytest.raises(PermanentError, match="INVALID_FIELD"):
        adapter.fetch(["ACC-1"], ["value tier"])


def test_search_waits_between_requests(server):
    adapter, sleeps = make_adapter(server, search_interval=0.25)  # HubSpot takes 5 searches a second
    server.add("POST", SEARCH, json=page([]))
    adapter.fetch([f"K{n}" for n in range(150)], [])  # 2 values a key (K0, k0): 3 searches
    assert len(server.calls) == 3
    assert len(sleeps) == 2 and all(0 < s <= 0.25 for s in sleeps)


# --- incremental read -----------------------------------------------------------------------


def fake_search_index(store: list[dict], calls: list[dict]):
    """A search endpoint over ``store`` (sorted as HubSpot does), refusing to page past 10,000."""

    def callback(request):
        body = json.loads(request.body)
        calls.append(body)
        [group] = body["filterGroups"]
        [flt] = group["filters"]
        assert (flt["propertyName"], flt["operator"]) == ("hs_lastmodifieddate", "GTE")
        assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
        bound = int(flt["value"])
        matching = [c for c in store if parse_timestamp(c["properties"]["hs_lastmodifieddate"]) >= bound]
        offset, limit = int(body.get("after", 0)), body["limit"]
        if offset + limit > SEARCH_CAP:
            return 400, {}, json.dumps(error_body("VALIDATION_ERROR", "the search API is limited to 10,000 results"))
        results = matching[offset : offset + limit]
        after = str(offset + limit) if offset + limit < len(matching) else None
        return 200, {}, json.dumps(page(results, after, total=len(matching)))

    return callback


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_search_cursor_that_does_not_move_fails_instead_of_paging_forever(server):
    """A cursor answered again and again (a caching proxy, a bug) made the page loop endless."""
    server.add("POST", SEARCH, json=page([company(101, **{KEY: "ACC-1"})], after="100", total=250))
    adapter, _ = make_adapter(server)

    with pytest.raises(TransientError, match="the search cursor 100 does not move past 100"):
        adapter.fetch(["ACC-1"], ["value_tier"])
    assert len(sent(server, SEARCH)) == 2


def test_an_empty_search_page_with_a_next_cursor_is_followed(server):
    """HubSpot pages a search by offset over its index and loads the page's records after: records
    deleted since they were indexed leave a page short, or empty, with more pages after it. An empty
    page ended the read, and the companies of the next pages were taken as not in the CRM."""
    server.add("POST", SEARCH, json=page([company(101, **{KEY: "ACC-1"})], after="100", total=250))
    server.add("POST", SEARCH, json=page([], after="200", total=250))
    server.add("POST", SEARCH, json=page([company(103, **{KEY: "ACC-3"})], total=250))
    adapter, _ = make_adapter(server)

    found = adapter.fetch(["ACC-1", "ACC-3"], ["value_tier"])

    assert {k: r.crm_id for k, r in found.items()} == {"ACC-1": "101", "ACC-3": "103"}
    assert [body_of(c).get("after") for c in sent(server, SEARCH)] == [None, "100", "200"]


def test_an_empty_search_page_whose_cursor_does_not_move_still_fails(server):
    server.add("POST", SEARCH, json=page([company(101, **{KEY: "ACC-1"})], after="100", total=250))
    server.add("POST", SEARCH, json=page([], after="100", total=250))
    adapter, _ = make_adapter(server)

    with pytest.raises(TransientError, match="the search cursor 100 does not move past 100"):
        adapter.fetch(["ACC-1"], ["value_tier"])
    assert len(sent(server, SEARCH)) == 2


def test_read_companies_since_pages_and_restarts_past_the_10000_cap(server):
    start = epoch_ms(datetime(2026, 3, 1, tzinfo=UTC))
    # 10,250 companies, three modified in each millisecond: the restart lands inside a millisecond.
    store = [company(n, hs_lastmodifieddate=iso_ms(start + n // 3), value_tier="Gold") for n in range(10_250)]
    calls: list[dict] = []
    server.add_callback("POST", SEARCH, fake_search_index(store, calls))
    adapter, _ = make_adapter(server)

    read = list(adapter.read_companies_since(datetime(2026, 3, 1), ["value_tier"]))

    assert [c["id"] for c in read] == [str(n) for n in range(10_250)]  # each once, oldest first
    assert calls[0]["filterGroups"][0]["filters"][0]["value"] == str(start)
    assert calls[0]["properties"] == ["hs_object_id", "hs_lastmodifieddate", "value_tier"]
    restart = next(i for i, body in enumerate(calls) if i and "after" not in body)
    assert restart == 100  # pages 0..9,900, then a new search
    assert calls[restart]["filterGroups"][0]["filters"][0]["value"] == str(start + 9_999 // 3)
    assert adapter.calls == 0


def test_read_companies_since_stops_when_one_millisecond_holds_more_than_the_cap(server):
    stamp = iso_ms(epoch_ms(datetime(2026, 3, 1, tzinfo=UTC)))
    store = [company(n, hs_lastmodifieddate=stamp) for n in range(SEARCH_CAP + 1)]
    server.add_callback("POST", SEARCH, fake_search_index(store, []))
    adapter, _ = make_adapter(server)
    with pytest.raises(PermanentError, match="SEARCH_CAP"):
        list(adapter.read_companies_since(datetime(2026, 3, 1, tzinfo=UTC), []))


def test_timestamps():
    assert epoch_ms(datetime(2026, 3, 1)) == epoch_ms(datetime(2026, 3, 1, tzinfo=UTC)) == 1_772_323_200_000
    assert parse_timestamp("2026-03-01T00:00:00.250Z") == 1_772_323_200_250
    assert parse_timestamp("1772323200250") == 1_772_323_200_250
    assert parse_timestamp(None) is None and parse_timestamp("soon") is None


# --- update ---------------------------------------------------------------------------------


def test_batch_update_success_sends_strings_and_succeeds_every_input(server):
    server.add_callback("POST", BATCH_UPDATE, echo_success)
    adapter, _ = make_adapter(server)
    batch = [
        Change("ACC-1", "1001", {"value_tier": "Gold", "case_study_candidate": True, "health_score": 71.23}),
        Change("ACC-2", "1002", {"case_study_candidate": False, "health_score": 64.0, "quadrant": None}),
        Change("ACC-3", "1003", {"segment_updated_at": "2026-10-31", "seats": 12, "arr": Decimal("1200.50")}),
    ]

    results = adapter.update(batch)

    assert [(r.account_id, r.crm_id, r.status, r.attempts) for r in results] == [
        ("ACC-1", "1001", "success", 1),
        ("ACC-2", "1002", "success", 1),
        ("ACC-3", "1003", "success", 1),
    ]
    assert body_of(server.calls[0]) == {
        "inputs": [
            {
                "id": "1001",
                "properties": {"value_tier": "Gold", "case_study_candidate": "true", "health_score": "71.23"},
            },
            {"id": "1002", "properties": {"case_study_candidate": "false", "health_score": "64", "quadrant": ""}},
            {"id": "1003", "properties": {"segment_updated_at": "2026-10-31", "seats": "12", "arr": "1200.50"}},
        ]
    }
    assert server.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert server.calls[0].request.headers["Content-Type"] == "application/json"
    assert adapter.calls == 1


def test_property_values_are_serialised_as_hubspot_strings():
    assert hubspot_value(True) == "true" and hubspot_value(False) == "false"
    assert hubspot_value(None) == ""  # clears the property
    assert hubspot_value(3) == "3" and hubspot_value(0) == "0"
    assert hubspot_value(71.4) == "71.4" and hubspot_value(71.0) == "71" and hubspot_value(-0.5) == "-0.5"
    assert hubspot_value(1e-7) == "0.0000001" and hubspot_value(1e16) == "10000000000000000"
    assert hubspot_value(Decimal("12.50")) == "12.50"
    assert hubspot_value(date(2026, 10, 31)) == "2026-10-31"
    assert hubspot_value(datetime(2026, 10, 31, 8, 30, tzinfo=UTC)) == "2026-10-31T08:30:00+00:00"
    assert hubspot_value("Mid-Market") == "Mid-Market"


def test_multi_status_maps_each_failed_id_and_succeeds_the_others(server):
    server.add(
        "POST",
        BATCH_UPDATE,
        status=207,
        json={
            "status": "COMPLETE",
            "results": [company(1001, value_tier="Gold"), company(1004, value_tier="Gold")],
            "numErrors": 3,
            "errors": [
                batch_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some COMPANY objects, they may be deleted or not exist. Check that ids are valid.",
                    ["1002"],
                ),
                batch_error(
                    "VALIDATION_ERROR", "Property values were not valid: value_tier 'Gold' is not an option", ["1003"]
                ),
                batch_error("RATE_LIMITS", "Secondly limit reached for this record", ["1005"]),
            ],
            "startedAt": "2026-03-01T08:00:00Z",
            "completedAt": "2026-03-01T08:00:01Z",
        },
    )
    adapter, sleeps = make_adapter(server)

    results = {r.crm_id: r for r in adapter.update(changes(5))}

    assert {k: (r.status, r.error_code) for k, r in results.items()} == {
        "1001": ("success", None),
        "1002": ("failed_permanent", "OBJECT_NOT_FOUND"),
        "1003": ("failed_permanent", "VALIDATION_ERROR"),
        "1004": ("success", None),
        "1005": ("failed_transient", "RATE_LIMITS"),
    }
    assert "may be deleted" in results["1002"].error_message
    assert "not an option" in results["1003"].error_message
    assert results["1002"].account_id == "ACC-2"
    assert adapter.calls == 1 and sleeps == []


def test_multi_status_error_without_ids_fails_the_inputs_without_a_result(server):
    server.add(
        "POST",
        BATCH_UPDATE,
        status=207,
        json={
            "status": "COMPLETE",
            "results": [company(1001)],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "INTERNAL_ERROR", "message": "Something went wrong"}],
        },
    )
    adapter, _ = make_adapter(server)
    results = {r.crm_id: r.status for r in adapter.update(changes(2))}
    assert results == {"1001": "success", "1002": "failed_transient"}


@pytest.mark.parametrize(
    "body",
    ["<html><body>Request accepted by the gateway</body></html>", '{"status": "PENDING"}', ""],
    ids=["a-proxy-page", "no-results", "empty"],
)
def test_an_answer_without_results_succeeds_no_record(server, body):
    """The library turns any 200 into a response model, results None: nothing says a record was written.
    Counted a success, its state would advance and the diff-only push never send it again."""
    server.add("POST", BATCH_UPDATE, status=200, body=body, headers={"Content-Type": "text/html"})
    adapter, _ = make_adapter(server)

    results = adapter.update(changes(2))

    assert {(r.status, r.error_code) for r in results} == {("failed_transient", "NO_RESULT")}


def test_results_are_matched_to_ids_as_numbers(server):
    """HubSpot answers a record id as its number: 01001 comes back 1001."""
    server.add("POST", BATCH_UPDATE, json={"status": "COMPLETE", "results": [company(1001, value_tier="Gold")]})
    adapter, _ = make_adapter(server)
    results = adapter.update([Change("ACC-1", "01001", {"value_tier": "Gold"})])
    assert [(r.crm_id, r.status) for r in results] == [("01001", "success")]


def test_429_waits_the_retry_after_then_succeeds(server):
    server.add("POST", BATCH_UPDATE, status=429, json=rate_limited(), headers={"Retry-After": "7"} | RATE_LIMIT_HEADERS)
    server.add_callback("POST", BATCH_UPDATE, echo_success)
    adapter, sleeps = make_adapter(server)

    results = adapter.update(changes(3))

    assert sleeps == [7.0]  # the Retry-After, not the window nor a backoff
    assert {r.status for r in results} == {"success"} and {r.attempts for r in results} == {2}
    assert adapter.calls == 2


def test_429_with_only_rate_limit_headers_waits_the_window(server):
    server.add("POST", BATCH_UPDATE, status=429, json=rate_limited(), headers=RATE_LIMIT_HEADERS)
    server.add_callback("POST", BATCH_UPDATE, echo_success)
    adapter, sleeps = make_adapter(server)

    results = adapter.update(changes(2))

    assert sleeps == [10.0]  # X-HubSpot-RateLimit-Interval-Milliseconds: 10000
    assert [r.status for r in results] == ["success", "success"]


def test_daily_limit_is_not_retried_and_spares_the_other_batches(server):
    server.add("POST", BATCH_UPDATE, **DAILY_LIMIT_429)
    adapter, sleeps = make_adapter(server)

    results = adapter.update(changes(250))

    assert len(results) == 250 and {(r.status, r.error_code) for r in results} == {("failed_transient", "DAILY_LIMIT")}
    assert adapter.calls == 1 and len(server.calls) == 1 and sleeps == []


DAILY_LIMIT_429 = {"status": 429, "json": rate_limited("DAILY") | {"message": "You have reached your daily limit."}}


@pytest.mark.parametrize(
    ("key_field", "path"),
    [(KEY, SEARCH), ("hs_object_id", BATCH_READ), (KEY, "/account-info/v3/details")],
    ids=["fetch-by-search", "fetch-by-id", "describe"],
)
def test_daily_limit_in_a_read_fails_at_once_without_airflow_retries(server, key_field, path):
    """A TransientError made Airflow retry the task minutes later, in vain until the limit resets."""
    server.add("GET" if path.startswith("/account-info") else "POST", path, **DAILY_LIMIT_429)
    adapter, sleeps = make_adapter(server, key_field=key_field)

    with pytest.raises(PermanentError) as raised:
        adapter.describe() if path.startswith("/account-info") else adapter.fetch(["1001"], ["value_tier"])

    assert isinstance(raised.value, NotRetryableError)  # the task fails at once
    assert raised.value.code == "DAILY_LIMIT"
    assert raised.value.message == (
        "HubSpot's daily API limit is spent (You have reached your daily limit.); nothing succeeds before it "
        "resets at midnight in the HubSpot account's time zone, so the task fails without retries. The next "
        "scheduled sync picks the changes up; to sync sooner, clear this task once the limit has reset."
    )
    assert len(server.calls) == 1 and sleeps == [] and adapter.calls == 0


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 502, "body": "<html><body>502 Bad Gateway</body></html>"},
        {"status": 503, "json": error_body("INTERNAL_ERROR", "Service unavailable")},
        {"status": 423, "json": error_body("LOCKED", "The resource is locked")},
        {"action": "stall", "stall": 2.0},  # an answer later than the read timeout
        {"action": "drop"},  # the connection closed without an answer
    ],
    ids=["502", "503", "423", "read-timeout", "connection-dropped"],
)
def test_server_errors_and_timeouts_are_retried_then_succeed(server, failure):
    server.add("POST", BATCH_UPDATE, **failure)
    server.add_callback("POST", BATCH_UPDATE, echo_success)
    adapter, sleeps = make_adapter(server, timeout=(5.0, 0.5))

    results = adapter.update(changes(2))

    assert [r.status for r in results] == ["success", "success"]
    assert len(sleeps) == 1 and adapter.calls == 2


def test_retries_exhausted_fail_the_chunk_transiently_and_the_next_chunk_still_goes(server):
    for _ in range(4):
        server.add("POST", BATCH_UPDATE, status=503, json=error_body("INTERNAL_ERROR", "Service unavailable"))
    server.add_callback("POST", BATCH_UPDATE, echo_success)
    adapter, sleeps = make_adapter(server, attempts=4)

    results = adapter.update(changes(150))

    assert len(results) == 150  # never dropped
    first, second = results[:100], results[100:]
    assert {(r.status, r.error_code, r.attempts) for r in first} == {("failed_transient", "INTERNAL_ERROR", 4)}
    assert {r.status for r in second} == {"success"}
    assert {r.account_id for r in results} == {f"ACC-{i}" for i in range(1, 151)}
    assert len(sleeps) == 3 and adapter.calls == 5


def test_expired_token_is_permanent_with_a_renewal_hint_and_never_logged(server, caplog):
    caplog.set_level(logging.DEBUG)
    expired = error_body(
        "EXPIRED_AUTHENTICATION", f"The OAuth token used to make this call expired 2 hour(s) ago. Bearer {TOKEN}"
    )
    server.add("POST", BATCH_UPDATE, status=401, json=expired)
    server.add("POST", SEARCH, status=401, json=expired)
    adapter, sleeps = make_adapter(server)

    results, refused = interrupted(adapter, changes(2))
    with pytest.raises(PermanentError) as raised:
        adapter.fetch(["ACC-1"], ["value_tier"])

    assert isinstance(refused, AccessRefusedError) and refused.code == "UNAUTHORIZED"
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "UNAUTHORIZED")}
    assert "renew" in results[0].error_message and "'hubspot_default'" in results[0].error_message
    assert raised.value.code == "UNAUTHORIZED" and sleeps == [] and adapter.calls == 1
    # Nor in the chain an error reporter prints: the library's exception is not kept as the context.
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert TOKEN not in "".join(traceback.format_exception(raised.value))
    texts = [caplog.text, str(raised.value), raised.value.message, repr(adapter), adapter.describe()]
    texts += [f"{r.error_code} {r.error_message}" for r in results]
    assert all(TOKEN not in text for text in texts)
    assert "***" in raised.value.message


def test_the_token_never_reaches_logs_on_retries(server, caplog):
    caplog.set_level(logging.DEBUG)
    server.add("POST", BATCH_UPDATE, status=503, json=error_body("INTERNAL_ERROR", f"bad header Bearer {TOKEN}"))
    server.add("POST", BATCH_UPDATE, action="drop")
    adapter, _ = make_adapter(server, attempts=2)

    results = adapter.update(changes(2))

    assert {r.status for r in results} == {"failed_transient"}
    assert "retrying" in caplog.text  # the retry was logged...
    assert TOKEN not in caplog.text  # ...without the token
    assert all(TOKEN not in f"{r.error_code} {r.error_message}" for r in results)


def test_the_token_is_masked_before_a_long_error_body_is_cut(server):
    """A body that is not HubSpot's JSON (a proxy's page) is cut to 300 characters: after masking."""
    server.add("POST", BATCH_UPDATE, status=400, body="<html>" + "z" * 270 + f"Authorization: Bearer {TOKEN}</html>")
    adapter, _ = make_adapter(server)

    [result] = adapter.update(changes(1))

    assert len(result.error_message) == 300 and result.error_message.endswith("Authorization: Bearer **")
    assert TOKEN[:6] not in result.error_message


def test_other_4xx_are_permanent_without_retry(server):
    server.add(
        "POST",
        BATCH_UPDATE,
        status=403,
        json=error_body("MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call."),
    )
    adapter, sleeps = make_adapter(server)
    results, refused = interrupted(adapter, changes(2))
    assert isinstance(refused, AccessRefusedError) and refused.code == "MISSING_SCOPES"
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "MISSING_SCOPES")}
    assert "crm.objects.companies" in results[0].error_message
    assert sleeps == [] and adapter.calls == 1

    server.add("POST", BATCH_UPDATE, status=400, json=error_body("INVALID_ID", "not a company"))
    results = adapter.update(changes(2))  # other 4xx: permanent for the batch's records, the update goes on
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "INVALID_ID")}


def test_a_token_refused_stops_the_update_after_the_first_batch(server):
    """401 on the first of three batches: one call, its 100 records failed, the other 150 never sent."""
    server.add("POST", BATCH_UPDATE, status=401, json=error_body("INVALID_AUTHENTICATION", "bad token"))
    adapter, sleeps = make_adapter(server)

    results, refused = interrupted(adapter, changes(250))

    assert refused.code == "UNAUTHORIZED" and adapter.calls == 1 and sleeps == []
    assert [r.account_id for r in results] == [f"ACC-{i}" for i in range(1, 101)]
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "UNAUTHORIZED")}
    assert len(sent(server, BATCH_UPDATE)) == 1


def refuse_invalid(bad_ids: set[str]):
    """A whole batch refused (400 VALIDATION_ERROR) when it holds any of ``bad_ids``, as HubSpot does."""

    def callback(request):
        inputs = json.loads(request.body)["inputs"]
        if any(i["id"] in bad_ids for i in inputs):
            message = 'Property values were not valid: [{"isValid":false,"message":"Gold is not a valid option"}]'
            return 400, {}, json.dumps(error_body("VALIDATION_ERROR", message))
        return echo_success(request)

    return callback


def test_a_batch_refused_as_invalid_is_split_to_find_the_record_at_fault(server):
    server.add_callback("POST", BATCH_UPDATE, refuse_invalid({"1037"}))
    adapter, sleeps = make_adapter(server)

    results = {r.crm_id: r for r in adapter.update(changes(100))}

    assert len(results) == 100
    assert (results["1037"].status, results["1037"].error_code) == ("failed_permanent", "VALIDATION_ERROR")
    assert {r.status for k, r in results.items() if k != "1037"} == {"success"}
    assert adapter.calls <= 1 + 2 * 7 and sleeps == []  # a halving search, not 100 calls


def test_two_bad_records_in_different_halves_are_both_isolated(server):
    """Both halves refused used to count as systematic: the 98 good records failed with the 2 bad ones."""
    server.add_callback("POST", BATCH_UPDATE, refuse_invalid({"1010", "1070"}))  # places 9 and 69 of 100
    adapter, sleeps = make_adapter(server)

    results = adapter.update(changes(100))

    assert [r.crm_id for r in results] == [str(1000 + i) for i in range(1, 101)]  # in the order given
    failed = {r.crm_id: (r.status, r.error_code) for r in results if r.status != "success"}
    refused = ("failed_permanent", "VALIDATION_ERROR")
    assert failed == {"1010": refused, "1070": refused}
    assert sum(r.status == "success" for r in results) == 98
    # The batch; its halves (both refused); quarters 0-25, 25-50, 50-75, 75-100 (two accepted); then
    # each refused part halved on: 0-25 -> 0-12 -> 6-12 -> 9-12 -> 9-10, and 50-75 -> 62-75 -> 68-75
    # -> 68-71 -> 69-71 -> 69-70: 1 + 2 + 4 + 4 + 4 + 4 + 4 + 2.
    assert adapter.calls == 25 == len(server.calls) and sleeps == []
    assert [len(body_of(c)["inputs"]) for c in server.calls[:7]] == [100, 50, 50, 25, 25, 25, 25]


def test_a_batch_refused_for_every_record_is_split_two_levels_only(server):
    """A wrong value for everyone (a property's type, say): no part is accepted after two levels of
    halving, so the refusal is taken as systematic and the parts fail as they are: 6 extra calls, not 200."""
    server.add_callback("POST", BATCH_UPDATE, refuse_invalid({str(1000 + i) for i in range(1, 101)}))
    adapter, _ = make_adapter(server)

    results = adapter.update(changes(100))

    assert len(results) == 100
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "VALIDATION_ERROR")}
    assert {r.error_message for r in results} == {
        'Property values were not valid: [{"isValid":false,"message":"Gold is not a valid option"}]'
    }
    assert adapter.calls == 7 == len(server.calls)  # the batch, its two halves, its four quarters
    assert [len(body_of(c)["inputs"]) for c in server.calls] == [100, 50, 50, 25, 25, 25, 25]


def test_isolation_stops_at_its_budget_of_calls_per_update(server, monkeypatch):
    """Past the budget, the parts still refused fail as they are, saying they were not isolated; the
    next update has the whole budget again."""
    monkeypatch.setattr("postsales.crm.hubspot.ISOLATION_CALLS", 8)
    server.add_callback("POST", BATCH_UPDATE, refuse_invalid({"1010", "1070"}))
    adapter, _ = make_adapter(server)

    results = {r.crm_id: r for r in adapter.update(changes(100))}

    # Halves (2 calls), quarters (4), then 0-25 halved (2): the budget of 8 is spent. Accepted: 25-50,
    # 75-100 and 12-25; refused and not isolated: 0-12 (holding 1010) and 50-75 (holding 1070).
    succeeded = {str(1000 + i) for i in [*range(13, 26), *range(26, 51), *range(76, 101)]}
    assert {k for k, r in results.items() if r.status == "success"} == succeeded
    not_isolated = {k: r for k, r in results.items() if r.status != "success"}
    assert set(not_isolated) == {str(1000 + i) for i in [*range(1, 13), *range(51, 76)]}
    assert {(r.status, r.error_code) for r in not_isolated.values()} == {("failed_permanent", "VALIDATION_ERROR")}
    assert results["1001"].error_message == (
        'Property values were not valid: [{"isValid":false,"message":"Gold is not a valid option"}] '
        "(not isolated: HubSpot refused these 12 companies as a whole, and the 8 extra calls an update may "
        "spend on finding the records at fault are spent; the next sync sends them again)"
    )
    assert "these 25 companies" in results["1051"].error_message
    assert adapter.calls == 9 == len(server.calls)

    adapter.update(changes(100))
    assert adapter.calls == 18  # a new budget


def test_duplicate_and_invalid_targets_fail_without_a_call(server):
    adapter, _ = make_adapter(server)
    batch = [
        Change("ACC-1", "1001", {"value_tier": "Gold"}),
        Change("ACC-2", "1001", {"value_tier": "Gold"}),  # two of our accounts on one company
        Change("ACC-3", "not-a-record-id", {"value_tier": "Gold"}),
        Change("ACC-4", "1004", {"value tier": "Gold"}),
    ]
    results = {r.account_id: (r.status, r.error_code) for r in adapter.update(batch)}
    assert results == {
        "ACC-1": ("failed_permanent", "DUPLICATE_ID"),
        "ACC-2": ("failed_permanent", "DUPLICATE_ID"),
        "ACC-3": ("failed_permanent", "INVALID_ID"),
        "ACC-4": ("failed_permanent", "INVALID_FIELD"),
    }
    assert adapter.calls == 0 and server.calls == []


# --- call counting --------------------------------------------------------------------------


def test_ten_thousand_changes_are_a_hundred_batch_calls(server):
    server.add_callback("POST", BATCH_UPDATE, echo_success)
    adapter, _ = make_adapter(server)

    results = adapter.update(changes(10_000))

    assert adapter.calls == 100 == len(server.calls)
    assert all(len(body_of(call)["inputs"]) == 100 for call in server.calls)
    assert len(results) == 10_000 and {r.status for r in results} == {"success"}


def test_no_changes_no_calls(server):
    adapter, _ = make_adapter(server)
    assert adapter.update([]) == []
    assert adapter.fetch([], ["value_tier"]) == {}
    assert adapter.calls == 0 and server.calls == []


# --- connections and the sync ----------------------------------------------------------------


def test_from_connection_reads_the_private_app_token(server, monkeypatch):
    connection(monkeypatch, password=TOKEN)
    adapter = HubSpotAdapter.from_connection(HubSpotCrm(), KEY, RetryPolicy())
    assert adapter.client.host == BASE and adapter.client.conn_id == "hubspot_default"
    assert TOKEN not in repr(adapter) and TOKEN not in repr(adapter.client)

    connection(monkeypatch, host="hubspot-proxy.internal:8443", password=TOKEN)
    assert HubSpotAdapter.from_connection(HubSpotCrm(), KEY).client.host == "https://hubspot-proxy.internal:8443"

    # The sync state's key names the portal the token belongs to (the account-info API).
    connection(monkeypatch, host=server.url, password=TOKEN)
    assert HubSpotAdapter.from_connection(HubSpotCrm(), KEY).describe() == f"hubspot:{PORTAL}/companies"
    [details] = server.calls
    assert (details.request.method, details.request.path) == ("GET", "/account-info/v3/details")
    assert details.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_token_pasted_with_its_newline_fails_at_once_without_quoting_it(server, monkeypatch):
    """http.client would refuse the header with a ValueError quoting the token, out of every write."""
    connection(monkeypatch, password=TOKEN + "\n", host=server.url)
    with pytest.raises(PermanentError) as raised:
        HubSpotAdapter.from_connection(HubSpotCrm(), KEY, RetryPolicy())
    assert raised.value.code == "BAD_CREDENTIALS"
    assert "'hubspot_default'" in str(raised.value) and "Fix: store the token alone" in str(raised.value)
    assert TOKEN not in str(raised.value) and server.calls == []


def test_from_connection_given_as_a_uri_keeps_the_hosts_port(server, monkeypatch):
    """A URI (or the UI) puts the port in its own field: it was dropped, the requests going to port 443."""
    port = server.url.rsplit(":", 1)[1]
    token = quote(TOKEN, safe="")
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", f"hubspot://:{token}@127.0.0.1:{port}/http")
    adapter = HubSpotAdapter.from_connection(HubSpotCrm(), KEY, RetryPolicy())
    assert adapter.client.host == server.url
    assert adapter.describe() == f"hubspot:{PORTAL}/companies"

    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", f"hubspot://:{token}@proxy.acme.example:8443")
    assert HubSpotClient.from_connection("hubspot_default").host == "https://proxy.acme.example:8443"


def test_from_connection_without_a_token_is_permanent(monkeypatch):
    connection(monkeypatch, "hubspot_prod", host="https://api.hubapi.com")
    with pytest.raises(PermanentError, match="NO_CREDENTIALS") as raised:
        HubSpotAdapter.from_connection(HubSpotCrm(conn_id="hubspot_prod"), KEY, RetryPolicy())
    assert "connection 'hubspot_prod' needs the HubSpot private-app access token as its password" in str(raised.value)


def test_a_missing_connection_is_permanent_and_says_how_to_create_it(monkeypatch):
    """Not Airflow's AirflowNotFoundException, which the task's retries would try twice more."""
    monkeypatch.delenv("AIRFLOW_CONN_HUBSPOT_NOWHERE", raising=False)
    with pytest.raises(PermanentError) as raised:
        HubSpotAdapter.from_connection(HubSpotCrm(conn_id="hubspot_nowhere"), KEY, RetryPolicy())
    assert str(raised.value) == (
        "NO_CREDENTIALS: no Airflow connection 'hubspot_nowhere'. Fix: create it with the HubSpot private-app "
        "access token as its password (docs/crm-sync.md)"
    )


def hubspot_sync_config(conn_id: str = "hubspot_default") -> CrmSyncConfig:
    return CrmSyncConfig(
        version="test",
        adapter="hubspot",
        hubspot=HubSpotCrm(conn_id=conn_id),
        key={"crm_key_field": KEY},
        fields={
            "value_tier": {"crm_field": "value_tier"},
            "quadrant": {"crm_field": "quadrant"},
            "health_score": {"crm_field": "health_score"},
            "case_study_candidate": {"crm_field": "case_study_candidate"},
            "segment_updated_at": {"crm_field": "segment_updated_at"},
        },
        manual_override_field="manual_segment_lock",
    )


def test_make_adapter_builds_the_hubspot_adapter(server, monkeypatch):
    from postsales.crm.sync import make_adapter as sync_make_adapter

    connection(monkeypatch, host=server.url, password=TOKEN)
    retry = RetryPolicy()
    adapter = sync_make_adapter(hubspot_sync_config(), retry)
    assert isinstance(adapter, HubSpotAdapter)
    assert (adapter.key_field, adapter.retry, adapter.describe()) == (KEY, retry, f"hubspot:{PORTAL}/companies")


def portal_with_companies(portal_id: int = PORTAL, token: str | None = None) -> FakePortal:
    """A1, A2 (key in lower case, already holding our quadrant), A3 locked; A4 is not in HubSpot."""
    portal = FakePortal(portal_id, token)
    portal.add("companies", 5001, {KEY: "A1", "quadrant": None, "manual_segment_lock": None})
    portal.add("companies", 5002, {KEY: "a2", "quadrant": "Grow", "manual_segment_lock": "false"})
    portal.add("companies", 5003, {KEY: "A3", "value_tier": "Enterprise", "manual_segment_lock": "true"})
    return portal


def four_accounts(warehouse_url: str) -> None:
    from test_crm_sync import segment_row, write_segments

    write_segments(
        warehouse_url,
        [
            segment_row("A1", value_tier="Mid-Market", case_study_candidate=True),
            segment_row("A2"),
            segment_row("A3"),  # locked in HubSpot
            segment_row("A4"),  # not in HubSpot
        ],
    )


def test_sync_pushes_through_hubspot_and_then_has_nothing_to_write(server, warehouse_url):
    from test_crm_sync import AS_OF

    from postsales.crm.sync import sync

    four_accounts(warehouse_url)
    companies = portal_with_companies().install(server).records["companies"]
    config = hubspot_sync_config()
    adapter, _ = make_adapter(server)

    pushed = sync(AS_OF, config=config, adapter=adapter, approve_first_push=True, approve_large_change=True)

    assert pushed["mode"] == "push" and pushed["fields_failed"] == 0
    assert pushed["skipped"] == {"manual_override_set_in_crm": 1, "not_in_crm": 1}
    assert pushed["write_calls"] == 1
    a1, a2 = companies["5001"], companies["5002"]
    assert (a1["value_tier"], a1["case_study_candidate"], a1["health_score"]) == ("Mid-Market", "true", "71.23")
    assert (a2["case_study_candidate"], a2["segment_updated_at"]) == ("false", AS_OF.isoformat())
    assert "case_study_candidate" not in companies["5003"]  # locked: untouched

    adapter.calls = 0
    again = sync(AS_OF, config=config, adapter=adapter)
    assert (again["fields_changed"], again["write_calls"]) == (0, 0)


def test_two_portals_never_share_sync_state(warehouse_url, monkeypatch):
    """Two HubSpot accounts behind two connections: what was pushed to one is no diff for the other."""
    from test_crm_sync import AS_OF

    from postsales import warehouse
    from postsales.crm.sync import crm_sync_state, sync

    four_accounts(warehouse_url)
    with HubSpotServer() as first, HubSpotServer() as second:
        portals = {
            "hubspot_eu": portal_with_companies(11111, "pat-eu1-first").install(first),
            "hubspot_us": portal_with_companies(22222, "pat-na1-second").install(second),
        }
        connection(monkeypatch, "hubspot_eu", host=first.url, password="pat-eu1-first")
        connection(monkeypatch, "hubspot_us", host=second.url, password="pat-na1-second")

        eu = sync(AS_OF, config=hubspot_sync_config("hubspot_eu"), approve_first_push=True, approve_large_change=True)
        us = sync(AS_OF, config=hubspot_sync_config("hubspot_us"))  # the second portal: its own first push

        assert (eu["target"], eu["mode"], eu["fields_succeeded"]) == ("hubspot:11111/companies", "push", 9)
        assert (us["target"], us["mode"]) == ("hubspot:22222/companies", "dry_run")
        assert us["reason"] == "first push to this CRM: dry run until approved (approve_first_push)"
        assert us["fields_changed"] == eu["fields_changed"] == 9  # the same diff: nothing pushed there yet
        assert portals["hubspot_us"].records["companies"]["5001"].get("value_tier") is None
        assert portals["hubspot_eu"].records["companies"]["5001"]["value_tier"] == "Mid-Market"

        us = sync(AS_OF, config=hubspot_sync_config("hubspot_us"), approve_first_push=True, approve_large_change=True)
        again = sync(AS_OF, config=hubspot_sync_config("hubspot_eu"))
    assert (us["mode"], us["fields_succeeded"]) == ("push", 9)
    assert (again["fields_changed"], again["write_calls"]) == (0, 0)
    with warehouse.engine(warehouse_url).connect() as conn:
        rows = conn.execute(
            sa.select(crm_sync_state.c.target, sa.func.count())
            .group_by(crm_sync_state.c.target)
            .order_by(crm_sync_state.c.target)
        ).all()
    assert [tuple(r) for r in rows] == [("hubspot:11111/companies", 9), ("hubspot:22222/companies", 9)]
