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
sys.path.insert(0, str(ROOT / "plugins"))  # the library, as the Makefile's PYTHONPATH gives it
# The demo generator, a developer tool: for this process only; the Airflow components it starts
# get plugins/ alone (Session.base_env), as in the image.
sys.path.insert(1, str(ROOT / "devtools"))
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

    def start(self, name: str, *args: str, command: list[str] | None = None) -> None:
        """Start ``airflow <args>`` (or ``command``) as the component ``name``."""
        out = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            command or [str(VENV_BIN / "airflow"), *args],
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
        """Ask each process group to stop (SIGINT, as Ctrl-C in a terminal: ``airflow standalone``
        then stops its components and waits for them), SIGTERM after a third of ``grace``, SIGKILL
        what is left after ``grace``; returns the groups with a live process left."""
        self._sampling.set()
        deadline = time.monotonic() + grace
        for stop_signal, until in ((signal.SIGINT, time.monotonic() + grace / 3), (signal.SIGTERM, deadline)):
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, stop_signal)
            while time.monotonic() < until and any(_group_alive(proc.pid) for proc in self.procs.values()):
                self._reap()
                time.sleep(0.5)
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        until = time.monotonic() + 10
        while time.monotonic() < until and any(_group_alive(proc.pid) for proc in self.procs.values()):
            self._reap()
            time.sleep(0.5)
        self._reap()
        return [f"{name} group {proc.pid}" for name, proc in self.procs.items() if _group_alive(proc.pid)]

    def _reap(self) -> None:
        for proc in self.procs.values():
            proc.poll()

    def dump_logs(self, lines: int = 60) -> None:
        for name in self.procs:
            path = self.log_dir / f"{name}.log"
            print(f"\n===== {name} log (last {lines} lines of {path}) =====")
            print(_tail(path, lines))


def _group_alive(pgid: int) -> bool:
    """A process of the group is still running (a zombie waiting to be reaped is not)."""
    import psutil

    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


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


def _as_datetime(value: Any) -> datetime | None:
    """A metadata timestamp as a naive UTC datetime (SQLite hands them over as text)."""
    if value is None or isinstance(value, datetime):
        return value.replace(tzinfo=None) if value is not None and value.tzinfo else value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


