"""Push segment tags to the CRM: diff-only, never a null, locked accounts skipped, every attempt logged.

One sync for an as-of date:

1. desired tags: ``mart.account_segments`` (and ``mart.account_forecasts``) of the date,
   mapped to CRM fields by ``include/rules/crm_sync.yaml``;
2. read the CRM's current values and manual-override flag for those accounts;
3. plan: a field is written only if its new value differs from the last value pushed
   successfully (``ops.crm_sync_state``) and, with ``compare_with_crm``, from the CRM's
   current value; a null is never written unless the mapping allows it, an Unknown (or an
   Unclassified quadrant) never over a value the CRM holds; locked, missing and ambiguous
   accounts are skipped and listed; the segment-updated-at stamp goes only with a real change;
4. stop before any write when this is the first push to the CRM (dry run unless approved)
   or when more than ``max_changed_share`` of the accounts would change (unless approved);
5. write in rounds: records failing transiently are re-sent next round (up to
   ``retries.attempts``); state advances only for records that succeeded, so anything
   else is tried again by the next run. Every attempt of every field is a row in
   ``ops.crm_sync_log``; the run and its diff report are a row in ``ops.crm_sync_runs``
   and a JSON file under ``data/reports``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from postsales import lineage, paths, warehouse
from postsales.crm.base import Change, CrmAdapter, CrmRecord, WriteInterrupted, WriteResult
from postsales.crm.config import SYNCABLE_COLUMNS, CrmSyncConfig, load_crm_sync
from postsales.errors import PermanentError, TransientError
from postsales.retry import RetryPolicy
from postsales.segment.rules import PART_SEPARATOR, UNCLASSIFIED, UNKNOWN
from postsales.tables import table

log = logging.getLogger(__name__)

STAMP = "segment_updated_at"
SAMPLES = 20

crm_sync_state = table("ops.crm_sync_state")
crm_sync_log = table("ops.crm_sync_log")
crm_sync_runs = table("ops.crm_sync_runs")
TABLES = (crm_sync_state, crm_sync_log, crm_sync_runs)


class SafetyValveTripped(RuntimeError):
    """Too many accounts would change: nothing was written; approve to proceed."""


# --- values -----------------------------------------------------------------------------


def canonical(value: Any, kind: str) -> str | None:
    """One text form per value, whatever the CRM returns (1/0, "true", 71.4, "71.40")."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if kind == "boolean":
        return "true" if str(value).strip().lower() in ("1", "true", "t", "yes", "1.0") else "false"
    if kind == "number":
        try:
            return f"{round(float(value), 2):.2f}"
        except (TypeError, ValueError):  # typed into a text field of the CRM ("n/a", "71,4"): no number of ours
            return str(value)
    if kind == "date":
        return str(value)[:10]
    return str(value)


def to_crm(text: str | None, kind: str) -> Any:
    """The value written to the CRM for a canonical text."""
    if text is None:
        return None
    if kind == "boolean":
        return text == "true"
    if kind == "number":
        return float(text)
    return text


def is_unknown(text: str | None) -> bool:
    """A value the segmentation could not determine for lack of an input: Unknown, a composite
    with an Unknown part ("Unknown · Software"), or the quadrant Unclassified (an axis missing)."""
    return text is not None and (text == UNCLASSIFIED or UNKNOWN in text.split(PART_SEPARATOR))


def is_set(value: Any) -> bool:
    """A manual-override field counts as set unless empty, null, 0 or false."""
    return canonical(value, "text") is not None and str(value).strip().lower() not in ("0", "false", "f", "no", "0.0")


# --- plan -------------------------------------------------------------------------------


@dataclass
class Plan:
    considered: int = 0
    changes: list[Change] = field(default_factory=list)
    old_values: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (account, field) -> CRM value
    new_values: dict[tuple[str, str], str | None] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> accounts
    nulls_not_written: int = 0
    unknowns_not_written: int = 0

    @property
    def fields_changed(self) -> int:
        return sum(len(change.fields) for change in self.changes)


