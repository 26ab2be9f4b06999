"""The Salesforce adapter and its client against a mocked Salesforce (``responses``), with the APIs' real shapes.

The connection is the Airflow Salesforce provider's, as its documentation builds it (an
``AIRFLOW_CONN_SALESFORCE_DEFAULT`` in JSON); the requests are simple-salesforce's. Shapes as
documented by Salesforce: the SOAP login and the OAuth 2.0 token endpoint (``salesforce_fakes``),
query pages (``done``/``nextRecordsUrl``), sObject Collections SaveResults (in request order,
``errors[].statusCode``), error bodies (``[{"message", "errorCode"}]``), Bulk API 2.0 job info
and result CSVs (``sf__Id``, ``sf__Created``, ``sf__Error``, then the uploaded columns).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import traceback
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from postsales.crm.base import Change, WriteInterrupted
from postsales.crm.config import SalesforceCrm
from postsales.crm.salesforce import SalesforceAdapter, bulk_value, split_bulk_error
from postsales.errors import AccessRefusedError, NotRetryableError, PermanentError, TransientError
from postsales.retry import RetryPolicy
from postsales.salesforce_api import SalesforceClient
from salesforce_fakes import (
    API,
    INSTANCE,
    PASSWORD,
    QUERY,
    SECURITY_TOKEN,
    SESSION,
    SOAP_LOGIN,
    USERNAME,
    add_soap_login,
    connection_json,
    describe_field,
    describe_response,
    describe_url,
    error,
    password_connection,
    soap_login_fault,
    token_response,
    use_connection,
)

COLLECTIONS = f"{API}/composite/sobjects"
DESCRIBE = describe_url("Account")
DESCRIBE_PATH, QUERY_PATH = urlsplit(DESCRIBE).path, urlsplit(QUERY).path
JOBS = f"{API}/jobs/ingest"
JOB_ID = "7505g00000BulkJobAAA"
FRESH_SESSION = "00D5g000004XyzE!AQ0AQfreshSESSIONvalue"


@pytest.fixture(autouse=True)
def salesforce_connection(monkeypatch):
    """The provider's username / password / security token connection; bulk polls recorded, not slept."""
    import simple_salesforce.bulk2

    use_connection(monkeypatch, password_connection())
    polls: list[float] = []
    monkeypatch.setattr(simple_salesforce.bulk2, "sleep", polls.append)
    return polls


def sf_id(n: int) -> str:
    """An 18-character Account id."""
    return f"001Dn{n:010d}AAA"


def account_describe(key_type: str = "string", **key) -> dict:
    """Account's describe: the key field External_Id__c (a text external id unless ``key_type`` says otherwise)."""
    fields = [
        describe_field("Id", "id"),
        describe_field("Name"),
        describe_field("External_Id__c", key_type, externalId=True, unique=True, **key),
        describe_field("Value_Tier__c", "picklist"),
        describe_field("Quadrant__c", "picklist"),
        describe_field("Manual_Segment_Lock__c", "boolean"),
        describe_field("SystemModstamp", "datetime"),
    ]
    return describe_response("Account", fields)


def make_adapter(key_field="External_Id__c", bulk_threshold=2000, attempts=4, login=True, describe=None, **kwargs):
    """The adapter from the Airflow connection, logged in (the login's request then forgotten); Account's
    describe answered with ``describe`` (default: a text key field)."""
    responses.get(DESCRIBE, json=describe or account_describe())
    sleeps: list[float] = []
    retry = RetryPolicy(attempts=attempts, backoff_seconds=0.5, sleep=sleeps.append)
    if login:
        add_soap_login()
    config = SalesforceCrm(bulk_threshold=bulk_threshold)
    adapter = SalesforceAdapter.from_connection(config, key_field, retry, poll_interval=3, **kwargs)
    if login:  # a test's next login answers with what it registers
        responses.remove(responses.POST, SOAP_LOGIN)
    responses.calls.reset()
    return adapter, sleeps


def record(n: int, key: str, **fields) -> dict:
    return {
        "attributes": {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{sf_id(n)}"},
        "Id": sf_id(n),
    } | ({"External_Id__c": key} | fields)


def paths() -> list[str]:
    """The path of every request sent, in order."""
    return [urlsplit(call.request.url).path for call in responses.calls]


def soql_of(call) -> str:
    return parse_qs(urlsplit(call.request.url).query)["q"][0]


def saved(*outcomes) -> list[dict]:
    """SaveResults: an id (success) or (statusCode, message, fields)."""
    result = []
    for outcome in outcomes:
        if isinstance(outcome, str):
            result.append({"id": outcome, "success": True, "errors": []})
        else:
            code, message, fields = outcome
            result.append({"success": False, "errors": [{"statusCode": code, "message": message, "fields": fields}]})
    return result


def changes(n: int, start: int = 0) -> list[Change]:
    return [Change(f"ACC-{i}", sf_id(i), {"Value_Tier__c": "Gold"}) for i in range(start, start + n)]


def interrupted(adapter, batch: list[Change]) -> tuple[list, Exception]:
    """An update that stopped part-way: the results it kept, and the error that stopped it."""
    with pytest.raises(WriteInterrupted) as raised:
        adapter.update(batch)
    return raised.value.results, raised.value.__cause__


def echo_success(request):
    body = json.loads(request.body)
    return 200, {}, json.dumps(saved(*(r["id"] for r in body["records"])))


def bearer(call) -> str:
    return call.request.headers["Authorization"]


# --- fetch --------------------------------------------------------------------------------


@responses.activate
def test_fetch_follows_next_records_url_and_counts_duplicate_keys():
    page_1 = {
        "totalSize": 4,
        "done": False,
        "nextRecordsUrl": "/services/data/v62.0/query/01gD0000002HU6KIAW-2000",
        "records": [
            record(1, "ACC-1", Value_Tier__c="Gold", Manual_Segment_Lock__c=False),
            record(2, "ACC-2", Value_Tier__c=None, Manual_Segment_Lock__c=True),
        ],
    }
    page_2 = {
        "totalSize": 4,
        "done": True,
        "records": [
            record(3, "ACC-2", Value_Tier__c="Silver", Manual_Segment_Lock__c=False),  # a second record, same key
            record(4, "o'neil", Value_Tier__c="Bronze", Manual_Segment_Lock__c=False),  # case differs from ours
        ],
    }
    responses.get(QUERY, json=page_1)
    responses.get(f"{API}/query/01gD0000002HU6KIAW-2000", json=page_2)
    adapter, _ = make_adapter()

    found = adapter.fetch(["ACC-1", "ACC-2", "O'Neil", "ACC-9"], ["Value_Tier__c", "Manual_Segment_Lock__c"])

    describe, first, second = responses.calls  # the key field's type, then the query's two pages
    assert (describe.request.method, describe.request.url) == ("GET", DESCRIBE)
    assert soql_of(first) == (
        "SELECT Id, External_Id__c, Value_Tier__c, Manual_Segment_Lock__c FROM Account "
        "WHERE External_Id__c IN ('ACC-1','ACC-2','O\\'Neil','ACC-9')"
    )
    assert bearer(first) == f"Bearer {SESSION}"  # the SOAP login's sessionId
    assert second.request.url == f"{API}/query/01gD0000002HU6KIAW-2000"
    assert set(found) == {"ACC-1", "ACC-2", "O'Neil"}  # ACC-9 is not in the CRM
    assert found["ACC-1"].crm_id == sf_id(1)
    assert found["ACC-1"].values == {"Value_Tier__c": "Gold", "Manual_Segment_Lock__c": False}
    assert found["ACC-1"].matches == 1
    assert found["ACC-2"].matches == 2  # ambiguous: the sync never writes it
    assert found["O'Neil"].crm_id == sf_id(4)
    assert adapter.calls == 0  # reads are not write calls


@responses.activate
def test_a_next_page_answered_again_fails_instead_of_paging_forever():
    locator = "/services/data/v62.0/query/01gD0000002HU6KIAW-2000"
    looping = {"totalSize": 4000, "done": False, "nextRecordsUrl": locator, "records": [record(1, "ACC-1")]}
    responses.get(QUERY, json=looping)
    responses.get(f"{INSTANCE}{locator}", json=looping)
    adapter, _ = make_adapter(attempts=1)

    with pytest.raises(TransientError, match="was already read"):
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])
    assert len(responses.calls) == 3  # the describe, the query, its next page once