class Metadata:
    """Read-only queries on the Airflow metadata database (PostgreSQL or SQLite)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        options = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, **options)

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        keys = ("run_id", "run_type", "state", "logical_date", "data_interval_start", "backfill_id", "start_date",
                "end_date", "conf")  # fmt: skip
        rows = self.rows(f"select {', '.join(keys)} from dag_run where dag_id = :dag_id order by id", dag_id=dag_id)
        runs = [dict(zip(keys, row, strict=True)) for row in rows]
        for run in runs:
            for key in ("logical_date", "data_interval_start", "start_date", "end_date"):
                run[key] = _as_datetime(run[key])
        return runs

    def failed_tasks(self) -> list[tuple]:
        return self.rows(
            "select dag_id, run_id, task_id, try_number from task_instance where state in ('failed', 'upstream_failed')"
        )

    def retried_tasks(self) -> list[tuple]:
        """Task instances on a try after the first, and earlier tries kept in the history table."""
        current = self.rows("select dag_id, run_id, task_id, try_number from task_instance where try_number > 1")
        earlier = self.rows("select dag_id, run_id, task_id, try_number, state from task_instance_history")
        return current + earlier

    def dispose(self) -> None:
        self.engine.dispose()


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


# --- the runs ---------------------------------------------------------------------------

TIME_SCHEDULED_DAGS = (
    "crm_extract",
    "usage_extract",
    "cohort_analysis",
    "model_evaluation",
    "segment_revision",
    "annual_segmentation_review",
)
MONTHLY_DAGS = TIME_SCHEDULED_DAGS[2:]


def month_starts(last: date, count: int) -> list[date]:
    months = []
    month = last.replace(day=1)
    for _ in range(count):
        months.append(month)
        month = (month - timedelta(days=1)).replace(day=1)
    return sorted(months)


class Session:
    """One stack's run: its directory, phase timings, components, metadata and the clean-up."""

    def __init__(self, label: str, args: argparse.Namespace) -> None:
        self.label = label
        self.args = args
        self.started = time.monotonic()
        self.tag = uuid.uuid4().hex[:8]
        self.run_dir = (ROOT / ".e2e").resolve() / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{label}-{self.tag}"
        (self.run_dir / "logs").mkdir(parents=True)
        self.phases: dict[str, float] = {}
        self.stack: Stack | None = None
        self.meta: Metadata | None = None
        self.today = datetime.now(UTC).date()
        self.yesterday = self.today - timedelta(days=1)
        # The latest complete month: unpausing a monthly DAG runs it at once.
        self.last_month = (self.today.replace(day=1) - timedelta(days=1)).replace(day=1)

    @contextlib.contextmanager
    def phase(self, name: str):
        started = time.monotonic()
        yield
        self.phases[name] = time.monotonic() - started

    def base_env(self, api_port: int) -> dict[str, str]:
        """What every component of this stack gets, besides the stack's own settings."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POSTSALES"))},
            "AIRFLOW_HOME": str(self.run_dir / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",  # shorter task wrap-up
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "POSTSALES_SOURCE_DIR": str(self.run_dir / "source"),
            "POSTSALES_DATA_DIR": str(self.run_dir / "data"),
            "POSTSALES_RETRY_DELAY_SECONDS": "5",
            "PYTHONPATH": str(ROOT / "plugins"),
            "GX_ANALYTICS_ENABLED": "false",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def start_stack(self, env: dict[str, str]) -> Stack:
        self.stack = Stack(env, self.run_dir / "logs")
        self.stack.deadline = self.started + self.args.deadline
        return self.stack

    def wait(self, what: str, condition: Callable[[], Any], timeout: float | None = None) -> Any:
        return wait_for(what, condition, self.stack, timeout or self.args.timeout)


def run_session(label: str, args: argparse.Namespace, body: Callable[[Session], None],
                cleanup: Callable[[Session], None] | None = None) -> bool:  # fmt: skip
    """Run ``body``; on any failure print the component and failed task logs; always stop the
    components, report wall time and memory, and clean up. True when it passed."""
    session = Session(label, args)

    def terminated(signum: int, _frame: Any) -> None:
        raise E2EFailure(f"stopped by signal {signum}")  # so the components are stopped too

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGINT, terminated)
    log(f"[{label}] run directory {session.run_dir}")
    ok = False
    try:
        body(session)
        ok = True
    except (E2EFailure, subprocess.TimeoutExpired) as exc:
        print(f"\nE2E FAILED ({label}): {exc}", flush=True)
    except Exception as exc:
        print(f"\nE2E FAILED ({label}) with an unexpected error: {type(exc).__name__}: {exc}", flush=True)
        import traceback

        traceback.print_exc()
    finally:
        if session.stack is not None:
            if not ok:
                with contextlib.suppress(Exception):
                    _dump_failed_task_logs(session.meta, session.run_dir / "airflow" / "logs")
                session.stack.dump_logs()
            started = time.monotonic()
            survivors = session.stack.stop()
            session.phases["stop components"] = time.monotonic() - started
            if survivors:
                print(f"E2E FAILED ({label}): processes still running after stop: {survivors}", flush=True)
                ok = False
            else:
                log(f"stopped {len(session.stack.procs)} components; no process of theirs is left")
            _report(session)
        if session.meta is not None:
            session.meta.dispose()
        from postsales import warehouse

        warehouse.dispose_all()
        if cleanup is not None:
            cleanup(session)
    log(f"[{label}] {'PASSED' if ok else 'FAILED'}")
    return ok


# --- the make airflow stack: LocalExecutor, SQLite metadata, DuckDB warehouse -------------


def run_local(args: argparse.Namespace) -> bool:
    """What a new user does: ``make run``, then ``make airflow`` and unpause everything."""
    return run_session("local", args, local_body)


def local_body(session: Session) -> None:
    args = session.args
    api_port = free_port()
    warehouse_path = session.run_dir / "data" / "warehouse.duckdb"
    env = session.base_env(api_port) | {"POSTSALES_WAREHOUSE_URL": f"duckdb:///{warehouse_path}"}
    # OpenLineage on, to a file (docs/lineage.md): phase 5 checks that its events name every table written.
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(session.run_dir / "lineage.jsonl"), "append": True}
    )
    # As `make` sets it for SQLite metadata: the CLI waits for the scheduler's write lock.
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "postsales.airflow_metadata.METADATA_CONNECT_ARGS"
    session.meta = Metadata(f"sqlite:///{session.run_dir / 'airflow' / 'airflow.db'}")
    _make_run(session, env)
    _make_airflow(session, env, api_port)
    _unpause_latest_intervals(session, env)
    cohort_months = month_starts(session.last_month - timedelta(days=1), args.months)
    evaluation_months = month_starts(session.last_month - timedelta(days=1), args.evaluation_months)
    _backfill_on_duckdb(session, env, cohort_months, evaluation_months)
    _check_runs_recorded(session, env, cohort_months, evaluation_months)


def _make_run(session: Session, env: dict[str, str]) -> None:
    """1. make run: the demo through dag.test(), as on day one; each run as long as it really took."""
    args, meta = session.args, session.meta
    with session.phase("1 make run (demo data, every DAG through dag.test)"):
        result = subprocess.run(
            ["make", "run", f"DEMO_ACCOUNTS={args.accounts}", f"PYTHON={sys.executable}"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        (session.run_dir / "logs" / "make-run.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise E2EFailure(
                f"make run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        made = {dag_id: meta.runs(dag_id) for dag_id in ("cohort_analysis", "model_evaluation", "segment_revision")}
        for dag_id, runs in made.items():
            for run in runs:
                if run["state"] != "success":
                    raise E2EFailure(f"make run: {dag_id} {run['run_id']} is {run['state']}")
                took = run["end_date"] - run["start_date"]
                if took > timedelta(hours=1):  # dag.test() given a past logical date showed month-long runs
                    raise E2EFailure(f"make run: {dag_id} {run['run_id']} shows a run of {took}")
        log(f"make run: {sum(len(r) for r in made.values())} monthly runs, each as long as it really took")


def _make_airflow(session: Session, env: dict[str, str], api_port: int) -> None:
    """2. make airflow: the scheduler, dag-processor, api-server and triggerer (airflow standalone)."""
    meta = session.meta
    with session.phase("2 make airflow, parse DAGs"):
        stack = session.start_stack(env)
        stack.start("standalone", command=["make", "airflow", f"PYTHON={sys.executable}"])
        stack.start_sampling()
        session.wait("api-server health", lambda: _healthy(api_port), 240)
        session.wait("all DAGs parsed and serialized", lambda: _all_dags_parsed(meta), 300)


def _unpause_latest_intervals(session: Session, env: dict[str, str]) -> None:
    """3. Unpause: every time-scheduled DAG runs its latest complete interval at once, and succeeds,
    with no 'run already exists' from the runs make run made; the next runs are in the future."""
    meta, stack = session.meta, session.stack
    with session.phase("3 unpause: the scheduler runs each DAG's latest interval"):
        # account_segmentation first: a paused DAG is not told of the Asset events it misses.
        for dag_id in ("account_segmentation", *TIME_SCHEDULED_DAGS):
            airflow_cli(env, "dags", "unpause", dag_id)
        expected = {dag_id: datetime.combine(session.yesterday, datetime.min.time()) for dag_id in EXTRACT_DAGS}
        expected |= {dag_id: datetime.combine(session.last_month, datetime.min.time()) for dag_id in MONTHLY_DAGS}
        for dag_id, interval_start in expected.items():
            session.wait(
                f"{dag_id}: the scheduled run for {interval_start:%Y-%m-%d}",
                runs_settled(meta, dag_id, lambda runs, start=interval_start: any(
                    run["run_type"] == "scheduled" and run["data_interval_start"] == start for run in runs
                )),
            )  # fmt: skip
        asset_triggered = runs_settled(
            meta, "account_segmentation", lambda runs: any(r["run_type"] == "asset_triggered" for r in runs)
        )
        session.wait("account_segmentation after the scheduled extracts (staging Assets)", asset_triggered)
        blocked = _tail(stack.log_dir / "standalone.log", 100_000).count("run already exists")
        if blocked:
            raise E2EFailure(f"the scheduler logged 'run already exists' {blocked} times: a make run run blocks it")
        for dag_id, interval_start in expected.items():
            [(next_start,)] = meta.rows(
                "select next_dagrun_data_interval_start from dag where dag_id = :dag_id", dag_id=dag_id
            )
            if next_start is None or _as_datetime(next_start) <= interval_start:
                raise E2EFailure(f"{dag_id}: next run {next_start} is not after the run just made ({interval_start})")
        log("every time-scheduled DAG ran its latest interval after make run; next runs are in the future")


def _backfill_on_duckdb(
    session: Session, env: dict[str, str], cohort_months: list[date], evaluation_months: list[date]
) -> None:
    """4. Backfill history on DuckDB with the defaults a user gets: zero retries."""
    meta = session.meta
    with session.phase(f"4 backfill cohorts ({len(cohort_months)} months) and evaluation ({len(evaluation_months)})"):
        for dag_id, months in (("cohort_analysis", cohort_months), ("model_evaluation", evaluation_months)):
            airflow_cli(env, "backfill", "create", "--dag-id", dag_id,
                          "--from-date", months[0].isoformat(), "--to-date", months[-1].isoformat())  # fmt: skip
        for dag_id, months in (("cohort_analysis", cohort_months), ("model_evaluation", evaluation_months)):
            session.wait(f"{dag_id}: backfill of {len(months)} months", _backfill_done(meta, dag_id, months, 1))
        retried = meta.retried_tasks()
        if retried:
            raise E2EFailure(f"tasks needed retries on the DuckDB warehouse: {retried[:20]}")
        log("no task of any run needed a retry")


def _check_runs_recorded(
    session: Session, env: dict[str, str], cohort_months: list[date], evaluation_months: list[date]
) -> None:
    """5. What the warehouse says about those runs (read once the components let go of the file)."""
    meta, stack = session.meta, session.stack
    with session.phase("5 check ops.run_summary and the partitions"):
        stack.stop()
        runs = {dag_id: meta.runs(dag_id) for dag_id in (*TIME_SCHEDULED_DAGS, "account_segmentation")}
        _check_local_warehouse(env["POSTSALES_WAREHOUSE_URL"], runs, cohort_months, evaluation_months)
        _check_lineage(session.run_dir / "lineage.jsonl", env["POSTSALES_WAREHOUSE_URL"])


def _check_lineage(events_file: Path, url: str) -> None:
    """Every warehouse table holding rows is an output of a task's OpenLineage COMPLETE event."""
    import sqlalchemy as sa

    from postsales import warehouse

    if not events_file.is_file():
        raise E2EFailure(f"no OpenLineage events in {events_file}: is the transport set for every component?")
    producers: dict[str, set[str]] = {}
    events = 0
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        events += 1
        if event.get("eventType") == "COMPLETE":
            for output in event.get("outputs", []):
                producers.setdefault(output["name"].split(".", 1)[-1], set()).add(event["job"]["name"])
    with warehouse.engine(url).connect() as conn:
        catalog = "select schema_name, table_name from duckdb_tables() where schema_name in ('raw', 'mart', 'ops')"
        tables = [f"{schema}.{table}" for schema, table in conn.execute(sa.text(catalog)) if not table.startswith("_")]
        written = [t for t in tables if conn.execute(sa.text(f"select count(*) from {t}")).scalar()]
    missing = sorted(set(written) - producers.keys())
    if missing:
        raise E2EFailure(f"OpenLineage: tables with rows that no task's COMPLETE event names as output: {missing}")
    log(f"OpenLineage: {events} events; all {len(written)} tables with rows have producing tasks")


