"""Item 1c: the Thrift JDBC/ODBC server from the pip package, reached with PyHive (DB-API and its
SQLAlchemy `hive://` dialect): start time, `select 1` latency, RSS, and what SQLAlchemy Core does on it.

    .venv/bin/python scripts/spark_spike/measure_thrift.py DIR
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
d = os.path.abspath(sys.argv[1])
port = 10000
t0 = time.monotonic()
subprocess.run([str(HERE / "thrift_server.sh"), "start", d, str(port)], check=True)
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError as exc:
        if time.monotonic() - t0 > 240:
            raise SystemExit("thrift server not listening after 240 s") from exc
        time.sleep(0.2)
listening = time.monotonic() - t0
from pyhive import hive  # noqa: E402

conn = hive.connect(host="127.0.0.1", port=port, auth="NOSASL")
cur = conn.cursor()
cur.execute("select 1")
cur.fetchall()
ready = time.monotonic() - t0
lat = []
for _ in range(50):
    t = time.perf_counter()
    cur.execute("select 1")
    cur.fetchall()
    lat.append((time.perf_counter() - t) * 1000)
pid = int(next(Path(d).glob("*.pid")).read_text())
status = Path(f"/proc/{pid}/status").read_text().splitlines()
rss = next(int(x.split()[1]) // 1024 for x in status if x.startswith("VmRSS"))

# PyHive's DB-API interpolates parameters client side (pyformat: %(name)s), escaping strings itself.
from datetime import date  # noqa: E402
from decimal import Decimal  # noqa: E402

bound = {}
for label, value in {
    "date": date(2026, 10, 31),
    "decimal": Decimal("1.5"),
    "str": "O'Brien",
    "none": None,
    "float": 0.25,
    "int": 12,
}.items():
    try:
        cur.execute("select %(v)s as v", {"v": value})
        bound[label] = repr(cur.fetchall())
    except Exception as exc:
        bound[label] = f"{type(exc).__name__}: {str(exc)[:120]}"

# SQLAlchemy through PyHive's hive:// dialect
import sqlalchemy as sa  # noqa: E402

eng = sa.create_engine(f"hive://127.0.0.1:{port}/default", connect_args={"auth": "NOSASL"})
notes = {}
with eng.connect() as c:
    t = time.perf_counter()
    c.execute(sa.text("select 1")).all()
    notes["sqlalchemy_first_select_ms"] = round((time.perf_counter() - t) * 1000, 1)
    try:
        notes["text_bind"] = repr(
            c.execute(sa.text("select :d as d, :s as s"), {"d": date(2026, 10, 31), "s": "O'Brien"}).all()
        )
    except Exception as exc:
        notes["text_bind"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    md = sa.MetaData()
    t1 = sa.Table(
        "spike_t",
        md,
        sa.Column("as_of_date", sa.Date),
        sa.Column("account_id", sa.Text),
        sa.Column("arr", sa.Float(53)),
    )
    for label, stmt in {
        "create_table": lambda: md.create_all(c),
        "insert_values": lambda: c.execute(
            t1.insert(), [{"as_of_date": date(2026, 10, 31), "account_id": "A1", "arr": 1.5}]
        ),
        "select_where": lambda: c.execute(sa.select(t1).where(t1.c.as_of_date == date(2026, 10, 31))).all(),
        "delete_where": lambda: c.execute(t1.delete().where(t1.c.as_of_date == date(2026, 10, 31))),
        "information_schema": lambda: c.execute(
            sa.text("select table_schema, table_name, column_name from information_schema.columns")
        ).all()[:2],
        "inspect_tables": lambda: sa.inspect(c).get_table_names(),
    }.items():
        try:
            out = stmt()
            notes[label] = "ok " + (repr(out)[:120] if out is not None else "")
        except Exception as exc:
            notes[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:220]}"
print(
    json.dumps(
        {
            "port_listening_s": round(listening, 2),
            "first_select_1_s": round(ready, 2),
            "select_1_ms_median": round(statistics.median(lat), 1),
            "select_1_ms_min": round(min(lat), 1),
            "server_rss_mib": rss,
            "pyhive_pyformat_bind": repr(bound),
            "sqlalchemy": notes,
            "loadavg": os.getloadavg()[0],
        },
        indent=1,
    )
)