def plan_changes(
    desired: dict[str, dict[str, Any]],
    crm: dict[str, CrmRecord],
    state: dict[tuple[str, str], str | None],
    config: CrmSyncConfig,
    as_of: date,
) -> Plan:
    """What to write: ``desired`` is our column values per account id."""
    plan = Plan()
    mapping = config.fields
    for account_id in sorted(desired):
        record = crm.get(account_id)
        if record is None:
            plan.skipped.setdefault("not_in_crm", []).append(account_id)
            continue
        if record.matches > 1:
            plan.skipped.setdefault("key_matches_several_crm_records", []).append(account_id)
            continue
        if config.manual_override_field and is_set(record.values.get(config.manual_override_field)):
            plan.skipped.setdefault("manual_override_set_in_crm", []).append(account_id)
            continue
        plan.considered += 1
        fields: dict[str, Any] = {}
        for column, target in mapping.items():
            if column == STAMP:
                continue
            kind = SYNCABLE_COLUMNS[column]
            new = canonical(desired[account_id].get(column), kind)
            if new is None and not target.write_nulls:
                plan.nulls_not_written += 1
                continue
            crm_now = canonical(record.values.get(target.crm_field), kind)
            if is_unknown(new) and crm_now is not None and crm_now != new:
                # Unknown for lack of an input: the CRM keeps the value it has (ours from an earlier
                # push or a person's) until the input is filled in; an empty field gets Unknown.
                plan.unknowns_not_written += 1
                continue
            pushed_before = (account_id, target.crm_field) in state
            if pushed_before and state[(account_id, target.crm_field)] == new:
                continue  # unchanged since our last push (a manual edit since then is left alone)
            if config.compare_with_crm and crm_now == new:
                continue  # the CRM already holds it
            fields[target.crm_field] = to_crm(new, kind)
            plan.old_values[(account_id, target.crm_field)] = crm_now
            plan.new_values[(account_id, target.crm_field)] = new
        stamp_field = mapping[STAMP].crm_field if STAMP in mapping else None
        if fields and stamp_field and canonical(record.values.get(stamp_field), "date") != as_of.isoformat():
            fields[stamp_field] = as_of.isoformat()
            plan.old_values[(account_id, stamp_field)] = canonical(record.values.get(stamp_field), "date")
            plan.new_values[(account_id, stamp_field)] = as_of.isoformat()
        if fields:
            plan.changes.append(Change(account_id, record.crm_id, fields))
    return plan


def diff_report(plan: Plan, config: CrmSyncConfig) -> dict[str, Any]:
    """Counts old -> new per field, samples, and the accounts skipped and why."""
    transitions: dict[str, Counter] = {}
    for (_account, crm_field), new in plan.new_values.items():
        old = plan.old_values.get((_account, crm_field))
        transitions.setdefault(crm_field, Counter())[f"{old} -> {new}"] += 1
    return {
        "accounts_considered": plan.considered,
        "accounts_changed": len(plan.changes),
        "fields_changed": plan.fields_changed,
        "nulls_not_written": plan.nulls_not_written,
        "unknowns_not_written": plan.unknowns_not_written,
        "by_field": {
            crm_field: {"changes": sum(counter.values()), "old_to_new": dict(counter.most_common(10))}
            for crm_field, counter in sorted(transitions.items())
        },
        "samples": [
            {"account_id": c.account_id, "crm_id": c.crm_id, "fields": c.fields} for c in plan.changes[:SAMPLES]
        ],
        "skipped": {reason: {"count": len(ids), "accounts": ids[:100]} for reason, ids in plan.skipped.items()},
    }


# --- running ----------------------------------------------------------------------------