@responses.activate
def test_fetch_chunks_keys_into_bounded_queries():
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})
    adapter, _ = make_adapter()
    ids = [f"ACCOUNT-{i:06d}" for i in range(450)]

    assert adapter.fetch(ids, ["Value_Tier__c"]) == {}

    assert responses.calls[0].request.url == DESCRIBE
    queried = [soql_of(call) for call in responses.calls[1:]]
    assert [q.count("'ACCOUNT-") for q in queried] == [200, 200, 50]
    assert all(len(call.request.url) < 16_000 for call in responses.calls)

    # Long keys: fewer per query so the URL stays bounded.
    responses.calls.reset()
    adapter.fetch([f"{'X' * 200}-{i}" for i in range(200)], ["Value_Tier__c"])
    assert len(responses.calls) > 1
    assert DESCRIBE not in [call.request.url for call in responses.calls]  # read once per adapter
    assert all(len(call.request.url) < 16_000 for call in responses.calls)


@responses.activate
def test_fetch_skips_a_key_no_salesforce_text_field_can_hold():
    """A careless 20,000-character account id would make a URL Salesforce refuses (414): the whole sync
    failed, naming no account. No text field holds more than 255 characters: it is simply not in the CRM."""
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})
    adapter, _ = make_adapter()

    assert adapter.fetch(["ACC-1", "Z" * 20_000, "Y" * 255], ["Value_Tier__c"]) == {}

    _, query = responses.calls  # the describe, one query
    assert soql_of(query).endswith(f"IN ('ACC-1','{'Y' * 255}')")
    assert len(query.request.url) < 16_000


@responses.activate
def test_fetch_by_record_id_maps_15_character_ids_and_skips_non_ids():
    id15 = sf_id(7)[:15]
    body = {
        "totalSize": 1,
        "done": True,
        "records": [{"attributes": {"type": "Account"}, "Id": sf_id(7), "Quadrant__c": "Q1"}],
    }
    responses.get(QUERY, json=body)
    adapter, _ = make_adapter(key_field="Id")

    found = adapter.fetch([id15, "not-an-id"], ["Quadrant__c"])

    assert soql_of(responses.calls[0]) == f"SELECT Id, Quadrant__c FROM Account WHERE Id IN ('{id15}')"
    assert found == {id15: found[id15]}
    assert found[id15].crm_id == sf_id(7)
    assert found[id15].values == {"Quadrant__c": "Q1"}


@responses.activate
def test_a_number_key_field_is_compared_with_unquoted_numbers():
    """A Number external id (describe type double): Salesforce refuses a quoted value (INVALID_FIELD: "value of
    filter criterion for field 'External_Id__c' must be of type double and should not be enclosed in quotes")
    and returns the number as 123.0. A key that no such number reads back as is never sent: in no record."""
    body = {
        "totalSize": 3,
        "done": True,
        "records": [
            record(1, 123.0, Value_Tier__c="Gold"),
            record(2, -7.0, Value_Tier__c=None),
            record(3, 123.0, Value_Tier__c="Silver"),  # a second record with the same number
        ],
    }
    responses.get(QUERY, json=body)
    adapter, sleeps = make_adapter(describe=account_describe("double", precision=18, scale=0))
    keys = ["123", "-7", "456", "0123", "123.0", "+5", "1e3", "1.5", "12a", "", "-0", "9" * 18, "9" * 19]

    found = adapter.fetch(keys, ["Value_Tier__c"])

    assert paths() == [DESCRIBE_PATH, QUERY_PATH]
    assert soql_of(responses.calls[1]) == (
        f"SELECT Id, External_Id__c, Value_Tier__c FROM Account WHERE External_Id__c IN (123,-7,456,{'9' * 18})"
    )
    assert {k: (r.crm_id, r.values, r.matches) for k, r in found.items()} == {
        "123": (sf_id(1), {"Value_Tier__c": "Gold"}, 2),  # "0123" and "123.0" are not 123: never matched
        "-7": (sf_id(2), {"Value_Tier__c": None}, 1),
    }
    assert sleeps == []

    # The describe is read once per adapter; keys none of which can be a number send nothing.
    responses.calls.reset()
    assert adapter.fetch(["ACC-1", "0042"], ["Value_Tier__c"]) == {}
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    ("key", "keys", "sent", "returned", "matched"),
    [
        (
            {"type": "currency", "precision": 16, "scale": 2},
            ["1.5", "1.50", "2.25", "0.125", "1" * 15],
            "1.5,2.25",
            [1.5, 2.25],
            ["1.5", "2.25"],
        ),
        (
            {"type": "percent", "precision": 5, "scale": 2},
            ["0.5", "100", "1000", "0.00001"],
            "0.5,100",
            [0.5, 100.0],
            ["0.5", "100"],
        ),
        ({"type": "int", "precision": 0, "scale": 0, "digits": 9}, ["42", "4.2", "1234567890"], "42", [42], ["42"]),
        ({"type": "double", "precision": 18, "scale": 6}, ["0.00001"], "0.00001", [1e-05], ["0.00001"]),
    ],
    ids=["currency", "percent", "int", "small-fraction"],
)
@responses.activate
def test_numeric_key_fields_take_the_numbers_they_can_hold(key, keys, sent, returned, matched):
    responses.get(QUERY, json={"totalSize": 2, "done": True, "records": [record(i, v) for i, v in enumerate(returned)]})
    adapter, _ = make_adapter(describe=account_describe(key.pop("type"), **key))

    found = adapter.fetch(keys, [])

    assert soql_of(responses.calls[1]).endswith(f"WHERE External_Id__c IN ({sent})")
    assert sorted(found) == matched


@responses.activate
def test_a_key_field_written_in_another_case_is_read_back_as_salesforce_spells_it():
    responses.get(QUERY, json={"totalSize": 1, "done": True, "records": [record(1, "ACC-1")]})
    adapter, _ = make_adapter(key_field="external_id__c")

    found = adapter.fetch(["ACC-1"], [])

    assert soql_of(responses.calls[1]) == "SELECT Id, external_id__c FROM Account WHERE external_id__c IN ('ACC-1')"
    assert {k: r.crm_id for k, r in found.items()} == {"ACC-1": sf_id(1)}  # the record holds External_Id__c


@responses.activate
def test_a_key_field_the_object_does_not_have_names_the_rule_and_the_nearest_fields():
    adapter, _ = make_adapter(key_field="External_ID_c")

    with pytest.raises(PermanentError) as raised:
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])

    assert str(raised.value) == (
        "INVALID_FIELD: include/rules/crm_sync.yaml: field 'key.crm_key_field': 'External_ID_c' is not a field of "
        "Account the Salesforce connection's user can see; the nearest: External_Id__c. Fix: set "
        "key.crm_key_field to the field holding our account id (its API name), or grant the user access to it."
    )
    assert paths() == [DESCRIBE_PATH]  # no query


@responses.activate
def test_fetch_rejects_field_names_that_are_not_api_names():
    adapter, _ = make_adapter()
    with pytest.raises(PermanentError, match="INVALID_FIELD"):
        adapter.fetch(["ACC-1"], ["Name FROM User --"])
    assert len(responses.calls) == 0


@responses.activate
def test_fetch_invalid_field_is_permanent():
    responses.get(QUERY, status=400, json=error("INVALID_FIELD", "No such column 'Tier__c' on entity 'Account'."))
    adapter, sleeps = make_adapter()
    with pytest.raises(PermanentError) as raised:
        adapter.fetch(["ACC-1"], ["Tier__c"])
    assert str(raised.value) == "INVALID_FIELD: No such column 'Tier__c' on entity 'Account'."
    assert sleeps == [] and paths() == [DESCRIBE_PATH, QUERY_PATH]  # the query once


@responses.activate
def test_a_failed_page_is_retried_alone():
    page_1 = {"totalSize": 2, "done": False, "nextRecordsUrl": "/services/data/v62.0/query/01gNext-1", "records": []}
    page_1["records"] = [record(1, "ACC-1")]
    responses.get(QUERY, json=page_1)
    responses.get(f"{API}/query/01gNext-1", status=503, json=error("SERVER_UNAVAILABLE", "down"))
    responses.get(f"{API}/query/01gNext-1", json={"totalSize": 2, "done": True, "records": [record(2, "ACC-2")]})
    adapter, sleeps = make_adapter()

    found = adapter.fetch(["ACC-1", "ACC-2"], [])

    assert sorted(found) == ["ACC-1", "ACC-2"]
    assert [urlsplit(c.request.url).path for c in responses.calls] == [
        "/services/data/v62.0/sobjects/Account/describe",
        "/services/data/v62.0/query/",
        "/services/data/v62.0/query/01gNext-1",
        "/services/data/v62.0/query/01gNext-1",
    ]  # the first page was not asked again
    assert len(sleeps) == 1


