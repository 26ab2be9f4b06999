"""The write trace behind the outlet check of every dag.test() (tests/write_trace.py)."""

from __future__ import annotations

import pytest

from write_trace import written_table


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
