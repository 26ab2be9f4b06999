"""Alerts: a failed task or an overdue run posts one message to a Slack-compatible webhook.

The webhook comes from an Airflow connection (id ``postsales_alerts``, or the value of
``POSTSALES_ALERT_CONN_ID``), read when an alert is sent, never at DAG parse time. Without
that connection the alert is logged only. Delivery uses the Slack provider's
``SlackWebhookHook`` (slack_sdk): the connection's password holds the full webhook URL (any
Slack-compatible endpoint) or a Slack token path with the host ``hooks.slack.com/services``.

``PostsalesAlertNotifier`` is an Airflow notifier: an instance is every task's
``on_failure_callback`` and the class is the ``SyncCallback`` of each DAG's duration
deadline (see ``dag_defaults``). Sending never raises: a webhook that fails or times out is
logged as a warning, so an alert cannot fail or hide the task it reports. The webhook URL
is a secret: it is registered with Airflow's secrets masker and stripped from every line
this module logs.

This module is imported at DAG parse time: it imports only Airflow's notifier base class.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

DEFAULT_ALERT_CONN_ID = "postsales_alerts"
ALERT_CONN_ID_ENV = "POSTSALES_ALERT_CONN_ID"
DEFAULT_TIMEOUT_SECONDS = 10

TASK_FAILED = "task_failed"
RUN_OVERDUE = "run_overdue"

# slack_sdk logs the request URL at DEBUG and on retries at INFO: its logger only passes
# warnings and errors, with any URL replaced.
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_ERROR_TEXT_LIMIT = 300


class _StripUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = strip_urls(record.getMessage())
        record.args = None
        return True


_client_log = logging.getLogger("postsales.alerts.webhook_client")
_client_log.setLevel(logging.WARNING)
_client_log.addFilter(_StripUrls())


def strip_urls(text: str) -> str:
    return _URL.sub("<url>", text)


def slack_escape(text: str) -> str:
    """Plain text for Slack: ``&``, ``<`` and ``>`` escaped (Slack's message formatting rules).

    Alerts carry text from the data (a CSV header in an error message): unescaped,
    ``<!channel>`` pings a channel, ``<@U…>`` mentions someone and ``<https://…|…>`` is a link.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_conn_id() -> str:
    return os.environ.get(ALERT_CONN_ID_ENV) or DEFAULT_ALERT_CONN_ID


class PostsalesAlertNotifier(BaseNotifier):
    """Post a task failure or an overdue run to the alert webhook (log only without one).

    :param kind: ``task_failed`` (an ``on_failure_callback``) or ``run_overdue`` (a
        deadline callback, whose context holds the DAG run and the deadline).
    :param expected_minutes: the run's expected duration, quoted in overdue alerts.
    :param conn_id: the alert connection; default ``POSTSALES_ALERT_CONN_ID`` or ``postsales_alerts``.
    :param timeout_seconds: how long to wait for the webhook.
    """

    def __init__(
        self,
        *,
        kind: str = TASK_FAILED,
        expected_minutes: float | None = None,
        conn_id: str | None = None,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        context: dict | None = None,
    ):
        super().__init__(context=context)
        if kind not in (TASK_FAILED, RUN_OVERDUE):
            raise ValueError(f"alert kind must be {TASK_FAILED!r} or {RUN_OVERDUE!r}, got {kind!r}")
        self.kind = kind
        self.expected_minutes = expected_minutes
        self.conn_id = conn_id
        self.timeout_seconds = timeout_seconds

    def notify(self, context) -> None:
        try:
            text = task_failure_text(context) if self.kind == TASK_FAILED else self._overdue_text(context)
            if text is None:
                return
            # The text holds no secret: the error line is stripped of URLs, the links are built here.
            log.error("postsales alert: %s", text.replace("\n", " | "))
            post_alert(text, conn_id=self.conn_id or alert_conn_id(), timeout_seconds=self.timeout_seconds)
        except Exception as exc:  # an alert must never fail the task or callback it reports
            log.warning("postsales alert not sent: %s", _error_line(exc))

    def _overdue_text(self, context) -> str | None:
        return run_overdue_text(context, self.expected_minutes, now=datetime.now(UTC))


# --- messages ---------------------------------------------------------------------------


def task_failure_text(context) -> str:
    """DAG, task, run, try number, log URL and the exception's first line."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    exception = context.get("exception")
    lines = [
        f":red_circle: postsales task failed: {dag_id}.{getattr(ti, 'task_id', None)}",
        f"run: {run_id}",
        f"try: {getattr(ti, 'try_number', None)} of {_max_tries(ti)}",
        f"error: {_error_line(exception) if exception is not None else 'unknown'}",
        f"log: {getattr(ti, 'log_url', None) or 'n/a'}",
    ]
    return "\n".join(lines)


def run_overdue_text(context, expected_minutes: float | None, *, now: datetime) -> str | None:
    """The overdue-run message from a deadline callback's context, or None when there is no alert.

    The deadline counts from when the run was queued. A finished run (it failed: successful
    runs have their deadline removed) was already reported by its failed task, and a
    backfill run that waited behind earlier backfill runs is not overdue until it has been
    *running* for the expected duration: both are logged, not posted.
    """
    dag_run = dict(context.get("dag_run") or {})
    deadline = dict(context.get("deadline") or {})
    dag_id, run_id = dag_run.get("dag_id"), dag_run.get("dag_run_id") or dag_run.get("run_id")
    started, ended = _when(dag_run.get("start_date")), _when(dag_run.get("end_date"))
    queued = _when(dag_run.get("queued_at"))
    if ended is not None:
        log.info("run %s of %s ended (%s) before its duration alert: not posted", run_id, dag_id, dag_run.get("state"))
        return None
    running_minutes = (now - started).total_seconds() / 60 if started else 0.0
    if (
        str(dag_run.get("run_type", "")).lower() == "backfill"
        and expected_minutes is not None
        and running_minutes < expected_minutes
    ):
        log.info(
            "backfill run %s of %s waited in the queue; running %.0f of the expected %s minutes: not posted",
            run_id, dag_id, running_minutes, expected_minutes,
        )  # fmt: skip
        return None
    queued_minutes = (now - queued).total_seconds() / 60 if queued else None
    lines = [
        f":hourglass: postsales run overdue: {dag_id}",
        f"run: {run_id} ({dag_run.get('state')})",
        f"expected within: {_minutes(expected_minutes)} of being queued (deadline {deadline.get('deadline_time')})",
        f"queued {_minutes(queued_minutes)} ago, running {_minutes(running_minutes) if started else 'not started'}",
        f"run: {_run_url(dag_id, run_id)}",
    ]
    return "\n".join(lines)


def _minutes(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 60:.0f} s" if value < 1 else f"{value:.0f} min"


def _max_tries(ti) -> Any:
    retries = getattr(getattr(ti, "task", None), "retries", None)
    return retries + 1 if isinstance(retries, int) else "?"


def _error_line(exception: BaseException | str) -> str:
    text = str(exception).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exception, BaseException):
        first = f"{type(exception).__name__}: {first}" if first else type(exception).__name__
    first = strip_urls(first)
    return first if len(first) <= _ERROR_TEXT_LIMIT else first[: _ERROR_TEXT_LIMIT - 1] + "…"


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _run_url(dag_id: str | None, run_id: str | None) -> str:
    from urllib.parse import quote

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/")
    return f"{base.rstrip('/')}/dags/{dag_id}/runs/{quote(str(run_id))}"


# --- delivery ---------------------------------------------------------------------------


def post_alert(text: str, *, conn_id: str, timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> bool:
    """POST ``{"text": text}`` to the connection's webhook; True when delivered.

    ``text`` is plain text, escaped here (:func:`slack_escape`): Slack shows it as written.
    No connection: log only. Any delivery error (HTTP status, timeout, bad connection): a
    warning without the URL, and False.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.info("no alert connection %r: alert logged only", conn_id)
        return False
    _mask(connection)
    try:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        hook = SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=timeout_seconds, logger=_client_log)
        hook.send_text(slack_escape(text))
    except Exception as exc:
        log.warning("alert not delivered to connection %r: %s", conn_id, _error_line(exc))
        return False
    log.info("alert delivered to connection %r", conn_id)
    return True


def _mask(connection) -> None:
    """Register the webhook URL or token with Airflow's secrets masker (task and callback logs)."""
    from airflow.sdk.log import mask_secret

    if connection.password and connection.password.strip():
        mask_secret(connection.password.strip())
