"""Compile segmentation rules into one SQL statement and run it for an as-of date.

The features come from ``include/sql/segment/account_features.sql`` (written to
``mart.account_features``); the rules are compiled with SQLAlchemy Core into a chain of
layers, each a set of CASE expressions over the previous one. Values from YAML are bound
parameters and field names were validated when the rules were loaded, so nothing from
YAML is pasted into SQL. Everything runs inside the warehouse: no row goes through Python.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from postsales import paths, warehouse
from postsales.segment.rules import FEATURES, Bands, Groups, Rule, RuleSet, SegmentationRules, load_rules

log = logging.getLogger(__name__)

metadata = sa.MetaData()

account_features = sa.Table(
    "account_features",
    metadata,
    sa.Column("as_of_date", sa.Date, nullable=False),
    *(
        sa.Column(
            name,
            {"text": sa.Text, "number": sa.Float(53), "date": sa.Date, "boolean": sa.Boolean}[kind],
        )
        for name, kind in FEATURES.items()
    ),
    schema="mart",
)

account_segments = sa.Table(
    "account_segments",
    metadata,
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("firmographic_segment", sa.Text, nullable=False),
    sa.Column("employee_band", sa.Text, nullable=False),
    sa.Column("industry_group", sa.Text, nullable=False),
    sa.Column("revenue_band", sa.Text, nullable=False),
    sa.Column("value_tier", sa.Text, nullable=False),
    sa.Column("value_tier_source", sa.Text, nullable=False),
    sa.Column("arr", sa.Float(53)),
    sa.Column("arr_band", sa.Text, nullable=False),
    sa.Column("arr_percentile_band", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.Text, nullable=False),
    sa.Column("lifecycle_rule", sa.Text, nullable=False),
    sa.Column("status_segment", sa.Text, nullable=False),
    sa.Column("nps_category", sa.Text, nullable=False),
    sa.Column("csat_band", sa.Text, nullable=False),
    sa.Column("health_band", sa.Text, nullable=False),
    sa.Column("referenceable", sa.Boolean),
    sa.Column("adoption_segment", sa.Text, nullable=False),
    sa.Column("adoption_rule", sa.Text, nullable=False),
    sa.Column("health_score", sa.Float(53)),
    sa.Column("quadrant", sa.Text, nullable=False),
    sa.Column("quadrant_rule", sa.Text, nullable=False),
    sa.Column("reevaluate_since", sa.Date),
    sa.Column("reevaluate_days", sa.Integer),
    sa.Column("recommended_quadrant", sa.Text, nullable=False),
    sa.Column("engagement_model", sa.Text, nullable=False),
    sa.Column("engagement_rule", sa.Text, nullable=False),
    sa.Column("case_study_candidate", sa.Boolean, nullable=False),
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("rules_version", sa.Text, nullable=False),
    sa.Column("computed_at", sa.DateTime, nullable=False),
    schema="mart",
)

health_components = sa.Table(
    "account_health_components",
    metadata,
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("component", sa.Text, nullable=False),
    sa.Column("feature", sa.Text, nullable=False),
    sa.Column("input_value", sa.Float(53)),
    sa.Column("score", sa.Float(53)),
    sa.Column("weight", sa.Float(53), nullable=False),
    sa.Column("rules_version", sa.Text, nullable=False),
    schema="mart",
)

OUT_OF_RANGE = "Out of range"


# --- expression builders -------------------------------------------------------------


def band_case(column: sa.ColumnElement, bands: Bands) -> sa.ColumnElement:
    whens = [(column.is_(None), sa.literal(bands.missing_label))]
    for band in bands.bands:
        conditions = []
        if band.min is not None:
            conditions.append(column >= sa.literal(band.min))
        if band.max is not None:
            conditions.append(column < sa.literal(band.max))
        whens.append((sa.and_(*conditions) if conditions else sa.true(), sa.literal(band.label)))
    return sa.case(*whens, else_=sa.literal(OUT_OF_RANGE))


def group_case(column: sa.ColumnElement, groups: Groups) -> sa.ColumnElement:
    whens = [(column.in_(list(values)), sa.literal(group)) for group, values in groups.groups.items() if values]
    return sa.case(*whens, else_=sa.literal(groups.default)) if whens else sa.literal(groups.default)


def condition(columns: sa.ColumnCollection, when: dict[str, dict[str, Any]]) -> sa.ColumnElement[bool]:
    """AND of all conditions; a comparison with a missing value is false."""
    parts: list[sa.ColumnElement[bool]] = []
    for field, ops in when.items():
        column = columns[field]
        for op, value in ops.items():
            if op == "is_null":
                parts.append(column.is_(None) if value else column.is_not(None))
            elif op == "is":
                parts.append(column.is_(sa.true()) if value else column.is_(sa.false()))
            elif op == "in":
                parts.append(column.in_(value))
            elif op == "not_in":
                parts.append(column.not_in(value))
            else:
                compare = {"lt": "__lt__", "lte": "__le__", "gt": "__gt__", "gte": "__ge__", "eq": "__eq__"}
                if op == "ne":
                    parts.append(column != sa.literal(value))
                else:
                    parts.append(getattr(column, compare[op])(sa.literal(value)))
    # coalesce: NULL (a comparison with a missing value) counts as false.
    return sa.func.coalesce(sa.and_(*parts), sa.false()) if parts else sa.true()


def rule_label(columns: sa.ColumnCollection, rule: Rule) -> sa.ColumnElement:
    return columns[rule.label_from] if rule.label_from else sa.literal(rule.label)


def ruleset_cases(columns: sa.ColumnCollection, ruleset: RuleSet) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """(label, name of the rule that fired) for an ordered rule list."""
    if not ruleset.rules:
        return sa.literal(ruleset.default), sa.literal("default")
    conditions = [condition(columns, rule.when) for rule in ruleset.rules]
    label = sa.case(
        *((cond, rule_label(columns, rule)) for cond, rule in zip(conditions, ruleset.rules, strict=True)),
        else_=sa.literal(ruleset.default),
    )
    name = sa.case(
        *((cond, sa.literal(rule.name)) for cond, rule in zip(conditions, ruleset.rules, strict=True)),
        else_=sa.literal("default"),
    )
    return label, name


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
    args: list[Any] = []
    for key, value in pairs.items():
        args += [sa.literal(key), value]
    return (sa.func.json_build_object if dialect == "postgresql" else sa.func.json_object)(*args)


# --- the compiled statement ------------------------------------------------------------


def compile_segments(rules: SegmentationRules, dialect: str) -> sa.Select:
    """The select producing mart.account_segments rows for :as_of_date from mart.account_features."""
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
    lifecycle, lifecycle_rule = ruleset_cases(c, rules.lifecycle.rules)
    if rules.lifecycle.crm_precedence:
        crm_stage = c[rules.lifecycle.crm_field]
        known = crm_stage.in_(rules.lifecycle.stages)
        lifecycle = sa.case((known, crm_stage), else_=lifecycle)
        lifecycle_rule = sa.case((known, sa.literal("crm_stage")), else_=lifecycle_rule)
    adoption, adoption_rule = ruleset_cases(c, rules.product_adoption)
    layer3 = sa.select(
        *c,
        value_tier.label("value_tier"),
        value_source.label("value_tier_source"),
        (c.employee_band + sa.literal(" · ") + c.industry_group).label("firmographic_segment"),
        lifecycle.label("lifecycle_stage"),
        lifecycle_rule.label("lifecycle_rule"),
        adoption.label("adoption_segment"),
        adoption_rule.label("adoption_rule"),
        band_case(c[status.health_band.feature], status.health_band).label("health_band"),
    ).cte("layer3")

    # Layer 4: customer status and the quadrant.
    c = layer3.c
    quadrant, quadrant_rule = ruleset_cases(c, rules.quadrant.rules)
    layer4 = sa.select(
        *c,
        (c.nps_category + sa.literal(" · ") + c.health_band).label("status_segment"),
        quadrant.label("quadrant"),
        quadrant_rule.label("quadrant_rule"),
    ).cte("layer4")

    # Layer 5: engagement model and case-study candidates.
    c = layer4.c
    engagement, engagement_rule = ruleset_cases(c, rules.engagement_model)
    layer5 = sa.select(
        *c,
        engagement.label("engagement_model"),
        engagement_rule.label("engagement_rule"),
        condition(c, rules.case_study.when).label("case_study_candidate"),
    ).cte("layer5")

    # Time in Re-evaluate carries over from the previous as-of date's row.
    previous_date = (
        sa.select(sa.func.max(account_segments.c.as_of_date))
        .where(account_segments.c.as_of_date < sa.bindparam("as_of_date"))
        .scalar_subquery()
    )
    previous = (
        sa.select(account_segments.c.account_id, account_segments.c.quadrant, account_segments.c.reevaluate_since)
        .where(account_segments.c.as_of_date == previous_date)
        .subquery("previous")
    )
    c = layer5.c
    reevaluate = rules.quadrant.reevaluate_label
    in_reevaluate = c.quadrant == sa.literal(reevaluate)
    since = sa.case(
        (
            in_reevaluate,
            sa.func.coalesce(
                sa.case((previous.c.quadrant == sa.literal(reevaluate), previous.c.reevaluate_since)),
                c.as_of_date,
            ),
        )
    )
    days = sa.cast(c.as_of_date - since, sa.Integer)
    recommended = sa.case(
        (sa.and_(in_reevaluate, days > sa.literal(rules.quadrant.reevaluate_max_days)),
         sa.literal(rules.quadrant.reevaluate_moves_to)),
        else_=c.quadrant,
    )  # fmt: skip

    explanation = json_object(
        dialect,
        {
            "rules_version": sa.literal(rules.version),
            "as_of_date": sa.cast(c.as_of_date, sa.Text),
            **_explanations(c, rules, dialect),
        },
    )
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
        since.label("reevaluate_since"),
        days.label("reevaluate_days"),
        recommended.label("recommended_quadrant"),
        c.engagement_model,
        c.engagement_rule,
        c.case_study_candidate,
        sa.cast(explanation, sa.Text).label("explanation"),
        sa.literal(rules.version).label("rules_version"),
        sa.bindparam("computed_at").label("computed_at"),
    ).select_from(layer5.outerjoin(previous, previous.c.account_id == c.account_id))


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


def _explanations(c: sa.ColumnCollection, rules: SegmentationRules, dialect: str) -> dict[str, sa.ColumnElement]:
    firm, value, status = rules.firmographic, rules.customer_value, rules.customer_status

    def explain(result: str, rule: sa.ColumnElement, fields: list[str]) -> sa.ColumnElement:
        return json_object(
            dialect, {"value": c[result], "rule": rule, "inputs": _inputs(c, fields or ["account_id"], dialect)}
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
            },
        ),
        "quadrant": explain("quadrant", c.quadrant_rule, _ruleset_fields(rules.quadrant.rules)),
        "engagement_model": explain("engagement_model", c.engagement_rule, _ruleset_fields(rules.engagement_model)),
        "case_study_candidate": explain(
            "case_study_candidate", sa.literal("case_study.when"), list(rules.case_study.when)
        ),
    }


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
    warehouse.ensure_tables(eng, metadata)
    view = paths.sql_dir() / "segment" / "account_segments_current.sql"
    with warehouse.schema_change(eng) as conn:
        # Added after the first release: a warehouse created before has the table without it.
        conn.execute(sa.text("alter table mart.account_features add column if not exists account_known boolean"))
        conn.execute(sa.text(f"create or replace view mart.account_segments_current as\n{view.read_text()}"))


def compute_segments(
    as_of: date, *, rules: SegmentationRules | None = None, warehouse_url: str | None = None
) -> dict[str, Any]:
    """Replace the as-of date's partition of the features, segments and health components."""
    rules = rules or load_rules()
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)
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
            conn, account_features, account_features.c.as_of_date == as_of, "segment", "account_features", **params
        )
        conn.execute(account_segments.delete().where(account_segments.c.as_of_date == as_of))
        conn.execute(
            account_segments.insert().from_select([col.name for col in account_segments.c], segments_select),
            {"as_of_date": as_of, "computed_at": computed_at},
        )
        conn.execute(health_components.delete().where(health_components.c.as_of_date == as_of))
        conn.execute(
            health_components.insert().from_select(
                [col.name for col in health_components.c], compile_health_components(rules)
            ),
            {"as_of_date": as_of},
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
    log.info("segments as of %s (rules %s): %s accounts; quadrants %s", as_of, rules.version, inserted, quadrants)
    return {
        "as_of_date": as_of.isoformat(),
        "accounts": inserted,
        "quadrants": quadrants,
        "rules_version": rules.version,
    }
