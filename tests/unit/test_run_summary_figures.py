"""The run summary's figures from task results and states, and its log line (no database)."""

from __future__ import annotations

import json

from postsales.monitoring import RunFacts, figures, summary_line, top_reasons

DRY_RUN_DIFF = {"run_id": "r:dry_run:1", "mode": "dry_run", "fields_changed": 12, "fields_succeeded": 0,
                "fields_failed": 0, "accounts_skipped": 2}  # fmt: skip


def facts(states=None, **results):
    return RunFacts(dag_id="d", run_id="r", task_states=states or {}, task_results=results)


def test_state_is_failed_when_any_task_failed_or_was_upstream_failed():
    assert figures(facts({"a": "success", "b": "skipped"}))["state"] == "success"
    row = figures(facts({"a": "failed", "b": "upstream_failed", "c": "skipped"}))
    assert (row["state"], json.loads(row["failed_tasks"]), json.loads(row["skipped_tasks"])) == ("failed", ["a"], ["c"])
    assert figures(facts({"a": "upstream_failed"}))["state"] == "failed"


def test_extract_figures_add_up_and_keep_the_top_five_reasons():
    accounts = {"entity": "accounts", "rows_read": 10, "rows_loaded": 7, "rows_quarantined": 3,
                "top_failures": {"x required": 2, "y unique": 1}}  # fmt: skip
    contracts = {"entity": "contracts", "rows_read": 5, "rows_loaded": 5, "rows_quarantined": 0, "top_failures": {}}
    usage = {"entity": "usage", "rows_read": 4, "rows_loaded": 0, "rows_quarantined": 4,
             "top_failures": {"a": 4, "b": 2, "c": 1, "d": 1}}  # fmt: skip
    row = figures(facts(e1=accounts, e2=contracts, e3=usage))
    assert (row["rows_extracted"], row["rows_loaded"], row["rows_quarantined"]) == (19, 12, 7)
    assert list(json.loads(row["top_quarantine_reasons"]).items()) == [
        ("usage: a", 4),
        ("accounts: x required", 2),
        ("usage: b", 2),
        ("accounts: y unique", 1),
        ("usage: c", 1),
        ("… and 1 more reason", 1),  # usage: d
    ]


def test_no_extract_leaves_the_row_counts_null():
    row = figures(facts(report="data/reports/x.html", check=True))
    assert "rows_extracted" not in row and "crm_fields_pushed" not in row


def test_crm_push_counts_pushed_failed_and_the_rest_of_the_diff_as_skipped():
    push = {"run_id": "r:push:1", "mode": "push", "fields_changed": 12, "fields_succeeded": 9, "fields_failed": 2,
            "accounts_skipped": 2}  # fmt: skip
    row = figures(facts(diff=DRY_RUN_DIFF, push=push))
    assert (row["crm_fields_pushed"], row["crm_fields_failed"], row["crm_fields_skipped"]) == (9, 2, 1)
    assert row["crm_accounts_skipped"] == 2


def test_no_push_means_the_whole_diff_was_skipped():
    # The approval gate closed: only the dry run ran.
    row = figures(facts(diff=DRY_RUN_DIFF))
    assert (row["crm_fields_pushed"], row["crm_fields_failed"], row["crm_fields_skipped"]) == (0, 0, 12)
    # A backfill run computes the diff but does not push it.
    row = figures(facts(diff=DRY_RUN_DIFF, push={"mode": "not_pushed", "reason": "backfill"}))
    assert (row["crm_fields_pushed"], row["crm_fields_skipped"]) == (0, 12)
    # The push step itself ran as a dry run (dry_run param, or a first push not approved).
    row = figures(facts(push=DRY_RUN_DIFF | {"run_id": "r:push:1"}))
    assert (row["crm_fields_pushed"], row["crm_fields_skipped"]) == (0, 12)


def test_segmentation_and_cohort_results_are_recognised():
    row = figures(facts(seg={"as_of_date": "2024-03-31", "accounts": 3, "quadrants": {"Grow": 3}},
                        cohort={"snapshot_month": "2024-03-01", "mrr": 1.0}))  # fmt: skip
    assert str(row["segments_as_of_date"]) == "2024-03-31" and str(row["cohort_snapshot_month"]) == "2024-03-01"


def test_summary_line_reads_well():
    row = {
        "dag_id": "segment_revision", "run_id": "scheduled__2026-07-01T00:00:00+00:00", "state": "failed",
        "duration_seconds": 3725.0, "failed_tasks": '["push_tags_to_crm"]', "rows_extracted": 1234,
        "rows_loaded": 1229, "rows_quarantined": 5, "top_quarantine_reasons": '{"accounts: arr >= 0": 4}',
        "segments_as_of_date": "2026-06-30", "segments_compared_to": "2026-05-31", "segments_changed": 17,
        "cohort_snapshot_month": None, "crm_fields_pushed": 1500, "crm_fields_skipped": 3, "crm_fields_failed": 2,
        "crm_accounts_skipped": 1,
    }  # fmt: skip
    assert summary_line(row) == (
        "run summary segment_revision scheduled__2026-07-01T00:00:00+00:00: failed in 1h 02m; "
        "failed tasks: push_tags_to_crm; "
        "extracted 1,234 rows, loaded 1,229, quarantined 5 (top: accounts: arr >= 0 4); "
        "segments as of 2026-06-30: 17 accounts changed value tier or quadrant since 2026-05-31; "
        "CRM fields pushed 1,500, skipped 3, failed 2; CRM accounts skipped 1"
    )


