"""Salesforce as the CRM source for extraction: SOQL on SystemModstamp, through the real gate and load.

The connection is the Airflow Salesforce provider's (username, password and security token, in
``AIRFLOW_CONN_SALESFORCE_DEFAULT``); simple-salesforce logs in with SOAP, then queries.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import sqlalchemy as sa
import yaml

from postsales import paths, warehouse
from postsales.config import load_sources
from postsales.errors import ConfigError, DataContractError, NotRetryableError
from postsales.extract import extract_entity
from postsales.sources import Interval
from postsales.sources.salesforce import SalesforceSource
from salesforce_fakes import (
    INSTANCE,
    PASSWORD,
    QUERY,
    SECURITY_TOKEN,
    SESSION,
    SOAP_LOGIN,
    add_soap_login,
    connection_json,
    describe_field,
    describe_response,
    describe_url,
    password_connection,
    use_connection,
)

COLUMNS = {
    "account_id": "Id",
    "name": "Name",
    "industry": "Industry",
    "employee_count": "NumberOfEmployees",
    "annual_revenue": "AnnualRevenue",
    "country": "BillingCountry",
    "created_at": "CreatedDate",
    "updated_at": "SystemModstamp",
    "wallet_potential_arr": "Wallet_Potential_ARR__c",
    "go_live_date": "Go_Live_Date__c",
    "lifecycle_stage": "Lifecycle_Stage__c",
    "referenceable": "Referenceable__c",
    "segment_override": "Segment_Override__c",
}


# Account's fields as its describe lists them (a subset: every mapped one, and a few beside).
ACCOUNT_FIELDS = [
    describe_field("Id", "id"),
    describe_field("Name"),
    describe_field("Industry", "picklist"),
    describe_field("NumberOfEmployees", "int", digits=8),
    describe_field("AnnualRevenue", "currency"),
    describe_field("BillingCountry"),
    describe_field("CreatedDate", "datetime"),
    describe_field("CreatedById", "reference"),
    describe_field("LastModifiedDate", "datetime"),
    describe_field("SystemModstamp", "datetime"),
    describe_field("Wallet_Potential_ARR__c", "currency", precision=16, scale=2),
    describe_field("Go_Live_Date__c", "date"),
    describe_field("Lifecycle_Stage__c", "picklist"),
    describe_field("Referenceable__c", "boolean"),
    describe_field("Segment_Override__c", "picklist"),
]
DESCRIBE = describe_url("Account")


def add_describe(fields=ACCOUNT_FIELDS) -> None:
    responses.get(DESCRIBE, json=describe_response("Account", fields))


def sources_with_salesforce(tmp_path, columns=COLUMNS, object_name="Account"):
    """The shipped sources.yaml with a salesforce section and accounts read from it, loaded as the extract
    loads it (the path, to find it in a ConfigError)."""
    section = {"salesforce": {"conn_id": "salesforce_default", "objects": {"accounts": {}}}}
    section["salesforce"]["objects"]["accounts"] = {"object": object_name, "columns": columns}
    shipped = (paths.rules_dir() / "sources.yaml").read_text()
    text = shipped.replace("  accounts:\n    source: files\n", "  accounts:\n    source: salesforce\n")
    path = tmp_path / "sources.yaml"
    path.write_text(text + "\n" + yaml.safe_dump(section, sort_keys=False))
    return path


def record(account_id, name, **overrides):
    fields = {
        "attributes": {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{account_id}"},
        "Id": account_id,
        "Name": name,
        "Industry": "Software",
        "NumberOfEmployees": 120,
        "AnnualRevenue": 5000000.0,
        "BillingCountry": "US",
        "CreatedDate": "2023-06-01T09:00:00.000+0000",
        "SystemModstamp": "2024-03-01T10:00:00.000+0000",
        "Wallet_Potential_ARR__c": 50000.0,
        "Go_Live_Date__c": "2023-08-01",
        "Lifecycle_Stage__c": "Adoption",
        "Referenceable__c": True,
        "Segment_Override__c": None,
    }
    return fields | overrides


@pytest.fixture
def salesforce_accounts(monkeypatch, tmp_path):
    """sources.yaml with accounts from Salesforce; the Airflow connection holds the credentials."""
    use_connection(monkeypatch, password_connection())
    return load_sources(sources_with_salesforce(tmp_path))


def extract_accounts(sources, full_refresh: bool = False):
    """The accounts extract of 2024-03-01 (its day, or everything) from the Salesforce source."""
    return extract_entity(
        "accounts",
        interval=Interval(datetime(2024, 3, 1), datetime(2024, 3, 2), full_refresh=full_refresh),
        run_id="sf",
        sources=sources,
        build_data_docs=False,
    )


@responses.activate
def test_incremental_accounts_from_salesforce(warehouse_url, salesforce_accounts):
    first_page = {
        "totalSize": 3,
        "done": False,
        "nextRecordsUrl": "/services/data/v62.0/query/01gxx-2000",
        "records": [
            record("001000000000001AAA", "Acme"),
            # No employee count: a data gap the segments report, not a bad row — it loads.
            record("001000000000002AAA", "Globex", Segment_Override__c="Enterprise", NumberOfEmployees=None),
        ],
    }
    second_page = {
        "totalSize": 3,
        "done": True,
        # Bad: a lifecycle stage outside the list — quarantined with its reason, not dropped.
        "records": [record("001000000000003AAA", "Initech", Lifecycle_Stage__c="Onboarding")],
    }
    add_soap_login()
    add_describe()
    responses.get(QUERY, json=first_page)
    responses.get(f"{INSTANCE}/services/data/v62.0/query/01gxx-2000", json=second_page)

    summary = extract_accounts(salesforce_accounts)
    login, describe, first, second = responses.calls
    assert (login.request.method, login.request.url) == ("POST", SOAP_LOGIN)
    assert (describe.request.method, describe.request.url) == ("GET", DESCRIBE)  # the mapping checked first
    soql = parse_qs(urlsplit(first.request.url).query)["q"][0]
    assert soql == (
        "SELECT Id, Name, Industry, NumberOfEmployees, AnnualRevenue, BillingCountry, CreatedDate, SystemModstamp, "
        "Wallet_Potential_ARR__c, Go_Live_Date__c, Lifecycle_Stage__c, Referenceable__c, Segment_Override__c "
        "FROM Account WHERE SystemModstamp >= 2024-03-01T00:00:00Z AND SystemModstamp < 2024-03-02T00:00:00Z"
    )
    assert first.request.headers["Authorization"] == f"Bearer {SESSION}"
    assert second.request.url == f"{INSTANCE}/services/data/v62.0/query/01gxx-2000"
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (3, 2, 1)
    with warehouse.engine(warehouse_url).connect() as conn:
        staged = conn.execute(
            sa.text("select account_id, name, referenceable, segment_override from staging.accounts order by 1")
        ).all()
        reasons = conn.execute(sa.text("select failed_expectations from ops.quarantine")).scalars().all()
    assert [tuple(r) for r in staged] == [
        ("001000000000001AAA", "Acme", True, None),
        ("001000000000002AAA", "Globex", True, "Enterprise"),
    ]
    assert len(reasons) == 1 and "lifecycle_stage must be one of" in reasons[0]


@responses.activate
def test_a_query_salesforce_refuses_names_the_mapping_to_fix(salesforce_accounts, warehouse_url):
    """The fields are in the describe, yet Salesforce refuses the query (the field's access changed in between)."""
    add_soap_login()
    add_describe()
    responses.get(
        QUERY,
        status=400,
        json=[
            {"message": "No such column 'Wallet_Potential_ARR__c' on entity 'Account'.", "errorCode": "INVALID_FIELD"}
        ],
    )
    with pytest.raises(DataContractError, match=r"salesforce.objects.accounts.columns") as error:
        extract_accounts(salesforce_accounts, full_refresh=True)
    assert str(error.value) == (
        "accounts: salesforce rejected the query on Account: INVALID_FIELD: No such column 'Wallet_Potential_ARR__c' "
        "on entity 'Account'.. Fix: check salesforce.objects.accounts.columns in include/rules/sources.yaml."
    )
    assert all(secret not in str(error.value) for secret in (PASSWORD, SECURITY_TOKEN, SESSION))
    assert "WHERE" not in parse_qs(urlsplit(responses.calls[2].request.url).query)["q"][0]  # full refresh


@responses.activate
def test_a_connection_without_credentials_is_not_retried(salesforce_accounts, warehouse_url, monkeypatch):
    """Retrying cannot supply a security token: the extract fails at once (NotRetryableError), naming the
    connection, the missing field and the fix, before any request."""
    no_token = connection_json(login="integration@acme.example", password=PASSWORD, extra={"domain": "acme.my"})
    use_connection(monkeypatch, no_token)
    with pytest.raises(NotRetryableError) as error:
        extract_accounts(salesforce_accounts)
    assert str(error.value) == (
        "SALESFORCE_CONNECTION: salesforce source: Airflow connection 'salesforce_default': no Salesforce login "
        "possible: missing extra security_token. Fix: set the user's security token (Salesforce: Settings > Reset "
        "My Security Token), or extra organization_id if the org trusts this IP "
        "(docs/crm-sync.md#the-salesforce-connection)."
    )
    assert len(responses.calls) == 0


@responses.activate
def test_a_login_endpoint_that_stays_down_is_worth_a_task_retry(salesforce_accounts, warehouse_url):
    from postsales.errors import SourceUnavailableError

    responses.post(SOAP_LOGIN, status=503, body="<html>Service Unavailable</html>", content_type="text/html")
    with pytest.raises(SourceUnavailableError) as error:
        extract_accounts(salesforce_accounts)
    assert str(error.value) == (
        "accounts: salesforce did not answer the login: HTTP_503: login: <html>Service Unavailable</html>"
    )


@responses.activate
def test_the_orgs_daily_api_limit_fails_the_extract_at_once(salesforce_accounts, warehouse_url):
    """403 REQUEST_LIMIT_EXCEEDED "TotalRequests": nothing succeeds for hours. Neither sent again within the
    task nor by Airflow (NotRetryableError), and not blamed on the columns' mapping."""
    add_soap_login()
    add_describe()
    responses.get(
        QUERY, status=403, json=[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    )
    with pytest.raises(NotRetryableError) as error:
        extract_accounts(salesforce_accounts)
    assert not isinstance(error.value, DataContractError)
    assert str(error.value) == (
        "REQUEST_LIMIT_EXCEEDED: accounts: salesforce source: the Salesforce org's daily API request limit (a rolling "
        "24 hours) is spent (TotalRequests Limit exceeded.); not retried, as no request succeeds until it frees up: "
        "the next scheduled run will pick it up (Salesforce: Setup > Company Information shows the API requests of "
        "the last 24 hours)"
    )
    assert [c.request.url for c in responses.calls] == [SOAP_LOGIN, DESCRIBE, responses.calls[2].request.url]
    assert responses.calls[2].request.url.startswith(QUERY)  # the login, the describe, the query once


# --- the mapping checked: at load, then against the object's describe ------------------------------


@responses.activate
def test_a_misspelt_incremental_field_fails_before_the_query_naming_the_file_field_and_nearest_names(
    tmp_path, monkeypatch, warehouse_url
):
    """A typo in the modstamp field was only found when Salesforce refused the query."""
    use_connection(monkeypatch, password_connection())
    sources = load_sources(sources_with_salesforce(tmp_path, COLUMNS | {"updated_at": "SystemModstmp"}))
    add_soap_login()
    add_describe()

    with pytest.raises(DataContractError) as raised:
        extract_accounts(sources)

    assert str(raised.value) == (
        "accounts (salesforce:Account): include/rules/sources.yaml: field 'salesforce.objects.accounts.columns."
        "updated_at' (entities.accounts.incremental_column): 'SystemModstmp' is not a field of Account (the "
        "nearest: SystemModstamp). Fix: write the field's API name (Salesforce: Setup > Object Manager > Account > "
        "Fields & Relationships > Field Name) in salesforce.objects.accounts.columns, or give the connection's "
        "user access to the field; map updated_at to the datetime field the interval is read on, such as "
        "SystemModstamp."
    )
    assert isinstance(raised.value, NotRetryableError)  # a person fixes the YAML: no retry
    assert [c.request.url for c in responses.calls] == [SOAP_LOGIN, DESCRIBE]  # no query sent
    with warehouse.engine(warehouse_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from staging.accounts")).scalar_one() == 0


@pytest.mark.parametrize(
    ("columns", "problem", "fix"),
    [
        (
            {"updated_at": "Go_Live_Date__c"},
            "field 'salesforce.objects.accounts.columns.updated_at' (entities.accounts.incremental_column): "
            "'Go_Live_Date__c' is a date field, not a datetime",
            "map updated_at to the datetime field the interval is read on, such as SystemModstamp",
        ),
        (
            {"updated_at": "CreatedById"},
            "field 'salesforce.objects.accounts.columns.updated_at' (entities.accounts.incremental_column): "
            "'CreatedById' is a reference field, not a datetime (the nearest: CreatedDate)",
            "map updated_at to the datetime field the interval is read on, such as SystemModstamp",
        ),
        (
            {"updated_at": "systemmodstamp"},
            "field 'salesforce.objects.accounts.columns.updated_at' (entities.accounts.incremental_column): "
            "'systemmodstamp' is spelt 'SystemModstamp' in Salesforce, which names it so in every record: the "
            "column would be read empty",
            "write each name in salesforce.objects.accounts.columns as Salesforce spells it",
        ),
        (
            {"wallet_potential_arr": "Wallet_Potentail_ARR__c", "country": "Country"},
            "field 'salesforce.objects.accounts.columns.country': 'Country' is not a field of Account (the nearest: "
            "BillingCountry); field "
            "'salesforce.objects.accounts.columns.wallet_potential_arr': 'Wallet_Potentail_ARR__c' is not a field "
            "of Account (the nearest: Wallet_Potential_ARR__c)",
            "write the field's API name (Salesforce: Setup > Object Manager > Account > Fields & Relationships > "
            "Field Name) in salesforce.objects.accounts.columns, or give the connection's user access to the field",
        ),
    ],
    ids=["a-date", "not-a-date", "another-case", "two-unknown-fields"],
)
@responses.activate
def test_a_mapping_the_object_does_not_fit_names_each_field(tmp_path, monkeypatch, columns, problem, fix):
    use_connection(monkeypatch, password_connection())
    sources = load_sources(sources_with_salesforce(tmp_path, COLUMNS | columns))
    add_soap_login()
    add_describe()

    with pytest.raises(DataContractError) as raised:
        SalesforceSource(sources.salesforce).read(
            "accounts", "updated_at", Interval(datetime(2024, 3, 1), datetime(2024, 3, 2))
        )

    assert str(raised.value) == (f"accounts (salesforce:Account): include/rules/sources.yaml: {problem}. Fix: {fix}.")
    assert [c.request.url for c in responses.calls] == [SOAP_LOGIN, DESCRIBE]


@responses.activate
def test_an_object_salesforce_cannot_describe_names_the_object_to_fix(tmp_path, monkeypatch, warehouse_url):
    use_connection(monkeypatch, password_connection())
    sources = load_sources(sources_with_salesforce(tmp_path, object_name="Acount"))
    add_soap_login()
    not_found = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    responses.get(describe_url("Acount"), status=404, json=not_found)

    with pytest.raises(DataContractError) as raised:
        extract_accounts(sources)

    assert str(raised.value) == (
        "accounts: salesforce rejected the describe of Acount: NOT_FOUND: The requested resource does not exist. "
        "Fix: check salesforce.objects.accounts.object in include/rules/sources.yaml: the object's API name "
        "(Account, Contract, a custom object's Name__c), which the connection's user may read."
    )
    assert len(responses.calls) == 2  # the login, the describe


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {k: v for k, v in COLUMNS.items() if k != "updated_at"},
            "salesforce.objects.accounts.columns must map updated_at (entities.accounts.incremental_column) to the "
            "datetime field the interval is read on, e.g. SystemModstamp (unmapped, every run would read every record)",
        ),
        (None, "entities.accounts.source is 'salesforce' but salesforce.objects has no accounts mapping"),
    ],
    ids=["incremental-column-unmapped", "no-mapping"],
)
def test_a_salesforce_section_that_cannot_read_the_interval_fails_at_load(tmp_path, columns, message):
    """Without Salesforce: the entity has a mapping, and it maps the incremental column (unmapped, the
    source left the interval out of the query and read every record, every run)."""
    path = sources_with_salesforce(tmp_path, columns or COLUMNS)
    if columns is None:
        path.write_text(
            path.read_text().replace("    accounts:\n      object: Account", "    contracts:\n      object: Contract")
        )
    with pytest.raises(ConfigError) as raised:
        load_sources(path)
    assert str(raised.value) == f"{path}: field '<root>': Value error, {message}"
