"""Run summary: one row per DAG run in ``ops.run_summary`` and one readable log line.

The ``summarize_run`` task at the end of every DAG (a teardown: it runs when upstream
tasks failed and does not change the run's state) passes the summaries its upstream tasks
returned through XCom and their states. The figures are read from those summaries by their
shape (an extract summary, a segmentation summary, a cohort snapshot, a CRM sync result),
so a DAG that does not produce one leaves its columns null. The row is replaced on the
key (dag_id, run_id) in one transaction: a rerun leaves one row, the latest. Every figure is
defined in docs/operations.md ("Run summary").
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from postsales import warehouse
from postsales.tables import table

log = logging.getLogger(__name__)

STAGE = "monitoring"
TOP_REASONS = 5
FAILED_STATES = {"failed", "upstream_failed"}

run_summary = table("ops.run_summary")
TABLES = (run_summary,)


@dataclass
class RunFacts:
    """What the summary task knows about its run."""

    dag_id: str
    run_id: str
    run_type: str | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    started_at: datetime | None = None
    task_states: Mapping[str, str | None] = field(default_factory=dict)
    task_results: Mapping[str, Any] = field(default_factory=dict)
    task_tries: Mapping[str, int] = field(default_factory=dict)


def is_extract(result: Any) -> bool:
    return isinstance(result, Mapping) and {"entity", "rows_read", "rows_loaded", "rows_quarantined"} <= result.keys()


def is_segmentation(result: Any) -> bool:
    return isinstance(result, Mapping) and {"as_of_date", "quadrants"} <= result.keys()


def is_cohort_snapshot(result: Any) -> bool:
    return isinstance(result, Mapping) and "snapshot_month" in result


def is_crm_sync(result: Any) -> bool:
    return isinstance(result, Mapping) and ("fields_changed" in result or result.get("mode") == "not_pushed")


def figures(facts: RunFacts) -> dict[str, Any]:
    """The row's figures from the task results and states (everything but segments_changed)."""
    results = [facts.task_results[t] for t in sorted(facts.task_results)]
    states = {t: str(s).lower() if s is not None else None for t, s in facts.task_states.items()}
    failed = sorted(t for t, s in states.items() if s == "failed")
    row: dict[str, Any] = {
        "state": "failed" if failed or any(s in FAILED_STATES for s in states.values()) else "success",
        "failed_tasks": json.dumps(failed),
        "skipped_tasks": json.dumps(sorted(t for t, s in states.items() if s == "skipped")),
        "retries": sum(max(int(tries) - 1, 0) for tries in facts.task_tries.values()),
        "task_tries": json.dumps({t: int(facts.task_tries[t]) for t in sorted(facts.task_tries)}),
    }

    extracts = [r for r in results if is_extract(r)]
    if extracts:
        groups = []
        for summary in extracts:
            # Summaries from before quarantine_groups existed: their top reasons, one row each.
            by_labels = summary.get("quarantine_groups") or {
                json.dumps([label]): rows for label, rows in (summary.get("top_failures") or {}).items()
            }
            for labels, rows in by_labels.items():
                groups.append(([f"{summary['entity']}: {label}" for label in json.loads(labels)], int(rows)))
        listed, more, more_rows = top_reasons(groups, TOP_REASONS)
        reasons = dict(listed) | ({more_reasons_label(more): more_rows} if more else {})
        row |= {
            "rows_extracted": sum(int(r["rows_read"]) for r in extracts),
            "rows_loaded": sum(int(r["rows_loaded"]) for r in extracts),
            "rows_quarantined": sum(int(r["rows_quarantined"]) for r in extracts),
            "top_quarantine_reasons": json.dumps(reasons, sort_keys=False),
        }

    segmentations = [r for r in results if is_segmentation(r)]
    if segmentations:
        row["segments_as_of_date"] = date.fromisoformat(str(segmentations[-1]["as_of_date"]))

    snapshots = [r for r in results if is_cohort_snapshot(r)]
    if snapshots:
        row["cohort_snapshot_month"] = date.fromisoformat(str(snapshots[-1]["snapshot_month"]))

    syncs = [r for r in results if is_crm_sync(r)]
    if syncs:
        pushes = [r for r in syncs if r.get("mode") == "push"]
        pushed = sum(int(r.get("fields_succeeded") or 0) for r in pushes)
        failed_fields = sum(int(r.get("fields_failed") or 0) for r in pushes)
        diff = max(int(r.get("fields_changed") or 0) for r in syncs)
        row |= {
            "crm_fields_pushed": pushed,
            "crm_fields_failed": failed_fields,
            "crm_fields_skipped": max(diff - pushed - failed_fields, 0),
            "crm_accounts_skipped": max(int(r.get("accounts_skipped") or 0) for r in syncs),
        }
    return row


def top_reasons(groups: list[tuple[list[str], int]], top: int) -> tuple[list[tuple[str, int]], int, int]:
    """The ``top`` quarantine reasons with most rows, and what they leave out.

    ``groups`` are (the reasons a set of rows failed, how many rows), as ``ops.quarantine``
    stores them. A reason's rows are the rows that failed it (a row failing two counts under
    both); most rows first, then by name, so equal counts always come out in the same order.
    Returns (reason, rows) pairs, how many more reasons there are, and how many rows failed at
    least one of those.
    """
    counts: Counter = Counter()
    for labels, rows in groups:
        for label in set(labels):
            counts[label] += rows
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = {label for label, _ in ranked[:top]}
    more_rows = sum(rows for labels, rows in groups if not shown.issuperset(labels))
    return ranked[:top], len(ranked) - len(shown), more_rows


