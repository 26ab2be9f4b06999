"""Tier-migration forecast: projected value tier at +6/+9/+12/+15 months, flags and a backtest.

Method (docs/metrics.md, "Tier-migration forecast"): for each customer, the monthly
log-growth of ARR, licensed seats and active users over the look-back is the Theil-Sen
slope (the median of all pairwise slopes, robust to a single renewal step or outlier
month); the rates are blended with the weights of ``include/rules/forecast.yaml`` and
ARR is projected as ``arr * exp(growth * months)``. Every number that led to a flag is
kept in the account's JSON explanation.

The monthly trajectories come from ``include/sql/forecast/account_trajectories.sql``,
which sees only data known at the as-of date, so a forecast for a past date is exactly
what would have been forecast then. The backtest replays that for past dates and
compares with the tier the accounts actually reached.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import sqlalchemy as sa
from dateutil.relativedelta import relativedelta
from pydantic import Field, model_validator

from postsales import paths, warehouse
from postsales.config import ConfigError, StrictModel, Text, load_yaml
from postsales.segment.bands import band_label, band_minimum
from postsales.segment.rules import Bands, SegmentationRules, load_rules
from postsales.tables import table
from postsales.values import ratio

log = logging.getLogger(__name__)

STAGE = "forecast"
CHURNED = "Churned"
FLAG_NAMES = ("smb_to_mm_6_9m", "mm_to_ent_12_15m", "ent_decline_risk")
SIGNALS = ("arr", "seats", "usage")

# --- settings --------------------------------------------------------------------------


class GrowthWeights(StrictModel):
    arr: float = Field(gt=0, le=1)
    seats: float = Field(ge=0, le=1)
    usage: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> GrowthWeights:
        total = self.arr + self.seats + self.usage
        if abs(total - 1) > 1e-9:
            raise ValueError(f"growth weights must sum to 1, they sum to {total:g}")
        return self


class GrowthFlag(StrictModel):
    from_tier: str
    to_tier: str
    within_months: int = Field(gt=0, le=60)


class DeclineFlag(StrictModel):
    tier: str
    horizon_months: int = Field(gt=0, le=60)
    min_decline: float = Field(gt=0, lt=1)
    # Also flag when active users alone trend to at least this much lower at the horizon:
    # contract ARR moves only at renewal, usage moves first. null = ARR-blend only.
    usage_decline: float | None = Field(default=None, gt=0, lt=1)


class Flags(StrictModel):
    smb_to_mm_6_9m: GrowthFlag
    mm_to_ent_12_15m: GrowthFlag
    ent_decline_risk: DeclineFlag


class Backtest(StrictModel):
    forecast_dates: int = Field(default=12, gt=0, le=120)
    step_months: int = Field(default=1, gt=0, le=12)


# Months ahead: at most five years, like the flags' windows (a 100000-month horizon overflowed
# the growth projection).
HorizonMonths = Annotated[int, Field(gt=0, le=60)]


class ForecastSettings(StrictModel):
    version: Text
    lookback_months: int = Field(default=12, ge=2, le=60)
    min_history_months: int = Field(default=6, ge=1)
    usage_days: int = Field(default=30, gt=0, le=366)
    max_monthly_growth: float = Field(default=0.15, gt=0, le=1)
    growth_weights: GrowthWeights
    horizons: list[HorizonMonths] = Field(min_length=1)
    flags: Flags
    backtest: Backtest = Backtest()

    @model_validator(mode="after")
    def _consistent(self) -> ForecastSettings:
        if self.min_history_months > self.lookback_months:
            raise ValueError(
                f"min_history_months ({self.min_history_months}) exceeds lookback_months ({self.lookback_months})"
            )
        if any(h <= 0 for h in self.horizons) or sorted(set(self.horizons)) != self.horizons:
            raise ValueError(f"horizons must be positive and ascending, got {self.horizons}")
        return self

    def check_tiers(self, bands: Bands, path: Path) -> None:
        """Tier labels must be bands of customer_value.arr_band; growth must go up a tier."""
        labels = [band.label for band in bands.bands]
        for name in ("smb_to_mm_6_9m", "mm_to_ent_12_15m"):
            flag: GrowthFlag = getattr(self.flags, name)
            for field in ("from_tier", "to_tier"):
                if getattr(flag, field) not in labels:
                    raise ConfigError(
                        f"{path}: field 'flags.{name}.{field}': {getattr(flag, field)!r} is not a value tier "
                        f"of segmentation.yaml customer_value.arr_band {labels}"
                    )
            if labels.index(flag.to_tier) <= labels.index(flag.from_tier):
                raise ConfigError(f"{path}: field 'flags.{name}': to_tier must be above from_tier in {labels}")
        if self.flags.ent_decline_risk.tier not in labels:
            raise ConfigError(
                f"{path}: field 'flags.ent_decline_risk.tier': {self.flags.ent_decline_risk.tier!r} is not a "
                f"value tier of segmentation.yaml customer_value.arr_band {labels}"
            )


def load_settings(path: Path | None = None, rules: SegmentationRules | None = None) -> ForecastSettings:
    path = path or paths.rules_dir() / "forecast.yaml"
    settings = load_yaml(path, ForecastSettings)
    settings.check_tiers((rules or load_rules()).customer_value.arr_band, path)
    return settings


# --- tables ----------------------------------------------------------------------------

account_forecasts = table("mart.account_forecasts")
forecast_backtest = table("mart.forecast_backtest")
forecast_tier_calibration = table("mart.forecast_tier_calibration")
TABLES = (account_forecasts, forecast_backtest, forecast_tier_calibration)

# --- method ----------------------------------------------------------------------------


def theil_sen(times: Any, values: Any) -> tuple[Any, Any, Any]:
    """Row-wise Theil-Sen fit of ``values`` (accounts x points, NaN = missing) on ``times``.

    Returns (slope, intercept, points): the median of all pairwise slopes, the median
    of ``values - slope * times`` and the number of points used; NaN where a row has
    fewer than two points.
    """
    import numpy as np

    times = np.asarray(times, dtype=float)
    values = np.asarray(values, dtype=float)
    first, second = np.triu_indices(len(times), 1)
    pairwise = (values[:, second] - values[:, first]) / (times[second] - times[first])
    slope = _row_nanmedian(pairwise)
    intercept = _row_nanmedian(values - slope[:, None] * times)
    points = (~np.isnan(values)).sum(axis=1)
    slope = np.where(points >= 2, slope, np.nan)
    return slope, np.where(points >= 2, intercept, np.nan), points


def _row_nanmedian(values: Any) -> Any:
    """``np.nanmedian(values, axis=1)`` (NaN for an all-NaN row) by one sort: NaN sorts last,
    so a row's median sits at the middle of its first ``count`` values. 5x numpy's masked path."""
    import numpy as np

    ordered = np.sort(values, axis=1)
    count = (~np.isnan(values)).sum(axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, count // 2]
    return np.where(count > 0, (low + high) / 2 + 0.0, np.nan)  # + 0.0: no -0.0 from equal points


def _r2(times: Any, values: Any, slope: Any, intercept: Any) -> Any:
    import numpy as np

    fitted = intercept[:, None] + slope[:, None] * times
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        residual = np.nansum((values - fitted) ** 2, axis=1)
        total = np.nansum((values - np.nanmean(values, axis=1)[:, None]) ** 2, axis=1)
        return np.where(total > 1e-12, 1 - residual / np.where(total > 1e-12, total, 1), np.nan)


def _rounded(values: list[Any], digits: int = 6) -> list[float | None]:
    """Python floats rounded to ``digits``; None and NaN become None (JSON and SQL NULL)."""
    return [None if value is None or value != value else round(value, digits) for value in values]


def project(trajectories: Any, settings: ForecastSettings, bands: Bands, *, explain: bool = True) -> Any:
    """Forecast every customer of ``trajectories`` (the SQL's rows); one row per account.

    Customers are accounts with an active contract at months_back 0. Pure function of
    its inputs: the tests feed it synthetic series. ``explain=False`` leaves out the JSON
    explanation (the backtest scores many past dates and stores none).
    """
    import pandas as pd

    lookback = settings.lookback_months
    frame = trajectories[trajectories["months_back"] <= lookback]
    now = frame[frame["months_back"] == 0].set_index("account_id")
    customers = now.index[now["active_contracts"] > 0]
    if len(customers) == 0:
        columns = [c.name for c in account_forecasts.c if c.name not in ("as_of_date", "computed_at")]
        return pd.DataFrame(columns=[*columns, *(f"_projected_{h}" for h in settings.horizons)])
    monthly = _monthly(frame[frame["account_id"].isin(customers)], customers, lookback)
    fits, r2 = _growth_fits(monthly, settings)
    arr_now = now.loc[customers, "arr"].to_numpy(dtype=float)
    status, blended = _blended_growth(fits, arr_now, settings)

    # Per account from here on: Python floats in lists (math.exp, round and f-strings as
    # documented), one pass per column rather than numpy scalar indexing row by row.
    count = len(customers)
    accounts = _Accounts(
        arr=arr_now.tolist(),
        growth=blended.tolist(),
        ok=(status == "ok").tolist(),
        tiers=[band_label(arr, bands) for arr in arr_now.tolist()],
    )
    status_list = status.tolist()
    projected = _projected_arr(accounts, settings.horizons)
    reasons: list[dict[str, str]] = [{} for _ in range(count)]
    flags = _growth_flags(accounts, settings, bands, reasons)
    flags["ent_decline_risk"] = _decline_flag(accounts, settings, fits["usage"]["slope"].tolist(), reasons)
    months_to_next = _months_to_next_tier(accounts, bands)
    points = {signal: fits[signal]["points"].tolist() for signal in SIGNALS}
    rates = {signal: _rounded(fits[signal]["slope"].tolist()) for signal in SIGNALS}
    blended_rates = _rounded(accounts.growth)
    r2_list = r2.tolist()
    columns = {
        "account_id": list(customers),
        "forecast_status": status_list,
        "arr": accounts.arr,
        "current_tier": accounts.tiers,
        "arr_points": points["arr"],
        "arr_growth_monthly": rates["arr"],
        "seats_growth_monthly": rates["seats"],
        "usage_growth_monthly": rates["usage"],
        "blended_growth_monthly": blended_rates,
        "arr_fit_r2": _rounded(r2_list, 6),
        **{f"projected_arr_{h}m": projected[h] for h in (6, 9, 12, 15)},
        **{
            f"projected_tier_{h}m": [
                band_label(v, bands) if ok else None for v, ok in zip(projected[h], accounts.ok, strict=True)
            ]
            for h in (6, 9, 12, 15)
        },
        "months_to_next_tier": months_to_next,
        **flags,
        "explanation": [None] * count,
        "forecast_version": [settings.version] * count,
        **{f"_projected_{h}": projected[h] for h in settings.horizons},
    }
    if explain:
        columns["explanation"] = _explanations(
            settings,
            status=status_list,
            arr_now=accounts.arr,
            arr_at_start=monthly["arr"][:, lookback].tolist(),
            points=points,
            rates=rates,
            blended_rates=blended_rates,
            r2=r2_list,
            projected=projected,
            reasons=reasons,
        )
    return pd.DataFrame(columns)


# The signals' columns in the trajectories.
SIGNAL_COLUMNS = {"arr": "arr", "seats": "avg_licensed_seats", "usage": "avg_active_users"}


def _monthly(frame: Any, customers: Any, lookback: int) -> dict[str, Any]:
    """Each signal as an accounts x months_back matrix, NaN where a month has no row.

    A pivot without its per-column reshuffling: four of them took 2 s at 100k accounts.
    """
    import numpy as np

    row_of = customers.get_indexer(frame["account_id"])
    month_of = frame["months_back"].to_numpy(dtype=int)
    cell = row_of * (lookback + 1) + month_of
    if len(cell) and np.bincount(cell).max() > 1:
        raise ValueError("trajectories hold more than one row for an (account_id, months_back) pair")

    def wide(column: str) -> Any:
        table = np.full((len(customers), lookback + 1), np.nan)
        table[row_of, month_of] = frame[column].to_numpy(dtype=float)
        return table

    return {signal: wide(column) for signal, column in SIGNAL_COLUMNS.items()}


def _growth_fits(monthly: dict[str, Any], settings: ForecastSettings) -> tuple[dict[str, dict[str, Any]], Any]:
    """Per signal, the Theil-Sen fit of its log over the look-back (``slope`` NaN with fewer than
    min_history_months + 1 points); and the R² of the ARR fit."""
    import numpy as np

    def logs_of(values: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log(values), np.nan)

    times = -np.arange(settings.lookback_months + 1, dtype=float)  # months relative to the as-of date
    fits = {}
    for signal in SIGNAL_COLUMNS:
        logs = logs_of(monthly[signal])
        slope, intercept, points = theil_sen(times, logs)
        enough = points >= settings.min_history_months + 1
        fits[signal] = {
            "logs": logs,
            "slope": np.where(enough, slope, np.nan),
            "intercept": intercept,
            "points": points,
        }
    arr_fit = fits["arr"]
    return fits, _r2(times, arr_fit["logs"], arr_fit["slope"], arr_fit["intercept"])


def _blended_growth(fits: dict[str, dict[str, Any]], arr_now: Any, settings: ForecastSettings) -> tuple[Any, Any]:
    """(status, blended monthly log-growth): the signals' slopes weighted over those present, clipped
    to max_monthly_growth; NaN unless the status is ok (ARR above 0 and enough ARR history)."""
    import numpy as np

    weights = settings.growth_weights.model_dump()
    numerator = np.zeros(len(arr_now))
    denominator = np.zeros(len(arr_now))
    for signal in SIGNALS:
        slope = fits[signal]["slope"]
        present = ~np.isnan(slope)
        numerator += np.where(present, weights[signal] * np.nan_to_num(slope), 0.0)
        denominator += np.where(present, weights[signal], 0.0)
    status = np.where(arr_now <= 0, "zero_arr", np.where(np.isnan(fits["arr"]["slope"]), "insufficient_history", "ok"))
    cap = settings.max_monthly_growth
    with np.errstate(invalid="ignore", divide="ignore"):
        blended = np.where(status == "ok", np.clip(numerator / denominator, -cap, cap), np.nan)
    return status, blended


class _Accounts(NamedTuple):
    """Per customer, in order: ARR now, blended growth, whether it could be forecast, tier now."""

    arr: list[float]
    growth: list[float]
    ok: list[bool]
    tiers: list[str]


def _projected_arr(accounts: _Accounts, horizons: list[int]) -> dict[int, list[float | None]]:
    """ARR at each horizon (the stored 6/9/12/15 months and the settings'): ``arr * exp(growth * months)``."""
    return {
        h: [
            arr * math.exp(growth * h) if ok else None
            for arr, growth, ok in zip(accounts.arr, accounts.growth, accounts.ok, strict=True)
        ]
        for h in dict.fromkeys((6, 9, 12, 15, *horizons))
    }


def _growth_flags(
    accounts: _Accounts, settings: ForecastSettings, bands: Bands, reasons: list[dict[str, str]]
) -> dict[str, list[bool]]:
    """smb_to_mm_6_9m and mm_to_ent_12_15m: a customer in from_tier whose ARR projected within_months
    ahead reaches to_tier's minimum. Each one judged gets its reason in ``reasons``."""
    count = len(accounts.arr)
    flags: dict[str, list[bool]] = {}
    for name in ("smb_to_mm_6_9m", "mm_to_ent_12_15m"):
        flag: GrowthFlag = getattr(settings.flags, name)
        target = band_minimum(bands, flag.to_tier)
        flags[name] = [False] * count
        for index in range(count):
            if not (accounts.ok[index] and accounts.tiers[index] == flag.from_tier):
                continue
            arr = accounts.arr[index]
            reach = arr * math.exp(accounts.growth[index] * flag.within_months)
            flags[name][index] = reach >= target
            reasons[index][name] = (
                f"{accounts.tiers[index]} now (ARR {arr:,.0f}); projected ARR at +{flag.within_months} months "
                f"{reach:,.0f} {'reaches' if reach >= target else 'stays below'} the {flag.to_tier} minimum "
                f"{target:,.0f}"
            )
    return flags


def _decline_flag(
    accounts: _Accounts, settings: ForecastSettings, usage_slopes: list[float], reasons: list[dict[str, str]]
) -> list[bool]:
    """ent_decline_risk: a customer in its tier whose ARR trends down by min_decline at the horizon,
    or (usage_decline set) whose active users alone trend down that far. Reasons as the growth flags'."""
    decline = settings.flags.ent_decline_risk
    flags = [False] * len(accounts.arr)
    for index in range(len(accounts.arr)):
        if not (accounts.ok[index] and accounts.tiers[index] == decline.tier):
            continue
        arr_ratio = math.exp(accounts.growth[index] * decline.horizon_months)
        usage_slope = usage_slopes[index]
        usage_ratio = math.exp(usage_slope * decline.horizon_months) if not math.isnan(usage_slope) else None
        usage_falls = (
            decline.usage_decline is not None and usage_ratio is not None and usage_ratio <= 1 - decline.usage_decline
        )
        flags[index] = arr_ratio <= 1 - decline.min_decline or usage_falls
        reason = (
            f"{accounts.tiers[index]} now (ARR {accounts.arr[index]:,.0f}); projected ARR at "
            f"+{decline.horizon_months} months is "
            f"{100 * (arr_ratio - 1):+.1f}% (risk at or below {-100 * decline.min_decline:.0f}%)"
        )
        if usage_ratio is not None and decline.usage_decline is not None:
            reason += (
                f"; active users trend to {100 * (usage_ratio - 1):+.1f}% "
                f"(risk at or below {-100 * decline.usage_decline:.0f}%)"
            )
        reasons[index]["ent_decline_risk"] = reason
    return flags


def _months_to_next_tier(accounts: _Accounts, bands: Bands) -> list[float | None]:
    """Months until the projected ARR reaches the next tier's minimum; None when not growing or at the top."""
    labels = [band.label for band in bands.bands]
    next_minimum = {label: band_minimum(bands, labels[i + 1]) for i, label in enumerate(labels[:-1])}
    return [
        math.log(next_minimum[tier] / arr) / growth if ok and growth > 0 and tier in next_minimum else None
        for arr, growth, ok, tier in zip(accounts.arr, accounts.growth, accounts.ok, accounts.tiers, strict=True)
    ]


def _explanations(
    settings: ForecastSettings,
    *,
    status: list[str],
    arr_now: list[float],
    arr_at_start: list[float],
    points: dict[str, list[int]],
    rates: dict[str, list[float | None]],
    blended_rates: list[float | None],
    r2: list[float],
    projected: dict[int, list[float | None]],
    reasons: list[dict[str, str]],
) -> list[str]:
    """Each account's JSON explanation: every number that led to its flags."""
    weights = settings.growth_weights.model_dump()
    encoder = json.JSONEncoder(sort_keys=True)  # one encoder: json.dumps(sort_keys=...) builds one per call
    arr_now_explained = _rounded(arr_now, 2)
    arr_at_start_list = _rounded(arr_at_start, 2)
    r2_explained = _rounded(r2, 4)
    projected_explained = {h: _rounded(projected[h], 2) for h in settings.horizons}
    explanations = []
    for index in range(len(status)):
        account_rates = {signal: rates[signal][index] for signal in SIGNALS}
        growth_rates = {**account_rates, "blended": blended_rates[index]}
        explanation = {
            "forecast_version": settings.version,
            "status": status[index],
            "method": "theil_sen_log_linear",
            "lookback_months": settings.lookback_months,
            "arr_now": arr_now_explained[index],
            "arr_at_lookback_start": arr_at_start_list[index],
            "points_used": {signal: points[signal][index] for signal in SIGNALS},
            "monthly_log_growth": growth_rates,
            "monthly_growth_pct": {
                k: round(100 * math.expm1(v), 2) if v is not None else None for k, v in growth_rates.items()
            },
            "weights": {s: weights[s] for s in SIGNALS if account_rates[s] is not None},
            "arr_fit_r2": r2_explained[index],
            "projected_arr": {str(h): projected_explained[h][index] for h in settings.horizons},
            "flags": reasons[index],
        }
        explanations.append(encoder.encode(explanation))
    return explanations


# --- running ---------------------------------------------------------------------------


def trajectories(conn: sa.Connection, as_of: date, months: int, usage_days: int) -> Any:
    import pandas as pd

    frame = warehouse.query_frame(
        conn, STAGE, "account_trajectories", as_of_date=as_of, months=months, usage_days=usage_days
    )
    for column in ("arr", "avg_licensed_seats", "avg_active_users"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["months_back"] = frame["months_back"].astype(int)
    frame["active_contracts"] = frame["active_contracts"].astype(int)
    return frame


def compute_forecast(
    as_of: date,
    *,
    warehouse_url: str | None = None,
    settings: ForecastSettings | None = None,
    rules: SegmentationRules | None = None,
) -> dict[str, Any]:
    """Replace the as-of date's partition of mart.account_forecasts; returns the flag counts."""
    rules = rules or load_rules()
    settings = settings or load_settings(rules=rules)
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)  # staging tables must exist even before the first extract
    with eng.connect() as conn:
        frame = trajectories(conn, as_of, settings.lookback_months, settings.usage_days)
    computed_at = datetime.now(UTC).replace(tzinfo=None)
    accounts, counts, statuses = 0, Counter({name: 0 for name in FLAG_NAMES}), Counter()
    with eng.begin() as conn:
        warehouse.delete_partition(conn, account_forecasts, account_forecasts.c.as_of_date == as_of)
        for part in _account_chunks(frame):
            forecasts = project(part, settings, rules.customer_value.arr_band)
            forecasts = forecasts[[c for c in forecasts.columns if not c.startswith("_")]]
            forecasts.insert(0, "as_of_date", as_of)
            forecasts["computed_at"] = computed_at
            warehouse.insert_frame(conn, account_forecasts, forecasts)
            accounts += len(forecasts)
            counts.update({name: int(forecasts[name].sum()) for name in FLAG_NAMES})
            statuses.update(forecasts["forecast_status"].value_counts().to_dict())
    summary = {
        "as_of_date": as_of.isoformat(),
        "accounts": accounts,
        "flags": dict(counts),
        "status": dict(statuses),
    }
    log.info("tier-migration forecast as of %s: %s", as_of, summary)
    return summary


# Accounts forecast at a time: each account's forecast is its own, and a whole 300k-account book at
# once (matrices, 271k JSON explanations, the frame to insert) peaked at 2,065 MiB.
ACCOUNTS_PER_CHUNK = 50_000


def _account_chunks(frame: Any) -> Any:
    """``frame``'s rows in groups of at most ACCOUNTS_PER_CHUNK accounts (all of an account's rows together)."""
    accounts = frame["account_id"].unique()
    for start in range(0, max(len(accounts), 1), ACCOUNTS_PER_CHUNK):
        chosen = accounts[start : start + ACCOUNTS_PER_CHUNK]
        yield frame if len(chosen) == len(accounts) else frame[frame["account_id"].isin(chosen)]


# --- backtest --------------------------------------------------------------------------


def _targets(settings: ForecastSettings) -> list[tuple[str, int]]:
    flags = settings.flags
    return [
        ("smb_to_mm_6_9m", flags.smb_to_mm_6_9m.within_months),
        ("mm_to_ent_12_15m", flags.mm_to_ent_12_15m.within_months),
        ("ent_decline_risk", flags.ent_decline_risk.horizon_months),
        *((f"tier_{h}m", h) for h in settings.horizons),
    ]


def evaluate_predictions(
    predictions: Any, actual: Any, settings: ForecastSettings, bands: Bands
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score forecasts against outcomes.

    ``predictions``: one row per (forecast_months_back, account) as returned by
    :func:`project`, plus ``forecast_months_back`` (j: the forecast was made as of
    as_of - j months). ``actual``: trajectories known at the evaluation date, with
    ``months_back`` relative to it. The outcome of a forecast made j months back with
    horizon h is read at months_back j - h. Returns (backtest rows, calibration rows).
    """
    import pandas as pd

    outcome = actual.set_index(["account_id", "months_back"])[["arr", "active_contracts"]]
    rows, calibration = [], []
    for target, horizon in _targets(settings):
        wanted = [horizon + i * settings.backtest.step_months for i in range(settings.backtest.forecast_dates)]
        chosen = predictions[predictions["forecast_months_back"].isin(wanted)].copy()
        if len(chosen):
            keys = list(zip(chosen["account_id"], chosen["forecast_months_back"] - horizon, strict=True))
            found = outcome.reindex(pd.MultiIndex.from_tuples(keys, names=["account_id", "months_back"]))
            chosen["actual_arr"] = found["arr"].fillna(0.0).to_numpy()
            chosen["actual_active"] = found["active_contracts"].fillna(0).to_numpy() > 0
        row: dict[str, Any] = {"target": target, "horizon_months": horizon}
        if target in ("smb_to_mm_6_9m", "mm_to_ent_12_15m"):
            flag = getattr(settings.flags, target)
            scored = chosen[chosen["current_tier"] == flag.from_tier] if len(chosen) else chosen
            predicted = scored[target].astype(bool) if len(scored) else pd.Series(dtype=bool)
            happened = (scored["actual_arr"] >= band_minimum(bands, flag.to_tier)) if len(scored) else predicted
            row |= _binary_scores(predicted, happened)
        elif target == "ent_decline_risk":
            flag = settings.flags.ent_decline_risk
            scored = chosen[chosen["current_tier"] == flag.tier] if len(chosen) else chosen
            predicted = scored[target].astype(bool) if len(scored) else pd.Series(dtype=bool)
            happened = (scored["actual_arr"] <= scored["arr"] * (1 - flag.min_decline)) if len(scored) else predicted
            row |= _binary_scores(predicted, happened)
        else:
            scored = chosen[chosen["forecast_status"] == "ok"] if len(chosen) else chosen
            if len(scored):
                projected = scored[f"_projected_{horizon}"].map(lambda v: band_label(v, bands))
                actual_tier = [
                    band_label(arr, bands) if active else CHURNED
                    for arr, active in zip(scored["actual_arr"], scored["actual_active"], strict=True)
                ]
                actual_tier = pd.Series(actual_tier, index=scored.index)
                row |= {
                    "accounts": len(scored),
                    "accuracy": float((projected == actual_tier).mean()),
                    "baseline_accuracy": float((scored["current_tier"] == actual_tier).mean()),
                }
                counts = pd.crosstab(projected, actual_tier)
                for projected_tier in counts.index:
                    for actual_label in counts.columns:
                        if counts.loc[projected_tier, actual_label]:
                            calibration.append(
                                {
                                    "horizon_months": horizon,
                                    "projected_tier": projected_tier,
                                    "actual_tier": actual_label,
                                    "accounts": int(counts.loc[projected_tier, actual_label]),
                                }
                            )
            else:
                row |= {"accounts": 0}
        dates = sorted(scored["forecast_months_back"].unique()) if len(scored) else []
        row |= {
            "forecast_dates": len(dates),
            "forecast_months_back": (min(dates), max(dates)) if dates else None,
        }
        rows.append(row)
    return rows, calibration


def _binary_scores(predicted: Any, happened: Any) -> dict[str, Any]:
    predicted, happened = predicted.astype(bool), happened.astype(bool)
    tp = int((predicted & happened).sum())
    return {
        "accounts": len(predicted),
        "predicted_positive": int(predicted.sum()),
        "actual_positive": int(happened.sum()),
        "true_positive": tp,
        "precision": ratio(tp, int(predicted.sum())),
        "recall": ratio(tp, int(happened.sum())),
        "accuracy": float((predicted == happened).mean()) if len(predicted) else None,
    }


def backtest_months(settings: ForecastSettings) -> list[int]:
    """Every forecast date needed, as months before the evaluation date."""
    months = set()
    for _target, horizon in _targets(settings):
        months |= {horizon + i * settings.backtest.step_months for i in range(settings.backtest.forecast_dates)}
    return sorted(months)


def run_backtest(
    as_of: date,
    *,
    warehouse_url: str | None = None,
    settings: ForecastSettings | None = None,
    rules: SegmentationRules | None = None,
) -> dict[str, Any]:
    """Forecast from past dates with the data known then and score against what happened.

    Replaces the as-of date's partition of mart.forecast_backtest and
    mart.forecast_tier_calibration in one transaction.
    """
    import pandas as pd

    rules = rules or load_rules()
    settings = settings or load_settings(rules=rules)
    bands = rules.customer_value.arr_band
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)  # staging tables must exist even before the first extract
    months = backtest_months(settings)
    parts = []
    with eng.connect() as conn:
        actual = trajectories(conn, as_of, max(months), settings.usage_days)
        for months_back in months:
            forecast_date = as_of - relativedelta(months=months_back)
            known_then = trajectories(conn, forecast_date, settings.lookback_months, settings.usage_days)
            past = project(known_then, settings, bands, explain=False)
            if len(past):
                parts.append(past.assign(forecast_months_back=months_back))
    predictions = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["forecast_months_back"])
    rows, calibration = evaluate_predictions(predictions, actual, settings, bands)
    computed_at = datetime.now(UTC).replace(tzinfo=None)
    records = []
    for row in rows:
        span = row.pop("forecast_months_back")
        records.append(
            {
                "as_of_date": as_of,
                **row,
                "first_forecast_date": as_of - relativedelta(months=span[1]) if span else None,
                "last_forecast_date": as_of - relativedelta(months=span[0]) if span else None,
                "forecast_version": settings.version,
                "computed_at": computed_at,
            }
        )
    backtest_frame = pd.DataFrame(records, columns=[c.name for c in forecast_backtest.c])
    for column in forecast_backtest.c:
        if isinstance(column.type, sa.Integer):  # counts missing for tier targets: keep them integers
            backtest_frame[column.name] = backtest_frame[column.name].astype("Int64")
    calibration_frame = pd.DataFrame(
        [{"as_of_date": as_of, **row} for row in calibration], columns=[c.name for c in forecast_tier_calibration.c]
    )
    with eng.begin() as conn:
        warehouse.replace_rows(conn, forecast_backtest, forecast_backtest.c.as_of_date == as_of, backtest_frame)
        warehouse.replace_rows(
            conn, forecast_tier_calibration, forecast_tier_calibration.c.as_of_date == as_of, calibration_frame
        )
    summary = {
        row["target"]: {k: row.get(k) for k in ("accounts", "precision", "recall", "accuracy", "baseline_accuracy")}
        for row in records
    }
    log.info("forecast backtest as of %s: %s", as_of, summary)
    return {"as_of_date": as_of.isoformat(), "targets": summary}
