"""Shared fixtures: an isolated Airflow home, DuckDB and PostgreSQL warehouses, tiny sources.

Airflow reads its configuration from the environment when first imported, so the
environment is set here, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import tiny

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_TEST_HOME = ROOT / ".airflow-test"

os.environ.setdefault("AIRFLOW_HOME", str(AIRFLOW_TEST_HOME))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Retry delays are read when DAG files are imported: keep retries fast for the whole session.
os.environ.setdefault("POSTSALES_RETRY_DELAY_SECONDS", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")]))

PG_ADMIN_DSN = os.environ.get("POSTSALES_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means "not here"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin DSN of a reachable PostgreSQL; skips locally, fails in CI."""
    problem = _pg_reachable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL tests must run in CI but {PG_ADMIN_DSN} is unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN} ({problem}); set POSTSALES_TEST_PG_DSN")
    return PG_ADMIN_DSN


@pytest.fixture(scope="session")
def pg_database(pg_server: str):
    """A throw-away database for this test session, dropped at the end."""
    import psycopg

    name = f"postsales_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    from postsales import warehouse

    warehouse.dispose_all()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def _spark_missing() -> str | None:
    """Why a local Spark Connect server cannot start here (None: it can)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (make install-spark)"
    if shutil.which("java") is None:
        return "java is not on the PATH (Spark needs Java 17 or later)"
    return None


@pytest.fixture(scope="session")
def spark_url(tmp_path_factory):
    """``spark+connect://127.0.0.1:<port>``: a local Spark Connect server started from the project's
    own install, shared by the session's Spark tests (a start takes 10-30 s); skips locally
    without pyspark, fails in CI."""
    problem = _spark_missing()
    if problem:
        if IN_CI:
            pytest.fail(f"Spark tests must run in CI but {problem}")
        pytest.skip(problem)
    import socket

    from postsales.spark import server

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    directory = tmp_path_factory.mktemp("spark")
    import time

    start = time.monotonic()
    server.start(directory, port)
    print(f"Spark Connect server answering after {time.monotonic() - start:.1f} s")
    try:
        yield f"spark+connect://127.0.0.1:{port}"
    finally:
        server.stop(directory)


@pytest.fixture(scope="session")
def spark(spark_url):
    """A Spark Connect session on the server of :func:`spark_url`."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(spark_url.replace("spark+connect://", "sc://", 1)).create()
    try:
        yield session
    finally:
        session.stop()


def _reset_pg(url: str) -> None:
    import sqlalchemy as sa

    from postsales import warehouse

    with warehouse.engine(url).begin() as conn:
        for schema in warehouse.SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path, monkeypatch) -> str:
    """A clean warehouse on each backend; also exported as POSTSALES_WAREHOUSE_URL."""
    from postsales import warehouse

    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("pg_database")
        _reset_pg(url)
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", url)
    yield url
    warehouse.dispose_all()


@pytest.fixture
def duckdb_url(tmp_path, monkeypatch) -> str:
    from postsales import warehouse

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", url)
    yield url
    warehouse.dispose_all()


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Data Docs and other generated files go to the test's tmp dir, not the repo; so does the
    warehouse of a test that names none (the warehouse fixtures set their own)."""
    monkeypatch.setenv("POSTSALES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}")


@pytest.fixture
def tiny_source(tmp_path, monkeypatch) -> Path:
    """The hand-built source of tests/tiny.py; also exported as POSTSALES_SOURCE_DIR."""
    target = tiny.build(tmp_path / "source")
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(target))
    return target


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow metadata (SQLite) for dag.test(), migrated once per session."""
    AIRFLOW_TEST_HOME.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    subprocess.run(
        [sys.executable, "-m", "airflow", "pools", "set", "postsales_warehouse", "1", "DuckDB single writer"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return AIRFLOW_TEST_HOME


@pytest.fixture(scope="module")
def dags(airflow_db):
    """The project's DagBag, parsed once per test module (after the metadata DB exists)."""
    from airflow.dag_processing.dagbag import DagBag

    from postsales.dag_defaults import without_duration_alerts

    bag = DagBag(str(Path(__file__).resolve().parents[1] / "dags"))
    assert bag.import_errors == {}
    bag = without_duration_alerts(bag)  # dag.test() cannot run DAGs with deadlines (Airflow 3.3.2)
    for dag in bag.dags.values():
        object.__setattr__(dag, "test", _outlets_checked(dag))
    return bag


def _outlets_checked(dag):
    """``dag.test`` that then fails if a task wrote a warehouse table whose Asset it does not
    declare as an outlet, or read one (but for the tables it wrote) whose Asset it does not declare
    as an inlet (so the asset graph and lineage are true: postsales.assets)."""
    from postsales.assets import asset_table
    from write_trace import task_trace

    run_test = dag.test

    def undeclared(traced: dict, declared: str) -> dict[str, list[str]]:
        """Per task of this DAG, the traced tables its ``declared`` Assets (outlets or inlets) lack."""
        missing = {
            task_id: sorted(tables - {asset_table(a) for a in getattr(dag.get_task(task_id), declared)})
            for (dag_id, _, task_id), tables in traced.items()
            if dag_id == dag.dag_id
        }
        return {task_id: tables for task_id, tables in missing.items() if tables}

    def test(*args, **kwargs):
        with task_trace() as trace:
            run = run_test(*args, **kwargs)
        unwritten = undeclared(trace.writes, "outlets")
        assert not unwritten, f"{dag.dag_id}: tasks wrote tables their outlets do not declare: {unwritten}"
        unread = undeclared(trace.reads, "inlets")
        assert not unread, f"{dag.dag_id}: tasks read tables their inlets do not declare: {unread}"
        return run

    return test


@pytest.fixture
def alert_webhook(monkeypatch):
    """A local Slack-compatible webhook (tests/webhook.py) behind the `postsales_alerts` connection."""
    import webhook

    hook = webhook.start()
    monkeypatch.setenv("AIRFLOW_CONN_POSTSALES_ALERTS", hook.connection_json())
    yield hook
    hook.server.shutdown()