@responses.activate
def test_read_accounts_since_is_incremental_on_system_modstamp():
    page_1 = {
        "totalSize": 3,
        "done": False,
        "nextRecordsUrl": "/services/data/v62.0/query/01gD0000002HU6KIAW-2000",
        "records": [
            {"attributes": {"type": "Account"}, "Id": sf_id(1), "SystemModstamp": "2026-03-01T07:30:00.000+0000"},
            {"attributes": {"type": "Account"}, "Id": sf_id(2), "SystemModstamp": "2026-03-01T08:00:00.000+0000"},
        ],
    }
    page_2 = {
        "totalSize": 3,
        "done": True,
        "records": [
            {"attributes": {"type": "Account"}, "Id": sf_id(3), "SystemModstamp": "2026-03-02T10:00:00.000+0000"}
        ],
    }
    responses.get(QUERY, json=page_1)
    responses.get(f"{API}/query/01gD0000002HU6KIAW-2000", json=page_2)
    adapter, _ = make_adapter()
    since = datetime(2026, 3, 1, 9, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=2)))

    rows = list(adapter.read_accounts_since(since, ["Name", "AnnualRevenue"]))

    assert soql_of(responses.calls[0]) == (
        "SELECT Id, SystemModstamp, Name, AnnualRevenue FROM Account "
        "WHERE SystemModstamp >= 2026-03-01T07:30:00Z ORDER BY SystemModstamp, Id"
    )
    assert [row["Id"] for row in rows] == [sf_id(1), sf_id(2), sf_id(3)]
    assert all("attributes" not in row for row in rows)


@responses.activate
def test_read_accounts_since_takes_naive_datetimes_as_utc_and_is_lazy():
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})
    adapter, _ = make_adapter()
    rows = adapter.read_accounts_since(datetime(2026, 1, 2, 3, 4, 5), ["Name"])
    assert len(responses.calls) == 0  # a generator: nothing is read until iterated
    assert list(rows) == []
    assert "SystemModstamp >= 2026-01-02T03:04:05Z" in soql_of(responses.calls[0])


# --- sObject Collections ------------------------------------------------------------------


@responses.activate
def test_collections_partial_failure_maps_each_record():
    responses.patch(
        COLLECTIONS,
        json=saved(
            sf_id(1),
            (
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records: 001Dn0000000002AAA",
                [],
            ),
            ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Quadrant is required for Enterprise accounts", ["Quadrant__c"]),
        ),
    )
    adapter, sleeps = make_adapter()
    batch = [
        Change("ACC-1", sf_id(1), {"Value_Tier__c": "Gold", "Health_Score__c": 71.4}),
        Change("ACC-2", sf_id(2), {"Case_Study_Candidate__c": True}),
        Change("ACC-3", sf_id(3), {"Quadrant__c": "Q2", "Segment_Updated_At__c": "2026-10-31"}),
    ]

    results = {r.account_id: r for r in adapter.update(batch)}

    request = responses.calls[0].request
    assert (request.method, request.url) == ("PATCH", COLLECTIONS)
    assert request.headers["Authorization"] == f"Bearer {SESSION}"
    assert json.loads(request.body) == {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Account"}, "id": sf_id(1), "Value_Tier__c": "Gold", "Health_Score__c": 71.4},
            {"attributes": {"type": "Account"}, "id": sf_id(2), "Case_Study_Candidate__c": True},
            {
                "attributes": {"type": "Account"},
                "id": sf_id(3),
                "Quadrant__c": "Q2",
                "Segment_Updated_At__c": "2026-10-31",
            },
        ],
    }
    assert results["ACC-1"].status == "success"
    assert (results["ACC-2"].status, results["ACC-2"].error_code) == ("failed_transient", "UNABLE_TO_LOCK_ROW")
    assert (results["ACC-3"].status, results["ACC-3"].error_code) == (
        "failed_permanent",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    )
    assert results["ACC-3"].error_message == "Quadrant is required for Enterprise accounts (fields: Quadrant__c)"
    assert adapter.calls == 1
    assert sleeps == []  # per-record failures are the sync's to retry, not the request's


@pytest.mark.parametrize(
    "code",
    ["ENTITY_IS_DELETED", "INVALID_FIELD", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND", "MALFORMED_ID"],
)
@responses.activate
def test_collections_record_errors_that_retrying_cannot_fix_are_permanent(code):
    responses.patch(COLLECTIONS, json=saved((code, "rejected", [])))
    adapter, _ = make_adapter()
    [result] = adapter.update(changes(1))
    assert (result.status, result.error_code) == ("failed_permanent", code)


@responses.activate
def test_collections_request_limit_per_record_is_transient():
    responses.patch(COLLECTIONS, json=saved(("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.", [])))
    adapter, _ = make_adapter()
    [result] = adapter.update(changes(1))
    assert (result.status, result.error_code) == ("failed_transient", "REQUEST_LIMIT_EXCEEDED")


@responses.activate
def test_429_waits_the_retry_after_then_succeeds():
    responses.patch(
        COLLECTIONS,
        status=429,
        headers={"Retry-After": "7"},
        json=error("REQUEST_LIMIT_EXCEEDED", "Too many requests"),
    )
    responses.patch(COLLECTIONS, json=saved(sf_id(0), sf_id(1)))
    adapter, sleeps = make_adapter()

    results = adapter.update(changes(2))

    assert sleeps == [7.0]
    assert [r.status for r in results] == ["success", "success"]
    assert [r.attempts for r in results] == [2, 2]
    assert adapter.calls == 2  # both requests were sent


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "json": error("SERVER_UNAVAILABLE", "Service Unavailable")},
        {"status": 500, "body": "<html>Internal Server Error</html>"},
        {"body": requests.exceptions.ReadTimeout("read timed out")},
        {"body": requests.exceptions.ConnectionError("connection reset by peer")},
    ],
    ids=["503", "500-html", "timeout", "connection-error"],
)
@responses.activate
def test_server_errors_and_timeouts_are_retried_then_succeed(failure):
    responses.patch(COLLECTIONS, **failure)
    responses.patch(COLLECTIONS, json=saved(sf_id(0)))
    adapter, sleeps = make_adapter()

    [result] = adapter.update(changes(1))

    assert (result.status, result.attempts) == ("success", 2)
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5  # the jittered backoff of attempt 1 (no Retry-After)
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        ({"status": 503, "json": error("SERVER_UNAVAILABLE", "Service Unavailable")}, "SERVER_UNAVAILABLE"),
        ({"status": 500, "body": "<html>Internal Server Error</html>"}, "HTTP_500"),
        ({"body": requests.exceptions.ReadTimeout("read timed out")}, "TIMEOUT"),
        ({"body": requests.exceptions.ConnectionError("connection reset by peer")}, "CONNECTION_ERROR"),
    ],
    ids=["503", "500-html", "timeout", "connection-error"],
)
@responses.activate
def test_server_errors_and_timeouts_that_last_fail_every_record_transiently(failure, code):
    responses.patch(COLLECTIONS, **failure)
    adapter, sleeps = make_adapter(attempts=3)

    results = adapter.update(changes(2))

    assert {(r.status, r.error_code, r.attempts) for r in results} == {("failed_transient", code, 3)}
    assert len(responses.calls) == 3 and len(sleeps) == 2


@responses.activate
def test_an_answer_that_is_not_json_is_transient():
    """A proxy's page with a 200: the library cannot parse it; sent again, then the record fails transiently."""
    responses.patch(COLLECTIONS, body="<html>Maintenance</html>", content_type="text/html")
    adapter, sleeps = make_adapter(attempts=2)
    [result] = adapter.update(changes(1))
    assert (result.status, result.error_code, result.error_message, result.attempts) == (
        "failed_transient",
        "BAD_RESPONSE",
        "the answer is not JSON",
        2,
    )
    assert len(sleeps) == 1


def test_every_request_has_a_timeout(monkeypatch):
    """simple-salesforce sets none: without ours a request could hang the task."""
    seen = []

    def send(self, request, **kwargs):
        seen.append((request.method, urlsplit(request.url).path, kwargs.get("timeout")))
        raise requests.exceptions.ConnectTimeout("no route")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    with pytest.raises(TransientError, match="TIMEOUT"):
        SalesforceClient.from_connection("salesforce_default", RetryPolicy(attempts=1), timeout=(4.0, 30.0))
    assert seen == [("POST", "/services/Soap/u/62.0", (4.0, 30.0))]


DAILY_LIMIT = error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
DAILY_LIMIT_MESSAGE = (
    "the Salesforce org's daily API request limit (a rolling 24 hours) is spent (TotalRequests Limit exceeded.); "
    "not retried, as no request succeeds until it frees up: the next scheduled run will pick it up "
    "(Salesforce: Setup > Company Information shows the API requests of the last 24 hours)"
)


