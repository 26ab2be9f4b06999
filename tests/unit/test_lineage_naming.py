"""OpenLineage dataset names (postsales.lineage): the naming spec per backend, never a credential;
and off unless configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from postsales import lineage, paths

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "namespace", "name"),
    [
        (f"postgresql+psycopg://postsales:{SECRET}@db-host:5433/warehouse", "postgres://db-host:5433",
         "warehouse.mart.account_segments"),
        (f"postgresql://postsales:{SECRET}@DB-Host/warehouse?sslmode=require&password={SECRET}",
         "postgres://db-host:5432", "warehouse.mart.account_segments"),
        # An Airflow connection's URI (BaseHook.get_connection().get_uri()) says postgres://
        (f"postgres://crm_reader:{SECRET}@crm.internal:6432/crm", "postgres://crm.internal:6432",
         "crm.mart.account_segments"),
        (f"mysql+pymysql://u:{SECRET}@mysql-host/crm", "mysql://mysql-host:3306", "crm.account_segments"),
        ("duckdb:////srv/data/warehouse.duckdb", "duckdb:///srv/data/warehouse.duckdb",
         "warehouse.mart.account_segments"),
        (f"duckdb:////srv/data/lake.db?motherduck_token={SECRET}&memory_limit=1GB",
         "duckdb:///srv/data/lake.db", "lake.mart.account_segments"),
        ("duckdb:///:memory:", "duckdb://:memory:", "memory.mart.account_segments"),
        ("sqlite:////srv/demo/crm.sqlite", "sqlite:///srv/demo/crm.sqlite", "mart.account_segments"),
    ],
)  # fmt: skip
def test_database_dataset_names_follow_the_spec_without_credentials(url, namespace, name):
    dataset = lineage.database_dataset(url, "mart", "account_segments")
    assert (dataset.namespace, dataset.name) == (namespace, name)
    assert SECRET not in repr(dataset) and "@" not in dataset.namespace


def test_a_table_without_schema_takes_the_databases_default():
    assert lineage.database_dataset("postgresql://h/crm", None, "crm_account").name == "crm.public.crm_account"
    assert lineage.database_dataset("sqlite:////x/crm.sqlite", None, "crm_account").name == "main.crm_account"


def test_a_relative_duckdb_file_is_under_the_project_root():
    # As postsales.config.warehouse_url resolves the default duckdb:///data/warehouse.duckdb.
    dataset = lineage.database_dataset("duckdb:///data/warehouse.duckdb", "ops", "run_summary")
    assert dataset.namespace == f"duckdb://{(paths.project_root() / 'data' / 'warehouse.duckdb').resolve()}"
    assert dataset.name == "warehouse.ops.run_summary"


def test_a_warehouse_table_carries_its_columns():
    from postsales.tables import table

    dataset = lineage.warehouse_table("postgresql://h/w", table("ops.crm_sync_runs"))
    fields = {name: (kind, description) for name, kind, description in dataset.fields}
    assert dataset.name == "w.ops.crm_sync_runs"
    assert fields["run_id"] == ("TEXT", None)
    assert fields["fields_succeeded"][0] in ("INTEGER", "BIGINT")
    assert list(fields) == [column.name for column in table("ops.crm_sync_runs").columns]


def test_work_tables_are_not_datasets():
    import sqlalchemy as sa

    from postsales.tables import table

    assert lineage.is_warehouse_table(table("mart.account_segments"))
    assert not lineage.is_warehouse_table(sa.Table("_load_gate_1f6eca81", sa.MetaData(), schema="raw"))
    assert not lineage.is_warehouse_table(sa.Table("_load_text_1f6eca81", sa.MetaData()))  # DuckDB TEMPORARY


def test_files_are_datasets_and_day_files_are_their_folder(tmp_path):
    files = [tmp_path / "accounts.csv", *(tmp_path / "usage_daily" / f"2024-03-0{d}.csv" for d in (1, 2, 3))]
    datasets = lineage.file_datasets([str(path) for path in files])
    assert [(d.namespace, d.name, d.file_count) for d in datasets] == [
        ("file", str(tmp_path.resolve() / "accounts.csv"), None),
        ("file", str(tmp_path.resolve() / "usage_daily"), 3),
    ]


def test_salesforce_and_hubspot_are_named_by_the_org_or_portal_the_token_reaches(monkeypatch):
    """As the push's sync state names them (the Salesforce instance, the HubSpot portal); with no
    session or portal, by the connection, never with its secrets."""
    from types import SimpleNamespace

    def source(conn_id, client=None):
        def connect():
            if client is None:
                raise RuntimeError(f"cannot log in with {SECRET}")
            return client

        return SimpleNamespace(config=SimpleNamespace(conn_id=conn_id), _client=connect)

    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_LOGIN",
        json.dumps({"conn_type": "salesforce", "login": "u@acme.com", "password": SECRET,
                    "extra": {"security_token": SECRET, "domain": "acme--uat.sandbox.my.salesforce.com"}}),
    )  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_HS_PLAIN", json.dumps({"conn_type": "http", "password": SECRET}))
    session = SimpleNamespace(instance_url="https://Acme.my.salesforce.com")
    found = [
        lineage.salesforce_dataset(source("sf_login", session), "Account"),
        lineage.salesforce_dataset(source("sf_login"), "Account"),
        lineage.salesforce_dataset(source("no_such_connection"), "Contract"),
        lineage.hubspot_dataset(source("hs_plain", SimpleNamespace(portal_id="4711")), "companies"),
        lineage.hubspot_dataset(source("hs_plain"), "deals"),
    ]  # fmt: skip
    assert [(d.namespace, d.name) for d in found] == [
        ("salesforce://acme.my.salesforce.com", "Account"),
        ("salesforce://acme--uat.sandbox.my.salesforce.com", "Account"),
        ("salesforce", "Contract"),
        ("hubspot://4711", "companies"),
        ("hubspot://api.hubapi.com", "deals"),
    ]
    assert SECRET not in repr(found)


def test_the_crm_object_is_named_by_the_sync_states_target():
    from types import SimpleNamespace

    config = SimpleNamespace(adapter="hubspot")
    hubspot = SimpleNamespace(describe=lambda: "hubspot:4711/companies")
    salesforce = SimpleNamespace(describe=lambda: "salesforce:acme.my.salesforce.com/Account")
    assert lineage.crm_dataset(config, hubspot) == lineage.DatasetRef("hubspot://4711", "companies")
    config.adapter = "salesforce"
    assert lineage.crm_dataset(config, salesforce) == lineage.DatasetRef(
        "salesforce://acme.my.salesforce.com", "Account"
    )


def test_the_sources_an_extract_reads(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from postsales.config import load_sources
    from postsales.sources.files import FileSource
    from postsales.sources.hubspot import HubSpotSource
    from postsales.sources.salesforce import SalesforceSource
    from postsales.sources.sql import SqlSource

    config = load_sources()
    sql = SqlSource(config.sql, url=f"postgresql://reader:{SECRET}@mirror:5432/crm")
    assert [(d.namespace, d.name) for d in lineage.source_datasets(sql, "contracts", [])] == [
        ("postgres://mirror:5432", "crm.public.crm_contract")
    ]
    objects = {"accounts": {"object": "Account", "columns": {"account_id": "Id"}}}
    salesforce = config.model_validate(config.model_dump(by_alias=True) | {"salesforce": {"objects": objects}})
    session = SimpleNamespace(instance_url="https://acme.my.salesforce.com")  # a logged-in client
    found = lineage.source_datasets(SalesforceSource(salesforce.salesforce, client=session), "accounts", [])
    assert [(d.namespace, d.name) for d in found] == [("salesforce://acme.my.salesforce.com", "Account")]
    deals = {"contracts": {"object": "deals", "properties": {"contract_id": "hs_object_id"}}}
    hubspot = config.model_validate(config.model_dump(by_alias=True) | {"hubspot": {"objects": deals}})
    portal = SimpleNamespace(portal_id="4711")
    found = lineage.source_datasets(HubSpotSource(hubspot.hubspot, client=portal), "contracts", [])
    assert [(d.namespace, d.name) for d in found] == [("hubspot://4711", "deals")]
    files = lineage.source_datasets(FileSource(tmp_path), "accounts", [str(tmp_path / "accounts.csv")])
    assert [(d.namespace, d.name) for d in files] == [("file", str(tmp_path.resolve() / "accounts.csv"))]


def test_nothing_is_recorded_with_openlineage_off(duckdb_url):
    """The test session has no transport configured: the write primitives record nothing."""
    import sqlalchemy as sa

    from postsales import warehouse
    from postsales.tables import table

    assert not lineage.enabled()
    eng = warehouse.engine(duckdb_url)
    warehouse.ensure_schema(eng, staging=False)
    with eng.begin() as conn:
        warehouse.delete_partition(conn, table("ops.run_summary"), sa.true())
    assert lineage._current is None


def airflow_env() -> dict[str, str]:
    """The environment `make airflow` runs in (`make -s airflow-env`), on top of this one's PATH."""
    out = subprocess.run(["make", "-s", "airflow-env"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPENLINEAGE"))}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name != "PATH":
            env[name] = value.strip("'")
    return env


PROBE = """
import json, time
started = time.perf_counter()
from airflow.providers.openlineage import conf
from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin
from postsales import lineage
import airflow
print(json.dumps({"disabled": conf.is_disabled(), "listeners": len(OpenLineageProviderPlugin.listeners),
                  "extractors": sorted(conf.custom_extractors()), "enabled": lineage.enabled()}))
"""


def run_probe(env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_make_airflow_has_openlineage_off_until_a_transport_is_set(tmp_path):
    env = airflow_env()
    assert run_probe(env) == {
        "disabled": True,
        "listeners": 0,
        "extractors": ["postsales.lineage.extractor.PostsalesExtractor"],
        "enabled": False,
    }
    transport = json.dumps({"type": "file", "log_file_path": str(tmp_path / "events.jsonl"), "append": True})
    assert run_probe(env | {"AIRFLOW__OPENLINEAGE__TRANSPORT": transport})["listeners"] == 1
    assert run_probe(env | {"OPENLINEAGE_URL": "http://localhost:5000"})["enabled"] is True
