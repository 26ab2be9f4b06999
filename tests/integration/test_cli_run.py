"""`make run` (postsales_dev.cli run) when a DAG fails: exit code 1 and the summary, no traceback."""

from __future__ import annotations

import tiny
from postsales.cli import run_evaluation
from postsales_dev import cli
from postsales_dev.summary import summary_text


def test_a_failed_extract_ends_make_run_with_1_and_the_summary(airflow_db, duckdb_url, tiny_source, capsys):
    columns = [c for c in tiny.ACCOUNT_COLUMNS if c != "industry"]  # breaks the contract: no retry
    tiny.write_csv(tiny_source / "accounts.csv", columns, [{c: r[c] for c in columns} for r in tiny.ACCOUNTS])
    assert cli.main(["run"]) == 1
    out = capsys.readouterr().out
    assert "crm_extract: failed" in out
    assert "account_segmentation:" not in out and "cohort_analysis:" not in out  # nothing after a failure
    assert f"warehouse: {duckdb_url}" in out  # the summary still prints


def test_the_summary_prints_with_no_contracts(warehouse_url, tiny_source):
    """A header-only contracts.csv: every step succeeds; the summary says n/a where there is no rate."""
    from datetime import date

    from postsales.extract import extract_entity
    from postsales.sources import Interval

    tiny.write_csv(tiny_source / "contracts.csv", tiny.CONTRACT_COLUMNS, [])
    full = Interval(tiny.DAY1, tiny.DAY3, full_refresh=True)
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=full, run_id="no_contracts", build_data_docs=False)
    run_evaluation(date(2024, 3, 2))
    lines = summary_text().splitlines()
    assert f"{'contracts':<18}{0:>10}{0:>10}{0:>13}{0:>12}" in lines
    assert "evaluation as of 2024-03-02 (mart.health_outcomes, mart.forecast_backtest):" in lines
    for months in (3, 6, 12):
        assert (
            f"  health AUC within {months:>2} months over 0 account-dates: churn n/a, churn or contraction n/a; "
            "churn rate n/a"
        ) in lines
