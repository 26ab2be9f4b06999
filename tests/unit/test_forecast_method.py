"""The tier-migration forecast on synthetic trajectories with answers worked out by hand."""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta
from scipy.stats import theilslopes

from postsales.forecast import evaluate_predictions, load_settings, project, theil_sen
from postsales.segment.rules import load_rules

RULES = load_rules()
BANDS = RULES.customer_value.arr_band  # SMB < 25,000 <= Mid-Market < 100,000 <= Enterprise
SETTINGS = load_settings(rules=RULES)
AS_OF = date(2026, 10, 31)


def series(account_id, arr, seats=None, users=None, months=12, active=True):
    """Points months_back 0..months; ``arr``/``seats``/``users`` map months_back -> value."""
    rows = []
    for k in range(months + 1):
        value = arr(k)
        rows.append(
            {
                "account_id": account_id,
                "months_back": k,
                "point_date": AS_OF - relativedelta(months=k),
                "arr": float(value),
                "active_contracts": int(value > 0 or (k == 0 and active)),
                "avg_licensed_seats": None if seats is None else float(seats(k)),
                "avg_active_users": None if users is None else float(users(k)),
                "usage_days": 30,
            }
        )
    if not active:
        rows[0]["active_contracts"] = 0
    return rows


def growing(base, rate):
    return lambda k: base * (1 + rate) ** (-k)


def forecast(*accounts) -> pd.DataFrame:
    frame = pd.DataFrame([row for account in accounts for row in account])
    return project(frame, SETTINGS, BANDS).set_index("account_id")


def test_theil_sen_matches_scipy():
    rng = np.random.default_rng(3)
    times = -np.arange(13, dtype=float)
    values = rng.normal(size=(6, 13)).cumsum(axis=1)
    values[1, [2, 5, 6]] = np.nan
    values[4, 0] = np.nan
    slope, intercept, points = theil_sen(times, values)
    for row in range(6):
        keep = ~np.isnan(values[row])
        expected = theilslopes(values[row, keep], times[keep], method="separate")
        assert slope[row] == pytest.approx(expected.slope, abs=1e-12)
        assert intercept[row] == pytest.approx(np.median(values[row, keep] - expected.slope * times[keep]), abs=1e-12)
        assert points[row] == keep.sum()


def test_steady_growth_crosses_the_next_tier_in_a_computable_month():
    g = math.log(1.08)
    result = forecast(
        series("SMB_FAST", growing(15_000, 0.08), growing(10, 0.08), growing(8, 0.08)),
        series("SMB_SLOW_START", growing(10_000, 0.08), growing(10, 0.08), growing(8, 0.08)),
        series("MM_FAST", growing(60_000, 0.08), growing(40, 0.08), growing(30, 0.08)),
        series("MM_FAR", growing(30_000, 0.08), growing(40, 0.08), growing(30, 0.08)),
    )
    fast = result.loc["SMB_FAST"]
    assert fast["blended_growth_monthly"] == pytest.approx(g)
    # 15,000 * 1.08^m = 25,000  =>  m = ln(5/3) / ln(1.08) = 6.637 months: inside 9.
    assert fast["months_to_next_tier"] == pytest.approx(math.log(25_000 / 15_000) / g)
    assert fast["months_to_next_tier"] == pytest.approx(6.637, abs=1e-3)
    assert fast["projected_arr_9m"] == pytest.approx(15_000 * 1.08**9)  # 29,985
    assert fast["projected_tier_6m"] == "SMB" and fast["projected_tier_9m"] == "Mid-Market"
    assert bool(fast["smb_to_mm_6_9m"]) and fast["arr_fit_r2"] == pytest.approx(1.0)
    # From 10,000: ln(2.5) / ln(1.08) = 11.9 months: beyond 9, not flagged.
    slow = result.loc["SMB_SLOW_START"]
    assert slow["months_to_next_tier"] == pytest.approx(11.906, abs=1e-3) and not slow["smb_to_mm_6_9m"]
    # Mid-Market: 60,000 -> 100,000 in ln(5/3)/ln(1.08) = 6.6 months (inside 15); 30,000 needs 15.6.
    assert bool(result.loc["MM_FAST", "mm_to_ent_12_15m"])
    assert result.loc["MM_FAR", "months_to_next_tier"] == pytest.approx(math.log(100 / 30) / g)
    assert not result.loc["MM_FAR", "mm_to_ent_12_15m"]
    explanation = json.loads(fast["explanation"])
    assert explanation["points_used"] == {"arr": 13, "seats": 13, "usage": 13}
    assert explanation["monthly_growth_pct"]["blended"] == pytest.approx(8.0)
    assert "reaches the Mid-Market minimum 25,000" in explanation["flags"]["smb_to_mm_6_9m"]