def test_retries_count_the_tries_beyond_the_first():
    row = figures(RunFacts(dag_id="d", run_id="r", task_tries={"b": 3, "a": 1, "summarize_run": 2}))
    assert row["retries"] == 3  # b: 2 retries, summarize_run: 1
    assert json.loads(row["task_tries"]) == {"a": 1, "b": 3, "summarize_run": 2}
    assert figures(RunFacts(dag_id="d", run_id="r"))["retries"] == 0
    line = summary_line({"dag_id": "d", "run_id": "r", "state": "success", "duration_seconds": 61.0,
                         "failed_tasks": "[]", "rows_extracted": None, "segments_as_of_date": None,
                         "cohort_snapshot_month": None, "crm_fields_pushed": None} | row)  # fmt: skip
    assert line == "run summary d r: success in 1m 01s; 3 retries (b 3 tries, summarize_run 2 tries)"


def test_top_reasons_say_how_many_reasons_and_rows_they_leave_out():
    # Quarantined rows grouped by the reasons they failed, as ops.quarantine stores them.
    groups = [(["a"], 5), (["b"], 3), (["a", "c"], 2), (["d"], 1), (["e", "f"], 1), (["b", "f"], 1)]
    # By hand: a 5 + 2 = 7, b 3 + 1 = 4, c 2, f 1 + 1 = 2, d 1, e 1.
    assert top_reasons(groups, 3) == ([("a", 7), ("b", 4), ("c", 2)], 3, 3)  # d, e, f: rows of d, e+f, b+f
    assert top_reasons(groups, 6) == ([("a", 7), ("b", 4), ("c", 2), ("f", 2), ("d", 1), ("e", 1)], 0, 0)
    assert top_reasons([], 3) == ([], 0, 0)


def test_run_summary_says_that_more_reasons_exist_and_where():
    accounts = {"entity": "accounts", "rows_read": 20, "rows_loaded": 11, "rows_quarantined": 9,
                "top_failures": {"a": 4, "b": 3, "c": 2, "d": 1},
                "quarantine_groups": {'["a"]': 4, '["b"]': 3, '["c", "d"]': 1, '["c"]': 1}}  # fmt: skip
    usage = {"entity": "usage", "rows_read": 9, "rows_loaded": 6, "rows_quarantined": 3,
             "top_failures": {"x": 2, "y": 1}, "quarantine_groups": {'["x"]': 2, '["e", "y"]': 1}}  # fmt: skip
    row = figures(facts(e1=accounts, e2=usage))
    # accounts: a 4, b 3, c 1 + 1 = 2, d 1; usage: x 2, e 1, y 1 (one row failing both).
    # Top 5: a 4, b 3, accounts: c 2, usage: x 2, then accounts: d 1 before usage: e and usage: y.
    # Left out: usage: e and usage: y, both on usage's one row ["e", "y"].
    assert list(json.loads(row["top_quarantine_reasons"]).items()) == [
        ("accounts: a", 4), ("accounts: b", 3), ("accounts: c", 2), ("usage: x", 2), ("accounts: d", 1),
        ("… and 2 more reasons", 1),
    ]  # fmt: skip
    unset = dict.fromkeys(("duration_seconds", "segments_as_of_date", "cohort_snapshot_month", "crm_fields_pushed"))
    line = summary_line(unset | {"dag_id": "crm_extract", "run_id": "r"} | row)
    assert line == (
        "run summary crm_extract r: success; extracted 29 rows, loaded 17, quarantined 12 (top: accounts: a 4; "
        "accounts: b 3; accounts: c 2; usage: x 2; accounts: d 1; … and 2 more reasons (1 row) in ops.quarantine "
        "where run_id = 'r')"
    )


def test_tries_are_counted_from_the_latest_clear():
    """A rerun (UI clear, reprocessing backfill) is not a retry: Airflow keeps counting try
    numbers across clears and sets max_tries = try_number + retries when it clears."""
    from types import SimpleNamespace

    from postsales.dag_defaults import tries_since_clear

    def ti(try_number, max_tries, retries=2):
        return SimpleNamespace(try_number=try_number, max_tries=max_tries, task=SimpleNamespace(retries=retries))

    assert tries_since_clear(ti(1, 2)) == 1  # first run, first try
    assert tries_since_clear(ti(3, 2)) == 3  # first run, two retries
    assert tries_since_clear(ti(2, 1 + 2)) == 1  # cleared after try 1: the rerun's first try
    assert tries_since_clear(ti(3, 1 + 2)) == 2  # ... and its retry
    assert tries_since_clear(ti(5, 4 + 2)) == 1  # cleared twice more