def _check_local_warehouse(url: str, runs: dict[str, list[dict]], cohort_months: list[date],
                           evaluation_months: list[date]) -> None:  # fmt: skip
    import sqlalchemy as sa

    from postsales import warehouse

    with warehouse.engine(url).connect() as conn:
        summaries = {
            (row.dag_id, row.run_id): row
            for row in conn.execute(sa.text("select dag_id, run_id, state, retries, task_tries from ops.run_summary"))
        }
        snapshots = {row[0] for row in conn.execute(sa.text("select distinct snapshot_month from mart.mrr_movements"))}
        evaluations = {row[0] for row in conn.execute(sa.text("select distinct as_of_date from mart.health_outcomes"))}
    problems = []
    for dag_id, dag_runs in runs.items():
        for run in dag_runs:
            row = summaries.get((dag_id, run["run_id"]))
            if row is None:
                problems.append(f"{dag_id} {run['run_id']}: no ops.run_summary row")
            elif row.state != run["state"] or row.retries != 0 or not json.loads(row.task_tries):
                problems.append(f"{dag_id} {run['run_id']}: {row.state}, retries {row.retries}, {row.task_tries}")
    for month in cohort_months:
        if month not in {_as_date(m) for m in snapshots}:
            problems.append(f"mart.mrr_movements has no snapshot {month}")
    for month in evaluation_months:
        as_of = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        if as_of not in {_as_date(d) for d in evaluations}:
            problems.append(f"mart.health_outcomes has no evaluation as of {as_of}")
    if problems:
        raise E2EFailure("warehouse after the runs:\n  " + "\n  ".join(problems[:30]))
    log(f"ops.run_summary: every one of {sum(map(len, runs.values()))} runs recorded with 0 retries; "
        f"{len(cohort_months)} snapshots and {len(evaluation_months)} evaluations written")  # fmt: skip


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value if isinstance(value, date) else date.fromisoformat(
        str(value)[:10])  # fmt: skip


