"""The alert notifier at the HTTP level, against a local Slack-compatible webhook."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

import webhook
from postsales import alerts
from postsales.alerts import PostsalesAlertNotifier


@pytest.fixture
def fake_webhook(monkeypatch):
    hook = webhook.start()
    monkeypatch.setenv("AIRFLOW_CONN_POSTSALES_ALERTS", hook.connection_json())
    monkeypatch.delenv(alerts.ALERT_CONN_ID_ENV, raising=False)
    yield hook
    hook.server.shutdown()


@pytest.fixture
def all_logs(caplog):
    """Every record of every logger, DEBUG and up (slack_sdk's own included)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def failure_context(exception=None, try_number=2):
    task = SimpleNamespace(retries=2)
    ti = SimpleNamespace(
        dag_id="crm_extract",
        task_id="extract_accounts",
        run_id="scheduled__2026-03-01T00:00:00+00:00",
        try_number=try_number,
        task=task,
        log_url="http://airflow.example/dags/crm_extract/runs/scheduled__2026-03-01/tasks/extract_accounts?try_number=2",
    )
    return {
        "task_instance": ti,
        "ti": ti,
        "run_id": ti.run_id,
        "exception": exception if exception is not None else ValueError("accounts.csv: column industry missing\nmore"),
    }


EXPECTED_FAILURE_TEXT = "\n".join(
    [
        ":red_circle: postsales task failed: crm_extract.extract_accounts",
        "run: scheduled__2026-03-01T00:00:00+00:00",
        "try: 2 of 3",
        "error: ValueError: accounts.csv: column industry missing",
        "log: http://airflow.example/dags/crm_extract/runs/scheduled__2026-03-01/tasks/extract_accounts?try_number=2",
    ]
)


def assert_no_secret(hook, caplog):
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert webhook.SECRET_PATH not in text
    assert "xoxsecrettoken" not in text
    assert hook.url not in text


def test_failure_posts_one_json_text_message(fake_webhook, all_logs):
    PostsalesAlertNotifier()(failure_context())
    assert len(fake_webhook.requests) == 1
    request = fake_webhook.requests[0]
    assert request["path"] == webhook.SECRET_PATH
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert request["body"] == {"text": EXPECTED_FAILURE_TEXT}
    assert "alert delivered to connection 'postsales_alerts'" in all_logs.text
    assert_no_secret(fake_webhook, all_logs)


def test_without_the_connection_the_alert_is_logged_only(fake_webhook, monkeypatch, all_logs):
    monkeypatch.delenv("AIRFLOW_CONN_POSTSALES_ALERTS")
    PostsalesAlertNotifier()(failure_context())
    assert fake_webhook.requests == []
    assert "no alert connection 'postsales_alerts': alert logged only" in all_logs.text
    # the message itself is still in the log, on one line
    assert "postsales alert: :red_circle: postsales task failed: crm_extract.extract_accounts | run: " in all_logs.text


def test_connection_id_comes_from_the_environment(fake_webhook, monkeypatch):
    monkeypatch.setenv(alerts.ALERT_CONN_ID_ENV, "team_alerts")
    PostsalesAlertNotifier()(failure_context())
    assert fake_webhook.requests == []  # postsales_alerts exists but is not the configured one
    monkeypatch.setenv("AIRFLOW_CONN_TEAM_ALERTS", fake_webhook.connection_json())
    PostsalesAlertNotifier()(failure_context())
    assert len(fake_webhook.requests) == 1


def test_token_and_host_form_of_the_connection(fake_webhook, monkeypatch, all_logs):
    host, port = fake_webhook.server.server_address[:2]
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTSALES_ALERTS",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "schema": "http",
                "host": f"{host}:{port}/services",
                "password": "T0SECRET/B0SECRET/xoxsecrettoken",
            }
        ),
    )
    PostsalesAlertNotifier()(failure_context())
    assert [r["path"] for r in fake_webhook.requests] == [webhook.SECRET_PATH]
    assert_no_secret(fake_webhook, all_logs)


@pytest.mark.parametrize("status", [500, 404, 429])
def test_webhook_error_is_a_warning_not_an_exception(fake_webhook, all_logs, status):
    fake_webhook.status = status
    PostsalesAlertNotifier()(failure_context())  # must not raise
    assert len(fake_webhook.requests) >= 1
    warnings = [
        r.getMessage() for r in all_logs.records if r.levelno == logging.WARNING and r.name == "postsales.alerts"
    ]
    assert len(warnings) == 1
    assert warnings[0].startswith("alert not delivered to connection 'postsales_alerts': AirflowException: ")
    assert f"Status Code: {status}" in warnings[0]
    assert_no_secret(fake_webhook, all_logs)


def test_webhook_timeout_is_a_warning(fake_webhook, all_logs):
    fake_webhook.delay_seconds = 2.5
    PostsalesAlertNotifier(timeout_seconds=1)(failure_context())
    warnings = [
        r.getMessage() for r in all_logs.records if r.levelno == logging.WARNING and r.name == "postsales.alerts"
    ]
    assert len(warnings) == 1 and "timed out" in warnings[0]
    assert_no_secret(fake_webhook, all_logs)


