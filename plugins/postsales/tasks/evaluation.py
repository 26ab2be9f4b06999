"""Model evaluation tasks (``model_evaluation``, ``annual_segmentation_review``): the steps of
``postsales.evaluation.STEPS`` as tasks, grouped in :func:`evaluate_models`, then the report.

``python -m postsales.cli evaluate`` runs the same step functions in one process; the tasks
add what only a DAG run has: the as-of date of the run's month and the check that history
has started by then.
"""

from __future__ import annotations

import logging

from airflow.sdk import task, task_group

from postsales.assets import (
    BACKTEST,
    EVALUATION_REPORT_READS,
    FORECAST_READS,
    HEALTH_EVALUATION,
    HEALTH_READS,
    REVIEW,
    REVIEW_READS,
)
from postsales.pools import WAREHOUSE_POOL

log = logging.getLogger(__name__)


@task(pool=WAREHOUSE_POOL, inlets=FORECAST_READS, outlets=BACKTEST)
def backtest_forecast() -> dict:
    """The forecast backtest and the forecast as of the run's month end."""
    from postsales import evaluation
    from postsales.tasks.context import evaluation_as_of, require_history

    as_of = evaluation_as_of()
    require_history(as_of)
    return evaluation.backtest_forecast(as_of)


# Segments the past dates it scores first when they have no segmentation (ensure_segments).
@task(pool=WAREHOUSE_POOL, inlets=HEALTH_READS, outlets=HEALTH_EVALUATION)
def evaluate_health() -> dict:
    """Health vs outcome as of the run's month end."""
    from postsales import evaluation
    from postsales.tasks.context import evaluation_as_of, require_history

    as_of = evaluation_as_of()
    require_history(as_of)
    return evaluation.evaluate_health(as_of)


# Segments the as-of date first when it has no segmentation (ensure_segments).
@task(pool=WAREHOUSE_POOL, inlets=REVIEW_READS, outlets=REVIEW)
def recommend_review(health: dict) -> dict:
    """The annual review's recommendations as of the run's month end (reads what evaluate_health wrote)."""
    from postsales import evaluation
    from postsales.tasks.context import evaluation_as_of

    return evaluation.recommend_review(evaluation_as_of())


@task_group(prefix_group_id=False)
def evaluate_models() -> None:
    """Forecast backtest, and health vs outcome then the review's recommendations."""
    backtest_forecast()
    recommend_review(evaluate_health())


@task(pool=WAREHOUSE_POOL, inlets=EVALUATION_REPORT_READS)
def write_evaluation_report(*upstream: dict) -> str:
    """Write the evaluation report for the run's as-of date; returns (and logs) its path.

    It reads what the steps wrote to the warehouse; ``upstream`` only orders it after them.
    """
    from postsales import evaluation
    from postsales.tasks.context import evaluation_as_of

    path = evaluation.write_report(evaluation_as_of())
    log.info("evaluation report: %s", path)
    return str(path)
