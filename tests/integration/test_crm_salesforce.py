"""The Salesforce adapter and its client against a mocked REST API (``responses``), with the API's real shapes.

Shapes as documented by Salesforce: query pages (``done``/``nextRecordsUrl``), sObject
Collections SaveResults (in request order, ``errors[].statusCode``), error bodies
(``[{"message", "errorCode"}]``), Bulk API 2.0 job info and result CSVs (``sf__Id``,
``sf__Created``, ``sf__Error``, then the uploaded columns) and the OAuth token response.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from postsales.crm.base import Change
from postsales.crm.config import SalesforceCrm
from postsales.crm.salesforce import SalesforceAdapter, bulk_value, split_bulk_error
from postsales.errors import PermanentError, TransientError
from postsales.retry import RetryPolicy
from postsales.salesforce_api import SalesforceClient

INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
TOKEN = "00D5g000004XyzE!AQ0AQH8sEcReTtOkEnVaLuE.do_not_log_me"
COLLECTIONS = f"{API}/composite/sobjects"
JOBS = f"{API}/jobs/ingest"
JOB_ID = "7505g00000BulkJobAAA"


def sf_id(n: int) -> str:
    """An 18-character Account id."""
    return f"001Dn{n:010d}AAA"


def make_adapter(key_field="External_Id__c", bulk_threshold=2000, attempts=4, token_refresher=None, **kwargs):
    sleeps: list[float] = []
    retry = RetryPolicy(attempts=attempts, backoff_seconds=0.5, sleep=sleeps.append)
    config = SalesforceCrm(bulk_threshold=bulk_threshold)
    client = SalesforceClient(
        INSTANCE, TOKEN, config.conn_id, config.api_version, retry, token_refresher=token_refresher
    )
    adapter = SalesforceAdapter(client, config, key_field, poll_interval=3, **kwargs)
    return adapter, sleeps


def record(n: int, key: str, **fields) -> dict:
    return {
        "attributes": {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{sf_id(n)}"},
        "Id": sf_id(n),
    } | ({"External_Id__c": key} | fields)


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


def error(code: str, message: str) -> list[dict]:
    return [{"message": message, "errorCode": code}]


def changes(n: int, start: int = 0) -> list[Change]:
    return [Change(f"ACC-{i}", sf_id(i), {"Value_Tier__c": "Gold"}) for i in range(start, start + n)]


def echo_success(request):
    body = json.loads(request.body)
    return 200, {}, json.dumps(saved(*(r["id"] for r in body["records"])))


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
    responses.get(f"{API}/query", json=page_1)
    responses.get(f"{API}/query/01gD0000002HU6KIAW-2000", json=page_2)
    adapter, _ = make_adapter()

    found = adapter.fetch(["ACC-1", "ACC-2", "O'Neil", "ACC-9"], ["Value_Tier__c", "Manual_Segment_Lock__c"])

    assert soql_of(responses.calls[0]) == (
        "SELECT Id, External_Id__c, Value_Tier__c, Manual_Segment_Lock__c FROM Account "
        "WHERE External_Id__c IN ('ACC-1','ACC-2','O\\'Neil','ACC-9')"
    )
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(responses.calls) == 2
    assert set(found) == {"ACC-1", "ACC-2", "O'Neil"}  # ACC-9 is not in the CRM
    assert found["ACC-1"].crm_id == sf_id(1)
    assert found["ACC-1"].values == {"Value_Tier__c": "Gold", "Manual_Segment_Lock__c": False}
    assert found["ACC-1"].matches == 1
    assert found["ACC-2"].matches == 2  # ambiguous: the sync never writes it
    assert found["O'Neil"].crm_id == sf_id(4)
    assert adapter.calls == 0  # reads are not write calls


@responses.activate
def test_fetch_chunks_keys_into_bounded_queries():
    responses.get(f"{API}/query", json={"totalSize": 0, "done": True, "records": []})
    adapter, _ = make_adapter()
    ids = [f"ACCOUNT-{i:06d}" for i in range(450)]

    assert adapter.fetch(ids, ["Value_Tier__c"]) == {}

    queried = [soql_of(call) for call in responses.calls]
    assert [q.count("'ACCOUNT-") for q in queried] == [200, 200, 50]
    assert all(len(call.request.url) < 16_000 for call in responses.calls)

    # Long keys: fewer per query so the URL stays bounded.
    responses.calls.reset()
    adapter.fetch([f"{'X' * 200}-{i}" for i in range(200)], ["Value_Tier__c"])
    assert len(responses.calls) > 1
    assert all(len(call.request.url) < 16_000 for call in responses.calls)


@responses.activate
def test_fetch_by_record_id_maps_15_character_ids_and_skips_non_ids():
    id15 = sf_id(7)[:15]
    body = {
        "totalSize": 1,
        "done": True,
        "records": [{"attributes": {"type": "Account"}, "Id": sf_id(7), "Quadrant__c": "Q1"}],
    }
    responses.get(f"{API}/query", json=body)
    adapter, _ = make_adapter(key_field="Id")

    found = adapter.fetch([id15, "not-an-id"], ["Quadrant__c"])

    assert soql_of(responses.calls[0]) == f"SELECT Id, Quadrant__c FROM Account WHERE Id IN ('{id15}')"
    assert found == {id15: found[id15]}
    assert found[id15].crm_id == sf_id(7)
    assert found[id15].values == {"Quadrant__c": "Q1"}


def test_fetch_rejects_field_names_that_are_not_api_names():
    adapter, _ = make_adapter()
    with pytest.raises(PermanentError, match="INVALID_FIELD"):
        adapter.fetch(["ACC-1"], ["Name FROM User --"])


@responses.activate
def test_fetch_invalid_field_is_permanent():
    responses.get(
        f"{API}/query",
        status=400,
        json=error("INVALID_FIELD", "No such column 'Tier__c' on entity 'Account'."),
    )
    adapter, sleeps = make_adapter()
    with pytest.raises(PermanentError, match="INVALID_FIELD"):
        adapter.fetch(["ACC-1"], ["Tier__c"])
    assert sleeps == []


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
    responses.get(f"{API}/query", json=page_1)
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
    responses.get(f"{API}/query", json={"totalSize": 0, "done": True, "records": []})
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
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
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
    assert "Quadrant is required" in results["ACC-3"].error_message
    assert "Quadrant__c" in results["ACC-3"].error_message
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

    assert result.status == "success"
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5  # the jittered backoff of attempt 1 (no Retry-After)
    assert len(responses.calls) == 2


@responses.activate
def test_request_limit_exceeded_exhausting_retries_fails_every_record_transiently():
    responses.patch(COLLECTIONS, status=403, json=error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    adapter, sleeps = make_adapter(attempts=4)

    results = adapter.update(changes(3))

    assert len(results) == 3  # never dropped
    assert {(r.status, r.error_code, r.attempts) for r in results} == {
        ("failed_transient", "REQUEST_LIMIT_EXCEEDED", 4)
    }
    assert len(responses.calls) == 4
    assert len(sleeps) == 3


@responses.activate
def test_other_403_and_400_are_permanent_without_retry():
    responses.patch(COLLECTIONS, status=400, json=error("JSON_PARSER_ERROR", "Unexpected character"))
    adapter, sleeps = make_adapter()
    results = adapter.update(changes(2))
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "JSON_PARSER_ERROR")}
    assert sleeps == [] and len(responses.calls) == 1

    responses.replace(responses.PATCH, COLLECTIONS, status=403, json=error("INSUFFICIENT_ACCESS", "no access"))
    results = adapter.update(changes(1))
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "INSUFFICIENT_ACCESS")}


@responses.activate
def test_expired_session_refreshes_the_token_once_and_succeeds():
    responses.patch(COLLECTIONS, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    responses.patch(COLLECTIONS, json=saved(sf_id(0)))
    refreshed = []

    def refresher() -> str:
        refreshed.append(True)
        return "00D5g000004XyzE!fresh-token"

    adapter, sleeps = make_adapter(token_refresher=refresher)
    [result] = adapter.update(changes(1))

    assert result.status == "success"
    assert refreshed == [True]
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert responses.calls[1].request.headers["Authorization"] == "Bearer 00D5g000004XyzE!fresh-token"
    assert sleeps == []  # a refresh is not a backoff


@responses.activate
def test_expired_session_refreshes_only_once():
    responses.patch(COLLECTIONS, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    adapter, _ = make_adapter(token_refresher=lambda: "another-token")
    [result] = adapter.update(changes(1))
    assert (result.status, result.error_code) == ("failed_permanent", "INVALID_SESSION_ID")
    assert len(responses.calls) == 2


@responses.activate
def test_expired_session_without_refresher_fails_permanently():
    responses.patch(COLLECTIONS, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    adapter, sleeps = make_adapter()

    results = adapter.update(changes(2))

    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "INVALID_SESSION_ID")}
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_expired_session_on_read_without_refresher_raises_permanent():
    responses.get(f"{API}/query", status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    adapter, _ = make_adapter()
    with pytest.raises(PermanentError, match="INVALID_SESSION_ID"):
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])


@responses.activate
def test_read_failing_transiently_after_retries_raises():
    responses.get(f"{API}/query", status=503, json=error("SERVER_UNAVAILABLE", "down"))
    adapter, sleeps = make_adapter(attempts=2)
    with pytest.raises(TransientError, match="SERVER_UNAVAILABLE"):
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])
    assert len(sleeps) == 1


@responses.activate
def test_short_result_list_never_drops_a_record():
    responses.patch(COLLECTIONS, json=saved(sf_id(0)))  # one SaveResult for two records
    adapter, _ = make_adapter()
    results = adapter.update(changes(2))
    assert [(r.account_id, r.status, r.error_code) for r in results] == [
        ("ACC-0", "success", None),
        ("ACC-1", "failed_transient", "NO_RESULT"),
    ]


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
    } | extra


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@responses.activate
def test_bulk_job_lifecycle_maps_every_row():
    batch = [
        Change("ACC-1", sf_id(1), {"Value_Tier__c": "Gold", "Health_Score__c": 71.4, "Case_Study_Candidate__c": True}),
        Change("ACC-2", sf_id(2), {"Value_Tier__c": 'Silver, "Plus"', "Case_Study_Candidate__c": False}),
        Change("ACC-3", sf_id(3), {"Quadrant__c": None}),
        Change("ACC-4", sf_id(4), {"Health_Score__c": 0.00001}),
        Change("ACC-5", sf_id(5), {"Value_Tier__c": "Bronze"}),
    ]
    columns = ["Value_Tier__c", "Health_Score__c", "Case_Study_Candidate__c", "Quadrant__c"]
    responses.post(JOBS, json=job_info("Open", contentUrl=f"services/data/v62.0/jobs/ingest/{JOB_ID}/batches"))
    uploads = []

    def upload(request):
        uploads.append((request.headers["Content-Type"], request.body.decode()))
        return 201, {}, ""

    responses.add_callback(responses.PUT, f"{JOBS}/{JOB_ID}/batches", callback=upload)
    responses.patch(f"{JOBS}/{JOB_ID}", json=job_info("UploadComplete"))
    responses.get(f"{JOBS}/{JOB_ID}", json=job_info("InProgress", numberRecordsProcessed=0))
    responses.get(f"{JOBS}/{JOB_ID}", json=job_info("InProgress", numberRecordsProcessed=2))
    responses.get(
        f"{JOBS}/{JOB_ID}",
        json=job_info(
            "Failed",
            numberRecordsProcessed=3,
            numberRecordsFailed=2,
            errorMessage="InternalServerError : processing of the job was interrupted",
        ),
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
        f"{JOBS}/{JOB_ID}/unprocessedrecords",
        body=csv_text(["Id", *columns], [[sf_id(4), "", "0.00001", "", ""]]),
        content_type="text/csv",
    )
    adapter, sleeps = make_adapter(bulk_threshold=2)

    results = {r.account_id: r for r in adapter.update(batch)}

    create = json.loads(responses.calls[0].request.body)
    assert create == {"object": "Account", "operation": "update", "contentType": "CSV", "lineEnding": "LF"}
    [(content_type, uploaded)] = uploads
    assert content_type == "text/csv"
    assert uploaded == (
        "Id,Value_Tier__c,Health_Score__c,Case_Study_Candidate__c,Quadrant__c\n"
        f"{sf_id(1)},Gold,71.4,true,\n"
        f'{sf_id(2)},"Silver, ""Plus""",,false,\n'
        f"{sf_id(3)},,,,#N/A\n"
        f"{sf_id(4)},,0.00001,,\n"
        f"{sf_id(5)},Bronze,,,\n"
    )
    close = [c for c in responses.calls if c.request.method == "PATCH"]
    assert [json.loads(c.request.body) for c in close] == [{"state": "UploadComplete"}]
    assert sleeps == [3, 3]  # two polls saw InProgress, at the injected interval

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
    assert "interrupted" in results["ACC-5"].error_message
    assert (adapter.calls, adapter.bulk_jobs) == (3, 1)  # create + upload + close