# --- the production stack: CeleryExecutor, PostgreSQL metadata and warehouse, Redis ---------


def run_celery(args: argparse.Namespace) -> bool:
    import psycopg
    import redis

    try:
        psycopg.connect(PG_ADMIN_DSN, connect_timeout=5).close()
    except psycopg.Error as exc:
        print(f"E2E FAILED: PostgreSQL {PG_ADMIN_DSN} is unreachable ({exc}); set POSTSALES_TEST_PG_DSN", flush=True)
        return False
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()  # no task messages left from an earlier run
    except redis.RedisError as exc:
        print(f"E2E FAILED: the Celery broker {REDIS_URL} is unreachable ({exc}); start Redis or set "
              "POSTSALES_E2E_REDIS_URL", flush=True)  # fmt: skip
        return False
    databases: list[str] = []

    def body(session: Session) -> None:
        databases.extend((f"postsales_e2e_meta_{session.tag}", f"postsales_e2e_wh_{session.tag}"))
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for name in databases:
                conn.execute(f'create database "{name}"')
        celery_body(session, *databases)

    def drop(session: Session) -> None:
        if not args.keep:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                for name in databases:
                    conn.execute(f'drop database if exists "{name}" with (force)')

    return run_session("celery", args, body, drop)


def celery_body(session: Session, meta_db: str, warehouse_db: str) -> None:
    args = session.args
    api_port = free_port()
    warehouse_url = pg_url(warehouse_db)
    env = session.base_env(api_port) | {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(meta_db),
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url(meta_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "POSTSALES_WAREHOUSE_URL": warehouse_url,
    }
    session.meta = meta = Metadata(pg_url(meta_db))
    # Unpausing cohort_analysis runs its latest complete month at once (last month); a backfill
    # over that month would skip it as already run, so backfill the months before it.
    backfill_months = month_starts(session.last_month - timedelta(days=1), args.months)
    evaluation_months = month_starts(session.last_month - timedelta(days=1), args.evaluation_months)
    _celery_setup(session, env, meta_db, warehouse_db)
    _start_celery_components(session, env, api_port)
    # 1. Day one: load the history (full refresh), then the Asset chain.
    _initial_load(session, env)
    as_of_dates = _asset_chain(session, env, warehouse_url)
    check_run_summaries(meta, warehouse_url, ("crm_extract", "usage_extract", "account_segmentation"))
    _parallel_backfills(session, env, warehouse_url, backfill_months, evaluation_months)
    backfilled, segments = _compare_with_direct(session, env, warehouse_url, as_of_dates, backfill_months)
    _reprocess_backfill(session, env, warehouse_url, as_of_dates, backfill_months, backfilled, segments)
    check_run_summaries(meta, warehouse_url, ("cohort_analysis", "model_evaluation"))


def _celery_setup(session: Session, env: dict[str, str], meta_db: str, warehouse_db: str) -> None:
    """The demo source through yesterday, the metadata database migrated, the pool of two writers."""
    args, yesterday = session.args, session.yesterday
    with session.phase("setup (demo data, db migrate)"):
        log(f"metadata {meta_db}, warehouse {warehouse_db}, broker {REDIS_URL}")
        from postsales_dev import demo

        counts = demo.generate(Path(env["POSTSALES_SOURCE_DIR"]), accounts=args.accounts, seed=42, as_of=yesterday)
        log(f"demo source through {yesterday}: {json.dumps(counts, default=str)[:200]}")
        airflow_cli(env, "db", "migrate", timeout=600)
        airflow_cli(env, "pools", "set", "postsales_warehouse", "2", "warehouse writers (PostgreSQL)")


def _start_celery_components(session: Session, env: dict[str, str], api_port: int) -> None:
    """Every Airflow component as its own process, up once the api-server answers and every DAG is parsed."""
    meta = session.meta
    with session.phase("start components, parse DAGs"):
        stack = session.start_stack(env)
        stack.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        stack.start("scheduler", "scheduler")
        stack.start("dag-processor", "dag-processor")
        stack.start("triggerer", "triggerer")
        stack.start("celery-worker", "celery", "worker", "--concurrency", "2", "--without-gossip", "--without-mingle")
        stack.start_sampling()
        session.wait("api-server health", lambda: _healthy(api_port), 180)
        dag_ids = session.wait("all DAGs parsed and serialized", lambda: _all_dags_parsed(meta), 300)
        log(f"DAGs: {', '.join(sorted(dag_ids))}")


def _initial_load(session: Session, env: dict[str, str]) -> None:
    """Each extract's scheduled latest interval, then a full refresh of the history, as on day one."""
    meta = session.meta
    with session.phase("1a initial load (full refresh)"):
        for dag_id in EXTRACT_DAGS:
            airflow_cli(env, "dags", "unpause", dag_id)
            airflow_cli(env, "dags", "trigger", dag_id, "--conf", json.dumps({"full_refresh": True}))
            session.wait(
                f"{dag_id}: the scheduled latest interval and the full refresh",
                runs_settled(meta, dag_id, lambda runs: len(runs) >= 2),
            )


def _asset_chain(session: Session, env: dict[str, str], warehouse_url: str) -> list[date]:
    """The extracts triggered as the UI does: segmentation must follow through the staging Assets,
    never triggered itself. Returns the as-of dates segmented."""
    meta, yesterday = session.meta, session.yesterday
    with session.phase("1b Asset chain extract -> segmentation"):
        airflow_cli(env, "dags", "unpause", "account_segmentation")
        chain_start = datetime.now(UTC)
        for dag_id in EXTRACT_DAGS:  # no logical date, as the UI triggers: the last complete day
            airflow_cli(env, "dags", "trigger", dag_id)
            session.wait(f"{dag_id}: yesterday's interval", runs_settled(meta, dag_id, lambda runs: len(runs) >= 3))
        seg_runs = session.wait(
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
    return as_of_dates


def _parallel_backfills(
    session: Session,
    env: dict[str, str],
    warehouse_url: str,
    backfill_months: list[date],
    evaluation_months: list[date],
) -> None:
    """2. The cohort snapshots and the model evaluation backfilled at once: on PostgreSQL the pool
    has two slots, so their tasks must run side by side, and leave no duplicate segment row."""
    meta = session.meta
    with session.phase(f"2 backfill cohorts ({len(backfill_months)} months) and evaluation "
                       f"({len(evaluation_months)})"):  # fmt: skip
        for dag_id, months in (("cohort_analysis", backfill_months), ("model_evaluation", evaluation_months)):
            airflow_cli(env, "dags", "unpause", dag_id)
            airflow_cli(env, "backfill", "create", "--dag-id", dag_id,
                        "--from-date", months[0].isoformat(), "--to-date", months[-1].isoformat())  # fmt: skip
        for dag_id, months in (("cohort_analysis", backfill_months), ("model_evaluation", evaluation_months)):
            session.wait(f"{dag_id}: backfill of {len(months)} months", _backfill_done(meta, dag_id, months, 1))
        overlap = _max_running_at_once(meta, ("cohort_analysis", "model_evaluation"))
        if overlap < 2:
            raise E2EFailure(f"the backfills never ran two warehouse tasks at once on PostgreSQL (max {overlap})")
        log(f"backfills ran up to {overlap} warehouse tasks at once")
        duplicates = _duplicate_segment_rows(warehouse_url)
        if duplicates:
            raise E2EFailure(f"mart.account_segments holds duplicate rows after the parallel backfills: {duplicates}")


def _compare_with_direct(
    session: Session, env: dict[str, str], warehouse_url: str, as_of_dates: list[date], backfill_months: list[date]
) -> tuple[dict, dict]:
    """3. Each month's snapshot exists and equals the direct computation (no Airflow, on DuckDB),
    and so do the segments and forecasts. Returns (snapshots, segments) as read, for step 4."""
    args = session.args
    with session.phase("3 compare with the direct computation"):
        direct_url = f"duckdb:///{session.run_dir / 'direct.duckdb'}"
        direct_env = {**env, "POSTSALES_WAREHOUSE_URL": direct_url,
                      "POSTSALES_DATA_DIR": str(session.run_dir / "direct")}  # fmt: skip
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
    return backfilled, segments


def _reprocess_backfill(
    session: Session,
    env: dict[str, str],
    warehouse_url: str,
    as_of_dates: list[date],
    backfill_months: list[date],
    backfilled: dict,
    segments: dict,
) -> None:
    """4. The backfill reprocessed: every month reruns and the tables do not change."""
    meta = session.meta
    with session.phase("4 reprocess backfill, check idempotency"):
        airflow_cli(env, "backfill", "create", "--dag-id", "cohort_analysis", "--from-date",
                    backfill_months[0].isoformat(), "--to-date", backfill_months[-1].isoformat(),
                    "--reprocess-behavior", "completed")  # fmt: skip
        rerun = session.wait("reprocessed backfill", _backfill_done(meta, "cohort_analysis", backfill_months, 2))
        if any(clear_number < 1 for *_, clear_number in rerun):
            raise E2EFailure(f"the reprocessing backfill did not rerun every month: {rerun}")
        compare(
            "cohort snapshots after reprocessing vs before", read_cohorts(warehouse_url, backfill_months), backfilled
        )
        compare("segments after reprocessing vs before", read_segments(warehouse_url, as_of_dates), segments)


def _max_running_at_once(meta: Metadata, dag_ids: tuple[str, ...]) -> int:
    """The most task instances of ``dag_ids`` in the warehouse pool that ran at the same time."""
    rows = meta.rows(
        "select start_date, end_date from task_instance where pool = 'postsales_warehouse' and dag_id = any(:dag_ids)"
        " and start_date is not null and end_date is not null",
        dag_ids=list(dag_ids),
    )
    events = sorted([(_as_datetime(start), 1) for start, _ in rows] + [(_as_datetime(end), -1) for _, end in rows])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _duplicate_segment_rows(url: str) -> list[tuple]:
    import sqlalchemy as sa

    from postsales import warehouse

    with warehouse.engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(
            "select as_of_date, account_id, count(*) from mart.account_segments"
            " group by as_of_date, account_id having count(*) > 1 limit 5"
        ))]  # fmt: skip


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


