"""Landing a folder of daily usage files as text (issue 18) vs today's read_batches.

    python bench/landing.py --source data/bench/landing10k/source --duckdb data/bench/landing.duckdb \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench] \\
        [--runs load_text,read_batches,read_batches+insert]

Each run is a fresh subprocess; the time of the landing itself (rows per second), and the
process's wall time, CPU time and peak RSS (``os.wait4`` rusage of that process alone) are
printed. CPU time is the steadier figure on a machine shared with other work.
Generate the source first (data/ is git-ignored), e.g. 10k accounts with a year of usage:

    python -c "from pathlib import Path; from postsales.demo import generate; \\
        generate(Path('data/bench/landing10k/source'), 10000, 42, usage_days=365)"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time, uuid
from datetime import datetime
from pathlib import Path
sys.path.insert(0, {plugins!r})
from postsales import warehouse
from postsales.extract import BATCH_ROWS
from postsales.sources import Interval
from postsales.sources.files import FileSource

source = FileSource(Path({source!r}))
interval = Interval(datetime(2000, 1, 1), datetime(2100, 1, 1), full_refresh=True)
started = time.perf_counter()
if {mode!r} == "load_text":
    eng = warehouse.engine({url!r})
    landed = source.load_text(eng, "usage_daily", "usage_date", interval, f"_load_text_{{uuid.uuid4().hex[:8]}}")
    rows = landed.rows
    seconds = time.perf_counter() - started
    landed.table.drop(eng)
elif {mode!r} == "read_batches":
    rows = sum(len(read.frame) for read in source.read_batches("usage_daily", "usage_date", interval, BATCH_ROWS))
    seconds = time.perf_counter() - started
else:  # today's read, then today's insert of each frame into a text table like load_text's
    import sqlalchemy as sa
    eng = warehouse.engine({url!r})
    rows, table = 0, None
    with eng.connect() as conn:
        conn.execute(sa.text("create schema if not exists raw"))
        conn.commit()
    for read in source.read_batches("usage_daily", "usage_date", interval, BATCH_ROWS):
        frame = read.frame.assign(_row=range(rows + 1, rows + 1 + len(read.frame)))
        if table is None:
            table = sa.Table(f"_load_text_{{uuid.uuid4().hex[:8]}}", sa.MetaData(), sa.Column("_row", sa.BigInteger),
                *(sa.Column(c, sa.Text) for c in read.frame.columns), schema="raw")
            table.create(eng)
        with eng.begin() as conn:
            warehouse.insert_frame(conn, table, frame)
        rows += len(frame)
    seconds = time.perf_counter() - started
    table.drop(eng)
print(json.dumps({{"rows": rows, "seconds": seconds}}))
"""


def run(mode: str, source: str, url: str | None) -> dict:
    code = CHILD.format(plugins=str(ROOT / "plugins"), source=source, mode=mode, url=url)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode} on {url} failed")
    result = json.loads(output.strip().splitlines()[-1])
    result.update(
        wall_seconds=time.perf_counter() - started,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the files source directory (holding usage_daily/)")
    parser.add_argument("--duckdb", help="a DuckDB warehouse file to land into")
    parser.add_argument("--postgres", help="a PostgreSQL warehouse URL to land into")
    parser.add_argument("--runs", default="load_text,read_batches,read_batches+insert")
    args = parser.parse_args(argv)
    targets = []
    for mode in args.runs.split(","):  # load_text, read_batches, read_batches+insert
        if mode == "read_batches":
            targets.append((mode, None))
        else:
            targets += [(mode, url) for url in (args.duckdb and f"duckdb:///{args.duckdb}", args.postgres) if url]
    for mode, url in targets:
        result = run(mode, args.source, url)
        where = (url or "pandas frames").split("://")[0]
        print(
            f"{mode:<19} {where:<18} {result['rows']:>10,} rows {result['seconds']:8.2f} s "
            f"({result['rows'] / result['seconds']:>10,.0f} rows/s)  process: wall {result['wall_seconds']:6.2f} s, "
            f"CPU {result['cpu_seconds']:6.2f} s, peak RSS {result['peak_rss_mib']:5.0f} MiB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
