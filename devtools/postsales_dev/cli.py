"""Developer commands: `make run`, `make demo`, `make summary` (and the summary `make evaluate` prints).

    python -m postsales_dev.cli run [--incremental] [--as-of DATE]
                                                  run the DAG chain through Airflow (dag.test) and summarise
    python -m postsales_dev.cli summary [--as-of DATE]
                                                  print the summary of what the warehouse holds
    python -m postsales_dev.cli demo              generate the demo data if it is missing

`run` executes the real DAGs from ``dags/`` with Airflow's ``dag.test()`` against
the metadata database in ``AIRFLOW_HOME``: the same code path a scheduler runs,
in one process. The production command (`evaluate`) is the library's: ``python -m postsales.cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from postsales import paths
from postsales_dev.summary import summary_text

EXTRACT_DAGS = ("crm_extract", "usage_extract")


def ensure_demo(accounts: int, seed: int) -> Path:
    """Generate the demo source into POSTSALES_SOURCE_DIR / files.directory unless it already holds
    this size and seed; files the generator did not write are never overwritten."""
    from postsales.config import source_dir
    from postsales_dev import demo

    target = source_dir()
    status, holds = demo.demo_status(target, accounts, seed)
    if status == "current":
        print(f"demo data: {target} (exists: {holds})")
        return target
    if status == "foreign":
        print(f"demo data: {target}: {holds}")
        return target
    if status == "different":
        print(f"demo data: {target} was {holds}: regenerating")
        forget_previous_demo()
    started = time.monotonic()
    counts = demo.generate(target, accounts=accounts, seed=seed)
    print(f"demo data: {target} generated in {time.monotonic() - started:.1f}s: {json.dumps(counts, default=str)}")
    return target


def forget_previous_demo() -> None:
    """A new demo source starts from an empty warehouse.

    The warehouse would otherwise keep what it computed from the previous demo: past segment
    dates are reused as they are (segmentation history), and the CRM sync state would skip the
    values the previous demo CRM had received. The embedded DuckDB file is removed; any other
    warehouse must be emptied by its owner.
    """
    import sqlalchemy as sa

    from postsales import warehouse
    from postsales.config import warehouse_url

    url = warehouse_url()
    path = warehouse.duckdb_file(url)
    if path is None:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        raise SystemExit(
            f"demo data: regenerating the demo, but the warehouse {shown} "
            "may hold the previous demo's tables. Point POSTSALES_WAREHOUSE_URL at an empty database (or drop its "
            "raw, staging, ops and mart schemas), then run again."
        )
    removed = [p for p in (Path(path), Path(f"{path}.wal")) if p.exists()]
    for stale in removed:
        stale.unlink()
    if removed:
        print(f"demo data: removed {', '.join(map(str, removed))}: it held what the previous demo computed")


def load_dags():
    from airflow.dag_processing.dagbag import DagBag

    from postsales.dag_defaults import without_duration_alerts

    bag = DagBag(str(paths.project_root() / "dags"))
    for path, error in bag.import_errors.items():
        print(f"DAG import error in {path}: {error}", file=sys.stderr)
    return None if bag.import_errors else without_duration_alerts(bag)


def run_dag(bag, dag_id: str, conf: dict | None = None) -> bool:
    """One manual run through ``dag.test()``.

    Its logical date is the moment it starts (dag.test's default), never a date on the DAG's
    schedule: a run holding the logical date of a scheduled interval would stop the scheduler
    from creating that interval's run ("run already exists"), and dag.test makes the logical
    date the run's start, so a past one shows a run lasting weeks. A monthly DAG is pointed at
    its month through the ``month`` param instead.
    """
    started = time.monotonic()
    dag_run = bag.get_dag(dag_id).test(run_conf=conf)
    state = str(getattr(dag_run.state, "value", dag_run.state))
    print(f"{dag_id}: {state} in {time.monotonic() - started:.1f}s (run {dag_run.run_id})")
    return state == "success"


def last_complete_month(as_of: date) -> date:
    """The first day of the last calendar month complete on ``as_of`` (its own month on its last day)."""
    return ((as_of + timedelta(days=1)).replace(day=1) - timedelta(days=1)).replace(day=1)


def latest_data_date():
    """The last day with usage loaded (not after yesterday): the as-of date of the data."""
    import sqlalchemy as sa

    from postsales import warehouse

    yesterday = datetime.now(UTC).date() - timedelta(days=1)  # intervals are UTC days
    with warehouse.engine().connect() as conn:
        latest = conn.execute(
            sa.text("select max(usage_date) from staging.usage_daily where usage_date <= :yesterday"),
            {"yesterday": yesterday},
        ).scalar()
    if latest is None:
        return yesterday
    return latest if isinstance(latest, date) else date.fromisoformat(str(latest)[:10])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m postsales_dev.cli", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the DAG chain through Airflow and print a summary")
    run.add_argument(
        "--incremental", action="store_true", help="read only the current data interval (default: full refresh)"
    )
    run.add_argument("--as-of", help="segmentation as-of date (default: the last day with usage data)")
    run.add_argument("--demo-accounts", type=int, default=500)
    run.add_argument("--demo-seed", type=int, default=42)
    demo = sub.add_parser("demo", help="generate the demo data if missing")
    demo.add_argument("--accounts", type=int, default=500)
    demo.add_argument("--seed", type=int, default=42)
    summary = sub.add_parser("summary", help="print what the warehouse holds")
    summary.add_argument(
        "--as-of", help="the date whose forecast and evaluation to show (default: the latest; make evaluate's date)"
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        ensure_demo(args.accounts, args.seed)
        return 0
    if args.command == "summary":
        print(summary_text(date.fromisoformat(args.as_of) if args.as_of else None))
        return 0
    ensure_demo(args.demo_accounts, args.demo_seed)
    bag = load_dags()
    if bag is None:
        return 1
    ok = all(run_dag(bag, dag_id, {"full_refresh": not args.incremental}) for dag_id in EXTRACT_DAGS)
    if ok:  # each step runs only when every one before it succeeded
        as_of = date.fromisoformat(args.as_of) if args.as_of else latest_data_date()
        # The monthly DAGs cover the last month completed by the as-of date.
        month = {"month": f"{last_complete_month(as_of):%Y-%m}"}
        # The demo CRM is a local copy made by the demo generator: approve its first push
        # (the safety valve would otherwise stop a first push that changes every account).
        revision = {**month, "force": True, "approve_first_push": True, "approve_large_change": True}
        ok = (
            run_dag(bag, "account_segmentation", {"as_of_date": as_of.isoformat()})
            and run_dag(bag, "cohort_analysis", month)
            and run_dag(bag, "model_evaluation", month)
            and run_dag(bag, "segment_revision", revision)
        )
    print()
    print(summary_text())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
