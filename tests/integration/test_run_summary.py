"""ops.run_summary of real DAG runs through dag.test(), and the failure alert end to end."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta

import pendulum
import pytest
import sqlalchemy as sa

import tiny
import webhook
from crm_fixtures import tiny_warehouse_and_crm
from postsales import warehouse
from postsales.extract import extract_entity
from postsales.monitoring import RunFacts, run_summary, write_run_summary
from postsales.segment.engine import account_segments
from postsales.segment.engine import ensure_tables as ensure_segment_tables
from postsales.sources import Interval

DAY1_RUN = pendulum.datetime(2024, 3, 2, tz="UTC")  # covers [2024-03-01, 2024-03-02)


def summary_rows(url: str) -> dict[tuple[str, str], dict]:
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(sa.text("select * from ops.run_summary")).mappings().all()
    return {(r["dag_id"], r["run_id"]): dict(r) for r in rows}


def only_row(url: str, dag_id: str) -> dict:
    rows = [r for (d, _), r in summary_rows(url).items() if d == dag_id]
    assert len(rows) == 1, rows
    return rows[0]


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def test_extract_runs_are_summarised(dags, warehouse_url, tiny_source, caplog):
    caplog.set_level(logging.INFO, logger="postsales.monitoring")
    crm_run = dags.get_dag("crm_extract").test(logical_date=DAY1_RUN)
    usage_run = dags.get_dag("usage_extract").test(logical_date=DAY1_RUN)
    assert task_states(crm_run)["summarize_run"] == "success"
    crm = summary_rows(warehouse_url)[("crm_extract", crm_run.run_id)]
    # tests/tiny.py, day 1: accounts 102 read / 4 quarantined, contracts 101 / 4, responses 100 / 2.
    assert (crm["rows_extracted"], crm["rows_loaded"], crm["rows_quarantined"]) == (303, 293, 10)
    assert (crm["state"], json.loads(crm["failed_tasks"]), json.loads(crm["skipped_tasks"])) == ("success", [], [])
    assert (crm["data_interval_start"], crm["data_interval_end"]) == (datetime(2024, 3, 1), datetime(2024, 3, 2))
    assert crm["run_type"] == "manual"
    # Top 5 by rows then name: A5's two copies fail uniqueness; every other bad row fails one rule.
    # Left out: contracts C4 (end before start) and C5 (negative ARR), the two survey scores.
    assert list(json.loads(crm["top_quarantine_reasons"]).items()) == [
        ("accounts: account_id must be unique", 2),
        ("accounts: account_id is required", 1),
        ("accounts: lifecycle_stage must be one of ['Implementation', 'Hypercare', 'Adoption', 'Expansion', "
         "'Renewal']", 1),
        ("contracts: account_id must exist in accounts.account_id", 1),
        ("contracts: arr must be a valid number", 1),
        ("… and 4 more reasons", 4),
    ]  # fmt: skip
    assert crm["segments_as_of_date"] is None and crm["crm_fields_pushed"] is None
    usage = only_row(warehouse_url, "usage_extract")
    assert (usage["rows_extracted"], usage["rows_loaded"], usage["rows_quarantined"]) == (100, 98, 2)
    reasons = json.loads(usage["top_quarantine_reasons"])
    assert reasons == {
        "usage_daily: account_id must exist in accounts.account_id": 1,  # A9
        # A1's row dated 2099, in the file of 2024-03-01: two reasons, one row.
        "usage_daily: usage_date must not be in the future": 1,
        "usage_daily: usage_date must be the day its file is named for": 1,
    }
    from postsales_dev.summary import run_summary_lines

    assert [line.split(":")[0] for line in run_summary_lines(warehouse.engine(warehouse_url))] == [
        "latest run of each DAG (ops.run_summary)",
        f"  run summary crm_extract {crm_run.run_id.split(':')[0]}",
        f"  run summary usage_extract {usage_run.run_id.split(':')[0]}",
    ]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run summary crm_extract")]
    assert lines == [
        f"run summary crm_extract {crm_run.run_id}: success; extracted 303 rows, loaded 293, quarantined 10 "
        "(top: accounts: account_id must be unique 2; accounts: account_id is required 1; accounts: "
        "lifecycle_stage must be one of ['Implementation', 'Hypercare', 'Adoption', 'Expansion', 'Renewal'] 1; "
        "contracts: account_id must exist in accounts.account_id 1; contracts: arr must be a valid number 1; "
        f"… and 4 more reasons (4 rows) in ops.quarantine where run_id = '{crm_run.run_id}')"
    ]
    assert usage_run.state == "success"


def test_failed_run_is_summarised_failed_and_alerted(dags, duckdb_url, tiny_source, alert_webhook):
    columns = [c for c in tiny.ACCOUNT_COLUMNS if c != "industry"]
    tiny.write_csv(tiny_source / "accounts.csv", columns, [{c: r[c] for c in columns} for r in tiny.ACCOUNTS])
    run = dags.get_dag("crm_extract").test(logical_date=DAY1_RUN)
    states = task_states(run)
    # The summary runs and succeeds, but as a teardown it does not turn the failed run green.
    assert str(run.state) == "failed"
    assert states == {
        "extract_accounts": "failed",
        "extract_contracts": "upstream_failed",
        "extract_survey_responses": "upstream_failed",
        "summarize_run": "success",
    }
    row = only_row(duckdb_url, "crm_extract")
    assert (row["state"], json.loads(row["failed_tasks"])) == ("failed", ["extract_accounts"])
    assert row["rows_extracted"] is None  # no extract finished
    # One alert, for the task that failed (a DataContractError: no retry), with what on-call needs.
    assert len(alert_webhook.requests) == 1
    lines = alert_webhook.texts[0].splitlines()
    assert lines[:3] == [
        ":red_circle: postsales task failed: crm_extract.extract_accounts",
        f"run: {run.run_id}",
        "try: 1 of 3",
    ]
    assert lines[3].startswith("error: DataContractError: accounts (") and "['industry'] missing" in lines[3]
    assert lines[4].startswith("log: http") and "/dags/crm_extract/runs/" in lines[4]
    assert lines[4].endswith("/tasks/extract_accounts?try_number=1")
    assert webhook.SECRET_PATH not in alert_webhook.texts[0]


def test_summary_row_is_replaced_on_rerun(warehouse_url):
    facts = RunFacts(
        dag_id="usage_extract",
        run_id="scheduled__2024-03-02T00:00:00+00:00",
        run_type="scheduled",
        data_interval_start=pendulum.datetime(2024, 3, 1, tz="UTC"),
        data_interval_end=pendulum.datetime(2024, 3, 2, tz="UTC"),
        started_at=pendulum.datetime(2024, 3, 2, 0, 5, tz="UTC"),
        task_states={"extract_usage_daily": "failed"},
    )
    write_run_summary(facts, now=datetime(2024, 3, 2, 0, 6, 30))
    facts.task_states = {"extract_usage_daily": "success"}
    facts.task_results = {
        "extract_usage_daily": {"entity": "usage_daily", "rows_read": 7, "rows_loaded": 6, "rows_quarantined": 1,
                                "top_failures": {"events must be in [0, inf]": 1}},
    }  # fmt: skip
    write_run_summary(facts, now=datetime(2024, 3, 2, 1, 0, 0))
    rows = summary_rows(warehouse_url)
    assert list(rows) == [("usage_extract", facts.run_id)]
    row = rows[("usage_extract", facts.run_id)]
    assert (row["state"], row["rows_extracted"], row["rows_quarantined"]) == ("success", 7, 1)
    assert row["duration_seconds"] == pytest.approx(55 * 60)  # 00:05 to 01:00
    assert json.loads(row["top_quarantine_reasons"]) == {"usage_daily: events must be in [0, inf]": 1}


def test_a_run_summary_table_from_an_older_release_gains_the_new_columns(warehouse_url):
    """ops.run_summary created before retries were recorded: the first summary adds the columns."""
    eng = warehouse.engine(warehouse_url)
    old = sa.MetaData()
    sa.Table("run_summary", old, *(c.copy() for c in run_summary.columns if c.name not in ("retries", "task_tries")),
             schema="ops")  # fmt: skip
    with eng.begin() as conn:
        conn.execute(sa.text("create schema if not exists ops"))
        old.create_all(conn)
    facts = RunFacts(dag_id="cohort_analysis", run_id="backfill__2026-06-01T00:00:00+00:00",
                     task_states={"compute_cohort_snapshot": "success"},
                     task_tries={"compute_cohort_snapshot": 2, "summarize_run": 1})  # fmt: skip
    write_run_summary(facts, now=datetime(2026, 7, 1, 0, 5))
    row = summary_rows(warehouse_url)[("cohort_analysis", facts.run_id)]
    assert (row["retries"], json.loads(row["task_tries"])) == (1, {"compute_cohort_snapshot": 2, "summarize_run": 1})
    with eng.begin() as conn:
        assert warehouse.add_missing_columns(conn, [run_summary]) == []  # nothing left to add


def seed_segments(url: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Rows of (as_of_date, account_id, value_tier, quadrant); other columns get fixed values."""
    eng = warehouse.engine(url)
    ensure_segment_tables(eng)
    fixed = {
        c.name: (False if isinstance(c.type, sa.Boolean) else "x")
        for c in account_segments.columns
        if not c.nullable and c.name not in ("as_of_date", "account_id", "value_tier", "quadrant", "computed_at")
    }
    with eng.begin() as conn:
        conn.execute(
            account_segments.insert(),
            [
                fixed
                | {
                    "as_of_date": date.fromisoformat(d),
                    "account_id": a,
                    "value_tier": tier,
                    "quadrant": quadrant,
                    "computed_at": datetime(2024, 1, 1),
                }
                for d, a, tier, quadrant in rows
            ],
        )


