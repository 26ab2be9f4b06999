"""Regenerate the frozen extract outputs in expected/ from the corpus, on DuckDB and PostgreSQL.

Run from the repository root: ``.venv/bin/python tests/golden/extract/freeze.py``. Only when a
change in the outputs is intended; the diff of expected/ is the review. PostgreSQL is the server of
the tests (POSTSALES_TEST_PG_DSN, default postgresql://postgres@127.0.0.1:5432/test): a throw-away
database is created there and dropped. Afterwards the DuckDB and PostgreSQL outputs are compared
and every difference printed: the two backends should agree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PG_ADMIN_DSN = os.environ.get("POSTSALES_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _setup_paths() -> None:
    for path in (ROOT / "plugins", ROOT / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class Warehouses:
    """A fresh, empty warehouse per run: a new DuckDB file, or PostgreSQL's schemas dropped."""

    def __init__(self, backend: str, workdir: Path, pg_url: str | None):
        self.backend, self.workdir, self.pg_url, self.count = backend, workdir, pg_url, 0

    def fresh(self) -> str:
        import sqlalchemy as sa

        from postsales import warehouse

        self.count += 1
        if self.backend == "duckdb":
            return f"duckdb:///{self.workdir / f'warehouse-{self.count}.duckdb'}"
        with warehouse.engine(self.pg_url).begin() as conn:
            for schema in warehouse.SCHEMAS:
                conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
        return self.pg_url


def freeze(backend: str, workdir: Path, pg_url: str | None) -> None:
    from golden.extract import harness
    from postsales import warehouse

    warehouses = Warehouses(backend, workdir, pg_url)
    shutil.rmtree(harness.EXPECTED / backend, ignore_errors=True)  # no file of a scenario or phase gone
    for scenario in harness.SCENARIOS:
        url = warehouses.fresh()
        dumps = harness.run_scenario(scenario, url, workdir / backend / scenario.name)
        warehouse.dispose_all()
        for phase, tables in dumps:
            unbalanced = harness.unbalanced_batches(tables)
            if unbalanced:
                raise AssertionError(f"{backend} {scenario.name}/{phase}: read != loaded + quarantined: {unbalanced}")
            path = harness.expected_dir(backend, scenario.name, phase)
            harness.write_dump(path, tables)
            counts = ", ".join(f"{name} {len(rows)}" for name, rows in tables.items())
            print(f"{path.relative_to(ROOT)}: {counts}")
    results = []
    for case in harness.FAILURES:
        url = warehouses.fresh()
        results.append(harness.run_failure(case, url, workdir / backend / "failures" / case.name))
        warehouse.dispose_all()
    harness.write_failures(harness.failures_path(backend), results)
    print(f"{harness.failures_path(backend).relative_to(ROOT)}: {len(results)} cases")


def compare_backends() -> int:
    """Print where the frozen DuckDB and PostgreSQL outputs differ; the number of differences."""
    from golden.extract import harness

    found = 0
    for scenario in harness.SCENARIOS:
        for phase, _ in scenario.phases:
            duck, pg = (harness.read_dump(harness.expected_dir(b, scenario.name, phase)) for b in harness.BACKENDS)
            for problem in harness.diff_dumps(duck, pg, limit=20):
                found += 1
                print(f"DuckDB ('frozen') vs PostgreSQL ('found'), {scenario.name}/{phase}: {problem}")
    if not all(harness.failures_path(b).exists() for b in harness.BACKENDS):
        print("not compared: the outputs of one backend are missing")
        return 0
    duck, pg = (harness.read_failures(harness.failures_path(b)) for b in harness.BACKENDS)
    for name in sorted(set(duck) | set(pg)):
        if duck.get(name) != pg.get(name):
            found += 1
            print(f"failure {name}: DuckDB {duck.get(name)} vs PostgreSQL {pg.get(name)}")
    print("DuckDB and PostgreSQL outputs are equal" if not found else f"{found} differences between the backends")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["duckdb", "postgres", "both"], default="both")
    args = parser.parse_args(argv)
    _setup_paths()
    import psycopg

    from postsales import warehouse

    backends = ["duckdb", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="golden-extract-") as scratch:
        workdir = Path(scratch)
        os.environ["POSTSALES_DATA_DIR"] = str(workdir / "data")
        for backend in backends:
            if backend == "duckdb":
                freeze(backend, workdir, None)
                continue
            name = f"golden_extract_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'create database "{name}"')
            base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
            try:
                freeze(backend, workdir, f"{base}/{name}")
            finally:
                warehouse.dispose_all()
                with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                    conn.execute(f'drop database if exists "{name}" with (force)')
    compare_backends()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
