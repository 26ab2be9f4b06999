"""Which columns of one query differ between DuckDB and Spark (rows joined on the given key columns).

.venv/bin/python scripts/spark_spike/diff_columns.py --duckdb REF.duckdb --params params.json FILE KEY [KEY ...]
"""

import argparse
import json
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_queries import decode, normal, transpile

from postsales import paths, warehouse

ap = argparse.ArgumentParser()
ap.add_argument("--duckdb", required=True)
ap.add_argument("--params", required=True)
ap.add_argument("--remote", default="sc://127.0.0.1:15002")
ap.add_argument("--transforms", action="store_true")
ap.add_argument("file")
ap.add_argument("key", nargs="+")
a = ap.parse_args()
from pyspark.sql import SparkSession  # noqa: E402

spark = SparkSession.builder.remote(a.remote).getOrCreate()
sql = warehouse.render_sql(paths.sql_dir() / a.file)
params = {k: decode(v) for k, v in json.loads(Path(a.params).read_text())[a.file][0].items() if not k.startswith("_")}
params = {k: v for k, v in params.items() if f":{k}" in sql}
duck = sa.create_engine(f"duckdb:///{a.duckdb}", connect_args={"read_only": True})
with duck.connect() as c:
    res = c.execute(sa.text(sql), params)
    dcols = list(res.keys())
    d = {tuple(r[dcols.index(k)] for k in a.key): dict(zip(dcols, r, strict=True)) for r in res}
df = spark.sql(transpile(sql, "postgres", a.transforms), args=params)
s = {tuple(r[k] for k in a.key): r.asDict() for r in df.collect()}
print("spark types:", {f.name: f.dataType.simpleString() for f in df.schema.fields if f.name in dcols})
diffs = {}
for key, drow in d.items():
    srow = s.get(key)
    if srow is None:
        diffs.setdefault("<missing on spark>", []).append(key)
        continue
    for col in dcols:
        if normal(drow[col]) != normal(srow.get(col)):
            diffs.setdefault(col, []).append((key, drow[col], srow.get(col)))
for col, items in diffs.items():
    print(f"{col}: {len(items)} rows differ, e.g. {items[:3]}")
