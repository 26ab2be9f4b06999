"""Item 1: start a Spark Connect server from the pip package, time it until `select 1` answers,
then the latency of `select 1` round trips and the server JVM's RSS.

    .venv/bin/python scripts/spark_spike/measure_connect.py DIR [--catalog hive|in-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--catalog", default="hive")
    ap.add_argument("--port", default="15002")
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    env = dict(os.environ, SPARK_CATALOG=args.catalog)
    started = time.monotonic()
    subprocess.run([str(HERE / "connect_server.sh"), "start", args.dir, args.port], check=True, env=env)
    launched = time.monotonic() - started
    import socket

    while True:  # the port first: the Connect client's own retries back off for seconds
        try:
            socket.create_connection(("127.0.0.1", int(args.port)), timeout=1).close()
            break
        except OSError as exc:
            if time.monotonic() - started > 180:
                raise SystemExit("not listening after 180 s") from exc
            time.sleep(0.1)
    listening = time.monotonic() - started
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(f"sc://127.0.0.1:{args.port}").getOrCreate()
    spark.sql("select 1").collect()
    ready = time.monotonic() - started
    t = time.perf_counter()
    spark.sql("show tables in default").collect()  # first catalog access: the metastore is opened (created)
    first_catalog_s = time.perf_counter() - t
    lat = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        spark.sql("select 1").collect()
        lat.append((time.perf_counter() - t) * 1000)
    lat_param = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        spark.sql("select :x as x", args={"x": 1}).collect()
        lat_param.append((time.perf_counter() - t) * 1000)
    pid = int(Path(args.dir, "spark-spike-org.apache.spark.sql.connect.service.SparkConnectServer-1.pid").read_text())
    result = {
        "catalog": args.catalog,
        "start_script_returned_s": round(launched, 2),
        "port_listening_s": round(listening, 2),
        "first_select_1_answered_s": round(ready, 2),
        "first_catalog_access_s": round(first_catalog_s, 2),
        "select_1_ms": {
            "first_after_ready": round(lat[0], 1),
            "median": round(statistics.median(lat), 1),
            "p90": round(sorted(lat)[int(0.9 * len(lat))], 1),
            "min": round(min(lat), 1),
        },
        "select_param_ms_median": round(statistics.median(lat_param), 1),
        "server_rss_mib_idle": round(rss_mib(pid), 0),
        "client_rss_mib": round(rss_mib(os.getpid()), 0),
        "spark_version": spark.version,
        "loadavg_1min": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
