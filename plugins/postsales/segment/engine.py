"""Compile segmentation rules into one SQL statement and run it for an as-of date.

The features come from ``include/sql/segment/account_features.sql`` (written to
``mart.account_features``); the rules are compiled with SQLAlchemy Core into a chain of
layers, each a set of CASE expressions over the previous one. Values from YAML are bound
parameters and field names were validated when the rules were loaded, so nothing from
YAML is pasted into SQL. Everything runs inside the warehouse: no row goes through Python.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from functools import cache, partial
from typing import Any

import sqlalchemy as sa

from postsales import warehouse
from postsales.segment.bands import band_case, group_case
from postsales.segment.rules import (
    FEATURES,
    PART_SEPARATOR,
    QUADRANT_CELLS,
    REEVALUATE,
    UNCLASSIFIED,
    UNKNOWN,
    Condition,
    Rule,
    RuleSet,
    SegmentationRules,
    load_rules,
    source_feature,
)
from postsales.tables import table

log = logging.getLogger(__name__)

account_features = table("mart.account_features")
account_segments = table("mart.account_segments")
health_components = table("mart.account_health_components")

# One row per segmented account, missing rule input and dimension it left Unknown (docs/metrics.md,
# "Missing rule inputs"): `dimension` null is the row saying the input is missing at all.
account_data_gaps = table("mart.account_data_gaps")
TABLES = (account_features, account_segments, health_components, account_data_gaps)

# The rule name of a value left Unknown: a rule it had to evaluate first read a missing input.
MISSING_INPUT = "missing_input"
# The data-gap field of an account with no row known at the date (every row quarantined, say).
ACCOUNT_ROW = "accounts"
# Each rule set's output and the column naming the rule that set it.
RULE_COLUMNS = {
    "lifecycle_stage": "lifecycle_rule",
    "adoption_segment": "adoption_rule",
    "quadrant": "quadrant_rule",
    "engagement_model": "engagement_rule",
}
# The dimensions of mart.account_segments whose gaps are recorded.
GAP_DIMENSIONS = (
    "quadrant",
    "value_tier",
    "lifecycle_stage",
    "adoption_segment",
    "engagement_model",
    "status_segment",
    "health_band",
    "health_score",
    "case_study_candidate",
    "firmographic_segment",
    "employee_band",
    "industry_group",
    "revenue_band",
    "arr_band",
    "arr_percentile_band",
    "nps_category",
    "csat_band",
)


# --- expression builders -------------------------------------------------------------


# field -> "its value is missing (or Unknown) for lack of a rule input", None if it never can be.
Unknown = Callable[[str], "sa.ColumnElement[bool] | None"]


def _comparisons(columns: sa.ColumnCollection, when: dict[str, dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """(field, op, SQL comparison) for each condition; a comparison with a missing value is NULL."""
    parts: list[tuple[str, str, Any]] = []
    for field, ops in when.items():
        column = columns[field]
        for op, value in ops.items():
            if op == "is_null":
                part = column.is_(None) if value else column.is_not(None)
            elif op == "is":
                part = column.is_(sa.true()) if value else column.is_(sa.false())
            elif op == "in":
                part = column.in_(value)
            elif op == "not_in":
                part = column.not_in(value)
            elif op == "ne":
                part = column != sa.literal(value)
            else:
                compare = {"lt": "__lt__", "lte": "__le__", "gt": "__gt__", "gte": "__ge__", "eq": "__eq__"}
                part = getattr(column, compare[op])(sa.literal(value))
            parts.append((field, op, part))
    return parts


def decision(
    columns: sa.ColumnCollection, when: dict[str, dict[str, Any]], unknown: Unknown
) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool] | None]:
    """(holds, undecided) for an AND of conditions.

    A comparison with a missing value is false, except that a value missing for lack of a rule
    input (``unknown``) leaves the condition undecided: the conditions are undecided when each
    holds or is undecided and one is. ``is_null`` tests for emptiness on purpose: always decided.
    None for undecided when no condition can be.
    """
    parts = _comparisons(columns, when)
    if not parts:
        return sa.true(), None
    gaps = [None if op == "is_null" else unknown(field) for field, op, _ in parts]
    # coalesce: NULL (a comparison with a missing value) counts as false.
    known = [sa.func.coalesce(part, sa.false()) for _, _, part in parts]
    if all(gap is None for gap in gaps):
        return sa.and_(*known), None
    known = [k if gap is None else sa.and_(sa.not_(gap), k) for k, gap in zip(known, gaps, strict=True)]
    holds = sa.and_(*known)
    undecided = sa.and_(_any(gaps), *(k if gap is None else sa.or_(k, gap) for k, gap in zip(known, gaps, strict=True)))
    return holds, undecided


def _any(conditions: Iterable[sa.ColumnElement[bool] | None]) -> sa.ColumnElement[bool] | None:
    present = [c for c in conditions if c is not None]
    return sa.or_(*present) if present else None


def rule_label(columns: sa.ColumnCollection, rule: Rule) -> sa.ColumnElement:
    return columns[rule.label_from] if rule.label_from else sa.literal(rule.label)


def ruleset_cases(
    columns: sa.ColumnCollection, ruleset: RuleSet, unknown: Unknown = lambda field: None
) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """(label, name of the rule that fired) for an ordered rule list.

    The first rule that holds wins; a rule left undecided by a missing input before it makes
    the label Unknown (rule ``missing_input``): a later rule or the default would be a guess.
    """
    if not ruleset.rules:
        return sa.literal(ruleset.default), sa.literal("default")
    labels, names = [], []
    for rule in ruleset.rules:
        holds, undecided = decision(columns, rule.when, unknown)
        labels.append((holds, rule_label(columns, rule)))
        names.append((holds, sa.literal(rule.name)))
        if undecided is not None:
            labels.append((undecided, sa.literal(UNKNOWN)))
            names.append((undecided, sa.literal(MISSING_INPUT)))
    label = sa.case(*labels, else_=sa.literal(ruleset.default))
    name = sa.case(*names, else_=sa.literal("default"))
    return label, name


class Gaps:
    """Which values are missing or Unknown for lack of a rule input (a data gap), as SQL.

    A data-gap field is a source column the rules read that is not in ``optional_fields``
    (``SegmentationRules.data_gap_fields``). A feature computed from one is missing when the
    field is empty; a band or group over it gets its missing label; a composite or a rule set
    depending on it is Unknown when it could not be decided without it.
    """

    def __init__(self, rules: SegmentationRules) -> None:
        self.rules = rules
        firm, value, status = rules.firmographic, rules.customer_value, rules.customer_status
        self.depends: dict[str, list[str]] = {
            "employee_band": [firm.employee_band.feature],
            "industry_group": [firm.industry_group.feature],
            "revenue_band": [firm.revenue_band.feature],
            "arr_band": [value.arr_band.feature],
            "arr_percentile_band": [value.arr_percentile_band.feature],
            "nps_category": [status.nps_category.feature],
            "csat_band": [status.csat_band.feature],
            "health_score": [spec.feature for spec in rules.health.components.values()],
            "health_band": [status.health_band.feature],
            "firmographic_segment": ["employee_band", "industry_group"],
            "value_tier": ["arr_band"],
            "status_segment": ["nps_category", "health_band"],
            "lifecycle_stage": _ruleset_fields(rules.lifecycle.rules),
            "adoption_segment": _ruleset_fields(rules.product_adoption),
            "quadrant": rules.quadrant.fields(),
            "engagement_model": _ruleset_fields(rules.engagement_model),
            "case_study_candidate": list(rules.case_study.when),
        }
        self.fields = cache(self._fields)

    def _fields(self, name: str) -> tuple[str, ...]:
        """The data-gap fields (``entity.column``) a value depends on, directly or not."""
        if name in self.depends:
            return tuple(sorted({field for dep in self.depends[name] for field in self.fields(dep)}))
        return tuple(self.rules.feature_gaps(name))

    def unknown(self, c: sa.ColumnCollection, name: str) -> sa.ColumnElement[bool] | None:
        """True where ``name`` is missing or Unknown for lack of an input; None if it never can be."""
        if not self.fields(name):
            return None
        if name in FEATURES:
            empty = [c[source_feature(field)].is_(None) for field in self.rules.feature_gaps(name)]
            return sa.and_(c[name].is_(None), sa.or_(*empty))
        if name in RULE_COLUMNS:
            return c[RULE_COLUMNS[name]] == sa.literal(MISSING_INPUT)
        if name == "case_study_candidate":
            return decision(c, self.rules.case_study.when, lambda field: self.unknown(c, field))[1]
        inputs = _any(self.unknown(c, dep) for dep in self.depends[name])
        if inputs is None:
            return None
        if name == "health_score":
            return sa.and_(c.health_score.is_(None), inputs)
        override = self.rules.customer_value.override_field
        if name == "value_tier" and override:
            return sa.and_(c[override].is_(None), inputs)
        return inputs

    def blamed(self, c: sa.ColumnCollection, field: str) -> sa.ColumnElement[bool]:
        """True where ``field`` is the gap to fix: the account has no row, or the row leaves it empty."""
        no_row = c.account_known.is_(sa.false())
        if field == ACCOUNT_ROW:
            return no_row
        return sa.and_(sa.not_(no_row), c[source_feature(field)].is_(None))

    def blame_fields(self, *names: str) -> list[str]:
        """The gap fields to name for values: their fields, and the account row behind any of them."""
        fields = sorted({field for name in names for field in self.fields(name)})
        return ([ACCOUNT_ROW] if any(f.startswith(f"{ACCOUNT_ROW}.") for f in fields) else []) + fields

    def missing_json(self, c: sa.ColumnCollection, *names: str, dialect: str = "") -> sa.ColumnElement:
        """JSON array of the gap fields missing on the row for the values ``names`` ([] if none).
        On Spark an array, not JSON text: :func:`json_object` nests it and encodes once."""
        fields = self.blame_fields(*names)
        if dialect == "spark" and not fields:
            return sa.func.array()
        if not fields:
            return sa.cast(sa.literal("[]"), sa.JSON)
        listed = sa.func.concat_ws(
            sa.literal(","), *(sa.case((self.blamed(c, field), sa.literal(field))) for field in fields)
        )
        if dialect == "spark":
            return sa.func.coalesce(
                sa.func.split(sa.func.nullif(listed, sa.literal("")), sa.literal(",")), sa.func.array()
            )
        array = sa.func.array_to_json(sa.func.string_to_array(sa.func.nullif(listed, sa.literal("")), sa.literal(",")))
        return sa.func.coalesce(array, sa.cast(sa.literal("[]"), sa.JSON))


def health_score_parts(columns: sa.ColumnCollection, rules: SegmentationRules) -> dict[str, sa.ColumnElement]:
    scores = {}
    for name, spec in rules.health.components.items():
        value = columns[spec.feature]
        scaled = (value - sa.literal(spec.zero_at)) * 100.0 / sa.literal(spec.full_at - spec.zero_at)
        scores[name] = sa.case((value.is_(None), sa.null()), else_=sa.func.greatest(0.0, sa.func.least(100.0, scaled)))
    return scores


def health_score(scores: dict[str, sa.ColumnElement], rules: SegmentationRules) -> sa.ColumnElement:
    weights = {name: rules.health.components[name].weight for name in scores}
    weighted = sum(sa.func.coalesce(score * weights[name], 0.0) for name, score in scores.items())
    present = sum(sa.case((score.is_(None), 0.0), else_=sa.literal(weights[name])) for name, score in scores.items())
    return sa.case((present >= sa.literal(rules.health.min_coverage - 1e-9), weighted / present), else_=sa.null())


def json_object(dialect: str, pairs: dict[str, sa.ColumnElement]) -> sa.ColumnElement:
    """A JSON object of ``pairs``, in their order; an object or array among the values is nested.

    On Spark a ``named_struct``, not JSON text: ``to_json`` of a struct holding JSON text would
    quote it (double-encoded), so the objects nest as structs and :func:`json_text` encodes once.
    Spark's text is then DuckDB's (same key order, no spaces, nulls kept), but for doubles of 1e7
    or more or under 1e-3, which Spark writes in exponent form (``1.2345678E7`` where DuckDB
    writes ``12345678.0``): the same number parsed (tests/integration/test_spark_dialect.py)."""
    args: list[Any] = []
    for key, value in pairs.items():
        args += [sa.literal(key), value]
    function = {"postgresql": sa.func.json_build_object, "spark": sa.func.named_struct}.get(
        dialect, sa.func.json_object
    )
    return function(*args)


def json_text(dialect: str, value: sa.ColumnElement) -> sa.ColumnElement:
    """:func:`json_object`'s ``value`` as JSON text. On Spark ``to_json``, its null fields kept as
    ``null`` by the session (``postsales.spark.dialect``)."""
    return sa.cast(sa.func.to_json(value) if dialect == "spark" else value, sa.Text)


def any_condition(
    columns: sa.ColumnCollection, conditions: list[Condition], unknown: Unknown
) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool], list[tuple[sa.ColumnElement[bool], str]]]:
    """(one holds, none holds but one is undecided for lack of an input, [(holds, name)] in order)."""
    decided = [(decision(columns, condition.when, unknown), condition.name) for condition in conditions]
    holds = [(holds, name) for (holds, _), name in decided]
    one_holds = sa.or_(*(h for h, _ in holds)) if holds else sa.false()
    undecided = [u for (_, u), _ in decided if u is not None]
    none_but_undecided = sa.and_(sa.not_(one_holds), sa.or_(*undecided)) if undecided else sa.false()
    return one_holds, none_but_undecided, holds


def quadrant_plane(
    c: sa.ColumnCollection, rules: SegmentationRules, unknown: Unknown
) -> tuple[sa.ColumnElement, sa.ColumnElement, sa.ColumnElement, sa.ColumnElement]:
    """(cell label, cell name, quadrant on the plane, the rule that set it) (docs/metrics.md, "Quadrant").

    The cell is where the two axis values fall; its quadrant is the cell's, except that a
    Protect cell's account for which a ``still_grow`` condition holds is Grow. Missing an axis
    value: no cell, Unclassified (rule ``missing_input``), never a guessed quadrant; a wallet of 0
    with a known ARR is placed as a wallet of 1 would be (high share when ARR > 0), not missing.
    """
    q = rules.quadrant
    share, size = c[q.share_of_wallet.feature], c[q.wallet_size.feature]
    # ARR > 0 on a 0 wallet spends more than the estimate: a share beyond any threshold; ARR 0 a share of 0.
    zero_wallet = _zero_wallet(c, rules)
    beyond = sa.and_(zero_wallet, c.arr > sa.literal(0))
    missing = sa.and_(sa.or_(share.is_(None), size.is_(None)), sa.not_(zero_wallet))
    high_share = sa.or_(beyond, sa.and_(sa.not_(zero_wallet), share >= sa.literal(q.share_of_wallet.threshold)))
    large = size >= sa.literal(q.wallet_size.threshold)
    small, low = sa.not_(large), sa.not_(high_share)
    size_label, share_label = q.wallet_size, q.share_of_wallet
    sides = {  # cell name: (where, its label)
        "large_wallet_low_share": (sa.and_(large, low), (size_label.high_label, share_label.low_label)),
        "large_wallet_high_share": (sa.and_(large, high_share), (size_label.high_label, share_label.high_label)),
        "small_wallet_low_share": (sa.and_(small, low), (size_label.low_label, share_label.low_label)),
        "small_wallet_high_share": (sa.and_(small, high_share), (size_label.low_label, share_label.high_label)),
    }
    cell_label = sa.case(*((where, sa.literal(PART_SEPARATOR.join(labels))) for where, labels in sides.values()))
    cell_name = sa.case(*((where, sa.literal(name)) for name, (where, _) in sides.items()))
    in_protect = sa.or_(*(sides[name][0] for name in QUADRANT_CELLS if q.cells[name] == "Protect"))
    grow, grow_undecided, grow_named = any_condition(c, q.still_grow, unknown)
    quadrant = sa.case(
        (missing, sa.literal(UNCLASSIFIED)),
        (sa.and_(in_protect, grow), sa.literal("Grow")),
        (sa.and_(in_protect, grow_undecided), sa.literal(UNCLASSIFIED)),
        *((where, sa.literal(q.cells[name])) for name, (where, _) in sides.items()),
    )
    rule = sa.case(
        (missing, sa.literal(MISSING_INPUT)),
        *((sa.and_(in_protect, holds), sa.literal(name)) for holds, name in grow_named),
        (sa.and_(in_protect, grow_undecided), sa.literal(MISSING_INPUT)),
        else_=cell_name,
    )
    return cell_label, cell_name, quadrant, rule


def quadrant_overlay(
    c: sa.ColumnCollection, rules: SegmentationRules, unknown: Unknown
) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """(quadrant, rule): Re-evaluate over the plane's quadrant where a reason holds, named by the first."""
    overlay = rules.quadrant.reevaluate
    over = c.plane_quadrant.in_(overlay.over)
    reevaluate, undecided, named = any_condition(c, overlay.reasons, unknown)
    quadrant = sa.case(
        (sa.and_(over, reevaluate), sa.literal(REEVALUATE)),
        (sa.and_(over, undecided), sa.literal(UNCLASSIFIED)),
        else_=c.plane_quadrant,
    )
    rule = sa.case(
        *((sa.and_(over, holds), sa.literal(name)) for holds, name in named),
        (sa.and_(over, undecided), sa.literal(MISSING_INPUT)),
        else_=c.plane_rule,
    )
    return quadrant, rule