def _backfill_done(meta: Metadata, dag_id: str, months: list[date], number: int) -> Callable[[], list[tuple] | None]:
    """A condition: the ``number``-th backfill of ``dag_id`` completed with a successful run per month.

    Reprocessing does not create runs: it clears the existing ones (``clear_number`` goes up).
    """

    def check() -> list[tuple] | None:
        backfills = meta.rows("select id, completed_at from backfill where dag_id = :dag_id order by id", dag_id=dag_id)
        if len(backfills) < number:
            return None
        backfill_id, completed_at = backfills[number - 1]
        runs = meta.rows(
            "select r.run_id, r.state, r.data_interval_start, r.clear_number from backfill_dag_run b"
            " join dag_run r on r.id = b.dag_run_id where b.backfill_id = :backfill_id",
            backfill_id=backfill_id,
        )
        failed = [run[0] for run in runs if run[1] == "failed"]
        if failed:
            raise E2EFailure(f"{dag_id} backfill {backfill_id}: runs failed: {failed}")
        if completed_at is None or any(run[1] != "success" for run in runs):
            return None
        missing = [month for month in months if month not in {_as_datetime(run[2]).date() for run in runs}]
        if missing:
            raise E2EFailure(f"{dag_id} backfill {backfill_id} completed without runs for {missing}")
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
                " duration_seconds, retries from ops.run_summary"
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
            elif row.retries != 0:  # a rerun (the reprocessed backfill) is not a retry
                problems.append(f"{dag_id} {run['run_id']}: {row.retries} retries")
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


