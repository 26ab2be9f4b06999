"""Segmentation rules: ``include/rules/segmentation.yaml`` as validated pydantic models.

Rules are data. Every field a rule reads is checked against the fields available at
that point of the evaluation order, so a typo fails at load time with the file, the
field and the list of valid names, and no identifier from YAML reaches SQL unchecked.

Evaluation order (a rule may read features and anything computed in an earlier layer):

1. features: ``include/sql/segment/account_features.sql`` (one row per customer)
2. firmographic bands and industry groups, value bands, NPS and CSAT bands, health
3. value tier, firmographic segment, lifecycle stage, product adoption, health band
4. customer status, quadrant
5. engagement model, case-study candidate
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from postsales import paths
from postsales.config import IDENTIFIER, ConfigError, StrictModel, Text, check_printable, load_yaml

# Columns of account_features.sql, with whether each is numeric.
FEATURES: dict[str, str] = {
    "account_id": "text",
    # Whether a row of the account (a version of its CRM record) was known at the as-of date;
    # false when, say, every row of it was quarantined: its attributes are then missing.
    "account_known": "boolean",
    "name": "text",
    "industry": "text",
    "country": "text",
    "employee_count": "number",
    "annual_revenue": "number",
    "wallet_potential_arr": "number",
    "go_live_date": "date",
    "crm_lifecycle_stage": "text",
    "referenceable": "boolean",
    "segment_override": "text",
    "customer_since": "date",
    "active_contracts": "number",
    "arr": "number",
    "arr_90d_ago": "number",
    "arr_365d_ago": "number",
    "arr_change_90d": "number",
    "arr_growth_365d": "number",
    "arr_percentile": "number",
    "wallet_share": "number",
    "unrealized_wallet": "number",
    "tenure_days": "number",
    "tenure_months": "number",
    "days_since_go_live": "number",
    "next_renewal_date": "date",
    "days_to_renewal": "number",
    "nps_latest": "number",
    "nps_avg": "number",
    "nps_responses": "number",
    "csat_avg": "number",
    "csat_responses": "number",
    "usage_days": "number",
    "avg_active_users": "number",
    "avg_licensed_seats": "number",
    "seat_utilization": "number",
    "events_per_active_user": "number",
    "avg_features_used": "number",
    "avg_active_users_previous": "number",
    "usage_trend": "number",
}

# The source columns each feature is computed from (entity, column): when one a rule reads
# is empty, the feature is missing and what depends on it falls back to Unknown (a data gap).
FEATURE_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "industry": (("accounts", "industry"),),
    "country": (("accounts", "country"),),
    "employee_count": (("accounts", "employee_count"),),
    "annual_revenue": (("accounts", "annual_revenue"),),
    "wallet_potential_arr": (("accounts", "wallet_potential_arr"),),
    "wallet_share": (("accounts", "wallet_potential_arr"),),
    "unrealized_wallet": (("accounts", "wallet_potential_arr"),),
    "go_live_date": (("accounts", "go_live_date"),),
    "days_since_go_live": (("accounts", "go_live_date"),),
    "crm_lifecycle_stage": (("accounts", "lifecycle_stage"),),
    "referenceable": (("accounts", "referenceable"),),
    "segment_override": (("accounts", "segment_override"),),
}

TEXT_OUTPUTS_LAYER = {
    # name -> layer it is computed in
    "employee_band": 2,
    "industry_group": 2,
    "revenue_band": 2,
    "arr_band": 2,
    "arr_percentile_band": 2,
    "nps_category": 2,
    "csat_band": 2,
    "health_score": 2,
    "value_tier": 3,
    "value_tier_source": 3,
    "firmographic_segment": 3,
    "lifecycle_stage": 3,
    "adoption_segment": 3,
    "health_band": 3,
    "status_segment": 4,
    "quadrant": 4,
    "engagement_model": 5,
    "case_study_candidate": 5,
}

# The value of a band, an industry group or a rule set that cannot be determined because an
# input it needs is missing (a data gap: see SegmentationRules.data_gap_fields).
UNKNOWN = "Unknown"
# Between the parts of a composite segment ("51-200 · Technology & Media").
PART_SEPARATOR = " · "

# Numbers in the rules (band bounds, health ends, condition values): finite, and small enough
# that an integer fits BIGINT, the widest integer both warehouses bind (10**40 failed on DuckDB).
NUMBER_LIMIT = 1e18
Number = Annotated[float, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT)]
# Day windows: at most ten years (a 10**12-day window overflowed the SQL's INT32 date arithmetic).
MAX_DAYS = 3660
Days = Annotated[int, Field(gt=0, le=MAX_DAYS)]
FieldName = Annotated[str, Field(pattern=IDENTIFIER.pattern)]


class Band(StrictModel):
    """``min`` inclusive, ``max`` exclusive; omitted = unbounded."""

    label: Text = Field(min_length=1)
    min: Number | None = None
    max: Number | None = None


class Bands(StrictModel):
    feature: FieldName
    bands: list[Band] = Field(min_length=1)
    missing_label: Text = UNKNOWN

    @model_validator(mode="after")
    def _ordered_and_contiguous(self) -> Bands:
        bands = self.bands
        for index, band in enumerate(bands):
            if band.min is not None and band.max is not None and band.min >= band.max:
                raise ValueError(f"band {band.label!r}: min {band.min:g} must be below max {band.max:g}")
            if index and band.min is None:
                raise ValueError(f"band {band.label!r}: only the first band may omit min")
            if index < len(bands) - 1 and band.max is None:
                raise ValueError(f"band {band.label!r}: only the last band may omit max")
            if index:
                previous = bands[index - 1]
                if band.min < previous.max:
                    raise ValueError(
                        f"bands {previous.label!r} and {band.label!r} overlap or are out of order "
                        f"({previous.label} ends at {previous.max:g}, {band.label} starts at {band.min:g})"
                    )
                if band.min > previous.max:
                    raise ValueError(
                        f"gap between bands {previous.label!r} (max {previous.max:g}) and {band.label!r} "
                        f"(min {band.min:g}): bands must be contiguous"
                    )
        labels = [band.label for band in bands]
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate band labels in {labels}")
        return self


class Groups(StrictModel):
    feature: FieldName
    groups: dict[Text, list[Text]]
    default: Text = "Other"  # a value in no group
    missing_label: Text = UNKNOWN  # no value

    @model_validator(mode="after")
    def _each_value_once(self) -> Groups:
        seen: dict[str, str] = {}
        for group, values in self.groups.items():
            for value in values:
                if value in seen:
                    raise ValueError(f"{value!r} is in both {seen[value]!r} and {group!r}")
                seen[value] = group
        return self


Op = Literal["lt", "lte", "gt", "gte", "eq", "ne", "in", "not_in", "is_null", "is"]


COMPARISONS = ("lt", "lte", "gt", "gte")


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)  # YAML's true is not a number here
        and math.isfinite(value)
        and abs(value) <= NUMBER_LIMIT
    )


# What a value compared with a field of each kind must be (eq, ne and each item of in / not_in).
VALUE_KINDS: dict[str, tuple[str, Any]] = {
    "number": (f"a finite number within ±{NUMBER_LIMIT:g}", _is_number),
    "text": ("text", lambda value: isinstance(value, str)),
    "boolean": ("true or false", lambda value: isinstance(value, bool)),
    "date": ("a date (YYYY-MM-DD)", lambda value: isinstance(value, date) and not isinstance(value, datetime)),
}


def check_condition_values(where: str, when: dict[str, dict[str, Any]]) -> None:
    """Each op gets the kind of value it needs, and a value the kind of its field (text for a
    text field, a date for a date field...): the SQL would fail on anything else, at run time."""
    for field, conditions in when.items():
        known = field in FEATURES or field in TEXT_OUTPUTS_LAYER  # unknown ones are reported later
        kind, fits = VALUE_KINDS[field_kind(field)]
        for op, value in conditions.items():
            if op in ("in", "not_in") and not isinstance(value, list):
                raise ValueError(f"{where}: {field}.{op} needs a list")
            if op in ("is_null", "is") and not isinstance(value, bool):
                raise ValueError(f"{where}: {field}.{op} needs true or false")
            if op in COMPARISONS and not _is_number(value):
                raise ValueError(f"{where}: {field}.{op} needs a number, finite and within ±{NUMBER_LIMIT:g}")
            if op in ("eq", "ne", "in", "not_in") and known:
                values = value if op in ("in", "not_in") else [value]
                wrong = [item for item in values if not fits(item)]
                if wrong:
                    raise ValueError(
                        f"{where}: {field}.{op}: {wrong[0]!r} is not {kind} ({field} is a {field_kind(field)} field)"
                        + (" (use is_null for a missing value)" if wrong[0] is None else "")
                    )
                for item in values:
                    if isinstance(item, str):
                        check_printable(item)


class Rule(StrictModel):
    """All conditions must hold (AND); the first matching rule in the list wins."""

    name: FieldName
    label: Text | None = None
    label_from: FieldName | None = None
    when: dict[FieldName, dict[Op, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_label(self) -> Rule:
        if (self.label is None) == (self.label_from is None):
            raise ValueError(f"rule {self.name!r}: give exactly one of label or label_from")
        check_condition_values(f"rule {self.name!r}", self.when)
        return self


def _unique_named(items: list, kind: str) -> list:
    """``items`` (rules or conditions) when no two share a name."""
    names = [item.name for item in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate {kind} names {duplicates}")
    return items


class RuleSet(StrictModel):
    rules: list[Rule] = Field(default_factory=list)
    default: Text

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        return _unique_named(rules, "rule")


class Firmographic(StrictModel):
    employee_band: Bands
    industry_group: Groups
    revenue_band: Bands


class CustomerValue(StrictModel):
    arr_band: Bands
    arr_percentile_band: Bands
    override_field: FieldName | None = "segment_override"
    allowed_overrides: list[Text] = Field(default_factory=list)


class Lifecycle(StrictModel):
    stages: list[Text] = Field(min_length=1)
    crm_precedence: bool = False
    crm_field: FieldName = "crm_lifecycle_stage"
    rules: RuleSet

    @model_validator(mode="after")
    def _labels_are_stages(self) -> Lifecycle:
        for label in [rule.label for rule in self.rules.rules if rule.label] + [self.rules.default]:
            if label not in self.stages:
                raise ValueError(f"lifecycle label {label!r} is not one of the stages {self.stages}")
        return self


class CustomerStatus(StrictModel):
    nps_category: Bands
    csat_band: Bands
    health_band: Bands


class HealthComponent(StrictModel):
    feature: FieldName
    weight: float = Field(gt=0, le=1)
    # The feature value scoring 0 and the value scoring 100; in between is linear,
    # outside is clipped. Give zero_at > full_at for "lower is better".
    zero_at: Number
    full_at: Number

    @model_validator(mode="after")
    def _distinct(self) -> HealthComponent:
        if self.zero_at == self.full_at:
            raise ValueError("zero_at and full_at must differ")
        return self


class Health(StrictModel):
    components: dict[FieldName, HealthComponent] = Field(min_length=1)
    # Missing inputs: the score is the weighted mean of the components that have a value,
    # provided their weights add up to at least min_coverage; otherwise it is null.
    min_coverage: float = Field(default=0.6, gt=0, le=1)

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> Health:
        total = sum(c.weight for c in self.components.values())
        if abs(total - 1) > 1e-9:
            raise ValueError(f"component weights must sum to 1, they sum to {total:g}")
        return self


class Condition(StrictModel):
    """A named AND of conditions (the ``when`` of a rule, without a label)."""

    name: FieldName
    when: dict[FieldName, dict[Op, Any]] = Field(min_length=1)

    @model_validator(mode="after")
    def _values(self) -> Condition:
        check_condition_values(f"condition {self.name!r}", self.when)
        return self


def _unique_condition_names(conditions: list[Condition]) -> list[Condition]:
    return _unique_named(conditions, "condition")


class QuadrantAxis(StrictModel):
    """One measured axis of the 2x2: a value at or above ``threshold`` is on the high side."""

    feature: FieldName
    threshold: Number
    low_label: Text = Field(min_length=1)
    high_label: Text = Field(min_length=1)


# The cells of the plane (wallet size side, share of wallet side) and the quadrants they can be.
Cell = Literal["large_wallet_low_share", "large_wallet_high_share", "small_wallet_low_share", "small_wallet_high_share"]
QUADRANT_CELLS: tuple[str, ...] = get_args(Cell)
PlaneQuadrant = Literal["Grow", "Protect", "Manage"]
REEVALUATE = "Re-evaluate"
# The quadrant of an account missing an axis value: it is on no cell of the plane.
UNCLASSIFIED = "Unclassified"


class Reevaluate(StrictModel):
    """The Re-evaluate overlay: an account of a quadrant in ``over`` for which any reason holds."""

    over: list[PlaneQuadrant] = Field(min_length=1)
    reasons: list[Condition] = Field(min_length=1)
    max_days: Days = 180  # longer than this in Re-evaluate: recommended to move to ``moves_to``
    moves_to: PlaneQuadrant = "Manage"

    @field_validator("reasons")
    @classmethod
    def _unique_reasons(cls, reasons: list[Condition]) -> list[Condition]:
        return _unique_condition_names(reasons)


class Quadrant(StrictModel):
    """Grow / Protect / Manage as regions of the plane share of wallet x size of the wallet,
    Grow over Protect for the accounts ``still_grow`` names, Re-evaluate as an overlay."""

    share_of_wallet: QuadrantAxis
    wallet_size: QuadrantAxis
    cells: dict[Cell, PlaneQuadrant]
    # A Protect-cell account for which any of these holds is Grow (the article's Grow: onboarded
    # within the last year, or high growth), whatever its share of wallet already is.
    still_grow: list[Condition] = Field(default_factory=list)
    reevaluate: Reevaluate

    @field_validator("still_grow")
    @classmethod
    def _unique_still_grow(cls, conditions: list[Condition]) -> list[Condition]:
        return _unique_condition_names(conditions)

    @model_validator(mode="after")
    def _every_cell(self) -> Quadrant:
        missing = [cell for cell in QUADRANT_CELLS if cell not in self.cells]
        if missing:
            raise ValueError(f"cells: every cell of the plane needs a quadrant, missing {missing}")
        return self

    def conditions(self) -> list[tuple[str, Condition]]:
        """(section, condition) of every condition the quadrant reads besides its axes."""
        reasons = [("reevaluate.reasons", c) for c in self.reevaluate.reasons]
        return [("still_grow", c) for c in self.still_grow] + reasons

    def fields(self) -> list[str]:
        """Every field the quadrant reads: the two axes first."""
        fields = [self.share_of_wallet.feature, self.wallet_size.feature]
        return fields + [field for _, condition in self.conditions() for field in condition.when]


class CaseStudy(StrictModel):
    when: dict[FieldName, dict[Op, Any]]

    @model_validator(mode="after")
    def _values(self) -> CaseStudy:
        check_condition_values("case_study", self.when)
        return self


class Windows(StrictModel):
    nps_days: Days = 365
    csat_days: Days = 180
    usage_days: Days = 90


class SegmentationRules(StrictModel):
    version: Text = Field(min_length=1)
    description: Text = ""
    windows: Windows = Windows()
    optional_fields: list[str] = Field(default_factory=list)
    firmographic: Firmographic
    customer_value: CustomerValue
    lifecycle: Lifecycle
    customer_status: CustomerStatus
    health: Health
    product_adoption: RuleSet
    quadrant: Quadrant
    engagement_model: RuleSet
    case_study: CaseStudy

    @model_validator(mode="after")
    def _fields_exist_in_evaluation_order(self) -> SegmentationRules:
        for where, fields, layer in self._field_uses():
            available = _available_before(layer)
            for field in fields:
                if field not in available:
                    raise ValueError(
                        f"{where}: unknown field {field!r}; fields available here: {', '.join(sorted(available))}"
                    )
        for where, field in self._numeric_uses():
            if field_kind(field) != "number":
                raise ValueError(f"{where}: {field!r} is {field_kind(field)}, a number is needed here")
        source_columns = {column for sources in FEATURE_SOURCES.values() for _, column in sources}
        unknown = sorted(set(self.optional_fields) - source_columns)
        if unknown:
            raise ValueError(
                f"optional_fields: unknown source field(s) {unknown}; known: {', '.join(sorted(source_columns))}"
            )
        return self

    def _numeric_uses(self) -> list[tuple[str, str]]:
        """(location, field) pairs that must be numeric: bands, health inputs, comparisons."""
        uses = [
            (f"{name}.feature", bands.feature)
            for name, bands in (
                ("firmographic.employee_band", self.firmographic.employee_band),
                ("firmographic.revenue_band", self.firmographic.revenue_band),
                ("customer_value.arr_band", self.customer_value.arr_band),
                ("customer_value.arr_percentile_band", self.customer_value.arr_percentile_band),
                ("customer_status.nps_category", self.customer_status.nps_category),
                ("customer_status.csat_band", self.customer_status.csat_band),
                ("customer_status.health_band", self.customer_status.health_band),
            )
        ]
        uses += [(f"health.components.{n}.feature", c.feature) for n, c in self.health.components.items()]
        rulesets = (
            ("lifecycle.rules", self.lifecycle.rules.rules),
            ("product_adoption", self.product_adoption.rules),
            ("engagement_model", self.engagement_model.rules),
        )
        conditions = [(f"{where}.{rule.name}", rule.when) for where, rules in rulesets for rule in rules]
        conditions += [(f"quadrant.{where}.{c.name}", c.when) for where, c in self.quadrant.conditions()]
        uses += [
            ("quadrant.share_of_wallet.feature", self.quadrant.share_of_wallet.feature),
            ("quadrant.wallet_size.feature", self.quadrant.wallet_size.feature),
        ]
        conditions.append(("case_study.when", self.case_study.when))
        for where, when in conditions:
            uses += [(where, field) for field, ops in when.items() if any(op in COMPARISONS for op in ops)]
        return uses

    def _field_uses(self) -> list[tuple[str, list[str], int]]:
        """(location, fields read, layer the result is computed in)."""
        uses: list[tuple[str, list[str], int]] = []
        for section, name in (
            ("firmographic", "employee_band"),
            ("firmographic", "industry_group"),
            ("firmographic", "revenue_band"),
            ("customer_value", "arr_band"),
            ("customer_value", "arr_percentile_band"),
            ("customer_status", "nps_category"),
            ("customer_status", "csat_band"),
        ):
            uses.append((f"{section}.{name}.feature", [getattr(getattr(self, section), name).feature], 2))
        uses.append(("customer_status.health_band.feature", [self.customer_status.health_band.feature], 3))
        for component, spec in self.health.components.items():
            uses.append((f"health.components.{component}.feature", [spec.feature], 2))
        if self.customer_value.override_field:
            uses.append(("customer_value.override_field", [self.customer_value.override_field], 3))
        uses.append(("lifecycle.crm_field", [self.lifecycle.crm_field], 3))
        for where, ruleset, layer in (
            ("lifecycle.rules", self.lifecycle.rules, 3),
            ("product_adoption", self.product_adoption, 3),
            ("engagement_model", self.engagement_model, 5),
        ):
            for rule in ruleset.rules:
                fields = list(rule.when) + ([rule.label_from] if rule.label_from else [])
                uses.append((f"{where}.{rule.name}", fields, layer))
        for axis in ("share_of_wallet", "wallet_size"):
            uses.append((f"quadrant.{axis}.feature", [getattr(self.quadrant, axis).feature], 4))
        for where, condition in self.quadrant.conditions():
            uses.append((f"quadrant.{where}.{condition.name}", list(condition.when), 4))
        uses.append(("case_study.when", list(self.case_study.when), 5))
        return uses

    def referenced_features(self) -> set[str]:
        """Features (layer 1) that some rule reads, directly."""
        return {f for _, fields, _ in self._field_uses() for f in fields if f in FEATURES}

    def data_gap_fields(self) -> dict[str, set[str]]:
        """Source columns the rules read that should be filled in (all but ``optional_fields``).

        An empty one is a data gap: the account is still segmented, what depends on the value
        falls back to Unknown and the gap is reported per field (``mart.account_data_gaps``).
        It is never a reason to quarantine the row.
        """
        fields: dict[str, set[str]] = {}
        for feature in self.referenced_features():
            for entity, column in FEATURE_SOURCES.get(feature, ()):
                if column not in self.optional_fields:
                    fields.setdefault(entity, set()).add(column)
        return fields

    def feature_gaps(self, feature: str) -> list[str]:
        """The data-gap fields (``entity.column``) a feature is computed from; [] if it has none."""
        gaps = self.data_gap_fields()
        return [f"{e}.{c}" for e, c in FEATURE_SOURCES.get(feature, ()) if c in gaps.get(e, ())]


def source_feature(field: str) -> str:
    """The feature holding a source column's value as loaded: ``accounts.industry`` -> ``industry``."""
    entity, _, column = field.partition(".")
    for feature, sources in FEATURE_SOURCES.items():
        if sources == ((entity, column),) and feature in (column, f"crm_{column}"):
            return feature
    raise ValueError(f"no feature holds {field}")


def field_kind(field: str) -> str:
    """text | number | date | boolean, for features and computed outputs alike."""
    if field in FEATURES:
        return FEATURES[field]
    return {"health_score": "number", "case_study_candidate": "boolean"}.get(field, "text")


def _available_before(layer: int) -> set[str]:
    return set(FEATURES) | {name for name, at in TEXT_OUTPUTS_LAYER.items() if at < layer}


def load_rules(path: Path | None = None) -> SegmentationRules:
    path = path or paths.rules_dir() / "segmentation.yaml"
    return load_yaml(path, SegmentationRules)


__all__ = ["PART_SEPARATOR", "REEVALUATE", "UNCLASSIFIED", "UNKNOWN", "ConfigError", "SegmentationRules", "load_rules"]