# --- the compiled statement ------------------------------------------------------------


def layer3(rules: SegmentationRules, gaps: Gaps) -> sa.CTE:
    """Layers 1-3 for :as_of_date: the features and every value the quadrant's rules may read
    (docs/metrics.md, "Evaluation order"); the thresholds of the 2x2 play no part in them."""
    features = account_features
    base = sa.select(*features.c).where(features.c.as_of_date == sa.bindparam("as_of_date")).cte("features")

    # Layer 2: bands, industry groups, health.
    c = base.c
    firm, value, status = rules.firmographic, rules.customer_value, rules.customer_status
    scores = health_score_parts(c, rules)
    layer2 = sa.select(
        *c,
        band_case(c[firm.employee_band.feature], firm.employee_band).label("employee_band"),
        group_case(c[firm.industry_group.feature], firm.industry_group).label("industry_group"),
        band_case(c[firm.revenue_band.feature], firm.revenue_band).label("revenue_band"),
        band_case(c[value.arr_band.feature], value.arr_band).label("arr_band"),
        band_case(c[value.arr_percentile_band.feature], value.arr_percentile_band).label("arr_percentile_band"),
        band_case(c[status.nps_category.feature], status.nps_category).label("nps_category"),
        band_case(c[status.csat_band.feature], status.csat_band).label("csat_band"),
        *(score.label(f"health_{name}") for name, score in scores.items()),
        health_score(scores, rules).label("health_score"),
    ).cte("layer2")

    # Layer 3: value tier (CRM override wins), firmographic segment, lifecycle, adoption, health band.
    c = layer2.c
    if value.override_field:
        override = c[value.override_field]
        value_tier = sa.case((override.is_not(None), override), else_=c.arr_band)
        value_source = sa.case((override.is_not(None), sa.literal("crm_override")), else_=sa.literal("arr_band"))
    else:
        value_tier, value_source = c.arr_band, sa.literal("arr_band")
    lifecycle, lifecycle_rule = ruleset_cases(c, rules.lifecycle.rules, partial(gaps.unknown, c))
    if rules.lifecycle.crm_precedence:
        crm_stage = c[rules.lifecycle.crm_field]
        known = crm_stage.in_(rules.lifecycle.stages)
        lifecycle = sa.case((known, crm_stage), else_=lifecycle)
        lifecycle_rule = sa.case((known, sa.literal("crm_stage")), else_=lifecycle_rule)
    adoption, adoption_rule = ruleset_cases(c, rules.product_adoption, partial(gaps.unknown, c))
    return sa.select(
        *c,
        value_tier.label("value_tier"),
        value_source.label("value_tier_source"),
        (c.employee_band + sa.literal(PART_SEPARATOR) + c.industry_group).label("firmographic_segment"),
        lifecycle.label("lifecycle_stage"),
        lifecycle_rule.label("lifecycle_rule"),
        adoption.label("adoption_segment"),
        adoption_rule.label("adoption_rule"),
        band_case(c[status.health_band.feature], status.health_band).label("health_band"),
    ).cte("layer3")


