"""Airflow Assets: one per warehouse table (``include/tables/<schema>/<table>.yaml``).

Every task declares as outlets the Assets of the tables it writes, and as inlets those of the
tables it reads (but for tables it also writes), grouped here by the step that writes or reads
them, so the Airflow UI's asset graph and the OpenLineage events (``postsales.lineage``) show
each table with its producing and consuming tasks. ``tests/dags`` checks the outlet groups
against the table homes' ``filled_by``, and every ``dag.test()`` in the suite checks both
against the tables the task's SQL really wrote and read.

Kept free of heavy imports and I/O: DAG files import this at parse time.
"""

from airflow.sdk import Asset

URI_PREFIX = "postsales://warehouse/"


# Assets published before there was one per table keep their names: Airflow keeps one active
# Asset per URI, so a new name for the same URI fails every task that declares it in a metadata
# database made before (inactive asset) until the scheduler's orphan cleanup, and forever under
# dag.test() (make run), which has none.
NAMES_KEPT = {"mart.cohort_retention": "mart_cohorts", "mart.health_outcomes": "mart_evaluation"}


def table_asset(table: str) -> Asset:
    """The Asset of the warehouse table ``schema.table`` (named ``schema_table`` but for NAMES_KEPT)."""
    schema, _, name = table.partition(".")
    if not (schema and name and name.isidentifier() and schema.isidentifier()):
        raise ValueError(f"{table!r} is not a warehouse table name (schema.table)")
    return Asset(name=NAMES_KEPT.get(table, f"{schema}_{name}"), uri=f"{URI_PREFIX}{schema}/{name}")


def asset_table(asset: Asset) -> str | None:
    """The ``schema.table`` an Asset of :func:`table_asset` stands for; None for any other Asset."""
    uri = getattr(asset, "uri", "")
    if not uri.startswith(URI_PREFIX):
        return None
    return uri.removeprefix(URI_PREFIX).replace("/", ".", 1)


def _assets(*tables: str) -> tuple[Asset, ...]:
    return tuple(table_asset(t) for t in tables)


def combined(*groups: tuple[Asset, ...]) -> tuple[Asset, ...]:
    """The Assets of several groups, each once (the first place it is named)."""
    unique: dict[str, Asset] = {}
    for group in groups:
        for asset in group:
            unique.setdefault(asset.uri, asset)
    return tuple(unique.values())


ENTITIES = ("accounts", "contracts", "survey_responses", "usage_daily")

# The staging Assets the segmentation DAG is scheduled on: an extract's event carries its interval.
STAGING = {entity: table_asset(f"staging.{entity}") for entity in ENTITIES}


def extract_writes(entity: str) -> tuple[Asset, ...]:
    """``postsales.extract.extract_entity``: the raw rows, their staging view, quarantine and the run log."""
    return (STAGING[entity], *_assets(f"raw.{entity}", "ops.quarantine", "ops.extract_runs"))


# postsales.segment.engine.compute_segments (also run by every step that ensures segments first).
SEGMENTS = _assets(
    "mart.account_features", "mart.account_health_components", "mart.account_data_gaps", "mart.account_segments"
)
# postsales.forecast.compute_forecast
FORECASTS = _assets("mart.account_forecasts")
# postsales.forecast.run_backtest (then the forecast as of the run's date)
BACKTEST = _assets("mart.forecast_backtest", "mart.forecast_tier_calibration") + FORECASTS
# postsales.cohorts.compute_snapshot (segments the month's last day first when it has none)
COHORT_SNAPSHOT = (
    _assets(
        "mart.mrr_monthly",
        "mart.mrr_movements",
        "mart.cohort_retention",
        "mart.cohort_retention_by_segment",
        "mart.account_cohort_segments",
        "mart.pricing_cohort_comparison",
        "mart.cohort_quarterly_expansion",
    )
    + SEGMENTS
)
# postsales.outcomes.evaluate_health (segments the dates it scores first when they have none)
HEALTH_EVALUATION = _assets("mart.health_outcomes", "mart.health_component_signal") + SEGMENTS
# postsales.review.recommend (segments the as-of date first when it has none)
REVIEW = _assets("mart.review_recommendations", "mart.review_migration_matrix") + SEGMENTS
# postsales.segment.migration.migration_matrix (segments the compared date first when it has none)
MIGRATION = _assets("mart.segment_migration_matrix") + SEGMENTS
# postsales.crm.sync.sync: a dry run logs its diff too
CRM_SYNC = _assets("ops.crm_sync_runs", "ops.crm_sync_log", "ops.crm_sync_state")
# postsales.monitoring.write_run_summary
RUN_SUMMARY = _assets("ops.run_summary")


