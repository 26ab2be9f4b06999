"""Baselines measured against the same warehouse and source as the pipeline stages.

    python bench/baselines.py floor_scan          one DuckDB scan of the staging inputs
    python bench/baselines.py floor_load          source files -> DuckDB tables, nothing else
    python bench/baselines.py usage_write_floor   the usage files written to a DuckDB file as the extract
                                                  must keep them: typed (staging) and as JSON text (raw)
    python bench/baselines.py mrr_playbook --snapshot-month YYYY-MM-01
                                                  the dbt-labs/mrr-playbook movements, plain SQL
    python bench/baselines.py our_mrr --snapshot-month YYYY-MM-01
                                                  our mrr_monthly + mrr_movements queries alone
    python bench/baselines.py mrr_agreement --snapshot-month YYYY-MM-01
                                                  totals of ours (mart) vs the playbook's, per month

Each prints one JSON line with ``seconds`` (the query, connection excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins"))


def duck():
    import duckdb

    from postsales import warehouse

    # The pipeline's memory cap, so baselines and stages run under the same limit.
    url = os.environ["POSTSALES_WAREHOUSE_URL"]
    return duckdb.connect(url.removeprefix("duckdb:///"), config={"memory_limit": warehouse.duckdb_memory_limit()})


def bound(sql: str, **params) -> tuple[str, list]:
    """`:name` parameters to DuckDB's `$name`."""
    for name in params:
        sql = sql.replace(f":{name}", f"${name}")
    return sql, params


def floor_scan() -> dict:
    con = duck()
    sql = (HERE / "baselines" / "floor_scan.sql").read_text()
    started = time.perf_counter()
    row = con.execute(sql).fetchone()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "usage_rows": row[0]}


def floor_load() -> dict:
    """Read the source files into DuckDB tables: the least an extract/load must do."""
    import duckdb

    source = Path(os.environ["POSTSALES_SOURCE_DIR"])
    con = duckdb.connect()  # in memory: no validation, no raw copy, no lineage
    started = time.perf_counter()
    for entity in ("accounts", "contracts", "survey_responses"):
        con.execute(f"create table {entity} as select * from read_csv('{source / entity}.csv', all_varchar = true)")
    con.execute(f"create table usage_daily as select * from read_parquet('{source}/usage_daily/*.parquet')")
    seconds = time.perf_counter() - started
    rows = con.execute("select count(*) from usage_daily").fetchone()[0]
    return {"seconds": seconds, "usage_rows": rows}


def usage_write_floor() -> dict:
    """The least a usage extract that keeps raw and staging writes: the files read once into a
    typed table and once into a raw table (key, every value as text in a JSON payload, file name),
    both in a fresh DuckDB file under the pipeline's memory cap, each committed. No gate, no
    typing of text, no quarantine: what is left when everything else costs nothing."""
    import duckdb

    from postsales import warehouse

    source = Path(os.environ["POSTSALES_SOURCE_DIR"])
    url = os.environ["POSTSALES_WAREHOUSE_URL"]
    path = Path(url.removeprefix("duckdb:///")).with_name("usage_write_floor.duckdb")
    files_of_it = (path, path.with_name(path.name + ".wal"))
    for leftover in files_of_it:
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(path), config={"memory_limit": warehouse.duckdb_memory_limit()})
    files = f"read_parquet('{source}/usage_daily/*.parquet', filename = true)"
    columns = ["account_id", "usage_date", "active_users", "licensed_seats", "events", "features_used"]
    payload = ", ".join(f"'{name}', {name}::varchar" for name in columns)
    try:
        started = time.perf_counter()
        con.execute(f"create table staging_usage as select {', '.join(columns)}, filename from {files}")
        typed = time.perf_counter() - started
        started = time.perf_counter()
        con.execute(
            "create table raw_usage as select account_id || '|' || usage_date::varchar as record_key, "
            f"json_object({payload})::varchar as payload, filename from {files}"
        )
        raw = time.perf_counter() - started
        rows = con.execute("select count(*) from staging_usage").fetchone()[0]
    finally:
        con.close()
        for leftover in files_of_it:
            leftover.unlink(missing_ok=True)
    return {"seconds": typed + raw, "staging_seconds": typed, "raw_seconds": raw, "usage_rows": rows}


def create_temp_tables(con, tables: list[tuple[str, str, dict]]) -> dict:
    """Create each (name, query, params) as a temp table, timed together; rows of the first."""
    started = time.perf_counter()
    for name, sql, params in tables:
        con.execute(f"create or replace temp table {name} as {sql}", params)
    seconds = time.perf_counter() - started
    rows = con.execute(f"select count(*) from {tables[0][0]}").fetchone()[0]
    return {"seconds": seconds, "rows": rows}


