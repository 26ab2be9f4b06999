"""Health vs outcome: how well the health score recorded on a date foretold what happened.

For each horizon h (3, 6, 12 months) and each start date S (a month-end-aligned date
h or more months before the evaluation date), every account segmented on S is followed to
S + h: churned (no active contract), contracted, expanded or flat ARR, and, if a contract
came up for renewal in between, renewed or not. The health score and its components on S
come from ``mart.account_segments`` / ``mart.account_health_components`` (segmenting S
from the data known then if it never was). Outcomes use the contracts known at the
evaluation date. Definitions: docs/metrics.md, "Health vs outcome".
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from dateutil.relativedelta import relativedelta
from pydantic import Field, model_validator

from postsales import paths, warehouse
from postsales.config import ConfigError, StrictModel, Text, load_yaml
from postsales.segment.rules import SegmentationRules, load_rules
from postsales.tables import table
from postsales.values import ratio

log = logging.getLogger(__name__)

ALL_BANDS = "All"
OUTCOMES = ("churn", "churn_or_contraction")

# --- settings --------------------------------------------------------------------------


class HealthOutcomeSettings(StrictModel):
    horizons: list[Annotated[int, Field(gt=0, le=60)]] = Field(min_length=1)  # months: at most five years
    start_dates: int = Field(default=12, gt=0, le=120)
    step_months: int = Field(default=1, gt=0, le=12)

    @model_validator(mode="after")
    def _ascending(self) -> HealthOutcomeSettings:
        if any(h <= 0 for h in self.horizons) or sorted(set(self.horizons)) != self.horizons:
            raise ValueError(f"horizons must be positive and ascending, got {self.horizons}")
        return self


class ValueTierReview(StrictModel):
    target_shares: dict[str, float]
    round_to: float = Field(default=5000, gt=0)

    @model_validator(mode="after")
    def _shares(self) -> ValueTierReview:
        if any(share <= 0 for share in self.target_shares.values()):
            raise ValueError("every target share must be above 0")
        total = sum(self.target_shares.values())
        if abs(total - 1) > 1e-9:
            raise ValueError(f"target shares must sum to 1, they sum to {total:g}")
        return self


class ReviewSettings(StrictModel):
    signal_horizon_months: int = Field(default=12, gt=0, le=60)
    signal_outcome: Literal["churn", "churn_or_contraction"] = "churn_or_contraction"
    weight_shrinkage: float = Field(default=0.5, ge=0, le=1)
    weight_step: float = Field(default=0.05, gt=0, le=0.5)
    value_tiers: ValueTierReview


class EvaluationSettings(StrictModel):
    version: Text
    health_outcomes: HealthOutcomeSettings
    review: ReviewSettings

    def check_against(self, rules: SegmentationRules, path: Path) -> None:
        labels = [band.label for band in rules.customer_value.arr_band.bands]
        shares = list(self.review.value_tiers.target_shares)
        if shares != labels:
            raise ConfigError(
                f"{path}: field 'review.value_tiers.target_shares': give one share per value tier of "
                f"segmentation.yaml customer_value.arr_band, in order {labels}; got {shares}"
            )
        if self.review.signal_horizon_months not in self.health_outcomes.horizons:
            raise ConfigError(
                f"{path}: field 'review.signal_horizon_months': {self.review.signal_horizon_months} is not one of "
                f"health_outcomes.horizons {self.health_outcomes.horizons}"
            )


def load_settings(path: Path | None = None, rules: SegmentationRules | None = None) -> EvaluationSettings:
    path = path or paths.rules_dir() / "review.yaml"
    settings = load_yaml(path, EvaluationSettings)
    settings.check_against(rules or load_rules(), path)
    return settings


# --- tables ----------------------------------------------------------------------------

health_outcomes = table("mart.health_outcomes")
health_component_signal = table("mart.health_component_signal")
TABLES = (health_outcomes, health_component_signal)

# --- method ----------------------------------------------------------------------------


def auc(scores: Any, positives: Any) -> float | None:
    """Area under the ROC curve of ``scores`` for ``positives``, ties counted as half.

    The Mann-Whitney form: the probability that a random positive scores above a
    random negative. None when either class is empty.
    """
    import numpy as np
    import pandas as pd

    scores = pd.Series(np.asarray(scores, dtype=float))
    positives = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = scores.rank(method="average").to_numpy()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def outcome_frame(starts: Any, actual: Any, contracts: Any, horizon: int) -> Any:
    """Outcomes of (account, start) pairs ``horizon`` months on.

    ``starts``: account_id, start_months_back (j), start_date, end_date, health columns.
    ``actual``: trajectories known at the evaluation date (months_back relative to it);
    the start is read at months_back j and the outcome at j - horizon.
    ``contracts``: contract terms known at the evaluation date.
    """
    import numpy as np
    import pandas as pd

    known = actual.set_index(["account_id", "months_back"])[["arr", "active_contracts"]]

    def lookup(months_back: Any) -> Any:
        index = pd.MultiIndex.from_arrays([starts["account_id"], months_back])
        return known.reindex(index)

    frame = starts.copy()
    at_start = lookup(frame["start_months_back"])
    at_end = lookup(frame["start_months_back"] - horizon)
    frame["arr_start"] = at_start["arr"].fillna(0.0).to_numpy()
    frame["arr_end"] = at_end["arr"].fillna(0.0).to_numpy()
    frame["churned"] = ~(at_end["active_contracts"].fillna(0).to_numpy() > 0)
    frame["contracted"] = ~frame["churned"] & (frame["arr_end"] < frame["arr_start"] - 0.005)
    frame["expanded"] = ~frame["churned"] & (frame["arr_end"] > frame["arr_start"] + 0.005)
    # A renewal was due if a contract active on the start date ended within the window.
    due = contracts.merge(frame[["account_id", "start_date", "end_date"]].drop_duplicates(), on="account_id")
    due = due[
        (due["start_date_contract"] <= due["start_date"])
        & due["end_date_contract"].notna()
        & (due["end_date_contract"] > due["start_date"])
        & (due["end_date_contract"] <= due["end_date"])
    ]
    due_keys = set(zip(due["account_id"], due["start_date"], strict=True))
    frame["renewal_due"] = np.array(
        [(a, s) in due_keys for a, s in zip(frame["account_id"], frame["start_date"], strict=True)], dtype=bool
    )
    frame["renewed"] = frame["renewal_due"] & ~frame["churned"]
    return frame


def summarise(frame: Any, horizon: int, band_order: list[str]) -> list[dict[str, Any]]:
    """One row for all accounts and one per health band (lift against all)."""
    rows = []
    overall_churn = ratio(int(frame["churned"].sum()), len(frame))
    scored = frame[frame["health_score"].notna()]
    bad = scored["churned"] | scored["contracted"]
    due = scored[scored["renewal_due"]]
    groups = [(ALL_BANDS, frame)] + [(band, frame[frame["health_band"] == band]) for band in band_order]
    for band, group in groups:
        if band != ALL_BANDS and not len(group):
            continue
        churned = int(group["churned"].sum())
        row = {
            "horizon_months": horizon,
            "health_band": band,
            "start_dates": int(group["start_date"].nunique()),
            "first_start_date": group["start_date"].min() if len(group) else None,
            "last_start_date": group["start_date"].max() if len(group) else None,
            "account_periods": len(group),
            "churned": churned,
            "contracted": int(group["contracted"].sum()),
            "expanded": int(group["expanded"].sum()),
            "renewal_due": int(group["renewal_due"].sum()),
            "renewed": int(group["renewed"].sum()),
            "churn_rate": ratio(churned, len(group)),
            "contraction_rate": ratio(int(group["contracted"].sum()), len(group)),
            "expansion_rate": ratio(int(group["expanded"].sum()), len(group)),
            "renewal_rate": ratio(int(group["renewed"].sum()), int(group["renewal_due"].sum())),
            "churn_lift": None,
            "auc_churn": None,
            "auc_churn_or_contraction": None,
            "auc_non_renewal": None,
            "rules_versions": ",".join(sorted(group["rules_version"].dropna().unique())) if len(group) else "",
        }
        if band == ALL_BANDS:
            row["auc_churn"] = auc(-scored["health_score"], scored["churned"])
            row["auc_churn_or_contraction"] = auc(-scored["health_score"], bad)
            row["auc_non_renewal"] = auc(-due["health_score"], ~due["renewed"])
        elif overall_churn:
            row["churn_lift"] = row["churn_rate"] / overall_churn
        rows.append(row)
    return rows


def component_signal(frame: Any, components: Any, horizon: int, rules: SegmentationRules) -> list[dict[str, Any]]:
    """AUC of each health component's score on the start date for the outcomes."""
    merged = components.merge(
        frame[["account_id", "start_date", "churned", "contracted"]], on=["account_id", "start_date"]
    )
    rows = []
    for name, spec in rules.health.components.items():
        part = merged[(merged["component"] == name) & merged["score"].notna()]
        rows.append(
            {
                "horizon_months": horizon,
                "component": name,
                "feature": spec.feature,
                "account_periods": len(part),
                "churned": int(part["churned"].sum()),
                "auc_churn": auc(-part["score"], part["churned"]),
                "auc_churn_or_contraction": auc(-part["score"], part["churned"] | part["contracted"]),
                "weight": spec.weight,
            }
        )
    return rows


