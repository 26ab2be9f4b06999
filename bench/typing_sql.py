"""Typing raw text in the warehouse: how long typing_sql.typed() takes for N values of each type.

    python bench/typing_sql.py [--rows 5000000] [--backend duckdb|postgresql] [--pg-url URL]

For each type, N strings are written to a table first, in two mixes: ``common`` (the spellings
an export writes, which DuckDB types with its own casts behind a guard) and ``rare`` (spellings
only the general path reads: '+' signs, basic or seven-digit ISO times, whitespace). Then
``select count(<expression>) from <table>`` is timed for typed(), and for the plain cast
(TRY_CAST on DuckDB, which is not the same typing) as a floor. One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from postsales.validate.typing_sql import typed

# Each mix as a SQL expression of i (0 .. rows - 1); PostgreSQL and DuckDB both read these.
MIXES = {
    "number": {
        "common": "case when i % 4 = 0 then '-' else '' end || (i % 100000)::text || '.' || (i % 90 + 10)::text",
        "rare": "case when i % 2 = 0 then ' +' else '' end || (i % 1000)::text || '.5e' || (i % 40 - 20)::text",
    },
    "integer": {
        "common": "(i * 7919 % 10000000)::text",
        "rare": "case when i % 2 = 0 then (i % 1000)::text || '.0' else ' ' || (i % 1000)::text || 'e2 ' end",
    },
    "date": {
        "common": "(date '2000-01-01' + (i % 9000)::integer)::text",
        "rare": "(date '2000-01-01' + (i % 9000)::integer)::text || 'T10:00:00.0000000Z'",
    },
    "timestamp": {
        "common": (
            "replace((timestamp '2000-01-01' + (i % 100000000) * interval '7 second')::text, ' ', 'T')"
            " || case i % 3 when 0 then 'Z' when 1 then '+01:00' else '' end"
        ),
        "rare": (
            "replace((timestamp '2000-01-01' + (i % 100000000) * interval '7 second')::text, ' ', 'T')"
            " || '.1234567' || case when i % 2 = 0 then ' +0530' else 'Z' end"
        ),
    },
    "boolean": {
        "common": "case i % 4 when 0 then 'true' when 1 then 'false' when 2 then '1' else '0' end",
        "rare": "case i % 2 when 0 then ' Yes ' else 'N' || chr(10) end",
    },
}
CASTS = {"number": "DOUBLE", "integer": "BIGINT", "date": "DATE", "timestamp": "TIMESTAMP", "boolean": "BOOLEAN"}


def build(conn: sa.Connection, backend: str, rows: int) -> None:
    for column_type, mixes in MIXES.items():
        for mix, expression in mixes.items():
            table = f"typing_{column_type}_{mix}"
            conn.execute(sa.text(f"drop table if exists {table}"))
            source = f"range({rows}) as r(i)" if backend == "duckdb" else f"generate_series(0::bigint, {rows - 1}) as i"
            conn.execute(sa.text(f"create table {table} as select {expression} as s from {source}"))
    conn.commit()


def timed(conn: sa.Connection, statement) -> float:
    started = time.perf_counter()
    conn.execute(statement).scalar()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--backend", choices=["duckdb", "postgresql"], default="duckdb")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    url = "duckdb:///:memory:" if args.backend == "duckdb" else args.pg_url
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        build(conn, args.backend, args.rows)
        for column_type, mixes in MIXES.items():
            for mix in mixes:
                table = sa.table(f"typing_{column_type}_{mix}", sa.column("s", sa.Text))
                value = typed(table.c.s, column_type, args.backend)
                result = {
                    "backend": args.backend,
                    "type": column_type,
                    "mix": mix,
                    "rows": args.rows,
                    "typed_seconds": round(timed(conn, sa.select(sa.func.count(value))), 3),
                    "valid": conn.execute(sa.select(sa.func.count(value))).scalar(),
                }
                if args.backend == "duckdb":
                    cast = sa.text(f"select count(try_cast(s as {CASTS[column_type]})) from {table.name}")
                    result["try_cast_seconds"] = round(timed(conn, cast), 3)
                print(json.dumps(result), flush=True)
        if args.backend == "postgresql":
            for column_type, mixes in MIXES.items():
                for mix in mixes:
                    conn.execute(sa.text(f"drop table if exists typing_{column_type}_{mix}"))
            conn.commit()
    engine.dispose()


if __name__ == "__main__":
    main()
