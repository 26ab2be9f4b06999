"""The write trace behind the outlet and inlet checks of every dag.test() (tests/write_trace.py)."""

from __future__ import annotations

import pytest

from write_trace import read_tables, staging_views, written_table


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("INSERT INTO mart.account_segments (as_of_date) VALUES (?)", "mart.account_segments"),
        ('insert into mart."mrr_monthly" select * from frame', "mart.mrr_monthly"),
        ("\n  DELETE FROM ops.quarantine WHERE run_id = %(run_id)s", "ops.quarantine"),
        ("update ops.crm_sync_state set value = 1", "ops.crm_sync_state"),
        ('COPY "raw"."accounts" (account_id) FROM STDIN', "raw.accounts"),
        ("select * from mart.account_segments", None),
        ("create table if not exists mart.account_segments (x int)", None),
        ("insert into xcom (key) values (1)", None),  # Airflow's own metadata
        ("insert into _load_gate_1f6eca81 select 1", None),  # temporary work tables
        ('insert into "raw"."_load_gate_1f6eca81" select 1', None),
    ],
)
def test_written_table(statement, table):
    assert written_table(statement) == table


@pytest.mark.parametrize(
    ("statement", "tables"),
    [
        (
            "SELECT a FROM mart.account_segments AS s JOIN mart.account_forecasts AS f ON s.a = f.a",
            {"mart.account_segments", "mart.account_forecasts"},
        ),
        (
            'select * from "ops"."crm_sync_state" left outer join\n  ops.extract_runs on true',
            {"ops.crm_sync_state", "ops.extract_runs"},
        ),
        (
            'insert into mart."mrr_monthly" ("a")\nselect "a" from (select a from staging.contracts) as q',
            {"staging.contracts"},
        ),
        ("DELETE FROM ops.quarantine WHERE run_id = %(run_id)s", set()),  # a write, not a read
        ("delete from mart.x where k in (select k from mart.account_segments)", {"mart.account_segments"}),
        ("select extract(year from snapshot_month) from mart.cohort_retention", {"mart.cohort_retention"}),
        ("select * from raw._load_text_1f6eca81 join _load_gate_1f6eca81 on true", set()),  # work tables
        ("select 1 -- from mart.account_segments\nfrom ops.run_summary", {"ops.run_summary"}),  # comments
        ("select * from information_schema.tables", set()),
        ("create or replace view staging.account_versions as select * from staging.accounts", set()),  # DDL
    ],
)
def test_read_tables(statement, tables):
    assert read_tables(statement) == tables


def test_a_staging_view_stands_for_the_tables_it_reads():
    # include/sql/staging: the versions and current views read their entity's staging table.
    assert staging_views() == {
        "staging.account_versions": {"staging.accounts"},
        "staging.accounts_current": {"staging.accounts"},
        "staging.contract_versions": {"staging.contracts"},
        "staging.contracts_current": {"staging.contracts"},
    }
    assert read_tables("select * from staging.account_versions as v join staging.usage_daily as u on true") == {
        "staging.accounts",
        "staging.usage_daily",
    }


def test_the_bulk_paths_past_sqlalchemy_are_traced(warehouse_url, monkeypatch):
    """warehouse.insert_frame writes through the driver (DuckDB's execute on the raw connection,
    PostgreSQL's COPY), where SQLAlchemy's cursor events do not see it: the trace does."""
    from types import SimpleNamespace

    import airflow.sdk
    import pandas as pd

    from postsales import warehouse
    from postsales.tables import table
    from write_trace import task_trace

    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng, staging=False)
    log = table("ops.crm_sync_log")
    given = {"run_id": "r", "target": "t", "account_id": "a", "crm_field": "f", "status": "success", "attempt": 1}
    row = {c.name: None for c in log.c} | given | {"logged_at": pd.Timestamp("2024-03-01")}
    ti = SimpleNamespace(dag_id="d", run_id="run", task_id="t")
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"ti": ti})
    with task_trace() as trace, eng.begin() as conn:
        assert warehouse.insert_frame(conn, log, pd.DataFrame([row])) == 1
    assert trace.writes == {("d", "run", "t"): {"ops.crm_sync_log"}}
