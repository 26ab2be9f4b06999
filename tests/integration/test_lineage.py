"""OpenLineage events of real DAG runs: dag.test() with the provider's file transport, on DuckDB and
PostgreSQL, and `make run`'s command on the demo.

The DAGs run in a fresh process with OpenLineage on (tests/lineage_runner.py: the provider reads its
configuration once per process, and this session runs with it off), under the write trace
(tests/write_trace.py), which reads the SQL each task sent. For every task that ran, its COMPLETE
event must name exactly the tables the trace saw it write (and the CRM object when the CRM's rows
changed), its inputs must be the tables it declares reading (a superset of those the trace saw it
read) plus the source or CRM the run read, all named as the OpenLineage naming spec names them in
the warehouse actually used (computed here, not with postsales.lineage), and no credential may
appear anywhere in any event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

import tiny
from crm_fixtures import crm_table, seed_crm
from postsales import warehouse
from postsales.assets import asset_table
from postsales.config import load_sources
from postsales.segment.rules import load_rules
from project_home import project_with_rules

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECRET = f"s3cr3t-{uuid.uuid4().hex[:8]}"
FLAGS = {"force": False, "dry_run": False, "approve_first_push": False, "approve_large_change": False,
         "push_backfill": False, "month": None}  # fmt: skip
DAY1_RUN, DAY2_RUN = "2024-03-02T00:00:00+00:00", "2024-03-03T00:00:00+00:00"  # intervals: day 1, day 2
APRIL_RUN, MAY_RUN = "2024-04-01T00:00:00+00:00", "2024-05-01T00:00:00+00:00"  # March, April


def lineage_env(events: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "devtools"), str(ROOT / "tests")])
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": str(events), "append": True})
    env["AIRFLOW__OPENLINEAGE__EXTRACTORS"] = "postsales.lineage.extractor.PostsalesExtractor"
    env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "postsales-test"
    return env


def run_with_lineage(tmp_path: Path, *args: str) -> tuple[dict, list[dict], str]:
    """tests/lineage_runner.py ``args`` with OpenLineage on: its report, the events, their raw text."""
    events, out = tmp_path / "events.jsonl", tmp_path / "trace.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "lineage_runner.py"), str(out), *args],
        env=lineage_env(events),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    text = events.read_text(encoding="utf-8")
    return json.loads(out.read_text()), [json.loads(line) for line in text.splitlines()], text


def task_events(events: list[dict]) -> dict[tuple[str, str, str], dict[str, dict]]:
    """The task events by (dag id, run id, task id) and event type (the DAG run's own events left out)."""
    found: dict[tuple[str, str, str], dict[str, dict]] = {}
    for event in events:
        airflow = event["run"]["facets"].get("airflow", {})
        if "task" not in airflow:
            continue
        key = (airflow["dag"]["dag_id"], airflow["dagRun"]["run_id"], airflow["task"]["task_id"])
        found.setdefault(key, {})[event["eventType"]] = event
    return found


def names(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


class Warehouse:
    """How the OpenLineage naming spec names the tables of the warehouse at ``url``."""

    def __init__(self, url: str):
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "duckdb":
            path = Path(parsed.database).resolve()
            self.namespace, self.prefix = f"duckdb://{path}", f"{path.stem}."
        else:
            self.namespace, self.prefix = f"postgres://{parsed.host}:{parsed.port or 5432}", f"{parsed.database}."
        self.url = url

    def dataset(self, table: str) -> tuple[str, str]:
        return self.namespace, f"{self.prefix}{table}"

    def columns(self, table: str) -> list[str]:
        schema, name = table.split(".")
        query = sa.text(
            "select column_name from information_schema.columns where table_schema = :s and table_name = :t "
            "order by ordinal_position"
        )
        with warehouse.engine(self.url).connect() as conn:
            return [row[0] for row in conn.execute(query, {"s": schema, "t": name})]


def check_events(
    report: dict, events: list[dict], dags, wh: Warehouse, runtime_inputs: dict, crm: tuple[str, str]
) -> set[str]:
    """Every task's events against the trace; returns the tables the events name as outputs."""
    by_task = task_events(events)
    writes = {tuple(key): set(tables) for *key, tables in report["writes"]}
    reads = {tuple(key): set(tables) for *key, tables in report["reads"]}
    crm_changed = {run["run_id"]: run["crm_changed"] for run in report["runs"]}
    outputs_seen: set[str] = set()
    checked = 0
    for run in report["runs"]:
        assert run["state"] == "success", run
        dag = dags.get_dag(run["dag_id"])
        for task_id, state in run["tasks"].items():
            key = (run["dag_id"], run["run_id"], task_id)
            assert state == "success", (key, state)  # every step ran (forced, approved)
            # The listener fires under dag.test(): a START and a COMPLETE event per task that ran.
            assert set(by_task.get(key, {})) == {"START", "COMPLETE"}, key
            complete = by_task[key]["COMPLETE"]
            assert complete["job"] == {**complete["job"], "namespace": "postsales-test",
                                       "name": f"{run['dag_id']}.{task_id}"}  # fmt: skip

            written = writes.get(key, set())
            expected_out = {wh.dataset(table) for table in written}
            if task_id == "push_tags_to_crm" and crm_changed[run["run_id"]]:
                expected_out.add(crm)
            assert names(complete["outputs"]) == expected_out, key
            for output in complete["outputs"]:
                if (output["namespace"], output["name"]) != crm:
                    table = output["name"].removeprefix(wh.prefix)
                    fields = [f["name"] for f in output["facets"]["schema"]["fields"]]
                    assert fields == wh.columns(table), (key, table)
                    outputs_seen.add(table)

            declared = {wh.dataset(asset_table(a)) for a in dag.get_task(task_id).inlets}
            assert {wh.dataset(table) for table in reads.get(key, set())} <= declared, key
            expected_in = declared | set(runtime_inputs.get(task_id, ()))
            if task_id in ("crm_diff_dry_run", "push_tags_to_crm"):
                expected_in.add(crm)
            assert names(complete["inputs"]) == expected_in, key
            assert names(by_task[key]["START"]["inputs"]) == declared, key
            checked += 1
    assert checked == sum(len(run["tasks"]) for run in report["runs"]) > 0
    return outputs_seen


def no_secret_in(text: str, events: list[dict]) -> None:
    assert SECRET not in text
    for event in events:
        for dataset in event["inputs"] + event["outputs"]:
            assert "@" not in dataset["namespace"] and "?" not in dataset["namespace"], dataset["namespace"]


@pytest.fixture
def postgres_source_and_crm(warehouse_url, tmp_path, monkeypatch):
    """On PostgreSQL: accounts read from a SQL mirror (crm.crm_account) and tags pushed to a CRM table
    (public.crm_account) in the same server, each URL with a password; on DuckDB: the file source and a
    SQLite CRM. Returns (the CRM URL, the warehouse URL the tasks get)."""
    if not warehouse_url.startswith("postgresql"):
        url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
        engine = sa.create_engine(url)
    else:
        url = sa.make_url(warehouse_url).set(password=SECRET).render_as_string(hide_password=False)
        monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", url)  # the server trusts the test's user: any password
        mirror = load_sources().sql.tables["accounts"]
        rows = [{mirror.columns.get(c, c): value or None for c, value in row.items()} for row in tiny.ACCOUNTS]
        engine = sa.create_engine(url)
        updated = mirror.columns["updated_at"]
        columns = [sa.Column(c, sa.DateTime if c == updated else sa.Text) for c in rows[0]]
        source = sa.Table(mirror.table, sa.MetaData(), *columns, schema="crm")
        with engine.begin() as conn:
            conn.execute(sa.text("drop schema if exists crm cascade"))
            conn.execute(sa.text("create schema crm"))
            conn.execute(sa.text("drop table if exists public.crm_account"))
        source.create(engine)
        with engine.begin() as conn:
            conn.execute(source.insert(), rows)
        sources = (ROOT / "include" / "rules" / "sources.yaml").read_text()
        sources = sources.replace("  accounts:\n    source: files\n", "  accounts:\n    source: sql\n")
        sources = sources.replace("    accounts:\n      table: crm_account\n",
                                  "    accounts:\n      table: crm_account\n      schema: crm\n")  # fmt: skip
        project_with_rules(tmp_path / "project", monkeypatch, **{"sources.yaml": sources})
        monkeypatch.setenv("POSTSALES_CRM_URL", url)
    crm_table(sa.MetaData()).create(engine)
    engine.dispose()
    seed_crm(url, [{"Id": a, "Manual_Segment_Lock__c": int(a == "F001")} for a in [*tiny.FILLERS, "A1", "A2", "A3"]])
    monkeypatch.setenv("POSTSALES_CRM_SYNC_URL", url)
    yield url
    warehouse.dispose_all()


def test_each_task_names_what_it_wrote_and_read(dags, warehouse_url, tiny_source, postgres_source_and_crm, tmp_path):
    crm_url = postgres_source_and_crm
    wh = Warehouse(os.environ["POSTSALES_WAREHOUSE_URL"])
    approve = FLAGS | {"force": True, "approve_first_push": True, "approve_large_change": True}
    review = FLAGS | {"force": True, "approve_rules_version": load_rules().version}
    extract = {"full_refresh": False, "allow_empty": False}
    days = [(day, dag_id) for day in (DAY1_RUN, DAY2_RUN) for dag_id in ("crm_extract", "usage_extract")]
    plan = [
        *({"dag_id": dag_id, "logical_date": day, "conf": extract} for day, dag_id in days),
        {"dag_id": "account_segmentation", "conf": {"as_of_date": "2024-03-02"}},
        {"dag_id": "cohort_analysis", "logical_date": APRIL_RUN, "conf": {"month": None}},
        {"dag_id": "segment_revision", "logical_date": APRIL_RUN, "conf": approve},
        {"dag_id": "annual_segmentation_review", "logical_date": MAY_RUN, "conf": review},
    ]
    report, events, text = run_with_lineage(tmp_path, "dags", json.dumps(plan))

    source = tiny_source.resolve()
    runtime = {
        "extract_accounts": {("file", str(source / "accounts.csv"))},
        "extract_contracts": {("file", str(source / "contracts.csv"))},
        "extract_survey_responses": {("file", str(source / "survey_responses.csv"))},
        "extract_usage_daily": {("file", str(source / "usage_daily"))},
    }
    if crm_url.startswith("sqlite"):
        crm = (f"sqlite://{(tmp_path / 'crm.sqlite').resolve()}", "main.crm_account")
    else:
        runtime["extract_accounts"] = {(wh.namespace, f"{wh.prefix}crm.crm_account")}
        crm = (wh.namespace, f"{wh.prefix}public.crm_account")
    written = check_events(report, events, dags, wh, runtime, crm)

    # The usage files read are the interval's: one day file per daily run, as the folder's statistics.
    usage = [e["inputs"] for e in events if e["job"]["name"] == "usage_extract.extract_usage_daily"
             and e["eventType"] == "COMPLETE"]  # fmt: skip
    files = [d for inputs in usage for d in inputs if d["namespace"] == "file"]
    assert [d["inputFacets"]["inputStatistics"]["fileCount"] for d in files] == [1, 1]
    # The chain wrote every table the pipeline has, and the push changed the CRM.
    from postsales.tables import homes

    assert written == set(homes())
    assert [run["crm_changed"] for run in report["runs"] if run["dag_id"] == "segment_revision"] == [True]
    no_secret_in(text, events)


def test_make_run_names_every_table_it_wrote_with_its_task(airflow_db, tmp_path, monkeypatch):
    """`make run`'s command (postsales_dev.cli run) on a small demo: every table a task wrote is an
    output of that task's COMPLETE event, and no table is an output of a task that did not write it."""
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(tmp_path / "demo"))
    warehouse_file = tmp_path / "data" / "warehouse.duckdb"
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", f"duckdb:///{warehouse_file}")
    report, events, text = run_with_lineage(tmp_path, "cli", "run", "--demo-accounts", "12", "--demo-seed", "3")
    wh = Warehouse(f"duckdb:///{warehouse_file}")

    produced: dict[tuple[str, str], set[str]] = {}
    for event in events:
        if event["eventType"] == "COMPLETE":
            for dataset in event["outputs"]:
                produced.setdefault((dataset["namespace"], dataset["name"]), set()).add(event["job"]["name"])
    expected: dict[tuple[str, str], set[str]] = {}
    for dag_id, _run_id, task_id, tables in report["writes"]:
        for table in tables:
            expected.setdefault(wh.dataset(table), set()).add(f"{dag_id}.{task_id}")
    crm = (f"sqlite://{(tmp_path / 'demo' / 'crm.sqlite').resolve()}", "main.crm_account")
    assert produced.pop(crm) == {"segment_revision.push_tags_to_crm"}  # the demo CRM's first push
    assert produced == expected
    from postsales.tables import homes

    assert {name.removeprefix(wh.prefix) for _, name in expected} == set(homes())
    no_secret_in(text, events)
    warehouse.dispose_all()
