"""
### Segment revision → CRM

Every `revision_interval_months` months (6–9, `include/rules/crm_sync.yaml`; default 6):
segments and the tier-migration forecast as of the end of the month just ended, the
migration matrix against the previous revision (`mart.segment_migration_matrix`: accounts
moved between value tiers and quadrants), a dry-run diff of the CRM tags, then the push.

The DAG runs monthly and skips months that are not revision months (the interval lives in
YAML, validated, not in this file). The push is diff-only and never writes nulls; accounts
locked in the CRM are skipped; every attempt is logged in `ops.crm_sync_log` and the diff
report is in `ops.crm_sync_runs` and `data/reports/crm_sync_<run>.json`. The first push to
a CRM is a dry run unless `approve_first_push`; more than `max_changed_share` of accounts
changing stops the run before any write unless `approve_large_change` (after reading the
diff report, trigger `{"month": "<the month>", "approve_large_change": true}`). A backfilled
revision computes everything but pushes only with `push_backfill`. Runbook:
`docs/crm-sync.md`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from postsales.assets import MART_ACCOUNT_FORECASTS, MART_ACCOUNT_SEGMENTS
from postsales.dag_defaults import (
    CRM_SYNC_PARAMS,
    MONTH_PARAMS,
    WAREHOUSE_POOL,
    add_run_summary,
    monthly,
    postsales_dag,
)


@dag(
    schedule=monthly(),
    params={
        "force": Param(False, type="boolean", description="Revise even if this is not a revision month."),
        **MONTH_PARAMS,
        **CRM_SYNC_PARAMS,
    },
    **postsales_dag("segment_revision", __doc__, tags=["crm"]),
)
def segment_revision():
    @task.short_circuit
    def revision_due() -> bool:
        from postsales.tasks import month_is_due

        return month_is_due("revision")

    @task(pool=WAREHOUSE_POOL, outlets=[MART_ACCOUNT_SEGMENTS, MART_ACCOUNT_FORECASTS])
    def segment_for_revision() -> dict:
        from postsales.tasks import segment_and_forecast

        return segment_and_forecast()

    @task(pool=WAREHOUSE_POOL, outlets=[MART_ACCOUNT_SEGMENTS])
    def migration_since_last_revision(segments: dict) -> dict:
        from postsales.tasks import migration_since, revision_months

        return migration_since(segments["as_of_date"], revision_months())

    @task(pool=WAREHOUSE_POOL)
    def crm_diff_dry_run(segments: dict) -> dict:
        from postsales.tasks import crm_dry_run

        return crm_dry_run(segments["as_of_date"])

    @task(pool=WAREHOUSE_POOL)
    def push_tags_to_crm(segments: dict, diff: dict) -> dict:
        from postsales.tasks import crm_push

        return crm_push(segments["as_of_date"])

    segments = segment_for_revision()
    revision_due() >> segments
    migration_since_last_revision(segments)
    push_tags_to_crm(segments, crm_diff_dry_run(segments))
    add_run_summary()


segment_revision()
