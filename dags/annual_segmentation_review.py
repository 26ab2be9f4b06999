"""
### Annual segmentation review

Once a year (`annual_review_month` in `include/rules/crm_sync.yaml`), as of the end of the
month before: segments and forecast, the year's migration matrix (value tiers and
quadrants, `mart.segment_migration_matrix`), the model evaluation (forecast backtest,
health vs churn, threshold and weight recommendations) in one report, and a dry-run CRM
diff. Nothing is pushed until a person approves.

**Approval gate**: review the report (path in the `write_review_report` log) and
`mart.review_recommendations`; change `include/rules/segmentation.yaml` and its
`version` if you adopt a recommendation; then trigger this DAG with
`{"month": "<the reviewed month, YYYY-MM>", "force": true, "approve_rules_version": "<that version>"}`.
The gate passes only when the
param names the rules version in the file, so tags are pushed with exactly the rules that
were approved. Runbook: `docs/crm-sync.md`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from postsales.dag_defaults import CRM_SYNC_PARAMS, MONTH_PARAMS, add_run_summary, monthly, postsales_dag
from postsales.tasks.crm import approval_gate, crm_diff_dry_run, month_is_due, push_tags_to_crm
from postsales.tasks.evaluation import evaluate_models, write_evaluation_report
from postsales.tasks.segment import segment_and_forecast, segment_migration


@dag(
    schedule=monthly(),
    params={
        "force": Param(False, type="boolean", description="Hold the review even if this is not the review month."),
        "approve_rules_version": Param(
            None,
            type=["null", "string"],
            description="Approve pushing tags computed with this segmentation rules version (must match the file).",
        ),
        **MONTH_PARAMS,
        **CRM_SYNC_PARAMS,
    },
    **postsales_dag("annual_segmentation_review", __doc__, tags=["crm", "evaluation"]),
)
def annual_segmentation_review():
    segments = segment_and_forecast.override(task_id="segment_for_review")()
    month_is_due.override(task_id="review_due")("annual review") >> segments
    migration = segment_migration.override(task_id="migration_over_the_year")(segments, 12)
    report = write_evaluation_report.override(task_id="write_review_report")(migration)
    segments >> evaluate_models() >> report
    approval_gate(report, crm_diff_dry_run(segments)) >> push_tags_to_crm(segments, approved=True)
    add_run_summary()


annual_segmentation_review()