def make_adapter(config: CrmSyncConfig, retry: RetryPolicy) -> CrmAdapter:
    if config.adapter == "sql":
        from postsales.crm.sql_adapter import SqlCrmAdapter

        return SqlCrmAdapter(config.sql, config.key.crm_key_field, retry)
    if config.adapter == "salesforce":
        from postsales.crm.salesforce import SalesforceAdapter

        return SalesforceAdapter.from_connection(config.salesforce, config.key.crm_key_field, retry)
    from postsales.crm.hubspot import HubSpotAdapter

    return HubSpotAdapter.from_connection(config.hubspot, config.key.crm_key_field, retry)


def desired_tags(conn: sa.Connection, as_of: date, config: CrmSyncConfig) -> dict[str, dict[str, Any]]:
    from postsales.forecast import account_forecasts
    from postsales.segment.engine import account_segments

    columns = [c for c in config.fields if c != STAMP]
    segment_columns = [account_segments.c[c] for c in columns if c in account_segments.c]
    forecast_columns = [account_forecasts.c[c] for c in columns if c not in account_segments.c]
    statement = sa.select(account_segments.c.account_id, *segment_columns).where(account_segments.c.as_of_date == as_of)
    if forecast_columns:
        statement = (
            sa.select(account_segments.c.account_id, *segment_columns, *forecast_columns)
            .select_from(
                account_segments.outerjoin(
                    account_forecasts,
                    sa.and_(
                        account_forecasts.c.account_id == account_segments.c.account_id,
                        account_forecasts.c.as_of_date == account_segments.c.as_of_date,
                    ),
                )
            )
            .where(account_segments.c.as_of_date == as_of)
        )
    rows = conn.execute(statement).mappings().all()
    return {row["account_id"]: dict(row) for row in rows}


def sync(
    as_of: date,
    *,
    dry_run: bool = False,
    approve_first_push: bool = False,
    approve_large_change: bool = False,
    run_id: str | None = None,
    config: CrmSyncConfig | None = None,
    adapter: CrmAdapter | None = None,
    warehouse_url: str | None = None,
    sleep=time.sleep,
) -> dict[str, Any]:
    """Sync the as-of date's segment tags to the CRM; returns the run summary.

    Raises :class:`SafetyValveTripped` (after recording the blocked run) when too many
    accounts would change and ``approve_large_change`` is not set.
    """
    config = config or load_crm_sync()
    retry = RetryPolicy(config.retries.attempts, config.retries.backoff_seconds, sleep=sleep)
    adapter = adapter or make_adapter(config, retry)
    target = adapter.describe()
    run_id = run_id or f"crm_sync_{uuid.uuid4().hex[:12]}"
    started = datetime.now(UTC).replace(tzinfo=None)
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)
    with eng.connect() as conn:
        desired = desired_tags(conn, as_of, config)
        state = {
            (row.account_id, row.crm_field): row.value
            for row in conn.execute(
                sa.select(crm_sync_state.c.account_id, crm_sync_state.c.crm_field, crm_sync_state.c.value).where(
                    crm_sync_state.c.target == target
                )
            )
        }
    crm_fields = [m.crm_field for m in config.fields.values()]
    if config.manual_override_field:
        crm_fields.append(config.manual_override_field)
    current = adapter.fetch(sorted(desired), crm_fields)
    lineage.read_crm(config, adapter)
    plan = plan_changes(desired, current, state, config, as_of)
    report = diff_report(plan, config)

    mode, reason = "push", None
    share = len(plan.changes) / plan.considered if plan.considered else 0.0
    if dry_run:
        mode, reason = "dry_run", "dry run requested"
    elif not state and config.safety.dry_run_first_push and not approve_first_push and plan.changes:
        mode, reason = "dry_run", "first push to this CRM: dry run until approved (approve_first_push)"
    elif share > config.safety.max_changed_share and not approve_large_change and (state or not approve_first_push):
        # An approved first push changes everything by definition: its approval covers the valve.
        mode = "blocked"
        reason = (
            f"{len(plan.changes)} of {plan.considered} accounts ({share:.0%}) would change, above "
            f"max_changed_share {config.safety.max_changed_share:.0%}: approve with approve_large_change"
        )
    report |= {"mode": mode, "reason": reason, "target": target, "as_of_date": as_of.isoformat()}

    tally = Tally()
    stopped: BaseException | None = None
    if mode == "push" and plan.changes:
        try:
            _push(eng, adapter, plan, target, run_id, retry, config.retries.attempts, tally)
        except Exception as exc:  # recorded below with what was written before it, then raised
            stopped = exc
            reason = f"stopped: {_stop_reason(exc)}"
            report["reason"] = reason
        if tally.succeeded:
            lineage.wrote_crm(config, adapter)
    succeeded, failed, calls = tally.succeeded, tally.failed, tally.calls
    finished = datetime.now(UTC).replace(tzinfo=None)
    summary = {
        "run_id": run_id,
        "target": target,
        "as_of_date": as_of,
        "mode": mode,
        "reason": reason,
        "accounts_considered": plan.considered,
        "accounts_changed": len(plan.changes),
        "fields_changed": plan.fields_changed,
        "fields_succeeded": succeeded,
        "fields_failed": failed,
        "accounts_skipped": sum(len(ids) for ids in plan.skipped.values()),
        "write_calls": calls,
        "report": json.dumps(report, default=str, sort_keys=True),
        "started_at": started,
        "finished_at": finished,
    }
    with eng.begin() as conn:
        warehouse.delete_partition(conn, crm_sync_runs, crm_sync_runs.c.run_id == run_id)
        conn.execute(crm_sync_runs.insert(), [summary])
    path = report_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, default=str, indent=2, sort_keys=True), encoding="utf-8")
    result = {k: v for k, v in summary.items() if k != "report"} | {
        "as_of_date": as_of.isoformat(),
        "skipped": {reason: len(ids) for reason, ids in plan.skipped.items()},
        "report_path": str(path),
    }
    log.info("crm sync %s to %s: %s", run_id, target, {k: v for k, v in result.items() if k not in ("target",)})
    if stopped is not None:
        raise stopped
    if mode == "blocked":
        raise SafetyValveTripped(reason)
    return result


