"""The summary `make run`, `make summary` and `make evaluate` print: what the warehouse holds.

Rows read, loaded and quarantined per table with the top quarantine reasons, the segment
distribution with the data gaps, the tier-migration flags, the cohort retention, the model
evaluation, the latest CRM sync, the latest run of each DAG and the Data Docs. A developer's
view of any warehouse (``POSTSALES_WAREHOUSE_URL``); the library computes everything it shows.
"""

from __future__ import annotations

import json
from datetime import date


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
