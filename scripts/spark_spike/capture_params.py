"""Run `make run`'s DAG chain (postsales_dev.cli run) and record, for every include/sql file, the
bound parameters the pipeline executed it with (exact Python types), so the same queries can be
replayed on DuckDB and Spark with the same values (compare_queries.py).

    POSTSALES_DATA_DIR=... POSTSALES_SOURCE_DIR=... POSTSALES_WAREHOUSE_URL=duckdb:///.../warehouse.duckdb \
    AIRFLOW_HOME=... PYTHONPATH=plugins:devtools \
    .venv/bin/python scripts/spark_spike/capture_params.py OUT.json [run args]
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from postsales import paths, warehouse

FILES = {p: warehouse.render_sql(p).strip() for p in sorted(paths.sql_dir().glob("*/*.sql"))}
SEEN: dict[str, list[dict]] = {}
# Every statement the chain executes, by kind: what a Spark backend would send (item 6's estimate).
COUNTS: dict[str, int] = {}


def kind_of(clauseelement) -> str:
    text = getattr(clauseelement, "text", None)
    if isinstance(text, str):
        verb = text.lstrip().split(None, 1)[0].lower() if text.strip() else "empty"
        return f"text:{verb}"
    return f"core:{type(clauseelement).__name__}"


def encode(value):
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": date(value.year, value.month, value.day).isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def before_execute(conn, clauseelement, multiparams, params, execution_options):
    if conn.engine.url.get_backend_name() != "duckdb":  # Airflow's metadata DB, the demo CRM (SQLite)
        return
    kind = kind_of(clauseelement)
    COUNTS[kind] = COUNTS.get(kind, 0) + 1
    text = getattr(clauseelement, "text", None)
    if not isinstance(text, str):
        return
    bound = dict(params or {})
    if multiparams and isinstance(multiparams[0], dict):
        bound.update(multiparams[0])
    for path, sql in FILES.items():
        if sql and sql in text:
            name = str(path.relative_to(paths.sql_dir()))
            entry = {k: encode(v) for k, v in sorted(bound.items())}
            entry["_via"] = "insert-select" if text.lstrip().lower().startswith("insert") else "select"
            if entry not in SEEN.setdefault(name, []):
                SEEN[name].append(entry)


def main() -> int:
    out = sys.argv[1]
    sa.event.listen(sa.engine.Engine, "before_execute", before_execute)
    from postsales_dev import cli

    try:
        rc = cli.main(["run", *sys.argv[2:]])
    finally:
        with open(out, "w") as f:
            json.dump(SEEN, f, indent=1, sort_keys=True)
        with open(out.removesuffix(".json") + ".counts.json", "w") as f:
            json.dump(dict(sorted(COUNTS.items(), key=lambda kv: -kv[1])), f, indent=1)
        print(f"statements executed: {sum(COUNTS.values())}: {COUNTS}")
        missing = sorted(
            str(p.relative_to(paths.sql_dir())) for p in FILES if str(p.relative_to(paths.sql_dir())) not in SEEN
        )
        print(f"captured {len(SEEN)} of {len(FILES)} files; never executed in-process: {missing}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
