"""segment_revision and annual_segmentation_review through dag.test(): the month check, the push
to a real (SQLite) CRM, the safety valve and the approval gate."""

from __future__ import annotations

import pendulum
import pytest
import responses
import sqlalchemy as sa

from crm_fixtures import crm_rows, tiny_warehouse_and_crm
from postsales import warehouse
from postsales.crm.sync import crm_sync_state
from postsales.segment.rules import load_rules
from project_home import project_with_rules
from salesforce_fakes import (
    PASSWORD,
    SECURITY_TOKEN,
    SOAP_LOGIN,
    password_connection,
    soap_login_fault,
    use_connection,
)

APRIL_RUN = pendulum.datetime(2024, 4, 1, tz="UTC")  # covers March 2024: as of 2024-03-31
MAY_RUN = pendulum.datetime(2024, 5, 1, tz="UTC")
# dag.test() keeps the params of earlier runs on the DAG object: every conf names every flag.
FLAGS = {"force": False, "dry_run": False, "approve_first_push": False, "approve_large_change": False,
         "push_backfill": False, "month": None}  # fmt: skip
APPROVED = FLAGS | {"force": True, "approve_first_push": True, "approve_large_change": True}


@pytest.fixture
def crm(tmp_path, monkeypatch, duckdb_url, tiny_source):
    url = tiny_warehouse_and_crm(tmp_path)
    monkeypatch.setenv("POSTSALES_CRM_SYNC_URL", url)
    return url


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def customers_on(url: str, day: str) -> set[str]:
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(sa.text("select account_id from mart.account_segments where as_of_date = :d"), {"d": day})
        return {r[0] for r in rows}


def logged_command(text: str, dag_id: str) -> dict:
    """The conf of the `airflow dags trigger <dag_id> --conf '…'` command a task logged."""
    import json
    import re

    found = re.findall(rf"airflow dags trigger {dag_id} --conf '(\{{[^']*\}})'", text)
    assert found, f"no trigger command for {dag_id} in the log"
    return json.loads(found[-1])


def test_revision_skips_other_months_then_pushes_and_the_valve_holds(dags, duckdb_url, crm, capsys, caplog):
    dag = dags.get_dag("segment_revision")
    before = crm_rows(crm)
    # April 2024 is not a revision month (every 6 months from 2026-01): nothing runs.
    quiet = dag.test(logical_date=APRIL_RUN, run_conf=FLAGS)
    assert quiet.state == "success"
    states = task_states(quiet)
    assert states["revision_due"] == "success" and states["push_tags_to_crm"] == "skipped"
    assert crm_rows(crm) == before

    run = dag.test(logical_date=APRIL_RUN, run_conf=APPROVED)
    assert run.state == "success", task_states(run)
    customers = customers_on(duckdb_url, "2024-03-31")
    after = crm_rows(crm)
    assert customers and all(after[a]["Value_Tier__c"] == "SMB" for a in customers - {"F001"})
    assert after["F001"] == before["F001"]  # locked in the CRM
    with warehouse.engine(duckdb_url).connect() as conn:
        matrix = conn.execute(
            sa.text(
                "select from_label, sum(accounts) from mart.segment_migration_matrix where dimension = 'quadrant' "
                "and as_of_date = '2024-03-31' group by from_label"
            )
        ).all()
    assert dict(matrix) == {"(new)": len(customers)}  # no customers six months before

    # The CRM now disagrees with what we pushed for every account: the valve stops the push.
    with warehouse.engine(duckdb_url).begin() as conn:
        conn.execute(crm_sync_state.update().values(value="stale"))
    engine = sa.create_engine(crm)
    with engine.begin() as conn:
        conn.execute(sa.text("""update crm_account set "Quadrant__c" = 'stale' where "Manual_Segment_Lock__c" = 0"""))
    engine.dispose()
    stale = crm_rows(crm)
    blocked = dag.test(logical_date=MAY_RUN, run_conf=FLAGS | {"force": True})
    assert blocked.state == "failed" and task_states(blocked)["push_tags_to_crm"] == "failed"
    assert crm_rows(crm) == stale
    # The failure names the run that approves it: the same month (April), forced as this one was.
    logged = capsys.readouterr().out + capsys.readouterr().err + caplog.text
    assert "CRM push stopped before any write" in logged
    approve = logged_command(logged, "segment_revision")
    assert approve == {"month": "2024-04", "force": True, "approve_large_change": True}
    approved = dag.test(run_conf=FLAGS | approve)
    assert approved.state == "success" and task_states(approved)["push_tags_to_crm"] == "success"
    assert crm_rows(crm) != stale


def test_annual_review_waits_for_approval_of_the_rules_version(dags, duckdb_url, crm, capsys, caplog):
    dag = dags.get_dag("annual_segmentation_review")
    before = crm_rows(crm)
    review = FLAGS | {"force": True, "approve_first_push": True, "approve_rules_version": None}
    waiting = dag.test(logical_date=APRIL_RUN, run_conf=review)
    states = task_states(waiting)
    assert states["write_review_report"] == "success" and states["crm_diff_dry_run"] == "success"
    assert states["approval_gate"] == "success" and states["push_tags_to_crm"] == "skipped"
    assert crm_rows(crm) == before

    wrong = dag.test(logical_date=MAY_RUN, run_conf=review | {"approve_rules_version": "not-the-file's"})
    assert task_states(wrong)["push_tags_to_crm"] == "skipped" and crm_rows(crm) == before

    # The gate's log names the run that approves: the reviewed month and the rules version.
    approve = logged_command(capsys.readouterr().out + capsys.readouterr().err + caplog.text,
                             "annual_segmentation_review")  # fmt: skip
    assert approve == {"month": "2024-04", "force": True, "approve_rules_version": load_rules().version}
    approved = dag.test(run_conf=review | approve)
    assert task_states(approved)["push_tags_to_crm"] == "success"
    pushed = crm_rows(crm)
    customers = customers_on(duckdb_url, "2024-04-30")
    assert customers and all(pushed[a]["Quadrant__c"] is not None for a in customers - {"F001"})
    assert pushed["F001"] == before["F001"]