def test_segments_changed_against_the_previous_as_of_date(warehouse_url):
    seed_segments(
        warehouse_url,
        [
            ("2024-01-31", "A", "SMB", "Grow"),  # an older date: not the one compared with
            ("2024-01-31", "B", "SMB", "Grow"),
            ("2024-02-29", "A", "SMB", "Grow"),
            ("2024-02-29", "B", "SMB", "Grow"),
            ("2024-02-29", "C", "Mid-Market", "Protect"),
            ("2024-02-29", "D", "SMB", "Manage"),  # gone by March: not counted
            ("2024-03-31", "A", "SMB", "Grow"),  # unchanged
            ("2024-03-31", "B", "Mid-Market", "Grow"),  # tier changed
            ("2024-03-31", "C", "Mid-Market", "Re-evaluate"),  # quadrant changed
            ("2024-03-31", "E", "SMB", "Grow"),  # new in March: not counted
        ],
    )
    segmentation = {"as_of_date": "2024-03-31", "accounts": 4, "quadrants": {}}
    facts = RunFacts(dag_id="account_segmentation", run_id="r1", task_results={"segment_accounts": segmentation})
    row = write_run_summary(facts)
    assert (row["segments_as_of_date"], row["segments_compared_to"], row["segments_changed"]) == (
        "2024-03-31",
        "2024-02-29",
        2,
    )
    first = write_run_summary(
        RunFacts(
            dag_id="account_segmentation",
            run_id="r0",
            task_results={"segment_accounts": {"as_of_date": "2024-01-31", "quadrants": {}}},
        )
    )
    assert (first["segments_compared_to"], first["segments_changed"]) == (None, None)


