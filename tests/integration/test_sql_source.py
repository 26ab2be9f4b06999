"""The sql source: the demo CRM (SQLite) and a PostgreSQL CRM mirror, with the YAML column mapping."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

import tiny
from postsales import demo
from postsales.config import load_expectations, load_sources
from postsales.errors import SourceUnavailableError
from postsales.sources import Interval
from postsales.sources.files import FileSource
from postsales.sources.sql import SqlSource
from postsales.validate.gate import run_gate

EXPECTATIONS = load_expectations()
SOURCES = load_sources()
LOOSE = EXPECTATIONS.thresholds.model_copy(update={"max_failed_fraction": 1.0})
EVERYTHING = Interval(datetime(2000, 1, 1), datetime(2030, 1, 1), full_refresh=True)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.generate(out, accounts=60, seed=7)
    return out


def gated(entity: str, frame: pd.DataFrame, known=None) -> pd.DataFrame:
    result = run_gate(entity, frame, EXPECTATIONS.entities[entity], LOOSE, not_after=datetime(2030, 1, 1), known=known)
    columns = list(EXPECTATIONS.entities[entity].columns)
    return result.valid[columns].sort_values(columns[:3]).reset_index(drop=True)


@pytest.mark.parametrize("entity", ["accounts", "contracts", "survey_responses"])
def test_demo_crm_matches_the_csv_export(demo_dir, entity):
    column = SOURCES.entities[entity].incremental_column
    from_sql = SqlSource(SOURCES.sql, url=f"sqlite:///{demo_dir / 'crm.sqlite'}").read(entity, column, EVERYTHING)
    from_files = FileSource(demo_dir).read(entity, column, EVERYTHING)
    assert len(from_sql.frame) == len(from_files.frame) > 0
    assert from_sql.origin == f"sql:crm_{entity.rstrip('s')}"
    known = {"accounts.account_id": set(from_files.frame["account_id"].dropna())}
    pd.testing.assert_frame_equal(gated(entity, from_sql.frame, known), gated(entity, from_files.frame, known))


def test_incremental_read_from_sqlite_text_timestamps(demo_dir):
    files = FileSource(demo_dir).read("accounts", "updated_at", EVERYTHING).frame
    day = pd.to_datetime(files["updated_at"]).dt.normalize().value_counts().index[0]
    interval = Interval(day.to_pydatetime(), (day + pd.Timedelta(days=1)).to_pydatetime())
    read = SqlSource(SOURCES.sql, url=f"sqlite:///{demo_dir / 'crm.sqlite'}").read("accounts", "updated_at", interval)
    from postsales.extract import in_interval

    exact = in_interval(read.frame, "updated_at", "timestamp", interval)
    expected = files[pd.to_datetime(files["updated_at"]).dt.normalize() == day]
    assert sorted(exact["account_id"].dropna()) == sorted(expected["account_id"].dropna())


@pytest.mark.postgres
def test_postgres_crm_mirror_incremental(pg_database):
    crm = pd.DataFrame(tiny.ACCOUNTS).rename(columns=dict(zip(
        ["account_id", "name", "industry", "employee_count", "annual_revenue", "country", "created_at", "updated_at",
         "wallet_potential_arr", "go_live_date", "lifecycle_stage", "referenceable", "segment_override"],
        ["Id", "Name", "Industry", "NumberOfEmployees", "AnnualRevenue", "BillingCountry", "CreatedDate",
         "LastModifiedDate", "Wallet_Potential_ARR__c", "Go_Live_Date__c", "Lifecycle_Stage__c", "Referenceable__c",
         "Segment_Override__c"], strict=True)))  # fmt: skip
    crm = crm.replace("", None)
    crm["LastModifiedDate"] = pd.to_datetime(crm["LastModifiedDate"])
    crm["CreatedDate"] = pd.to_datetime(crm["CreatedDate"])
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema if not exists crm"))
        conn.execute(sa.text("drop table if exists crm.crm_account"))
    crm.to_sql("crm_account", engine, schema="crm", index=False)
    engine.dispose()
    mapping = SOURCES.sql.tables["accounts"].model_copy(update={"schema_name": "crm"})
    config = SOURCES.sql.model_copy(update={"tables": {**SOURCES.sql.tables, "accounts": mapping}})
    read = SqlSource(config, url=pg_database).read("accounts", "updated_at", Interval(tiny.DAY1, tiny.DAY2))
    from postsales.extract import in_interval

    exact = in_interval(read.frame, "updated_at", "timestamp", Interval(tiny.DAY1, tiny.DAY2))
    assert len(exact) == tiny.ACCOUNTS_DAY1["read"]
    assert "A2" not in set(exact["account_id"])  # updated on day 2
    assert set(exact["crm_owner"]) == {"owner@example.com"}  # unmapped columns are kept
    assert exact.loc[exact["account_id"] == "A3", "employee_count"].item() == "9000"


def test_unreachable_database_is_transient_and_hides_the_password():
    url = "postgresql+psycopg://crm_user:s3cret-pw@127.0.0.1:1/crm"
    with pytest.raises(SourceUnavailableError) as info:
        SqlSource(SOURCES.sql, url=url).read("accounts", "updated_at", EVERYTHING)
    assert "s3cret-pw" not in str(info.value)
    assert "cannot reach the sql source" in str(info.value)


def test_url_comes_from_the_environment(monkeypatch):
    from postsales.sources.sql import resolve_url

    monkeypatch.delenv("POSTSALES_CRM_URL", raising=False)
    with pytest.raises(SourceUnavailableError, match="POSTSALES_CRM_URL"):
        resolve_url(SOURCES.sql)
    monkeypatch.setenv("POSTSALES_CRM_URL", "sqlite:///x.db")
    assert resolve_url(SOURCES.sql) == "sqlite:///x.db"
