"""cohort_analysis through dag.test(): monthly snapshots, idempotent reruns, the HTML report in a real browser."""

from __future__ import annotations

import re
import subprocess
from datetime import date

import pandas as pd
import pendulum
import pytest
import sqlalchemy as sa

import tiny
from browser import chromium_flags, chromium_or_skip
from postsales import warehouse
from postsales.cohorts import compute_snapshot
from postsales.extract import extract_entity
from postsales.sources import Interval

TABLES = ("mrr_monthly", "mrr_movements", "cohort_retention")


def load_tiny():
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=Interval(tiny.DAY1, tiny.DAY3, full_refresh=True), run_id="r",
                       build_data_docs=False)  # fmt: skip


def snapshot_rows(url: str, month: date) -> dict[str, list]:
    out = {}
    with warehouse.engine(url).connect() as conn:
        for name in TABLES:
            frame = pd.read_sql(
                sa.text(f"select * from mart.{name} where snapshot_month = :m"), conn, params={"m": month}
            )
            out[name] = sorted(map(tuple, frame.astype(str).itertuples(index=False)))
    return out


def test_monthly_runs_write_their_snapshot_and_report(dags, warehouse_url, tiny_source, tmp_path):
    load_tiny()
    dag = dags.get_dag("cohort_analysis")
    # The run after 2024-04-01 covers March 2024.
    run = dag.test(logical_date=pendulum.datetime(2024, 4, 1, tz="UTC"))
    assert run.state == "success"
    march = snapshot_rows(warehouse_url, date(2024, 3, 1))
    # Tiny: 98 accounts with 12,000 ARR from January 2024 — the 96 fillers, A1 (C1) and A2
    # (evergreen C6); A3's only contract was quarantined. MRR in March: 98 × 1,000.
    movements = {r[1]: r for r in march["mrr_movements"]}
    assert float(movements["2024-03-01"][2]) == pytest.approx(98 * 1000)
    assert len(march["cohort_retention"]) > 0
    report = tmp_path / "data" / "reports" / "cohorts_2024-03.html"
    assert report.is_file() and "Cohort report — snapshot March 2024" in report.read_text()
    # Rerunning the month, or computing it directly, gives identical rows.
    assert dag.test(logical_date=pendulum.datetime(2024, 4, 1, tz="UTC")).state == "success"
    assert snapshot_rows(warehouse_url, date(2024, 3, 1)) == march
    compute_snapshot(date(2024, 3, 1))
    assert snapshot_rows(warehouse_url, date(2024, 3, 1)) == march


def test_report_is_self_contained_and_renders_in_chromium(duckdb_url, tiny_source, tmp_path):
    from postsales.reports.cohort_report import write_report

    load_tiny()
    compute_snapshot(date(2024, 3, 1))
    path = write_report(date(2024, 3, 1))
    text = path.read_text()
    # Nothing to fetch: no external scripts, styles, fonts or images.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text and "@import" not in text and "url(" not in text
    browser = chromium_or_skip()
    flags = chromium_flags(tmp_path / "chromium")
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "Logo retention" in dom and "Net revenue retention (NRR)" in dom
    assert dom.count("<table") >= 4 and "<svg" in dom
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1200,1600", f"--screenshot={screenshot}", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_manual_run_without_logical_date_snapshots_the_last_complete_month(dags, duckdb_url, tiny_source):
    load_tiny()
    dag_run = dags.get_dag("cohort_analysis").test(logical_date=None, run_after=pendulum.datetime(2024, 4, 9, tz="UTC"))
    assert str(dag_run.state) == "success"
    march = snapshot_rows(duckdb_url, date(2024, 3, 1))
    assert float({r[1]: r for r in march["mrr_movements"]}["2024-03-01"][2]) == pytest.approx(98 * 1000)
