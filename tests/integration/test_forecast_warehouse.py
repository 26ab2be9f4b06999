"""The forecast through the real trajectory SQL on DuckDB and PostgreSQL: monthly contracts growing
8 %/month, point in time (future rows change nothing), and the backtest on a tiny history."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from postsales import warehouse
from postsales.forecast import compute_forecast, load_settings, run_backtest
from segment_fixtures import account, contract, load_staging, usage

AS_OF = date(2026, 6, 30)


def monthly_contracts(account_id: str, first: date, months: int, arr0: float, rate: float) -> list[dict]:
    """One calendar-month contract per month from ``first``, ARR growing by ``rate`` a month."""
    rows = []
    for i in range(months):
        start = first + relativedelta(months=i)
        end = start + relativedelta(months=1) - timedelta(days=1)
        rows.append(contract(f"{account_id}-{i:02d}", account_id, start, end, arr0 * (1 + rate) ** i))
    return rows


def daily_usage(account_id: str, first: date, last: date, seats0: float, rate: float) -> list[dict]:
    rows, day = [], first
    while day <= last:
        months = (day.year - first.year) * 12 + day.month - first.month
        seats = round(seats0 * (1 + rate) ** months)
        rows.append(usage(account_id, day, active=seats, seats=seats))
        day += timedelta(days=1)
    return rows


def history(url: str) -> None:
    start = date(2025, 1, 1)
    load_staging(
        url,
        accounts=[account("GROW"), account("FLAT")],
        # GROW: 10,000 in January 2025, +8 %/month; June 2026 is month 17: 10,000 * 1.08^17 = 37,000.
        contracts=monthly_contracts("GROW", start, 24, 10_000, 0.08) + monthly_contracts("FLAT", start, 24, 20_000, 0),
        usage_rows=daily_usage("FLAT", start, date(2026, 6, 30), 20, 0),
    )


def forecasts(url: str, as_of: date) -> pd.DataFrame:
    with warehouse.engine(url).connect() as conn:
        frame = pd.read_sql(
            sa.text("select * from mart.account_forecasts where as_of_date = :d order by account_id"),
            conn,
            params={"d": as_of},
        )
    return frame.drop(columns=["computed_at"]).set_index("account_id")


def test_growth_through_sql(warehouse_url):
    history(warehouse_url)
    summary = compute_forecast(AS_OF)
    assert summary["accounts"] == 2 and summary["flags"]["mm_to_ent_12_15m"] == 1
    result = forecasts(warehouse_url, AS_OF)
    grow = result.loc["GROW"]
    arr_now = 10_000 * 1.08**17
    assert grow["arr"] == pytest.approx(arr_now) and grow["current_tier"] == "Mid-Market"
    assert grow["arr_points"] == 13  # June 2025 .. June 2026, all positive
    # No usage rows for GROW: ARR alone, exactly 8 %/month on the month-ends.
    assert grow["blended_growth_monthly"] == pytest.approx(math.log(1.08), abs=5e-7)
    assert grow["months_to_next_tier"] == pytest.approx(math.log(100_000 / arr_now) / math.log(1.08), rel=1e-5)
    assert grow["projected_arr_12m"] == pytest.approx(arr_now * 1.08**12, rel=1e-5)
    assert bool(grow["mm_to_ent_12_15m"]) and grow["projected_tier_15m"] == "Enterprise"
    flat = result.loc["FLAT"]
    assert flat["blended_growth_monthly"] == 0 and not flat[["smb_to_mm_6_9m", "mm_to_ent_12_15m"]].any()
    # Rerun: same partition, same rows.
    compute_forecast(AS_OF)
    assert forecasts(warehouse_url, AS_OF).equals(result)


def test_accounts_forecast_a_chunk_at_a_time_give_the_same_rows_and_summary(warehouse_url, monkeypatch):
    from postsales import forecast

    history(warehouse_url)
    whole = compute_forecast(AS_OF)
    expected = forecasts(warehouse_url, AS_OF)
    monkeypatch.setattr(forecast, "ACCOUNTS_PER_CHUNK", 1)  # GROW and FLAT each on their own
    assert compute_forecast(AS_OF) == whole
    assert forecasts(warehouse_url, AS_OF).equals(expected) and len(expected) == 2


def test_future_rows_never_change_a_past_forecast(warehouse_url):
    history(warehouse_url)
    past = date(2026, 3, 31)
    compute_forecast(past)
    before = forecasts(warehouse_url, past)
    load_staging(
        warehouse_url,
        accounts=[
            # Created after the as-of date; a later version backdates its creation.
            account("LATE", created_at=datetime(2026, 4, 15), updated_at=datetime(2026, 4, 15)),
            account("LATE", created_at=datetime(2025, 1, 1), updated_at=datetime(2026, 5, 1)),
        ],
        contracts=[
            # Signed after the as-of date: not known then. (An account's own row plays no part: the
            # contracts known at the date define the accounts, as for segments and cohorts.)
            contract("LATE-1", "LATE", date(2026, 4, 15), None, 30_000),
            contract("GROW-late", "GROW", date(2026, 4, 1), None, 500_000),  # starts after the as-of date
            # A later version of a contract the past already knew, written after the as-of date.
            contract("FLAT-14", "FLAT", date(2026, 3, 1), date(2026, 3, 31), 90_000, updated_at=datetime(2026, 5, 1)),
        ],
        usage_rows=[usage("FLAT", date(2026, 4, 1) + timedelta(days=i), 1, 500) for i in range(30)],
        loaded_at=datetime(2026, 5, 2),
        run_id="later",
    )
    compute_forecast(past)
    assert forecasts(warehouse_url, past).equals(before)


def test_backtest_on_a_tiny_history(warehouse_url):
    """One account 8 %/month from 10,000 (Jan 2025) and one flat at 20,000, evaluated on 2026-06-30.

    With forecast_dates 1, each target is forecast once, h months before the evaluation date:
    - smb_to_mm_6_9m (h 9, forecast 2025-09-30): GROW had 10,000 * 1.08^8 = 18,509 (SMB), 9 points
      (Sep 2024 .. Sep 2025, positive from Jan 2025) >= 7: projected 18,509 * 1.08^9 = 37,000 -> flagged;
      9 months later it had 37,000 (Mid-Market): TP. FLAT (20,000, SMB, flat) not flagged, stayed: TN.
    - mm_to_ent_12_15m (h 15, forecast 2025-03-31): GROW had 3 months of ARR (< 7): not projected,
      not flagged; 15 months later it had 37,000 (still Mid-Market? it was SMB then): no pair in MM.
    """
    history(warehouse_url)
    settings = load_settings()
    settings = settings.model_copy(update={"backtest": settings.backtest.model_copy(update={"forecast_dates": 1})})
    run_backtest(AS_OF, settings=settings)
    with warehouse.engine(warehouse_url).connect() as conn:
        rows = {r.target: r for r in conn.execute(sa.text("select * from mart.forecast_backtest"))}
    smb = rows["smb_to_mm_6_9m"]
    assert (smb.accounts, smb.predicted_positive, smb.actual_positive, smb.true_positive) == (2, 1, 1, 1)
    assert (smb.precision, smb.recall, smb.accuracy) == (1.0, 1.0, 1.0)
    assert smb.first_forecast_date == smb.last_forecast_date == date(2025, 9, 30)
    assert rows["mm_to_ent_12_15m"].accounts == 0 and rows["mm_to_ent_12_15m"].precision is None
    # tier_6m, forecast 2025-12-31: GROW 10,000 * 1.08^11 = 23,316 (SMB) projected 23,316 * 1.08^6 = 37,000
    # (Mid-Market), reached 37,000: right; FLAT SMB -> SMB: right. Baseline: GROW wrong, FLAT right.
    tier6 = rows["tier_6m"]
    assert (tier6.accounts, tier6.accuracy, tier6.baseline_accuracy) == (2, 1.0, 0.5)
    run_backtest(AS_OF, settings=settings)  # rerun replaces the partition
    with warehouse.engine(warehouse_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from mart.forecast_backtest")).scalar_one() == len(rows)


def test_usage_windows_of_the_trajectory(warehouse_url):
    """Averages over the usage_days days ending on each point date, checked day by day in Python.
    As of 31 March the 28 February window (30 Jan .. 28 Feb) overlaps the 31 January one
    (2 Jan .. 31 Jan): 30 and 31 January count in both."""
    first, last = date(2025, 12, 1), date(2026, 3, 31)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    skipped = date(2026, 3, 15)  # a missing day: 29 days in the March window
    rows = [usage("USE", day, active=day.toordinal() % 97, seats=day.day) for day in days if day != skipped]
    load_staging(
        warehouse_url,
        accounts=[account("USE")],
        contracts=[contract("USE-1", "USE", first, None, 12_000)],
        usage_rows=rows,
    )
    from postsales.forecast import trajectories

    with warehouse.engine(warehouse_url).connect() as conn:
        frame = trajectories(conn, date(2026, 3, 31), 3, 30).set_index("months_back").sort_index()
    points = {0: date(2026, 3, 31), 1: date(2026, 2, 28), 2: date(2026, 1, 31), 3: date(2025, 12, 31)}
    assert list(frame.index) == [0, 1, 2, 3]
    for months_back, point in points.items():
        window = [day for day in days if point - timedelta(days=29) <= day <= point and day != skipped]
        expected_active = sum(day.toordinal() % 97 for day in window) / len(window)
        expected_seats = sum(day.day for day in window) / len(window)
        row = frame.loc[months_back]
        assert row["usage_days"] == len(window), months_back
        assert row["avg_active_users"] == pytest.approx(expected_active), months_back
        assert row["avg_licensed_seats"] == pytest.approx(expected_seats), months_back
        assert row["arr"] == 12_000 and row["active_contracts"] == 1
    assert frame.loc[0, "usage_days"] == 29 and frame.loc[1, "usage_days"] == 30
