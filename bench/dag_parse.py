"""DAG parse time per file, as the DAG processor measures it.

    python bench/dag_parse.py            every file in dags/, each in a fresh process
    python bench/dag_parse.py FILE       one file (used by the above)

Each file is parsed by a ``DagBag`` of its own in a new interpreter with Airflow already
imported (as in the DAG processor), so the time includes everything the file imports
(postsales.dag_defaults and friends) but not Airflow itself. Reported: DagBag's own
per-file duration (``dagbag_stats``) and the wall time of the DagBag call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_one(path: Path) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(str(path), safe_mode=False)
    wall = time.perf_counter() - started
    [stats] = bag.dagbag_stats
    return {
        "file": path.name,
        "dagbag_seconds": stats.duration.total_seconds(),
        "wall_seconds": wall,
        "dags": stats.dag_num,
        "import_errors": len(bag.import_errors),
    }


def main() -> int:
    if len(sys.argv) > 1:
        print(json.dumps(parse_one(Path(sys.argv[1]))))
        return 0
    files = []
    env = dict(os.environ, PYTHONPATH=str(ROOT / "plugins"))
    for path in sorted((ROOT / "dags").glob("*.py")):
        # Import Airflow first (the DAG processor has it loaded), then parse the file.
        code = (
            "import airflow.sdk, airflow.dag_processing.dagbag, json, sys; "
            f"sys.path.insert(0, {str(ROOT / 'bench')!r}); import dag_parse; from pathlib import Path; "
            f"print(json.dumps(dag_parse.parse_one(Path({str(path)!r}))))"
        )
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        files.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(json.dumps({"files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
