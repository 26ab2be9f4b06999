"""Airflow Assets: one per warehouse table (``include/tables/<schema>/<table>.yaml``).

Every task declares as outlets the Assets of the tables it writes, grouped here by the step
that writes them, so the Airflow UI's asset graph and lineage show each table with its
producing tasks. ``tests/dags`` checks the groups against the table homes' ``filled_by``, and
every ``dag.test()`` in the suite checks them against the tables the task's SQL really wrote.

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