def _stop_reason(exc: BaseException) -> str:
    """What stopped a push, for the run's record: our errors' messages are masked; another
    exception (a bug) is named by its type only, since its text may quote a secret."""
    if isinstance(exc, (PermanentError, TransientError)):
        return str(exc)[:500]
    return f"{type(exc).__name__} (see the task log)"


def report_path(run_id: str):
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return paths.data_dir() / "reports" / f"crm_sync_{safe}.json"


@dataclass
class Tally:
    """What a push did so far: kept by the caller, so it is known even when the push raises."""

    succeeded: int = 0  # fields
    failed: int = 0  # fields
    calls: int = 0  # write calls


def _push(
    eng: sa.Engine,
    adapter: CrmAdapter,
    plan: Plan,
    target: str,
    run_id: str,
    retry: RetryPolicy,
    rounds: int,
    tally: Tally,
) -> None:
    """Write in rounds, auditing each round's results (log and state) in one transaction.

    When the adapter raises part-way (an ``AccessRefusedError``, or a bug), the results it
    yielded before are audited first and the error is raised after.
    """
    pending = list(plan.changes)
    calls_before = getattr(adapter, "calls", 0)
    try:
        for attempt in range(1, rounds + 1):
            by_account = {change.account_id: change for change in pending}
            interrupted: WriteInterrupted | None = None
            calls_then = getattr(adapter, "calls", None)
            try:
                results = adapter.update(pending)
            except WriteInterrupted as stop:
                interrupted, results = stop, stop.results
            # A round that sent nothing (a daily limit met: the adapter fails the rest unsent) is the
            # last: another would not send either, after a pointless backoff.
            last = attempt == rounds or (calls_then is not None and adapter.calls == calls_then)
            retry_next = _audit_round(eng, target, run_id, plan, by_account, results, attempt, last, tally)
            if interrupted is not None:  # raised here, not in the except: no chain to the wrapper
                raise interrupted.__cause__ or interrupted
            missing = set(by_account) - {r.account_id for r in results}
            if missing:  # an adapter that lost a record: never count it as synced
                raise RuntimeError(f"adapter returned no result for {sorted(missing)[:5]}")
            pending = retry_next
            if not pending:
                break
            wait = retry.delay(attempt)
            log.warning(
                "%s records failed transiently; round %s of %s in %.1fs", len(pending), attempt + 1, rounds, wait
            )
            retry.sleep(wait)
    finally:
        tally.calls = getattr(adapter, "calls", 0) - calls_before


