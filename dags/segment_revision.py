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

from airflow.sdk import Param, dag

from postsales.dag_defaults import CRM_SYNC_PARAMS, MONTH_PARAMS, add_run_summary, monthly, postsales_dag
from postsales.tasks.crm import crm_diff_dry_run, month_is_due, push_tags_to_crm
from postsales.tasks.segment import segment_and_forecast, segment_migration


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
    segments = segment_and_forecast.override(task_id="segment_for_revision")()
    month_is_due.override(task_id="revision_due")("revision") >> segments
    segment_migration.override(task_id="migration_since_last_revision")(segments)
    push_tags_to_crm(segments, crm_diff_dry_run(segments))
    add_run_summary()


segment_revision()