def _report(session: Session) -> None:
    stack, mib = session.stack, 1024 * 1024
    wall = time.monotonic() - session.started
    lines = ["", f"e2e ({session.label}) wall time by phase:"]
    lines += [f"  {name:<60}{seconds:>8.1f} s" for name, seconds in session.phases.items()]
    lines.append(f"  {'total':<60}{wall:>8.1f} s")
    lines.append("peak memory (RSS of each component's process tree, sampled every 0.5 s):")
    lines += [f"  {name:<60}{rss / mib:>8.0f} MiB" for name, rss in stack.peak_rss.items()]
    lines.append(f"  {'all components at once (peak of the sum)':<60}{stack.peak_total_rss / mib:>8.0f} MiB")
    print("\n".join(lines), flush=True)
    summary = {
        "stack": session.label,
        "wall_seconds": round(wall, 1),
        "phases": {k: round(v, 1) for k, v in session.phases.items()},
        "peak_rss_mib": {k: round(v / mib) for k, v in stack.peak_rss.items()},
        "peak_total_rss_mib": round(stack.peak_total_rss / mib),
    }
    (session.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


STACKS = {"local": run_local, "celery": run_celery}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--stack", choices=[*STACKS, "all"], default="all",
                        help="local: make run + make airflow (LocalExecutor, SQLite, DuckDB); celery: CeleryExecutor, "
                             "PostgreSQL, Redis; all: both, one after the other (default)")  # fmt: skip
    parser.add_argument("--accounts", type=int, default=200, help="demo accounts (default %(default)s)")
    parser.add_argument("--months", type=int, default=12, help="cohort months to backfill (default %(default)s)")
    parser.add_argument("--evaluation-months", type=int, default=6,
                        help="model_evaluation months to backfill (default %(default)s)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each step")
    parser.add_argument("--deadline", type=float, default=2400, help="seconds for each stack's whole run")
    parser.add_argument("--keep", action="store_true", help="keep the metadata and warehouse databases")
    direct_parser = sub.add_parser("direct", help="internal: compute the expected tables without Airflow")
    direct_parser.add_argument("--as-of", action="append", default=[])
    direct_parser.add_argument("--month", action="append", default=[])
    args = parser.parse_args(argv)
    if args.command == "direct":
        return direct(args)
    results = {name: STACKS[name](args) for name in (STACKS if args.stack == "all" else [args.stack])}
    log("; ".join(f"{name}: {'PASSED' if ok else 'FAILED'}" for name, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