def test_flat_and_declining_series_never_flag_growth():
    result = forecast(
        series("FLAT", lambda k: 24_000, lambda k: 10, lambda k: 8),
        series("DOWN", growing(24_000, -0.03), growing(10, -0.03), growing(8, -0.03)),
        series("MM_FLAT", lambda k: 99_000, lambda k: 50, lambda k: 40),
    )
    assert not result[["smb_to_mm_6_9m", "mm_to_ent_12_15m"]].any().any()
    assert result.loc["FLAT", "blended_growth_monthly"] == 0 and pd.isna(result.loc["FLAT", "months_to_next_tier"])
    assert result.loc["DOWN", "blended_growth_monthly"] == pytest.approx(math.log(0.97), abs=5e-7)  # stored to 6 dp


def test_enterprise_decline_risk():
    result = forecast(
        # ARR and usage falling 2 %/month: exp(12 ln 0.98) = 0.785, 21.5 % down by +12 months.
        series("ENT_DOWN", growing(200_000, -0.02), growing(100, -0.02), growing(80, -0.02)),
        series("ENT_FLAT", lambda k: 200_000, lambda k: 100, lambda k: 80),
        # Flat contract, users falling 1.5 %/month: blended -0.38 %/month (4.4 % in a year, not
        # enough), but users alone: 0.985^12 = 0.834, 16.6 % down >= usage_decline 10 %.
        series("ENT_USERS", lambda k: 200_000, lambda k: 100, growing(80, -0.015)),
    )
    assert bool(result.loc["ENT_DOWN", "ent_decline_risk"]) and not result.loc["ENT_FLAT", "ent_decline_risk"]
    assert bool(result.loc["ENT_USERS", "ent_decline_risk"])
    blended = result.loc["ENT_USERS", "blended_growth_monthly"]
    assert blended == pytest.approx(0.25 * math.log(0.985), abs=5e-7)
    reason = json.loads(result.loc["ENT_USERS", "explanation"])["flags"]["ent_decline_risk"]
    assert "active users trend to -16.6%" in reason


def test_missing_signals_are_reweighted_and_growth_is_clipped():
    result = forecast(
        # No usage rows at all: ARR alone (weight 0.5 of 0.5).
        series("ARR_ONLY", growing(20_000, 0.02)),
        # 40 %/month is clipped to max_monthly_growth 0.15 (log units).
        series("ROCKET", growing(5_000, 0.40), growing(5, 0.40), growing(5, 0.40)),
    )
    arr_only = json.loads(result.loc["ARR_ONLY", "explanation"])
    assert result.loc["ARR_ONLY", "blended_growth_monthly"] == pytest.approx(math.log(1.02), abs=5e-7)
    assert arr_only["weights"] == {"arr": 0.5} and arr_only["points_used"]["seats"] == 0
    assert result.loc["ROCKET", "blended_growth_monthly"] == pytest.approx(SETTINGS.max_monthly_growth)
    assert result.loc["ROCKET", "projected_arr_6m"] == pytest.approx(5_000 * math.exp(0.15 * 6))


def test_history_status_and_customers():
    result = forecast(
        # ARR since 5 months: points 0..5 = 6 < min_history_months + 1 = 7.
        series("NEW", lambda k: 20_000 if k <= 5 else 0, lambda k: 10, lambda k: 8),
        series("SEVEN", lambda k: 20_000 if k <= 6 else 0, lambda k: 10, lambda k: 8),
        series("PILOT", lambda k: 0, lambda k: 5, lambda k: 5),  # active zero-ARR contract
        series("GONE", lambda k: 0 if k == 0 else 20_000, active=False),  # no contract today
    )
    assert set(result.index) == {"NEW", "SEVEN", "PILOT"}
    assert result.loc["NEW", "forecast_status"] == "insufficient_history" and result.loc["NEW", "arr_points"] == 6
    assert pd.isna(result.loc["NEW", "projected_tier_6m"]) and not result.loc["NEW", "smb_to_mm_6_9m"]
    assert result.loc["SEVEN", "forecast_status"] == "ok"
    assert result.loc["PILOT", "forecast_status"] == "zero_arr"


