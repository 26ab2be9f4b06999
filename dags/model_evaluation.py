"""
### Model evaluation

How good are the numbers? A monthly run, as of the last day of its data interval:

- **Forecast backtest** — tier-migration forecasts replayed from past dates with the data
  known then, scored against the tier actually reached: precision and recall of each flag,
  tier accuracy against "the tier stays the same" (`mart.forecast_backtest`,
  `mart.forecast_tier_calibration`).
- **Health vs outcome** — the health score recorded on past dates against churn,
  contraction, expansion and renewal 3/6/12 months later: AUC, rates and lift by health
  band, AUC per health component (`mart.health_outcomes`, `mart.health_component_signal`).
  Past dates never segmented are segmented first, from the data known then.
- **Annual review inputs** — suggested value-tier boundaries and health weights with the
  accounts each would move (`mart.review_recommendations`, `mart.review_migration_matrix`).
  Recommendations only: nothing changes `segmentation.yaml`.

Then writes a self-contained HTML report (path in the task log). Backfill with
`airflow backfill create --dag-id model_evaluation …`, or evaluate one month with a manual
run and the param `{"month": "YYYY-MM"}` (as of its last day); a rerun replaces the month's
partitions. Settings: `include/rules/forecast.yaml`, `include/rules/review.yaml`;
definitions: `docs/metrics.md`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from postsales.assets import MART_ACCOUNT_FORECASTS, MART_ACCOUNT_SEGMENTS, MART_EVALUATION
from postsales.dag_defaults import MONTH_PARAMS, WAREHOUSE_POOL, add_run_summary, monthly, postsales_dag


@dag(
    schedule=monthly(),
    params=MONTH_PARAMS,
    **postsales_dag("model_evaluation", __doc__, tags=["evaluation"]),
)
def model_evaluation():
    @task(pool=WAREHOUSE_POOL, outlets=[MART_ACCOUNT_FORECASTS])
    def backtest_forecast() -> dict:
        from postsales.tasks import backtest_forecast

        return backtest_forecast()

    @task(pool=WAREHOUSE_POOL, outlets=[MART_EVALUATION, MART_ACCOUNT_SEGMENTS])
    def evaluate_health() -> dict:
        from postsales.tasks import health_outcomes

        return health_outcomes()

    @task(pool=WAREHOUSE_POOL, outlets=[MART_EVALUATION, MART_ACCOUNT_SEGMENTS])
    def recommend_review(health: dict) -> dict:
        from postsales.tasks import review_recommendations

        return review_recommendations()

    @task(pool=WAREHOUSE_POOL)
    def write_evaluation_report(backtest: dict, review: dict) -> str:
        from postsales.tasks import evaluation_report

        return evaluation_report(backtest, review)

    write_evaluation_report(backtest_forecast(), recommend_review(evaluate_health()))
    add_run_summary()


model_evaluation()