# --- running ---------------------------------------------------------------------------


def start_months(settings: HealthOutcomeSettings, horizon: int) -> list[int]:
    return [horizon + i * settings.step_months for i in range(settings.start_dates)]


def _frame(rows: list[Any], columns: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame([tuple(row) for row in rows], columns=columns)


def evaluate_health(
    as_of: date,
    *,
    warehouse_url: str | None = None,
    settings: EvaluationSettings | None = None,
    rules: SegmentationRules | None = None,
) -> dict[str, Any]:
    """Replace the as-of date's partition of mart.health_outcomes and mart.health_component_signal."""
    import pandas as pd

    from postsales.forecast import trajectories
    from postsales.segment.engine import account_segments, ensure_segments
    from postsales.segment.engine import health_components as health_components_table

    rules = rules or load_rules()
    settings = settings or load_settings(rules=rules)
    config = settings.health_outcomes
    eng = warehouse.engine(warehouse_url)
    all_months = sorted({j for h in config.horizons for j in start_months(config, h)})
    start_dates = {j: as_of - relativedelta(months=j) for j in all_months}
    ensure_segments(sorted(start_dates.values()), warehouse_url=warehouse_url)

    with eng.connect() as conn:
        actual = trajectories(conn, as_of, max(all_months), 30)
        contracts = _frame(
            warehouse.query(conn, "evaluate", "contract_terms", as_of_date=as_of),
            ["account_id", "contract_id", "start_date_contract", "end_date_contract", "arr_contract"],
        )
        segments = _frame(
            conn.execute(
                sa.select(
                    account_segments.c.as_of_date,
                    account_segments.c.account_id,
                    account_segments.c.health_score,
                    account_segments.c.health_band,
                    account_segments.c.rules_version,
                ).where(account_segments.c.as_of_date.in_(list(start_dates.values())))
            ).all(),
            ["start_date", "account_id", "health_score", "health_band", "rules_version"],
        )
        table = health_components_table
        components = _frame(
            conn.execute(
                sa.select(table.c.as_of_date, table.c.account_id, table.c.component, table.c.score).where(
                    table.c.as_of_date.in_(list(start_dates.values()))
                )
            ).all(),
            ["start_date", "account_id", "component", "score"],
        )
    segments["health_score"] = pd.to_numeric(segments["health_score"], errors="coerce").astype(float)
    components["score"] = pd.to_numeric(components["score"], errors="coerce").astype(float)
    months_of = {d: j for j, d in start_dates.items()}
    band_order = [band.label for band in rules.customer_status.health_band.bands]
    band_order.append(rules.customer_status.health_band.missing_label)

    outcome_rows, signal_rows = [], []
    for horizon in config.horizons:
        wanted = {start_dates[j] for j in start_months(config, horizon)}
        starts = segments[segments["start_date"].isin(wanted)].copy()
        starts["start_months_back"] = starts["start_date"].map(months_of).astype(int)
        starts["end_date"] = starts["start_months_back"].map(lambda j, h=horizon: as_of - relativedelta(months=j - h))
        frame = outcome_frame(starts, actual, contracts, horizon)
        outcome_rows += summarise(frame, horizon, band_order)
        signal_rows += component_signal(frame, components, horizon, rules)

    computed_at = datetime.now(UTC).replace(tzinfo=None)
    outcomes = pd.DataFrame(
        [{"as_of_date": as_of, **row, "computed_at": computed_at} for row in outcome_rows],
        columns=[c.name for c in health_outcomes.c],
    )
    signal = pd.DataFrame(
        [{"as_of_date": as_of, **row, "computed_at": computed_at} for row in signal_rows],
        columns=[c.name for c in health_component_signal.c],
    )
    with eng.begin() as conn:
        warehouse.replace_rows(conn, health_outcomes, health_outcomes.c.as_of_date == as_of, outcomes)
        warehouse.replace_rows(conn, health_component_signal, health_component_signal.c.as_of_date == as_of, signal)
    headline = {
        int(row["horizon_months"]): {
            "auc_churn": row["auc_churn"],
            "auc_churn_or_contraction": row["auc_churn_or_contraction"],
            "account_periods": row["account_periods"],
            "churn_rate": row["churn_rate"],
        }
        for row in outcome_rows
        if row["health_band"] == ALL_BANDS
    }
    log.info("health vs outcome as of %s: %s", as_of, headline)
    return {"as_of_date": as_of.isoformat(), "horizons": headline}
