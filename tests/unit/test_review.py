"""Annual review recommendations (plugins/postsales/review.py) on hand-made inputs.

Value-tier minimums at quantiles of ARR, the migration they cause, health weights moved
towards each component's signal, and the health score recomputed from component scores.
Every expectation is worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from postsales.outcomes import load_settings
from postsales.review import (
    rescore,
    review_health_weights,
    review_value_tiers,
    suggest_tier_minimums,
    suggest_weights,
    with_minimums,
)
from postsales.segment.rules import load_rules

SHARES = {"SMB": 0.6, "Mid-Market": 0.3, "Enterprise": 0.1}
WEIGHTS = {"usage": 0.30, "adoption_trend": 0.15, "nps": 0.25, "csat": 0.15, "contract_trend": 0.15}


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def settings(rules):
    return load_settings(rules=rules)


# --- value-tier minimums -------------------------------------------------------------------


def test_suggest_tier_minimums_by_hand():
    arr = [24_000, 3_000, 90_000, 9_000, 20_000, 50_000, 12_000, 80_000, 6_000, 15_000]
    # sorted: 3k 6k 9k 12k 15k 20k 24k 50k 80k 90k (indices 0..9)
    # Mid-Market at 0.6: lower quantile = sorted[floor(0.6 * 9)] = sorted[5] = 20k
    # Enterprise at 0.9: sorted[floor(0.9 * 9)] = sorted[8] = 80k
    assert suggest_tier_minimums(arr, SHARES, 5_000) == {"Mid-Market": 20_000, "Enterprise": 80_000}


def test_suggest_tier_minimums_rounds_to_the_nearest_step():
    arr = [1_000, 2_000, 3_000, 4_000, 5_000, 21_800, 30_000, 40_000, 50_000, 123_400]
    # 0.6 -> sorted[5] = 21,800 -> 20,000 (nearer than 25,000)
    # 0.9 -> sorted[8] = 50,000 -> 50,000
    assert suggest_tier_minimums(arr, SHARES, 5_000) == {"Mid-Market": 20_000, "Enterprise": 50_000}
    arr[5] = 23_000  # -> 25,000 (nearer than 20,000)
    arr[8] = 47_600  # -> 50,000
    assert suggest_tier_minimums(arr, SHARES, 5_000) == {"Mid-Market": 25_000, "Enterprise": 50_000}
    # a round_to of 1,000: 23,000 and 47,600 -> 48,000
    assert suggest_tier_minimums(arr, SHARES, 1_000) == {"Mid-Market": 23_000, "Enterprise": 48_000}


def test_suggest_tier_minimums_at_least_one_step_and_strictly_rising():
    # every ARR the same small value: both quantiles are 1,000, which rounds to 0:
    # Mid-Market at least one step (5,000), Enterprise one step above it (10,000)
    assert suggest_tier_minimums([1_000] * 20, SHARES, 5_000) == {"Mid-Market": 5_000, "Enterprise": 10_000}
    # both quantiles equal and large: the second is pushed one step up
    assert suggest_tier_minimums([60_000] * 9 + [1_000], SHARES, 5_000) == {
        "Mid-Market": 60_000,
        "Enterprise": 65_000,
    }
    # no customers at all
    assert suggest_tier_minimums([], SHARES, 5_000) == {"Mid-Market": 5_000, "Enterprise": 10_000}


def test_suggest_tier_minimums_cumulative_share_is_exact():
    # 31 customers at 5k, 10k, ..., 155k. The cumulative share of SMB + Mid-Market is 0.9
    # (0.6 + 0.3, which is 0.8999999999999999 in floating point): the lower quantile is
    # sorted[floor(0.9 * 30)] = sorted[27] = 140k, not sorted[26] = 135k.
    arr = [5_000.0 * (i + 1) for i in range(31)]
    # 0.6 -> sorted[18] = 95k
    assert suggest_tier_minimums(arr, SHARES, 5_000) == {"Mid-Market": 95_000, "Enterprise": 140_000}
    # 91 customers with a share of 0.7: sorted[floor(0.7 * 90)] = sorted[63]
    arr = [5_000.0 * (i + 1) for i in range(91)]
    assert suggest_tier_minimums(arr, {"Low": 0.7, "High": 0.3}, 5_000) == {"High": 320_000}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_suggest_tier_minimums_is_monotonic_on_random_arr(seed):
    rng = np.random.default_rng(seed)
    arr = rng.lognormal(mean=10, sigma=1.2, size=int(rng.integers(5, 400)))
    shares = {"A": 0.5, "B": 0.25, "C": 0.15, "D": 0.1}
    minimums = suggest_tier_minimums(arr, shares, 5_000)
    assert list(minimums) == ["B", "C", "D"]
    values = list(minimums.values())
    assert values[0] >= 5_000
    assert all(b >= a + 5_000 for a, b in itertools.pairwise(values))
    assert all(v % 5_000 == 0 for v in values)
    # each is the lower quantile rounded (unless pushed up by the rules above)
    ordered = np.sort(arr)
    cumulative = [0.5, 0.75, 0.9]
    previous = 0.0
    for value, share in zip(values, cumulative, strict=True):
        quantile = ordered[math.floor(share * (len(ordered) - 1) + 1e-9)]
        assert value == max(5_000, round(quantile / 5_000) * 5_000, previous + 5_000)
        previous = value


def test_with_minimums_keeps_bands_contiguous(rules):
    bands = rules.customer_value.arr_band
    moved = with_minimums(bands, {"Mid-Market": 20_000, "Enterprise": 80_000})
    assert [(b.label, b.min, b.max) for b in moved.bands] == [
        ("SMB", None, 20_000),
        ("Mid-Market", 20_000, 80_000),
        ("Enterprise", 80_000, None),
    ]
    assert (moved.feature, moved.missing_label) == (bands.feature, bands.missing_label)
    # the original is untouched
    assert [(b.min, b.max) for b in bands.bands] == [(None, 25_000), (25_000, 100_000), (100_000, None)]
    # moving one boundary up keeps the others
    up = with_minimums(bands, {"Enterprise": 150_000})
    assert [(b.min, b.max) for b in up.bands] == [(None, 25_000), (25_000, 150_000), (150_000, None)]
    for new in (moved, up):
        for left, right in itertools.pairwise(new.bands):
            assert left.max == right.min


def test_review_value_tiers_by_hand(rules, settings):
    customers = pd.DataFrame(
        {
            "account_id": list("abcdefghijk"),
            "arr": [24_000, 3_000, 90_000, 9_000, 20_000, None, 50_000, 12_000, 80_000, 6_000, 15_000],
        }
    )
    recommendations, matrix = review_value_tiers(customers, rules, settings)
    # 10 customers with an ARR (f has none): suggested Mid-Market 20k, Enterprise 80k (as above).
    # Mid-Market minimum 25k -> 20k moves [20k, 25k): 20k and 24k       -> 2 accounts
    # Enterprise minimum 100k -> 80k moves [80k, 100k): 80k and 90k     -> 2 accounts
    by_item = {row["item"]: row for row in recommendations}
    assert list(by_item) == ["Mid-Market minimum ARR", "Enterprise minimum ARR"]
    mid, ent = by_item["Mid-Market minimum ARR"], by_item["Enterprise minimum ARR"]
    assert (mid["current_value"], mid["suggested_value"], mid["accounts_moved"]) == (25_000, 20_000, 2)
    assert (ent["current_value"], ent["suggested_value"], ent["accounts_moved"]) == (100_000, 80_000, 2)
    assert {row["area"] for row in recommendations} == {"value_tier_boundary"}
    # Mid-Market now 50k, 80k, 90k (30%); with the suggestion 20k, 24k, 50k (30%)
    assert mid["basis"].startswith("Mid-Market holds 30% of 10 customers now; target 30%, 30% with")
    # Enterprise now nobody; with the suggestion 80k, 90k (20%)
    assert ent["basis"].startswith("Enterprise holds 0% of 10 customers now; target 10%, 20% with")
    # old -> new: SMB 3k 6k 9k 12k 15k stay, 20k 24k -> Mid-Market; 50k stays Mid-Market;
    # 80k 90k Mid-Market -> Enterprise
    assert matrix == [
        {"area": "value_tier", "from_label": "Mid-Market", "to_label": "Enterprise", "accounts": 2},
        {"area": "value_tier", "from_label": "Mid-Market", "to_label": "Mid-Market", "accounts": 1},
        {"area": "value_tier", "from_label": "SMB", "to_label": "Mid-Market", "accounts": 2},
        {"area": "value_tier", "from_label": "SMB", "to_label": "SMB", "accounts": 5},
    ]
    assert sum(row["accounts"] for row in matrix) == 10


def test_review_value_tiers_boundary_moving_up(rules, settings):
    # sorted 10k 20k 26k 27k 28k 29k 35k 60k 150k 200k
    # Mid-Market: sorted[5] = 29k -> 30k; Enterprise: sorted[8] = 150k -> 150k
    arr = [10_000, 20_000, 26_000, 27_000, 28_000, 29_000, 35_000, 60_000, 150_000, 200_000]
    customers = pd.DataFrame({"account_id": [f"a{i}" for i in range(10)], "arr": arr})
    recommendations, matrix = review_value_tiers(customers, rules, settings)
    moved = {row["item"]: (row["suggested_value"], row["accounts_moved"]) for row in recommendations}
    # [25k, 30k): 26k 27k 28k 29k move down to SMB; [100k, 150k): nobody
    assert moved == {"Mid-Market minimum ARR": (30_000, 4), "Enterprise minimum ARR": (150_000, 0)}
    assert {(r["from_label"], r["to_label"]): r["accounts"] for r in matrix} == {
        ("SMB", "SMB"): 2,
        ("Mid-Market", "SMB"): 4,
        ("Mid-Market", "Mid-Market"): 2,
        ("Enterprise", "Enterprise"): 2,
    }


# --- health weights -----------------------------------------------------------------------


def test_suggest_weights_by_hand():
    aucs = {"usage": 0.80, "adoption_trend": 0.55, "nps": 0.70, "csat": None, "contract_trend": 0.40}
    # signal: usage .30, adoption .05, nps .20, csat 0 (no outcomes), contract 0 (below chance); sum .55
    # raw = .5 * current + .5 * signal / .55:
    #   usage .15 + .2727 = .4227 (8.45 steps), adoption .075 + .0455 = .1205 (2.41),
    #   nps .125 + .1818 = .3068 (6.14), csat .075 (1.5), contract .075 (1.5)
    # floors 8 + 2 + 6 + 1 + 1 = 18 of 20 steps; the two largest remainders (.5, .5) take one each
    suggested = suggest_weights(WEIGHTS, aucs, 0.5, 0.05)
    assert suggested == {"usage": 0.40, "adoption_trend": 0.10, "nps": 0.30, "csat": 0.10, "contract_trend": 0.10}
    assert list(suggested) == list(WEIGHTS)


def _assert_valid(weights: dict[str, float], step: float) -> None:
    units = {name: Decimal(str(w)) / Decimal(str(step)) for name, w in weights.items()}
    assert all(u == u.to_integral_value() for u in units.values()), weights  # multiples of the step
    assert sum(Decimal(str(w)) for w in weights.values()) == 1, weights  # exactly 1
    assert math.fsum(weights.values()) == pytest.approx(1, abs=1e-12)
    assert all(w >= step - 1e-12 for w in weights.values()), weights  # at least one step


def _raw(current, aucs, shrinkage):
    signal = {n: max((aucs.get(n) or 0.5) - 0.5, 0.0) for n in current}
    total = sum(signal.values())
    return {n: (1 - shrinkage) * current[n] + shrinkage * signal[n] / total for n in current}


@pytest.mark.parametrize("seed", range(8))
def test_suggest_weights_sum_to_one_in_whole_steps(seed):
    rng = np.random.default_rng(seed)
    units = rng.multinomial(20 - 5, [0.2] * 5) + 1  # current weights: whole steps, each >= 1
    current = {name: round(float(u) * 0.05, 10) for name, u in zip(WEIGHTS, units, strict=True)}
    aucs = {name: float(rng.uniform(0.3, 0.95)) for name in WEIGHTS}
    aucs["usage"] = 0.9  # some signal
    for shrinkage in (0.0, 0.25, 0.5, 1.0):
        suggested = suggest_weights(current, aucs, shrinkage, 0.05)
        _assert_valid(suggested, 0.05)
        if shrinkage == 0.0:
            assert suggested == current
        raw = _raw(current, aucs, shrinkage)
        if all(v >= 0.05 for v in raw.values()):
            # largest remainder: every weight is its raw value rounded down or up
            assert all(abs(suggested[n] - raw[n]) < 0.05 + 1e-12 for n in current), (suggested, raw)


def test_suggest_weights_small_raw_weight_gets_one_step_not_the_remainder():
    # shrinkage 1: raw = signal share. signals .02, .24, .24 (sum .5): raw .04, .48, .48
    # = 0.8, 9.6, 9.6 steps. a gets its one step (the minimum); the one step left over
    # goes to the largest remainder among b and c (both .6), not to a a second time.
    suggested = suggest_weights({"a": 0.2, "b": 0.4, "c": 0.4}, {"a": 0.52, "b": 0.74, "c": 0.74}, 1.0, 0.05)
    _assert_valid(suggested, 0.05)
    assert suggested["a"] == 0.05
    assert sorted([suggested["b"], suggested["c"]]) == [0.45, 0.50]


def test_suggest_weights_other_steps():
    # step 0.1, shrinkage 1: signals .4 (usage) and .1 (nps) of .5 -> raw .8 and .2, the rest 0.
    # Units: usage 8, nps 2 and one each (the minimum) for the three others = 13 > 10,
    # so the largest (usage) gives up three: usage .5, nps .2, the rest .1
    aucs = {"usage": 0.9, "nps": 0.6}
    suggested = suggest_weights(WEIGHTS, aucs, 1.0, 0.1)
    _assert_valid(suggested, 0.1)
    assert suggested == {"usage": 0.5, "adoption_trend": 0.1, "nps": 0.2, "csat": 0.1, "contract_trend": 0.1}


@pytest.mark.parametrize(
    "aucs",
    [
        {},
        dict.fromkeys(WEIGHTS),
        {"usage": 0.5, "adoption_trend": 0.3, "nps": None, "csat": 0.49, "contract_trend": 0.0},
    ],
)
def test_suggest_weights_without_signal_keeps_the_current_weights(aucs):
    current = dict(WEIGHTS)
    suggested = suggest_weights(current, aucs, 0.5, 0.05)
    assert suggested == WEIGHTS
    suggested["usage"] = 0.0
    assert current == WEIGHTS  # a copy


# --- rescore -------------------------------------------------------------------------------


def _components(scores: dict[str, dict[str, float | None]]) -> pd.DataFrame:
    rows = [
        {"account_id": account_id, "component": name, "score": by_name.get(name)}
        for account_id, by_name in scores.items()
        for name in WEIGHTS
    ]
    frame = pd.DataFrame(rows)
    frame["score"] = pd.to_numeric(frame["score"]).astype(float)
    return frame


def test_rescore_by_hand():
    components = _components(
        {
            # all present: .3*80 + .15*40 + .25*90 + .15*50 + .15*100 = 24 + 6 + 22.5 + 7.5 + 15 = 75
            "x": {"usage": 80, "adoption_trend": 40, "nps": 90, "csat": 50, "contract_trend": 100},
            # usage, csat, contract present: weight .6 (= min_coverage): (.3*50 + .15*20 + .15*60) / .6 = 27 / .6 = 45
            "y": {"usage": 50, "csat": 20, "contract_trend": 60},
            # only nps: weight .25 < .6 -> no score
            "z": {"nps": 100},
            # usage and nps: weight .55 < .6 -> no score
            "v": {"usage": 100, "nps": 100},
            # nothing at all -> no score
            "w": {},
            # zero scores count: usage 0, nps 0, csat 100 -> 15 / .7
            "u": {"usage": 0, "nps": 0, "csat": 100},
        }
    )
    scores = rescore(components, WEIGHTS, 0.6)
    assert list(scores.index) == ["x", "y", "z", "v", "w", "u"]
    assert scores["x"] == pytest.approx(75)
    assert scores["y"] == pytest.approx(45)
    assert scores["u"] == pytest.approx(15 / 0.7)
    assert scores[["z", "v", "w"]].isna().all()
    # with other weights: y = (.5*50 + .25*20 + .05*60) / (.5 + .25 + .05) = 33 / .8 = 41.25
    other = {"usage": 0.5, "adoption_trend": 0.1, "nps": 0.1, "csat": 0.25, "contract_trend": 0.05}
    assert rescore(components, other, 0.6)["y"] == pytest.approx(41.25)
    # and v (usage .5 + nps .1 = .6, at min_coverage): (50 + 10) / .6 = 100
    assert rescore(components, other, 0.6)["v"] == pytest.approx(100)


def test_review_health_weights_moves_and_matrix(rules, settings):
    components = _components(
        {
            "x": {"usage": 80, "adoption_trend": 40, "nps": 90, "csat": 50, "contract_trend": 100},  # 75 Healthy
            "y": {"usage": 50, "csat": 20, "contract_trend": 60},  # 45 Needs attention
            "z": {"nps": 100},  # Unknown
            # 0.3*100 + 0.25*0 + 0.15*(0 + 100 + 100) = 60 -> Needs attention
            "t": {"usage": 100, "adoption_trend": 0, "nps": 0, "csat": 100, "contract_trend": 100},
        }
    )
    signal = pd.DataFrame(
        [
            {"horizon_months": 12, "component": "usage", "auc_churn": 0.5, "auc_churn_or_contraction": 0.80},
            {"horizon_months": 12, "component": "adoption_trend", "auc_churn": 0.5, "auc_churn_or_contraction": 0.55},
            {"horizon_months": 12, "component": "nps", "auc_churn": 0.5, "auc_churn_or_contraction": 0.70},
            {"horizon_months": 12, "component": "csat", "auc_churn": 0.5, "auc_churn_or_contraction": float("nan")},
            {"horizon_months": 12, "component": "contract_trend", "auc_churn": 0.9, "auc_churn_or_contraction": 0.4},
            # another horizon is ignored
            {"horizon_months": 3, "component": "usage", "auc_churn": 0.1, "auc_churn_or_contraction": 0.1},
        ]
    )
    recommendations, matrix = review_health_weights(components, signal, rules, settings)
    suggested = {row["item"]: row["suggested_value"] for row in recommendations}
    # the by-hand example above: usage .4, adoption .1, nps .3, csat .1, contract .1
    assert suggested == {"usage": 0.40, "adoption_trend": 0.10, "nps": 0.30, "csat": 0.10, "contract_trend": 0.10}
    assert {row["item"]: row["current_value"] for row in recommendations} == WEIGHTS
    # new scores: x .4*80 + .1*40 + .3*90 + .1*50 + .1*100 = 32 + 4 + 27 + 5 + 10 = 78 (Healthy)
    # y (.4*50 + .1*20 + .1*60) / .6 = 28 / .6 = 46.7 (Needs attention); z Unknown
    # t .4*100 + .1*100 + .1*100 = 60 -> 60 (Needs attention): nobody moves
    assert {row["accounts_moved"] for row in recommendations} == {0}
    assert {(r["from_label"], r["to_label"]): r["accounts"] for r in matrix} == {
        ("Healthy", "Healthy"): 1,
        ("Needs attention", "Needs attention"): 2,
        ("Unknown", "Unknown"): 1,
    }
    assert "no outcomes" in next(row["basis"] for row in recommendations if row["item"] == "csat")
    assert "0.800" in next(row["basis"] for row in recommendations if row["item"] == "usage")
