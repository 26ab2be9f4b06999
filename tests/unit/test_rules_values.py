"""A rules value that does not fit fails at load time, naming the file and the field (issue #16).

Every case loaded before and then crashed a task at run time (a SQL or Python traceback that
Airflow retried) or silently changed a result: the shipped file with one value changed.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from postsales import cohorts, config, forecast, outcomes, paths
from postsales.config import ConfigError
from postsales.crm.config import load_crm_sync
from postsales.segment.rules import load_rules

LOADERS: dict[str, Callable[..., Any]] = {
    "segmentation.yaml": load_rules,
    "expectations.yaml": config.load_expectations,
    "forecast.yaml": forecast.load_settings,
    "review.yaml": outcomes.load_settings,
    "cohorts.yaml": cohorts.load_settings,
    "crm_sync.yaml": load_crm_sync,
}
NAN, INF = float("nan"), float("inf")


def adoption_rule(when: dict) -> Callable[[dict], None]:
    """Put a rule with ``when`` first in product_adoption (as rule 0)."""
    return lambda d: d["product_adoption"]["rules"].insert(0, {"name": "h", "label": "Growing", "when": when})


def band(section: str, name: str, index: int, **values) -> Callable[[dict], None]:
    return lambda d: d[section][name]["bands"][index].update(values)


def health(component: str, **values) -> Callable[[dict], None]:
    return lambda d: d["health"]["components"][component].update(values)


def column(entity: str, name: str, **values) -> Callable[[dict], None]:
    return lambda d: d["entities"][entity]["columns"][name].update(values)


# file, mutation, field named in the message, reason in the message; the comment says what happened
CASES: dict[str, tuple[str, Callable[[dict], None], str, str]] = {
    # DuckDB: Could not convert string 'lots' to DOUBLE
    "text_compared_with_a_number": (
        "segmentation.yaml",
        adoption_rule({"usage_days": {"eq": "lots"}}),
        "product_adoption.rules.0",
        "usage_days.eq: 'lots' is not a finite number within ±1e+18 (usage_days is a number field)",
    ),
    "text_list_for_a_number": (
        "segmentation.yaml",
        adoption_rule({"arr": {"in": ["high", "low"]}}),
        "product_adoption.rules.0",
        "arr.in: 'high' is not a finite number within ±1e+18",
    ),
    # PostgreSQL: invalid input syntax for type boolean
    "text_for_a_boolean": (
        "segmentation.yaml",
        adoption_rule({"referenceable": {"eq": "maybe"}}),
        "product_adoption.rules.0",
        "referenceable.eq: 'maybe' is not true or false (referenceable is a boolean field)",
    ),
    # sqlalchemy: a dict is no SQL value
    "mapping_for_text": (
        "segmentation.yaml",
        adoption_rule({"industry": {"eq": {"a": 1}}}),
        "product_adoption.rules.0",
        "industry.eq: {'a': 1} is not text (industry is a text field)",
    ),
    "nested_list_for_text": (
        "segmentation.yaml",
        adoption_rule({"industry": {"in": [["a"]]}}),
        "product_adoption.rules.0",
        "industry.in: ['a'] is not text",
    ),
    # DuckDB: Conversion Error: invalid date field format: "yesterday"
    "text_for_a_date": (
        "segmentation.yaml",
        adoption_rule({"go_live_date": {"eq": "yesterday"}}),
        "product_adoption.rules.0",
        "go_live_date.eq: 'yesterday' is not a date (YYYY-MM-DD) (go_live_date is a date field)",
    ),
    # `= NULL` is never true: the rule silently never matched
    "null_for_text": (
        "segmentation.yaml",
        adoption_rule({"industry": {"eq": None}}),
        "product_adoption.rules.0",
        "industry.eq: None is not text (industry is a text field) (use is_null for a missing value)",
    ),
    # DuckDB: an integer literal beyond HUGEINT
    "comparison_beyond_bigint": (
        "segmentation.yaml",
        adoption_rule({"arr": {"lt": 10**40}}),
        "product_adoption.rules.0",
        "arr.lt needs a number, finite and within ±1e+18",
    ),
    # every comparison with NaN is false: the rule silently never matched
    "comparison_with_nan": (
        "segmentation.yaml",
        adoption_rule({"arr": {"lt": NAN}}),
        "product_adoption.rules.0",
        "arr.lt needs a number, finite and within ±1e+18",
    ),
    # INT32 casts of the windows in account_features.sql
    "window_of_a_trillion_days": (
        "segmentation.yaml",
        lambda d: d["windows"].update(usage_days=10**12),
        "windows.usage_days",
        "less than or equal to 3660",
    ),
    "window_beyond_bigint": (
        "segmentation.yaml",
        lambda d: d["windows"].update(nps_days=2**63),
        "windows.nps_days",
        "less than or equal to 3660",
    ),
    "reevaluate_days_beyond_bigint": (
        "segmentation.yaml",
        lambda d: d["quadrant"]["reevaluate"].update(max_days=2**70),
        "quadrant.reevaluate.max_days",
        "less than or equal to 3660",
    ),
    # no value is >= NaN: every account would fall on the low side of the axis
    "quadrant_threshold_nan": (
        "segmentation.yaml",
        lambda d: d["quadrant"]["share_of_wallet"].update(threshold=NAN),
        "quadrant.share_of_wallet.threshold",
        "Input should be a finite number",
    ),
    # NaN bounds: no value is >= NaN, accounts fell out of every band
    "band_bound_nan": (
        "segmentation.yaml",
        band("customer_value", "arr_band", 1, min=NAN),
        "customer_value.arr_band.bands.1.min",
        "Input should be a finite number",
    ),
    "band_bound_inf": (
        "segmentation.yaml",
        band("customer_value", "arr_band", 1, max=INF),
        "customer_value.arr_band.bands.1.max",
        "Input should be a finite number",
    ),
    # health scores silently became null
    "health_zero_at_nan": (
        "segmentation.yaml",
        health("usage", zero_at=NAN),
        "health.components.usage.zero_at",
        "Input should be a finite number",
    ),
    "health_full_at_inf": (
        "segmentation.yaml",
        health("usage", full_at=INF),
        "health.components.usage.full_at",
        "Input should be a finite number",
    ),
    # full_at - zero_at overflowed to -inf
    "health_ends_overflow": (
        "segmentation.yaml",
        health("usage", zero_at=1e308, full_at=-1e308),
        "health.components.usage.zero_at",
        "less than or equal to 1000000000000000000",
    ),
    # PostgreSQL: A string literal cannot contain NUL (0x00) characters
    "label_with_nul": (
        "segmentation.yaml",
        band("customer_value", "arr_band", 0, label="SMB\x00x"),
        "customer_value.arr_band.bands.0.label",
        "holds the control character U+0000 at position 3",
    ),
    "group_value_with_escape": (
        "segmentation.yaml",
        lambda d: d["firmographic"]["industry_group"]["groups"]["Healthcare"].append("Pharma\x1b[31m"),
        "firmographic.industry_group.groups.Healthcare.",
        "holds the control character U+001B",
    ),
    "condition_text_with_nul": (
        "segmentation.yaml",
        adoption_rule({"industry": {"eq": "Soft\x00ware"}}),
        "product_adoption.rules.0",
        "holds the control character U+0000",
    ),
    "version_with_nul": (
        "segmentation.yaml",
        lambda d: d.update(version="v1\x00"),
        "version",
        "holds the control character U+0000",
    ),
    # OverflowError in the gate (max + 1 day), or beyond what pandas timestamps hold
    "plausible_max_9999": (
        "expectations.yaml",
        lambda d: d["plausible_dates"].update(max=dt.date(9999, 12, 31)),
        "plausible_dates.max",
        "less than or equal to 2262-04-10",
    ),
    "plausible_min_year_1": (
        "expectations.yaml",
        lambda d: d["plausible_dates"].update(min=dt.date(1, 1, 1)),
        "plausible_dates.min",
        "greater than or equal to 1677-09-22",
    ),
    # GX's pydantic ValidationError at run time
    "column_min_nan": (
        "expectations.yaml",
        column("accounts", "employee_count", min=NAN),
        "entities.accounts.columns.employee_count.min",
        "Input should be a finite number",
    ),
    "column_max_minus_inf": (
        "expectations.yaml",
        column("accounts", "employee_count", max=-INF),
        "entities.accounts.columns.employee_count.max",
        "Input should be a finite number",
    ),
    "ranges_when_nan": (
        "expectations.yaml",
        lambda d: d["entities"]["survey_responses"]["columns"]["score"]["ranges_when"]["survey_type"].update(
            nps=[NAN, NAN]
        ),
        "entities.survey_responses.columns.score.ranges_when.survey_type.nps.0",
        "Input should be a finite number",
    ),
    "allowed_value_with_nul": (
        "expectations.yaml",
        column("accounts", "segment_override", allowed=["SMB", "Mid-Market", "Enter\x00prise"]),
        "entities.accounts.columns.segment_override.allowed.2",
        "holds the control character U+0000",
    ),
    # OverflowError: math range error in compute_forecast
    "forecast_horizon_100000_months": (
        "forecast.yaml",
        lambda d: d.update(horizons=[6, 9, 12, 15, 100000]),
        "horizons.4",
        "less than or equal to 60",
    ),
    "forecast_weight_nan": (
        "forecast.yaml",
        lambda d: d["growth_weights"].update(seats=NAN),
        "growth_weights.seats",
        "Input should be a finite number",
    ),
    "review_horizon_beyond_bigint": (
        "review.yaml",
        lambda d: d["health_outcomes"].update(horizons=[3, 6, 2**63]),
        "health_outcomes.horizons.2",
        "less than or equal to 60",
    ),
    "review_round_to_inf": (
        "review.yaml",
        lambda d: d["review"]["value_tiers"].update(round_to=INF),
        "review.value_tiers.round_to",
        "Input should be a finite number",
    ),
    "review_signal_horizon_beyond_bigint": (
        "review.yaml",
        lambda d: d["review"].update(signal_horizon_months=2**63),
        "review.signal_horizon_months",
        "less than or equal to 60",
    ),
    "crm_max_changed_share_nan": (
        "crm_sync.yaml",
        lambda d: d.setdefault("safety", {}).update(max_changed_share=NAN),
        "safety.max_changed_share",
        "Input should be a finite number",
    ),
    "cohorts_description_with_nul": (
        "cohorts.yaml",
        lambda d: d["pricing"].update(description="new list prices\x00"),
        "pricing.description",
        "holds the control character U+0000",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_rules_value_that_does_not_fit_fails_at_load_naming_file_and_field(tmp_path, case):
    name, mutate, field, reason = CASES[case]
    data = copy.deepcopy(yaml.safe_load((paths.rules_dir() / name).read_text(encoding="utf-8")))
    mutate(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        LOADERS[name](path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert f"field '{field}" in message and reason in message, message


def test_the_shipped_rules_files_load():
    for name, load in LOADERS.items():
        load(paths.rules_dir() / name)