def playbook_table(snapshot_month: date) -> tuple[str, str, dict]:
    sql, params = bound((HERE / "baselines" / "mrr_playbook.sql").read_text(), snapshot_month=snapshot_month)
    return "playbook_mrr", sql, params


def mrr_playbook(snapshot_month: date) -> dict:
    return create_temp_tables(duck(), [playbook_table(snapshot_month)])


def our_mrr(snapshot_month: date) -> dict:
    """Our two MRR queries (include/sql/cohorts/mrr_monthly.sql, mrr_movements.sql) into temp tables."""
    from postsales import warehouse

    con = duck()
    monthly, params = bound(warehouse.sql_text("cohorts", "mrr_monthly"), snapshot_month=snapshot_month)
    movements, movement_params = bound(warehouse.sql_text("cohorts", "mrr_movements"), snapshot_month=snapshot_month)
    # mrr_movements reads mart.mrr_monthly: point it at the temp table just built.
    movements = movements.replace("mart.mrr_monthly", "bench_mrr_monthly")
    return create_temp_tables(
        con, [("bench_mrr_monthly", monthly, params), ("bench_mrr_movements", movements, movement_params)]
    )


def mrr_agreement(snapshot_month: date) -> dict:
    """Per month: total MRR and customers, and accounts per movement, ours vs the playbook's."""
    con = duck()
    create_temp_tables(con, [playbook_table(snapshot_month)])
    compare = """
        with ours as (
            select month, round(sum(mrr), 2) as mrr, count(case when arr > 0 then 1 end) as customers,
                count(case when movement = 'new' then 1 end) as new,
                count(case when movement = 'churn' then 1 end) as churn,
                count(case when movement = 'reactivation' then 1 end) as reactivation,
                count(case when movement = 'expansion' then 1 end) as expansion,
                count(case when movement = 'contraction' then 1 end) as contraction
            from mart.mrr_monthly where snapshot_month = $snapshot_month group by month
        ),
        theirs as (
            select date_month as month, round(sum(mrr), 2) as mrr, count(case when mrr > 0 then 1 end) as customers,
                count(case when change_category = 'new' then 1 end) as new,
                count(case when change_category = 'churn' then 1 end) as churn,
                count(case when change_category = 'reactivation' then 1 end) as reactivation,
                count(case when change_category = 'upgrade' then 1 end) as expansion,
                count(case when change_category = 'downgrade' then 1 end) as contraction
            from playbook_mrr group by date_month
        )
        select coalesce(ours.month, theirs.month) as month,
            ours.mrr, theirs.mrr, ours.customers, theirs.customers,
            ours.new, theirs.new, ours.churn, theirs.churn, ours.reactivation, theirs.reactivation,
            ours.expansion, theirs.expansion, ours.contraction, theirs.contraction
        from ours full outer join theirs on ours.month = theirs.month
        order by 1
    """
    rows = con.execute(compare, {"snapshot_month": snapshot_month}).fetchall()
    names = ("mrr", "customers", "new", "churn", "reactivation", "expansion", "contraction")
    differing = {name: 0 for name in names}
    worst = {name: 0.0 for name in names}
    examples = []
    for row in rows:
        for i, name in enumerate(names):
            ours, theirs = row[1 + 2 * i], row[2 + 2 * i]
            if ours != theirs:
                differing[name] += 1
                gap = abs(float(ours or 0) - float(theirs or 0))
                worst[name] = max(worst[name], gap)
                if len(examples) < 5:
                    examples.append({"month": str(row[0]), "measure": name, "ours": ours, "playbook": theirs})
    last = rows[-1]
    return {
        "months": len(rows),
        "months_differing": differing,
        "largest_difference": worst,
        "examples": examples,
        "snapshot_month_totals": {
            "ours": {n: last[1 + 2 * i] for i, n in enumerate(names)},
            "playbook": {n: last[2 + 2 * i] for i, n in enumerate(names)},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("--snapshot-month", type=date.fromisoformat)
    args = parser.parse_args()
    without_arguments = {"floor_scan": floor_scan, "floor_load": floor_load, "usage_write_floor": usage_write_floor}
    if args.kind in without_arguments:
        result = without_arguments[args.kind]()
    else:
        funcs = {"mrr_playbook": mrr_playbook, "our_mrr": our_mrr, "mrr_agreement": mrr_agreement}
        result = funcs[args.kind](args.snapshot_month)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