# --- inlets: the tables each step reads ---------------------------------------------------
# A step that segments a date with no segmentation yet (ensure_segments) reads what
# compute_segments reads; a table a step writes is left out even where it reads it too.

STAGED = _assets(*(f"staging.{entity}" for entity in ENTITIES))

# The entity whose keys an entity's rows must reference (``references`` in
# include/rules/expectations.yaml; tests/dags checks the two agree).
REFERENCES = {"contracts": "accounts", "survey_responses": "accounts", "usage_daily": "accounts"}


def extract_reads(entity: str) -> tuple[Asset, ...]:
    """``postsales.extract.extract_entity``: the keys its rows reference, landed (quarantined rows
    included) and staged. The source it reads is reported at runtime (``postsales.lineage``)."""
    referenced = REFERENCES.get(entity)
    return _assets(f"raw.{referenced}", f"staging.{referenced}") if referenced else ()


# postsales.segment.engine.compute_segments: the staged entities as of the date (their views)
SEGMENT_READS = STAGED
# postsales.forecast.compute_forecast and run_backtest: contracts and usage (account_trajectories.sql)
FORECAST_READS = _assets("staging.contracts", "staging.usage_daily")
# postsales.cohorts.compute_snapshot: contracts (mrr_monthly.sql), industries and quadrants
COHORT_READS = STAGED + _assets("mart.account_segments")
# postsales.outcomes.evaluate_health: segments and health components of the scored dates, contract terms
HEALTH_READS = STAGED + _assets("mart.account_segments", "mart.account_health_components")
# postsales.review.recommend: the health signal evaluate_health wrote, segments and components
REVIEW_READS = STAGED + _assets(
    "mart.account_segments", "mart.account_health_components", "mart.health_component_signal"
)
# postsales.segment.migration.migration_matrix: the segments of both dates
MIGRATION_READS = STAGED + _assets("mart.account_segments")
# postsales.crm.sync.sync: the tags (segments, forecasts) and what was pushed before
CRM_SYNC_READS = _assets("mart.account_segments", "mart.account_forecasts", "ops.crm_sync_state")
# postsales.monitoring.write_run_summary: segments changed since the previous snapshot
RUN_SUMMARY_READS = _assets("mart.account_segments")

# The reports: postsales.reports.*.write_report
SEGMENTATION_REPORT_READS = _assets(
    "mart.account_features", "mart.account_segments", "mart.account_forecasts", "ops.crm_sync_runs"
)
COHORT_REPORT_READS = _assets(
    "mart.cohort_retention",
    "mart.cohort_retention_by_segment",
    "mart.mrr_movements",
    "mart.pricing_cohort_comparison",
    "mart.cohort_quarterly_expansion",
)
EVALUATION_REPORT_READS = _assets(
    "mart.account_features",
    "mart.account_segments",
    "mart.account_data_gaps",
    "mart.account_forecasts",
    "mart.forecast_backtest",
    "mart.forecast_tier_calibration",
    "mart.health_outcomes",
    "mart.health_component_signal",
    "mart.review_recommendations",
    "mart.review_migration_matrix",
    "mart.segment_migration_matrix",
)
