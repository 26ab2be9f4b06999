"""`make`'s SQLite metadata waits for the scheduler's write lock instead of failing at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOLD_SECONDS = 20  # well past sqlite3's default 5 s wait, after Airflow's ~5 s import

WRITE = """
import time
from airflow import settings
import sqlalchemy as sa
settings.configure_orm()
started = time.monotonic()
with settings.engine.begin() as conn:
    conn.execute(sa.text("create table probe (a integer)"))
print(f"waited {time.monotonic() - started:.1f}")
"""


def write_while_locked(tmp_path: Path, connect_args: str | None) -> subprocess.CompletedProcess:
    database = tmp_path / "airflow.db"
    with sqlite3.connect(database) as setup:
        setup.execute("pragma journal_mode=wal")  # as Airflow runs it
    holder = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
    holder.execute("begin immediate")  # what a scheduler's write transaction holds
    release = threading.Timer(HOLD_SECONDS, lambda: holder.execute("commit"))
    release.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__DATABASE")}
    env |= {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
            "PYTHONPATH": str(ROOT / "plugins")}  # fmt: skip
    if connect_args:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = connect_args
    try:
        return subprocess.run([sys.executable, "-c", WRITE], env=env, capture_output=True, text=True, timeout=120)
    finally:
        release.join()
        holder.close()


def test_the_cli_waits_for_the_write_lock(tmp_path):
    result = write_while_locked(tmp_path, "postsales.airflow_metadata.METADATA_CONNECT_ARGS")
    assert result.returncode == 0, result.stderr[-2000:]
    waited = float(result.stdout.split()[-1])
    assert waited > 6  # sqlite3 alone gives up after 5 s


def test_without_it_a_write_fails_on_the_lock(tmp_path):
    started = time.monotonic()
    result = write_while_locked(tmp_path, None)
    assert result.returncode != 0 and "database is locked" in result.stderr
    assert time.monotonic() - started < 60


def savepoint_while_the_scheduler_commits(path: Path, connect_args: dict) -> list[int]:
    """`airflow backfill create`'s pattern: per run a SAVEPOINT, a read, then a write; meanwhile
    another connection (the scheduler) commits a write."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    cli, scheduler = (sa.create_engine(f"sqlite:///{path}", connect_args=dict(connect_args)) for _ in range(2))
    with cli.begin() as conn:
        conn.exec_driver_sql("pragma journal_mode=wal")
        conn.exec_driver_sql("create table dag_run (id integer)")

    def scheduler_writes():
        time.sleep(0.5)
        with scheduler.begin() as conn:
            conn.exec_driver_sql("insert into dag_run values (2)")

    writer = threading.Thread(target=scheduler_writes)
    session = Session(cli)
    writer.start()
    try:
        with session.begin_nested():
            session.execute(sa.text("select count(*) from dag_run")).scalar()
            time.sleep(1.5)  # the scheduler commits meanwhile
            session.execute(sa.text("insert into dag_run values (1)"))
        session.commit()
    finally:
        writer.join()
    return sorted(session.execute(sa.text("select id from dag_run")).scalars())


def test_a_savepoint_takes_the_write_lock_first(tmp_path):
    from postsales.airflow_metadata import SQLITE_CONNECT_ARGS

    assert savepoint_while_the_scheduler_commits(tmp_path / "ours.db", SQLITE_CONNECT_ARGS) == [1, 2]
    import sqlalchemy as sa

    with pytest.raises(sa.exc.OperationalError, match="database is locked"):  # a long timeout alone does not help
        savepoint_while_the_scheduler_commits(tmp_path / "plain.db", {"timeout": 60})


def test_make_sets_it_and_it_is_empty_for_other_metadata_databases(tmp_path):
    """PostgreSQL metadata named in airflow.cfg (not in the environment) gets no SQLite options."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__DATABASE")}
    out = subprocess.run(
        ["make", "-s", "--eval", "show:\n\t@echo connect_args=$$AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "show"],
        cwd=ROOT, capture_output=True, text=True, env=clean, check=True,
    ).stdout  # fmt: skip
    assert out.strip().splitlines()[-1] == "connect_args=postsales.airflow_metadata.METADATA_CONNECT_ARGS"

    (tmp_path / "airflow.cfg").write_text("[database]\nsql_alchemy_conn = postgresql+psycopg://u@db-host/airflow\n")
    probe = "from postsales.airflow_metadata import METADATA_CONNECT_ARGS as a; print(sorted(a))"
    env = clean | {"AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "plugins")}
    printed = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert printed.stdout.strip().splitlines()[-1] == "[]"
    (tmp_path / "airflow.cfg").write_text(f"[database]\nsql_alchemy_conn = sqlite:///{tmp_path}/airflow.db\n")
    printed = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert printed.stdout.strip().splitlines()[-1] == "['factory', 'isolation_level', 'timeout']"