def test_a_backfilled_revision_pushes_only_when_asked(duckdb_url, crm, monkeypatch):
    """The push task of a backfill run: computed, not pushed, unless push_backfill."""
    from types import SimpleNamespace

    import airflow.sdk
    from airflow.utils.types import DagRunType

    from postsales.segment.engine import compute_segments
    from postsales.tasks.crm import push_tags_to_crm

    compute_segments(pendulum.date(2024, 3, 31))
    before = crm_rows(crm)

    def context(**params):
        run = SimpleNamespace(run_type=DagRunType.BACKFILL_JOB)
        ti = SimpleNamespace(try_number=1)
        return lambda: {"params": FLAGS | params, "dag_run": run, "run_id": "backfill__2024-04-01", "ti": ti}

    monkeypatch.setattr(airflow.sdk, "get_current_context", context(approve_first_push=True))
    segments = {"as_of_date": "2024-03-31"}
    assert push_tags_to_crm.function(segments) == {"mode": "not_pushed", "reason": "backfill"}
    assert crm_rows(crm) == before
    monkeypatch.setattr(airflow.sdk, "get_current_context", context(approve_first_push=True, push_backfill=True))
    assert push_tags_to_crm.function(segments)["fields_succeeded"] > 0
    assert crm_rows(crm) != before


@pytest.mark.parametrize("target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_crm_target_without_its_table_fails_at_once_and_says_which(
    target, duckdb_url, tmp_path, monkeypatch, request
):
    """Not a retry's worth: a NotRetryableError (the DAGs' retry policy fails the task at once on
    it), naming the file, the field, the database (password masked) and the fix."""
    from types import SimpleNamespace

    import airflow.sdk

    from postsales.errors import NotRetryableError
    from postsales.tasks.crm import crm_diff_dry_run

    if target == "sqlite":
        url = shown = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    else:
        database = request.getfixturevalue("pg_database")  # trust authentication: any password connects
        url, shown = database.replace("postgres@", "postgres:s3cret@"), database.replace("postgres@", "postgres:***@")
        import sqlalchemy as sa

        with sa.create_engine(database).begin() as conn:  # the session's database: another test's CRM may be there
            conn.execute(sa.text("drop table if exists crm_account"))
    monkeypatch.setenv("POSTSALES_CRM_SYNC_URL", url)
    context = {"params": FLAGS, "run_id": "manual__2024-04-01", "ti": SimpleNamespace(try_number=1)}
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: context)
    with pytest.raises(NotRetryableError) as info:
        crm_diff_dry_run.function({"as_of_date": "2024-03-31"})
    assert str(info.value) == (
        f"include/rules/crm_sync.yaml: field 'sql.table': the CRM database {shown} has no table 'crm_account'. "
        "Fix: set sql.table to the CRM's account table, or point $POSTSALES_CRM_SYNC_URL at the CRM database "
        "that holds it."
    )
    assert "s3cret" not in str(info.value)


def crm_sync_to_salesforce(home, monkeypatch) -> None:
    """crm_sync.yaml with the salesforce adapter (our account id in External_Id__c), and the provider's
    connection (username, password and security token)."""
    from postsales import paths

    shipped = (paths.rules_dir() / "crm_sync.yaml").read_text()
    assert "adapter: sql\n" in shipped and "crm_key_field: Id\n" in shipped
    salesforce = shipped.replace("adapter: sql\n", "adapter: salesforce\n").replace(
        "crm_key_field: Id\n", "crm_key_field: External_Id__c\n"
    )
    project_with_rules(home, monkeypatch, **{"crm_sync.yaml": salesforce})
    use_connection(monkeypatch, password_connection())


@responses.activate
def test_a_crm_refusing_the_credentials_fails_at_once(dags, duckdb_url, crm, tmp_path, monkeypatch, caplog):
    """A refused login is not a retry's worth: the dry run fails on its first try (one login sent to
    Salesforce), nothing is pushed, and the alert says what to fix."""
    crm_sync_to_salesforce(tmp_path / "project", monkeypatch)
    responses.post(
        SOAP_LOGIN,
        status=500,
        body=soap_login_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out."),
        content_type="text/xml",
    )
    run = dags.get_dag("segment_revision").test(logical_date=APRIL_RUN, run_conf=APPROVED)
    assert run.state == "failed"
    tries = {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    assert tries["segment_for_revision"] == ("success", 1)
    assert tries["crm_diff_dry_run"] == ("failed", 1)  # no retry
    assert tries["push_tags_to_crm"][0] == "upstream_failed"
    assert [(call.request.method, call.request.url) for call in responses.calls] == [("POST", SOAP_LOGIN)]
    [alert] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("postsales alert:")]
    assert "segment_revision.crm_diff_dry_run" in alert and "try: 1 of 3" in alert
    assert (
        "error: AccessRefusedError: INVALID_LOGIN: Invalid username, password, security token; or user locked out. "
        "(Salesforce refused the login of the Airflow connection 'salesforce_default': fix its credentials, "
        "docs/crm-sync.md#the-salesforce-connection)"
    ) in alert
    assert PASSWORD not in caplog.text and SECURITY_TOKEN not in caplog.text
