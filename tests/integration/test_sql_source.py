"""The sql source: the demo CRM (SQLite) and a PostgreSQL CRM mirror, with the YAML column mapping;
a missing table fails the extract at once, an unreachable database is retried."""

from __future__ import annotations

import uuid
from datetime import datetime

import pandas as pd
import pendulum
import pytest
import sqlalchemy as sa

import tiny
from gate_frames import run_gate
from postsales import paths
from postsales.config import load_expectations, load_sources
from postsales.errors import SourceUnavailableError
from postsales.sources import Interval
from postsales.sources.files import FileSource
from postsales.sources.sql import SqlSource
from postsales_dev import demo
from project_home import project_with_rules

EXPECTATIONS = load_expectations()
SOURCES = load_sources()
LOOSE = EXPECTATIONS.thresholds.model_copy(update={"max_failed_fraction": 1.0})
EVERYTHING = Interval(datetime(2000, 1, 1), datetime(2030, 1, 1), full_refresh=True)
SOURCES_TEXT = (paths.rules_dir() / "sources.yaml").read_text()
SOURCES_ACCOUNTS = "  accounts:\n    source: files\n"
assert SOURCES_ACCOUNTS in SOURCES_TEXT


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.generate(out, accounts=60, seed=7)
    return out


def gated(entity: str, frame: pd.DataFrame, known=None) -> pd.DataFrame:
    result = run_gate(entity, frame, EXPECTATIONS.entities[entity], LOOSE, not_after=datetime(2030, 1, 1), known=known)
    columns = list(EXPECTATIONS.entities[entity].columns)
    return result.valid[columns].sort_values(columns[:3]).reset_index(drop=True)


def in_interval(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """The rows whose updated_at is in the interval: the source's coarse read, cut exactly (as the gate does)."""
    updated = pd.to_datetime(frame["updated_at"], format="ISO8601", utc=True).dt.tz_localize(None)
    return frame[(updated >= interval.start) & (updated < interval.end)]


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
    exact = in_interval(read.frame, interval)
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
    exact = in_interval(read.frame, Interval(tiny.DAY1, tiny.DAY2))
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def source_without_tables(request, tmp_path) -> tuple[str, str]:
    """A reachable database without the mapped tables: (its URL with a password, as a message shows it)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
        return url, url
    # A database of its own: the session's shared one holds other tests' crm_account tables.
    import psycopg

    admin = request.getfixturevalue("pg_server")
    name = f"postsales_no_tables_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    request.addfinalizer(lambda: _drop_database(admin, name))
    database = f"{admin.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    # Trust authentication: any password connects.
    return database.replace("postgres@", "postgres:s3cret@"), database.replace("postgres@", "postgres:***@")


def _drop_database(admin: str, name: str) -> None:
    import psycopg

    from postsales import warehouse

    warehouse.dispose_all()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_a_missing_table_is_not_retryable_and_names_the_database_the_table_and_the_fix(source_without_tables):
    from postsales.errors import NotRetryableError

    url, shown = source_without_tables
    with pytest.raises(NotRetryableError) as info:
        SqlSource(SOURCES.sql, url=url).read("contracts", "updated_at", EVERYTHING)
    assert str(info.value) == (
        f"contracts: the sql source {shown} has no table 'crm_contract'. Fix: set sql.tables.contracts.table "
        "(and schema) in include/rules/sources.yaml to the table holding contracts, or point the URL it was "
        "given at the database that holds it."
    )


ACCOUNTS_FROM_SQL = {"sources.yaml": SOURCES_TEXT.replace(SOURCES_ACCOUNTS, SOURCES_ACCOUNTS.replace("files", "sql"))}


def extract_accounts_from(url: str, dags, tmp_path, monkeypatch) -> tuple[str, tuple[str, int]]:
    """crm_extract for day 1 with accounts read from the sql source at ``url`` (given as $POSTSALES_CRM_URL)."""
    project_with_rules(tmp_path / "project", monkeypatch, **ACCOUNTS_FROM_SQL)
    monkeypatch.setenv("POSTSALES_CRM_URL", url)
    day1 = pendulum.datetime(2024, 3, 2, tz="UTC")  # the run after day 1
    run = dags.get_dag("crm_extract").test(logical_date=day1, run_conf={"full_refresh": False, "allow_empty": False})
    ti = run.get_task_instance("extract_accounts")
    return str(run.state), (str(ti.state), ti.try_number)


def test_a_missing_source_table_fails_the_extract_at_once(
    dags, duckdb_url, source_without_tables, tmp_path, monkeypatch, caplog, capsys
):
    url, _ = source_without_tables
    assert extract_accounts_from(url, dags, tmp_path, monkeypatch) == ("failed", ("failed", 1))  # no retry
    message = (
        "accounts: the sql source {} has no table 'crm_account'. Fix: set sql.tables.accounts.table (and "
        "schema) in include/rules/sources.yaml to the table holding accounts, or point $POSTSALES_CRM_URL at "
        "the database that holds it."
    )
    # The message with the masked URL is the library's (the test above): the task log goes to a stdout
    # that only the first such test in a session captures, so the alert (through logging) is checked.
    [alert] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("postsales alert:")]
    assert f"error: DataContractError: {message.format('<url>')}" in alert  # alerts carry no URL
    task_log = capsys.readouterr()
    assert "s3cret" not in caplog.text + task_log.out + task_log.err


def test_an_unreachable_source_database_is_still_retried(dags, duckdb_url, tmp_path, monkeypatch):
    url = "postgresql+psycopg://crm_user:s3cret-pw@127.0.0.1:1/crm"
    assert extract_accounts_from(url, dags, tmp_path, monkeypatch) == ("failed", ("failed", 3))  # 2 retries