def layer4(layer3: sa.CTE, rules: SegmentationRules, gaps: Gaps, name: str = "layer4") -> sa.CTE:
    """Layer 4 over ``layer3``: customer status, the account's cell on the plane of the 2x2, then its
    quadrant. The threshold sensitivity builds on it with moved thresholds (``name`` tells them apart)."""
    c = layer3.c
    cell, cell_rule, plane_quadrant, plane_rule = quadrant_plane(c, rules, partial(gaps.unknown, c))
    plane = sa.select(
        *c,
        (c.nps_category + sa.literal(PART_SEPARATOR) + c.health_band).label("status_segment"),
        cell.label("quadrant_cell"),
        cell_rule.label("quadrant_cell_rule"),
        plane_quadrant.label("plane_quadrant"),
        plane_rule.label("plane_rule"),
    ).cte(f"{name}_plane")
    c = plane.c
    quadrant, quadrant_rule = quadrant_overlay(c, rules, partial(gaps.unknown, c))
    return sa.select(*c, quadrant.label("quadrant"), quadrant_rule.label("quadrant_rule")).cte(name)


def _layers(rules: SegmentationRules, gaps: Gaps) -> sa.CTE:
    """Every value of every account for :as_of_date, layer by layer (docs/metrics.md, "Evaluation order")."""
    quadrants = layer4(layer3(rules, gaps), rules, gaps)

    # Layer 5: engagement model and case-study candidates.
    c = quadrants.c
    engagement, engagement_rule = ruleset_cases(c, rules.engagement_model, partial(gaps.unknown, c))
    # Undecided for lack of an input: not a candidate (the data gap is recorded).
    case_study, _ = decision(c, rules.case_study.when, partial(gaps.unknown, c))
    return sa.select(
        *c,
        engagement.label("engagement_model"),
        engagement_rule.label("engagement_rule"),
        case_study.label("case_study_candidate"),
    ).cte("layer5")


