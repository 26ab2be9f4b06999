"""Command line for `make run` and friends.

    python -m postsales.cli run [--incremental] [--as-of DATE]
                                                  run the DAG chain through Airflow (dag.test) and summarise
    python -m postsales.cli evaluate --as-of DATE forecast, backtest, health vs outcome, review and report
                                                  for any warehouse (POSTSALES_WAREHOUSE_URL), without Airflow
    python -m postsales.cli summary               print the summary of what the warehouse holds
    python -m postsales.cli demo                  generate the demo data if it is missing

`run` executes the real DAGs from ``dags/`` with Airflow's ``dag.test()`` against
the metadata database in ``AIRFLOW_HOME``: the same code path a scheduler runs,
in one process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from postsales import paths

EXTRACT_DAGS = ("crm_extract", "usage_extract")


def ensure_demo(accounts: int, seed: int) -> Path:
    """Generate the demo source into POSTSALES_SOURCE_DIR / files.directory unless it already holds
    this size and seed; files the generator did not write are never overwritten."""
    from postsales import demo
    from postsales.config import source_dir

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


def summary_text(evaluated: date | None = None) -> str:
    """What the warehouse holds; forecasts and evaluation of ``evaluated`` (default: the latest)."""
    import sqlalchemy as sa

    from postsales import warehouse
    from postsales.config import warehouse_url

    url = warehouse_url()
    eng = warehouse.engine(url)
    lines = [f"warehouse: {sa.make_url(url).render_as_string(hide_password=True)}"]
    with eng.connect() as conn:
        runs = warehouse.query(conn, "reports", "latest_extract_runs")
        staged = {row.source_table: row.staged_rows for row in warehouse.query(conn, "reports", "staged_rows")}
        reasons = warehouse.query(conn, "reports", "quarantine_by_reasons")
    lines.append(f"{'table':<18}{'read':>10}{'loaded':>10}{'quarantined':>13}{'in staging':>12}")
    for run in runs:
        lines.append(
            f"{run.source_table:<18}{run.rows_read:>10}{run.rows_loaded:>10}{run.rows_quarantined:>13}"
            f"{staged.get(run.source_table, 0):>12}"
        )
    from postsales.monitoring import all_reasons_query, more_reasons_label, top_reasons

    by_table: dict[str, list[tuple[list[str], int]]] = {}
    for row in reasons:
        by_table.setdefault(row.source_table, []).append((json.loads(row.failed_expectations), row.quarantined_rows))
    if by_table:
        lines.append("top quarantine reasons (ops.quarantine):")
        left_out = False
        for table, groups in by_table.items():
            listed, more, more_rows = top_reasons(groups, 3)
            lines.extend(f"  {table}: {label} ({count})" for label, count in listed)
            if more:
                lines.append(f"  {table}: {more_reasons_label(more)} ({more_rows} row{'s' if more_rows > 1 else ''})")
                left_out = True
        if left_out:
            lines.append(f"  every reason: {all_reasons_query()}")
    lines.extend(segmentation_lines(eng))
    lines.extend(forecast_lines(eng, evaluated))
    lines.extend(cohort_lines(eng))
    lines.extend(evaluation_lines(eng, evaluated))
    lines.extend(crm_lines(eng))
    lines.extend(run_summary_lines(eng))
    docs = [run.data_docs for run in runs if run.data_docs]
    if docs:
        from postsales.validate.data_docs import docs_root

        lines.append("Great Expectations Data Docs:")
        lines.extend(f"  {doc}" for doc in docs)
        root = docs_root()
        lines.append(f"  every kept run: {root / 'index.html'}; newest per table: {root / 'latest'}/<table>/index.html")
    return "\n".join(lines)


def run_summary_lines(eng) -> list[str]:
    from postsales.monitoring import latest_summaries, summary_line

    with eng.connect() as conn:
        rows = latest_summaries(conn)
    return ["latest run of each DAG (ops.run_summary):", *(f"  {summary_line(row)}" for row in rows)] if rows else []


def segmentation_lines(eng) -> list[str]:
    import sqlalchemy as sa

    from postsales import warehouse

    if not sa.inspect(eng).has_table("account_segments", schema="mart"):
        return []
    from postsales.reports.data_gaps import data_gaps, summary_lines

    with eng.connect() as conn:
        rows = warehouse.query(conn, "reports", "segment_distribution")
        gaps = data_gaps(conn)
    if not rows:
        return []
    segmented = sum(row.account_count for row in rows if row.dimension == "quadrant")
    lines = [f"segmentation as of {rows[0].as_of_date} (mart.account_segments): {segmented} accounts"]
    by_dimension: dict[str, list[str]] = {}
    for row in rows:
        by_dimension.setdefault(row.dimension, []).append(f"{row.segment_name} {row.account_count}")
    for dimension in ("quadrant", "value_tier", "lifecycle_stage", "adoption_segment", "nps_category",
                      "health_band", "engagement_model", "case_study_candidate"):  # fmt: skip
        if dimension in by_dimension:
            lines.append(f"  {dimension:<21}{', '.join(by_dimension[dimension])}")
    return lines + summary_lines(gaps)


def _pct(value) -> str:
    """A rate for the summary; n/a where there is nothing to divide by (no contracts, no cohort)."""
    return "n/a" if value is None else f"{value:.1%}"


def _money(value) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _latest(conn, table: str):
    import sqlalchemy as sa

    value = conn.execute(sa.text(f"select max(as_of_date) from mart.{table}")).scalar()
    return value if value is None or isinstance(value, date) else date.fromisoformat(str(value)[:10])


def forecast_lines(eng, as_of: date | None = None) -> list[str]:
    import sqlalchemy as sa

    from postsales.forecast import FLAG_NAMES, account_forecasts

    if not sa.inspect(eng).has_table("account_forecasts", schema="mart"):
        return []
    with eng.connect() as conn:
        as_of = as_of or _latest(conn, "account_forecasts")
        if as_of is None:
            return []
        table = account_forecasts
        counts = conn.execute(
            sa.select(*(sa.func.sum(sa.case((table.c[f], 1), else_=0)) for f in FLAG_NAMES), sa.func.count()).where(
                table.c.as_of_date == as_of
            )
        ).one()
    flags = ", ".join(f"{flag} {int(count or 0)}" for flag, count in zip(FLAG_NAMES, counts, strict=False))
    return [f"tier-migration forecast as of {as_of} (mart.account_forecasts, {counts[-1]} accounts): {flags}"]


def evaluation_lines(eng, as_of: date | None = None) -> list[str]:
    import sqlalchemy as sa

    from postsales.forecast import forecast_backtest
    from postsales.outcomes import ALL_BANDS, health_outcomes
    from postsales.reports.evaluation_report import report_path

    if not sa.inspect(eng).has_table("health_outcomes", schema="mart"):
        return []
    with eng.connect() as conn:
        as_of = as_of or _latest(conn, "health_outcomes")
        if as_of is None:
            return []
        outcomes = conn.execute(
            sa.select(health_outcomes)
            .where(health_outcomes.c.as_of_date == as_of, health_outcomes.c.health_band == ALL_BANDS)
            .order_by(health_outcomes.c.horizon_months)
        ).all()
        backtest = conn.execute(
            sa.select(forecast_backtest)
            .where(forecast_backtest.c.as_of_date == as_of)
            .order_by(forecast_backtest.c.horizon_months)
        ).all()

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    # No contract at all (a header-only contracts.csv): no account-date, every rate is n/a.
    lines = [f"evaluation as of {as_of} (mart.health_outcomes, mart.forecast_backtest):"]
    for row in outcomes:
        lines.append(
            f"  health AUC within {row.horizon_months:>2} months over {row.account_periods} account-dates: "
            f"churn {fmt(row.auc_churn)}, churn or contraction {fmt(row.auc_churn_or_contraction)}; "
            f"churn rate {_pct(row.churn_rate)}"
        )
    for row in sorted(backtest, key=lambda r: (r.predicted_positive is None, r.horizon_months)):
        if row.predicted_positive is not None:
            lines.append(
                f"  backtest {row.target} (+{row.horizon_months}m, {row.accounts} account-dates): "
                f"precision {fmt(row.precision)}, recall {fmt(row.recall)} ({row.true_positive} of "
                f"{row.predicted_positive} flagged, {row.actual_positive} happened)"
            )
        else:
            lines.append(
                f"  backtest {row.target}: projected tier right {fmt(row.accuracy)} vs "
                f"{fmt(row.baseline_accuracy)} for 'tier unchanged'"
            )
    path = report_path(as_of)
    if path.exists():
        lines.append(f"  report: {path}")
    return lines


def crm_lines(eng) -> list[str]:
    import sqlalchemy as sa

    from postsales.crm.sync import crm_sync_runs, report_path

    if not sa.inspect(eng).has_table("crm_sync_runs", schema="ops"):
        return []
    with eng.connect() as conn:
        pushes = sa.select(crm_sync_runs).where(crm_sync_runs.c.mode != "dry_run")
        run = conn.execute(pushes.order_by(crm_sync_runs.c.finished_at.desc())).first()
    if run is None:
        return []
    report = json.loads(run.report)
    skipped = ", ".join(f"{reason.replace('_', ' ')} {v['count']}" for reason, v in report["skipped"].items())
    return [
        f"CRM sync ({run.mode}) to {run.target} as of {run.as_of_date} (ops.crm_sync_runs, ops.crm_sync_log):",
        f"  {run.fields_changed} fields changed on {run.accounts_changed} of {run.accounts_considered} accounts: "
        f"{run.fields_succeeded} pushed, {run.fields_failed} failed; {run.write_calls} write calls"
        + (f"; {report['nulls_not_written']} nulls not written" if report.get("nulls_not_written") else "")
        + (f"; {n} Unknown values not written over CRM values" if (n := report.get("unknowns_not_written")) else ""),
        f"  skipped accounts: {skipped or 'none'}",
        f"  diff report: {report_path(run.run_id)}",
    ]


def cohort_lines(eng) -> list[str]:
    import sqlalchemy as sa

    from postsales import warehouse
    from postsales.reports.cohort_report import report_path

    if not sa.inspect(eng).has_table("cohort_retention", schema="mart"):
        return []
    with eng.connect() as conn:
        snapshot = conn.execute(sa.text("select max(snapshot_month) from mart.cohort_retention")).scalar()
        if snapshot is None:
            return []
        snapshot = snapshot if isinstance(snapshot, date) else date.fromisoformat(str(snapshot)[:10])
        retention = warehouse.query(conn, "reports", "retention_at_months", snapshot_month=snapshot)
        movements = warehouse.query(conn, "reports", "mrr_movement_history", snapshot_month=snapshot)
    lines = [f"cohorts, snapshot {snapshot:%Y-%m} (mart.cohort_retention):"]
    if movements:
        latest = movements[-1]
        lines.append(
            f"  MRR {_money(latest.mrr)} from {latest.customers} customers; net new MRR {_money(latest.net_new_mrr)}"
        )
    for row in retention:
        lines.append(
            f"  {row.months_since_start:>2}-month retention over {row.cohorts} cohorts ({row.customers} accounts): "
            f"logo {_pct(row.logo_retention)}, GRR {_pct(row.grr)}, NRR {_pct(row.nrr)}"
        )
    path = report_path(snapshot)
    if path.exists():
        lines.append(f"  report: {path}")
    return lines


def run_evaluation(as_of: date) -> None:
    """What the model_evaluation DAG does for one date, in this process (no Airflow needed): the
    same steps (postsales.evaluation.STEPS) and report; a date before the data is not refused."""
    from postsales import evaluation

    for step in evaluation.STEPS:
        started = time.monotonic()
        step(as_of)
        print(f"{step.__name__} as of {as_of}: {time.monotonic() - started:.1f}s")
    print(f"report: {evaluation.write_report(as_of)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m postsales.cli", description=__doc__.splitlines()[0])
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
    sub.add_parser("summary", help="print what the warehouse holds")
    evaluate = sub.add_parser("evaluate", help="model evaluation as of a date, straight against the warehouse")
    evaluate.add_argument("--as-of", required=True, help="evaluation date E (YYYY-MM-DD), e.g. a month's last day")
    args = parser.parse_args(argv)

    if args.command == "demo":
        ensure_demo(args.accounts, args.seed)
        return 0
    if args.command == "summary":
        print(summary_text())
        return 0
    if args.command == "evaluate":
        as_of = date.fromisoformat(args.as_of)
        run_evaluation(as_of)
        print(summary_text(as_of))
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
