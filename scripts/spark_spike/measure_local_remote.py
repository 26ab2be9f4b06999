"""Item 1b: SparkSession.builder.remote("local[2]"): pyspark starts a Spark Connect server in a JVM it
launches itself and connects to it. Times the start, `select 1` and the JVM's RSS.

    .venv/bin/python scripts/spark_spike/measure_local_remote.py DIR
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

t0 = time.monotonic()
from pyspark.sql import SparkSession  # noqa: E402

imported = time.monotonic() - t0
d = os.path.abspath(sys.argv[1])
spark = (
    SparkSession.builder.remote("local[2]")
    .config("spark.sql.warehouse.dir", f"{d}/warehouse")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "4")
    .getOrCreate()
)
spark.sql("select 1").collect()
ready = time.monotonic() - t0
lat = []
for _ in range(50):
    t = time.perf_counter()
    spark.sql("select 1").collect()
    lat.append((time.perf_counter() - t) * 1000)
java = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "java"], capture_output=True, text=True).stdout.split()
jvm = [int(p) for p in java]
rss = {}
for pid in jvm:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            rss[pid] = int(line.split()[1]) // 1024
print(
    json.dumps(
        {
            "import_pyspark_s": round(imported, 2),
            "first_select_1_s": round(ready, 2),
            "select_1_ms_median": round(statistics.median(lat), 1),
            "select_1_ms_min": round(min(lat), 1),
            "jvm_rss_mib": rss,
            "catalog": spark.conf.get("spark.sql.catalogImplementation"),
            "loadavg": os.getloadavg()[0],
        }
    )
)
spark.stop()