@responses.activate
def test_the_orgs_daily_request_limit_is_not_retried_and_the_remaining_batches_are_not_sent():
    """403 REQUEST_LIMIT_EXCEEDED "TotalRequests": the 24-hour limit is spent. Retried, it cost 4 requests a
    batch and again every round of the sync, all refused."""
    responses.patch(COLLECTIONS, status=403, json=DAILY_LIMIT)
    adapter, sleeps = make_adapter(attempts=4)
    pending = changes(450)  # three Collections batches

    results = adapter.update(pending)

    assert len(results) == 450  # never dropped
    assert {(r.status, r.error_code, r.error_message) for r in results} == {
        ("failed_transient", "REQUEST_LIMIT_EXCEEDED", DAILY_LIMIT_MESSAGE)
    }
    assert len(responses.calls) == 1 and adapter.calls == 1 and sleeps == []
    # The sync's later rounds send the records failed transiently again: nothing is requested.
    for _ in range(3):
        again = adapter.update(pending)
        assert {(r.status, r.error_code) for r in again} == {("failed_transient", "REQUEST_LIMIT_EXCEEDED")}
    assert len(responses.calls) == 1 and adapter.calls == 1 and sleeps == []


@responses.activate
def test_a_concurrent_request_limit_is_retried():
    """The same code on the concurrent long-running requests limit frees up within seconds: sent again."""
    busy = error("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
    responses.patch(COLLECTIONS, status=403, json=busy)
    responses.patch(COLLECTIONS, json=saved(sf_id(0)))
    adapter, sleeps = make_adapter(attempts=4)

    [result] = adapter.update(changes(1))

    assert (result.status, result.attempts) == ("success", 2)
    assert len(responses.calls) == 2 and len(sleeps) == 1


@responses.activate
def test_the_daily_limit_met_by_a_bulk_job_is_not_retried_and_later_rounds_send_nothing():
    responses.post(JOBS, status=403, json=DAILY_LIMIT)
    adapter, sleeps = make_adapter(bulk_threshold=1)

    results = adapter.update(changes(3))
    again = adapter.update(changes(3))

    assert {(r.status, r.error_code, r.error_message) for r in results + again} == {
        ("failed_transient", "REQUEST_LIMIT_EXCEEDED", DAILY_LIMIT_MESSAGE)
    }
    assert [(c.request.method, c.request.url) for c in responses.calls] == [("POST", JOBS)]
    assert (adapter.calls, adapter.bulk_jobs, sleeps) == (1, 0, [])


@responses.activate
def test_the_daily_limit_met_reading_a_bulk_jobs_results_stops_the_reads():
    add_bulk_job("JobComplete", numberRecordsProcessed=2)
    header = ["sf__Id", "sf__Created", "Id", "Value_Tier__c"]
    responses.get(f"{JOBS}/{JOB_ID}/successfulResults", body=csv_text(header, [[sf_id(0), "false", sf_id(0), "Gold"]]))
    responses.get(f"{JOBS}/{JOB_ID}/failedResults", status=403, json=DAILY_LIMIT)
    adapter, sleeps = make_adapter(bulk_threshold=1)

    results = {r.account_id: (r.status, r.error_code, r.error_message) for r in adapter.update(changes(2))}

    assert results == {
        "ACC-0": ("success", None, None),
        "ACC-1": (
            "failed_transient",
            "NO_RESULT",
            f"no result in bulk job(s) {JOB_ID}; results unreadable: {JOB_ID} failed: REQUEST_LIMIT_EXCEEDED, "
            f"{JOB_ID} unprocessed: REQUEST_LIMIT_EXCEEDED",
        ),
    }
    reads = [urlsplit(c.request.url).path.rsplit("/", 1)[-1] for c in responses.calls if c.request.method == "GET"]
    assert [r for r in reads if r != JOB_ID] == ["successfulResults", "failedResults"]  # no unprocessedRecords
    assert sleeps == []
    assert {r.error_code for r in adapter.update(changes(1, start=1))} == {"REQUEST_LIMIT_EXCEEDED"}
    assert len([c for c in responses.calls if c.request.method == "POST"]) == 1  # no second job


@responses.activate
def test_the_daily_limit_on_a_read_fails_the_task_at_once():
    responses.get(QUERY, status=403, json=DAILY_LIMIT)
    adapter, sleeps = make_adapter(attempts=4)

    with pytest.raises(NotRetryableError) as raised:
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])

    assert isinstance(raised.value, PermanentError)  # no retry of the task by Airflow either
    assert (raised.value.code, raised.value.message) == ("REQUEST_LIMIT_EXCEEDED", DAILY_LIMIT_MESSAGE)
    assert paths() == [DESCRIBE_PATH, QUERY_PATH]
    assert sleeps == []


@responses.activate
def test_other_403_and_400_are_permanent_without_retry():
    responses.patch(COLLECTIONS, status=400, json=error("JSON_PARSER_ERROR", "Unexpected character"))
    adapter, sleeps = make_adapter()
    results = adapter.update(changes(2))
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "JSON_PARSER_ERROR")}
    assert sleeps == [] and len(responses.calls) == 1

    responses.replace(responses.PATCH, COLLECTIONS, status=403, json=error("INSUFFICIENT_ACCESS", "no access"))
    results, refused = interrupted(adapter, changes(1))
    assert isinstance(refused, AccessRefusedError) and refused.code == "INSUFFICIENT_ACCESS"
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "INSUFFICIENT_ACCESS")}


@responses.activate
def test_a_refused_request_stops_the_update_before_the_next_batch():
    """450 changes are three Collections requests: the first saved, the second refused (403), the
    third never sent; the kept results are those of the first two."""
    responses.add_callback(responses.PATCH, COLLECTIONS, callback=echo_success)
    responses.patch(
        COLLECTIONS, status=403, json=error("API_DISABLED_FOR_ORG", "API is not enabled for this Organization")
    )
    adapter, sleeps = make_adapter()

    results, refused = interrupted(adapter, changes(450))

    assert refused.code == "API_DISABLED_FOR_ORG" and sleeps == []
    assert [c.request.method for c in responses.calls] == ["PATCH", "PATCH"]
    assert [(r.account_id, r.status) for r in results] == [(f"ACC-{i}", "success") for i in range(200)] + [
        (f"ACC-{i}", "failed_permanent") for i in range(200, 400)
    ]


# --- expired sessions: the library logs in again -------------------------------------------


@responses.activate
def test_expired_session_logs_in_again_and_succeeds():
    responses.patch(COLLECTIONS, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    responses.patch(COLLECTIONS, json=saved(sf_id(0)))
    adapter, sleeps = make_adapter()
    add_soap_login(FRESH_SESSION)

    [result] = adapter.update(changes(1))

    assert (result.status, result.attempts) == ("success", 1)  # one attempt of ours: the library resent it
    assert [c.request.method for c in responses.calls] == ["PATCH", "POST", "PATCH"]
    assert responses.calls[1].request.url == SOAP_LOGIN
    assert bearer(responses.calls[0]) == f"Bearer {SESSION}"
    assert bearer(responses.calls[2]) == f"Bearer {FRESH_SESSION}"
    assert sleeps == []  # a new login is not a backoff
    assert adapter.calls == 2


@responses.activate
def test_a_session_refused_after_logging_in_again_is_permanent():
    """simple-salesforce logs in again up to four times, then gives up: a 401 retrying cannot fix."""
    responses.patch(COLLECTIONS, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    adapter, sleeps = make_adapter()
    add_soap_login(FRESH_SESSION)

    results, refused = interrupted(adapter, changes(2))

    assert isinstance(refused, AccessRefusedError)
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "INVALID_SESSION_ID")}
    assert results[0].error_message == (
        "Session expired or invalid (Salesforce refused the session of the Airflow connection "
        "'salesforce_default': logging in again did not help: check that its user may use the API)"
    )
    assert [c.request.method for c in responses.calls] == ["PATCH", "POST"] * 4
    assert sleeps == []


def direct_session_connection(token: str = SESSION) -> str:
    """The provider's direct session: an access token, and the instance URL in the extra."""
    return connection_json(password=token, extra={"instance_url": INSTANCE, "version": "62.0"})


@responses.activate
def test_a_direct_session_sends_the_token_without_logging_in(monkeypatch):
    use_connection(monkeypatch, direct_session_connection())
    responses.patch(COLLECTIONS, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    adapter, sleeps = make_adapter(login=False)

    results, _ = interrupted(adapter, changes(2))

    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "INVALID_SESSION_ID")}
    assert results[0].error_message == (
        "Session expired or invalid (Salesforce refused the session of the Airflow connection "
        "'salesforce_default': store a fresh access token as its password, or give it a login)"
    )
    assert [c.request.method for c in responses.calls] == ["PATCH"]  # no login, and no second try
    assert bearer(responses.calls[0]) == f"Bearer {SESSION}"
    assert sleeps == []


@responses.activate
def test_a_direct_session_refused_on_read_raises_permanent(monkeypatch):
    use_connection(monkeypatch, direct_session_connection())
    responses.get(QUERY, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    adapter, _ = make_adapter(login=False)
    with pytest.raises(PermanentError, match="INVALID_SESSION_ID"):
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])


