"""Salesforce as the CRM source for extraction: SOQL on SystemModstamp, through the real gate and load."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import sqlalchemy as sa

from postsales import warehouse
from postsales.config import SalesforceObjectMapping, SalesforceSource, load_sources
from postsales.extract import extract_entity
from postsales.sources import Interval

INSTANCE = "https://acme.my.salesforce.com"
QUERY_URL = f"{INSTANCE}/services/data/v62.0/query"
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
    """sources.yaml with accounts from Salesforce; the Airflow connection holds the token."""
    import airflow.sdk

    connection = SimpleNamespace(host=INSTANCE, password="00Dxx!secret-token", extra_dejson={})
    monkeypatch.setattr(airflow.sdk.BaseHook, "get_connection", classmethod(lambda cls, conn_id: connection))
    config = load_sources()
    entities = dict(config.entities)
    entities["accounts"] = entities["accounts"].model_copy(update={"source": "salesforce"})
    salesforce = SalesforceSource(objects={"accounts": SalesforceObjectMapping(object="Account", columns=COLUMNS)})
    return config.model_copy(update={"entities": entities, "salesforce": salesforce})


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
    responses.get(QUERY_URL, json=first_page)
    responses.get(f"{INSTANCE}/services/data/v62.0/query/01gxx-2000", json=second_page)

    summary = extract_entity(
        "accounts",
        interval=Interval(datetime(2024, 3, 1), datetime(2024, 3, 2)),
        run_id="sf",
        sources=salesforce_accounts,
        build_data_docs=False,
    )
    soql = parse_qs(urlsplit(responses.calls[0].request.url).query)["q"][0]
    assert soql.startswith("SELECT Id, Name, Industry, NumberOfEmployees")
    assert soql.endswith(
        "FROM Account WHERE SystemModstamp >= 2024-03-01T00:00:00Z AND SystemModstamp < 2024-03-02T00:00:00Z"
    )
    assert responses.calls[0].request.headers["Authorization"] == "Bearer 00Dxx!secret-token"
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

    responses.get(
        QUERY_URL,
        status=400,
        json=[
            {"message": "No such column 'Wallet_Potential_ARR__c' on entity 'Account'.", "errorCode": "INVALID_FIELD"}
        ],
    )
    with pytest.raises(DataContractError, match=r"salesforce.objects.accounts.columns") as error:
        extract_entity(
            "accounts",
            interval=Interval(datetime(2024, 3, 1), datetime(2024, 3, 2), full_refresh=True),
            run_id="sf",
            sources=salesforce_accounts,
            build_data_docs=False,
        )
    assert "secret-token" not in str(error.value)
    assert "WHERE" not in parse_qs(urlsplit(responses.calls[0].request.url).query)["q"][0]  # full refresh


def test_a_connection_without_credentials_is_not_retried(salesforce_accounts, warehouse_url, monkeypatch):
    """Retrying cannot supply a token: the extract fails at once (NotRetryableError), naming the connection."""
    import airflow.sdk

    from postsales.errors import NotRetryableError

    no_token = SimpleNamespace(host=INSTANCE, password=None, extra_dejson={})
    monkeypatch.setattr(airflow.sdk.BaseHook, "get_connection", classmethod(lambda cls, conn_id: no_token))
    with pytest.raises(NotRetryableError) as error:
        extract_entity(
            "accounts",
            interval=Interval(datetime(2024, 3, 1), datetime(2024, 3, 2)),
            run_id="sf",
            sources=salesforce_accounts,
            build_data_docs=False,
        )
    assert str(error.value) == (
        "NO_CREDENTIALS: salesforce source: connection 'salesforce_default' needs host (instance URL) and "
        "password (access token), or extra client_id/client_secret/domain"
    )
