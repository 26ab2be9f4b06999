"""include/rules/segmentation.yaml: the shipped file loads; bad files fail at load time.

Every bad file is the shipped one with a single change, so each test shows exactly which
mistake is caught, and the error names the file and the field.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from postsales import paths
from postsales.segment.rules import ConfigError, SegmentationRules, load_rules

SHIPPED = paths.rules_dir() / "segmentation.yaml"
Mutation = Callable[[dict[str, Any]], None]


def shipped_data() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def write_rules(tmp_path: Path, mutate: Mutation) -> Path:
    data = copy.deepcopy(shipped_data())
    mutate(data)
    path = tmp_path / "segmentation.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def reevaluate_reason(data: dict, name: str) -> dict:
    return next(reason for reason in data["quadrant"]["reevaluate"]["reasons"] if reason["name"] == name)


def still_grow(data: dict, name: str) -> dict:
    return next(condition for condition in data["quadrant"]["still_grow"] if condition["name"] == name)


def lifecycle_rule(data: dict, name: str) -> dict:
    return next(rule for rule in data["lifecycle"]["rules"]["rules"] if rule["name"] == name)


def arr_bands(data: dict) -> list[dict]:
    return data["customer_value"]["arr_band"]["bands"]


# --- the shipped file ----------------------------------------------------------------------


def test_shipped_rules_load():
    rules = load_rules()
    assert isinstance(rules, SegmentationRules)
    assert rules == load_rules(SHIPPED)
    assert rules.version == "2026.12.0"
    assert [band.label for band in rules.customer_value.arr_band.bands] == ["SMB", "Mid-Market", "Enterprise"]
    assert sum(c.weight for c in rules.health.components.values()) == pytest.approx(1)
    assert rules.quadrant.reevaluate.max_days == 180
    assert (rules.quadrant.share_of_wallet.feature, rules.quadrant.share_of_wallet.threshold) == ("wallet_share", 0.8)
    assert (rules.quadrant.wallet_size.feature, rules.quadrant.wallet_size.threshold) == ("wallet_potential_arr", 25000)


def test_data_gap_fields_of_the_shipped_rules():
    # go_live_date, lifecycle_stage, segment_override and referenceable are read but optional.
    rules = load_rules()
    assert rules.data_gap_fields() == {
        "accounts": {"annual_revenue", "employee_count", "industry", "wallet_potential_arr"}
    }
    assert rules.feature_gaps("wallet_share") == ["accounts.wallet_potential_arr"]
    assert rules.feature_gaps("go_live_date") == []  # optional
    assert rules.feature_gaps("nps_latest") == []  # not a CRM field


def test_data_gap_fields_respect_optional_fields(tmp_path):
    def mutate(data):
        data["optional_fields"] = ["lifecycle_stage", "segment_override", "annual_revenue"]

    rules = load_rules(write_rules(tmp_path, mutate))
    # go_live_date and referenceable are no longer optional; annual_revenue now is.
    assert rules.data_gap_fields() == {
        "accounts": {"employee_count", "industry", "wallet_potential_arr", "go_live_date", "referenceable"}
    }


def test_data_gap_fields_follow_what_the_rules_read(tmp_path):
    def mutate(data):
        # the 2x2 on ARR percentile x annual revenue: wallet_potential_arr is no longer read; country is
        data["quadrant"]["share_of_wallet"]["feature"] = "arr_percentile"
        data["quadrant"]["wallet_size"]["feature"] = "annual_revenue"
        data["quadrant"]["reevaluate"]["reasons"].append({"name": "abroad", "when": {"country": {"ne": "US"}}})

    rules = load_rules(write_rules(tmp_path, mutate))
    assert rules.data_gap_fields() == {"accounts": {"annual_revenue", "employee_count", "industry", "country"}}


# --- bad files -------------------------------------------------------------------------------


def _add_condition(where: Callable[[dict], dict], field: str, ops: dict) -> Mutation:
    return lambda data: where(data)["when"].update({field: ops})


BAD: dict[str, tuple[Mutation, list[str]]] = {
    # a typo in a rule condition: the message lists the fields that exist
    "unknown_field": (
        _add_condition(lambda d: reevaluate_reason(d, "low_nps"), "nps_lastest", {"lte": 6}),
        ["quadrant.reevaluate.reasons.low_nps", "unknown field 'nps_lastest'", "fields available here", "nps_latest"],
    ),
    "unknown_axis_feature": (
        lambda d: d["quadrant"]["wallet_size"].update({"feature": "wallet_potential"}),
        ["quadrant.wallet_size.feature", "unknown field 'wallet_potential'", "wallet_potential_arr"],
    ),
    # the quadrant cannot be placed on an axis computed after it
    "axis_from_a_later_layer": (
        lambda d: d["quadrant"]["share_of_wallet"].update({"feature": "engagement_model"}),
        ["quadrant.share_of_wallet.feature", "unknown field 'engagement_model'"],
    ),
    # the quadrant is computed after the lifecycle stage
    "later_layer": (
        _add_condition(lambda d: lifecycle_rule(d, "renewal_window"), "quadrant", {"in": ["Grow"]}),
        ["lifecycle.rules.renewal_window", "unknown field 'quadrant'"],
    ),
    # product adoption is computed in the same layer as the lifecycle stage
    "same_layer": (
        _add_condition(lambda d: lifecycle_rule(d, "renewal_window"), "adoption_segment", {"in": ["Steady"]}),
        ["lifecycle.rules.renewal_window", "unknown field 'adoption_segment'"],
    ),
    "later_layer_health_band": (
        lambda d: d["customer_status"]["health_band"].update({"feature": "quadrant"}),
        ["customer_status.health_band.feature", "unknown field 'quadrant'"],
    ),
    "unknown_health_feature": (
        lambda d: d["health"]["components"]["usage"].update({"feature": "seat_use"}),
        ["health.components.usage.feature", "unknown field 'seat_use'", "seat_utilization"],
    ),
    "unknown_override_field": (
        lambda d: d["customer_value"].update({"override_field": "tier_override"}),
        ["customer_value.override_field", "unknown field 'tier_override'"],
    ),
    "overlapping_bands": (
        lambda d: arr_bands(d)[1].update({"min": 20000}),
        ["customer_value.arr_band", "overlap", "'SMB'", "'Mid-Market'"],
    ),
    "unordered_bands": (
        lambda d: d["customer_value"]["arr_band"].update(
            bands=[
                {"label": "Mid-Market", "min": 25000, "max": 100000},
                {"label": "SMB", "min": 0, "max": 25000},
                {"label": "Enterprise", "min": 100000},
            ]
        ),
        ["customer_value.arr_band", "out of order", "'Mid-Market'", "'SMB'"],
    ),
    "gap_between_bands": (
        lambda d: arr_bands(d)[1].update({"min": 30000}),
        ["customer_value.arr_band", "gap between bands", "contiguous"],
    ),
    "band_min_not_below_max": (
        lambda d: d["customer_status"]["nps_category"]["bands"][1].update({"max": 7}),
        ["customer_status.nps_category", "'Passive'", "must be below max"],
    ),
    "middle_band_without_min": (
        lambda d: d["firmographic"]["employee_band"]["bands"][2].pop("min"),
        ["firmographic.employee_band", "'201-1000'", "only the first band may omit min"],
    ),
    "middle_band_without_max": (
        lambda d: d["firmographic"]["revenue_band"]["bands"][1].pop("max"),
        ["firmographic.revenue_band", "'10M-100M'", "only the last band may omit max"],
    ),
    "duplicate_band_label": (
        lambda d: arr_bands(d)[1].update({"label": "SMB"}),
        ["customer_value.arr_band", "duplicate band labels"],
    ),
    "industry_in_two_groups": (
        lambda d: d["firmographic"]["industry_group"]["groups"]["Healthcare"].append("Software"),
        ["firmographic.industry_group", "'Software'", "'Technology & Media'", "'Healthcare'"],
    ),
    "health_weights_not_one": (
        lambda d: d["health"]["components"]["usage"].update({"weight": 0.4}),
        ["field 'health'", "weights must sum to 1", "1.1"],
    ),
    "health_zero_equals_full": (
        lambda d: d["health"]["components"]["csat"].update({"zero_at": 3, "full_at": 3}),
        ["health.components.csat", "zero_at and full_at must differ"],
    ),
    "unknown_op": (
        lambda d: reevaluate_reason(d, "low_nps").update({"when": {"nps_latest": {"le": 6}}}),
        ["quadrant.reevaluate.reasons.0.when.nps_latest.le", "'lte'"],
    ),
    "in_needs_a_list": (
        lambda d: reevaluate_reason(d, "low_nps").update({"when": {"nps_latest": {"in": 6}}}),
        ["quadrant.reevaluate.reasons.0", "nps_latest.in needs a list"],
    ),
    "comparison_needs_a_number": (
        lambda d: reevaluate_reason(d, "low_nps").update({"when": {"nps_latest": {"lte": "six"}}}),
        ["quadrant.reevaluate.reasons.0", "nps_latest.lte needs a number"],
    ),
    "is_null_needs_a_boolean": (
        lambda d: lifecycle_rule(d, "not_live_yet").update({"when": {"go_live_date": {"is_null": "yes"}}}),
        ["lifecycle.rules.rules.0", "go_live_date.is_null needs true or false"],
    ),
    "unknown_quadrant_label": (
        lambda d: d["quadrant"]["cells"].update({"large_wallet_low_share": "Nurture"}),
        ["quadrant.cells.large_wallet_low_share", "'Grow', 'Protect' or 'Manage'"],
    ),
    # Re-evaluate is the overlay, not a region of the plane
    "reevaluate_as_a_cell": (
        lambda d: d["quadrant"]["cells"].update({"small_wallet_low_share": "Re-evaluate"}),
        ["quadrant.cells.small_wallet_low_share", "'Grow', 'Protect' or 'Manage'"],
    ),
    "unknown_cell": (
        lambda d: d["quadrant"]["cells"].update({"medium_wallet_low_share": "Grow"}),
        ["quadrant.cells", "medium_wallet_low_share"],
    ),
    # a cell without a quadrant would leave its accounts unplaced
    "cell_without_a_quadrant": (
        lambda d: d["quadrant"]["cells"].pop("small_wallet_high_share"),
        ["field 'quadrant'", "every cell of the plane needs a quadrant", "small_wallet_high_share"],
    ),
    "reason_without_conditions": (
        lambda d: reevaluate_reason(d, "low_csat").update({"when": {}}),
        ["quadrant.reevaluate.reasons.1.when"],
    ),
    "lifecycle_label_not_a_stage": (
        lambda d: lifecycle_rule(d, "not_live_yet").update({"label": "Onboarding"}),
        ["field 'lifecycle'", "'Onboarding'", "not one of the stages"],
    ),
    "lifecycle_default_not_a_stage": (
        lambda d: d["lifecycle"]["rules"].update({"default": "Live"}),
        ["field 'lifecycle'", "'Live'"],
    ),
    "condition_field_not_an_identifier": (
        _add_condition(lambda d: d["engagement_model"]["rules"][0], "arr; drop table", {"gt": 1}),
        ["engagement_model.rules.0.when.arr; drop table", "should match pattern"],
    ),
    "band_feature_not_an_identifier": (
        lambda d: d["customer_value"]["arr_band"].update({"feature": "arr; drop table"}),
        ["customer_value.arr_band.feature", "should match pattern"],
    ),
    "rule_name_not_an_identifier": (
        lambda d: reevaluate_reason(d, "low_nps").update({"name": "low nps'); --"}),
        ["quadrant.reevaluate.reasons.0.name", "should match pattern"],
    ),
    "duplicate_rule_names": (
        lambda d: reevaluate_reason(d, "low_csat").update({"name": "low_nps"}),
        ["quadrant.reevaluate.reasons", "duplicate condition names ['low_nps']"],
    ),
    "duplicate_still_grow_names": (
        lambda d: still_grow(d, "high_growth").update({"name": "first_year"}),
        ["quadrant.still_grow", "duplicate condition names ['first_year']"],
    ),
    # a reason has no label of its own: the overlay's is Re-evaluate
    "reason_with_a_label": (
        lambda d: reevaluate_reason(d, "low_nps").update({"label": "Manage"}),
        ["quadrant.reevaluate.reasons.0.label", "Extra inputs are not permitted"],
    ),
    "label_and_label_from": (
        lambda d: d["engagement_model"]["rules"][0].update({"label_from": "value_tier"}),
        ["engagement_model.rules.0", "exactly one of label or label_from"],
    ),
    "unknown_section": (
        lambda d: d.update({"quadrants": {}}),
        ["field 'quadrants'", "Extra inputs are not permitted"],
    ),
    "missing_section": (
        lambda d: d.pop("health"),
        ["field 'health'", "Field required"],
    ),
    "reevaluate_days_not_positive": (
        lambda d: d["quadrant"]["reevaluate"].update({"max_days": 0}),
        ["quadrant.reevaluate.max_days"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_rules_file_names_file_and_field(tmp_path, case):
    mutate, expected = BAD[case]
    path = write_rules(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    missing = [text for text in expected if text not in message]
    assert not missing, f"{missing} not in: {message}"


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_rules(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(broken)


# --- mistakes that would load and only fail (or misbehave) when the rules run --------------
# Each case: the mutation, text the error must contain, and what would go wrong if it loaded.

LOADS_BUT_SHOULD_NOT: dict[str, tuple[Mutation, list[str], str]] = {
    "boolean_as_number": (
        lambda d: reevaluate_reason(d, "low_nps").update({"when": {"nps_latest": {"lte": True}}}),
        ["nps_latest.lte needs a number"],
        "Rule._one_label accepts a bool for lt/lte/gt/gte because bool is an int subclass; the SQL then "
        "fails at run time (PostgreSQL: operator does not exist: double precision <= boolean)",
    ),
    "numeric_op_on_text_field": (
        _add_condition(lambda d: still_grow(d, "high_growth"), "industry", {"gte": 5}),
        ["quadrant.still_grow.high_growth", "industry"],
        "field kinds in FEATURES are never checked: a numeric comparison on a text field loads and fails "
        "at run time (PostgreSQL: operator does not exist: text >= integer)",
    ),
    "band_on_text_field": (
        lambda d: d["customer_value"]["arr_band"].update({"feature": "industry"}),
        ["customer_value.arr_band.feature", "industry"],
        "bands on a non-numeric feature load and fail at run time (text < double precision)",
    ),
    "health_component_on_text_field": (
        lambda d: d["health"]["components"]["usage"].update({"feature": "industry"}),
        ["health.components.usage.feature", "industry"],
        "a health component on a non-numeric feature loads and fails at run time (text - double precision)",
    ),
    "case_study_in_needs_a_list": (
        lambda d: d["case_study"]["when"].update({"adoption_segment": {"in": "Power users"}}),
        ["case_study", "adoption_segment.in needs a list"],
        "CaseStudy.when skips the value checks of Rule: a scalar for `in` loads and compile_segments raises "
        "sqlalchemy ArgumentError",
    ),
    "case_study_is_needs_a_boolean": (
        lambda d: d["case_study"]["when"].update({"referenceable": {"is": "no"}}),
        ["case_study", "referenceable.is needs true or false"],
        "CaseStudy.when skips the value checks of Rule: `is: 'no'` (a string) loads and is compiled as "
        "`referenceable IS true` (any truthy value), silently inverting the condition",
    ),
    "reevaluate_moves_to_unknown_quadrant": (
        lambda d: d["quadrant"]["reevaluate"].update({"moves_to": "Nurture"}),
        ["quadrant.reevaluate.moves_to", "'Grow', 'Protect' or 'Manage'"],
        "Quadrant._four_quadrants checks rule labels only: reevaluate_moves_to (and reevaluate_label) may be "
        "any string, giving recommended_quadrant 'Nurture' or a Re-evaluate dwell that never starts",
    ),
    "reevaluate_over_unknown_quadrant": (
        lambda d: d["quadrant"]["reevaluate"].update({"over": ["Grow", "Protcet"]}),
        ["quadrant.reevaluate.over.1", "'Grow', 'Protect' or 'Manage'"],
        "a typo in the quadrants Re-evaluate overlays would load and silently never overlay Protect",
    ),
    "axis_on_a_text_field": (
        lambda d: d["quadrant"]["wallet_size"].update({"feature": "industry"}),
        ["quadrant.wallet_size.feature", "'industry' is text, a number is needed here"],
        "an axis on a text feature would load and fail at run time (text >= double precision)",
    ),
    "optional_field_typo": (
        lambda d: d.update(
            {"optional_fields": ["go_live_dat", "lifecycle_stage", "segment_override", "referenceable"]}
        ),
        ["optional_fields", "go_live_dat"],
        "optional_fields are not checked against the source columns: a typo silently makes go_live_date "
        "required in the gate, quarantining every account not yet live",
    ),
}


@pytest.mark.parametrize("case", sorted(LOADS_BUT_SHOULD_NOT))
def test_mistake_caught_at_load_time(tmp_path, case):
    mutate, expected, _ = LOADS_BUT_SHOULD_NOT[case]
    path = write_rules(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert all(text in message for text in expected), message