@responses.activate
def test_read_failing_transiently_after_retries_raises():
    responses.get(QUERY, status=503, json=error("SERVER_UNAVAILABLE", "down"))
    adapter, sleeps = make_adapter(attempts=2)
    with pytest.raises(TransientError, match="SERVER_UNAVAILABLE"):
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])
    assert len(sleeps) == 1 and len(responses.calls) == 3  # the describe, the query twice


@responses.activate
def test_short_result_list_never_drops_a_record():
    responses.patch(COLLECTIONS, json=saved(sf_id(0)))  # one SaveResult for two records
    adapter, _ = make_adapter()
    results = adapter.update(changes(2))
    assert [(r.account_id, r.status, r.error_code) for r in results] == [
        ("ACC-0", "success", None),
        ("ACC-1", "failed_transient", "NO_RESULT"),
    ]


@responses.activate
def test_two_accounts_on_one_record_are_not_written():
    adapter, _ = make_adapter()
    same = [
        Change("ACC-1", sf_id(5), {"Value_Tier__c": "Gold"}),
        Change("ACC-2", sf_id(5)[:15], {"Value_Tier__c": "Gold"}),
    ]
    results = adapter.update(same)
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "DUPLICATE_ID")}
    assert adapter.calls == 0


# --- Bulk API 2.0 -------------------------------------------------------------------------


def job_info(state: str, **extra) -> dict:
    return {
        "id": JOB_ID,
        "operation": "update",
        "object": "Account",
        "createdById": "0055g00000AbCdEAAV",
        "createdDate": "2026-11-01T02:00:00.000+0000",
        "systemModstamp": "2026-11-01T02:00:05.000+0000",
        "state": state,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": 62.0,
        "jobType": "V2Ingest",
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
        "numberRecordsProcessed": 0,
        "numberRecordsFailed": 0,
    } | extra


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def add_bulk_job(*poll_states: str, uploads: list | None = None, **final) -> None:
    """Create (Open), upload (201), close, one poll per state, then the job info read after the wait."""
    responses.post(JOBS, json=job_info("Open", contentUrl=f"services/data/v62.0/jobs/ingest/{JOB_ID}/batches"))

    def upload(request):
        if uploads is not None:
            uploads.append((request.headers["Content-Type"], request.body.decode()))
        return 201, {}, ""

    responses.add_callback(responses.PUT, f"{JOBS}/{JOB_ID}/batches", callback=upload)
    responses.patch(f"{JOBS}/{JOB_ID}", json=job_info("UploadComplete"))
    for state in poll_states:
        responses.get(f"{JOBS}/{JOB_ID}", json=job_info(state, **(final if state == poll_states[-1] else {})))


@responses.activate
def test_bulk_job_lifecycle_maps_every_row(salesforce_connection):
    polls = salesforce_connection
    batch = [
        Change("ACC-1", sf_id(1), {"Value_Tier__c": "Gold", "Health_Score__c": 71.4, "Case_Study_Candidate__c": True}),
        Change("ACC-2", sf_id(2), {"Value_Tier__c": 'Silver, "Plus"', "Case_Study_Candidate__c": False}),
        Change("ACC-3", sf_id(3), {"Quadrant__c": None}),
        Change("ACC-4", sf_id(4), {"Health_Score__c": 0.00001}),
        Change("ACC-5", sf_id(5), {"Value_Tier__c": "Bronze"}),
    ]
    columns = ["Value_Tier__c", "Health_Score__c", "Case_Study_Candidate__c", "Quadrant__c"]
    uploads: list = []
    add_bulk_job(
        "InProgress", "InProgress", "JobComplete", uploads=uploads, numberRecordsProcessed=3, numberRecordsFailed=2
    )
    responses.get(
        f"{JOBS}/{JOB_ID}/successfulResults",
        body=csv_text(
            ["sf__Id", "sf__Created", "Id", *columns], [[sf_id(1), "false", sf_id(1), "Gold", "71.4", "true", ""]]
        ),
        content_type="text/csv",
    )
    responses.get(
        f"{JOBS}/{JOB_ID}/failedResults",
        body=csv_text(
            ["sf__Id", "sf__Error", "Id", *columns],
            [
                [
                    sf_id(2),
                    "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--",
                    sf_id(2),
                    'Silver, "Plus"',
                    "",
                    "false",
                    "",
                ],
                [
                    sf_id(3),
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION:Quadrant is required for Enterprise accounts:Quadrant__c --",
                    sf_id(3),
                    "",
                    "",
                    "",
                    "#N/A",
                ],
            ],
        ),
        content_type="text/csv",
    )
    responses.get(
        f"{JOBS}/{JOB_ID}/unprocessedRecords",
        body=csv_text(["Id", *columns], [[sf_id(4), "", "0.00001", "", ""]]),
        content_type="text/csv",
    )
    adapter, sleeps = make_adapter(bulk_threshold=2)

    results = {r.account_id: r for r in adapter.update(batch)}

    create = json.loads(responses.calls[0].request.body)
    assert create == {
        "operation": "update",
        "columnDelimiter": "COMMA",
        "lineEnding": "LF",
        "object": "Account",
        "contentType": "CSV",
    }
    [(content_type, uploaded)] = uploads
    assert content_type == "text/csv; charset=UTF-8"
    rows = list(csv.DictReader(io.StringIO(uploaded)))
    assert sorted(rows[0]) == sorted(["Id", *columns])  # the library orders the columns as it likes
    assert rows == [
        {"Id": sf_id(1), "Value_Tier__c": "Gold", "Health_Score__c": "71.4", "Case_Study_Candidate__c": "true"}
        | {"Quadrant__c": ""},
        {"Id": sf_id(2), "Value_Tier__c": 'Silver, "Plus"', "Health_Score__c": "", "Case_Study_Candidate__c": "false"}
        | {"Quadrant__c": ""},
        {"Id": sf_id(3), "Value_Tier__c": "", "Health_Score__c": "", "Case_Study_Candidate__c": ""}
        | {"Quadrant__c": "#N/A"},  # a null, as Bulk API 2.0 writes it; an empty cell leaves the field alone
        {"Id": sf_id(4), "Value_Tier__c": "", "Health_Score__c": "0.00001", "Case_Study_Candidate__c": ""}
        | {"Quadrant__c": ""},
        {"Id": sf_id(5), "Value_Tier__c": "Bronze", "Health_Score__c": "", "Case_Study_Candidate__c": ""}
        | {"Quadrant__c": ""},
    ]
    close = [c for c in responses.calls if c.request.method == "PATCH"]
    assert [json.loads(c.request.body) for c in close] == [{"state": "UploadComplete"}]
    # The library's waits: the interval first, then the interval plus e^0/1000 after each InProgress.
    assert polls == [3, 3.001, 3.001]
    assert sleeps == []

    assert len(results) == 5
    assert results["ACC-1"].status == "success"
    assert (results["ACC-2"].status, results["ACC-2"].error_code) == ("failed_transient", "UNABLE_TO_LOCK_ROW")
    assert results["ACC-2"].error_message == "unable to obtain exclusive access to this record"
    assert (results["ACC-3"].status, results["ACC-3"].error_code) == (
        "failed_permanent",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    )
    assert (results["ACC-4"].status, results["ACC-4"].error_code) == ("failed_transient", "UNPROCESSED")
    assert (results["ACC-5"].status, results["ACC-5"].error_code) == ("failed_transient", "NO_RESULT")
    assert results["ACC-5"].error_message == f"no result in bulk job(s) {JOB_ID}"
    assert (adapter.calls, adapter.bulk_jobs) == (3, 1)  # create + upload + close


@responses.activate
def test_a_failed_bulk_job_fails_every_record_transiently():
    """The library raises on a Failed job without its id: which rows it wrote is unknown, so all are sent again."""
    add_bulk_job("InProgress", "Failed", errorMessage="InternalServerError : processing of the job was interrupted")
    responses.get(f"{JOBS}/{JOB_ID}", json=job_info("Failed"))  # the library reads it again before raising
    adapter, _ = make_adapter(bulk_threshold=1)

    results = adapter.update(changes(3))

    assert {(r.status, r.error_code) for r in results} == {("failed_transient", "BULK_JOB_FAILED")}
    assert results[0].error_message == (
        "Job failure. Response content: InternalServerError : processing of the job was interrupted"
    )
    assert not any(c.request.url.endswith("Results") for c in responses.calls)
    assert (adapter.calls, adapter.bulk_jobs) == (3, 0)


