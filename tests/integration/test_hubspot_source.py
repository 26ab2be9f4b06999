"""HubSpot as the CRM source: companies and deals through HubSpot's official client, against a
real local HTTP server (``postsales_dev.hubspot_fake``) holding the tiny source's accounts and
contracts, through the same Great Expectations gate, quarantine, segmentation and cohorts as
every other source.

The fake portal is built from ``tests/tiny.py``'s rows, so the marts of a HubSpot-sourced run
must equal those of the files-sourced run row for row; the counts read, loaded and quarantined
are tiny.py's, derived there by hand.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

import tiny
from postsales import cohorts, forecast, tables, warehouse
from postsales.config import ConfigError, load_sources
from postsales.errors import DataContractError, NotRetryableError, SourceUnavailableError
from postsales.extract import extract_entity
from postsales.hubspot_api import epoch_ms
from postsales.retry import RetryPolicy
from postsales.segment import engine
from postsales.sources import Interval
from postsales_dev.hubspot_fake import FakePortal, HubSpotServer

TOKEN = "pat-na1-0b1c2d3e-4f5a-6b7c-8d9e-tiny-portal"
PORTAL = 4242
KEY = "postsales_account_id"
DAY1 = Interval(tiny.DAY1, tiny.DAY2)
DAY2 = Interval(tiny.DAY2, tiny.DAY3)
ENTITIES = ("accounts", "contracts", "survey_responses", "usage_daily")
AS_OF = date(2024, 3, 2)
SNAPSHOT = date(2024, 3, 1)

# Our columns -> HubSpot properties: HubSpot's own where it has one, custom ones (created by an
# admin, internal names) for the rest. The contracts' ARR is a custom single-line text property
# here, which is how a careless admin gets "n/a" into it (HubSpot's own hs_arr is a number).
HUBSPOT_YAML = """
hubspot:
  conn_id: hubspot_default
  objects:
    accounts:
      object: companies
      properties:
        account_id: postsales_account_id
        name: name
        industry: industry
        employee_count: numberofemployees
        annual_revenue: annualrevenue
        country: country
        created_at: createdate
        updated_at: hs_lastmodifieddate
        wallet_potential_arr: wallet_potential_arr
        go_live_date: go_live_date
        lifecycle_stage: postsales_lifecycle_stage
        referenceable: referenceable
        segment_override: segment_override
    contracts:
      object: deals
      filters: {hs_is_closed_won: "true"}
      account_from_company: postsales_account_id
      properties:
        contract_id: hs_object_id
        start_date: contract_start_date
        end_date: contract_end_date
        arr: contract_arr
        plan: plan
        updated_at: hs_lastmodifieddate
