"""`make run` (postsales.cli run) when a DAG fails: exit code 1 and the summary, no traceback."""

from __future__ import annotations

import tiny
from postsales import cli


def test_a_failed_extract_ends_make_run_with_1_and_the_summary(airflow_db, duckdb_url, tiny_source, capsys):
    columns = [c for c in tiny.ACCOUNT_COLUMNS if c != "industry"]  # breaks the contract: no retry
    tiny.write_csv(tiny_source / "accounts.csv", columns, [{c: r[c] for c in columns} for r in tiny.ACCOUNTS])
    assert cli.main(["run"]) == 1
    out = capsys.readouterr().out
    assert "crm_extract: failed" in out
    assert "account_segmentation:" not in out and "cohort_analysis:" not in out  # nothing after a failure
    assert f"warehouse: {duckdb_url}" in out  # the summary still prints
