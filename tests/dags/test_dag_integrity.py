"""DagBag validity: every DAG imports cleanly, is documented and safe to parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
EXPECTED_DAGS = {
    "crm_extract",
    "usage_extract",
    "account_segmentation",
    "cohort_analysis",
    "model_evaluation",
    "segment_revision",
    "annual_segmentation_review",
}
EXTRACT_DAGS = {"crm_extract", "usage_extract"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_each_dag_file_imports_alone_with_tags_from_the_vocabulary(dag_file):
    """One test per DAG file, so a failure names the file."""
    from airflow.dag_processing.dagbag import DagBag

    from postsales.dag_defaults import COMMON_TAG, TAGS

    bag = DagBag(str(dag_file))
    assert bag.import_errors == {}, bag.import_errors
    assert len(bag.dags) == 1, f"{dag_file.name}: one DAG per file"
    dag = next(iter(bag.dags.values()))
    assert dag.dag_id == dag_file.stem, f"{dag_file.name}: the file is named for its DAG"
    assert set(dag.tags) <= TAGS.keys() and COMMON_TAG in dag.tags, f"{dag_file.name}: tags {dag.tags}"


def test_a_tag_outside_the_vocabulary_fails_naming_it():
    from postsales.dag_defaults import postsales_dag

    with pytest.raises(ValueError, match=r"demo: tags \['segmentaton'\] are not in the vocabulary"):
        postsales_dag("demo", "doc", tags=["segmentaton"])


def test_expected_dags_present(dagbag):
    assert set(dagbag.dag_ids) >= EXPECTED_DAGS


def test_every_dag_is_owned_tagged_documented_and_retried(dagbag):
    from postsales.dag_defaults import OWNER

    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md.strip()) > 80, f"{dag_id}: doc_md missing or too short"
        assert dag.tags and "postsales" in dag.tags and len(dag.tags) >= 2, f"{dag_id}: tags"
        assert not dag.catchup and dag.max_active_runs == 1, f"{dag_id}: catchup / max_active_runs"
        for task in dag.tasks:
            assert task.owner == OWNER, f"{dag_id}.{task.task_id}: owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: retries"
            assert task.retry_exponential_backoff, f"{dag_id}.{task.task_id}: exponential backoff"
            assert task.max_retry_delay is not None, f"{dag_id}.{task.task_id}: max_retry_delay"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id}: execution_timeout"


def not_retryable_errors() -> list[BaseException]:
    """One of each error the project raises that no retry can fix (by construction, not by list:
    a new subclass of NotRetryableError anywhere in the library is covered too)."""
    from postsales.config import ConfigError
    from postsales.errors import DataContractError, PermanentError
    from postsales.history import NoHistoryError

    return [
        ConfigError("include/rules/segmentation.yaml: field 'value_tiers': field required"),
        DataContractError("accounts.csv: missing column 'industry'"),
        NoHistoryError("2001-01-31 is before the first paid contract"),
        PermanentError("INVALID_SESSION_ID", "Session expired or invalid"),
        PermanentError("NO_CRM_URL", "no CRM to sync to"),
    ]


def retryable_errors() -> list[BaseException]:
    """Infrastructure faults: a source or CRM that does not answer, a lost connection, a timeout."""
    import sqlalchemy as sa
    from airflow.sdk.exceptions import AirflowTaskTimeout

    from postsales.errors import SourceUnavailableError, TransientError

    return [
        SourceUnavailableError("cannot reach the sql source at postgresql://u:***@db/crm"),
        TransientError("SERVER_UNAVAILABLE", "try later"),
        sa.exc.OperationalError("select 1", {}, ConnectionRefusedError("connection refused")),
        ConnectionError("reset by peer"),
        AirflowTaskTimeout("execution_timeout"),
    ]


def test_every_task_fails_at_once_on_what_no_retry_can_fix_and_retries_the_rest(dagbag):
    """The project's permanent errors (ConfigError, DataContractError, the CRM's PermanentError:
    all NotRetryableError) fail any task of any DAG on its first try; infrastructure faults keep
    the task's retries. Airflow's worker asks the task's retry policy with the raised exception."""
    from airflow.sdk import RetryAction

    from postsales.errors import NotRetryableError

    permanent, transient = not_retryable_errors(), retryable_errors()
    assert all(isinstance(error, NotRetryableError) for error in permanent)
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            assert task.retry_policy is not None, f"{where}: no retry policy"
            for error in permanent:
                decision = task.retry_policy.evaluate(error, try_number=1, max_tries=task.retries + 1)
                assert decision.action == RetryAction.FAIL, f"{where} retries {type(error).__name__}"
            for error in transient:
                decision = task.retry_policy.evaluate(error, try_number=1, max_tries=task.retries + 1)
                assert decision.action == RetryAction.DEFAULT, f"{where} does not retry {type(error).__name__}"
            assert task.retries >= 1, f"{where}: retries"


