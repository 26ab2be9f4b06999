"""Health vs outcome and the review recommendations on a tiny hand-built history.

Seven accounts with contracts, surveys and usage from 2023 to mid-2024, evaluated on
2024-05-31 with a 3-month horizon and two start dates (2024-01-31 and 2024-02-29), on
DuckDB and PostgreSQL. Outcomes are worked out by hand; AUCs are recomputed with
scikit-learn from the health scores the engine stored on the start dates.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from sklearn.metrics import roc_auc_score

import segment_fixtures as fx
from postsales import paths, warehouse
from postsales.outcomes import (
    EvaluationSettings,
    evaluate_health,
    health_component_signal,
    health_outcomes,
)
from postsales.review import recommend, rescore, review_migration_matrix, review_recommendations, suggest_weights
from postsales.segment.bands import band_label
from postsales.segment.engine import account_segments, compute_segments, ensure_segments, health_components
from postsales.segment.rules import load_rules

AS_OF = date(2024, 5, 31)
# horizon 3, two start dates: 3 and 4 months back
S3, S4 = date(2024, 2, 29), date(2024, 1, 31)  # outcomes read on 2024-05-31 and 2024-04-30
STARTS = (S4, S3)


def small_settings(**review) -> EvaluationSettings:
    data = yaml.safe_load((paths.rules_dir() / "review.yaml").read_text())
    data["health_outcomes"].update(horizons=[3], start_dates=2, step_months=1)
    data["review"].update(signal_horizon_months=3, **review)
    return EvaluationSettings.model_validate(data)


# --- the history -----------------------------------------------------------------------------

# account: (nps, csat, active users of 10 seats before / from 2023-11-01)
PROFILES = {
    "A": (9, 5, (9, 9)),  # renews on the last day of the 2024-01-31 window
    "B": (2, 2, (4, 2)),  # churns on 2024-03-15
    "C": (6, 3, (5, 5)),  # renews smaller on 2024-04-01
    "D": (8, 4, (8, 8)),  # adds a second contract on 2024-03-01
    "E": (9, 4, (7, 7)),  # healthy, but its contract ends 2024-05-01 and it leaves
    "J": (10, 5, (6, 6)),  # a customer from 2024-04-01 only
}


def history() -> dict[str, list]:
    accounts = [fx.account(a) for a in ("A", "B", "C", "D", "E", "H", "J", "K")]
    contracts = [
        fx.contract("A-1", "A", date(2023, 5, 1), date(2024, 4, 30), 20_000),
        fx.contract("A-2", "A", date(2024, 5, 1), date(2025, 4, 30), 20_000),
        fx.contract("B-1", "B", date(2023, 2, 1), date(2024, 3, 15), 30_000),
        fx.contract("C-1", "C", date(2023, 4, 1), date(2024, 3, 31), 50_000),
        fx.contract("C-2", "C", date(2024, 4, 1), date(2025, 3, 31), 35_000),
        fx.contract("D-1", "D", date(2023, 1, 1), None, 10_000),
        fx.contract("D-2", "D", date(2024, 3, 1), None, 5_000),
        # ends the day after the 2024-01-31 window (2024-04-30), inside the 2024-02-29 one
        fx.contract("E-1", "E", date(2023, 5, 15), date(2024, 5, 1), 8_000),
        # no surveys, no usage: no health score (band Unknown)
        fx.contract("H-1", "H", date(2023, 1, 1), None, 12_000),
        fx.contract("J-1", "J", date(2024, 4, 1), None, 150_000),
        # a former customer, gone before the start dates
        fx.contract("K-1", "K", date(2022, 6, 1), date(2023, 12, 31), 9_000),
    ]
    surveys, usage_rows = [], []
    for account_id, (score, csat_score, (before, after)) in PROFILES.items():
        month = date(2023, 1, 15)
        while month <= AS_OF:
            at = datetime(month.year, month.month, month.day, 10)
            if month.month % 3 == 1:
                surveys.append(fx.nps(account_id, at, score))
            surveys.append(fx.csat(account_id, at, csat_score))
            month = (month.replace(day=1) + timedelta(days=32)).replace(day=15)
        day = date(2023, 1, 2)
        while day <= AS_OF:
            active = before if day < date(2023, 11, 1) else after
            usage_rows.append(fx.usage(account_id, day, active, 10, 10 * active, 5))
            day += timedelta(days=7)
    return {"accounts": accounts, "contracts": contracts, "surveys": surveys, "usage_rows": usage_rows}


def load_history(url: str) -> None:
    fx.load_staging(url, **history())


# Outcomes by hand, per (account, start date):
#   churned / contracted / expanded / renewal_due / renewed
OUTCOMES = {
    # A-1 ends 2024-04-30: the last day of the S4 window (due) and inside the S3 one; A-2 follows
    ("A", S4): (False, False, False, True, True),
    ("A", S3): (False, False, False, True, True),
    # B-1 ends 2024-03-15 with no renewal: due, churned, not renewed
    ("B", S4): (True, False, False, True, False),
    ("B", S3): (True, False, False, True, False),
    # C-1 ends 2024-03-31, C-2 at 35k: renewed and contracted
    ("C", S4): (False, True, False, True, True),
    ("C", S3): (False, True, False, True, True),
    # D: 10k on both start dates (D-2 starts 2024-03-01), 15k at the end; nothing due
    ("D", S4): (False, False, True, False, False),
    ("D", S3): (False, False, True, False, False),
    # E-1 ends 2024-05-01: after the S4 window (active on 2024-04-30, not due), in the S3 one
    ("E", S4): (False, False, False, False, False),
    ("E", S3): (True, False, False, True, False),
    ("H", S4): (False, False, False, False, False),
    ("H", S3): (False, False, False, False, False),
}
# J is a customer from 2024-04-01 and K left on 2023-12-31: neither is on a start date.


def read(url: str, table: sa.Table, *where) -> pd.DataFrame:
    with warehouse.engine(url).connect() as conn:
        result = conn.execute(sa.select(table).where(*where))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def health_on(url: str, day: date) -> dict[str, float | None]:
    rows = read(url, account_segments, account_segments.c.as_of_date == day)
    return {
        row.account_id: (None if pd.isna(row.health_score) else float(row.health_score)) for row in rows.itertuples()
    }


def expected_auc(url: str, outcome) -> float:
    labels, scores = [], []
    for day in STARTS:
        for account_id, score in health_on(url, day).items():
            if score is not None:
                labels.append(outcome(OUTCOMES[(account_id, day)]))
                scores.append(-score)
    return float(roc_auc_score(labels, scores))


# --- tests -----------------------------------------------------------------------------------


def test_ensure_segments_computes_missing_dates_only(warehouse_url):
    load_history(warehouse_url)
    compute_segments(S4, warehouse_url=warehouse_url)
    before = read(warehouse_url, account_segments, account_segments.c.as_of_date == S4)
    assert sorted(before["account_id"]) == ["A", "B", "C", "D", "E", "H"]

    assert ensure_segments([S3, S4], warehouse_url=warehouse_url) == [S3]
    # the existing snapshot was not recomputed
    again = read(warehouse_url, account_segments, account_segments.c.as_of_date == S4)
    assert sorted(again["computed_at"]) == sorted(before["computed_at"])
    assert sorted(health_on(warehouse_url, S3)) == ["A", "B", "C", "D", "E", "H"]

    assert ensure_segments([S3, S4], warehouse_url=warehouse_url) == []
    # several missing dates: computed oldest first
    assert ensure_segments([AS_OF, date(2023, 12, 31), S3], warehouse_url=warehouse_url) == [
        date(2023, 12, 31),
        AS_OF,
    ]
    assert ensure_segments([AS_OF, date(2023, 12, 31), S3, S4], warehouse_url=warehouse_url) == []


def test_evaluate_health_by_hand(warehouse_url):
    load_history(warehouse_url)
    settings = small_settings()
    result = evaluate_health(AS_OF, warehouse_url=warehouse_url, settings=settings)
    # both start dates were segmented from the data known then (and nothing else)
    with warehouse.engine(warehouse_url).connect() as conn:
        dates = conn.execute(sa.select(account_segments.c.as_of_date).distinct()).scalars().all()
    assert sorted(dates) == [S4, S3]
    assert ensure_segments(list(STARTS), warehouse_url=warehouse_url) == []

    health = {day: health_on(warehouse_url, day) for day in STARTS}
    assert {day: sorted(scores) for day, scores in health.items()} == {
        S4: ["A", "B", "C", "D", "E", "H"],
        S3: ["A", "B", "C", "D", "E", "H"],
    }
    assert health[S4]["H"] is None and health[S3]["H"] is None
    assert all(score is not None for day in STARTS for a, score in health[day].items() if a != "H")

    rows = read(warehouse_url, health_outcomes, health_outcomes.c.as_of_date == AS_OF)
    assert set(rows["horizon_months"]) == {3}
    by_band = {row.health_band: row for row in rows.itertuples()}
    every = by_band["All"]
    # 6 customers on each of the 2 start dates; churned B, B, E; contracted C, C; expanded D, D;
    # renewal due A, B, C on S4 and A, B, C, E on S3; renewed A, C on both
    assert (
        every.account_periods,
        every.churned,
        every.contracted,
        every.expanded,
        every.renewal_due,
        every.renewed,
    ) == (12, 3, 2, 2, 7, 4)
    assert (every.start_dates, every.first_start_date, every.last_start_date) == (2, S4, S3)
    assert every.churn_rate == pytest.approx(3 / 12)
    assert every.contraction_rate == pytest.approx(2 / 12)
    assert every.expansion_rate == pytest.approx(2 / 12)
    assert every.renewal_rate == pytest.approx(4 / 7)
    assert every.rules_versions == load_rules().version
    assert pd.isna(every.churn_lift)
    # the AUCs equal scikit-learn's on the stored health scores and the outcomes above
    assert every.auc_churn == pytest.approx(expected_auc(warehouse_url, lambda o: o[0]), abs=1e-12)
    assert every.auc_churn_or_contraction == pytest.approx(
        expected_auc(warehouse_url, lambda o: o[0] or o[1]), abs=1e-12
    )
    labels, scores = [], []
    for day in STARTS:
        for account_id, score in health[day].items():
            outcome = OUTCOMES[(account_id, day)]
            if score is not None and outcome[3]:
                labels.append(not outcome[4])
                scores.append(-score)
    assert every.auc_non_renewal == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result["horizons"][3]["auc_churn"] == pytest.approx(every.auc_churn)
    assert result["horizons"][3]["account_periods"] == 12

    # per band: the pairs of the band on each start date, lift against 3/12
    bands = load_rules().customer_status.health_band
    expected_bands: dict[str, list[tuple[str, date]]] = {}
    for day in STARTS:
        for account_id, score in health[day].items():
            expected_bands.setdefault(band_label(score, bands), []).append((account_id, day))
    assert set(by_band) == {"All", *expected_bands}
    assert "Unknown" in expected_bands
    for band, pairs in expected_bands.items():
        row = by_band[band]
        churned = sum(OUTCOMES[pair][0] for pair in pairs)
        assert (row.account_periods, row.churned) == (len(pairs), churned), band
        assert (row.renewal_due, row.renewed) == (
            sum(OUTCOMES[pair][3] for pair in pairs),
            sum(OUTCOMES[pair][4] for pair in pairs),
        ), band
        assert row.churn_lift == pytest.approx((churned / len(pairs)) / (3 / 12)), band
        assert pd.isna(row.auc_churn) and pd.isna(row.auc_churn_or_contraction) and pd.isna(row.auc_non_renewal)
    assert sum(by_band[band].account_periods for band in expected_bands) == 12

    # component signal: one row per component, the AUC of -component score on the start dates
    signal = read(warehouse_url, health_component_signal, health_component_signal.c.as_of_date == AS_OF)
    rules = load_rules()
    assert sorted(signal["component"]) == sorted(rules.health.components)
    parts = read(warehouse_url, health_components, health_components.c.as_of_date.in_(STARTS))
    parts = parts[parts["score"].notna()]
    for row in signal.itertuples():
        spec = rules.health.components[row.component]
        assert (row.horizon_months, row.feature, row.weight) == (3, spec.feature, spec.weight)
        mine = parts[parts["component"] == row.component]
        churned = [OUTCOMES[(a, d)][0] for a, d in zip(mine["account_id"], mine["as_of_date"], strict=True)]
        bad = [
            OUTCOMES[(a, d)][0] or OUTCOMES[(a, d)][1]
            for a, d in zip(mine["account_id"], mine["as_of_date"], strict=True)
        ]
        assert (row.account_periods, row.churned) == (len(mine), sum(churned)), row.component
        # every account but H on both dates; arr_growth_365d needs ARR a year before the start date:
        # D and H on 2024-01-31, B, D and H on 2024-02-29
        assert row.account_periods == (5 if row.component == "contract_trend" else 10), row.component
        scores = -mine["score"].astype(float)
        for value, labels in ((row.auc_churn, churned), (row.auc_churn_or_contraction, bad)):
            if len(set(labels)) == 2:
                assert value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12), row.component
            else:
                assert pd.isna(value), row.component


def test_evaluate_health_is_idempotent(warehouse_url):
    load_history(warehouse_url)
    settings = small_settings()
    evaluate_health(AS_OF, warehouse_url=warehouse_url, settings=settings)

    def snapshot():
        out = {}
        for table in (health_outcomes, health_component_signal):
            frame = read(warehouse_url, table).drop(columns=["computed_at"])
            out[table.name] = sorted(map(tuple, frame.astype(str).itertuples(index=False)))
        return out

    first = snapshot()
    assert len(first["health_outcomes"]) >= 3 and len(first["health_component_signal"]) == 5
    evaluate_health(AS_OF, warehouse_url=warehouse_url, settings=settings)
    assert snapshot() == first


def test_recommend_by_hand_and_idempotent(warehouse_url):
    load_history(warehouse_url)
    settings = small_settings()
    rules = load_rules()
    evaluate_health(AS_OF, warehouse_url=warehouse_url, settings=settings)
    # the as-of date itself was never segmented: recommend segments it
    recommend(AS_OF, warehouse_url=warehouse_url, settings=settings)
    customers = health_on(warehouse_url, AS_OF)
    # on 2024-05-31: A, C (C-2), D, H, J; B and E have left
    assert sorted(customers) == ["A", "C", "D", "H", "J"]

    recs = read(warehouse_url, review_recommendations, review_recommendations.c.as_of_date == AS_OF)
    matrix = read(warehouse_url, review_migration_matrix, review_migration_matrix.c.as_of_date == AS_OF)
    assert set(recs["rules_version"]) == {rules.version}
    # Matrices: each sums to the number of customers.
    assert matrix.groupby("area")["accounts"].sum().to_dict() == {"value_tier": 5, "health_band": 5}

    # ARR on 2024-05-31: H 12k, D 15k, A 20k, C 35k, J 150k (sorted, indices 0..4)
    # Mid-Market at 0.6: sorted[floor(2.4)] = 20k; Enterprise at 0.9: sorted[floor(3.6)] = 35k
    tiers = recs[recs["area"] == "value_tier_boundary"].set_index("item")
    assert tiers.loc["Mid-Market minimum ARR", ["current_value", "suggested_value", "accounts_moved"]].tolist() == [
        25_000,
        20_000,
        1,  # A (20k)
    ]
    assert tiers.loc["Enterprise minimum ARR", ["current_value", "suggested_value", "accounts_moved"]].tolist() == [
        100_000,
        35_000,
        1,  # C (35k)
    ]
    value_matrix = {
        (row.from_label, row.to_label): row.accounts for row in matrix[matrix["area"] == "value_tier"].itertuples()
    }
    assert value_matrix == {
        ("SMB", "SMB"): 2,  # H, D
        ("SMB", "Mid-Market"): 1,  # A
        ("Mid-Market", "Enterprise"): 1,  # C
        ("Enterprise", "Enterprise"): 1,  # J
    }

    # Weights: suggested from the component AUCs written by evaluate_health at 3 months
    signal = read(warehouse_url, health_component_signal, health_component_signal.c.as_of_date == AS_OF)
    aucs = {
        row.component: (None if pd.isna(row.auc_churn_or_contraction) else float(row.auc_churn_or_contraction))
        for row in signal.itertuples()
    }
    current = {name: spec.weight for name, spec in rules.health.components.items()}
    suggested = suggest_weights(current, aucs, 0.5, 0.05)
    weights = recs[recs["area"] == "health_weight"].set_index("item")
    assert sorted(weights.index) == sorted(current)
    assert weights["current_value"].to_dict() == pytest.approx(current)
    assert weights["suggested_value"].to_dict() == pytest.approx(suggested)
    assert sum(weights["suggested_value"]) == pytest.approx(1, abs=1e-12)
    # accounts_moved: customers whose band differs between the two weightings (the off-diagonal)
    health_matrix = matrix[matrix["area"] == "health_band"]
    off_diagonal = int(health_matrix.loc[health_matrix["from_label"] != health_matrix["to_label"], "accounts"].sum())
    assert set(weights["accounts_moved"]) == {off_diagonal}
    # the "from" side of the health matrix is the stored health band of each customer
    stored = read(warehouse_url, account_segments, account_segments.c.as_of_date == AS_OF)
    assert (
        health_matrix.groupby("from_label")["accounts"].sum().to_dict()
        == stored.groupby("health_band").size().to_dict()
    )

    def snapshot():
        frames = [
            read(warehouse_url, review_recommendations).drop(columns=["computed_at"]),
            read(warehouse_url, review_migration_matrix),
        ]
        return [sorted(map(tuple, frame.astype(str).itertuples(index=False))) for frame in frames]

    first = snapshot()
    assert len(first[0]) == 2 + 5
    recommend(AS_OF, warehouse_url=warehouse_url, settings=settings)
    assert snapshot() == first


def test_recommend_without_a_signal_keeps_the_weights(warehouse_url):
    load_history(warehouse_url)
    recommend(AS_OF, warehouse_url=warehouse_url, settings=small_settings())
    recs = read(warehouse_url, review_recommendations, review_recommendations.c.as_of_date == AS_OF)
    weights = recs[recs["area"] == "health_weight"]
    assert (weights["current_value"] == weights["suggested_value"]).all()
    assert set(weights["accounts_moved"]) == {0}
    assert all("no outcomes" in basis for basis in weights["basis"])


def test_rescore_reproduces_the_engine(warehouse_url):
    """Python's rescore with the current weights gives the SQL engine's score and band."""
    load_history(warehouse_url)
    rules = load_rules()
    days = [S4, S3, date(2024, 3, 31), AS_OF]
    ensure_segments(days, warehouse_url=warehouse_url)
    current = {name: spec.weight for name, spec in rules.health.components.items()}
    bands = rules.customer_status.health_band
    checked = 0
    for day in days:
        parts = read(warehouse_url, health_components, health_components.c.as_of_date == day)
        parts["score"] = pd.to_numeric(parts["score"]).astype(float)
        assert (parts["weight"].astype(float) == parts["component"].map(current)).all()
        scores = rescore(parts[["account_id", "component", "score"]], current, rules.health.min_coverage)
        stored = read(warehouse_url, account_segments, account_segments.c.as_of_date == day).set_index("account_id")
        assert sorted(scores.index) == sorted(stored.index)
        for account_id, score in scores.items():
            expected = stored.loc[account_id, "health_score"]
            if pd.isna(expected):
                assert pd.isna(score), (day, account_id)
            else:
                assert score == pytest.approx(float(expected), abs=1e-9), (day, account_id)
            assert band_label(score, bands) == stored.loc[account_id, "health_band"], (day, account_id)
            checked += 1
    assert checked == 6 + 6 + 5 + 5  # B leaves 2024-03-15 (J not yet in on 2024-03-31), E leaves 2024-05-01
