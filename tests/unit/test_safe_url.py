"""Database URLs in messages, logs and CRM sync-state keys carry no secret (postsales.errors.safe_url)."""

from __future__ import annotations

import pytest

from postsales.errors import safe_url

SECRET = "S3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql+psycopg://crm:{SECRET}@db:5432/crm", "postgresql+psycopg://crm:***@db:5432/crm"),
        (f"postgresql+psycopg://crm@db/crm?password={SECRET}", "postgresql+psycopg://crm@db/crm?password=***"),
        (
            f"mssql+pyodbc:///?odbc_connect=DRIVER%3DX%3BPWD%3D{SECRET}",
            "mssql+pyodbc:///?odbc_connect=***",
        ),
        (
            f"snowflake://u@acct/db?private_key_file_pwd={SECRET}&warehouse=wh",
            "snowflake://u@acct/db?private_key_file_pwd=***&warehouse=wh",
        ),
        ("postgresql+psycopg://crm@db/crm?sslmode=require", "postgresql+psycopg://crm@db/crm?sslmode=require"),
        ("sqlite:////data/crm.sqlite", "sqlite:////data/crm.sqlite"),
    ],
)
def test_no_secret_is_shown_and_the_rest_is(url, shown):
    assert safe_url(url) == shown
    assert SECRET not in safe_url(url)


def test_the_sql_crm_adapters_state_key_holds_no_secret(tmp_path):
    import sqlite3

    from postsales.crm.config import SqlCrm
    from postsales.crm.sql_adapter import SqlCrmAdapter

    path = tmp_path / "crm.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("create table crm_account (account_id text primary key, tier text)")
    url = f"sqlite:///{path}?password={SECRET}"  # a secret in the query string, as some drivers take it
    adapter = SqlCrmAdapter(SqlCrm(table="crm_account"), "account_id", url=url)
    assert adapter.describe() == f"sql:sqlite:///{path}?password=***/crm_account"