def test_every_task_alerts_on_failure(dagbag):
    from postsales.alerts import TASK_FAILED, PostsalesAlertNotifier

    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            notifiers = [c for c in callbacks if isinstance(c, PostsalesAlertNotifier)]
            assert [n.kind for n in notifiers] == [TASK_FAILED], f"{dag_id}.{task.task_id}: failure notifier"


def test_every_dag_has_a_duration_alert_and_a_run_timeout(dagbag):
    from postsales.dag_defaults import RUN_DURATIONS

    assert set(RUN_DURATIONS) == set(dagbag.dag_ids)
    for dag_id, dag in dagbag.dags.items():
        durations = RUN_DURATIONS[dag_id]
        assert durations.alert_after < durations.timeout, dag_id
        assert dag.dagrun_timeout == durations.timeout, dag_id
        [alert] = dag.deadline
        assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline", dag_id
        assert alert.interval == durations.alert_after, dag_id
        assert alert.callback.path == "postsales.alerts.PostsalesAlertNotifier", dag_id
        assert alert.callback.kwargs["kind"] == "run_overdue", dag_id


def test_every_dag_ends_with_the_run_summary(dagbag):
    from airflow.task.trigger_rule import TriggerRule

    for dag_id, dag in dagbag.dags.items():
        summary = dag.get_task("summarize_run")
        assert summary.is_teardown and summary.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS, dag_id
        assert summary.pool == "postsales_warehouse", dag_id
        others = [t for t in dag.tasks if t is not summary]
        assert summary.downstream_list == [], dag_id
        # downstream of every other task (directly of the last ones)
        assert {t.task_id for t in others if not t.downstream_list} == set(), dag_id
        leaves = {t.task_id for t in others if t.downstream_task_ids == {"summarize_run"}}
        assert leaves and leaves <= summary.upstream_task_ids, dag_id
        assert all(summary.task_id in t.get_flat_relative_ids(upstream=False) for t in others), dag_id


def test_the_evaluation_dags_run_the_steps_cli_evaluate_runs(dagbag):
    """model_evaluation and the annual review run postsales.evaluation.STEPS as the tasks of the
    evaluate_models group, each after the steps it reads (the order `cli evaluate` runs them
    in), and their report after all of them."""
    from postsales.evaluation import STEPS

    steps = [step.__name__ for step in STEPS]
    for dag_id, report in (
        ("model_evaluation", "write_evaluation_report"),
        ("annual_segmentation_review", "write_review_report"),
    ):
        dag = dagbag.dags[dag_id]
        assert sorted(dag.task_group_dict["evaluate_models"].children) == sorted(steps), dag_id
        for done, step in enumerate(steps):
            assert dag.get_task(step).upstream_task_ids.isdisjoint(steps[done:]), f"{dag_id}.{step}"
        assert set(steps) <= dag.get_task(report).get_flat_relative_ids(upstream=True), dag_id


# Tasks that never open the warehouse (they read YAML or params only). Every other task opens
# it and must hold a slot of the pool: DuckDB lets one process open its file at a time.
# (postsales.warehouse.check_warehouse_pool fails a task that opens DuckDB outside the pool.)
WAREHOUSE_FREE_TASKS = {
    ("segment_revision", "revision_due"),
    ("annual_segmentation_review", "review_due"),
    ("annual_segmentation_review", "approval_gate"),
}


def test_every_task_that_opens_the_warehouse_uses_the_pool(dagbag):
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            if (dag_id, task.task_id) not in WAREHOUSE_FREE_TASKS:
                assert task.pool == "postsales_warehouse", f"{dag_id}.{task.task_id}: pool {task.pool}"
    tasks = {(dag_id, task.task_id) for dag_id, dag in dagbag.dags.items() for task in dag.tasks}
    assert tasks >= WAREHOUSE_FREE_TASKS, "a warehouse-free task was renamed: update the list"


def test_monthly_dags_take_a_month_and_start_with_history(dagbag):
    from postsales.dag_defaults import START_DATE

    for dag_id in ("cohort_analysis", "model_evaluation", "segment_revision", "annual_segmentation_review"):
        dag = dagbag.dags[dag_id]
        assert "month" in dag.params, dag_id
        assert dag.start_date == START_DATE, dag_id
    assert START_DATE.year <= 2000  # a company with contracts since 2017 can backfill them


def test_extract_dags_have_real_daily_intervals(dagbag):
    from datetime import UTC, datetime

    for dag_id in EXTRACT_DAGS:
        timetable = dagbag.dags[dag_id].timetable
        interval = timetable.infer_manual_data_interval(run_after=datetime(2024, 3, 2, 5, tzinfo=UTC))
        assert (interval.start.isoformat(), interval.end.isoformat()) == (
            "2024-03-01T00:00:00+00:00",
            "2024-03-02T00:00:00+00:00",
        )


