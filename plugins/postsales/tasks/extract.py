"""Extract tasks: one per staged entity (``crm_extract``: accounts, contracts, survey responses;
``usage_extract``: usage), each publishing its staging Asset."""

from __future__ import annotations

from airflow.sdk import task

from postsales.assets import STAGING, extract_reads, extract_writes
from postsales.pools import WAREHOUSE_POOL


def _extract_task(entity: str):
    """The task ``extract_<entity>``: one body for the four entities, each with its own Asset."""

    @task(
        task_id=f"extract_{entity}", pool=WAREHOUSE_POOL, inlets=extract_reads(entity), outlets=extract_writes(entity)
    )
    def extract() -> dict:
        """Extract the entity the task is named after for the run's data interval; returns the summary.

        The interval travels with the Asset event (``extra``), so a DAG scheduled on the
        Asset knows which data the event stands for even though it has no logical date.
        """
        from airflow.sdk import get_current_context

        from postsales.extract import extract_entity
        from postsales.sources import Interval
        from postsales.tasks.context import data_interval

        context = get_current_context()
        params = context["params"]
        interval = Interval.from_airflow(*data_interval(context), bool(params.get("full_refresh")))
        summary = extract_entity(
            entity, interval=interval, run_id=context["run_id"], allow_empty=bool(params.get("allow_empty"))
        )
        context["outlet_events"][STAGING[entity]].extra = {
            "interval_start": summary.interval_start,
            "interval_end": summary.interval_end,
            "full_refresh": summary.full_refresh,
            "rows_loaded": summary.rows_loaded,
        }
        return summary.as_dict()

    return extract


extract_accounts = _extract_task("accounts")
extract_contracts = _extract_task("contracts")
extract_survey_responses = _extract_task("survey_responses")
extract_usage_daily = _extract_task("usage_daily")
