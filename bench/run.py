"""`make bench`: generate data at scale, run every stage as the DAGs do, measure, compare.

    python bench/run.py --scale 10k [--keep-data] [--naive-max-accounts N] [--usage-load pipeline|direct]

Each stage and baseline runs in a fresh subprocess; its wall time and peak RSS
(``os.wait4`` rusage of that process alone) are recorded. Results go to
``bench/results/<scale>.json`` and ``.md``; docs/performance.md explains the columns.
Generated data lives under ``data/bench/<scale>`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
SCALES = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "300k": 300_000}
AS_OF = date(2026, 10, 31)  # the demo generator's default last day of history
USAGE_DAYS = 365
ENTITIES = ("accounts", "contracts", "survey_responses", "usage_daily")
GIB = 1024**3


class StageFailed(RuntimeError):
    pass


def run_process(name: str, args: list[str], env: dict[str, str], log_dir: Path, timeout: float | None = None) -> dict:
    """Run one process; returns its JSON result plus wall seconds and peak RSS (bytes)."""
    log_path = log_dir / f"{name.replace(':', '_')}.log"
    started = time.perf_counter()
    with log_path.open("w") as log_file:
        process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log_file, text=True)
        deadline = None if timeout is None else started + timeout
        output_chunks = []
        # wait4 gives this child's own rusage; read stdout first so the pipe cannot fill up.
        assert process.stdout is not None
        for line in process.stdout:
            output_chunks.append(line)
            if deadline and time.perf_counter() > deadline:
                process.kill()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    output = "".join(output_chunks)
    log_path.write_text(log_path.read_text() + "\n--- stdout ---\n" + output)
    if process.returncode != 0:
        raise StageFailed(f"{name} exited {process.returncode}; see {log_path}")
    result = json.loads(output.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux.
    result.update(wall_seconds=wall, peak_rss_bytes=usage.ru_maxrss * 1024)
    print(f"  {name:<34} {wall:8.2f} s  {usage.ru_maxrss / 1024:8.0f} MiB", flush=True)
    return result


def stage_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        POSTSALES_WAREHOUSE_URL=f"duckdb:///{work / 'warehouse.duckdb'}",
        POSTSALES_SOURCE_DIR=str(work / "source"),
        POSTSALES_DATA_DIR=str(work),
        PYTHONPATH=str(ROOT / "plugins"),
        GX_ANALYTICS_ENABLED="false",
        PYTHONWARNINGS="ignore",
    )
    return env


def generate(accounts: int, work: Path, env: dict[str, str], log_dir: Path) -> dict:
    # The demo generator is a developer tool (devtools/), not the library the stages run.
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "devtools")])}
    code = (
        "import json, sys; from pathlib import Path; from postsales_dev.demo import generate; "
        f"print(json.dumps(generate(Path({str(work / 'source')!r}), {accounts}, 42, usage_days={USAGE_DAYS}), "
        "default=str))"
    )
    return run_process("generate", [PY, "-c", code], env, log_dir)


def direct_usage_load(env: dict[str, str], log_dir: Path) -> dict:
    """Bench shortcut (labelled as such in the results): usage files -> staging with DuckDB, no gate."""
    code = f"""
import json, time, duckdb, sys
sys.path.insert(0, {str(ROOT / "plugins")!r})
from postsales import warehouse
warehouse.ensure_schema(warehouse.engine())
warehouse.dispose_all()
con = duckdb.connect({env["POSTSALES_WAREHOUSE_URL"].removeprefix("duckdb:///")!r})
started = time.perf_counter()
con.execute("delete from staging.usage_daily")
con.execute('''insert into staging.usage_daily (account_id, usage_date, active_users, licensed_seats, events,
    features_used, _source, _extra, _run_id, _loaded_at)
    select account_id, usage_date, active_users, licensed_seats, events, features_used, filename, null,
        'bench__direct', now() from read_parquet('{env["POSTSALES_SOURCE_DIR"]}/usage_daily/*.parquet', filename = true)
    where usage_date <= current_date''')
