#!/usr/bin/env bash
# Item 6: what a CI job on Spark would pay, end to end: start a Connect server from the pip package,
# load the ~33 tables of a small warehouse, run every include/sql query once (transpiled, compared).
#   scripts/spark_spike/ci_cost.sh REF.duckdb PARAMS.json WORKDIR
set -euo pipefail
ref=$1; params=$2; work=$3
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
PY=${PY:-$root/.venv/bin/python}
t0=$(date +%s.%N)
"$here/connect_server.sh" start "$work/server"
until (echo > /dev/tcp/127.0.0.1/15002) 2>/dev/null; do sleep 0.2; done
t1=$(date +%s.%N)
PYTHONPATH=$root/plugins "$PY" -W ignore "$here/compare_queries.py" --duckdb "$ref" --params "$params" \
  --load "$work/parquet" --transforms --max-param-sets 1 --out "$work/results.json" 2>&1 \
  | grep -v '^{"ts"' | grep -v '^\s*$' || true
t2=$(date +%s.%N)
"$here/connect_server.sh" stop "$work/server"
pid_rss=$(grep -h VmHWM /proc/self/status 2>/dev/null | head -1 || true)
printf 'server listening after %.1f s; load + all queries %.1f s; total %.1f s; loadavg %s\n' \
  "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$t2 - $t0" | bc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
