"""extract_entity end to end on DuckDB and PostgreSQL with the hand-built tiny source."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.errors import DataContractError, SourceUnavailableError
from postsales.extract import extract_entity
from postsales.sources import Interval

DAY1 = Interval(tiny.DAY1, tiny.DAY2)
DAY2 = Interval(tiny.DAY2, tiny.DAY3)
FULL = Interval(tiny.DAY1, tiny.DAY3, full_refresh=True)
CRM = ("accounts", "contracts", "survey_responses")
AUDIT_COLUMNS = {"_run_id", "_loaded_at", "quarantined_at", "finished_at", "run_id", "data_docs"}


def run_all(interval: Interval, run_id: str = "test_run", entities=(*CRM, "usage_daily")):
    return {e: extract_entity(e, interval=interval, run_id=run_id, build_data_docs=False) for e in entities}


def table(url: str, name: str) -> pd.DataFrame:
    with warehouse.engine(url).connect() as conn:
        return pd.read_sql(sa.text(f"select * from {name}"), conn)


def snapshot(url: str) -> dict[str, list]:
    """Every warehouse table minus audit columns, sorted, for equality checks."""
    result = {}
    for name in (*(f"staging.{e}" for e in (*CRM, "usage_daily")), "ops.quarantine"):
        frame = table(url, name)
        frame = frame[[c for c in frame.columns if c not in AUDIT_COLUMNS]].astype(str)
        result[name] = sorted(map(tuple, frame.itertuples(index=False)))
    for e in (*CRM, "usage_daily"):
        frame = table(url, f"raw.{e}")
        result[f"raw.{e}"] = sorted(zip(frame["record_key"].astype(str), frame["payload"], strict=True))
    return result


def test_day1_counts_and_invariant(warehouse_url, tiny_source):
    summaries = run_all(DAY1)
    expected = {
        "accounts": tiny.ACCOUNTS_DAY1,
        "contracts": tiny.CONTRACTS_DAY1,
        "survey_responses": tiny.SURVEYS_DAY1,
        "usage_daily": tiny.USAGE_DAY1,
    }
    for entity, counts in expected.items():
        s = summaries[entity]
        assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (
            counts["read"],
            counts["loaded"],
            counts["quarantined"],
        ), entity
        assert s.rows_read == s.rows_loaded + s.rows_quarantined
        assert len(table(warehouse_url, f"staging.{entity}")) == counts["loaded"]
        assert len(table(warehouse_url, f"raw.{entity}")) == counts["read"]
    quarantine = table(warehouse_url, "ops.quarantine")
    assert quarantine.groupby("source_table").size().to_dict() == {
        "accounts": 4,
        "contracts": 4,
        "survey_responses": 2,
        "usage_daily": 2,
    }


def reasons(url: str, source_table: str) -> dict[str, list[str]]:
    quarantine = table(url, "ops.quarantine")
    rows = quarantine[quarantine["source_table"] == source_table]
    found: dict[str, list[str]] = {}
    for key, failed in zip(rows["record_key"], rows["failed_expectations"], strict=True):
        found.setdefault(key, []).extend(json.loads(failed))
    return found


def test_every_bad_row_is_quarantined_with_its_reason(warehouse_url, tiny_source):
    run_all(DAY1)
    accounts = reasons(warehouse_url, "accounts")
    assert accounts["A4"] == [
        "lifecycle_stage must be one of ['Implementation', 'Hypercare', 'Adoption', 'Expansion', 'Renewal']"
    ]
    assert accounts[""] == ["account_id is required"]
    assert accounts["A5"] == ["account_id must be unique", "account_id must be unique"]  # both copies
    contracts = reasons(warehouse_url, "contracts")
    assert contracts == {
        "C2": ["arr must be a valid number"],
        "C3": ["account_id must exist in accounts.account_id"],
        "C4": ["end_date must be >= start_date"],
        "C5": ["arr must be in [0, 1e+12]"],
    }
    surveys = reasons(warehouse_url, "survey_responses")
    assert surveys == {
        "A1|2024-03-01T13:00:00|nps": ["score must be in [0, 10] when survey_type is nps"],
        "A3|2024-03-01T13:00:00|csat": ["score must be in [1, 5] when survey_type is csat"],
    }
    usage = reasons(warehouse_url, "usage_daily")
    assert usage["A9|2024-03-01"] == ["account_id must exist in accounts.account_id"]
    assert usage["A1|2099-01-01"] == [  # in the 2024-03-01 file
        "usage_date must not be in the future",
        "usage_date must be the day its file is named for",
    ]
    quarantine = table(warehouse_url, "ops.quarantine")
    c2 = quarantine[quarantine["record_key"] == "C2"].iloc[0]
    assert json.loads(c2["offending_values"]) == {"arr": "n/a"}
    assert json.loads(c2["raw_row"])["arr"] == "n/a"
    assert c2["run_id"] == "test_run"
    assert pd.Timestamp(c2["interval_start"]) == pd.Timestamp(tiny.DAY1)


def test_typed_values_extra_columns_and_lineage(warehouse_url, tiny_source):
    run_all(DAY1, entities=("accounts", "contracts"))
    accounts = table(warehouse_url, "staging.accounts").set_index("account_id")
    a3 = accounts.loc["A3"]
    assert a3["employee_count"] == 9000
    assert a3["segment_override"] == "Enterprise"
    assert pd.Timestamp(a3["updated_at"]) == pd.Timestamp("2024-03-01T10:00:00")
    assert json.loads(a3["_extra"]) == {"crm_owner": "owner@example.com"}
    assert bool(accounts.loc["A1"]["referenceable"]) is True
    assert a3["_run_id"] == "test_run" and a3["_source"].startswith("files:")
    contracts = table(warehouse_url, "staging.contracts").set_index("contract_id")
    assert contracts.loc["C1", "arr"] == 12000.0
    assert str(pd.Timestamp(contracts.loc["C1", "end_date"]).date()) == "2025-01-14"


def test_rerunning_an_interval_three_times_leaves_identical_tables(warehouse_url, tiny_source):
    run_all(DAY1, run_id="first")
    first = snapshot(warehouse_url)
    run_all(DAY1, run_id="second")
    run_all(DAY1, run_id="third")
    assert snapshot(warehouse_url) == first
    runs = table(warehouse_url, "ops.extract_runs")
    assert len(runs) == 4 and set(runs["run_id"]) == {"third"}


def test_incremental_days_equal_a_full_refresh(warehouse_url, tiny_source):
    run_all(DAY1)
    run_all(DAY2)
    incremental = snapshot(warehouse_url)
    for name in ("staging.accounts", "staging.contracts", "staging.usage_daily"):
        assert len(incremental[name]) > 0
    run_all(FULL)
    full = snapshot(warehouse_url)
    for entity in (*CRM, "usage_daily"):
        assert full[f"staging.{entity}"] == incremental[f"staging.{entity}"], entity
    # After the full refresh, a rerun of day 2 replaces exactly day 2's rows.
    run_all(DAY2)
    after = snapshot(warehouse_url)
    for entity in (*CRM, "usage_daily"):
        assert after[f"staging.{entity}"] == full[f"staging.{entity}"], entity


def test_day2_contract_needs_day2_account(warehouse_url, tiny_source):
    extract_entity("contracts", interval=DAY2, run_id="r", build_data_docs=False)
    assert reasons(warehouse_url, "contracts") == {"C6": ["account_id must exist in accounts.account_id"]}
    extract_entity("accounts", interval=DAY2, run_id="r", build_data_docs=False)
    s = extract_entity("contracts", interval=DAY2, run_id="r", build_data_docs=False)
    assert (s.rows_loaded, s.rows_quarantined) == (1, 0)
    assert reasons(warehouse_url, "contracts") == {}  # the rerun replaced the quarantine partition


def test_current_view_picks_latest_version(warehouse_url, tiny_source):
    run_all(DAY1, entities=("accounts",))
    # A1 changes name on day 2.
    rows = [dict(r) for r in tiny.ACCOUNTS]
    rows.append(tiny._account("A1", updated="2024-03-02T15:00:00", name="Acme Renamed"))
    tiny.write_csv(tiny_source / "accounts.csv", tiny.ACCOUNT_COLUMNS, rows)
    extract_entity("accounts", interval=DAY2, run_id="r2", build_data_docs=False)
    history = table(warehouse_url, "staging.accounts")
    assert (history["account_id"] == "A1").sum() == 2
    current = table(warehouse_url, "staging.accounts_current").set_index("account_id")
    assert current.loc["A1", "name"] == "Acme Renamed"
    assert len(current) == 99  # 98 day-1 accounts + A2


def test_a_key_in_two_files_is_quarantined_like_any_duplicate(warehouse_url, tiny_source):
    run_all(FULL)
    # A day-1 row again in a file named for no day (read by every run): both copies are on their
    # file's day, so neither is the original. A copy in another day's file is quarantined as
    # misfiled instead, and the original loads (tests/integration/test_bad_input.py).
    copied = tiny.USAGE_FILES[f"{tiny.DAY1:%Y-%m-%d}"][0]
    tiny.write_csv(tiny_source / "usage_daily" / "late-export.csv", tiny.USAGE_COLUMNS, [copied])
    summary = extract_entity("usage_daily", interval=FULL, run_id="r", build_data_docs=False)
    day1, day2 = tiny.USAGE_DAY1, tiny.USAGE_DAY2
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (
        day1["read"] + day2["read"] + 1,
        day1["loaded"] + day2["loaded"] - 1,
        day1["quarantined"] + day2["quarantined"] + 2,
    )
    quarantine = table(warehouse_url, "ops.quarantine")
    key = f"{copied['account_id']}|{copied['usage_date']}"
    copies = quarantine[quarantine["record_key"] == key]
    assert [json.loads(reasons) for reasons in copies["failed_expectations"]] == [
        ["(account_id, usage_date) must be unique"]
    ] * 2


def test_empty_extract_never_wipes_loaded_data(warehouse_url, tiny_source):
    run_all(DAY1, entities=("accounts",))
    tiny.write_csv(tiny_source / "accounts.csv", tiny.ACCOUNT_COLUMNS, [])  # header only
    with pytest.raises(DataContractError, match="refusing to wipe them") as info:
        extract_entity("accounts", interval=DAY1, run_id="r", build_data_docs=False)
    assert "98 rows" in str(info.value) and "allow_empty=true" in str(info.value)
    with pytest.raises(DataContractError, match="refusing to wipe them"):
        extract_entity("accounts", interval=FULL, run_id="r", build_data_docs=False)
    assert len(table(warehouse_url, "staging.accounts")) == 98
    # An interval that never held rows accepts an empty extract; allow_empty empties one that did.
    assert extract_entity("accounts", interval=DAY2, run_id="r", build_data_docs=False).rows_read == 0
    extract_entity("accounts", interval=DAY1, run_id="r", allow_empty=True, build_data_docs=False)
    assert len(table(warehouse_url, "staging.accounts")) == 0


def test_a_day_without_a_usage_file_is_an_empty_extract(warehouse_url, tiny_source):
    """A daily folder with no file for the interval (a quiet day, or after the last export)
    loads nothing and fails nothing; the scheduler runs such days after every demo."""
    run_all(DAY1, entities=("accounts",))
    later = Interval(tiny.DAY3, tiny.DAY3.replace(day=4))  # tiny has usage files for 1 and 2 March only
    summary = extract_entity("usage_daily", interval=later, run_id="r", build_data_docs=False)
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (0, 0, 0)
    assert len(table(warehouse_url, "staging.usage_daily")) == 0


def test_missing_required_column_fails_and_loads_nothing(warehouse_url, tiny_source):
    rows = [{k: v for k, v in r.items() if k != "industry"} for r in tiny.ACCOUNTS]
    columns = [c for c in tiny.ACCOUNT_COLUMNS if c != "industry"]
    tiny.write_csv(tiny_source / "accounts.csv", columns, rows)
    with pytest.raises(DataContractError) as info:
        extract_entity("accounts", interval=DAY1, run_id="r", build_data_docs=False)
    message = str(info.value)
    assert "accounts" in message and "accounts.csv" in message and "['industry']" in message
    assert "Fix:" in message
    assert not sa.inspect(warehouse.engine(warehouse_url)).has_table("accounts", schema="staging") or (
        len(table(warehouse_url, "staging.accounts")) == 0
    )


def test_too_many_bad_rows_fail_the_batch(warehouse_url, tiny_source):
    rows = [dict(r, employee_count="many") for r in tiny.ACCOUNTS]
    tiny.write_csv(tiny_source / "accounts.csv", tiny.ACCOUNT_COLUMNS, rows)
    with pytest.raises(DataContractError) as info:
        extract_entity("accounts", interval=DAY1, run_id="r", build_data_docs=False)
    message = str(info.value)
    assert "102 of 102 rows (100.0%)" in message
    assert "employee_count must be a valid integer" in message
    assert "max_failed_fraction" in message
    assert len(table(warehouse_url, "staging.accounts")) == 0
    assert len(table(warehouse_url, "ops.quarantine")) == 0


def test_unreachable_source_is_a_transient_error(duckdb_url, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTSALES_SOURCE_DIR", str(tmp_path / "not-mounted"))
    with pytest.raises(SourceUnavailableError, match="not-mounted"):
        extract_entity("accounts", interval=DAY1, run_id="r", build_data_docs=False)


def test_data_docs_are_built_for_the_run(duckdb_url, tiny_source, tmp_path):
    extract_entity("accounts", interval=DAY1, run_id="manual__2024-03-01", build_data_docs=False)
    summary = extract_entity("contracts", interval=DAY1, run_id="manual__2024-03-01", build_data_docs=True)
    assert summary.data_docs is not None
    index = tmp_path / "data" / "data_docs" / "manual__2024-03-01" / "contracts" / "index.html"
    assert summary.data_docs == str(index)
    assert index.is_file() and "contracts_contract" in index.read_text()


def test_empty_fields_the_segmentation_rules_read_are_loaded_not_quarantined(duckdb_url, tiny_source):
    # An empty rule input is a data gap the segments report, not an unusable row.
    rows = [dict(r) for r in tiny.ACCOUNTS]
    rows[0]["annual_revenue"] = ""  # F001
    rows[1]["wallet_potential_arr"] = ""  # F002
    rows[2]["industry"] = ""  # F003
    rows[3]["employee_count"] = ""  # F004
    rows[4]["annual_revenue"] = "n/a"  # F005: a value that cannot be typed is still quarantined
    tiny.write_csv(tiny_source / "accounts.csv", tiny.ACCOUNT_COLUMNS, rows)
    summary = extract_entity("accounts", interval=DAY1, run_id="r", build_data_docs=False)
    assert (summary.rows_loaded, summary.rows_quarantined) == (97, 5)
    found = reasons(duckdb_url, "accounts")
    assert found["F005"] == ["annual_revenue must be a valid number"]
    assert not {"F001", "F002", "F003", "F004"} & set(found)
    staged = table(duckdb_url, "staging.accounts").set_index("account_id")
    assert pd.isna(staged.loc["F001", "annual_revenue"])
    assert pd.isna(staged.loc["F002", "wallet_potential_arr"])
    assert pd.isna(staged.loc["F003", "industry"])
    assert pd.isna(staged.loc["F004", "employee_count"])


def work_tables(url: str) -> list[str]:
    with warehouse.engine(url).connect() as conn:
        rows = conn.execute(sa.text("select table_schema, table_name from information_schema.tables")).all()
    return sorted(f"{schema}.{name}" for schema, name in rows if name.startswith("_load_"))


def usage_targets(url: str) -> tuple[sa.Table, ...]:
    from postsales.config import load_expectations

    tables = warehouse.ensure_schema(warehouse.engine(url), warehouse.build_tables(load_expectations()))
    return tables.raw["usage_daily"], tables.staging["usage_daily"], tables.quarantine


def create_work_tables(url: str, tag: str) -> None:
    """The work tables a load in groups fills: empty copies named _load_<table>_<tag>."""
    for target in usage_targets(url):
        columns = (sa.Column(c.name, c.type) for c in target.c)
        sa.Table(f"_load_{target.name}_{tag}", sa.MetaData(), *columns, schema=target.schema).create(
            warehouse.engine(url)
        )


def test_work_tables_a_killed_load_left_are_dropped_by_the_next_extract(warehouse_url, tiny_source):
    run_all(FULL, entities=("accounts",))
    create_work_tables(warehouse_url, "0badc0de")  # a full refresh in groups killed with kill -9
    summary = extract_entity("usage_daily", interval=FULL, run_id="rerun", build_data_docs=False)
    assert summary.rows_read == tiny.USAGE_DAY1["read"] + tiny.USAGE_DAY2["read"]
    assert work_tables(warehouse_url) == []


def test_work_tables_of_a_load_still_running_are_kept(warehouse_url, tiny_source):
    from postsales import extract

    run_all(FULL, entities=("accounts",))
    eng = warehouse.engine(warehouse_url)
    # A load of another interval, running: on PostgreSQL its session holds its tag's advisory lock;
    # DuckDB has one process, whose loads hold their tags in memory.
    running = "c0ffee00"
    holder = eng.connect() if eng.dialect.name == "postgresql" else None
    if holder is not None:
        lock = sa.text("select pg_advisory_lock(:space, :key)")
        holder.execute(lock, {"space": extract.WORK_LOCK_SPACE, "key": extract._work_lock_key(running)})
        holder.commit()
    else:
        extract._held_tags.add(running)
    try:
        create_work_tables(warehouse_url, running)
        extract_entity("usage_daily", interval=FULL, run_id="r", build_data_docs=False)
        assert work_tables(warehouse_url) == [
            "ops._load_quarantine_c0ffee00",
            "raw._load_usage_daily_c0ffee00",
            "staging._load_usage_daily_c0ffee00",
        ]
    finally:
        if holder is not None:
            holder.invalidate()  # the session ends and its lock with it, as when its process is killed
            holder.close()
        extract._held_tags.discard(running)
    extract_entity("usage_daily", interval=DAY1, run_id="next", build_data_docs=False)
    assert work_tables(warehouse_url) == []