def compile_segments(rules: SegmentationRules, dialect: str) -> sa.Select:
    """The select producing mart.account_segments rows for :as_of_date from mart.account_features."""
    gaps = Gaps(rules)
    layer5 = _layers(rules, gaps)
    previous = _previous_segments()
    c = layer5.c
    since, days, recommended = reevaluate_clock(c, previous, rules)
    return sa.select(
        c.as_of_date,
        c.account_id,
        c.firmographic_segment,
        c.employee_band,
        c.industry_group,
        c.revenue_band,
        c.value_tier,
        c.value_tier_source,
        c.arr,
        c.arr_band,
        c.arr_percentile_band,
        c.lifecycle_stage,
        c.lifecycle_rule,
        c.status_segment,
        c.nps_category,
        c.csat_band,
        c.health_band,
        c.referenceable,
        c.adoption_segment,
        c.adoption_rule,
        c.health_score,
        c.quadrant,
        c.quadrant_rule,
        sa.case((c.quadrant_cell.is_not(None), _stored_share(c, rules))).label("share_of_wallet"),
        sa.case((c.quadrant_cell.is_not(None), c[rules.quadrant.wallet_size.feature])).label("wallet_size"),
        c.quadrant_cell,
        c.plane_quadrant,
        since.label("reevaluate_since"),
        days.label("reevaluate_days"),
        recommended.label("recommended_quadrant"),
        c.engagement_model,
        c.engagement_rule,
        c.case_study_candidate,
        json_text(dialect, _row_explanation(c, rules, gaps, dialect)).label("explanation"),
        sa.literal(rules.version).label("rules_version"),
        sa.bindparam("computed_at").label("computed_at"),
    ).select_from(layer5.outerjoin(previous, previous.c.account_id == c.account_id))


