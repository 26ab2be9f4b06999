"""Task bodies called from the DAG files; the DAG files only wire them."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def extract(entity: str) -> dict:
    """Extract ``entity`` for the current run's data interval; returns the summary."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from postsales.errors import DataContractError
    from postsales.extract import extract_entity
    from postsales.sources import Interval

    context = get_current_context()
    params = context["params"]
    interval = Interval.from_airflow(
        context["data_interval_start"], context["data_interval_end"], bool(params.get("full_refresh"))
    )
    try:
        summary = extract_entity(
            entity, interval=interval, run_id=context["run_id"], allow_empty=bool(params.get("allow_empty"))
        )
    except DataContractError as exc:
        # Bad input cannot be fixed by retrying: fail now with the message that says how to fix it.
        raise AirflowFailException(str(exc)) from exc
    return summary.as_dict()