def _audit_round(
    eng: sa.Engine,
    target: str,
    run_id: str,
    plan: Plan,
    by_account: dict[str, Change],
    results: list[WriteResult],
    attempt: int,
    last: bool,
    tally: Tally,
) -> list[Change]:
    """Log every result, advance the state of the successes; returns the changes to send again."""
    retry_next: list[Change] = []
    now = datetime.now(UTC).replace(tzinfo=None)
    log_rows, state_rows = [], []
    for result in results:
        change = by_account[result.account_id]
        final = result.status != "failed_transient" or last
        for crm_field in change.fields:
            log_rows.append(_log_row(run_id, target, change, crm_field, plan, result, attempt, now))
            if result.status == "success":
                state_rows.append(
                    {
                        "target": target,
                        "account_id": change.account_id,
                        "crm_field": crm_field,
                        "value": plan.new_values[(change.account_id, crm_field)],
                        "pushed_at": now,
                        "run_id": run_id,
                    }
                )
        if result.status == "success":
            tally.succeeded += len(change.fields)
        elif final:
            tally.failed += len(change.fields)
        else:
            retry_next.append(change)
    if log_rows:
        with eng.begin() as conn:
            _write_round(conn, target, log_rows, state_rows)
    return retry_next


STATE_DELETE_CHUNK = 5_000  # account ids per IN list (PostgreSQL takes at most 65,535 parameters)


def _write_round(conn: sa.Connection, target: str, log_rows: list[dict], state_rows: list[dict]) -> None:
    """One round's log rows and new state, set-based: a bulk insert (COPY on PostgreSQL) and one
    delete per field and chunk of accounts, not a statement per field pushed."""
    import pandas as pd

    if log_rows:
        warehouse.insert_frame(conn, crm_sync_log, pd.DataFrame(log_rows, columns=[c.name for c in crm_sync_log.c]))
    by_field: dict[str, list[str]] = {}
    for row in state_rows:
        by_field.setdefault(row["crm_field"], []).append(row["account_id"])
    for crm_field, account_ids in by_field.items():
        for start in range(0, len(account_ids), STATE_DELETE_CHUNK):
            conn.execute(
                crm_sync_state.delete().where(
                    crm_sync_state.c.target == target,
                    crm_sync_state.c.crm_field == crm_field,
                    crm_sync_state.c.account_id.in_(account_ids[start : start + STATE_DELETE_CHUNK]),
                )
            )
    if state_rows:
        warehouse.insert_frame(
            conn, crm_sync_state, pd.DataFrame(state_rows, columns=[c.name for c in crm_sync_state.c])
        )


def _log_row(
    run_id: str,
    target: str,
    change: Change,
    crm_field: str,
    plan: Plan,
    result: WriteResult,
    attempt: int,
    now: datetime,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "target": target,
        "account_id": change.account_id,
        "crm_id": change.crm_id,
        "crm_field": crm_field,
        "old_value": plan.old_values.get((change.account_id, crm_field)),
        "new_value": plan.new_values.get((change.account_id, crm_field)),
        "status": result.status,
        "error_code": result.error_code,
        "error_message": (result.error_message or "")[:1000] or None,
        "attempt": attempt,
        "logged_at": now,
    }