@pytest.fixture
def crm(tmp_path, monkeypatch, duckdb_url, tiny_source):
    url = tiny_warehouse_and_crm(tmp_path)
    monkeypatch.setenv("POSTSALES_CRM_SYNC_URL", url)
    return url


def test_revision_run_summary_counts_crm_fields_and_segments(dags, duckdb_url, crm):
    approved = {"force": True, "dry_run": False, "approve_first_push": True, "approve_large_change": True,
                "push_backfill": False}  # fmt: skip
    run = dags.get_dag("segment_revision").test(logical_date=pendulum.datetime(2024, 4, 1, tz="UTC"), run_conf=approved)
    assert run.state == "success", task_states(run)
    row = only_row(duckdb_url, "segment_revision")
    with warehouse.engine(duckdb_url).connect() as conn:
        push = conn.execute(
            sa.text(
                "select fields_succeeded, fields_failed, fields_changed from ops.crm_sync_runs "
                "where run_id like '%:push:%'"
            )
        ).one()
    assert push.fields_succeeded > 0
    assert (row["crm_fields_pushed"], row["crm_fields_failed"], row["crm_fields_skipped"]) == (
        push.fields_succeeded,
        0,
        push.fields_changed - push.fields_succeeded,
    )
    assert row["crm_fields_skipped"] == 0  # everything in the diff was written
    assert row["crm_accounts_skipped"] == 1  # F001 is locked in the CRM
    assert row["segments_as_of_date"] == date(2024, 3, 31)
    # The migration task also segmented 2023-09-30, when tiny had no customers: no earlier rows.
    assert (row["segments_compared_to"], row["segments_changed"]) == (None, None)


def test_cohort_run_records_its_snapshot_month(dags, duckdb_url, tiny_source):
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=Interval(tiny.DAY1, tiny.DAY3, full_refresh=True), run_id="r",
                       build_data_docs=False)  # fmt: skip
    run = dags.get_dag("cohort_analysis").test(logical_date=pendulum.datetime(2024, 4, 1, tz="UTC"))
    assert run.state == "success"
    row = only_row(duckdb_url, "cohort_analysis")
    assert row["cohort_snapshot_month"] == date(2024, 3, 1)
    assert row["rows_extracted"] is None and row["state"] == "success"
    # dag.test() makes a past logical date the run's start: no duration rather than years.
    assert row["started_at"] is None and row["duration_seconds"] is None
    # As make run does it: the month as a param, the logical date left to dag.test (now).
    before = datetime.now(UTC).replace(tzinfo=None)
    run = dags.get_dag("cohort_analysis").test(run_conf={"month": "2024-03"})
    row = summary_rows(duckdb_url)[("cohort_analysis", run.run_id)]
    assert (row["cohort_snapshot_month"], row["data_interval_start"]) == (date(2024, 3, 1), datetime(2024, 3, 1))
    assert row["data_interval_end"] == datetime(2024, 4, 1)
    assert before - timedelta(seconds=5) <= row["started_at"] <= datetime.now(UTC).replace(tzinfo=None)
    assert 0 < row["duration_seconds"] < 600