"""
COMPANY_PROPERTIES = {
    "account_id": KEY,
    "name": "name",
    "industry": "industry",
    "employee_count": "numberofemployees",
    "annual_revenue": "annualrevenue",
    "country": "country",
    "created_at": "createdate",
    "updated_at": "hs_lastmodifieddate",
    "wallet_potential_arr": "wallet_potential_arr",
    "go_live_date": "go_live_date",
    "lifecycle_stage": "postsales_lifecycle_stage",
    "referenceable": "referenceable",
    "segment_override": "segment_override",
}


def sources_yaml(shipped: str, entities=("accounts", "contracts")) -> str:
    """The shipped sources.yaml with the hubspot section, ``entities`` read from HubSpot."""
    text = shipped + HUBSPOT_YAML
    for entity in entities:
        text = text.replace(f"  {entity}:\n    source: files\n", f"  {entity}:\n    source: hubspot\n")
    return text


def hubspot_value(column: str, value: str) -> str | None:
    """A file-source cell as HubSpot would hold it: empty is unset, datetimes in UTC with a Z."""
    if value == "":
        return None
    if column not in ("created_at", "updated_at"):
        return value
    moment = datetime.fromisoformat(value)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.replace(tzinfo=None).isoformat() + "Z"


def portal_from(accounts, contracts) -> tuple[FakePortal, dict[str, str]]:
    """File-source rows in HubSpot: each account a company, each contract a closed-won deal
    associated with its account's company (primary), as a HubSpot admin would have them.
    Returns the portal and the company of each account id."""
    portal = FakePortal(PORTAL, TOKEN)
    company_of: dict[str, str] = {}
    for n, row in enumerate(accounts):
        properties = {COMPANY_PROPERTIES[c]: hubspot_value(c, v) for c, v in row.items() if c in COMPANY_PROPERTIES}
        company = portal.add("companies", 9000 + n, properties)  # a blank account id: no property at all
        company_of.setdefault(row["account_id"], company)
    for n, row in enumerate(contracts):
        deal = portal.add(
            "deals",
            7000 + n,
            {
                "dealname": f"{row['contract_id']} renewal",
                "hs_is_closed_won": "true",
                "contract_start_date": row["start_date"],
                "contract_end_date": row["end_date"] or None,
                "contract_arr": row["arr"],
                "plan": row["plan"] or None,
                "hs_lastmodifieddate": hubspot_value("updated_at", row["updated_at"]),
            },
        )
        if row["account_id"] in company_of:  # an account that is no company: its deal has none
            portal.associate("deals", deal, "companies", company_of[row["account_id"]])
    return portal, company_of


def tiny_portal() -> FakePortal:
    """tiny.py's accounts and contracts (C3's account A9 is no company), plus two deals to tell apart."""
    portal, company_of = portal_from(tiny.ACCOUNTS, tiny.CONTRACTS)
    # A deal that also names a second company, not primary: the primary one is the account.
    portal.associate("deals", "7000", "companies", company_of["F002"], primary=False)
    # A lost deal is no contract: the filter leaves it out.
    lost = portal.add(
        "deals",
        7900,
        {
            "dealname": "A1 upsell",
            "hs_is_closed_won": "false",
            "contract_start_date": "2024-02-01",
            "contract_arr": "99000",
            "plan": "Enterprise",
            "hs_lastmodifieddate": "2024-03-01T15:00:00Z",
        },
    )
    portal.associate("deals", lost, "companies", company_of["A1"])
    return portal


@pytest.fixture
def hubspot_server(monkeypatch):
    """A local server for a fake portal; the Airflow connection to it as a user sets it."""
    with HubSpotServer() as server:
        conn = {"conn_type": "http", "host": server.url, "password": TOKEN}
        monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
        yield server


@pytest.fixture
def hubspot(hubspot_server):
    """The tiny portal behind its server."""
    return hubspot_server, tiny_portal().install(hubspot_server)


@pytest.fixture
def hubspot_sources(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text(sources_yaml(_shipped_sources()))
    return load_sources(path)


def _shipped_sources() -> str:
    from postsales import paths

    return (paths.rules_dir() / "sources.yaml").read_text()


def run_chain(url: str, sources=None) -> dict:
    """Two daily extracts of every entity, then segments, forecast and cohorts; the extract summaries."""
    summaries = {}
    for name, interval in (("day1", DAY1), ("day2", DAY2)):
        for entity in ENTITIES:
            summaries[(name, entity)] = extract_entity(
                entity, interval=interval, run_id=name, sources=sources, warehouse_url=url, build_data_docs=False
            )
    engine.compute_segments(AS_OF, warehouse_url=url)
    forecast.compute_forecast(AS_OF, warehouse_url=url)
    cohorts.compute_snapshot(SNAPSHOT, warehouse_url=url)
    return summaries


def marts(url: str) -> dict[str, list[tuple]]:
    """Every mart table's rows (computed_at aside), sorted."""
    found = {}
    with warehouse.engine(url).connect() as conn:
        for name in sorted(n for n in tables.homes() if n.startswith("mart.")):
            table = tables.table(name)
            columns = [c for c in table.c if c.name != "computed_at"]
            rows = conn.execute(sa.select(*columns)).all()
            found[name] = sorted((tuple(row) for row in rows), key=repr)
    return found


