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

from postsales import warehouse
from postsales.config import SalesforceObjectMapping, SalesforceSource, load_sources
from postsales.extract import extract_entity
from postsales.sources import Interval
from salesforce_fakes import (
    INSTANCE,
    PASSWORD,
    QUERY,
    SECURITY_TOKEN,
    SESSION,
    SOAP_LOGIN,
    add_soap_login,
    connection_json,
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
def salesforce_accounts(monkeypatch):
    """sources.yaml with accounts from Salesforce; the Airflow connection holds the credentials."""
    use_connection(monkeypatch, password_connection())
    config = load_sources()
    entities = dict(config.entities)
    entities["accounts"] = entities["accounts"].model_copy(update={"source": "salesforce"})
    salesforce = SalesforceSource(objects={"accounts": SalesforceObjectMapping(object="Account", columns=COLUMNS)})
    return config.model_copy(update={"entities": entities, "salesforce": salesforce})


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
    responses.get(QUERY, json=first_page)
    responses.get(f"{INSTANCE}/services/data/v62.0/query/01gxx-2000", json=second_page)

    summary = extract_accounts(salesforce_accounts)
    login, first, second = responses.calls
    assert (login.request.method, login.request.url) == ("POST", SOAP_LOGIN)
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
def test_an_unknown_field_names_the_mapping_to_fix(salesforce_accounts, warehouse_url):
    from postsales.errors import DataContractError

    add_soap_login()
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
    assert "WHERE" not in parse_qs(urlsplit(responses.calls[1].request.url).query)["q"][0]  # full refresh


@responses.activate
def test_a_connection_without_credentials_is_not_retried(salesforce_accounts, warehouse_url, monkeypatch):
    """Retrying cannot supply a security token: the extract fails at once (NotRetryableError), naming the
    connection, the missing field and the fix, before any request."""
    from postsales.errors import NotRetryableError

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
    from postsales.errors import DataContractError, NotRetryableError

    add_soap_login()
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
    assert [c.request.method for c in responses.calls] == ["POST", "GET"]  # the login, the query once