@responses.activate
def test_bulk_job_that_cannot_be_created_fails_every_record():
    responses.post(JOBS, status=400, json=error("INVALIDJOB", "Invalid object: Acount"))
    adapter, _ = make_adapter(bulk_threshold=1)
    results = adapter.update(changes(3))
    assert {(r.status, r.error_code) for r in results} == {("failed_permanent", "INVALIDJOB")}
    assert (adapter.calls, adapter.bulk_jobs) == (1, 0)


@responses.activate
def test_bulk_upload_failing_aborts_the_job_and_fails_transiently():
    responses.post(JOBS, json=job_info("Open"))
    responses.put(f"{JOBS}/{JOB_ID}/batches", status=503, json=error("SERVER_UNAVAILABLE", "down"))
    responses.patch(f"{JOBS}/{JOB_ID}", json=job_info("Aborted"))
    adapter, _ = make_adapter(bulk_threshold=1, attempts=2)

    results = adapter.update(changes(3))

    assert {(r.status, r.error_code) for r in results} == {("failed_transient", "SERVER_UNAVAILABLE")}
    [abort] = [c for c in responses.calls if c.request.method == "PATCH"]
    assert json.loads(abort.request.body) == {"state": "Aborted"}


@responses.activate
def test_bulk_job_still_running_after_the_poll_timeout_is_aborted():
    responses.post(JOBS, json=job_info("Open"))
    responses.put(f"{JOBS}/{JOB_ID}/batches", status=201)
    responses.patch(f"{JOBS}/{JOB_ID}", json=job_info("UploadComplete"))
    responses.get(f"{JOBS}/{JOB_ID}", json=job_info("InProgress"))
    adapter, sleeps = make_adapter(bulk_threshold=1, poll_timeout=9)

    results = adapter.update(changes(2))

    assert {(r.status, r.error_code) for r in results} == {("failed_transient", "BULK_TIMEOUT")}
    assert sleeps == [3, 3, 3]
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
    uploaded = []

    def upload(request):
        uploaded.append(request.body.decode())
        return 201, {}, ""

    def successes(request):
        rows = list(csv.DictReader(io.StringIO(uploaded[0])))
        body = csv_text(
            ["sf__Id", "sf__Created", "Id", "Value_Tier__c"], [[r["Id"], "false", r["Id"], "Gold"] for r in rows]
        )
        return 200, {"Content-Type": "text/csv"}, body

    responses.post(JOBS, json=job_info("Open"))
    responses.add_callback(responses.PUT, f"{JOBS}/{JOB_ID}/batches", callback=upload)
    responses.patch(f"{JOBS}/{JOB_ID}", json=job_info("UploadComplete"))
    responses.get(f"{JOBS}/{JOB_ID}", json=job_info("JobComplete", numberRecordsProcessed=10_000))
    responses.add_callback(responses.GET, f"{JOBS}/{JOB_ID}/successfulResults", callback=successes)
    responses.get(f"{JOBS}/{JOB_ID}/failedResults", body='"sf__Id","sf__Error","Id","Value_Tier__c"\n')
    responses.get(f"{JOBS}/{JOB_ID}/unprocessedrecords", body='"Id","Value_Tier__c"\n')
    adapter, _ = make_adapter(bulk_threshold=2000)

    results = adapter.update(batch)

    assert adapter.bulk_jobs == 1
    assert adapter.calls == 3
    assert len([c for c in responses.calls if c.request.method == "POST"]) == 1
    assert uploaded[0].count("\n") == 10_001
    assert len(results) == 10_000 and {r.status for r in results} == {"success"}