@responses.activate
def test_a_session_expiring_during_a_bulk_job_logs_in_again_and_the_records_go_again():
    """simple-salesforce renews an expired session on a REST call, never on a Bulk API 2.0 request:
    a poll refused with 401 is a login away from working, not a permanent failure of every record."""
    add_bulk_job()
    responses.get(f"{JOBS}/{JOB_ID}", status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    adapter, _ = make_adapter(bulk_threshold=1)
    add_soap_login(FRESH_SESSION)

    results = adapter.update(changes(3))

    assert {(r.status, r.error_code) for r in results} == {("failed_transient", "INVALID_SESSION_ID")}
    assert "logged in again" in results[0].error_message
    assert [c.request.url for c in responses.calls if c.request.method == "POST"][-1] == SOAP_LOGIN

    # The sync's next round: a new job, on the new session.
    responses.calls.reset()
    responses.replace(responses.GET, f"{JOBS}/{JOB_ID}", json=job_info("JobComplete"))
    for kind in ("successfulResults", "failedResults", "unprocessedRecords"):
        rows = [[sf_id(i), "false", sf_id(i), "Gold"] for i in range(3)] if kind == "successfulResults" else []
        responses.get(f"{JOBS}/{JOB_ID}/{kind}", body=csv_text(["sf__Id", "sf__Created", "Id", "Value_Tier__c"], rows))

    again = adapter.update(changes(3))

    assert {r.status for r in again} == {"success"}
    assert {bearer(c) for c in responses.calls} == {f"Bearer {FRESH_SESSION}"}


@responses.activate
def test_a_session_expiring_before_the_results_are_read_is_renewed_for_them():
    add_bulk_job("JobComplete", numberRecordsProcessed=2)
    expired = error("INVALID_SESSION_ID", "Session expired or invalid")
    header = ["sf__Id", "sf__Created", "Id", "Value_Tier__c"]
    responses.get(f"{JOBS}/{JOB_ID}/successfulResults", status=401, json=expired)
    responses.get(f"{JOBS}/{JOB_ID}/successfulResults", body=csv_text(header, [[sf_id(0), "false", sf_id(0), "Gold"]]))
    responses.get(f"{JOBS}/{JOB_ID}/failedResults", body=csv_text(["sf__Id", "sf__Error", "Id", "Value_Tier__c"], []))
    responses.get(f"{JOBS}/{JOB_ID}/unprocessedRecords", body=csv_text(["Id", "Value_Tier__c"], []))
    adapter, _ = make_adapter(bulk_threshold=1)
    add_soap_login(FRESH_SESSION)

    results = {r.account_id: (r.status, r.error_code) for r in adapter.update(changes(2))}

    assert results == {"ACC-0": ("success", None), "ACC-1": ("failed_transient", "NO_RESULT")}
    reads = [c for c in responses.calls if "Results" in c.request.url or "Records" in c.request.url]
    assert [bearer(c) for c in reads] == [f"Bearer {SESSION}", *[f"Bearer {FRESH_SESSION}"] * 3]


@responses.activate
def test_bulk_job_that_cannot_be_created_fails_every_record():
    responses.post(JOBS, status=400, json=error("INVALIDJOB", "Invalid object: Acount"))
    adapter, _ = make_adapter(bulk_threshold=1)
    results = adapter.update(changes(3))
    assert {(r.status, r.error_code, r.error_message) for r in results} == {
        ("failed_permanent", "INVALIDJOB", "Invalid object: Acount")
    }
    assert (adapter.calls, adapter.bulk_jobs) == (1, 0)


@responses.activate
def test_bulk_upload_failing_aborts_the_job_and_fails_transiently():
    responses.post(JOBS, json=job_info("Open"))
    responses.put(f"{JOBS}/{JOB_ID}/batches", status=503, json=error("SERVER_UNAVAILABLE", "down"))
    responses.get(f"{JOBS}/{JOB_ID}", json=job_info("Open"))
    responses.patch(f"{JOBS}/{JOB_ID}", json=job_info("Aborted"))
    adapter, _ = make_adapter(bulk_threshold=1)

    results = adapter.update(changes(3))

    assert {(r.status, r.error_code) for r in results} == {("failed_transient", "SERVER_UNAVAILABLE")}
    [abort] = [c for c in responses.calls if c.request.method == "PATCH"]
    assert json.loads(abort.request.body) == {"state": "Aborted"}
    assert adapter.calls == 3  # create, upload, abort


@responses.activate
def test_bulk_job_still_running_after_the_poll_timeout_is_aborted(monkeypatch):
    import time

    import simple_salesforce.bulk2

    monkeypatch.setattr(simple_salesforce.bulk2, "sleep", time.sleep)  # the bound is in real time
    add_bulk_job("InProgress")
    responses.patch(f"{JOBS}/{JOB_ID}", json=job_info("Aborted"))
    adapter, _ = make_adapter(bulk_threshold=1, poll_timeout=0.05)
    adapter.poll_interval = 0.01

    started = time.monotonic()
    results = adapter.update(changes(2))

    assert time.monotonic() - started < 5  # not the library's own 24 hours
    assert {(r.status, r.error_code) for r in results} == {("failed_transient", "BULK_TIMEOUT")}
    assert results[0].error_message == "Job timeout. Job status: InProgress"
    patches = [json.loads(c.request.body) for c in responses.calls if c.request.method == "PATCH"]
    assert patches == [{"state": "UploadComplete"}, {"state": "Aborted"}]


def test_bulk_values_and_errors():
    assert [bulk_value(v) for v in (True, False, None, "", 71.4, 1e-05, 3, "a,b")] == [
        "true",
        "false",
        "#N/A",
        "#N/A",
        "71.4",
        "0.00001",
        "3",
        "a,b",
    ]
    assert split_bulk_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--") == (
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )
    assert split_bulk_error("something odd happened") == ("BULK_ERROR", "something odd happened")


# --- call counting ------------------------------------------------------------------------


@responses.activate
def test_ten_thousand_changes_below_the_threshold_are_fifty_collections_calls():
    responses.add_callback(responses.PATCH, COLLECTIONS, callback=echo_success)
    adapter, _ = make_adapter(bulk_threshold=10_001)

    results = adapter.update(changes(10_000))

    assert adapter.calls == 50
    assert len(responses.calls) == 50
    assert all(len(json.loads(c.request.body)["records"]) == 200 for c in responses.calls)
    assert len(results) == 10_000 and {r.status for r in results} == {"success"}
    assert adapter.bulk_jobs == 0


@responses.activate
def test_ten_thousand_changes_above_the_threshold_are_one_bulk_job():
    batch = changes(10_000)
    uploads: list = []

    def successes(request):
        rows = list(csv.DictReader(io.StringIO(uploads[0][1])))
        body = csv_text(
            ["sf__Id", "sf__Created", "Id", "Value_Tier__c"], [[r["Id"], "false", r["Id"], "Gold"] for r in rows]
        )
        return 200, {"Content-Type": "text/csv"}, body

    add_bulk_job("JobComplete", uploads=uploads, numberRecordsProcessed=10_000)
    responses.add_callback(responses.GET, f"{JOBS}/{JOB_ID}/successfulResults", callback=successes)
    responses.get(f"{JOBS}/{JOB_ID}/failedResults", body='"sf__Id","sf__Error","Id","Value_Tier__c"\n')
    responses.get(f"{JOBS}/{JOB_ID}/unprocessedRecords", body='"Id","Value_Tier__c"\n')
    adapter, _ = make_adapter(bulk_threshold=2000)

    results = adapter.update(batch)

    assert adapter.bulk_jobs == 1
    assert adapter.calls == 3
    assert len([c for c in responses.calls if c.request.method == "POST"]) == 1
    assert uploads[0][1].count("\n") == 10_001
    assert len(results) == 10_000 and {r.status for r in results} == {"success"}


@responses.activate
def test_no_changes_no_calls():
    adapter, _ = make_adapter()
    assert adapter.update([]) == []
    assert len(responses.calls) == 0
    assert (adapter.calls, adapter.bulk_jobs) == (0, 0)


# --- secrets ---------------------------------------------------------------------------------


@responses.activate
def test_no_secret_reaches_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    # A server echoing the session back, a transport error quoting the password, then a 401
    # quoting the first session while the library logs in again with others: all masked.
    responses.patch(COLLECTIONS, status=503, json=error("SERVER_UNAVAILABLE", f"bad header Bearer {SESSION}"))
    responses.patch(COLLECTIONS, body=requests.exceptions.ConnectionError(f"reset while sending {PASSWORD}"))
    responses.get(QUERY, status=401, json=error("INVALID_SESSION_ID", f"Session {SESSION} expired"))
    adapter, _ = make_adapter(attempts=2)
    add_soap_login(FRESH_SESSION)

    results = adapter.update(changes(2))
    with pytest.raises(PermanentError) as raised:
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])

    assert {r.status for r in results} == {"failed_transient"}
    texts = [caplog.text, str(raised.value), raised.value.message, repr(adapter), repr(adapter.client)]
    texts += [adapter.describe()]
    texts += [f"{r.error_code} {r.error_message}" for r in results]
    assert "retrying" in caplog.text  # the retry was logged...
    for secret in (SESSION, FRESH_SESSION, PASSWORD, SECURITY_TOKEN):
        assert all(secret not in text for text in texts), secret  # ...without a secret
    assert str(raised.value).startswith("INVALID_SESSION_ID: Session *** expired")
    assert "reset while sending ***" in results[0].error_message
    assert adapter.describe() == "salesforce:acme.my.salesforce.com/Account"


