"""Bad input never runs code, never vanishes, never takes a run down (issue #16).

Each case is a hand-made row in the tiny source (tests/tiny.py) whose outcome is known: the
row is quarantined with the reason given, or loaded with the value given, on DuckDB and
PostgreSQL; never a traceback, never a row that is neither loaded nor quarantined.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.config import ConfigError, SqlEntityMapping, Thresholds, load_expectations, load_sources
from postsales.errors import DataContractError
from postsales.extract import extract_entity
from postsales.sources import Interval

DAY1 = Interval(tiny.DAY1, tiny.DAY2)


def extract(entity: str, interval: Interval = DAY1, **options):
    return extract_entity(entity, interval=interval, run_id="r", build_data_docs=False, **options)


def table(url: str, name: str) -> pd.DataFrame:
    with warehouse.engine(url).connect() as conn:
        return pd.read_sql(sa.text(f"select * from {name}"), conn)


def reasons(url: str, source_table: str) -> dict[str, list[str]]:
    quarantine = table(url, "ops.quarantine")
    rows = quarantine[quarantine["source_table"] == source_table]
    return {
        key: json.loads(failed) for key, failed in zip(rows["record_key"], rows["failed_expectations"], strict=True)
    }


def write_accounts(source, *extra_rows) -> None:
    tiny.write_csv(source / "accounts.csv", tiny.ACCOUNT_COLUMNS, [*tiny.ACCOUNTS, *extra_rows])


def write_contracts(source, *extra_rows) -> None:
    tiny.write_csv(source / "contracts.csv", tiny.CONTRACT_COLUMNS, [*tiny.CONTRACTS, *extra_rows])


def test_non_finite_and_oversized_arr_is_quarantined_not_loaded(warehouse_url, tiny_source):
    # numeric(38, 6), which segmentation casts ARR to, holds 32 digits before the point: a value
    # beyond it is no valid number; one within it but above the business bound is out of range.
    bad = {"X-INF": "inf", "X-INFINITY": "Infinity", "X-1E400": "1e400", "X-1E32": "1e32"}
    write_contracts(
        tiny_source,
        *(tiny._contract(key, "A1", arr=arr) for key, arr in bad.items()),
        tiny._contract("X-BIG", "A1", arr="99000000000000000000000000000000"),  # 32 digits
    )
    extract("accounts")
    summary = extract("contracts")
    read, loaded, quarantined = tiny.CONTRACTS_DAY1.values()
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (read + 5, loaded, quarantined + 5)
    found = reasons(warehouse_url, "contracts")
    assert {key: found[key] for key in bad} == {key: ["arr must be a valid number"] for key in bad}
    assert found["X-BIG"] == ["arr must be in [0, 1e+12]"]
    raw = table(warehouse_url, "raw.contracts").set_index("record_key")
    assert json.loads(raw.loc["X-BIG", "payload"])["arr"] == "99000000000000000000000000000000"


MONEY_BOUND = "must be in [0, 1e+12]"


def test_money_beyond_the_business_bound_is_quarantined_so_every_sum_fits(warehouse_url, tiny_source):
    """Two ARRs that each fit numeric(38, 6) overflowed it once summed (segments, cohorts).

    Money is bounded at 1e12 per row: sums of up to 1e20 rows still fit its 32 digits.
    """
    from postsales.cohorts import compute_snapshot
    from postsales.segment.engine import compute_segments

    huge = "99000000000000000000000000000000"  # 9.9e31: < 1e32, accepted before the bound
    write_contracts(
        tiny_source,
        tiny._contract("X-HUGE-1", "A1", arr=huge),
        tiny._contract("X-HUGE-2", "A1", arr=huge),
        tiny._contract("X-ABOVE", "A1", arr="1000000000000.01"),
        # A3's only other contract (C4) is quarantined: its ARR is exactly these two.
        tiny._contract("X-TOP-1", "A3", arr="1000000000000"),  # the bound is in
        tiny._contract("X-TOP-2", "A3", arr="1e12"),
    )
    write_accounts(tiny_source, tiny._account("X-WALLET", wallet_potential_arr="2e12", annual_revenue="1e13"))
    extract("accounts")
    summary = extract("contracts")
    read, loaded, quarantined = tiny.CONTRACTS_DAY1.values()
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (read + 5, loaded + 2, quarantined + 3)
    found = reasons(warehouse_url, "contracts")
    assert {key: found[key] for key in ("X-HUGE-1", "X-HUGE-2", "X-ABOVE")} == {
        key: [f"arr {MONEY_BOUND}"] for key in ("X-HUGE-1", "X-HUGE-2", "X-ABOVE")
    }
    assert reasons(warehouse_url, "accounts")["X-WALLET"] == [
        f"annual_revenue {MONEY_BOUND}",
        f"wallet_potential_arr {MONEY_BOUND}",
    ]
    for entity in ("survey_responses", "usage_daily"):
        extract(entity)

    compute_segments(tiny.DAY1.date(), warehouse_url=warehouse_url)
    compute_snapshot(tiny.DAY1.date(), warehouse_url=warehouse_url)
    features = table(warehouse_url, "mart.account_features")
    features = features[features["as_of_date"].astype(str) == "2024-03-01"].set_index("account_id")
    assert (features.loc["A1", "arr"], features.loc["A3", "arr"]) == (12000.0, 2e12)
    monthly = table(warehouse_url, "mart.mrr_monthly")
    monthly = monthly[monthly["month"].astype(str) == "2024-03-01"].set_index("account_id")
    assert (monthly.loc["A1", "arr"], monthly.loc["A3", "arr"]) == (12000.0, 2e12)


def test_integers_beyond_bigint_are_quarantined_and_the_rest_load_exactly(warehouse_url, tiny_source):
    write_accounts(
        tiny_source,
        tiny._account("X-1E400", employee_count="1e400"),
        tiny._account("X-20DIGITS", employee_count="99999999999999999999"),
        tiny._account("X-BIGINT-MAX-PLUS-1", employee_count="9223372036854775808"),
        tiny._account("X-BIGINT-MAX", employee_count="9223372036854775807"),
        tiny._account("X-2POW53-PLUS-1", employee_count="9007199254740993"),  # not a double
    )
    summary = extract("accounts")
    read, loaded, quarantined = tiny.ACCOUNTS_DAY1.values()
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (read + 5, loaded + 2, quarantined + 3)
    found = reasons(warehouse_url, "accounts")
    for key in ("X-1E400", "X-20DIGITS", "X-BIGINT-MAX-PLUS-1"):
        assert found[key] == ["employee_count must be a valid integer"], key
    with warehouse.engine(warehouse_url).connect() as conn:
        exact = dict(
            conn.execute(
                sa.text("select account_id, employee_count from staging.accounts where account_id like 'X-%'")
            ).all()
        )
    assert exact == {"X-BIGINT-MAX": 9223372036854775807, "X-2POW53-PLUS-1": 9007199254740993}


def test_dates_with_an_offset_are_the_date_of_the_utc_instant(warehouse_url, tiny_source):
    write_contracts(
        tiny_source,
        tiny._contract("X-Z", "A1", start="2024-01-01T00:00:00Z", end="2024-12-31T23:00:00-05:00"),
        tiny._contract("X-OFFSET", "A1", start="2024-01-01T01:00:00+02:00", end="2025-01-01"),
    )
    extract("accounts")
    summary = extract("contracts")
    read, loaded, quarantined = tiny.CONTRACTS_DAY1.values()
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (read + 2, loaded + 2, quarantined)
    staged = table(warehouse_url, "staging.contracts").set_index("contract_id")
    dates = {key: (str(staged.loc[key, "start_date"]), str(staged.loc[key, "end_date"])) for key in ("X-Z", "X-OFFSET")}
    # 2024-12-31T23:00-05:00 is 2025-01-01T04:00Z; 2024-01-01T01:00+02:00 is 2023-12-31T23:00Z.
    assert dates == {"X-Z": ("2024-01-01", "2025-01-01"), "X-OFFSET": ("2023-12-31", "2025-01-01")}


PLAUSIBLE = "must be between 1990-01-01 and 2099-12-31"


def test_implausible_dates_are_quarantined_and_an_open_end_is_evergreen(warehouse_url, tiny_source):
    write_contracts(
        tiny_source,
        tiny._contract("X-YEAR1", "A1", start="0001-01-01"),  # an unset CRM date field
        tiny._contract("X-1989", "A1", start="1989-12-31"),
        tiny._contract("X-2100", "A1", end="2100-01-01"),
        tiny._contract("X-1990", "A1", start="1990-01-01"),  # the bounds are in
        tiny._contract("X-2099", "A1", end="2099-12-31"),
        tiny._contract("X-OPEN", "A1", end="9999-12-31"),  # a CRM's "no end"
    )
    write_accounts(tiny_source, tiny._account("X-CREATED", created_at="0001-01-01T00:00:00"))
    extract("accounts")
    summary = extract("contracts")
    read, loaded, quarantined = tiny.CONTRACTS_DAY1.values()
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (read + 6, loaded + 3, quarantined + 3)
    found = reasons(warehouse_url, "contracts")
    assert {key: found[key] for key in ("X-YEAR1", "X-1989", "X-2100")} == {
        "X-YEAR1": [f"start_date {PLAUSIBLE}"],
        "X-1989": [f"start_date {PLAUSIBLE}"],
        "X-2100": [f"end_date {PLAUSIBLE}"],
    }
    assert reasons(warehouse_url, "accounts")["X-CREATED"] == [f"created_at {PLAUSIBLE}"]
    staged = table(warehouse_url, "staging.contracts").set_index("contract_id")
    assert str(staged.loc["X-1990", "start_date"]) == "1990-01-01"
    assert str(staged.loc["X-2099", "end_date"]) == "2099-12-31"
    assert staged.loc["X-OPEN", "end_date"] is None  # evergreen
    raw = table(warehouse_url, "raw.contracts").set_index("record_key")
    assert json.loads(raw.loc["X-OPEN", "payload"])["end_date"] == "9999-12-31"  # raw keeps what was read


DAY2 = Interval(tiny.DAY2, tiny.DAY3)
FULL = Interval(tiny.DAY1, tiny.DAY3, full_refresh=True)
MISFILED = "usage_date must be the day its file is named for"


def usage_state(url: str) -> tuple[list, dict]:
    staged = table(url, "staging.usage_daily")
    rows = sorted(zip(staged["account_id"], staged["usage_date"].astype(str), staged["active_users"], strict=True))
    return rows, reasons(url, "usage_daily")


def test_a_row_filed_under_another_days_file_is_counted_and_quarantined(warehouse_url, tiny_source):
    day1, day2 = (f"{day:%Y-%m-%d}" for day in (tiny.DAY1, tiny.DAY2))
    # A2 has no usage on day 1, so this row is nowhere else; F001's is a copy of a day-1 row.
    late = [tiny._usage("A2", day=day1, active="7"), tiny._usage("F001", day=day1)]
    tiny.write_csv(tiny_source / "usage_daily" / f"{day2}.csv", tiny.USAGE_COLUMNS, [*tiny.USAGE_FILES[day2], *late])
    extract("accounts", interval=FULL)

    first = extract("usage_daily", interval=DAY1)
    second = extract("usage_daily", interval=DAY2)
    assert (first.rows_read, first.rows_loaded, first.rows_quarantined) == tuple(tiny.USAGE_DAY1.values())
    assert (second.rows_read, second.rows_loaded, second.rows_quarantined) == (2 + 2, 2, 2)
    incremental = usage_state(warehouse_url)
    assert incremental[1]["A2|2024-03-01"] == [MISFILED]
    assert incremental[1]["F001|2024-03-01"] == [MISFILED]  # only the copy: the day-1 row loads
    assert ("F001", "2024-03-01", 10) in incremental[0]
    assert not any(account == "A2" and day == day1 for account, day, _ in incremental[0])

    # A full refresh puts every row in the same place.
    full = extract("usage_daily", interval=FULL)
    assert (full.rows_read, full.rows_loaded, full.rows_quarantined) == (100 + 4, 98 + 2, 2 + 2)
    assert usage_state(warehouse_url) == incremental


def test_a_daily_file_missing_a_column_fails_the_batch_naming_that_file(warehouse_url, tiny_source):
    day2 = tiny_source / "usage_daily" / f"{tiny.DAY2:%Y-%m-%d}.csv"
    columns = [c for c in tiny.USAGE_COLUMNS if c != "events"]
    tiny.write_csv(day2, columns, [{c: row[c] for c in columns} for row in tiny.USAGE_FILES[f"{tiny.DAY2:%Y-%m-%d}"]])
    extract("accounts", interval=FULL)
    with pytest.raises(DataContractError) as info:  # the day-1 file has the column: the rows are not the problem
        extract("usage_daily", interval=FULL)
    assert str(info.value).startswith(
        f"usage_daily ({day2}): required column(s) ['events'] missing; "
        "found ['account_id', 'usage_date', 'active_users', 'licensed_seats', 'features_used']. Fix:"
    )
    assert len(table(warehouse_url, "staging.usage_daily")) == 0
    assert reasons(warehouse_url, "usage_daily") == {}


def test_a_column_named_twice_fails_the_batch(warehouse_url, tiny_source):
    path = tiny_source / "contracts.csv"
    rows = [{**row, "arr_again": "1"} for row in tiny.CONTRACTS]
    tiny.write_csv(path, [*tiny.CONTRACT_COLUMNS, "arr_again"], rows)
    path.write_text(path.read_text().replace("arr_again", "arr", 1))
    extract("accounts")
    with pytest.raises(DataContractError, match=rf"^{path}: the header names 'arr' \(2 times\)"):
        extract("contracts")
    assert len(table(warehouse_url, "staging.contracts")) == 0


def test_a_nul_character_fails_the_batch_instead_of_the_database_insert(warehouse_url, tiny_source):
    write_accounts(tiny_source, tiny._account("X-NUL", name="Acme\x00Corp"))
    row = len(tiny.ACCOUNTS) + 1
    with pytest.raises(
        DataContractError, match=rf"accounts\.csv: column 'name' holds a NUL character \(data row {row}\)"
    ):
        extract("accounts")


# --- The corpus: what an attacker or a careless CRM admin puts in a field -------------------------

LOADED, QUARANTINED = "loaded", "quarantined"
LONG_NAME = "Very Long Company " * 6_000  # ~100 kB in one cell
STAGE_REASON = "lifecycle_stage must be one of ['Implementation', 'Hypercare', 'Adoption', 'Expansion', 'Renewal']"
SEGMENT_REASON = "segment_override must be one of ['SMB', 'Mid-Market', 'Enterprise']"
AS_EXPORTED = "as exported"
AS_NUMBERS = {"employee_count": 12, "wallet_potential_arr": 5000.0}
# (key, fields as exported, outcome, what it must be: the staged values, or the reasons)
ACCOUNT_CASES = [
    ("X-NEG-ZERO", {"employee_count": "-0"}, LOADED, {"employee_count": 0}),
    ("X-NEG-ZERO-NUMBER", {"annual_revenue": "-0.0"}, LOADED, {"annual_revenue": 0.0}),  # and no -0.0: see below
    ("X-SPACES", {"employee_count": " 12 ", "wallet_potential_arr": " 5e3 "}, LOADED, AS_NUMBERS),
    ("X-SCIENTIFIC", {"employee_count": "1.2e1", "wallet_potential_arr": "5000"}, LOADED, AS_NUMBERS),
    ("X-INT-AS-FLOAT", {"employee_count": "12.0"}, LOADED, {"employee_count": 12}),
    ("X-FRACTION", {"employee_count": "12.5"}, QUARANTINED, ["employee_count must be a valid integer"]),
    ("X-HEX", {"employee_count": "0x10"}, QUARANTINED, ["employee_count must be a valid integer"]),
    ("X-FULLWIDTH", {"employee_count": "１２"}, QUARANTINED, ["employee_count must be a valid integer"]),
    ("X-THOUSANDS", {"annual_revenue": "1,000,000"}, QUARANTINED, ["annual_revenue must be a valid number"]),
    ("X-CURRENCY", {"annual_revenue": "$5000"}, QUARANTINED, ["annual_revenue must be a valid number"]),
    ("X-EURO", {"annual_revenue": "5.000,00 €"}, QUARANTINED, ["annual_revenue must be a valid number"]),
    ("X-NAN", {"annual_revenue": "nan"}, QUARANTINED, ["annual_revenue must be a valid number"]),
    ("X-NAN-INT", {"employee_count": "NaN"}, QUARANTINED, ["employee_count must be a valid integer"]),
    ("X-NULL", {"annual_revenue": "NULL"}, QUARANTINED, ["annual_revenue must be a valid number"]),
    ("X-NA", {"wallet_potential_arr": "N/A"}, QUARANTINED, ["wallet_potential_arr must be a valid number"]),
    ("X-NEG-INF", {"wallet_potential_arr": "-inf"}, QUARANTINED, ["wallet_potential_arr must be a valid number"]),
    ("   ", {}, QUARANTINED, ["account_id is required"]),  # a whitespace-only key is no key
    ("X-BOOL-CAPS", {"referenceable": "TRUE"}, LOADED, {"referenceable": True}),
    ("X-BOOL-YES", {"referenceable": " Yes "}, LOADED, {"referenceable": True}),
    ("X-BOOL-EMPTY", {"referenceable": ""}, LOADED, {"referenceable": None}),
    ("X-BOOL-TWO", {"referenceable": "2"}, QUARANTINED, ["referenceable must be a valid boolean"]),
    ("X-BOOL-JA", {"referenceable": "ja"}, QUARANTINED, ["referenceable must be a valid boolean"]),
    ("X-FEB-30", {"go_live_date": "2024-02-30"}, QUARANTINED, ["go_live_date must be a valid date"]),
    ("X-MONTH-13", {"go_live_date": "2024-13-01"}, QUARANTINED, ["go_live_date must be a valid date"]),
    ("X-US-DATE", {"go_live_date": "01/02/2024"}, QUARANTINED, ["go_live_date must be a valid date"]),
    ("X-MONTH-ONLY", {"go_live_date": "2024-01"}, QUARANTINED, ["go_live_date must be a valid date"]),
    ("X-BASIC-ISO", {"go_live_date": "20240101"}, QUARANTINED, ["go_live_date must be a valid date"]),
    ("X-LEAP-DAY", {"go_live_date": "2024-02-29"}, LOADED, {"go_live_date": "2024-02-29"}),
    ("X-PADDED-DATE", {"go_live_date": " 2024-02-01 "}, LOADED, {"go_live_date": "2024-02-01"}),
    ("X-LEAP-SECOND", {"created_at": "2016-12-31T23:59:60Z"}, QUARANTINED, ["created_at must be a valid timestamp"]),
    ("X-FAR-OFFSET", {"created_at": "2023-06-01T10:00:00+14:00"}, LOADED, {"created_at": "2023-05-31 20:00:00"}),
    ("X-STAGE-CASE", {"lifecycle_stage": "adoption"}, QUARANTINED, [STAGE_REASON]),
    ("X-STAGE-SPACE", {"lifecycle_stage": "Adoption "}, QUARANTINED, [STAGE_REASON]),
    ("X-SCRIPT", {"segment_override": "<script>alert(1)</script>"}, QUARANTINED, [SEGMENT_REASON]),
    # Text is data: loaded exactly as exported, whatever it would mean to a terminal, a spreadsheet or SQL.
    ("X-LONG", {"name": LONG_NAME}, LOADED, AS_EXPORTED),
    ("X-CONTROL", {"name": "Red\x1b[31m Corp\x07\r\n2nd line"}, LOADED, AS_EXPORTED),
    ("X-FORMULA", {"name": '=HYPERLINK("http://evil.example","x")'}, LOADED, AS_EXPORTED),
    ("X-SQL", {"name": "Robert'); DROP TABLE staging.accounts;--"}, LOADED, AS_EXPORTED),
    ("X-ZERO-WIDTH", {"industry": "Software\u200b"}, LOADED, AS_EXPORTED),
]  # fmt: skip
CONTRACT_CASES = [
    ("X-TINY-ARR", {"arr": "1e-7"}, LOADED, {"arr": 1e-7}),
    ("X-NEG-ZERO-ARR", {"arr": "-0"}, LOADED, {"arr": 0.0}),
    ("X-SPACE-THOUSANDS", {"arr": "12 000"}, QUARANTINED, ["arr must be a valid number"]),
    ("X-EMPTY-ARR", {"arr": ""}, QUARANTINED, ["arr is required"]),
    ("X-BAD-LEAP", {"end_date": "2023-02-29"}, QUARANTINED, ["end_date must be a valid date"]),
    ("X-DATE-WITH-TIME", {"start_date": "2024-01-15T00:00:00"}, LOADED, {"start_date": "2024-01-15"}),
    ("X-YEAR-ZERO", {"start_date": "0000-01-01"}, QUARANTINED, ["start_date must be a valid date"]),
    ("X-YEAR-10000", {"end_date": "10000-01-01"}, QUARANTINED, ["end_date must be a valid date"]),
]  # fmt: skip


def corpus_rows(cases, make):
    return [make(key, **fields) for key, fields, _, _ in cases]


def assert_outcomes(url: str, entity: str, key_column: str, cases) -> None:
    found = reasons(url, entity)
    staged = table(url, f"staging.{entity}").set_index(key_column)
    for key, fields, outcome, expected in cases:
        expected = fields if expected == AS_EXPORTED else expected
        if outcome == QUARANTINED:
            assert found.get(key) == expected, key
            assert key not in staged.index, key
            continue
        assert key not in found, (key, found.get(key))
        row = staged.loc[key]
        got = {c: (None if pd.isna(row[c]) else row[c]) for c in expected}
        got = {c: str(v) if isinstance(v, (pd.Timestamp, dt.date)) else v for c, v in got.items()}
        assert got == expected, key


def test_the_bad_input_corpus_is_quarantined_with_reasons_or_loaded_as_meant(warehouse_url, tiny_source):
    loose = load_expectations().model_copy(update={"thresholds": Thresholds(max_failed_fraction=1.0)})
    write_accounts(tiny_source, *corpus_rows(ACCOUNT_CASES, tiny._account))
    write_contracts(tiny_source, *corpus_rows(CONTRACT_CASES, lambda key, **f: {**tiny._contract(key, "A1"), **f}))
    summaries = {e: extract(e, expectations=loose) for e in ("accounts", "contracts")}
    for entity, cases, base in (
        ("accounts", ACCOUNT_CASES, tiny.ACCOUNTS_DAY1),
        ("contracts", CONTRACT_CASES, tiny.CONTRACTS_DAY1),
    ):
        bad = sum(outcome == QUARANTINED for _, _, outcome, _ in cases)
        s = summaries[entity]
        assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (
            base["read"] + len(cases), base["loaded"] + len(cases) - bad, base["quarantined"] + bad
        ), entity  # fmt: skip
    assert_outcomes(warehouse_url, "accounts", "account_id", ACCOUNT_CASES)
    assert_outcomes(warehouse_url, "contracts", "contract_id", CONTRACT_CASES)
    with warehouse.engine(warehouse_url).connect() as conn:
        zero = conn.execute(
            sa.text("select cast(annual_revenue as varchar(20)) from staging.accounts where account_id = :key"),
            {"key": "X-NEG-ZERO-NUMBER"},
        ).scalar_one()
    assert zero == "0.0" if warehouse_url.startswith("duckdb") else zero == "0"  # a signed zero reads "-0.0" / "-0"


def test_parquet_values_load_exactly_as_typed_in_the_file(warehouse_url, tiny_source):
    # Types a CSV cannot have: an integer column with a null (pandas would read float64), a NaN, an
    # INT96 timestamp after 2262 (pyarrow's nanoseconds would wrap it around to 1830).
    extra = {
        "X-2POW53-PLUS-1": {"employee_count": 9007199254740993},
        "X-BIGINT-MAX": {"employee_count": 9223372036854775807},
        "X-NO-COUNT": {"employee_count": None},
        "X-NAN": {"annual_revenue": float("nan")},
        "X-YEAR-3000": {"created_at": dt.datetime(3000, 1, 1)},
    }
    rows = [*tiny.ACCOUNTS, *(tiny._account(key) for key in extra)]
    columns = {c: [row[c] for row in rows] for c in tiny.ACCOUNT_COLUMNS}
    typed = {
        "employee_count": [int(v) for v in columns["employee_count"]],
        "annual_revenue": [float(v) for v in columns["annual_revenue"]],
        "created_at": [dt.datetime.fromisoformat(v) for v in columns["created_at"]],
    }
    for offset, fields in enumerate(extra.values(), start=len(tiny.ACCOUNTS)):
        for column, value in fields.items():
            typed[column][offset] = value
    arrays = {
        **columns,
        "employee_count": pa.array(typed["employee_count"], pa.int64()),
        "annual_revenue": pa.array(typed["annual_revenue"], pa.float64()),
        "created_at": pa.array(typed["created_at"], pa.timestamp("us")),
    }
    (tiny_source / "accounts.csv").unlink()
    pq.write_table(pa.table(arrays), tiny_source / "accounts.parquet", use_deprecated_int96_timestamps=True)
    summary = extract("accounts")
    read, loaded, quarantined = tiny.ACCOUNTS_DAY1.values()
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (read + 5, loaded + 3, quarantined + 2)
    found = reasons(warehouse_url, "accounts")
    assert found["X-NAN"] == ["annual_revenue must be a valid number"]  # as the text nan in a CSV
    assert found["X-YEAR-3000"] == [f"created_at {PLAUSIBLE}", "created_at must not be in the future"]
    quarantine = table(warehouse_url, "ops.quarantine").set_index("record_key")
    assert json.loads(quarantine.loc["X-YEAR-3000", "offending_values"]) == {"created_at": "3000-01-01T00:00:00"}
    with warehouse.engine(warehouse_url).connect() as conn:
        counts = dict(
            conn.execute(
                sa.text("select account_id, employee_count from staging.accounts where account_id like 'X-%'")
            ).all()
        )
        payload = conn.execute(
            sa.text("select payload from raw.accounts where record_key = 'X-2POW53-PLUS-1'")
        ).scalar_one()
    assert counts == {"X-2POW53-PLUS-1": 9007199254740993, "X-BIGINT-MAX": 9223372036854775807, "X-NO-COUNT": None}
    assert json.loads(payload)["employee_count"] == "9007199254740993"  # raw keeps the value as read


# Columns an ELT tool or a person adds to an export: data like any extra column, not lineage.
UNDERSCORE_COLUMNS = {
    "_notes": "call back in May",
    "_fivetran_synced": "2024-03-01T02:00:00",
    "_airbyte_ab_id": "9f1c",
    "_sdc_batched_at": "2024-03-01T02:00:01",
    "_run_id": "their run",
    "_extra": "{not json",
    "_loaded_at": "yesterday",
}


def assert_underscore_columns_are_data(url: str, summary) -> None:
    read, loaded, quarantined = tiny.ACCOUNTS_DAY1.values()
    assert (summary.rows_read, summary.rows_loaded, summary.rows_quarantined) == (read, loaded, quarantined)
    staged = table(url, "staging.accounts").set_index("account_id")
    assert json.loads(staged.loc["A1", "_extra"]) == {"crm_owner": "owner@example.com", **UNDERSCORE_COLUMNS}
    assert staged.loc["A1", "_run_id"] == "r"  # ours, not the source's
    raw = table(url, "raw.accounts").set_index("record_key")
    assert {c: json.loads(raw.loc["A1", "payload"])[c] for c in UNDERSCORE_COLUMNS} == UNDERSCORE_COLUMNS
    quarantine = table(url, "ops.quarantine").set_index("record_key")
    row = json.loads(quarantine.loc["A4", "raw_row"])  # an unknown lifecycle stage
    assert {c: row[c] for c in UNDERSCORE_COLUMNS} == UNDERSCORE_COLUMNS


def test_columns_starting_with_an_underscore_are_kept_as_extra_columns(warehouse_url, tiny_source):
    rows = [{**row, **UNDERSCORE_COLUMNS} for row in tiny.ACCOUNTS]
    tiny.write_csv(tiny_source / "accounts.csv", [*tiny.ACCOUNT_COLUMNS, *UNDERSCORE_COLUMNS], rows)
    assert_underscore_columns_are_data(warehouse_url, extract("accounts"))


def sql_accounts(tmp_path, monkeypatch, extra: dict, mapping: dict[str, str] | None = None, without=()):
    """Sources reading accounts from a SQLite table of the tiny accounts plus ``extra`` columns
    (a value, or a function of the row), less the columns ``without``."""
    tmp_path.mkdir(exist_ok=True)
    database = tmp_path / "crm.sqlite"
    rows = [{**row, **{c: v(row) if callable(v) else v for c, v in extra.items()}} for row in tiny.ACCOUNTS]
    frame = pd.DataFrame(rows).drop(columns=list(without)).replace("", None)
    crm = sa.create_engine(f"sqlite:///{database}")
    frame.to_sql("crm_accounts", crm, index=False)
    crm.dispose()
    monkeypatch.setenv("POSTSALES_CRM_URL", f"sqlite:///{database}")
    sources = load_sources()
    tables = {"accounts": SqlEntityMapping(table="crm_accounts", columns=mapping or {})}
    entities = {**sources.entities, "accounts": sources.entities["accounts"].model_copy(update={"source": "sql"})}
    return sources.model_copy(update={"sql": sources.sql.model_copy(update={"tables": tables}), "entities": entities})


def test_sql_columns_starting_with_an_underscore_are_kept_as_extra_columns(warehouse_url, tmp_path, monkeypatch):
    sources = sql_accounts(tmp_path, monkeypatch, UNDERSCORE_COLUMNS)
    assert_underscore_columns_are_data(warehouse_url, extract("accounts", sources=sources))


@pytest.mark.parametrize("column", ["_source", "_file_day"])
def test_a_source_column_named_like_our_lineage_fails_the_batch_instead_of_being_overwritten(
    warehouse_url, tiny_source, column
):
    path = tiny_source / "accounts.csv"
    tiny.write_csv(path, [*tiny.ACCOUNT_COLUMNS, column], [{**row, column: "crm"} for row in tiny.ACCOUNTS])
    with pytest.raises(DataContractError) as info:
        extract("accounts")
    assert str(info.value) == (
        f"{path}: column(s) ['{column}'] have a name the pipeline gives its own lineage columns (_source, "
        "_file_day), which would overwrite their values. Fix: rename the column in the export, e.g. to source_note."
    )
    assert len(table(warehouse_url, "staging.accounts")) == 0


def test_a_sql_column_named_like_our_lineage_fails_naming_the_mapping_that_keeps_it(
    warehouse_url, tmp_path, monkeypatch
):
    sources = sql_accounts(tmp_path, monkeypatch, {"_source": "crm"})
    with pytest.raises(DataContractError) as info:
        extract("accounts", sources=sources)
    assert str(info.value) == (
        "accounts (sql:crm_accounts): column(s) ['_source'] have a name the pipeline gives its own lineage "
        "columns (_source, _file_day), which would overwrite their values. Fix: map the column to another name "
        "in include/rules/sources.yaml, e.g. sql.tables.accounts.columns: {source_note: _source}; it is then "
        "kept in _extra."
    )
    # The fix works: mapped, the column is an extra like any other.
    sources = sql_accounts(tmp_path / "fixed", monkeypatch, {"_source": "crm"}, {"source_note": "_source"})
    summary = extract("accounts", sources=sources)
    assert summary.rows_loaded == tiny.ACCOUNTS_DAY1["loaded"]
    staged = table(warehouse_url, "staging.accounts").set_index("account_id")
    assert json.loads(staged.loc["A1", "_extra"])["source_note"] == "crm"
    assert staged.loc["A1", "_source"] == "sql:crm_accounts"


def test_a_sql_mapping_onto_a_column_the_table_also_has_fails_naming_the_mapping(warehouse_url, tmp_path, monkeypatch):
    external = {"external_id": lambda row: row["account_id"] and f"EXT-{row['account_id']}"}  # blank stays blank
    sources = sql_accounts(tmp_path, monkeypatch, external, {"account_id": "external_id"})
    with pytest.raises(ConfigError) as info:
        extract("accounts", sources=sources)
    assert str(info.value) == (
        "include/rules/sources.yaml: field 'sql.tables.accounts.columns': account_id is mapped to the column "
        "'external_id' of crm_accounts, which also has a column 'account_id'; both would be read as account_id. "
        "Fix: map the table's 'account_id' to another name as well (e.g. account_id_in_source: account_id), so it "
        "is kept in _extra, or map account_id to it instead of 'external_id'."
    )
    # The fix works: the table's own account_id is an extra column.
    mapping = {"account_id": "external_id", "account_id_in_source": "account_id"}
    sources = sql_accounts(tmp_path / "fixed", monkeypatch, external, mapping)
    assert extract("accounts", sources=sources).rows_loaded == tiny.ACCOUNTS_DAY1["loaded"]
    staged = table(warehouse_url, "staging.accounts").set_index("account_id")
    assert json.loads(staged.loc["EXT-A1", "_extra"])["account_id_in_source"] == "A1"


def test_two_names_mapped_to_one_sql_column_both_read_it(warehouse_url, tmp_path, monkeypatch):
    # A CRM without a creation date: created_at is read from the modification date too.
    mapping = {"created_at": "updated_at", "updated_at": "updated_at"}
    sources = sql_accounts(tmp_path, monkeypatch, {}, mapping, without=["created_at"])
    assert extract("accounts", sources=sources).rows_loaded == tiny.ACCOUNTS_DAY1["loaded"]
    staged = table(warehouse_url, "staging.accounts").set_index("account_id")
    assert str(staged.loc["A1", "created_at"]) == str(staged.loc["A1", "updated_at"]) == "2024-03-01 10:00:00"