def test_no_changes_no_calls():
    adapter, _ = make_adapter()
    with responses.RequestsMock():  # any request would fail: none is registered
        assert adapter.update([]) == []
    assert (adapter.calls, adapter.bulk_jobs) == (0, 0)


# --- secrets and connections -----------------------------------------------------------------


@responses.activate
def test_the_access_token_never_reaches_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    # A server echoing the token back, then a transport error mentioning it: both masked.
    responses.patch(COLLECTIONS, status=503, json=error("SERVER_UNAVAILABLE", f"bad header Bearer {TOKEN}"))
    responses.patch(COLLECTIONS, body=requests.exceptions.ConnectionError(f"reset while sending {TOKEN}"))
    responses.get(f"{API}/query", status=401, json=error("INVALID_SESSION_ID", f"Session {TOKEN} expired"))
    adapter, _ = make_adapter(attempts=2)

    results = adapter.update(changes(2))
    with pytest.raises(PermanentError) as raised:
        adapter.fetch(["ACC-1"], ["Value_Tier__c"])

    assert {r.status for r in results} == {"failed_transient"}
    texts = [caplog.text, str(raised.value), raised.value.message, repr(adapter), repr(adapter.client)]
    texts += [adapter.describe()]
    texts += [f"{r.error_code} {r.error_message}" for r in results]
    assert "retrying" in caplog.text  # the retry was logged...
    assert all(TOKEN not in text for text in texts)  # ...without the token
    assert "***" in str(raised.value)
    assert adapter.describe() == "salesforce:acme.my.salesforce.com/Account"