@responses.activate
def test_the_librarys_unmasked_exception_is_not_chained_to_ours():
    """``raise mapped from None`` inside the ``except`` hid ``__cause__`` but kept the library's exception
    (its message quoting the session) as ``__context__``, where an error reporter finds it."""
    responses.get(QUERY, status=400, json=error("MALFORMED_QUERY", f"unexpected token: {SESSION} {PASSWORD}"))
    adapter, _ = make_adapter(attempts=1)

    with pytest.raises(PermanentError) as raised:
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])

    err = raised.value
    assert (err.code, err.message) == ("MALFORMED_QUERY", "unexpected token: *** ***")
    assert err.__cause__ is None and err.__context__ is None
    shown = "".join(traceback.format_exception(err))
    assert "MALFORMED_QUERY: unexpected token: *** ***" in shown
    assert SESSION not in shown and PASSWORD not in shown


@responses.activate
def test_a_secret_is_masked_before_a_long_message_is_cut():
    """Cutting first would leave the secret's first characters, which masking no longer recognises."""
    responses.patch(COLLECTIONS, status=400, json=error("MALFORMED_ID", "x" * 980 + f" password={PASSWORD}"))
    responses.patch(COLLECTIONS, status=502, body="<html>" + "y" * 262 + f"Authorization: Bearer {SESSION}</html>")
    adapter, _ = make_adapter(attempts=1)

    [first] = adapter.update(changes(1))
    [second] = adapter.update(changes(1, start=1))

    assert first.error_message.endswith("x password=***")
    assert "Authorization: Bearer ***" in second.error_message
    assert PASSWORD[:4] not in first.error_message and SESSION[:10] not in second.error_message


@responses.activate
def test_a_token_pasted_with_its_newline_is_masked_where_a_library_quotes_it_escaped():
    """requests refuses the header and quotes it with repr(): the token's "\\n" is two characters there."""
    token = "00D5g000004XyzE!AQ0AQdirect.token.do_not_log"
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})
    adapter, _ = make_adapter(attempts=1)
    adapter.client.sf.session_id = token + "\n"  # the library builds its headers from it
    adapter.client.sf._generate_headers()
    with pytest.raises(PermanentError) as raised:
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])
    assert "direct.token.do_not_log" not in str(raised.value)
    assert "Bearer ***" in str(raised.value)


@responses.activate
def test_a_direct_session_token_with_a_pasted_newline_fails_at_once(monkeypatch):
    use_connection(monkeypatch, direct_session_connection(SESSION + "\n"))
    with pytest.raises(PermanentError) as raised:
        SalesforceClient.from_connection("salesforce_default")
    assert str(raised.value) == (
        "SALESFORCE_CONNECTION: Airflow connection 'salesforce_default': its password (the access token) begins "
        "or ends with whitespace, such as a newline pasted with it. Fix: store the token alone as the password."
    )
    assert len(responses.calls) == 0


# --- the provider's connection: every login form ----------------------------------------------


@responses.activate
def test_username_password_and_security_token_log_in_with_soap():
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})
    add_soap_login()

    client = SalesforceClient.from_connection("salesforce_default", RetryPolicy())
    assert list(client.query("SELECT Id FROM Account")) == []

    login, query = responses.calls
    assert (login.request.method, login.request.url) == ("POST", SOAP_LOGIN)
    assert login.request.headers["SOAPAction"] == "login"
    body = login.request.body.decode() if isinstance(login.request.body, bytes) else login.request.body
    assert f"<n1:username>{USERNAME}</n1:username>" in body
    assert f"<n1:password>{PASSWORD}{SECURITY_TOKEN}</n1:password>" in body  # Salesforce's rule: password + token
    assert query.request.url.startswith(f"{API}/query/?q=")  # the instance from serverUrl, the extra's version
    assert bearer(query) == f"Bearer {SESSION}"
    assert client.instance_url == INSTANCE


@responses.activate
def test_a_refused_login_is_permanent_names_the_connection_and_is_masked(monkeypatch):
    responses.post(
        SOAP_LOGIN,
        status=500,
        body=soap_login_fault(
            "INVALID_LOGIN", f"Invalid username, password, security token; or user locked out. {PASSWORD}"
        ),
        content_type="text/xml",
    )
    sleeps: list[float] = []
    with pytest.raises(PermanentError) as raised:
        SalesforceClient.from_connection("salesforce_default", RetryPolicy(sleep=sleeps.append))
    assert str(raised.value) == (
        "INVALID_LOGIN: Invalid username, password, security token; or user locked out. *** (Salesforce refused "
        "the login of the Airflow connection 'salesforce_default': fix its credentials, "
        "docs/crm-sync.md#the-salesforce-connection)"
    )
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_a_login_endpoint_that_is_down_is_retried():
    responses.post(SOAP_LOGIN, status=503, body="<html>Service Unavailable</html>", content_type="text/html")
    add_soap_login()
    sleeps: list[float] = []
    client = SalesforceClient.from_connection("salesforce_default", RetryPolicy(sleep=sleeps.append))
    assert client.sf.session_id == SESSION
    assert len(responses.calls) == 2 and len(sleeps) == 1


