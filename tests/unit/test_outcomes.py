"""Health vs outcome (plugins/postsales/outcomes.py) on hand-built frames.

AUC against scikit-learn, outcomes of (account, start date) pairs, the per-band summary
and the settings checks of include/rules/review.yaml. Every expectation is worked out by
hand in the comments.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from postsales.config import ConfigError
from postsales.outcomes import ALL_BANDS, auc, load_settings, outcome_frame, summarise

RULES = Path(__file__).resolve().parents[2] / "include" / "rules"

# --- auc -------------------------------------------------------------------------------


def test_auc_by_hand_two_positives_three_negatives():
    # positives score 0.9 and 0.4; negatives 0.8, 0.4, 0.1.
    # 0.9 beats 0.8, 0.4, 0.1          -> 3
    # 0.4 loses to 0.8, ties 0.4 (1/2), beats 0.1 -> 1.5
    # 4.5 of 2 * 3 = 6 pairs           -> 0.75
    assert auc([0.9, 0.4, 0.8, 0.4, 0.1], [True, True, False, False, False]) == pytest.approx(0.75, abs=1e-15)
    # perfect, reversed and all-tied rankings
    assert auc([3, 4, 1, 2], [1, 1, 0, 0]) == 1.0
    assert auc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0
    assert auc([5, 5, 5, 5], [1, 0, 1, 0]) == 0.5


def test_auc_equals_sklearn_on_fixed_data_with_ties():
    scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.1, 0.9, 0.35, 0.6, 0.6]
    labels = [0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1]
    expected = roc_auc_score(labels, scores)
    assert auc(scores, labels) == pytest.approx(expected, abs=1e-12)
    # pandas Series and negated health scores, as evaluate_health passes them
    health = pd.Series([100 * s for s in scores])
    negated = auc(-health, pd.Series(labels).astype(bool))
    assert negated == pytest.approx(roc_auc_score(labels, -health), abs=1e-12)
    assert negated == pytest.approx(1 - expected, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 42])
def test_auc_equals_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    labels = rng.random(n) < rng.uniform(0.1, 0.6)
    labels[:2] = [True, False]  # both classes present
    continuous = rng.normal(size=n) + labels * rng.uniform(0, 1.5)
    rounded = np.round(continuous * 2) / 2  # many ties
    for scores in (continuous, rounded, -rounded):
        assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_is_none_when_a_class_is_empty():
    assert auc([0.1, 0.2, 0.3], [False, False, False]) is None
    assert auc([0.1, 0.2, 0.3], [True, True, True]) is None
    assert auc([], []) is None


# --- outcome_frame -------------------------------------------------------------------------

AS_OF = date(2024, 5, 31)
HORIZON = 3
# start 3 months back: S = 2024-02-29, outcome at months_back 0 (2024-05-31)
# start 4 months back: S = 2024-01-31, outcome at months_back 1 (2024-04-30)
S3, E3 = date(2024, 2, 29), date(2024, 5, 31)
S4, E4 = date(2024, 1, 31), date(2024, 4, 30)


def _starts(pairs: list[tuple[str, int]]) -> pd.DataFrame:
    dates = {3: (S3, E3), 4: (S4, E4)}
    return pd.DataFrame(
        [
            {
                "account_id": account_id,
                "start_months_back": j,
                "start_date": dates[j][0],
                "end_date": dates[j][1],
                "health_score": 50.0,
                "health_band": "Needs attention",
                "rules_version": "v1",
            }
            for account_id, j in pairs
        ]
    )


def _actual(points: dict[str, dict[int, tuple[float, int]]]) -> pd.DataFrame:
    """{account: {months_back: (arr, active_contracts)}}"""
    return pd.DataFrame(
        [
            {"account_id": account_id, "months_back": j, "arr": arr, "active_contracts": active}
            for account_id, by_month in points.items()
            for j, (arr, active) in by_month.items()
        ]
    )


def _contracts(rows: list[tuple[str, str, date, date | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "account_id": account_id,
                "contract_id": contract_id,
                "start_date_contract": start,
                "end_date_contract": end,
                "arr_contract": 1.0,
            }
            for contract_id, account_id, start, end in rows
        ],
        columns=["account_id", "contract_id", "start_date_contract", "end_date_contract", "arr_contract"],
    )


def test_outcome_frame_by_hand():
    pairs = [
        ("flat", 3),
        ("churn", 3),
        ("churn", 4),
        ("down", 3),
        ("up", 3),
        ("last_day", 3),
        ("day_after", 3),
        ("on_start", 3),
        ("late_start", 3),
        ("tiny", 3),
        ("gone", 3),
    ]
    actual = _actual(
        {
            "flat": {3: (10_000, 1), 0: (10_000, 1)},
            # still active on 2024-04-30, nothing left on 2024-05-31
            "churn": {4: (10_000, 1), 3: (10_000, 1), 1: (10_000, 1), 0: (0, 0)},
            "down": {3: (20_000, 1), 0: (15_000, 1)},
            "up": {3: (10_000, 1), 0: (12_000, 2)},
            "last_day": {3: (8_000, 1), 0: (8_000, 1)},
            "day_after": {3: (8_000, 1), 0: (8_000, 1)},
            "on_start": {3: (5_000, 2), 0: (3_000, 1)},
            "late_start": {3: (5_000, 1), 0: (5_000, 1)},
            # within half a cent: neither contracted nor expanded
            "tiny": {3: (10_000.004, 1), 0: (10_000, 1)},
            # no trajectory point at the end at all: no active contract, churned
            "gone": {3: (7_000, 1)},
        }
    )
    contracts = _contracts(
        [
            ("flat-1", "flat", date(2023, 1, 1), None),  # evergreen: never due
            ("churn-1", "churn", date(2023, 5, 16), date(2024, 5, 15)),  # in (S3, E3], after E4
            ("down-1", "down", date(2023, 4, 1), date(2024, 3, 31)),  # due, renewed smaller
            ("down-2", "down", date(2024, 4, 1), date(2025, 3, 31)),  # starts after S: not the one due
            ("up-1", "up", date(2023, 1, 1), None),
            ("up-2", "up", date(2024, 3, 1), None),
            ("last_day-1", "last_day", date(2023, 6, 1), date(2024, 5, 31)),  # ends on E3: due
            ("day_after-1", "day_after", date(2023, 6, 2), date(2024, 6, 1)),  # ends the day after E3: not due
            ("on_start-1", "on_start", date(2023, 3, 1), date(2024, 2, 29)),  # ends on S itself: not in (S, E]
            ("on_start-2", "on_start", date(2023, 3, 1), None),
            ("late_start-1", "late_start", date(2023, 1, 1), None),
            ("late_start-2", "late_start", date(2024, 3, 15), date(2024, 5, 15)),  # not active on S
            ("tiny-1", "tiny", date(2023, 1, 1), None),
            ("gone-1", "gone", date(2023, 1, 1), date(2024, 3, 31)),  # due, gone: churned, not renewed
        ]
    )
    frame = outcome_frame(_starts(pairs), actual, contracts, HORIZON)
    got = {
        (row.account_id, row.start_months_back): (
            bool(row.churned),
            bool(row.contracted),
            bool(row.expanded),
            bool(row.renewal_due),
            bool(row.renewed),
        )
        for row in frame.itertuples()
    }
    #            churned contracted expanded renewal_due renewed
    expected = {
        ("flat", 3): (False, False, False, False, False),
        ("churn", 3): (True, False, False, True, False),  # churned: not renewed
        ("churn", 4): (False, False, False, False, False),  # 2024-05-15 is after 2024-04-30
        ("down", 3): (False, True, False, True, True),
        ("up", 3): (False, False, True, False, False),
        ("last_day", 3): (False, False, False, True, True),
        ("day_after", 3): (False, False, False, False, False),
        ("on_start", 3): (False, True, False, False, False),
        ("late_start", 3): (False, False, False, False, False),
        ("tiny", 3): (False, False, False, False, False),
        ("gone", 3): (True, False, False, True, False),
    }
    assert got == expected
    arr = {(row.account_id, row.start_months_back): (row.arr_start, row.arr_end) for row in frame.itertuples()}
    assert arr[("down", 3)] == (20_000, 15_000)
    assert arr[("churn", 4)] == (10_000, 10_000)  # read at months_back 4 and 1
    assert arr[("gone", 3)] == (7_000, 0)
    # the input columns are kept, one row per pair, in order
    assert list(zip(frame["account_id"], frame["start_months_back"], strict=True)) == pairs
    assert frame["health_score"].tolist() == [50.0] * len(pairs)


def test_outcome_frame_without_contracts_or_starts():
    actual = _actual({"x": {3: (1_000, 1), 0: (1_000, 1)}})
    frame = outcome_frame(_starts([("x", 3)]), actual, _contracts([]), HORIZON)
    assert frame[["churned", "renewal_due", "renewed"]].to_numpy().tolist() == [[False, False, False]]
    # no pairs at all (as evaluate_health builds them from an empty query result)
    starts = pd.DataFrame([], columns=list(_starts([("x", 3)]).columns))
    starts["start_months_back"] = starts["start_months_back"].astype(int)
    contracts = _contracts([("x-1", "x", date(2023, 1, 1), date(2024, 4, 30))])
    empty = outcome_frame(starts, actual, contracts, HORIZON)
    assert len(empty) == 0
    assert {"churned", "contracted", "expanded", "renewal_due", "renewed"} <= set(empty.columns)
    assert (
        summarise(empty.assign(health_score=empty["health_score"].astype(float)), HORIZON, BANDS)[0]["account_periods"]
        == 0
    )


# --- summarise ------------------------------------------------------------------------------

BANDS = ["At risk", "Needs attention", "Healthy", "Unknown"]


def _pairs() -> pd.DataFrame:
    d1, d2 = date(2024, 1, 31), date(2024, 2, 29)
    rows = [
        # score, band, churned, contracted, expanded, due, renewed, start, rules
        (10.0, "At risk", True, False, False, True, False, d1, "v1"),
        (20.0, "At risk", True, False, False, False, False, d2, "v1"),
        (30.0, "At risk", False, True, False, True, True, d1, "v1"),
        (45.0, "Needs attention", True, False, False, True, False, d2, "v2"),
        (45.0, "Needs attention", False, False, False, False, False, d1, "v1"),
        (60.0, "Needs attention", False, False, False, True, True, d2, "v2"),
        (75.0, "Healthy", False, False, True, False, False, d1, "v1"),
        (80.0, "Healthy", False, True, False, False, False, d2, "v2"),
        (90.0, "Healthy", False, False, True, True, True, d2, "v2"),
        (math.nan, "Unknown", True, False, False, True, False, d1, "v1"),
    ]
    columns = ["health_score", "health_band", "churned", "contracted", "expanded", "renewal_due", "renewed"]
    frame = pd.DataFrame(rows, columns=[*columns, "start_date", "rules_version"])
    frame.insert(0, "account_id", [f"a{i}" for i in range(len(rows))])
    return frame


def test_summarise_by_hand():
    rows = summarise(_pairs(), 3, BANDS)
    assert [row["health_band"] for row in rows] == [ALL_BANDS, *BANDS]
    by_band = {row["health_band"]: row for row in rows}
    every = by_band[ALL_BANDS]
    assert {k: every[k] for k in ("horizon_months", "account_periods", "churned", "contracted", "expanded")} == {
        "horizon_months": 3,
        "account_periods": 10,
        "churned": 4,
        "contracted": 2,
        "expanded": 2,
    }
    assert (every["renewal_due"], every["renewed"]) == (6, 3)
    assert every["churn_rate"] == pytest.approx(0.4)
    assert every["contraction_rate"] == pytest.approx(0.2)
    assert every["expansion_rate"] == pytest.approx(0.2)
    assert every["renewal_rate"] == pytest.approx(0.5)
    assert every["churn_lift"] is None
    assert (every["start_dates"], every["first_start_date"], every["last_start_date"]) == (
        2,
        date(2024, 1, 31),
        date(2024, 2, 29),
    )
    assert every["rules_versions"] == "v1,v2"

    # AUC on the 9 scored pairs (the Unknown pair has no score), of -health:
    # churn: positives 10, 20, 45; negatives 30, 45, 60, 75, 80, 90 (18 pairs)
    #   10 -> 6, 20 -> 6, 45 -> 4 below + 1/2 tie = 4.5      => 16.5 / 18
    assert every["auc_churn"] == pytest.approx(16.5 / 18, abs=1e-12)
    # churn or contraction: positives 10, 20, 30, 45, 80; negatives 45, 60, 75, 90 (20 pairs)
    #   10 -> 4, 20 -> 4, 30 -> 4, 45 -> 3 + 1/2, 80 -> 1     => 16.5 / 20
    assert every["auc_churn_or_contraction"] == pytest.approx(16.5 / 20, abs=1e-12)
    # non-renewal among the scored pairs with a renewal due: 10, 30, 45, 60, 90;
    # positives (not renewed) 10, 45; negatives 30, 60, 90: 10 -> 3, 45 -> 2  => 5 / 6
    assert every["auc_non_renewal"] == pytest.approx(5 / 6, abs=1e-12)

    # bands: churn rate / 0.4 overall; AUC only on the All row
    expected = {
        "At risk": (3, 2, 2 / 3, (2 / 3) / 0.4, 2, 1),
        "Needs attention": (3, 1, 1 / 3, (1 / 3) / 0.4, 2, 1),
        "Healthy": (3, 0, 0.0, 0.0, 1, 1),
        "Unknown": (1, 1, 1.0, 2.5, 1, 0),
    }
    for band, (periods, churned, rate, lift, due, renewed) in expected.items():
        row = by_band[band]
        assert (row["account_periods"], row["churned"], row["renewal_due"], row["renewed"]) == (
            periods,
            churned,
            due,
            renewed,
        ), band
        assert row["churn_rate"] == pytest.approx(rate), band
        assert row["churn_lift"] == pytest.approx(lift), band
        assert row["renewal_rate"] == pytest.approx(renewed / due), band
        assert (row["auc_churn"], row["auc_churn_or_contraction"], row["auc_non_renewal"]) == (None, None, None)
    assert by_band["At risk"]["churn_lift"] == pytest.approx(5 / 3)
    assert by_band["Needs attention"]["rules_versions"] == "v1,v2"
    assert by_band["At risk"]["rules_versions"] == "v1"
    assert by_band["Healthy"]["start_dates"] == 2
    # the AUC agrees with scikit-learn on the same pairs
    scored = _pairs().dropna(subset=["health_score"])
    assert every["auc_churn"] == pytest.approx(roc_auc_score(scored["churned"], -scored["health_score"]))


def test_summarise_skips_empty_bands_and_handles_no_churn():
    frame = _pairs()
    frame = frame[frame["health_band"] == "Healthy"].copy()
    rows = summarise(frame, 6, BANDS)
    assert [row["health_band"] for row in rows] == [ALL_BANDS, "Healthy"]
    every, healthy = rows
    assert every["churn_rate"] == 0.0
    assert every["auc_churn"] is None  # nobody churned
    assert healthy["churn_lift"] is None  # no lift against a zero overall rate
    assert every["horizon_months"] == healthy["horizon_months"] == 6

    rows = summarise(frame.iloc[0:0], 3, BANDS)
    assert len(rows) == 1
    assert rows[0]["account_periods"] == 0
    assert rows[0]["churn_rate"] is None and rows[0]["renewal_rate"] is None
    assert rows[0]["first_start_date"] is None and rows[0]["rules_versions"] == ""


# --- settings -------------------------------------------------------------------------------


def write_review(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((RULES / "review.yaml").read_text())
    mutate(data)
    path = tmp_path / "review.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_shipped_review_settings_load():
    settings = load_settings()
    assert settings.health_outcomes.horizons == [3, 6, 12]
    assert settings.review.signal_horizon_months in settings.health_outcomes.horizons
    assert list(settings.review.value_tiers.target_shares) == ["SMB", "Mid-Market", "Enterprise"]


@pytest.mark.parametrize(
    "shares",
    [
        {"SMB": 0.6, "Mid": 0.3, "Enterprise": 0.1},  # a label that is no tier
        {"SMB": 0.7, "Mid-Market": 0.3},  # a tier missing
        {"Enterprise": 0.1, "Mid-Market": 0.3, "SMB": 0.6},  # out of order
    ],
)
def test_target_shares_must_match_the_tiers(tmp_path, shares):
    path = write_review(tmp_path, lambda d: d["review"]["value_tiers"].update(target_shares=shares))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "field 'review.value_tiers.target_shares'" in message
    assert "['SMB', 'Mid-Market', 'Enterprise']" in message


@pytest.mark.parametrize(
    "shares", [{"SMB": 0.6, "Mid-Market": 0.3, "Enterprise": 0.2}, {"SMB": 0.5, "Mid-Market": 0.3}]
)
def test_target_shares_must_sum_to_one(tmp_path, shares):
    path = write_review(tmp_path, lambda d: d["review"]["value_tiers"].update(target_shares=shares))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "field 'review.value_tiers'" in message
    assert "must sum to 1" in message


def test_a_share_of_zero_is_rejected(tmp_path):
    shares = {"SMB": 0.7, "Mid-Market": 0.3, "Enterprise": 0.0}
    path = write_review(tmp_path, lambda d: d["review"]["value_tiers"].update(target_shares=shares))
    with pytest.raises(ConfigError, match=r"field 'review\.value_tiers'.*above 0"):
        load_settings(path)


def test_signal_horizon_must_be_a_horizon(tmp_path):
    path = write_review(tmp_path, lambda d: d["review"].update(signal_horizon_months=9))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "field 'review.signal_horizon_months'" in message
    assert "9 is not one of health_outcomes.horizons [3, 6, 12]" in message


def test_horizons_must_ascend(tmp_path):
    path = write_review(tmp_path, lambda d: d["health_outcomes"].update(horizons=[6, 3]))
    with pytest.raises(ConfigError, match=r"field 'health_outcomes'.*ascending"):
        load_settings(path)


def test_unknown_review_field_is_rejected(tmp_path):
    path = write_review(tmp_path, lambda d: d["review"].update(weight_shrinkge=0.4))
    with pytest.raises(ConfigError, match=r"field 'review\.weight_shrinkge'"):
        load_settings(path)