rows = con.execute("select count(*) from staging.usage_daily").fetchone()[0]
print(json.dumps({{"seconds": time.perf_counter() - started, "rows_loaded": rows}}))
"""
    return run_process("usage_direct_load", [PY, "-c", code], env, log_dir)


def stage(name: str, env: dict[str, str], log_dir: Path, *extra: str) -> dict:
    return run_process(name, [PY, str(HERE / "stage.py"), name, "--as-of", AS_OF.isoformat(), *extra], env, log_dir)


def baseline(kind: str, env: dict[str, str], log_dir: Path, snapshot: date | None = None) -> dict:
    args = [PY, str(HERE / "baselines.py"), kind]
    if snapshot:
        args += ["--snapshot-month", snapshot.isoformat()]
    return run_process(kind, args, env, log_dir)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict:
    import duckdb
    import pandas

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_average(),
        "memory_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "git_commit": commit.stdout.strip(),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="10k", choices=sorted(SCALES))
    parser.add_argument("--keep-data", action="store_true", help="reuse generated data if present")
    parser.add_argument(
        "--naive-max-accounts", type=int, default=10_000, help="sample size for naive pandas (extrapolated)"
    )
    parser.add_argument(
        "--usage-load",
        choices=("pipeline", "direct"),
        default="pipeline",
        help="full backfill of usage through the extract (default) or a labelled DuckDB shortcut",
    )
    parser.add_argument("--skip", action="append", default=[], help="skip a section (naive, crm, dags, daily)")
    args = parser.parse_args()

    accounts = SCALES[args.scale]
    work = ROOT / "data" / "bench" / args.scale
    log_dir = work / "logs"
    if not args.keep_data and work.exists():
        shutil.rmtree(work)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = stage_env(work)
    results: dict = {"scale": args.scale, "accounts_requested": accounts, "environment": environment()}
    snapshot = AS_OF.replace(day=1)
    print(f"bench {args.scale}: {accounts} accounts, {USAGE_DAYS} days of usage, as of {AS_OF}", flush=True)

    if (work / "source" / "accounts.csv").exists() and args.keep_data:
        results["generate"] = json.loads((work / "generate.json").read_text())
    else:
        results["generate"] = generate(accounts, work, env, log_dir)
        (work / "generate.json").write_text(json.dumps(results["generate"], default=str))
        (work / "warehouse.duckdb").unlink(missing_ok=True)

    print("full backfill (every stage in its own process):", flush=True)
    full: dict = {}
    for entity in ENTITIES:
        if entity == "usage_daily" and args.usage_load == "direct":
            full["extract:usage_daily"] = direct_usage_load(env, log_dir) | {"shortcut": True}
            continue
        full[f"extract:{entity}"] = stage(f"extract_full:{entity}", env, log_dir)
    for name in ("segment", "cohorts", "forecast", "crm_diff"):
        full[name] = stage(name, env, log_dir)
    results["full_backfill"] = full

    print("baselines:", flush=True)
    base: dict = {
        "floor_scan": baseline("floor_scan", env, log_dir),
        "floor_load": baseline("floor_load", env, log_dir),
        "usage_write_floor": baseline("usage_write_floor", env, log_dir),
        "our_mrr": baseline("our_mrr", env, log_dir, snapshot),
        "mrr_playbook": baseline("mrr_playbook", env, log_dir, snapshot),
        "mrr_agreement": baseline("mrr_agreement", env, log_dir, snapshot),
    }
    if "naive" not in args.skip:
        base["naive_pandas"] = run_process(
            "naive_pandas",
            [
                PY,
                str(HERE / "naive_pandas.py"),
                "--snapshot-month",
                snapshot.isoformat(),
                "--as-of",
                AS_OF.isoformat(),
                "--max-accounts",
                str(args.naive_max_accounts),
            ],
            env,
            log_dir,
        )
    results["baselines"] = base

    if "daily" not in args.skip:
        print("daily incremental run (one day of usage, the day's changed accounts):", flush=True)
        daily: dict = {}
        for entity in ENTITIES:
            daily[f"extract:{entity}"] = stage(f"extract_daily:{entity}", env, log_dir)
        for name in ("segment", "forecast"):
            daily[name] = stage(name, env, log_dir)
        results["daily_incremental"] = daily

    if "crm" not in args.skip:
        print("CRM push against HTTP-level fakes:", flush=True)
        results["crm_push"] = run_process(
            "crm_push", [PY, str(HERE / "crm_push.py"), "--as-of", AS_OF.isoformat()], env, log_dir
        )
    if "dags" not in args.skip:
        print("DAG parse time per file:", flush=True)
        results["dag_parse"] = run_process("dag_parse", [PY, str(HERE / "dag_parse.py")], env, log_dir)

    results["environment"]["load_average_at_end"] = load_average()
    results["environment"]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    from report import render  # bench/report.py

    (out_dir / f"{args.scale}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out_dir / f"{args.scale}.md").write_text(render(results))
    print((out_dir / f"{args.scale}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
