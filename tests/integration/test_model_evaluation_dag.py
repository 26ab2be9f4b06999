"""model_evaluation through dag.test() on a small demo history: every table, an independent
AUC, idempotent reruns and the HTML report in a real browser."""

from __future__ import annotations

import re
import subprocess
from datetime import date, datetime

import pandas as pd
import pendulum
import pytest
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta
from sklearn.metrics import roc_auc_score

from browser import chromium_flags, chromium_or_skip
from postsales import warehouse
from postsales.extract import extract_entity
from postsales.sources import Interval
from postsales_dev import demo

AS_OF = date(2026, 10, 31)  # the demo's last day; the run after 2026-11-01 covers October
MART_TABLES = (
    "forecast_backtest",
    "forecast_tier_calibration",
    "health_outcomes",
    "health_component_signal",
    "review_recommendations",
    "review_migration_matrix",
    "account_forecasts",
)


@pytest.fixture
def demo_history(tmp_path, monkeypatch, warehouse_url):
    source = tmp_path / "demo"
    demo.generate(source, accounts=120, seed=7)
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(source))
    everything = Interval(datetime(2026, 10, 31), datetime(2026, 11, 1), full_refresh=True)
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=everything, run_id="demo", build_data_docs=False)
    return source


def mart_rows(url: str) -> dict[str, list]:
    out = {}
    with warehouse.engine(url).connect() as conn:
        for name in MART_TABLES:
            frame = pd.read_sql(sa.text(f"select * from mart.{name} where as_of_date = :d"), conn, params={"d": AS_OF})
            frame = frame.drop(columns=[c for c in ("computed_at",) if c in frame.columns])
            out[name] = sorted(map(tuple, frame.astype(str).itertuples(index=False)))
    return out


def independent_churn_auc(url: str, horizon: int, start_dates: int) -> tuple[float, int]:
    """AUC of -health for churn within ``horizon`` months, from the contracts and the stored segments."""
    with warehouse.engine(url).connect() as conn:
        contracts = pd.read_sql(sa.text("select account_id, start_date, end_date from staging.contracts_current"), conn)
        segments = pd.read_sql(sa.text("select as_of_date, account_id, health_score from mart.account_segments"), conn)
    contracts["start_date"] = pd.to_datetime(contracts["start_date"]).dt.date
    contracts["end_date"] = pd.to_datetime(contracts["end_date"]).dt.date
    segments["as_of_date"] = pd.to_datetime(segments["as_of_date"]).dt.date
    labels, scores = [], []
    for j in range(horizon, horizon + start_dates):
        start, end = AS_OF - relativedelta(months=j), AS_OF - relativedelta(months=j - horizon)
        active = contracts[
            (contracts["start_date"] <= end) & (contracts["end_date"].isna() | (contracts["end_date"] >= end))
        ]
        alive = set(active["account_id"])
        at_start = segments[(segments["as_of_date"] == start) & segments["health_score"].notna()]
        labels += [account not in alive for account in at_start["account_id"]]
        scores += list(-at_start["health_score"].astype(float))
    return float(roc_auc_score(labels, scores)), len(labels)


def test_monthly_evaluation_run(dags, warehouse_url, demo_history, tmp_path):
    url = warehouse_url
    dag = dags.get_dag("model_evaluation")
    run = dag.test(logical_date=pendulum.datetime(2026, 11, 1, tz="UTC"))
    assert run.state == "success"
    first = mart_rows(url)
    backtest = {row[1] for row in first["forecast_backtest"]}
    flag_targets = {"smb_to_mm_6_9m", "mm_to_ent_12_15m", "ent_decline_risk"}
    assert backtest == {*flag_targets, *(f"tier_{h}m" for h in (6, 9, 12, 15))}
    assert len(first["health_component_signal"]) == 5 * 3  # components x horizons
    assert len(first["review_recommendations"]) == 2 + 5  # two tier minimums, five weights

    with warehouse.engine(url).connect() as conn:
        customers = conn.execute(
            sa.text("select count(*) from mart.account_segments where as_of_date = :d"), {"d": AS_OF}
        ).scalar_one()
        matrix = dict(
            conn.execute(
                sa.text(
                    "select area, sum(accounts) from mart.review_migration_matrix where as_of_date = :d group by area"
                ),
                {"d": AS_OF},
            ).all()
        )
        overall = conn.execute(
            sa.text(
                "select auc_churn, account_periods from mart.health_outcomes "
                "where as_of_date = :d and horizon_months = 3 and health_band = 'All'"
            ),
            {"d": AS_OF},
        ).one()
        start_dates = conn.execute(
            sa.text("select count(distinct as_of_date) from mart.account_segments where as_of_date < :d"),
            {"d": AS_OF},
        ).scalar_one()
    # Every customer on the as-of date is in each migration matrix exactly once.
    assert matrix == {"value_tier": customers, "health_band": customers}
    # Start dates for horizons 3, 6, 12 with 12 dates each: months 3 .. 23 before the as-of date.
    assert start_dates == 21
    # The AUC written equals scikit-learn's on outcomes recomputed here from the contracts.
    expected_auc, scored = independent_churn_auc(url, horizon=3, start_dates=12)
    assert overall.auc_churn == pytest.approx(expected_auc, abs=1e-12)
    assert overall.account_periods >= scored

    # A rerun of the month replaces its partitions with identical rows.
    assert dag.test(logical_date=pendulum.datetime(2026, 11, 1, tz="UTC")).state == "success"
    assert mart_rows(url) == first

    report = tmp_path / "data" / "reports" / "evaluation_2026-10-31.html"
    text = report.read_text()
    assert "Forecast backtest" in text and "Health score vs outcome" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text) and "<script" not in text
    assert f"{overall.auc_churn:.3f}" in text
    browser = chromium_or_skip()
    flags = chromium_flags(tmp_path / "chromium")
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "Annual review recommendations" in dom and dom.count("<table") >= 6
