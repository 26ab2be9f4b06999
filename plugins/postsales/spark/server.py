"""A local Spark Connect server from the pip package alone (``make spark-server``, the tests).

Spark Connect, not the Thrift JDBC/ODBC server: it binds our ``:name`` parameters on the server
with their types (a date stays a date, a Decimal a decimal), its client is Apache Spark's own,
and Great Expectations validates a Connect DataFrame as it is. The Thrift route needs PyHive,
unmaintained, which interpolates parameters on the client (Decimal refused, dates as text).
Measured in docs/spark-spike.md.

The server runs ``local[2]`` with a Hive catalog on an embedded Derby metastore and Parquet
tables, both under ``--dir``: tables survive a restart; one server per directory (Derby allows
one process). It listens on 127.0.0.1 only, with the UI off, UTC as the session time zone and
dynamic partition overwrite (an ``INSERT OVERWRITE`` replaces only the partitions it writes, at
commit: a failed job leaves the old rows, and writers of different partitions do not collide).

    python -m postsales.spark.server start --dir data/spark [--port 15002]
    python -m postsales.spark.server stop --dir data/spark
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

IDENT = "postsales"
DEFAULT_PORT = 15002
START_TIMEOUT_SECONDS = 180.0  # a cold start on a busy 2-core machine took up to 31 s to answer
# The recursive CTE of include/sql/cohorts/mrr_monthly.sql recurses once per month of history:
# Spark's default of 100 levels would fail every warehouse with more than 100 months.
CTE_RECURSION_LEVEL_LIMIT = 1200


def spark_home() -> Path:
    try:
        import pyspark
    except ImportError:
        raise SystemExit("pyspark is not installed: run `make install-spark` (docs/deploy.md)") from None
    return Path(pyspark.__file__).resolve().parent


def url(port: int = DEFAULT_PORT) -> str:
    return f"sc://127.0.0.1:{port}"


def _environment(directory: Path) -> dict[str, str]:
    return os.environ | {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOG_DIR": str(directory / "logs"),
        "SPARK_PID_DIR": str(directory),
        "SPARK_IDENT_STRING": IDENT,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }


def start(
    directory: Path,
    port: int = DEFAULT_PORT,
    *,
    master: str = "local[2]",
    driver_memory: str = "1g",
    timeout: float = START_TIMEOUT_SECONDS,
) -> str:
    """Start the server (state in ``directory``) and wait until it answers; returns its URL."""
    directory = directory.resolve()
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    metastore = f"jdbc:derby:;databaseName={directory / 'metastore_db'};create=true"
    settings = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.warehouse.dir": str(directory / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={directory}",
        "spark.sql.shuffle.partitions": "4",  # the default 200 is for clusters: tiny tasks dominate locally
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.cteRecursionLevelLimit": str(CTE_RECURSION_LEVEL_LIMIT),
    }
    command = [str(spark_home() / "sbin" / "start-connect-server.sh"), "--master", master]
    command += ["--driver-memory", driver_memory]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    subprocess.run(command, env=_environment(directory), check=True, stdout=subprocess.DEVNULL)
    _wait(directory, port, timeout)
    return url(port)


def stop(directory: Path) -> None:
    script = spark_home() / "sbin" / "stop-connect-server.sh"
    subprocess.run([str(script)], env=_environment(directory.resolve()), check=True, stdout=subprocess.DEVNULL)


def _wait(directory: Path, port: int, timeout: float) -> None:
    """Until a session answers ``select 1``; fails with the end of the server's log."""
    from pyspark.sql import SparkSession

    deadline = time.monotonic() + timeout
    problem = "not listening"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
            session = SparkSession.builder.remote(url(port)).create()
            try:
                session.sql("select 1").collect()
                return
            finally:
                session.stop()
        except Exception as exc:  # refused, or the server still warming up
            problem = f"{type(exc).__name__}: {str(exc)[:300]}"
        time.sleep(1.0)
    logs = sorted((directory / "logs").glob("*.out"))
    tail = logs[-1].read_text(errors="replace")[-3000:] if logs else "(no log)"
    raise RuntimeError(f"Spark Connect did not answer on {url(port)} within {timeout:.0f} s ({problem}):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m postsales.spark.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="the warehouse directory, metastore and logs")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    if args.action == "start":
        print(f"Spark Connect answers on {start(args.dir, args.port)} (warehouse: {args.dir / 'warehouse'})")
    else:
        stop(args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