def staged(url: str, entity: str, drop: set[str]) -> list[tuple]:
    with warehouse.engine(url).connect() as conn:
        table = warehouse.tables().staging[entity]
        columns = [c for c in table.c if c.name not in drop and not c.name.startswith("_")]
        return sorted((tuple(r) for r in conn.execute(sa.select(*columns)).all()), key=repr)


def quarantined(url: str, entity: str) -> dict[str | None, list[str]]:
    with warehouse.engine(url).connect() as conn:
        quarantine = warehouse.tables().quarantine
        rows = conn.execute(
            sa.select(quarantine.c.record_key, quarantine.c.failed_expectations).where(
                quarantine.c.source_table == entity
            )
        ).all()
    found: dict[str | None, list[str]] = {}
    for key, failed in rows:
        found.setdefault(key, []).extend(json.loads(failed))
    return found


def reset(url: str) -> None:
    warehouse.dispose_all()
    with warehouse.engine(url).begin() as conn:
        for schema in warehouse.SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
    warehouse.dispose_all()


def test_a_hubspot_sourced_run_gives_the_marts_of_the_files_sourced_run(
    warehouse_url, tiny_source, hubspot, hubspot_sources
):
    server, _ = hubspot
    from_files = run_chain(warehouse_url)
    files_marts = marts(warehouse_url)
    files_accounts = staged(warehouse_url, "accounts", set())
    files_contracts = staged(warehouse_url, "contracts", {"contract_id"})
    files_quarantine = {e: len(quarantined(warehouse_url, e)) for e in ENTITIES}
    reset(warehouse_url)

    from_hubspot = run_chain(warehouse_url, hubspot_sources)

    # The counts tiny.py derives by hand, from either source.
    for summaries in (from_files, from_hubspot):
        counts = {key: (s.rows_read, s.rows_loaded, s.rows_quarantined) for key, s in summaries.items()}
        assert counts[("day1", "accounts")] == tuple(tiny.ACCOUNTS_DAY1.values())
        assert counts[("day2", "accounts")] == tuple(tiny.ACCOUNTS_DAY2.values())
        assert counts[("day1", "contracts")] == tuple(tiny.CONTRACTS_DAY1.values())
        assert counts[("day2", "contracts")] == tuple(tiny.CONTRACTS_DAY2.values())
    assert from_hubspot[("day1", "contracts")].source == "hubspot:hubspot:deals"  # the kind, then the origin
    assert from_hubspot[("day1", "accounts")].source == "hubspot:hubspot:companies"
    # Row for row: every mart, the staged accounts, the staged contracts but their ids (deal ids in HubSpot).
    hubspot_marts = marts(warehouse_url)
    assert hubspot_marts == files_marts
    assert all(hubspot_marts[name] for name in ("mart.account_segments", "mart.mrr_monthly", "mart.cohort_retention"))
    # The fillers, A1 and A2 are paying (A3's one contract was quarantined), as of the date and as of the
    # month's end the cohorts segment too.
    as_of_dates = [row[0] for row in hubspot_marts["mart.account_segments"]]
    assert {d: as_of_dates.count(d) for d in as_of_dates} == {AS_OF: 96 + 2, date(2024, 3, 31): 96 + 2}
    assert staged(warehouse_url, "accounts", set()) == files_accounts
    assert staged(warehouse_url, "contracts", {"contract_id"}) == files_contracts
    assert {e: len(quarantined(warehouse_url, e)) for e in ENTITIES} == files_quarantine

    # The careless admin's records, quarantined with their reasons.
    assert quarantined(warehouse_url, "accounts") == {
        "": ["account_id is required"],  # a company without the key property
        "A5": ["account_id must be unique"] * 2,  # one account id on two companies
        "A4": ["lifecycle_stage must be one of ['Implementation', 'Hypercare', 'Adoption', 'Expansion', 'Renewal']"],
    }
    deal_of = {row["contract_id"]: str(7000 + n) for n, row in enumerate(tiny.CONTRACTS)}
    assert quarantined(warehouse_url, "contracts") == {
        deal_of["C2"]: ["arr must be a valid number"],  # "n/a"
        deal_of["C3"]: ["account_id is required", NO_COMPANY],  # a deal with no company
        deal_of["C4"]: ["end_date must be >= start_date"],
        deal_of["C5"]: ["arr must be in [0, 1e+12]"],
    }
    with warehouse.engine(warehouse_url).connect() as conn:  # the lost deal is nowhere
        raw = conn.execute(sa.text("select record_key from raw.contracts")).scalars().all()
    assert len(raw) == tiny.CONTRACTS_DAY1["read"] + tiny.CONTRACTS_DAY2["read"] and "7900" not in raw

    # The requests: searches bounded by the interval (in ms) on hs_lastmodifieddate, the closed-won filter.
    searches = [c.request.json() for c in server.calls if c.request.path == "/crm/v3/objects/deals/search"]
    assert searches[0]["filterGroups"] == [
        {
            "filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(epoch_ms(tiny.DAY1))},
                {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(epoch_ms(tiny.DAY2))},
                {"propertyName": "hs_is_closed_won", "operator": "EQ", "value": "true"},
            ]
        }
    ]
    assert searches[0]["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert {c.request.headers["Authorization"] for c in server.calls} == {f"Bearer {TOKEN}"}


# --- what fails, and how ------------------------------------------------------------------------


def accounts_from_hubspot(tmp_path, shipped_text: str | None = None, hubspot_yaml: str = HUBSPOT_YAML):
    path = tmp_path / "sources.yaml"
    path.write_text((shipped_text or _shipped_sources()).replace(
        "  accounts:\n    source: files\n", "  accounts:\n    source: hubspot\n"
    ) + hubspot_yaml)  # fmt: skip
    return path


def test_an_unknown_custom_property_fails_naming_the_field_and_the_fix(duckdb_url, hubspot, tmp_path):
    server, _ = hubspot
    typo = HUBSPOT_YAML.replace(
        "wallet_potential_arr: wallet_potential_arr", "wallet_potential_arr: wallet_potentail_arr"
    )
    path = accounts_from_hubspot(tmp_path, hubspot_yaml=typo)
    with pytest.raises(DataContractError) as raised:
        extract_entity("accounts", interval=DAY1, run_id="r", sources=load_sources(path), build_data_docs=False)
    assert str(raised.value) == (
        "accounts (hubspot:companies): include/rules/sources.yaml: field "
        "'hubspot.objects.accounts.properties.wallet_potential_arr': 'wallet_potentail_arr' is not a property of "
        "companies (did you mean 'wallet_potential_arr'?). HubSpot would return such a property empty on every "
        "record. Fix: write the property's internal name (HubSpot: Settings > Properties > the property > internal "
        "name) in hubspot.objects.accounts, or create the property in HubSpot."
    )
    assert isinstance(raised.value, NotRetryableError)  # a person fixes the YAML: no retry
    assert not [c for c in server.calls if c.request.path.endswith("/search")]  # checked before reading
    with warehouse.engine(duckdb_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from staging.accounts")).scalar_one() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("    contracts:\n      object: deals\n", "    opportunities:\n      object: deals\n"),
            "field 'hubspot.objects.opportunities.[key]': Input should be 'accounts', 'contracts', 'survey_responses'",
        ),
        (
            ("        updated_at: hs_lastmodifieddate\n        wallet", "        wallet"),
            "hubspot.objects.accounts.properties must map updated_at (entities.accounts.incremental_column)",
        ),
        (
            ("        name: name\n", "        name: Company Name\n"),
            "field 'hubspot.objects.accounts.properties.name': String should match pattern",
        ),
        (
            (
                "        contract_id: hs_object_id\n",
                "        contract_id: hs_object_id\n        account_id: company_key\n",
            ),
            "account_id is both mapped in properties and taken from account_from_company: keep one",
        ),
    ],
    ids=["unknown-entity", "incremental-column-unmapped", "not-an-internal-name", "two-account-ids"],
)
def test_a_broken_hubspot_section_names_the_file_and_the_field(tmp_path, change, message):
    path = accounts_from_hubspot(tmp_path, hubspot_yaml=HUBSPOT_YAML.replace(*change))
    with pytest.raises(ConfigError) as raised:
        load_sources(path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)