def test_backtest_scores_by_hand():
    """Four SMB forecasts made 9 months back (j = 9), one Enterprise, outcomes read at j - h."""

    def prediction(account, tier, arr, flagged_growth=False, flagged_decline=False, status="ok", projected=None):
        return {
            "account_id": account, "forecast_months_back": 9, "current_tier": tier, "arr": arr,
            "forecast_status": status, "smb_to_mm_6_9m": flagged_growth, "mm_to_ent_12_15m": False,
            "ent_decline_risk": flagged_decline,
            **{f"_projected_{h}": projected if projected is not None else arr for h in (6, 9, 12, 15)},
        }  # fmt: skip

    predictions = pd.DataFrame(
        [
            prediction("S1", "SMB", 20_000, flagged_growth=True, projected=30_000),  # reached 26,000: TP
            prediction("S2", "SMB", 20_000, flagged_growth=True, projected=30_000),  # stayed 21,000: FP
            prediction("S3", "SMB", 20_000),  # reached 40,000 unflagged: FN
            prediction("S4", "SMB", 10_000),  # stayed: TN
        ]
    )
    # Outcomes 9 months later: months_back 9 - 9 = 0 (and 3 for the 6-month tier target).
    actual = pd.DataFrame(
        [
            {"account_id": a, "months_back": k, "arr": v, "active_contracts": 1}
            for a, v in {"S1": 26_000, "S2": 21_000, "S3": 40_000, "S4": 10_000}.items()
            for k in (0, 3)
        ]
    )
    settings = SETTINGS.model_copy(update={"backtest": SETTINGS.backtest.model_copy(update={"forecast_dates": 1})})
    rows, calibration = evaluate_predictions(predictions, actual, settings, BANDS)
    by_target = {row["target"]: row for row in rows}
    smb = by_target["smb_to_mm_6_9m"]
    # TP 1, flagged 2, happened 2: precision 1/2, recall 1/2, accuracy (TP + TN) / 4 = 2/4.
    assert (smb["accounts"], smb["predicted_positive"], smb["actual_positive"], smb["true_positive"]) == (4, 2, 2, 1)
    assert (smb["precision"], smb["recall"], smb["accuracy"]) == (0.5, 0.5, 0.5)
    # No Enterprise pairs: precision and recall are undefined, not zero.
    assert by_target["ent_decline_risk"]["accounts"] == 0 and by_target["ent_decline_risk"]["precision"] is None
    # The 9-month tier: projected Mid-Market for S1, S2 and SMB for S3, S4; actual MM, SMB, MM, SMB:
    # right for S1 and S4 (2/4); "tier unchanged" (all SMB) is right for S2 and S4 (2/4).
    tier9 = by_target["tier_9m"]
    assert (tier9["accuracy"], tier9["baseline_accuracy"]) == (0.5, 0.5)
    nine = {(c["projected_tier"], c["actual_tier"]): c["accounts"] for c in calibration if c["horizon_months"] == 9}
    assert nine == {("Mid-Market", "Mid-Market"): 1, ("Mid-Market", "SMB"): 1, ("SMB", "Mid-Market"): 1,
                    ("SMB", "SMB"): 1}  # fmt: skip
    # Forecasts made 9 months back cannot score the 12- and 15-month targets.
    assert by_target["tier_12m"]["accounts"] == 0 and by_target["tier_15m"]["forecast_dates"] == 0


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("smb_to_mm_6_9m: {from_tier: Small, to_tier: Mid-Market, within_months: 9}", "flags.smb_to_mm_6_9m.from_tier"),
        ("smb_to_mm_6_9m: {from_tier: Mid-Market, to_tier: SMB, within_months: 9}", "flags.smb_to_mm_6_9m"),
    ],
)
def test_bad_tier_names_the_file_and_field(tmp_path, yaml_text, field):
    from postsales.config import ConfigError

    text = (SETTINGS_PATH := __import__("postsales.paths").paths.rules_dir() / "forecast.yaml").read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith("smb_to_mm_6_9m:"))
    bad = tmp_path / "forecast.yaml"
    bad.write_text(text.replace(line.strip(), yaml_text))
    with pytest.raises(ConfigError, match=rf"{bad}: field '{field}'"):
        load_settings(bad, RULES)
    assert SETTINGS_PATH.exists()


def test_weights_must_sum_to_one(tmp_path):
    from postsales.config import ConfigError
    from postsales.paths import rules_dir

    bad = tmp_path / "forecast.yaml"
    bad.write_text((rules_dir() / "forecast.yaml").read_text().replace("arr: 0.5", "arr: 0.6"))
    with pytest.raises(ConfigError, match=r"field 'growth_weights': .*sum to 1"):
        load_settings(bad, RULES)