# Run in a fresh interpreter: it must start with nothing heavy imported.
PARSE_PROBE = r"""
import builtins, importlib.util, json, sys
import sqlalchemy, sqlalchemy.engine

touched = []
def forbidden(what):
    def fail(*args, **kwargs):
        touched.append(what)
        raise RuntimeError(what + " at DAG parse time")
    return fail

# Airflow sets up its own metadata engine on import; only what the DAG files do counts.
import airflow.settings
from airflow.sdk import BaseHook, Variable
sqlalchemy.create_engine = sqlalchemy.engine.create_engine = forbidden("database engine")
Variable.get = forbidden("Variable.get")
BaseHook.get_connection = forbidden("connection lookup")
real_open = builtins.open
builtins.open = forbidden("file I/O")
heavy = ("pandas", "great_expectations", "duckdb", "psycopg", "pyarrow", "yaml")
before = {m for m in heavy if m in sys.modules}
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("dag_" + path.rsplit("/", 1)[-1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
builtins.open = real_open
print(json.dumps({"touched": touched, "heavy": sorted({m for m in heavy if m in sys.modules} - before)}))
"""


@pytest.mark.parametrize(
    "dag_id", ["cohort_analysis", "model_evaluation", "segment_revision", "annual_segmentation_review"]
)
def test_monthly_dags_have_real_month_intervals(dagbag, dag_id):
    from datetime import UTC, datetime

    timetable = dagbag.dags[dag_id].timetable
    interval = timetable.infer_manual_data_interval(run_after=datetime(2024, 3, 2, tzinfo=UTC))
    assert (interval.start.isoformat(), interval.end.isoformat()) == (
        "2024-02-01T00:00:00+00:00",
        "2024-03-01T00:00:00+00:00",
    )


def test_segmentation_runs_on_all_four_staging_assets(dagbag):
    from postsales.assets import STAGING

    dag = dagbag.dags["account_segmentation"]
    condition = dag.timetable.asset_condition
    assert condition.agg_func is all  # every staging table, not any
    assert {asset.uri for asset in condition.objects} == {asset.uri for asset in STAGING.values()}
    producers = {task.task_id: task.outlets for task in dagbag.dags["crm_extract"].tasks}
    # extract_accounts publishes the staging Asset (with the interval in its event), beside the
    # Assets of the other tables it writes.
    assert producers["extract_accounts"][0].uri == STAGING["accounts"].uri
    assert [task for task, outlets in producers.items() if STAGING["accounts"] in outlets] == ["extract_accounts"]


def test_parsing_touches_no_database_variable_connection_or_file():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    result = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, *map(str, DAG_FILES)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"touched": [], "heavy": []}


def test_every_table_is_an_outlet_of_exactly_the_dags_its_home_names(dagbag):
    """The asset graph matches the table homes: a table's Asset is an outlet of a task in every DAG
    its home's ``filled_by.dags`` names, and of no task in any other DAG. (That a task declares
    every table it really writes is checked by every dag.test() in the suite: tests/conftest.py.)"""
    from postsales.assets import asset_table
    from postsales.tables import homes

    published: dict[str, set[str]] = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            for asset in task.outlets:
                table = asset_table(asset)
                assert table is not None, f"{dag.dag_id}.{task.task_id}: outlet {asset} is not a warehouse table"
                published.setdefault(table, set()).add(dag.dag_id)
    declared = {name: set(home.filled_by.dags) for name, home in homes().items()}
    assert published.keys() <= declared.keys(), f"outlets without a table home: {published.keys() - declared.keys()}"
    assert published == declared


def test_every_inlet_is_a_warehouse_table_some_dag_writes(dagbag):
    """A task's inlets name warehouse tables with a home that a task of the pipeline writes (that a
    task declares every table it reads is checked by every dag.test(): tests/conftest.py)."""
    from postsales.assets import asset_table

    written = {asset_table(asset) for dag in dagbag.dags.values() for task in dag.tasks for asset in task.outlets}
    read = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            for asset in task.inlets:
                table = asset_table(asset)
                assert table is not None, f"{dag.dag_id}.{task.task_id}: inlet {asset} is not a warehouse table"
                read.setdefault(table, set()).add(f"{dag.dag_id}.{task.task_id}")
    assert read.keys() <= written
    # Every stage reads staging; the report and sync steps read what the others wrote.
    assert {"staging.accounts", "mart.account_segments", "ops.crm_sync_state"} <= read.keys()


def test_extract_inlets_are_the_tables_its_references_read():
    """An entity whose rows reference another's keys (``references`` in expectations.yaml) reads that
    entity's raw and staging tables; postsales.assets.REFERENCES must say the same."""
    from postsales.assets import REFERENCES, asset_table, extract_reads
    from postsales.config import load_expectations

    referenced = {
        entity: rule.references.partition(".")[0]
        for entity, rules in load_expectations().entities.items()
        for rule in rules.columns.values()
        if rule.references
    }
    assert referenced == REFERENCES
    assert {asset_table(a) for a in extract_reads("usage_daily")} == {"raw.accounts", "staging.accounts"}
    assert extract_reads("accounts") == ()
