"""The per-file table of docs/spark-spike.md from compare_queries.py's results.

python3 scripts/spark_spike/report_table.py results/queries_plain_sqlglot.json \
        results/queries_transformed_all_params.json
"""

import json
import sys
from pathlib import Path

plain = json.loads(Path(sys.argv[1]).read_text())["results"]
fixed = json.loads(Path(sys.argv[2]).read_text())["results"]
NEEDS = {
    "forecast/account_trajectories.sql": "generate_series rewrite",
    "segment/account_features.sql": "date - date rewrite (typed)",
    "reports/cohort_triangle.sql": "star expanded in home column order",
    "segment/account_segments_current.sql": "star expanded in home column order",
}
print("| file | plain sqlglot (postgres→spark) | with spike rewrites | runs (param sets) | rows | DuckDB s | Spark s |")
print("|---|---|---|---:|---:|---:|---:|")
for name in sorted(fixed):
    p, f = plain.get(name, {}), fixed[name]
    first = (p.get("runs") or [{}])[0]
    if p.get("all_match"):
        plain_txt = "OK, rows match"
    elif "error" in first:
        plain_txt = "fails on Spark: " + first["error"].split(":", 2)[1].strip()[:60]
    else:
        plain_txt = "runs, rows differ: " + first.get("detail", "")[:60]
    runs = f["runs"]
    ok = sum(1 for r in runs if r.get("match"))
    rows = runs[0].get("detail", "").split(" rows")[0]
    fixed_txt = ("match" if f.get("all_match") else "DIFF") + (f" ({NEEDS[name]})" if name in NEEDS else "")
    duck = sum(r.get("duckdb_s", 0) for r in runs) / len(runs)
    spark = sum(r.get("spark_s", 0) for r in runs) / len(runs)
    print(f"| {name} | {plain_txt} | {fixed_txt} | {ok}/{len(runs)} | {rows} | {duck:.3f} | {spark:.2f} |")
