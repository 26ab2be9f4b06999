"""Model evaluation as of a date: its steps, declared once.

The ``model_evaluation`` DAG and the annual review run each step of :data:`STEPS` as a task
(``postsales.tasks.evaluation``; the backtest in parallel with health → review), then
:func:`write_report`; ``python -m postsales.cli evaluate`` runs the same functions in this
order in one process, without Airflow. Each step replaces the as-of date's partitions of
its tables, so the order only has to put the health evaluation before the review.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any


def backtest_forecast(as_of: date) -> dict[str, Any]:
    """The forecast backtest, and the forecast of the same date (the flags the report lists)."""
    from postsales.forecast import compute_forecast, run_backtest

    summary = run_backtest(as_of)
    summary["forecast"] = compute_forecast(as_of)
    return summary


def evaluate_health(as_of: date) -> dict[str, Any]:
    """Health score vs outcome (segments past dates first when they have no segmentation)."""
    from postsales.outcomes import evaluate_health as evaluate

    return evaluate(as_of)


def recommend_review(as_of: date) -> dict[str, Any]:
    """The annual review's recommendations; reads what :func:`evaluate_health` wrote."""
    from postsales.review import recommend

    return recommend(as_of)


STEPS: tuple[Callable[[date], dict[str, Any]], ...] = (backtest_forecast, evaluate_health, recommend_review)


def write_report(as_of: date) -> Path:
    """The evaluation report of the as-of date, from what the steps wrote."""
    from postsales.reports.evaluation_report import write_report as write

    return write(as_of)