def _previous_segments() -> sa.Subquery:
    """Each account's row at the latest as-of date before :as_of_date: where its time in Re-evaluate began."""
    previous_date = (
        sa.select(sa.func.max(account_segments.c.as_of_date))
        .where(account_segments.c.as_of_date < sa.bindparam("as_of_date"))
        .scalar_subquery()
    )
    return (
        sa.select(account_segments.c.account_id, account_segments.c.quadrant, account_segments.c.reevaluate_since)
        .where(account_segments.c.as_of_date == previous_date)
        .subquery("previous")
    )


def reevaluate_clock(
    c: sa.ColumnCollection, previous: sa.Subquery, rules: SegmentationRules
) -> tuple[sa.ColumnElement, sa.ColumnElement, sa.ColumnElement]:
    """(since, days, recommended quadrant): when the account entered Re-evaluate, how long it has
    stayed, and ``reevaluate.moves_to`` once that passes ``max_days`` (docs/metrics.md, "Quadrant").

    The start carries over from ``previous`` while the account stays in Re-evaluate, so the dates
    must be segmented in order."""
    in_reevaluate = c.quadrant == sa.literal(REEVALUATE)
    since = sa.case(
        (
            in_reevaluate,
            sa.func.coalesce(
                sa.case((previous.c.quadrant == sa.literal(REEVALUATE), previous.c.reevaluate_since)),
                c.as_of_date,
            ),
        )
    )
    days = sa.cast(c.as_of_date - since, sa.Integer)
    recommended = sa.case(
        (sa.and_(in_reevaluate, days > sa.literal(rules.quadrant.reevaluate.max_days)),
         sa.literal(rules.quadrant.reevaluate.moves_to)),
        else_=c.quadrant,
    )  # fmt: skip
    return since, days, recommended