def test_a_hubspot_entity_without_a_mapping_is_a_config_error(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text(sources_yaml(_shipped_sources(), entities=("survey_responses",)))
    with pytest.raises(ConfigError) as raised:
        load_sources(path)
    assert "entities.survey_responses.source is 'hubspot' but hubspot.objects has no survey_responses" in str(
        raised.value
    )


def test_a_refused_token_fails_at_once_and_hubspot_down_is_retried(duckdb_url, hubspot, tmp_path, monkeypatch):
    server, portal = hubspot
    sources = load_sources(accounts_from_hubspot(tmp_path))
    portal.token = "pat-na1-the-new-one"  # the token was rotated in HubSpot, not in Airflow
    with pytest.raises(NotRetryableError) as raised:
        extract_entity("accounts", interval=DAY1, run_id="r", sources=sources, build_data_docs=False)
    assert str(raised.value).startswith("UNAUTHORIZED: hubspot source: HubSpot refused the access token")
    assert "store it as the password of the Airflow connection 'hubspot_default'" in str(raised.value)
    assert TOKEN not in str(raised.value)

    portal.token = TOKEN
    server.add("GET", "/crm/v3/properties/companies", status=503, json={"status": "error", "message": "down"})
    monkeypatch.setattr("postsales.hubspot_api.RetryPolicy", lambda: RetryPolicy(sleep=lambda seconds: None))
    with pytest.raises(SourceUnavailableError, match="accounts: hubspot did not answer: HTTP_503: down"):
        extract_entity("accounts", interval=DAY1, run_id="r", sources=sources, build_data_docs=False)


def test_the_daily_limit_fails_the_extract_at_once_saying_to_clear_it(duckdb_url, hubspot, tmp_path):
    """It was a SourceUnavailableError, which Airflow retried minutes later, in vain until the limit resets."""
    server, _ = hubspot
    daily = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
        "policyName": "DAILY",
        "groupName": "apps:hapikey:12345",
    }
    server.add("POST", "/crm/v3/objects/companies/search", status=429, json=daily)
    sources = load_sources(accounts_from_hubspot(tmp_path))

    with pytest.raises(NotRetryableError) as raised:
        extract_entity("accounts", interval=DAY1, run_id="r", sources=sources, build_data_docs=False)

    assert str(raised.value) == (
        "DAILY_LIMIT: accounts: hubspot source: HubSpot's daily API limit is spent (You have reached your daily "
        "limit.); nothing succeeds before it resets at midnight in the HubSpot account's time zone, so the task "
        "fails without retries. The next scheduled run reads only its own interval: clear this task once the "
        "limit has reset to read this one."
    )
    searches = [c for c in server.calls if c.request.path == "/crm/v3/objects/companies/search"]
    assert len(searches) == 1  # not retried by the client either
    with warehouse.engine(duckdb_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from staging.accounts")).scalar_one() == 0


# --- reading --------------------------------------------------------------------------------------

SURVEYS_YAML = """
    survey_responses:
      object: p_nps_responses
      properties: {account_id: postsales_account_id, responded_at: submitted_at, survey_type: survey_type, score: score}
"""


def test_survey_responses_from_a_custom_object_and_the_records_lacking_the_interval_property(
    duckdb_url, tiny_source, hubspot, tmp_path
):
    """NPS/CSAT from a HubSpot custom object that carries the account id; a response without its
    submission time is in no interval, so every run reads it to quarantine it (as the sql source does)."""
    server, portal = hubspot
    portal.define("p_nps_responses", "submitted_at", kind="datetime")
    for n, row in enumerate(tiny.SURVEYS):
        portal.add(
            "p_nps_responses",
            3000 + n,
            {
                KEY: row["account_id"],
                "submitted_at": f"{row['responded_at']}Z",
                "survey_type": row["survey_type"],
                "score": row["score"],
            },
        )
    portal.add("p_nps_responses", 3999, {KEY: "F001", "survey_type": "nps", "score": "7"})  # no submitted_at
    path = tmp_path / "sources.yaml"
    text = _shipped_sources().replace(
        "  survey_responses:\n    source: files\n", "  survey_responses:\n    source: hubspot\n"
    )
    path.write_text(text + HUBSPOT_YAML + SURVEYS_YAML)
    sources = load_sources(path)
    for interval in (DAY1, DAY2):  # the accounts they refer to, from the files
        extract_entity("accounts", interval=interval, run_id="a", build_data_docs=False)

    day1 = extract_entity("survey_responses", interval=DAY1, run_id="d1", sources=sources, build_data_docs=False)
    day2 = extract_entity("survey_responses", interval=DAY2, run_id="d2", sources=sources, build_data_docs=False)

    read, loaded, quarantined_rows = tiny.SURVEYS_DAY1.values()
    assert (day1.rows_read, day1.rows_loaded, day1.rows_quarantined) == (read + 1, loaded, quarantined_rows + 1)
    assert (day2.rows_read, day2.rows_loaded, day2.rows_quarantined) == (1, 0, 1)
    assert quarantined(duckdb_url, "survey_responses")["F001||nps"] == ["responded_at is required"] * 2
    searches = [c.request.json() for c in server.calls if c.request.path == "/crm/v3/objects/p_nps_responses/search"]
    assert [s["filterGroups"][0]["filters"][-1]["operator"] for s in searches] == [
        "LT",
        "NOT_HAS_PROPERTY",
        "LT",
        "NOT_HAS_PROPERTY",
    ]


def test_a_company_edited_while_its_pages_are_read_shifts_no_other_company_out(hubspot_server, tmp_path):
    """Offset paging over a live index skips a record when one read before it leaves the results
    (edited: now modified after the interval); restarting each page from the last time seen does not."""
    from postsales.hubspot_api import HubSpotClient
    from postsales.sources.hubspot import HubSpotSource

    server = hubspot_server
    portal = FakePortal(PORTAL, TOKEN)
    for n in range(250):  # one a second from 10:00 on day 1
        modified = f"2024-03-01T10:{n // 60:02d}:{n % 60:02d}Z"
        portal.add("companies", 20000 + n, {KEY: f"B{n:03d}", "hs_lastmodifieddate": modified})
    portal.define("companies", *COMPANY_PROPERTIES.values())  # defined, empty on these companies
    searches = []
    search = portal.search

    def search_while_editing(request, objectType):
        answer = search(request, objectType)
        searches.append(request.json())
        if len(searches) == 1:  # a person edits the first company after the first page went out
            portal.records["companies"]["20000"]["hs_lastmodifieddate"] = "2024-03-05T09:00:00Z"
        return answer

    portal.search = search_while_editing
    portal.install(server)
    sources = load_sources(accounts_from_hubspot(tmp_path))
    client = HubSpotClient(TOKEN, host=server.url, search_interval=0)

    read = HubSpotSource(sources.hubspot, client).read("accounts", "updated_at", DAY1)

    assert sorted(read.frame["account_id"]) == [f"B{n:03d}" for n in range(250)]  # B000 as first read
    assert read.origin == "hubspot:companies" and set(read.frame["_source"]) == {"hubspot:companies"}
    assert [s.get("after") for s in searches] == [None, None, None]  # each page a new search from the last time
    assert searches[1]["filterGroups"][0]["filters"][0]["value"] == str(epoch_ms(datetime(2024, 3, 1, 10, 1, 39)))

    # The same edit with plain offset paging loses a company that was never edited.
    portal.records["companies"]["20000"]["hs_lastmodifieddate"] = "2024-03-01T10:00:00Z"
    searches.clear()
    names = ["hs_object_id", KEY]
    offset_paged = [r["properties"][KEY] for r in client.search_since("companies", tiny.DAY1, names, until=tiny.DAY2)]
    assert len(offset_paged) == 249 and "B100" not in offset_paged


def test_an_empty_search_page_with_a_next_cursor_does_not_end_the_read(hubspot_server, tmp_path):
    """Records deleted since HubSpot indexed them leave a search page empty while later pages hold
    records: the read follows the cursor instead of ending there, losing the interval's other records."""
    from postsales.hubspot_api import HubSpotClient
    from postsales.sources.hubspot import HubSpotSource

    server = hubspot_server
    portal = FakePortal(PORTAL, TOKEN)
    portal.define("companies", *COMPANY_PROPERTIES.values())
    portal.install(server)
    records = [
        {
            "id": str(20000 + n),
            "properties": {
                KEY: f"B{n}",
                "hs_object_id": str(20000 + n),
                "hs_lastmodifieddate": f"2024-03-01T10:0{n}:00Z",
            },
        }
        for n in range(3)
    ]
    search = "/crm/v3/objects/companies/search"
    server.add("POST", search, json={"total": 103, "results": [], "paging": {"next": {"after": "100"}}})
    server.add("POST", search, json={"total": 103, "results": records})
    client = HubSpotClient(TOKEN, host=server.url, search_interval=0)
    sources = load_sources(accounts_from_hubspot(tmp_path))

    read = HubSpotSource(sources.hubspot, client).read("accounts", "updated_at", DAY1)

    assert sorted(read.frame["account_id"]) == ["B0", "B1", "B2"]
    assert [c.request.json().get("after") for c in server.calls if c.request.path == search] == [None, "100"]


NO_COMPANY = "account_id: the deal has no associated company in HubSpot; associate it with its account's company"
NO_PRIMARY = (
    "account_id: the deal has several associated companies in HubSpot and none is primary; "
    "make its account's company the primary one"
)
SEVERAL_PRIMARY = (
    "account_id: the deal has several primary companies in HubSpot; keep one primary: its account's company"
)


def test_a_deal_without_exactly_one_primary_company_is_quarantined_saying_so(
    duckdb_url, hubspot_server, hubspot_sources
):
    """Such a deal was quarantined as "account_id is required" only, which says nothing of the fix."""
    portal, company_of = portal_from(tiny.ACCOUNTS, tiny.CONTRACTS)  # C3's account A9 is no company
    deal = {"hs_is_closed_won": "true", "contract_start_date": "2024-01-15", "contract_arr": "12000"}
    deal |= {"hs_lastmodifieddate": "2024-03-01T11:00:00Z"}
    none_primary, two_primary = portal.add("deals", 7901, deal), portal.add("deals", 7902, deal)
    for company in (company_of["A1"], company_of["A2"]):
        portal.associate("deals", none_primary, "companies", company, primary=False)
        portal.associate("deals", two_primary, "companies", company, primary=True)
    portal.install(hubspot_server)

    extract_entity("accounts", interval=DAY1, run_id="r", sources=hubspot_sources, build_data_docs=False)
    contracts = extract_entity("contracts", interval=DAY1, run_id="r", sources=hubspot_sources, build_data_docs=False)

    c3 = str(7000 + [row["contract_id"] for row in tiny.CONTRACTS].index("C3"))
    found = quarantined(duckdb_url, "contracts")
    assert {key: found[key] for key in (c3, "7901", "7902")} == {
        c3: ["account_id is required", NO_COMPANY],
        "7901": ["account_id is required", NO_PRIMARY],
        "7902": ["account_id is required", SEVERAL_PRIMARY],
    }
    read, loaded, bad = tiny.CONTRACTS_DAY1.values()
    assert (contracts.rows_read, contracts.rows_loaded, contracts.rows_quarantined) == (read + 2, loaded, bad + 2)
    with warehouse.engine(duckdb_url).connect() as conn:
        offending = conn.execute(
            sa.text("select offending_values from ops.quarantine where record_key = '7902'")
        ).scalar_one()
    assert json.loads(offending) == {"account_id": None}


def test_careless_admin_values_are_quarantined_with_their_reasons(duckdb_url, hubspot_server, tmp_path):
    server = hubspot_server
    portal = FakePortal(PORTAL, TOKEN)
    good = {"name": "Good", "createdate": "2023-06-01T09:00:00Z", "hs_lastmodifieddate": "2024-03-01T10:00:00Z"}
    portal.add("companies", 1, good | {KEY: "G1", "numberofemployees": "120"})
    portal.add("companies", 2, good | {KEY: "G2", "name": None})  # the name property emptied
    portal.add("companies", 3, good | {KEY: "G3", "numberofemployees": "about 40"})  # a text property
    portal.add("companies", 4, good | {KEY: "G4", "annualrevenue": "5,000,000"})
    portal.define("companies", *COMPANY_PROPERTIES.values())
    portal.install(server)
    sources = load_sources(accounts_from_hubspot(tmp_path))

    summary = extract_entity("accounts", interval=DAY1, run_id="r", sources=sources, build_data_docs=False)

    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (4, 1, 3)
    assert quarantined(duckdb_url, "accounts") == {
        "G2": ["name is required"],
        "G3": ["employee_count must be a valid integer"],
        "G4": ["annual_revenue must be a valid number"],
    }


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    from postsales_dev import demo

    out = tmp_path_factory.mktemp("demo")
    demo.generate(out, accounts=60, seed=7)
    return out


def read_csv(path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_demo_from_hubspot_gives_the_marts_of_the_demo_from_files(
    duckdb_url, demo_dir, hubspot_server, tmp_path, monkeypatch
):
    """Three years of the demo (renewals, expansions, churn, its bad rows), full refresh: the same marts."""
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(demo_dir))
    portal, _ = portal_from(read_csv(demo_dir / "accounts.csv"), read_csv(demo_dir / "contracts.csv"))
    portal.install(hubspot_server)
    path = tmp_path / "sources.yaml"
    path.write_text(sources_yaml(_shipped_sources()))
    everything = Interval(datetime(2020, 1, 1), datetime(2026, 11, 1), full_refresh=True)
    as_of = date(2026, 10, 31)

    def chain(sources) -> dict:
        read = {}
        for entity in ENTITIES:
            summary = extract_entity(
                entity, interval=everything, run_id="full", sources=sources, warehouse_url=duckdb_url,
                build_data_docs=False,
            )  # fmt: skip
            read[entity] = (summary.rows_read, summary.rows_loaded, summary.rows_quarantined)
        engine.compute_segments(as_of, warehouse_url=duckdb_url)
        cohorts.compute_snapshot(date(2026, 10, 1), warehouse_url=duckdb_url)
        return read

    files_counts = chain(None)
    files_marts = marts(duckdb_url)
    reset(duckdb_url)
    hubspot_counts = chain(load_sources(path))

    assert hubspot_counts == files_counts
    # The demo's bad rows (its _bad_rows.json): 60 accounts + a duplicate + one without id, 4 rows bad
    # (a stage off the list, the duplicate's two rows, the missing id); 4 of 125 contracts bad.
    assert hubspot_counts["accounts"] == (62, 58, 4) and hubspot_counts["contracts"] == (125, 121, 4)
    hubspot_marts = marts(duckdb_url)
    assert hubspot_marts == files_marts
    assert len(hubspot_marts["mart.mrr_movements"]) > 30 and len(hubspot_marts["mart.cohort_retention"]) > 30