class FakeConnection:
    def __init__(self, host=None, password=None, extra=None):
        self.host, self.password, self.extra_dejson = host, password, extra or {}


def use_connection(monkeypatch, connection):
    from airflow.sdk import BaseHook

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, conn_id: connection))


def test_from_connection_with_an_access_token(monkeypatch):
    use_connection(monkeypatch, FakeConnection(host="acme.my.salesforce.com", password=TOKEN))
    adapter = SalesforceAdapter.from_connection(SalesforceCrm(), "External_Id__c", RetryPolicy())
    assert adapter.client.instance_url == INSTANCE
    assert adapter.describe() == "salesforce:acme.my.salesforce.com/Account"
    assert adapter.client.token_refresher is None
    assert TOKEN not in repr(adapter) and TOKEN not in repr(adapter.client)


def test_from_connection_without_credentials_is_permanent(monkeypatch):
    use_connection(monkeypatch, FakeConnection(host="acme.my.salesforce.com"))
    with pytest.raises(PermanentError, match="NO_CREDENTIALS"):
        SalesforceAdapter.from_connection(SalesforceCrm(), "External_Id__c", RetryPolicy())


@responses.activate
def test_from_connection_with_client_credentials_gets_and_refreshes_tokens(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "S3cr3tClientValue"
    use_connection(
        monkeypatch,
        FakeConnection(
            extra={"client_id": "3MVG9-client", "client_secret": secret, "domain": "acme.my.salesforce.com"}
        ),
    )
    token_url = f"{INSTANCE}/services/oauth2/token"
    issued = {
        "instance_url": INSTANCE,
        "id": "https://login.salesforce.com/id/00D5g000004XyzEEAS/0055g00000AbCdEAAV",
        "token_type": "Bearer",
        "issued_at": "1793505600000",
        "signature": "c2lnbmF0dXJl",
    }
    responses.post(token_url, json=issued | {"access_token": "first-token-value"})
    responses.post(token_url, json=issued | {"access_token": "second-token-value"})
    responses.patch(COLLECTIONS, status=401, json=error("INVALID_SESSION_ID", "Session expired or invalid"))
    responses.patch(COLLECTIONS, json=saved(sf_id(0)))

    adapter = SalesforceAdapter.from_connection(SalesforceCrm(), "External_Id__c", RetryPolicy(sleep=lambda s: None))
    [result] = adapter.update(changes(1))

    assert result.status == "success"
    token_calls = [c for c in responses.calls if c.request.url == token_url]
    assert len(token_calls) == 2
    assert parse_qs(token_calls[0].request.body) == {
        "grant_type": ["client_credentials"],
        "client_id": ["3MVG9-client"],
        "client_secret": [secret],
    }
    patches = [c for c in responses.calls if c.request.method == "PATCH"]
    assert [c.request.headers["Authorization"] for c in patches] == [
        "Bearer first-token-value",
        "Bearer second-token-value",
    ]
    assert adapter.calls == 2
    assert all(s not in caplog.text for s in (secret, "first-token-value", "second-token-value"))


@responses.activate
def test_client_credentials_rejected_is_permanent_and_masked(monkeypatch):
    secret = "S3cr3tClientValue"
    use_connection(monkeypatch, FakeConnection(extra={"client_id": "x", "client_secret": secret, "domain": "test"}))
    responses.post(
        "https://test.salesforce.com/services/oauth2/token",
        status=400,
        json={"error": "invalid_client", "error_description": f"invalid client credentials {secret}"},
    )
    with pytest.raises(PermanentError, match="OAUTH_INVALID_CLIENT") as raised:
        SalesforceAdapter.from_connection(SalesforceCrm(), "External_Id__c", RetryPolicy())
    assert secret not in str(raised.value)


def test_modstamp_literal_uses_utc():
    from postsales.crm.salesforce import soql_datetime

    assert soql_datetime(datetime(2026, 5, 1, 12, 0, tzinfo=UTC)) == "2026-05-01T12:00:00Z"