def _row_explanation(c: sa.ColumnCollection, rules: SegmentationRules, gaps: Gaps, dialect: str) -> sa.ColumnElement:
    """The row's JSON explanation: the rules version, the date, and why each value is what it is."""
    return json_object(
        dialect,
        {
            "rules_version": sa.literal(rules.version),
            "as_of_date": sa.cast(c.as_of_date, sa.Text),
            **_explanations(c, rules, gaps, dialect),
        },
    )


def _inputs(columns: sa.ColumnCollection, fields: list[str], dialect: str) -> sa.ColumnElement:
    unique = list(dict.fromkeys(fields))
    return json_object(dialect, {field: _json_value(columns[field]) for field in unique})


def _json_value(column: sa.ColumnElement) -> sa.ColumnElement:
    # Dates as ISO text: both engines then agree on the JSON.
    return sa.cast(column, sa.Text) if isinstance(column.type, sa.Date) else column


def _ruleset_fields(ruleset: RuleSet) -> list[str]:
    fields: list[str] = []
    for rule in ruleset.rules:
        fields += list(rule.when) + ([rule.label_from] if rule.label_from else [])
    return fields


def _explanations(
    c: sa.ColumnCollection, rules: SegmentationRules, gaps: Gaps, dialect: str
) -> dict[str, sa.ColumnElement]:
    firm, value, status = rules.firmographic, rules.customer_value, rules.customer_status

    def explain(result: str, rule: sa.ColumnElement, fields: list[str]) -> sa.ColumnElement:
        return json_object(
            dialect,
            {
                "value": c[result],
                "rule": rule,
                "inputs": _inputs(c, fields or ["account_id"], dialect),
                "missing": gaps.missing_json(c, result, *fields, dialect=dialect),
            },
        )

    value_fields = [value.arr_band.feature] + ([value.override_field] if value.override_field else [])
    lifecycle_fields = _ruleset_fields(rules.lifecycle.rules) + (
        [rules.lifecycle.crm_field] if rules.lifecycle.crm_precedence else []
    )
    health_inputs = {
        name: json_object(
            dialect,
            {
                "feature": sa.literal(spec.feature),
                "value": c[spec.feature],
                "score": c[f"health_{name}"],
                "weight": sa.literal(spec.weight),
            },
        )
        for name, spec in rules.health.components.items()
    }
    return {
        "firmographic_segment": explain(
            "firmographic_segment",
            sa.literal("employee_band · industry_group"),
            [firm.employee_band.feature, firm.industry_group.feature, firm.revenue_band.feature],
        ),
        "value_tier": explain("value_tier", c.value_tier_source, value_fields),
        "lifecycle_stage": explain("lifecycle_stage", c.lifecycle_rule, lifecycle_fields),
        "status_segment": explain(
            "status_segment",
            sa.literal("nps_category · health_band"),
            [status.nps_category.feature, status.csat_band.feature, "health_score", "referenceable"],
        ),
        "adoption_segment": explain("adoption_segment", c.adoption_rule, _ruleset_fields(rules.product_adoption)),
        "health_score": json_object(
            dialect,
            {
                "value": c.health_score,
                "min_coverage": sa.literal(rules.health.min_coverage),
                "components": json_object(dialect, health_inputs),
                "missing": gaps.missing_json(c, "health_score", dialect=dialect),
            },
        ),
        "quadrant": explain("quadrant", c.quadrant_rule, rules.quadrant.fields()),
        "engagement_model": explain("engagement_model", c.engagement_rule, _ruleset_fields(rules.engagement_model)),
        "case_study_candidate": explain(
            "case_study_candidate", sa.literal("case_study.when"), list(rules.case_study.when)
        ),
    }


