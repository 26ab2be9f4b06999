"""One pipeline stage, run the way its Airflow task runs it, in this (fresh) process.

    python bench/stage.py <stage> --as-of YYYY-MM-DD

The orchestrator (bench/run.py) starts one process per stage so that each stage's peak
RSS is its own; the warehouse and source come from POSTSALES_WAREHOUSE_URL and
POSTSALES_SOURCE_DIR. Each stage calls the same library function, with the same
arguments, as its task in plugins/postsales/tasks/. The last stdout line is a JSON
object: the stage's summary plus ``seconds`` (the call itself, imports excluded) and,
for extracts, ``gate_seconds`` (time spent in Great Expectations' validation, ``sql_gate.run_checks``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

ENTITIES = ("accounts", "contracts", "survey_responses", "usage_daily")


def extract(entity: str, as_of: date, *, full_refresh: bool) -> dict:
    """extract_entity for the daily interval of ``as_of`` (the usage_extract / crm_extract task)."""
    from postsales import extract as extract_module
    from postsales.sources import Interval
    from postsales.validate import sql_gate

    gate_seconds = 0.0
    run_checks = sql_gate.run_checks

    def timed_checks(*args, **kwargs):
        nonlocal gate_seconds
        started = time.perf_counter()
        try:
            return run_checks(*args, **kwargs)
        finally:
            gate_seconds += time.perf_counter() - started

    sql_gate.run_checks = timed_checks  # same function, timed: validation is reported on its own
    start = datetime.combine(as_of, datetime.min.time())
    interval = Interval(start, start + timedelta(days=1), full_refresh)
    run_id = f"bench__{'full' if full_refresh else 'daily'}__{as_of.isoformat()}"
    started = time.perf_counter()
    summary = extract_module.extract_entity(entity, interval=interval, run_id=run_id, allow_empty=False)
    seconds = time.perf_counter() - started
    result = summary.as_dict()
    result.pop("top_failures", None)
    return result | {"seconds": seconds, "gate_seconds": gate_seconds}


def segment(as_of: date) -> dict:
    from postsales.segment.engine import compute_segments

    return compute_segments(as_of)


def cohorts(as_of: date) -> dict:
    from postsales.cohorts import compute_snapshot

    return compute_snapshot(as_of.replace(day=1))


def forecast(as_of: date) -> dict:
    from postsales.forecast import compute_forecast

    return compute_forecast(as_of)


def crm_diff(as_of: date) -> dict:
    """The segment_revision DAG's dry run: the diff against the (demo SQL) CRM, no write."""
    from postsales.crm.sync import sync

    result = sync(as_of, dry_run=True, run_id=f"bench__crm_dry_run__{as_of.isoformat()}")
    return {k: v for k, v in result.items() if not isinstance(v, (dict, list))}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage")
    parser.add_argument("--as-of", required=True, type=date.fromisoformat)
    args = parser.parse_args()
    stage, _, entity = args.stage.partition(":")
    started = time.perf_counter()
    if stage in ("extract_full", "extract_daily"):
        result = extract(entity, args.as_of, full_refresh=stage == "extract_full")
    else:
        result = {"segment": segment, "cohorts": cohorts, "forecast": forecast, "crm_diff": crm_diff}[stage](args.as_of)
        result = result | {"seconds": time.perf_counter() - started}
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
