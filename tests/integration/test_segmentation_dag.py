"""account_segmentation through dag.test() after the extract DAGs, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, datetime
from types import SimpleNamespace

import pandas as pd
import pendulum
import pytest
import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.tasks.context import segmentation_as_of
from project_home import project_with_rules


def segments(url: str) -> pd.DataFrame:
    with warehouse.engine(url).connect() as conn:
        return pd.read_sql(sa.text("select * from mart.account_segments order by account_id"), conn)


def test_segmentation_after_extracts(dags, warehouse_url, tiny_source):
    day1 = pendulum.datetime(2024, 3, 2, tz="UTC")
    for dag_id in ("crm_extract", "usage_extract"):
        assert dags.get_dag(dag_id).test(logical_date=day1).state == "success"
    run = dags.get_dag("account_segmentation").test(run_conf={"as_of_date": "2024-03-01"})
    assert run.state == "success"
    frame = segments(warehouse_url)
    # Customers on 2024-03-01: the 96 fillers and A1 (contract C1). A3's only contract (C4)
    # was quarantined, A2 arrives on day 2, A4/A5 were quarantined.
    assert len(frame) == 97
    assert set(frame["account_id"]) == {*tiny.FILLERS, "A1"}
    assert set(frame["as_of_date"].astype(str)) == {"2024-03-01"}
    # 12,000 ARR is SMB; 12,000 of a 50,000 wallet (≥ 25,000, share 0.24 < 0.8): Grow.
    assert set(frame["value_tier"]) == {"SMB"}
    assert set(frame["quadrant"]) == {"Grow"} and set(frame["quadrant_rule"]) == {"large_wallet_low_share"}
    a1 = frame.set_index("account_id").loc["A1"]
    explanation = json.loads(a1["explanation"])
    assert explanation["quadrant"]["inputs"]["tenure_months"] == 1
    assert explanation["quadrant"]["inputs"]["wallet_share"] == pytest.approx(0.24)
    assert explanation["quadrant"]["inputs"]["nps_latest"] == 9  # the out-of-range 11 was quarantined
    assert a1["rules_version"] == explanation["rules_version"]
    # The forecast task covers the same accounts; two months of contracts (since 2024-01-15:
    # points 2024-02-01 and 2024-03-01) are short of min_history_months, so nothing is projected.
    with warehouse.engine(warehouse_url).connect() as conn:
        forecasts = pd.read_sql(sa.text("select * from mart.account_forecasts"), conn)
    assert set(forecasts["account_id"]) == set(frame["account_id"])
    assert set(forecasts["forecast_status"]) == {"insufficient_history"}
    assert set(forecasts["arr_points"]) == {2}
    assert not forecasts[["smb_to_mm_6_9m", "mm_to_ent_12_15m", "ent_decline_risk"]].any().any()
    # Rerunning the same as-of date replaces its partition.
    assert dags.get_dag("account_segmentation").test(run_conf={"as_of_date": "2024-03-01"}).state == "success"
    assert len(segments(warehouse_url)) == 97


def event(interval_end: str | None):
    return SimpleNamespace(extra={"interval_end": interval_end} if interval_end else {})


def test_as_of_date_resolution():
    events = {
        "accounts": [event("2024-03-02T00:00:00"), event("2024-03-03T00:00:00")],
        "usage": [event("2024-03-02T00:00:00"), event(None)],
    }
    assert segmentation_as_of("2023-12-31", events, None) == date(2023, 12, 31)
    assert segmentation_as_of(None, events, None) == date(2024, 3, 2)  # last complete day loaded
    assert segmentation_as_of(None, {}, datetime(2024, 5, 10, 3)) == date(2024, 5, 9)


def test_a_broken_rules_file_fails_the_segmentation_at_once(dags, duckdb_url, tmp_path, monkeypatch, caplog):
    """A broken segmentation.yaml is not a retry's worth: the task fails on its first try, and the
    alert carries the message naming the file and the field."""
    from postsales import paths

    shipped = (paths.rules_dir() / "segmentation.yaml").read_text()
    assert "nps_days: 365 " in shipped
    rules = project_with_rules(
        tmp_path / "project",
        monkeypatch,
        **{"segmentation.yaml": shipped.replace("nps_days: 365 ", "nps_days: a year ")},
    )
    run = dags.get_dag("account_segmentation").test(run_conf={"as_of_date": "2024-03-01"})
    assert str(run.state) == "failed"
    tries = {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    assert tries == {
        "segment_accounts": ("failed", 1),  # no retry
        "forecast_tier_migration": ("upstream_failed", 0),
        "write_segmentation_report": ("upstream_failed", 0),
        "summarize_run": ("success", 1),
    }
    [alert] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("postsales alert:")]
    assert "account_segmentation.segment_accounts" in alert and "try: 1 of 3" in alert
    assert f"error: ConfigError: {rules / 'segmentation.yaml'}: field 'windows.nps_days': " in alert