def compile_data_gaps(rules: SegmentationRules) -> sa.Select:
    """The select producing mart.account_data_gaps rows for :as_of_date from mart.account_features.

    Per segmented account: one row per missing data-gap field (``dimension`` null), and one
    per dimension that fell back to Unknown for lack of it. An account without a row known
    at the date is one gap, ``accounts``, rather than every column of it.
    """
    gaps = Gaps(rules)
    c = _layers(rules, gaps).c
    fields = sorted({field for name in GAP_DIMENSIONS for field in gaps.blame_fields(name)})
    fields += [
        f"{entity}.{column}"
        for entity, columns in sorted(rules.data_gap_fields().items())
        for column in sorted(columns)
        if f"{entity}.{column}" not in fields
    ]

    def rows(field: str, dimension: str | None, where: sa.ColumnElement[bool]) -> sa.Select:
        return sa.select(
            c.as_of_date,
            c.account_id,
            sa.literal(field).label("field"),
            (sa.literal(dimension) if dimension else sa.cast(sa.null(), sa.Text)).label("dimension"),
        ).where(where)

    parts = [rows(field, None, gaps.blamed(c, field)) for field in fields]
    for dimension in GAP_DIMENSIONS:
        unknown = gaps.unknown(c, dimension)
        if unknown is not None:
            parts += [
                rows(field, dimension, sa.and_(gaps.blamed(c, field), unknown))
                for field in gaps.blame_fields(dimension)
            ]
    return sa.union_all(*parts).subquery("gaps").select()


def compile_health_components(rules: SegmentationRules) -> sa.Select:
    c = account_features.c
    scores = health_score_parts(c, rules)
    parts = [
        sa.select(
            c.as_of_date,
            c.account_id,
            sa.literal(name).label("component"),
            sa.literal(spec.feature).label("feature"),
            sa.cast(c[spec.feature], sa.Float(53)).label("input_value"),
            scores[name].label("score"),
            sa.literal(spec.weight).label("weight"),
            sa.literal(rules.version).label("rules_version"),
        ).where(c.as_of_date == sa.bindparam("as_of_date"))
        for name, spec in rules.health.components.items()
    ]
    return sa.union_all(*parts).subquery("components").select()


# --- running -----------------------------------------------------------------------------


def ensure_tables(eng: sa.Engine) -> None:
    """The warehouse's tables, and the view of each account's latest segments."""
    warehouse.ensure_schema(eng)
    view = warehouse.sql_text("segment", "account_segments_current")
    with warehouse.schema_change(eng) as conn:
        warehouse.ensure_views(conn, {"mart.account_segments_current": view}, selects_from=[account_segments])