def test_unreachable_webhook_is_a_warning(monkeypatch, all_logs):
    # Port 9 (discard) is closed on the test machine: connection refused, retried once by slack_sdk.
    url = "http://127.0.0.1:9/services/T0SECRET/B0SECRET/xoxsecrettoken"
    monkeypatch.setenv("AIRFLOW_CONN_POSTSALES_ALERTS", json.dumps({"conn_type": "slackwebhook", "password": url}))
    PostsalesAlertNotifier()(failure_context())
    assert "alert not delivered to connection 'postsales_alerts': URLError: " in all_logs.text
    assert "xoxsecrettoken" not in all_logs.text


def test_a_url_in_the_exception_is_not_posted_or_logged(fake_webhook, all_logs):
    error = RuntimeError(f"POST {fake_webhook.url} failed")
    PostsalesAlertNotifier()(failure_context(exception=error))
    assert fake_webhook.texts[0].splitlines()[3] == "error: RuntimeError: POST &lt;url&gt; failed"  # Slack shows <url>
    assert_no_secret(fake_webhook, all_logs)


def test_source_text_in_the_error_cannot_mention_link_or_format_in_slack(fake_webhook, tiny_source, duckdb_url):
    """A CSV header `<!channel> <@U024BE7LH>` reached the alert as is: Slack pinged the channel.

    Slack reads `<…>` as a mention or a link and `&…;` as an entity; escaped, they are shown as typed.
    """
    import tiny
    from postsales.extract import extract_entity
    from postsales.sources import Interval

    header, rows = (tiny_source / "accounts.csv").read_text().split("\n", 1)
    hostile = "<!channel> <@U024BE7LH> &amp; <https://evil.example|click>"
    (tiny_source / "accounts.csv").write_text(header.replace("account_id", hostile, 1) + "\n" + rows)
    with pytest.raises(Exception) as info:
        extract_entity("accounts", interval=Interval(tiny.DAY1, tiny.DAY2), run_id="r", build_data_docs=False)
    assert hostile in str(info.value)
    PostsalesAlertNotifier()(failure_context(exception=info.value))
    posted = fake_webhook.requests[0]["body"]["text"]
    assert "&lt;!channel&gt; &lt;@U024BE7LH&gt; &amp;amp; &lt;&lt;url&gt;" in posted
    assert "<" not in posted and ">" not in posted
    assert posted.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == alerts.task_failure_text(
        failure_context(exception=info.value)
    )


def test_long_error_is_cut_to_one_short_line():
    text = alerts.task_failure_text(failure_context(exception=ValueError("x" * 1000)))
    error_line = text.splitlines()[3]
    assert len(error_line) == len("error: ") + 300 and error_line.endswith("…")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="alert kind must be"):
        PostsalesAlertNotifier(kind="sla")


# --- duration (deadline) alerts ---------------------------------------------------------------

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def deadline_context(**dag_run):
    run = {
        "dag_id": "crm_extract",
        "dag_run_id": "scheduled__2026-03-01T00:00:00+00:00",
        "run_type": "scheduled",
        "state": "running",
        "queued_at": (NOW - timedelta(minutes=45)).isoformat(),
        "start_date": (NOW - timedelta(minutes=40)).isoformat(),
        "end_date": None,
    } | dag_run
    return {"dag_run": run, "deadline": {"id": "0190", "deadline_time": (NOW - timedelta(minutes=15)).isoformat()}}


def test_overdue_run_message():
    text = alerts.run_overdue_text(deadline_context(), 30.0, now=NOW)
    assert text.splitlines() == [
        ":hourglass: postsales run overdue: crm_extract",
        "run: scheduled__2026-03-01T00:00:00+00:00 (running)",
        "expected within: 30 min of being queued (deadline 2026-03-02T00:45:00+00:00)",
        "queued 45 min ago, running 40 min",
        "run: http://localhost:8080/dags/crm_extract/runs/scheduled__2026-03-01T00%3A00%3A00%2B00%3A00",
    ]


def test_short_durations_are_in_seconds():
    context = deadline_context(queued_at=(NOW - timedelta(seconds=20)).isoformat(), start_date=NOW.isoformat())
    lines = alerts.run_overdue_text(context, 0.25, now=NOW).splitlines()
    assert lines[2].startswith("expected within: 15 s of being queued") and lines[3] == "queued 20 s ago, running 0 s"


def test_overdue_run_still_queued():
    text = alerts.run_overdue_text(deadline_context(start_date=None, state="queued"), 30.0, now=NOW)
    assert "queued 45 min ago, running not started" in text


def test_finished_run_is_not_reported_again(caplog):
    caplog.set_level(logging.INFO)
    context = deadline_context(state="failed", end_date=(NOW - timedelta(minutes=20)).isoformat())
    assert alerts.run_overdue_text(context, 30.0, now=NOW) is None
    assert "ended (failed) before its duration alert: not posted" in caplog.text


def test_backfill_run_that_waited_in_the_queue_is_not_overdue():
    waited = deadline_context(run_type="backfill", start_date=(NOW - timedelta(minutes=10)).isoformat())
    assert alerts.run_overdue_text(waited, 30.0, now=NOW) is None
    long_running = deadline_context(run_type="backfill", start_date=(NOW - timedelta(minutes=31)).isoformat())
    assert "running 31 min" in alerts.run_overdue_text(long_running, 30.0, now=NOW)


def test_overdue_alert_is_posted(fake_webhook):
    PostsalesAlertNotifier(kind=alerts.RUN_OVERDUE, expected_minutes=30.0)(deadline_context())
    assert len(fake_webhook.texts) == 1
    assert fake_webhook.texts[0].startswith(":hourglass: postsales run overdue: crm_extract\n")
