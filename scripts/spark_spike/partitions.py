"""Item 4: partition replacement on Spark (Parquet tables in the warehouse dir, Hive metastore).

1. a Parquet table partitioned by a date column, in the warehouse directory;
2. INSERT OVERWRITE ... PARTITION (d = <static>) and PARTITION (d) (dynamic), with :name parameters;
3. a rerun writes the same rows (content checksum) and leaves one set of files;
4. an overwrite whose query fails mid-job: are the old rows still there (atomic per partition)?
5. an overwrite whose query returns no rows: is the partition emptied (as delete + insert does)?
6. two processes (two Connect sessions) overwriting different partitions of one table at once.

  .venv/bin/python scripts/spark_spike/partitions.py [--remote sc://127.0.0.1:15002] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta

ap = argparse.ArgumentParser()
ap.add_argument("--remote", default="sc://127.0.0.1:15002")
ap.add_argument("--rounds", type=int, default=6)
ap.add_argument("--worker", nargs=3, metavar=("MODE", "FIRST_DAY", "DAYS"), help=argparse.SUPPRESS)
args = ap.parse_args()

from pyspark.sql import SparkSession  # noqa: E402

spark = SparkSession.builder.remote(args.remote).getOrCreate()
DAY = date(2026, 10, 31)
FILL = """
select concat('ACC-', lpad(cast(id as string), 6, '0')) as account_id, cast(id as double) * 1.5 as arr
from range(0, :n)
"""


def overwrite(table: str, mode: str, d: date, n: int, fail: bool = False) -> None:
    body = (
        FILL
        if not fail
        else FILL.replace("cast(id as double) * 1.5", "case when id = 7 then raise_error('boom') else 1.5 end")
    )
    if mode == "static":
        spark.sql(
            f"insert overwrite table {table} partition (as_of_date = :d) select account_id, arr from ({body})",
            args={"d": d, "n": n},
        )
    else:  # dynamic: only the partitions the query returns are replaced
        spark.sql(
            f"insert overwrite table {table} partition (as_of_date)"
            f" select account_id, arr, :d as as_of_date from ({body})",
            args={"d": d, "n": n},
        )


def content(table: str, d: date) -> tuple[int, int]:
    row = spark.sql(
        f"select count(*), coalesce(sum(hash(account_id, arr)), 0) from {table} where as_of_date = :d", args={"d": d}
    ).collect()[0]
    return int(row[0]), int(row[1])


def files(table: str, d: date) -> list[str]:
    rows = spark.sql(f"select distinct input_file_name() from {table} where as_of_date = :d", args={"d": d}).collect()
    return sorted(r[0].rsplit("/", 1)[-1] for r in rows)


if args.worker:  # one of the concurrent writers: overwrite its own partitions, args.rounds times
    mode, first, days = args.worker[0], date.fromisoformat(args.worker[1]), int(args.worker[2])
    errors = []
    t = time.monotonic()
    for r in range(args.rounds):
        for i in range(days):
            try:
                overwrite("spike.concurrent", mode, first + timedelta(days=i), 100 + i)
            except Exception as exc:
                errors.append(f"round {r} day {i}: {str(exc).strip().splitlines()[0][:300]}")
    print(
        json.dumps(
            {"worker": first.isoformat(), "mode": mode, "seconds": round(time.monotonic() - t, 1), "errors": errors}
        )
    )
    sys.exit(0)

report: dict = {}
spark.sql("create database if not exists spike")
for mode in ("static", "dynamic"):
    t = f"spike.features_{mode}"
    spark.sql(f"drop table if exists {t}")
    spark.sql(
        f"create table {t} (account_id string, arr double, as_of_date date) using parquet partitioned by (as_of_date)"
    )
    r: dict = {}
    tick = time.monotonic()
    overwrite(t, mode, DAY, 1000)
    r["first_overwrite_s"] = round(time.monotonic() - tick, 2)
    overwrite(t, mode, DAY - timedelta(days=1), 500)
    first = content(t, DAY)
    first_files = files(t, DAY)
    tick = time.monotonic()
    overwrite(t, mode, DAY, 1000)  # the rerun
    r["rerun_s"] = round(time.monotonic() - tick, 2)
    r["rerun_identical_rows"] = content(t, DAY) == first
    r["rerun_files"] = {"before": first_files, "after": files(t, DAY)}
    r["other_partition_untouched"] = content(t, DAY - timedelta(days=1))[0] == 500
    # a failing overwrite
    try:
        overwrite(t, mode, DAY, 1000, fail=True)
        r["failing_overwrite"] = "did not fail?"
    except Exception as exc:
        r["failing_overwrite"] = str(exc).strip().splitlines()[0][:160]
    try:
        after_failure = content(t, DAY)
    except Exception as exc:  # the partition's files are gone but the file index still lists them
        r["read_after_failed_overwrite"] = str(exc).strip().splitlines()[0][:200]
        spark.sql(f"refresh table {t}")
        after_failure = content(t, DAY)
    r["rows_after_failed_overwrite"] = after_failure[0]
    r["old_rows_survive_failure"] = after_failure == first
    # an overwrite that returns no rows
    overwrite(t, mode, DAY, 0)
    r["rows_after_empty_overwrite"] = content(t, DAY)[0]
    r["partitions"] = [row[0] for row in spark.sql(f"show partitions {t}").collect()]
    location = spark.sql(f"describe formatted {t}").where("col_name = 'Location'").collect()[0][1]
    r["location"] = location
    report[mode] = r
    print(mode, json.dumps(r, default=str), flush=True)

# concurrent writers: two processes, each overwriting its own 3 partitions of one table
for mode in ("static", "dynamic"):
    spark.sql("drop table if exists spike.concurrent")
    spark.sql(
        "create table spike.concurrent (account_id string, arr double, as_of_date date)"
        " using parquet partitioned by (as_of_date)"
    )
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore",
                __file__,
                "--remote",
                args.remote,
                "--rounds",
                str(args.rounds),
                "--worker",
                mode,
                first,
                "3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for first in ("2026-01-01", "2026-02-01")
    ]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    check = {}
    for first in (date(2026, 1, 1), date(2026, 2, 1)):
        for i in range(3):
            d = first + timedelta(days=i)
            check[d.isoformat()] = content("spike.concurrent", d)[0] == 100 + i
    report[f"concurrent_{mode}"] = {
        "workers": outs,
        "every_partition_complete": all(check.values()),
        "partitions": check,
    }
    print(f"concurrent {mode}", json.dumps(report[f"concurrent_{mode}"])[:1500], flush=True)

print(json.dumps(report, indent=1, default=str))