def compute_segments(
    as_of: date, *, rules: SegmentationRules | None = None, warehouse_url: str | None = None
) -> dict[str, Any]:
    """Replace the as-of date's partition of the features, segments and health components."""
    rules = rules or load_rules()
    eng = warehouse.engine(warehouse_url)
    ensure_tables(eng)
    params = {
        "as_of_date": as_of,
        "nps_window_days": rules.windows.nps_days,
        "csat_window_days": rules.windows.csat_days,
        "usage_window_days": rules.windows.usage_days,
    }
    computed_at = datetime.now(UTC).replace(tzinfo=None)
    segments_select = compile_segments(rules, eng.dialect.name)
    with eng.begin() as conn:
        features = warehouse.replace_from_query(
            conn, account_features, account_features.c.as_of_date == as_of, **params
        )
        warehouse.delete_partition(conn, account_segments, account_segments.c.as_of_date == as_of)
        conn.execute(
            account_segments.insert().from_select([col.name for col in account_segments.c], segments_select),
            {"as_of_date": as_of, "computed_at": computed_at},
        )
        warehouse.delete_partition(conn, health_components, health_components.c.as_of_date == as_of)
        conn.execute(
            health_components.insert().from_select(
                [col.name for col in health_components.c], compile_health_components(rules)
            ),
            {"as_of_date": as_of},
        )
        warehouse.delete_partition(conn, account_data_gaps, account_data_gaps.c.as_of_date == as_of)
        conn.execute(
            account_data_gaps.insert().from_select([col.name for col in account_data_gaps.c], compile_data_gaps(rules)),
            {"as_of_date": as_of},
        )
        data_gaps = dict(
            conn.execute(
                sa.select(account_data_gaps.c.field, sa.func.count())
                .where(account_data_gaps.c.as_of_date == as_of, account_data_gaps.c.dimension.is_(None))
                .group_by(account_data_gaps.c.field)
                .order_by(account_data_gaps.c.field)
            ).all()
        )
        quadrants = dict(
            conn.execute(
                sa.select(account_segments.c.quadrant, sa.func.count())
                .where(account_segments.c.as_of_date == as_of)
                .group_by(account_segments.c.quadrant)
            ).all()
        )
    inserted = sum(quadrants.values())
    if features != inserted:
        raise AssertionError(f"{as_of}: {features} feature rows but {inserted} segment rows")
    log.info(
        "segments as of %s (rules %s): %s accounts; quadrants %s; accounts missing a rule input: %s",
        as_of, rules.version, inserted, quadrants, data_gaps or "none",
    )  # fmt: skip
    return {
        "as_of_date": as_of.isoformat(),
        "accounts": inserted,
        "quadrants": quadrants,
        "data_gaps": data_gaps,
        "rules_version": rules.version,
    }


def ensure_segments(dates: list[date], *, warehouse_url: str | None = None) -> list[date]:
    """Segment every date of ``dates`` that has no partition yet, oldest first; returns those computed.

    Each is computed from the data known on that date. Oldest first, so the time spent in
    Re-evaluate carries over between the new partitions (docs/operations.md). Stages that read
    segments as of a date (cohorts by quadrant, health vs outcome, migration matrices, the
    review) call this first, so what they read never depends on which DAG ran before them.
    """
    eng = warehouse.engine(warehouse_url)
    ensure_tables(eng)
    with eng.connect() as conn:
        existing = set(
            conn.execute(
                sa.select(account_segments.c.as_of_date).where(account_segments.c.as_of_date.in_(dates)).distinct()
            ).scalars()
        )
    missing = sorted(set(dates) - existing)
    for day in missing:
        compute_segments(day, warehouse_url=warehouse_url)
    if missing:
        log.info("segmented %s dates with no snapshot: %s .. %s", len(missing), missing[0], missing[-1])
    return missing


def _zero_wallet(c: sa.ColumnCollection, rules: SegmentationRules) -> sa.ColumnElement[bool]:
    """A wallet potential of 0 with a known ARR (wallet_share is arr / wallet_potential_arr, missing
    for a 0 wallet): placed on the plane as a wallet of 1 would be, without a share (docs/metrics.md,
    "Quadrant"). Only where the axes are those two; never null."""
    q = rules.quadrant
    if (q.share_of_wallet.feature, q.wallet_size.feature) != ("wallet_share", "wallet_potential_arr"):
        return sa.false()
    size = c[q.wallet_size.feature]
    return sa.func.coalesce(sa.and_(size == sa.literal(0), c.arr.is_not(None)), sa.false())


def _stored_share(c: sa.ColumnCollection, rules: SegmentationRules) -> sa.ColumnElement:
    """The share of wallet stored beside the cell: none for a 0 wallet, whatever the feature holds."""
    return sa.case((_zero_wallet(c, rules), sa.null()), else_=c[rules.quadrant.share_of_wallet.feature])
