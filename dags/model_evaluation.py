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

from airflow.sdk import dag

from postsales.dag_defaults import MONTH_PARAMS, add_run_summary, monthly, postsales_dag
from postsales.tasks.evaluation import evaluate_models, write_evaluation_report


@dag(
    schedule=monthly(),
    params=MONTH_PARAMS,
    **postsales_dag("model_evaluation", __doc__, tags=["evaluation"]),
)
def model_evaluation():
    evaluate_models() >> write_evaluation_report()
    add_run_summary()


model_evaluation()
