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

from airflow.sdk import Param, dag, task

from postsales.assets import MART_ACCOUNT_FORECASTS, MART_ACCOUNT_SEGMENTS, MART_EVALUATION
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
    @task.short_circuit
    def review_due() -> bool:
        from postsales.tasks import month_is_due

        return month_is_due("annual review")

    @task(pool=WAREHOUSE_POOL, outlets=[MART_ACCOUNT_SEGMENTS, MART_ACCOUNT_FORECASTS])
    def segment_for_review() -> dict:
        from postsales.tasks import segment_and_forecast

        return segment_and_forecast()

    @task(pool=WAREHOUSE_POOL, outlets=[MART_ACCOUNT_SEGMENTS])
    def migration_over_the_year(segments: dict) -> dict:
        from postsales.tasks import migration_since

        return migration_since(segments["as_of_date"], 12)

    @task(pool=WAREHOUSE_POOL, outlets=[MART_ACCOUNT_FORECASTS])
    def backtest_forecast(segments: dict) -> dict:
        from postsales.tasks import backtest_forecast

        return backtest_forecast()

    @task(pool=WAREHOUSE_POOL, outlets=[MART_EVALUATION, MART_ACCOUNT_SEGMENTS])
    def evaluate_health(segments: dict) -> dict:
        from postsales.tasks import health_outcomes

        return health_outcomes()

    @task(pool=WAREHOUSE_POOL, outlets=[MART_EVALUATION, MART_ACCOUNT_SEGMENTS])
    def recommend_review(health: dict) -> dict:
        from postsales.tasks import review_recommendations

        return review_recommendations()

    @task(pool=WAREHOUSE_POOL)
    def write_review_report(migration: dict, backtest: dict, review: dict) -> str:
        from postsales.tasks import evaluation_report

        return evaluation_report(migration, backtest, review)

    @task(pool=WAREHOUSE_POOL)
    def crm_diff_dry_run(segments: dict) -> dict:
        from postsales.tasks import crm_dry_run

        return crm_dry_run(segments["as_of_date"])

    @task.short_circuit
    def approval_gate(report: str, diff: dict) -> bool:
        from postsales.tasks import rules_version_approved

        return rules_version_approved()

    @task(pool=WAREHOUSE_POOL)
    def push_tags_to_crm(segments: dict) -> dict:
        from postsales.tasks import crm_push

        return crm_push(segments["as_of_date"], approved=True)

    segments = segment_for_review()
    review_due() >> segments
    report = write_review_report(
        migration_over_the_year(segments),
        backtest_forecast(segments),
        recommend_review(evaluate_health(segments)),
    )
    approval_gate(report, crm_diff_dry_run(segments)) >> push_tags_to_crm(segments)
    add_run_summary()


annual_segmentation_review()
