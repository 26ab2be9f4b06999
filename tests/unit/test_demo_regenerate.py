"""`make demo` / `make run` regenerate the demo when its size or seed changes, never a real export;
`make clean` says what it keeps and `make clean-all` removes it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd

from postsales_dev import demo
from postsales_dev.cli import ensure_demo

ROOT = Path(__file__).resolve().parents[2]


def account_ids(source: Path) -> set[str]:
    ids = pd.read_csv(source / "accounts.csv", dtype=str, keep_default_na=False)["account_id"]
    return set(ids) - {""}  # the deliberately blank id


def test_demo_is_regenerated_when_size_or_seed_differ(tmp_path, monkeypatch, capsys):
    source = tmp_path / "demo"
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(source))
    ensure_demo(12, 1)
    assert json.loads((source / demo.MANIFEST_FILE).read_text()) == {
        "accounts": 12, "seed": 1, "as_of": "2026-10-31", "usage_days": None,
    }  # fmt: skip
    # 12 distinct ids: the deliberately bad rows add a duplicate and a blank id, not accounts.
    assert len(account_ids(source)) == 12
    first = (source / "accounts.csv").read_bytes()
    capsys.readouterr()

    ensure_demo(12, 1)  # same request: kept
    assert capsys.readouterr().out == f"demo data: {source} (exists: 12 accounts, seed 1, as of 2026-10-31)\n"
    assert (source / "accounts.csv").read_bytes() == first

    ensure_demo(15, 1)  # another size: regenerated, and it says so
    out = capsys.readouterr().out
    assert out.startswith(
        f"demo data: {source} was generated with 12 accounts, seed 1, as of 2026-10-31, "
        "not 15 accounts, seed 1, as of 2026-10-31: regenerating\n"
    )
    assert len(account_ids(source)) == 15
    assert json.loads((source / demo.MANIFEST_FILE).read_text())["accounts"] == 15

    ensure_demo(15, 2)  # another seed: regenerated
    assert "not 15 accounts, seed 2" in capsys.readouterr().out
    assert json.loads((source / demo.MANIFEST_FILE).read_text())["seed"] == 2


def test_a_new_demo_starts_from_an_empty_warehouse(tmp_path, monkeypatch, capsys):
    """What the previous demo computed (past segment dates, the CRM sync state) must not be
    reused for the new one: the embedded warehouse goes; another warehouse must be emptied first."""
    import duckdb
    import pytest

    source, warehouse_file = tmp_path / "demo", tmp_path / "wh.duckdb"
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(source))
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", f"duckdb:///{warehouse_file}")
    ensure_demo(12, 1)
    duckdb.connect(str(warehouse_file)).execute("create table previous_demo (x int)").close()
    ensure_demo(12, 1)  # the same demo: the warehouse stays
    assert warehouse_file.exists()
    capsys.readouterr()
    ensure_demo(15, 1)
    assert not warehouse_file.exists()
    assert f"demo data: removed {warehouse_file}: it held what the previous demo computed" in capsys.readouterr().out
    monkeypatch.setenv("POSTSALES_WAREHOUSE_URL", "postgresql+psycopg://analyst:s3cret@db/warehouse")
    with pytest.raises(SystemExit, match="Point POSTSALES_WAREHOUSE_URL at an empty database") as stopped:
        ensure_demo(16, 1)
    assert "s3cret" not in str(stopped.value)
    assert json.loads((source / demo.MANIFEST_FILE).read_text())["accounts"] == 15  # not regenerated


def test_a_demo_from_before_the_manifest_is_regenerated(tmp_path, monkeypatch, capsys):
    source = tmp_path / "demo"
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(source))
    demo.generate(source, accounts=12, seed=1)
    (source / demo.MANIFEST_FILE).unlink()  # as the generator left it before it recorded its parameters
    ensure_demo(15, 1)
    assert f"demo data: {source} was generated without {demo.MANIFEST_FILE}" in capsys.readouterr().out
    assert len(account_ids(source)) == 15


def test_source_files_the_generator_did_not_write_are_left_alone(tmp_path, monkeypatch, capsys):
    source = tmp_path / "export"
    source.mkdir()
    (source / "accounts.csv").write_text("account_id,name\nREAL-1,A real customer\n")
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(source))
    ensure_demo(12, 1)
    assert capsys.readouterr().out == (
        f"demo data: {source}: source files the demo generator did not write (no {demo.MANIFEST_FILE}): "
        "left as they are\n"
    )
    assert (source / "accounts.csv").read_text() == "account_id,name\nREAL-1,A real customer\n"
    assert sorted(p.name for p in source.iterdir()) == ["accounts.csv"]


def make(target: str, cwd: Path) -> str:
    """Run a target of the project's Makefile with ``cwd`` as the project directory (CURDIR)."""
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_HOME"}  # the tests' own Airflow home
    result = subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), target, f"AIRFLOW_HOME={cwd / '.airflow'}"],
        cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout


def test_make_clean_says_what_it_keeps_and_clean_all_removes_it(tmp_path):
    for folder in (".airflow", "data/demo", "data/reports", "data/data_docs/static"):
        (tmp_path / folder).mkdir(parents=True)
    for name in ("data/warehouse.duckdb", "data/warehouse.duckdb.wal", "data/demo/accounts.csv"):
        (tmp_path / name).write_text("x")
    out = make("clean", tmp_path)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["demo", "reports"]
    assert not (tmp_path / ".airflow").exists()
    assert (
        "make clean kept data/demo data/reports (demo source, reports, benchmark data): "
        "make clean-all removes them too" in out
    )
    make("clean-all", tmp_path)
    assert list((tmp_path / "data").iterdir()) == []
    assert "kept" not in make("clean", tmp_path)  # nothing left to mention