def rsa_key_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@responses.activate
def test_a_connected_app_with_jwt_bearer_logs_in_and_again_when_the_session_expires(monkeypatch, caplog):
    import jwt

    caplog.set_level(logging.DEBUG)
    private_key, public_key = rsa_key_pair()
    consumer_key = "3MVG9fTLmJ60pJ5J.consumer.key"
    # No "version" extra: simple-salesforce's default API version (59.0).
    use_connection(
        monkeypatch, connection_json(login=USERNAME, extra={"consumer_key": consumer_key, "private_key": private_key})
    )
    token_url = "https://login.salesforce.com/services/oauth2/token"
    responses.post(token_url, json=token_response("jwt-session-one"))
    responses.post(token_url, json=token_response("jwt-session-two"))
    collections = f"{INSTANCE}/services/data/v59.0/composite/sobjects"
    responses.patch(collections, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    responses.patch(collections, json=saved(sf_id(0)))

    adapter = SalesforceAdapter.from_connection(SalesforceCrm(), "External_Id__c", RetryPolicy(sleep=lambda s: None))
    [result] = adapter.update(changes(1))

    assert result.status == "success"
    tokens = [c for c in responses.calls if c.request.url == token_url]
    assert len(tokens) == 2
    form = parse_qs(tokens[0].request.body)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = jwt.decode(form["assertion"][0], public_key, algorithms=["RS256"], audience="https://login.salesforce.com")
    assert (claims["iss"], claims["sub"]) == (consumer_key, USERNAME)
    assert 170 < int(claims["exp"]) - datetime.now(UTC).timestamp() <= 181  # 3 minutes, rounded to the second
    patches = [c for c in responses.calls if c.request.method == "PATCH"]
    assert [bearer(c) for c in patches] == ["Bearer jwt-session-one", "Bearer jwt-session-two"]
    assert adapter.describe() == "salesforce:acme.my.salesforce.com/Account"
    assert "BEGIN PRIVATE KEY" not in caplog.text and private_key.splitlines()[1] not in caplog.text


@responses.activate
def test_a_refused_jwt_is_permanent_and_masked(monkeypatch):
    private_key, _ = rsa_key_pair()
    use_connection(
        monkeypatch, connection_json(login=USERNAME, extra={"consumer_key": "3MVG9-key", "private_key": private_key})
    )
    responses.post(
        "https://login.salesforce.com/services/oauth2/token",
        status=400,
        json={"error": "invalid_grant", "error_description": "user hasn't approved this consumer"},
    )
    # simple-salesforce warns with the URL that authorizes the app, for this error.
    with pytest.warns(UserWarning, match="authorize this"), pytest.raises(PermanentError) as raised:
        SalesforceClient.from_connection("salesforce_default", RetryPolicy())
    assert raised.value.code == "INVALID_GRANT"
    assert raised.value.message.startswith("user hasn't approved this consumer (Salesforce refused the login")
    assert private_key.splitlines()[1] not in str(raised.value)


@responses.activate
def test_client_credentials_log_in_at_the_my_domain(monkeypatch):
    secret = "S3cr3tConsumerValue"
    extra = {"consumer_key": "3MVG9-client", "consumer_secret": secret, "domain": "acme.my"}
    use_connection(monkeypatch, connection_json(extra=extra))
    token_url = f"{INSTANCE}/services/oauth2/token"
    responses.post(token_url, json=token_response("cc-session"))
    responses.get(f"{INSTANCE}/services/data/v59.0/query/", json={"totalSize": 0, "done": True, "records": []})

    client = SalesforceClient.from_connection("salesforce_default", RetryPolicy())
    assert list(client.query("SELECT Id FROM Account")) == []

    login, query = responses.calls
    assert parse_qs(login.request.body) == {"grant_type": ["client_credentials"]}
    assert (
        login.request.headers["Authorization"]
        == "Basic " + base64.b64encode(f"3MVG9-client:{secret}".encode()).decode()
    )
    assert bearer(query) == "Bearer cc-session"
    assert secret not in repr(client)


# --- a connection that cannot log in fails at once, saying what to fix ------------------------

FIX = "docs/crm-sync.md#the-salesforce-connection"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"login": USERNAME, "password": PASSWORD, "extra": {"domain": "acme.my"}},
            "missing extra security_token. Fix: set the user's security token (Salesforce: Settings > Reset My "
            "Security Token), or extra organization_id if the org trusts this IP",
        ),
        ({"login": USERNAME}, "missing password. Fix: set the user's password and extra security_token"),
        (
            {"extra": {"security_token": SECURITY_TOKEN}},
            "missing login. Fix: set login (username), password and extra security_token; or login, extra "
            "consumer_key and private_key for the JWT bearer flow",
        ),
        (
            {"extra": {"consumer_key": "3MVG9-key", "private_key_file_path": "/keys/salesforce.pem"}},
            "missing login. Fix: set login to the username of the user the JWT bearer flow acts as",
        ),
        (
            {"login": USERNAME, "extra": {"consumer_key": "3MVG9-key"}},
            "missing extra private_key (or private_key_file_path). Fix: set the connected app's private key for "
            "the JWT bearer flow, or password and extra consumer_secret for the username-password flow",
        ),
        (
            {"extra": {"consumer_key": "3MVG9-key", "consumer_secret": "s3cret", "domain": "login"}},
            "missing extra domain (the org's My Domain). Fix: set domain to the My Domain without .salesforce.com "
            "(e.g. acme.my): the client-credentials flow cannot use login or test; or set login and password for "
            "the username-password flow",
        ),
        (
            {"host": "https://acme.my.salesforce.com", "password": "00D-token"},
            "missing a login (host + password as an access token is this project's former shape). Fix: set login "
            "(username), password and extra security_token; or keep the token as the password and move the host "
            "to extra instance_url (https://acme.my.salesforce.com)",
        ),
        (
            {"extra": {"client_id": "3MVG9-client", "client_secret": "s3cret", "domain": "acme.my.salesforce.com"}},
            "missing extra consumer_key and consumer_secret (client_id/client_secret are this project's former "
            "shape). Fix: rename client_id to consumer_key and client_secret to consumer_secret, and set domain to "
            "the org's My Domain without .salesforce.com (e.g. acme.my)",
        ),
    ],
    ids=["no-token", "no-password", "no-login", "jwt-no-login", "jwt-no-key", "cc-login-domain", "old-token", "old-cc"],
)
@responses.activate
def test_a_connection_missing_a_field_names_it_and_the_fix(monkeypatch, fields, problem):
    use_connection(monkeypatch, connection_json(**fields))
    with pytest.raises(PermanentError) as raised:
        SalesforceAdapter.from_connection(SalesforceCrm(), "External_Id__c", RetryPolicy())
    assert str(raised.value) == (
        f"SALESFORCE_CONNECTION: Airflow connection 'salesforce_default': no Salesforce login possible: {problem} "
        f"({FIX})."
    )
    assert len(responses.calls) == 0  # nothing sent


def test_a_missing_connection_is_permanent_and_says_how_to_create_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SALESFORCE_DEFAULT")
    with pytest.raises(PermanentError) as raised:
        SalesforceAdapter.from_connection(SalesforceCrm(), "External_Id__c", RetryPolicy())
    assert str(raised.value) == (
        "SALESFORCE_CONNECTION: no Airflow connection 'salesforce_default'. Fix: create it (conn_type salesforce), "
        f"{FIX}."
    )


@responses.activate
def test_the_connections_proxies_are_used_and_their_credentials_never_logged(monkeypatch, caplog):
    """simple-salesforce ignores proxies given with a session (ours), logging them as they are."""
    caplog.set_level(logging.DEBUG)
    proxy = "http://proxy-user:Pr0xy-pa55-do-not-log@proxy.acme.example:3128"
    use_connection(monkeypatch, password_connection(proxies={"https": proxy}))
    add_soap_login()
    sent_through: list = []
    real_send = requests.adapters.HTTPAdapter.send

    def send(self, request, **kwargs):
        sent_through.append(kwargs.get("proxies"))
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    client = SalesforceClient.from_connection("salesforce_default")

    assert client.session.proxies == {"https": proxy}
    assert sent_through and all(p.get("https") == proxy for p in sent_through)  # the login went through it
    assert "Pr0xy-pa55-do-not-log" not in caplog.text
    assert client.mask(f"ProxyError: {proxy}") == "ProxyError: http://proxy-user:***@proxy.acme.example:3128"


@responses.activate
def test_proxies_that_are_not_a_mapping_fail_at_once_without_quoting_them(monkeypatch):
    use_connection(monkeypatch, password_connection(proxies="http://proxy-user:secret@proxy:3128"))
    with pytest.raises(PermanentError) as raised:
        SalesforceClient.from_connection("salesforce_default")
    assert "extra proxies is not a mapping of scheme to proxy URL" in str(raised.value)
    assert "secret" not in str(raised.value) and len(responses.calls) == 0


@pytest.mark.parametrize(
    ("domain", "fix"),
    [
        ("acme.my.salesforce.com", "acme.my"),
        ("https://acme.my.salesforce.com/", "acme.my"),
        ("https://test.salesforce.com", "test"),
    ],
)
@responses.activate
def test_a_domain_written_as_a_host_fails_at_once_naming_the_fix(monkeypatch, domain, fix):
    """The login would go to acme.my.salesforce.com.salesforce.com: no such host, a connection error
    retried as if Salesforce were down, in the task and again by Airflow."""
    use_connection(monkeypatch, password_connection(domain=domain))
    with pytest.raises(PermanentError) as raised:
        SalesforceClient.from_connection("salesforce_default")
    assert str(raised.value).startswith(
        f"SALESFORCE_CONNECTION: Airflow connection 'salesforce_default': extra domain {domain!r} is a host or URL"
    )
    assert f"Fix: write {fix!r}" in str(raised.value) and len(responses.calls) == 0


@responses.activate
def test_a_jwt_connection_with_an_instance_url_fails_at_once_naming_the_fix(monkeypatch):
    """The JWT bearer flow logs in at https://<instance_url>.salesforce.com: with the URL a migrated
    connection keeps there, https://https//acme.my.salesforce.com.salesforce.com/services/oauth2/token."""
    private_key, _ = rsa_key_pair()
    extra = {"consumer_key": "3MVG9.key", "private_key": private_key, "instance_url": INSTANCE}
    use_connection(monkeypatch, connection_json(login=USERNAME, extra=extra))
    with pytest.raises(PermanentError) as raised:
        SalesforceClient.from_connection("salesforce_default")
    assert f"extra instance_url {INSTANCE!r} is a host or URL" in str(raised.value)
    assert "Fix: write 'acme.my'" in str(raised.value) and "or remove it" in str(raised.value)
    assert len(responses.calls) == 0


@responses.activate
def test_a_direct_session_needs_a_url(monkeypatch):
    use_connection(monkeypatch, connection_json(password="00D-token", extra={"instance_url": "acme.my.salesforce.com"}))
    with pytest.raises(PermanentError) as raised:
        SalesforceClient.from_connection("salesforce_default")
    assert str(raised.value) == (
        "SALESFORCE_CONNECTION: Airflow connection 'salesforce_default': extra instance_url "
        "'acme.my.salesforce.com' is not a URL. Fix: write it https://acme.my.salesforce.com."
    )


@responses.activate
def test_api_version_in_the_rules_is_no_longer_read_and_says_where_it_went(caplog):
    add_soap_login()
    adapter = SalesforceAdapter.from_connection(SalesforceCrm(api_version="62.0"), "External_Id__c", RetryPolicy())
    assert adapter.client.sf.sf_version == "62.0"  # the connection's "version" extra
    assert (
        "include/rules/crm_sync.yaml: salesforce.api_version 62.0 is no longer read; the API version is the Airflow "
        "connection 'salesforce_default''s extra 'version' (simple-salesforce's default when absent). Fix: move it "
        "there and remove it from include/rules/crm_sync.yaml."
    ) in caplog.text


def test_modstamp_literal_uses_utc():
    from postsales.crm.salesforce import soql_datetime

    assert soql_datetime(datetime(2026, 5, 1, 12, 0, tzinfo=UTC)) == "2026-05-01T12:00:00Z"