def more_reasons_label(more: int) -> str:
    return f"… and {more} more reason{'s' if more > 1 else ''}"


# Where every reason is: shown when the top reasons leave some out.
def all_reasons_query() -> str:
    """include/sql/reports/quarantine_by_reasons.sql on one line, for a person to copy from the summary."""
    lines = (
        line.split("--", 1)[0].strip() for line in warehouse.sql_text("reports", "quarantine_by_reasons").splitlines()
    )
    return " ".join(line for line in lines if line)


def segments_changed(conn: sa.Connection, as_of: date) -> tuple[date | None, int | None]:
    """(previous as-of date, accounts whose value tier or quadrant changed since it)."""
    row = warehouse.query(conn, STAGE, "segments_changed", as_of_date=as_of)[0]
    compared_to = row.compared_to
    if compared_to is None:
        return None, None
    if isinstance(compared_to, datetime):
        compared_to = compared_to.date()
    return compared_to, int(row.segments_changed)


def write_run_summary(facts: RunFacts, *, now: datetime | None = None, warehouse_url: str | None = None) -> dict:
    """Compute the run's row, replace it in ``ops.run_summary`` and log the summary line."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    started = _naive_utc(facts.started_at)
    row: dict[str, Any] = {c.name: None for c in run_summary.columns}
    row |= {
        "dag_id": facts.dag_id,
        "run_id": facts.run_id,
        "run_type": facts.run_type,
        "data_interval_start": _naive_utc(facts.data_interval_start),
        "data_interval_end": _naive_utc(facts.data_interval_end),
        "started_at": started,
        "duration_seconds": round((now - started).total_seconds(), 3) if started else None,
        "summarized_at": now,
    }
    row |= figures(facts)
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng, staging=False)  # a summary even when expectations.yaml is broken
    key = sa.and_(run_summary.c.dag_id == facts.dag_id, run_summary.c.run_id == facts.run_id)
    with eng.begin() as conn:
        if row["segments_as_of_date"] is not None:
            row["segments_compared_to"], row["segments_changed"] = segments_changed(conn, row["segments_as_of_date"])
        warehouse.delete_partition(conn, run_summary, key)
        conn.execute(run_summary.insert(), [row])
    log.info("%s", summary_line(row))
    return {k: v.isoformat() if isinstance(v, (date, datetime)) else v for k, v in row.items()}


def latest_summaries(conn: sa.Connection) -> list[dict]:
    """The latest row of ``ops.run_summary`` per DAG, by DAG id (empty before the first run)."""
    if not sa.inspect(conn).has_table("run_summary", schema="ops"):
        return []
    latest = (
        sa.select(run_summary.c.dag_id, sa.func.max(run_summary.c.summarized_at).label("summarized_at"))
        .group_by(run_summary.c.dag_id)
        .subquery()
    )
    query = (
        sa.select(run_summary)
        .join(
            latest,
            sa.and_(run_summary.c.dag_id == latest.c.dag_id, run_summary.c.summarized_at == latest.c.summarized_at),
        )
        .order_by(run_summary.c.dag_id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def summary_line(row: Mapping[str, Any]) -> str:
    """One readable line, e.g. ``run summary crm_extract scheduled__…: success in 42s; extracted …``."""
    parts = [f"{row['state']}" + (f" in {_duration(row['duration_seconds'])}" if row["duration_seconds"] else "")]
    if row.get("retries"):
        retried = {task: tries for task, tries in json.loads(row["task_tries"]).items() if tries > 1}
        parts.append(
            f"{row['retries']} {'retry' if row['retries'] == 1 else 'retries'} "
            f"({', '.join(f'{task} {tries} tries' for task, tries in retried.items())})"
        )
    failed = json.loads(row["failed_tasks"])
    if failed:
        parts.append(f"failed tasks: {', '.join(failed)}")
    if row["rows_extracted"] is not None:
        reasons = json.loads(row["top_quarantine_reasons"] or "{}")
        top = "; ".join(
            f"{label} ({rows:,} row{'s' if rows > 1 else ''}) in ops.quarantine where run_id = '{row['run_id']}'"
            if label.startswith("… and")
            else f"{label} {rows:,}"
            for label, rows in reasons.items()
        )
        parts.append(
            f"extracted {row['rows_extracted']:,} rows, loaded {row['rows_loaded']:,}, "
            f"quarantined {row['rows_quarantined']:,}" + (f" (top: {top})" if top else "")
        )
    if row["segments_as_of_date"] is not None:
        if row["segments_compared_to"] is None:
            parts.append(f"segments as of {row['segments_as_of_date']}: first snapshot")
        else:
            parts.append(
                f"segments as of {row['segments_as_of_date']}: {row['segments_changed']:,} accounts changed "
                f"value tier or quadrant since {row['segments_compared_to']}"
            )
    if row["cohort_snapshot_month"] is not None:
        parts.append(f"cohort snapshot {row['cohort_snapshot_month']:%Y-%m} written")
    if row["crm_fields_pushed"] is not None:
        parts.append(
            f"CRM fields pushed {row['crm_fields_pushed']:,}, skipped {row['crm_fields_skipped']:,}, "
            f"failed {row['crm_fields_failed']:,}; CRM accounts skipped {row['crm_accounts_skipped']:,}"
        )
    return f"run summary {row['dag_id']} {row['run_id']}: " + "; ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
