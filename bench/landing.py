"""Landing a folder of daily usage files as text (``FileSource.load_text``), on its own.

    python bench/landing.py --source data/bench/landing10k/source --duckdb data/bench/landing.duckdb \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench]

Each run is a fresh subprocess; the time of the landing itself (rows per second), and the
process's wall time, CPU time and peak RSS (``os.wait4`` rusage of that process alone) are
printed. CPU time is the steadier figure on a machine shared with other work.
Generate the source first (data/ is git-ignored), e.g. 10k accounts with a year of usage:

    PYTHONPATH=plugins:devtools python -c "from pathlib import Path; from postsales_dev.demo import generate; \\
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
from postsales.sources import Interval
from postsales.sources.files import FileSource

source = FileSource(Path({source!r}))
interval = Interval(datetime(2000, 1, 1), datetime(2100, 1, 1), full_refresh=True)
started = time.perf_counter()
eng = warehouse.engine({url!r})
landed = source.load_text(eng, "usage_daily", "usage_date", interval, f"_load_text_{{uuid.uuid4().hex[:8]}}")
rows = landed.rows
seconds = time.perf_counter() - started
landed.table.drop(eng)
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
    args = parser.parse_args(argv)
    for url in (args.duckdb and f"duckdb:///{args.duckdb}", args.postgres):
        if not url:
            continue
        mode = "load_text"
        result = run(mode, args.source, url)
        where = url.split("://")[0]
        print(
            f"{mode:<19} {where:<18} {result['rows']:>10,} rows {result['seconds']:8.2f} s "
            f"({result['rows'] / result['seconds']:>10,.0f} rows/s)  process: wall {result['wall_seconds']:6.2f} s, "
            f"CPU {result['cpu_seconds']:6.2f} s, peak RSS {result['peak_rss_mib']:5.0f} MiB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
