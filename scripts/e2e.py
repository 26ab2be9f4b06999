"""End-to-end test under a real Airflow: every component, a real scheduler, a real backfill.

    python scripts/e2e.py [--accounts N] [--months N] [--timeout SECONDS] [--keep]

Starts api-server, scheduler, dag-processor, triggerer and a Celery worker against a
fresh PostgreSQL metadata database and the Redis broker on this machine, with the
warehouse on a fresh PostgreSQL database, then:

1. loads the demo history (a full-refresh run of each extract DAG, as on day one), unpauses
   ``account_segmentation`` and triggers the two extracts: segmentation must follow through
   the staging Assets without being triggered, and equal segments computed directly;
2. runs ``airflow backfill create`` for ``cohort_analysis`` over ``--months`` historical
   months and waits until every run succeeds;
3. checks each month's snapshot partition exists and equals the snapshot computed directly
   (the library, no Airflow, on an embedded DuckDB warehouse loaded from the same source);
4. re-runs the backfill with ``--reprocess-behavior completed`` and checks the cohort and
   segment tables are unchanged;
5. stops every process it started by its PID (process group) and checks none is left.

Exits non-zero with the component logs (and failed task logs) printed on any failure or
timeout. Prints the wall time of each phase and the peak memory (RSS of each component's
process tree) of the Airflow processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_DSN = os.environ.get("POSTSALES_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("POSTSALES_E2E_REDIS_URL", "redis://127.0.0.1:6379/5")
EXTRACT_DAGS = ("crm_extract", "usage_extract")
# Columns that record when or by which run a row was written, not what it says.
AUDIT_COLUMNS = {"computed_at", "_run_id", "_loaded_at"}


class E2EFailure(Exception):
    pass


def log(message: str) -> None:
    print(f"[e2e {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_url(database: str, driver: str = "postgresql+psycopg") -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].split("://", 1)[1]
    return f"{driver}://{base}/{database}"


# --- processes --------------------------------------------------------------------------


class Stack:
    """The Airflow processes this run started: each in its own process group, logs to files."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.peak_rss: dict[str, int] = {}
        self.peak_total_rss = 0
        self.deadline = math.inf  # time.monotonic() value after which every wait fails
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self, name: str, *args: str) -> None:
        out = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,  # its own process group: stopped with every child it forks
        )
        log(f"started {name} (pid {self.procs[name].pid})")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise E2EFailure(f"{name} (pid {proc.pid}) exited with code {proc.returncode}")

    def start_sampling(self) -> None:
        import psutil

        def tree_rss(pid: int) -> int:
            try:
                root = psutil.Process(pid)
                total = root.memory_info().rss
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
                return total
            except psutil.Error:
                return 0

        def sample() -> None:
            while not self._sampling.wait(0.5):
                total = 0
                for name, proc in list(self.procs.items()):
                    rss = tree_rss(proc.pid)
                    total += rss
                    self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
                self.peak_total_rss = max(self.peak_total_rss, total)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def stop(self, grace: float = 30.0) -> list[str]:
        """SIGTERM each process group, SIGKILL what is left after ``grace``; returns survivors."""
        self._sampling.set()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        time.sleep(0.5)
        return [f"{name} group {proc.pid}" for name, proc in self.procs.items() if _group_alive(proc.pid)]

    def dump_logs(self, lines: int = 60) -> None:
        for name in self.procs:
            path = self.log_dir / f"{name}.log"
            print(f"\n===== {name} log (last {lines} lines of {path}) =====")
            print(_tail(path, lines))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def airflow_cli(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """Run an ``airflow`` command; fail with its output when it fails."""
    result = subprocess.run(
        [str(VENV_BIN / "airflow"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise E2EFailure(f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


# --- metadata queries ------------------------------------------------------------------


class Metadata:
    """Read-only queries on the Airflow metadata database (PostgreSQL)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, params).fetchall()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        rows = self.rows(
            "select run_id, run_type, state, logical_date, data_interval_start, backfill_id, end_date, conf"
            " from dag_run where dag_id = %s order by id",
            (dag_id,),
        )
        keys = ("run_id", "run_type", "state", "logical_date", "data_interval_start", "backfill_id", "end_date", "conf")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def failed_tasks(self) -> list[tuple]:
        return self.rows(
            "select dag_id, run_id, task_id, try_number from task_instance where state in ('failed', 'upstream_failed')"
        )


def wait_for(what: str, condition: Callable[[], Any], stack: Stack, timeout: float, poll: float = 2.0) -> Any:
    """Poll ``condition`` until it returns a truthy value; fail on timeout or a dead component.

    ``timeout`` bounds this wait; the whole run is bounded by ``stack.deadline`` too.
    """
    started = time.monotonic()
    limit = min(started + timeout, stack.deadline)
    while True:
        stack.check_alive()
        value = condition()
        if value:
            log(f"{what}: done in {time.monotonic() - started:.0f}s")
            return value
        if time.monotonic() > limit:
            raise E2EFailure(f"timed out after {time.monotonic() - started:.0f}s waiting for {what}")
        time.sleep(poll)


def runs_settled(meta: Metadata, dag_id: str, want: Callable[[list[dict]], bool]) -> Callable[[], bool]:
    """A condition: no run of ``dag_id`` is queued or running, none failed, and ``want(runs)``."""

    def check() -> bool:
        runs = meta.runs(dag_id)
        failed = [run["run_id"] for run in runs if run["state"] == "failed"]
        if failed:
            raise E2EFailure(f"{dag_id}: runs failed: {failed}")
        return all(run["state"] == "success" for run in runs) and want(runs)

    return check


# --- warehouse comparison ----------------------------------------------------------------


def table_rows(url: str, table: str, where: str, params: dict) -> tuple[list[str], list[tuple]]:
    """The rows of ``table`` matching ``where``, without audit columns, in a stable order."""
    import sqlalchemy as sa

    from postsales import warehouse

    with warehouse.engine(url).connect() as conn:
        result = conn.execute(sa.text(f"select * from {table} where {where}"), params)
        columns = list(result.keys())
        keep = [i for i, name in enumerate(columns) if name not in AUDIT_COLUMNS]
        rows = [tuple(_comparable(row[i]) for i in keep) for row in result]
    rows.sort(key=lambda row: tuple((value is None, _sort_key(value)) for value in row))
    return [columns[i] for i in keep], rows


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        # JSON explanations: PostgreSQL and DuckDB serialise the same document with other spacing.
        # Their floats may differ in the last digit: compare them to 10 significant digits.
        with contextlib.suppress(ValueError):
            return json.dumps(_round_floats(json.loads(value)), sort_keys=True)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, Decimal):  # PostgreSQL numeric; DuckDB may give a float for the same column
        return float(value)
    return value


def _first_difference(x: Any, y: Any) -> str:
    """For two JSON documents, the first key whose values differ; else both values."""
    with contextlib.suppress(TypeError, ValueError):
        left, right = json.loads(x), json.loads(y)
        if isinstance(left, dict) and isinstance(right, dict):
            for key in sorted(set(left) | set(right)):
                if left.get(key) != right.get(key):
                    return f"key {key}: {left.get(key)!r} vs {right.get(key)!r}"
    return f"{x!r} vs {y!r}"


def _round_floats(value: Any) -> Any:
    if isinstance(value, float):  # and 3503.0 (DuckDB) is 3503 (PostgreSQL)
        return int(value) if value.is_integer() else float(f"{value:.10g}")
    if isinstance(value, dict):
        return {key: _round_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_round_floats(item) for item in value]
    return value


def _sort_key(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def same_rows(columns: list[str], left: list[tuple], right: list[tuple]) -> str | None:
    """None when equal (floats to 1e-9 relative), else the first difference."""
    if len(left) != len(right):
        return f"{len(left)} rows vs {len(right)}"
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        for column, x, y in zip(columns, a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                equal = math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            else:
                equal = x == y
            if not equal:
                where = f"row {index} ({', '.join(map(str, a[:2]))}, ...) column {column}"
                return f"{where}: {_first_difference(x, y)}"
    return None


def snapshot_tables() -> list[str]:
    from postsales.cohorts import OUTPUTS

    return [f"{table.schema}.{table.name}" for table in OUTPUTS]


def read_cohorts(url: str, months: list[date]) -> dict[tuple[str, date], tuple[list[str], list[tuple]]]:
    return {
        (table, month): table_rows(url, table, "snapshot_month = :month", {"month": month})
        for table in snapshot_tables()
        for month in months
    }


def read_segments(url: str, as_of_dates: list[date]) -> dict[tuple[str, date], tuple[list[str], list[tuple]]]:
    tables = ("mart.account_segments", "mart.account_forecasts")
    return {
        (table, as_of): table_rows(url, table, "as_of_date = :as_of", {"as_of": as_of})
        for table in tables
        for as_of in as_of_dates
    }


def compare(label: str, got: dict, expected: dict) -> None:
    problems = []
    for key, (columns, rows) in expected.items():
        got_columns, got_rows = got[key]
        if not rows:
            problems.append(f"{key[0]} {key[1]}: the direct computation wrote no rows")
        if got_columns != columns:
            problems.append(f"{key[0]} {key[1]}: columns {got_columns} vs {columns}")
            continue
        diff = same_rows(columns, got_rows, rows)
        if diff:
            problems.append(f"{key[0]} {key[1]}: {diff}")
    if problems:
        raise E2EFailure(f"{label}:\n  " + "\n  ".join(problems[:20]))
    log(f"{label}: {len(expected)} partitions equal ({sum(len(rows) for _, rows in expected.values())} rows)")


# --- the direct computation (subprocess, no Airflow) --------------------------------------


def direct(args: argparse.Namespace) -> int:
    """Load the source with a full refresh, then segments and cohort snapshots, via the library."""
    from postsales.cohorts import compute_snapshot
    from postsales.extract import extract_entity
    from postsales.forecast import compute_forecast
    from postsales.segment.engine import compute_segments
    from postsales.sources import Interval

    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    interval = Interval(today - timedelta(days=1), today, full_refresh=True)
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=interval, run_id="e2e_direct", build_data_docs=False)
    for as_of in sorted(date.fromisoformat(value) for value in args.as_of):
        compute_segments(as_of)
        compute_forecast(as_of)
    for month in sorted(date.fromisoformat(value) for value in args.month):
        compute_snapshot(month)
    return 0


# --- the run ------------------------------------------------------------------------------


def month_starts(last: date, count: int) -> list[date]:
    months = []
    month = last.replace(day=1)
    for _ in range(count):
        months.append(month)
        month = (month - timedelta(days=1)).replace(day=1)
    return sorted(months)


def run(args: argparse.Namespace) -> int:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_DSN, connect_timeout=5).close()
    except psycopg.Error as exc:
        print(f"E2E FAILED: PostgreSQL {PG_ADMIN_DSN} is unreachable ({exc}); set POSTSALES_TEST_PG_DSN", flush=True)
        return 1
    started = time.monotonic()
    phases: dict[str, float] = {}
    tag = uuid.uuid4().hex[:8]
    work = (ROOT / ".e2e").resolve()
    work.mkdir(exist_ok=True)
    run_dir = work / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{tag}"
    (run_dir / "logs").mkdir(parents=True)
    meta_db, warehouse_db = f"postsales_e2e_meta_{tag}", f"postsales_e2e_wh_{tag}"
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).flushdb()  # no task messages left from an earlier run
    except redis.RedisError as exc:
        print(f"E2E FAILED: the Celery broker {REDIS_URL} is unreachable ({exc}); start Redis or set "
              "POSTSALES_E2E_REDIS_URL", flush=True)  # fmt: skip
        return 1
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        for name in (meta_db, warehouse_db):
            conn.execute(f'create database "{name}"')

    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    source_dir = run_dir / "source"
    warehouse_url = pg_url(warehouse_db)
    api_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(run_dir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(meta_db),
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url(meta_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",  # shorter task wrap-up
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "POSTSALES_WAREHOUSE_URL": warehouse_url,
        "POSTSALES_SOURCE_DIR": str(source_dir),
        "POSTSALES_DATA_DIR": str(run_dir / "data"),
        "POSTSALES_RETRY_DELAY_SECONDS": "5",
        "PYTHONPATH": str(ROOT / "plugins"),
        "GX_ANALYTICS_ENABLED": "false",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    stack = Stack(env, run_dir / "logs")

    def terminated(signum: int, _frame: Any) -> None:
        raise E2EFailure(f"stopped by signal {signum}")  # so the components are stopped too

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGINT, terminated)
    stack.deadline = started + args.deadline
    meta = Metadata(pg_url(meta_db, "postgresql"))
    # Unpausing cohort_analysis runs its latest complete month at once (last month); a backfill
    # over that month would skip it as already run, so backfill the months before it.
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    backfill_months = month_starts(last_month - timedelta(days=1), args.months)
    ok = False
    try:
        phase = time.monotonic()
        log(f"run directory {run_dir}; metadata {meta_db}, warehouse {warehouse_db}, broker {REDIS_URL}")
        from postsales import demo

        counts = demo.generate(source_dir, accounts=args.accounts, seed=42, as_of=yesterday)
        log(f"demo source through {yesterday}: {json.dumps(counts, default=str)[:200]}")
        airflow_cli(env, "db", "migrate", timeout=600)
        airflow_cli(env, "pools", "set", "postsales_warehouse", "2", "warehouse writers (PostgreSQL)")
        phases["setup (demo data, db migrate)"] = time.monotonic() - phase

        phase = time.monotonic()
        stack.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        stack.start("scheduler", "scheduler")
        stack.start("dag-processor", "dag-processor")
        stack.start("triggerer", "triggerer")
        stack.start("celery-worker", "celery", "worker", "--concurrency", "2", "--without-gossip", "--without-mingle")
        stack.start_sampling()
        wait_for("api-server health", lambda: _healthy(api_port), stack, 180)
        dag_ids = wait_for(
            "all DAGs parsed and serialized",
            lambda: _all_dags_parsed(meta),
            stack,
            300,
        )
        log(f"DAGs: {', '.join(sorted(dag_ids))}")
        phases["start components, parse DAGs"] = time.monotonic() - phase

        # 1. Day one: load the history (full refresh), then the Asset chain.
        phase = time.monotonic()
        for dag_id in EXTRACT_DAGS:
            airflow_cli(env, "dags", "unpause", dag_id)
            airflow_cli(env, "dags", "trigger", dag_id, "--conf", json.dumps({"full_refresh": True}))
            wait_for(
                f"{dag_id}: the scheduled latest interval and the full refresh",
                runs_settled(meta, dag_id, lambda runs: len(runs) >= 2),
                stack,
                args.timeout,
            )
        phases["1a initial load (full refresh)"] = time.monotonic() - phase

        phase = time.monotonic()
        airflow_cli(env, "dags", "unpause", "account_segmentation")
        chain_start = datetime.now(UTC)
        for dag_id in EXTRACT_DAGS:  # no logical date, as the UI triggers: the last complete day
            airflow_cli(env, "dags", "trigger", dag_id)
            third_run = runs_settled(meta, dag_id, lambda runs: len(runs) >= 3)
            wait_for(f"{dag_id}: yesterday's interval", third_run, stack, args.timeout)
        seg_runs = wait_for(
            "account_segmentation triggered by the staging Assets",
            lambda: (
                [
                    run
                    for run in meta.runs("account_segmentation")
                    if run["run_type"] == "asset_triggered" and run["state"] == "success"
                ]
                if runs_settled(meta, "account_segmentation", lambda r: bool(r))()
                else []
            ),
            stack,
            args.timeout,
        )
        if any(run["run_type"] == "manual" for run in meta.runs("account_segmentation")):
            raise E2EFailure("account_segmentation has a manual run: the chain was not Asset-driven")
        import sqlalchemy as sa

        from postsales import warehouse

        with warehouse.engine(warehouse_url).connect() as conn:
            as_of_dates = [
                row[0] for row in conn.execute(sa.text("select distinct as_of_date from mart.account_segments"))
            ]
        log(
            f"Asset chain: {len(seg_runs)} asset-triggered segmentation run(s) after {chain_start:%H:%M:%S}; "
            f"segments as of {', '.join(map(str, sorted(as_of_dates)))}"
        )
        if yesterday not in as_of_dates:
            raise E2EFailure(f"mart.account_segments has no partition for {yesterday}: {as_of_dates}")
        phases["1b Asset chain extract -> segmentation"] = time.monotonic() - phase
        check_run_summaries(meta, warehouse_url, ("crm_extract", "usage_extract", "account_segmentation"))

        # 2. Backfill the cohort snapshots.
        phase = time.monotonic()
        airflow_cli(env, "dags", "unpause", "cohort_analysis")
        backfill_args = ("--from-date", backfill_months[0].isoformat(), "--to-date", backfill_months[-1].isoformat())
        airflow_cli(env, "backfill", "create", "--dag-id", "cohort_analysis", *backfill_args)
        first_backfill = _backfill_done(meta, backfill_months, 1)
        wait_for(f"backfill of {len(backfill_months)} months", first_backfill, stack, args.timeout)
        phases[f"2 backfill cohort_analysis ({len(backfill_months)} months)"] = time.monotonic() - phase

        # 3. Each month's snapshot exists and equals the direct computation.
        phase = time.monotonic()
        direct_url = f"duckdb:///{run_dir / 'direct.duckdb'}"
        direct_env = {**env, "POSTSALES_WAREHOUSE_URL": direct_url, "POSTSALES_DATA_DIR": str(run_dir / "direct")}
        cmd = [sys.executable, __file__, "direct"]
        cmd += [f"--as-of={d.isoformat()}" for d in as_of_dates] + [f"--month={m.isoformat()}" for m in backfill_months]
        result = subprocess.run(cmd, env=direct_env, capture_output=True, text=True, cwd=ROOT, timeout=args.timeout)
        if result.returncode != 0:
            raise E2EFailure(f"direct computation failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        backfilled = read_cohorts(warehouse_url, backfill_months)
        for (table, month), (_, rows) in backfilled.items():
            if table == "mart.mrr_movements" and not rows:
                raise E2EFailure(f"{table} has no snapshot partition for {month}")
        compare("backfilled cohort snapshots vs direct", backfilled, read_cohorts(direct_url, backfill_months))
        segments = read_segments(warehouse_url, as_of_dates)
        compare("Asset-driven segments and forecasts vs direct", segments, read_segments(direct_url, as_of_dates))
        phases["3 compare with the direct computation"] = time.monotonic() - phase

        # 4. Reprocess the backfill: the tables must not change.
        phase = time.monotonic()
        airflow_cli(
            env,
            "backfill",
            "create",
            "--dag-id",
            "cohort_analysis",
            *backfill_args,
            "--reprocess-behavior",
            "completed",
        )
        rerun = wait_for("reprocessed backfill", _backfill_done(meta, backfill_months, 2), stack, args.timeout)
        if any(clear_number < 1 for *_, clear_number in rerun):
            raise E2EFailure(f"the reprocessing backfill did not rerun every month: {rerun}")
        compare(
            "cohort snapshots after reprocessing vs before", read_cohorts(warehouse_url, backfill_months), backfilled
        )
        compare("segments after reprocessing vs before", read_segments(warehouse_url, as_of_dates), segments)
        phases["4 reprocess backfill, check idempotency"] = time.monotonic() - phase
        check_run_summaries(meta, warehouse_url, ("cohort_analysis",))
        ok = True
    except (E2EFailure, subprocess.TimeoutExpired) as exc:
        print(f"\nE2E FAILED: {exc}", flush=True)
    except Exception as exc:
        print(f"\nE2E FAILED with an unexpected error: {type(exc).__name__}: {exc}", flush=True)
        import traceback

        traceback.print_exc()
    finally:
        if not ok:
            with contextlib.suppress(Exception):
                _dump_failed_task_logs(meta, Path(env["AIRFLOW_HOME"]) / "logs")
            stack.dump_logs()
        phase = time.monotonic()
        survivors = stack.stop()
        phases["5 stop components"] = time.monotonic() - phase
        if survivors:
            print(f"E2E FAILED: processes still running after stop: {survivors}", flush=True)
            ok = False
        else:
            log(f"stopped {len(stack.procs)} components; no process of theirs is left")
        _report(phases, stack, time.monotonic() - started, run_dir)
        from postsales import warehouse

        warehouse.dispose_all()
        if not args.keep:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                for name in (meta_db, warehouse_db):
                    conn.execute(f'drop database if exists "{name}" with (force)')
    log("PASSED" if ok else "FAILED")
    return 0 if ok else 1


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _all_dags_parsed(meta: Metadata) -> set[str] | None:
    expected = {path.stem for path in (ROOT / "dags").glob("*.py")}
    with contextlib.suppress(Exception):  # tables appear as components start
        errors = meta.rows("select filename, stacktrace from import_error")
        if errors:
            raise E2EFailure(f"DAG import errors: {errors}")
        parsed = {row[0] for row in meta.rows("select dag_id from serialized_dag")}
        return parsed if expected <= parsed else None
    return None


def _backfill_done(meta: Metadata, months: list[date], number: int) -> Callable[[], list[tuple] | None]:
    """A condition: the ``number``-th backfill of cohort_analysis completed with a successful run per month.

    Reprocessing does not create runs: it clears the existing ones (``clear_number`` goes up).
    """

    def check() -> list[tuple] | None:
        backfills = meta.rows("select id, completed_at from backfill where dag_id = 'cohort_analysis' order by id")
        if len(backfills) < number:
            return None
        backfill_id, completed_at = backfills[number - 1]
        runs = meta.rows(
            "select r.run_id, r.state, r.data_interval_start, r.clear_number from backfill_dag_run b"
            " join dag_run r on r.id = b.dag_run_id where b.backfill_id = %s",
            (backfill_id,),
        )
        failed = [run[0] for run in runs if run[1] == "failed"]
        if failed:
            raise E2EFailure(f"cohort_analysis backfill {backfill_id}: runs failed: {failed}")
        if completed_at is None or any(run[1] != "success" for run in runs):
            return None
        missing = [month for month in months if month not in {run[2].date() for run in runs}]
        if missing:
            raise E2EFailure(f"backfill {backfill_id} completed without runs for {missing}")
        return runs

    return check


def check_run_summaries(meta: Metadata, warehouse_url: str, dag_ids: tuple[str, ...]) -> None:
    """Every finished run of ``dag_ids`` has its ops.run_summary row, with what the run did."""
    import sqlalchemy as sa

    from postsales import warehouse

    with warehouse.engine(warehouse_url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "select dag_id, run_id, state, rows_extracted, segments_as_of_date, cohort_snapshot_month,"
                " duration_seconds from ops.run_summary"
            )
        ).all()
    summaries = {(row.dag_id, row.run_id): row for row in rows}
    problems = []
    for dag_id in dag_ids:
        for run in meta.runs(dag_id):
            row = summaries.get((dag_id, run["run_id"]))
            if row is None:
                problems.append(f"{dag_id} {run['run_id']}: no ops.run_summary row")
            elif row.state != run["state"] or row.duration_seconds is None:
                problems.append(f"{dag_id} {run['run_id']}: summary state {row.state}, duration {row.duration_seconds}")
            elif dag_id.endswith("_extract") and (
                row.rows_extracted is None or (_full_refresh(run) and row.rows_extracted == 0)
            ):
                problems.append(f"{dag_id} {run['run_id']}: rows extracted {row.rows_extracted} in the summary")
            elif dag_id == "account_segmentation" and row.segments_as_of_date is None:
                problems.append(f"{dag_id} {run['run_id']}: no segments as-of date in the summary")
            elif dag_id == "cohort_analysis" and row.cohort_snapshot_month is None:
                problems.append(f"{dag_id} {run['run_id']}: no cohort snapshot month in the summary")
    if problems:
        raise E2EFailure("run summaries:\n  " + "\n  ".join(problems))
    log(f"ops.run_summary: a row with what it did for every run of {', '.join(dag_ids)}")


def _full_refresh(run: dict[str, Any]) -> bool:
    conf = run["conf"]
    if isinstance(conf, str | bytes):
        conf = json.loads(conf)
    return bool((conf or {}).get("full_refresh"))


def _dump_failed_task_logs(meta: Metadata, log_root: Path) -> None:
    for dag_id, run_id, task_id, _ in meta.failed_tasks():
        for path in sorted(log_root.glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log")):
            print(f"\n===== failed task {dag_id}.{task_id} {run_id}: {path.name} =====")
            print(_tail(path, 40))


def _report(phases: dict[str, float], stack: Stack, wall: float, run_dir: Path) -> None:
    mib = 1024 * 1024
    lines = ["", "e2e wall time by phase:"]
    lines += [f"  {name:<45}{seconds:>8.1f} s" for name, seconds in phases.items()]
    lines.append(f"  {'total':<45}{wall:>8.1f} s")
    lines.append("peak memory (RSS of each component's process tree, sampled every 0.5 s):")
    lines += [f"  {name:<45}{rss / mib:>8.0f} MiB" for name, rss in stack.peak_rss.items()]
    lines.append(f"  {'all components at once (peak of the sum)':<45}{stack.peak_total_rss / mib:>8.0f} MiB")
    print("\n".join(lines), flush=True)
    summary = {
        "wall_seconds": round(wall, 1),
        "phases": {k: round(v, 1) for k, v in phases.items()},
        "peak_rss_mib": {k: round(v / mib) for k, v in stack.peak_rss.items()},
        "peak_total_rss_mib": round(stack.peak_total_rss / mib),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--accounts", type=int, default=200, help="demo accounts (default %(default)s)")
    parser.add_argument("--months", type=int, default=6, help="cohort months to backfill (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each step")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the metadata and warehouse databases")
    direct_parser = sub.add_parser("direct", help="internal: compute the expected tables without Airflow")
    direct_parser.add_argument("--as-of", action="append", default=[])
    direct_parser.add_argument("--month", action="append", default=[])
    args = parser.parse_args(argv)
    return direct(args) if args.command == "direct" else run(args)


if __name__ == "__main__":
    sys.exit(main())
