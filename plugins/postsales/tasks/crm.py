"""CRM sync tasks (``segment_revision``, ``annual_segmentation_review``): is the month due, the
dry-run diff, the annual review's approval gate, the push."""

from __future__ import annotations

import logging

from airflow.sdk import task

from postsales.assets import CRM_SYNC, CRM_SYNC_READS
from postsales.pools import WAREHOUSE_POOL

log = logging.getLogger(__name__)


# Reads YAML and params only: no pool (tests/dags: WAREHOUSE_FREE_TASKS).
@task.short_circuit
def month_is_due(kind: str) -> bool:
    """Short-circuit: is the run's month a revision (``kind`` "revision") or the annual review
    month, or forced?"""
    from datetime import timedelta

    from airflow.sdk import get_current_context

    from postsales.crm.config import load_crm_sync
    from postsales.tasks.context import evaluation_as_of

    context = get_current_context()
    if context["params"].get("force"):
        log.info("%s forced by the 'force' param", kind)
        return True
    schedules = load_crm_sync().schedules
    run_month = evaluation_as_of() + timedelta(days=1)
    due = (
        schedules.is_revision_month(run_month.replace(day=1))
        if kind == "revision"
        else run_month.month == schedules.annual_review_month
    )
    log.info(
        "%s %s due in %s (revision_interval_months %s from %s, annual_review_month %s)",
        kind, "is" if due else "is not", f"{run_month:%Y-%m}", schedules.revision_interval_months,
        schedules.revision_anchor_month, schedules.annual_review_month,
    )  # fmt: skip
    return due


@task(pool=WAREHOUSE_POOL, inlets=CRM_SYNC_READS, outlets=CRM_SYNC)
def crm_diff_dry_run(segments: dict) -> dict:
    """The diff report of the segments' as-of date, without any write call."""
    from datetime import date

    from postsales.crm.sync import sync

    return sync(date.fromisoformat(segments["as_of_date"]), dry_run=True, run_id=_sync_run_id("dry_run"))


# Reads YAML and params only: no pool (tests/dags: WAREHOUSE_FREE_TASKS).
@task.short_circuit
def approval_gate(report: str, diff: dict) -> bool:
    """The annual review's approval gate: the run's `approve_rules_version` param must name
    the segmentation rules version now in include/rules/segmentation.yaml."""
    from airflow.sdk import get_current_context

    from postsales.segment.rules import load_rules
    from postsales.tasks.context import trigger_command

    context = get_current_context()
    approved = context["params"].get("approve_rules_version")
    current = load_rules().version
    if approved == current:
        log.info("rules version %s approved: segments will be pushed", current)
        return True
    log.warning(
        "awaiting approval: review the report; to apply rules %s and push the tags run %s",
        current,
        trigger_command(context, force=True, approve_rules_version=current),
    )
    return False


@task(pool=WAREHOUSE_POOL, inlets=CRM_SYNC_READS, outlets=CRM_SYNC)
def push_tags_to_crm(segments: dict, diff: dict | None = None, *, approved: bool = False) -> dict:
    """Push the tags of the segments' as-of date; ``approved`` (the annual review, after its gate)
    approves the first push and a large change. A backfilled run pushes only when its
    `push_backfill` param says so."""
    from datetime import date

    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from postsales.crm.sync import SafetyValveTripped, sync
    from postsales.tasks.context import trigger_command

    context = get_current_context()
    params = context["params"]
    run_type = str(getattr(getattr(context.get("dag_run"), "run_type", ""), "value", "")).lower()
    if run_type == "backfill" and not params.get("push_backfill"):
        log.info("backfilled run: not pushing to the CRM (set push_backfill to push)")
        return {"mode": "not_pushed", "reason": "backfill"}
    try:
        return sync(
            date.fromisoformat(segments["as_of_date"]),
            dry_run=bool(params.get("dry_run")),
            approve_first_push=approved or bool(params.get("approve_first_push")),
            approve_large_change=approved or bool(params.get("approve_large_change")),
            run_id=_sync_run_id("push"),
        )
    except SafetyValveTripped as exc:
        # Not retryable: a person must look at the diff report and approve.
        from postsales.crm.sync import report_path

        raise AirflowFailException(
            f"CRM push stopped before any write: {exc}. Read the diff report "
            f"({report_path(_sync_run_id('push'))}, or ops.crm_sync_runs); if the change is meant, approve it "
            f"with a new run: {trigger_command(context, approve_large_change=True)}"
        ) from exc


def _sync_run_id(step: str) -> str:
    from airflow.sdk import get_current_context

    context = get_current_context()
    return f"{context['run_id']}:{step}:{context['ti'].try_number}"
