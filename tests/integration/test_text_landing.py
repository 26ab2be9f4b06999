"""load_text lands exactly what read() gives (issue 18), on DuckDB and PostgreSQL.

Every case compares the two, cell by cell: the work table ordered by ``_row`` against
``SourceRead.frame`` (same columns in the same order, same rows in the same order, the same
text or None), the same origin and per-file columns; or, for a bad source, the same error
with the same message. The cases are the file fixtures of tests/tiny.py,
tests/unit/test_files_source.py and tests/integration/test_bad_input.py, shapes of CSV on
which DuckDB's reader and pandas' part, and CSV files written by hypothesis.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import ACCOUNT_CASES, CONTRACT_CASES, LONG_NAME, UNDERSCORE_COLUMNS, corpus_rows

import tiny
from golden.extract import harness
from postsales import warehouse
from postsales.config import SqlEntityMapping, load_sources
from postsales.errors import DataContractError, SourceUnavailableError
from postsales.sources import FILE_DAY, LINEAGE, SOURCE, Interval, text_table
from postsales.sources.csv_shape import plain_csv_rows
from postsales.sources.files import FileSource
from postsales.sources.salesforce import SalesforceSource
from postsales.sources.sql import SqlSource

DAY1 = Interval(tiny.DAY1, tiny.DAY2)
FULL = Interval(tiny.DAY1, tiny.DAY3, full_refresh=True)


def work_name() -> str:
    return f"_load_text_{uuid.uuid4().hex[:8]}"


def landed_rows(eng: sa.Engine, landed: text_table.TextTable) -> tuple[list[str], list[list]]:
    """The work table's columns and rows (ordered by _row), checking _row is 1..n."""
    with eng.connect() as conn:
        result = conn.execute(sa.select(landed.table).order_by(landed.table.c[text_table.ROW]))
        names = list(result.keys())
        rows = [list(row) for row in result]
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
    assert names[0] == text_table.ROW and names[-2:] == list(LINEAGE)
    return names[1:], [row[1:] for row in rows]


def frame_rows(frame: pd.DataFrame, columns: list[str]) -> list[list]:
    if frame.empty and not len(frame.columns):
        return []
    frame = frame.reindex(columns=columns)
    return [[None if pd.isna(value) else value for value in row] for row in frame.itertuples(index=False)]


def assert_lands_as_read(url: str, source, entity: str, column: str = "updated_at", interval: Interval = DAY1):
    """load_text and read give the same rows, or the same error; returns the TextTable (or the error)."""
    eng = warehouse.engine(url)
    try:
        read = source.read(entity, column, interval)
    except (DataContractError, SourceUnavailableError) as expected:
        with pytest.raises(type(expected)) as info:
            source.load_text(eng, entity, column, interval, work_name())
        assert str(info.value) == str(expected)
        return info.value
    landed = source.load_text(eng, entity, column, interval, work_name())
    try:
        frame = read.frame
        assert landed.columns == [c for c in frame.columns if c not in LINEAGE]
        assert landed.origin == read.origin
        assert landed.file_columns == read.file_columns
        assert landed.rows == len(frame)
        names, rows = landed_rows(eng, landed)
        assert names == [*landed.columns, *LINEAGE]
        expected = frame_rows(frame, [*landed.columns, *LINEAGE])
        assert len(rows) == len(expected)
        for number, (got, want) in enumerate(zip(rows, expected, strict=True), start=1):
            assert got == want, f"row {number}"
    finally:
        landed.table.drop(eng)
    return landed


def write_rows(path: Path, rows: list[list[str]], newline: str = "\n", bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode())


# --- tests/tiny.py --------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [DAY1, FULL], ids=["day1", "full"])
def test_the_tiny_source_lands_as_read(warehouse_url, tiny_source, interval, caplog):
    caplog.set_level(logging.INFO, logger="postsales.sources.file_landing")
    for entity, column in (
        ("accounts", "updated_at"),
        ("contracts", "updated_at"),
        ("survey_responses", "responded_at"),
        ("usage_daily", "usage_date"),
    ):
        landed = assert_lands_as_read(warehouse_url, FileSource(tiny_source), entity, column, interval)
        assert landed.rows > 0
    assert "reading it as before" not in caplog.text  # DuckDB read every file


def test_in_small_chunks_and_transactions_it_lands_the_same(warehouse_url, tiny_source, monkeypatch):
    from postsales.sources import file_landing

    monkeypatch.setattr(text_table, "CHUNK_ROWS", 7)
    monkeypatch.setattr(file_landing, "GROUP_ROWS", 30)
    for day in ("2024-03-01", "2024-03-02"):  # Parquet days too: one statement per group of files
        frame = pd.DataFrame(tiny.USAGE_FILES[day])
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), tiny_source / "usage_daily" / f"{day}.parquet"
        )
        (tiny_source / "usage_daily" / f"{day}.csv").rename(tiny_source / "usage_daily" / f"{day}x.csv")
    tiny.write_csv(tiny_source / "usage_daily" / "2024-03-03.csv", tiny.USAGE_COLUMNS, tiny.USAGE_FILES["2024-03-01"])
    landed = assert_lands_as_read(warehouse_url, FileSource(tiny_source), "usage_daily", "usage_date", FULL)
    assert landed.rows == 3 * 100 + 2 * 2
    assert assert_lands_as_read(warehouse_url, FileSource(tiny_source), "accounts").rows == len(tiny.ACCOUNTS)


# --- tests/unit/test_files_source.py --------------------------------------------------------------


def test_parquet_values_are_the_exact_text_of_each_type(warehouse_url, tmp_path):
    utc = dt.UTC
    table = pa.table(
        {
            "account_id": ["A1", "A2", "A3"],
            "employee_count": pa.array([9007199254740993, None, 9223372036854775807], pa.int64()),
            "annual_revenue": pa.array([1.5, float("nan"), None], pa.float64()),
            "wallet_potential_arr": pa.array([Decimal("12345678901234567890.123456"), Decimal("5.000000"), None]),
            "created_at": pa.array(
                [dt.datetime(2024, 3, 1, 10), dt.datetime(2024, 3, 1, 10, 0, 0, 5), None], pa.timestamp("us")
            ),
            "updated_at": pa.array(
                [dt.datetime(2024, 3, 1, 10, tzinfo=utc)] * 3, pa.timestamp("us", tz="Asia/Karachi")
            ),
            "go_live_date": pa.array([dt.date(2024, 3, 1), dt.date(1, 1, 1), None], pa.date32()),
            "referenceable": pa.array([True, False, None]),
            "industry": pa.array(["Software", "Retail", "Software"]).dictionary_encode(),
            "tags": pa.array([["a", "<b>"], [], None], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, tmp_path / "accounts.parquet")
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts")
    # The columns DuckDB writes as pyarrow does, without the others: read by DuckDB itself.
    same = ["account_id", "employee_count", "wallet_potential_arr", "created_at", "go_live_date", "referenceable"]
    pq.write_table(table.select([*same, "industry"]), tmp_path / "accounts.parquet")
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts")


PARQUET_TYPES = {
    "i8": pa.array([-128, 127, None], pa.int8()),
    "u64": pa.array([18446744073709551615, 0, None], pa.uint64()),
    "f32": pa.array([1.5, 100.0, None], pa.float32()),
    "f64": pa.array([1e20, 1e-7, -0.0], pa.float64()),
    "dec": pa.array([Decimal("-0.000001"), Decimal("0"), None], pa.decimal128(38, 6)),
    "dec0": pa.array([Decimal(5), None, Decimal(-7)], pa.decimal128(10, 0)),
    "ts_s": pa.array([dt.datetime(2024, 3, 1, 10), None, dt.datetime(1970, 1, 1)], pa.timestamp("s")),
    "ts_ms": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 500000), None, dt.datetime(1900, 3, 1)], pa.timestamp("ms")),
    "ts_us": pa.array([dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 1), None], pa.timestamp("us")),
    "ts_ns": pa.array([1, 1_700_000_000_500_000_000, -1], pa.timestamp("ns")),
    "ts_utc": pa.array([dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC), None, None], pa.timestamp("ms", tz="UTC")),
    "date": pa.array([dt.date(9999, 12, 31), dt.date(1970, 1, 1), None], pa.date32()),
    "text": pa.array(["é 😀", "", None], pa.large_string()),
    "time": pa.array([dt.time(10, 0), dt.time(10, 0, 0, 5), None], pa.time64("us")),
    "binary": pa.array([b"abc", b"\xff", None], pa.binary()),
    "nested": pa.array([{"k": 1, "v": [1.5]}, None, {"k": None, "v": []}]),
    "nothing": pa.array([None, None, None], pa.null()),
}


@pytest.mark.parametrize("name", sorted(PARQUET_TYPES))
def test_each_parquet_type_lands_as_its_text(warehouse_url, tmp_path, name):
    table = pa.table({"account_id": ["A1", "A2", "A3"], name: PARQUET_TYPES[name]})
    pq.write_table(table, tmp_path / "accounts.parquet")
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts")


def test_int96_timestamps_after_2262_do_not_wrap_around(warehouse_url, tmp_path):
    created = pa.array([dt.datetime(3000, 1, 1), dt.datetime(2023, 6, 1, 9), None], pa.timestamp("us"))
    table = pa.table({"account_id": ["A1", "A2", "A3"], "created_at": created})
    pq.write_table(table, tmp_path / "accounts.parquet", use_deprecated_int96_timestamps=True)
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts")


def test_a_pandas_index_in_parquet_is_read_as_the_column_it_names(warehouse_url, tmp_path):
    frame = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "name": ["x", "y", "z"]})
    frame.set_index("account_id").to_parquet(tmp_path / "accounts.parquet")
    frame.iloc[[2, 0]].to_parquet(tmp_path / "contracts.parquet")  # an unnamed index: pandas' row numbers
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts")
    landed = assert_lands_as_read(warehouse_url, FileSource(tmp_path), "contracts")
    assert landed.columns == ["account_id", "name"]


def test_an_empty_parquet_file_and_a_header_only_csv_land_no_rows(warehouse_url, tmp_path):
    pq.write_table(pa.table({"account_id": pa.array([], pa.string())}), tmp_path / "accounts.parquet")
    tiny.write_csv(tmp_path / "contracts.csv", tiny.CONTRACT_COLUMNS, [])
    assert assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts").rows == 0
    landed = assert_lands_as_read(warehouse_url, FileSource(tmp_path), "contracts")
    assert (landed.rows, landed.columns) == (0, tiny.CONTRACT_COLUMNS)


# Files read() fails on, or reads in a way other readers do not (pandas accepts a trailing empty
# field and text after a closing quote).
BAD_FILES = {
    "latin-1": "account_id,name\nA1,Société Générale\n".encode("latin-1"),
    "not utf-8 far in": b"account_id,name\n" + b"A0001,Plain name\n" * 50_000 + b"A9999,Soci\xe9t\xe9\n",
    "surrogate": b"account_id,name\nA1,\xed\xa0\x80\n",
    "empty": b"",
    "column named twice": b"contract_id,arr,plan, arr\nC1,100,Growth,200\n",
    "one field too many": b"contract_id,arr\nC1,1,000\n",
    "an empty field too many": b"contract_id,arr\nC1,1,\n",
    "nul": b"account_id,name\nA1,ok\nA2,bad\x00name\n",
    "nul after a quoted line break": b'account_id,name\n"A\n1",ok\nA2,x\nA3,bad\x00name\n',
    "unterminated quote": b'account_id,name\nA1,"open\n',
    "text after a closing quote": b'account_id,name\n"A1"x,ok\n',
    "lineage column": b"account_id,_source\nA1,crm\n",
}


@pytest.mark.parametrize("content", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_a_bad_csv_fails_with_todays_message(warehouse_url, tmp_path, content):
    (tmp_path / "accounts.csv").write_bytes(content)
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts")


def test_a_row_number_column_cannot_be_landed_and_says_so(warehouse_url, tmp_path):
    (tmp_path / "accounts.csv").write_bytes(b"account_id,_row\nA1,7\n")  # read() takes _row as data
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).load_text(warehouse.engine(warehouse_url), "accounts", "updated_at", DAY1, work_name())
    assert str(info.value) == (
        f"{tmp_path / 'accounts.csv'}: column name(s) the warehouse cannot hold as read: '_row': _row is the name "
        "the pipeline gives the row number of the landed rows. Fix: rename the column in the export."
    )


def test_damaged_parquet_fails_with_todays_message(warehouse_url, tmp_path):
    (tmp_path / "accounts.parquet").write_bytes(b"PAR1 not really")
    assert isinstance(assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts"), DataContractError)
    pq.write_table(pa.table({"a": [1], "A ": [2], " a": [3]}), tmp_path / "accounts.parquet")  # a repeated name
    assert isinstance(assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts"), DataContractError)


def test_the_folder_and_entry_errors_are_todays(warehouse_url, tmp_path):
    assert isinstance(assert_lands_as_read(warehouse_url, FileSource(tmp_path / "gone"), "accounts"), Exception)
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "contracts")  # no contracts file
    (tmp_path / "usage_daily").mkdir()
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date")  # an empty folder
    tiny.write_csv(tmp_path / "usage_daily" / "2024-03-02.csv", tiny.USAGE_COLUMNS, tiny.USAGE_FILES["2024-03-02"])
    (tmp_path / "usage_daily" / "2024-03-01.csv").symlink_to(tmp_path / "moved.csv")
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date")  # a dangling link
    (tmp_path / "usage_daily" / "2024-03-01.csv").unlink()
    (tmp_path / "usage_daily" / "2024-03-03.parquet").mkdir()
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date", FULL)  # a directory
    (tmp_path / "usage_daily" / "2024-03-03.parquet").rmdir()
    for name in ("20240301.csv", "2024-3-1.csv", "2024-02-30.csv"):
        tiny.write_csv(tmp_path / "usage_daily" / name, tiny.USAGE_COLUMNS, tiny.USAGE_FILES["2024-03-02"])
        assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date")  # day-like names
        (tmp_path / "usage_daily" / name).unlink()


def test_interval_pruning_hidden_files_and_suffixes_are_todays(warehouse_url, tmp_path):
    tiny.write_csv(tmp_path / "usage_daily" / "2024-03-01.CSV", tiny.USAGE_COLUMNS, tiny.USAGE_FILES["2024-03-01"])
    (tmp_path / "usage_daily" / "2024-02-29.csv").write_bytes(b"\xff\xfe not a csv")  # not opened for DAY1
    (tmp_path / "usage_daily" / "._2024-03-01.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X  ")
    (tmp_path / "usage_daily" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    assert assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date").rows == 100
    empty = Interval(datetime(2024, 5, 1), datetime(2024, 5, 2))
    landed = assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date", empty)
    assert (landed.rows, landed.columns) == (0, [])
    assert isinstance(
        assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date", FULL),
        DataContractError,
    )


# --- tests/integration/test_bad_input.py ----------------------------------------------------------


def test_the_bad_input_corpus_lands_as_read(warehouse_url, tiny_source):
    tiny.write_csv(
        tiny_source / "accounts.csv",
        tiny.ACCOUNT_COLUMNS,
        [*tiny.ACCOUNTS, *corpus_rows(ACCOUNT_CASES, tiny._account), tiny._account("X-LONG2", name=LONG_NAME)],
    )
    tiny.write_csv(
        tiny_source / "contracts.csv",
        tiny.CONTRACT_COLUMNS,
        [*tiny.CONTRACTS, *corpus_rows(CONTRACT_CASES, lambda key, **f: {**tiny._contract(key, "A1"), **f})],
    )
    landed = assert_lands_as_read(warehouse_url, FileSource(tiny_source), "accounts")
    assert landed.rows == len(tiny.ACCOUNTS) + len(ACCOUNT_CASES) + 1
    assert_lands_as_read(warehouse_url, FileSource(tiny_source), "contracts")


def test_underscore_and_lineage_named_columns_are_todays(warehouse_url, tiny_source):
    rows = [{**row, **UNDERSCORE_COLUMNS} for row in tiny.ACCOUNTS]
    tiny.write_csv(tiny_source / "accounts.csv", [*tiny.ACCOUNT_COLUMNS, *UNDERSCORE_COLUMNS], rows)
    assert_lands_as_read(warehouse_url, FileSource(tiny_source), "accounts")
    for column in LINEAGE:
        path = tiny_source / "accounts.csv"
        tiny.write_csv(path, [*tiny.ACCOUNT_COLUMNS, column], [{**row, column: "crm"} for row in tiny.ACCOUNTS])
        error = assert_lands_as_read(warehouse_url, FileSource(tiny_source), "accounts")
        assert "have a name the pipeline gives its own lineage columns" in str(error)


def test_a_nul_and_a_misfiled_day_and_a_missing_column_are_todays(warehouse_url, tiny_source):
    late = [tiny._usage("A2", day="2024-03-01", active="7")]
    day2 = tiny_source / "usage_daily" / "2024-03-02.csv"
    tiny.write_csv(day2, tiny.USAGE_COLUMNS, [*tiny.USAGE_FILES["2024-03-02"], *late])
    assert_lands_as_read(warehouse_url, FileSource(tiny_source), "usage_daily", "usage_date", FULL)
    columns = [c for c in tiny.USAGE_COLUMNS if c != "events"]  # only this file lacks it: NULL there
    tiny.write_csv(day2, columns, [{c: row[c] for c in columns} for row in tiny.USAGE_FILES["2024-03-02"]])
    landed = assert_lands_as_read(warehouse_url, FileSource(tiny_source), "usage_daily", "usage_date", FULL)
    assert landed.file_columns[str(day2)] == columns
    tiny.write_csv(
        tiny_source / "accounts.csv",
        tiny.ACCOUNT_COLUMNS,
        [*tiny.ACCOUNTS, tiny._account("X-NUL", name="Acme\x00Corp")],
    )
    error = assert_lands_as_read(warehouse_url, FileSource(tiny_source), "accounts")
    assert f"column 'name' holds a NUL character (data row {len(tiny.ACCOUNTS) + 1})" in str(error)


def test_parquet_of_the_bad_input_test_lands_as_read(warehouse_url, tiny_source):
    extra = {"X-2POW53-PLUS-1": 9007199254740993, "X-BIGINT-MAX": 9223372036854775807, "X-NO-COUNT": None}
    rows = [*tiny.ACCOUNTS, *(tiny._account(key) for key in extra), tiny._account("X-YEAR-3000")]
    columns = {c: [row[c] for row in rows] for c in tiny.ACCOUNT_COLUMNS}
    counts = [int(v) for v in columns["employee_count"][: len(tiny.ACCOUNTS)]] + list(extra.values()) + [1]
    created = [dt.datetime.fromisoformat(v) for v in columns["created_at"][:-1]] + [dt.datetime(3000, 1, 1)]
    arrays = {
        **columns,
        "employee_count": pa.array(counts, pa.int64()),
        "annual_revenue": pa.array([float(v) for v in columns["annual_revenue"][:-1]] + [float("nan")]),
        "created_at": pa.array(created, pa.timestamp("us")),
    }
    (tiny_source / "accounts.csv").unlink()
    pq.write_table(pa.table(arrays), tiny_source / "accounts.parquet", use_deprecated_int96_timestamps=True)
    assert_lands_as_read(warehouse_url, FileSource(tiny_source), "accounts")


# --- Shapes on which DuckDB's CSV reader and pandas' part ------------------------------------------

SHAPES = {
    "bom and crlf": b'\xef\xbb\xbfaccount_id,name\r\nA1,x\r\n"A\r\n2","y""z"\r\n',
    "quoted line breaks": b'account_id,name\n"A\n1","l1\r\nl2\n\nl4"\nA2,\n',
    "blank lines": b"account_id,name\nA1,x\n\n\nA2,y\n",
    "whitespace-only lines": b"account_id,name\nA1,x\n   \n\t\nA2,y\n",
    "one column, blank line": b"account_id\nA1\n\nA2\n \n",
    "spaces around quotes": b'account_id,name\nA1, "x"\n"A2" ,y\n',
    "quote inside a field": b'account_id,name\nA"1,x"y\n',
    "short row": b"account_id,name,industry\nA1,x\nA2,y,z\n",
    "lone CR line ends": b"account_id,name\rA1,x\rA2,y\r",
    "mixed line ends": b"account_id,name\nA1,x\r\nA2,y\n",
    "header with a line break": b'account_id,"na\nme"\nA1,x\n',
    "header with a trailing comma": b"account_id,name,\nA1,x,y\n",
    "whitespace kept": b"account_id,name\n  A1 , x \n",
    "quoted empty is missing": b'account_id,name\n"",x\nA2,""\n',
    "no final line end": b"account_id,name\nA1,x",
    "unicode and emoji": "account_id,name\nA1,Société 😀 \u200b\nA2,日本語\n".encode(),
    "a cell longer than DuckDB's line limit": b"account_id,name\nA1," + b"x" * 3_000_000 + b"\nA2,y\n",
}


@pytest.mark.parametrize("content", list(SHAPES.values()), ids=list(SHAPES))
def test_csv_shapes_land_as_pandas_reads_them(warehouse_url, tmp_path, content):
    (tmp_path / "accounts.csv").write_bytes(content)
    assert_lands_as_read(warehouse_url, FileSource(tmp_path), "accounts")


def test_files_with_other_columns_and_formats_in_one_folder(warehouse_url, tmp_path):
    folder = tmp_path / "usage_daily"
    write_rows(folder / "2024-03-01.csv", [["account_id", "usage_date"], ["A1", "2024-03-01"]])
    pq.write_table(
        pa.table({"usage_date": ["2024-03-02"], "events": pa.array([3], pa.int64())}), folder / "2024-03-02.parquet"
    )
    write_rows(folder / "2024-03-03.csv", [["events", "note", "account_id"], ["4", " n ", "A3"], ["", "", ""]])
    landed = assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date", FULL)
    assert landed.columns == ["account_id", "usage_date", "events", "note"]


def test_the_first_problem_in_file_order_is_the_one_reported(warehouse_url, tmp_path):
    folder = tmp_path / "usage_daily"
    write_rows(folder / "2024-03-01.csv", [["account_id", "_source"], ["A1", "x"]])  # lineage: reported last
    write_rows(folder / "2024-03-02.csv", [["account_id", "note"], ["A2", "ok"], ["A3", "bad\x00"]])  # a NUL
    (folder / "2024-03-03.csv").write_bytes(b"account_id\nSoci\xe9t\xe9\n")  # not UTF-8
    error = assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date", FULL)
    assert "2024-03-02.csv: column 'note' holds a NUL character (data row 2)" in str(error)
    (folder / "2024-03-02.csv").unlink()
    error = assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date", FULL)
    assert "2024-03-03.csv: not valid UTF-8" in str(error)
    (folder / "2024-03-03.csv").unlink()
    error = assert_lands_as_read(warehouse_url, FileSource(tmp_path), "usage_daily", "usage_date", FULL)
    assert "have a name the pipeline gives its own lineage columns" in str(error)


# --- CSV files written by hypothesis --------------------------------------------------------------

# Values of the characters a CSV reader can trip on, and any other text (no NUL: read() fails on one).
CSV_TEXT = st.lists(
    st.one_of(
        st.sampled_from([*",\"\n\r\t \\'#;", "\r\n", '""', "é", "😀", "\u200b", "\ufeff", "日"]),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=8,
).map("".join)
HEADER_NAME = st.text(
    st.characters(whitelist_categories=("Ll", "Lu", "Nd"), max_codepoint=0x24F), min_size=1, max_size=8
)


@st.composite
def csv_tables(draw):
    names = draw(st.lists(HEADER_NAME, min_size=1, max_size=4, unique_by=str.lower))
    rows = draw(st.lists(st.lists(CSV_TEXT, min_size=len(names), max_size=len(names)), max_size=12))
    return [names, *rows], draw(st.sampled_from(["\n", "\r\n"])), draw(st.booleans()), draw(st.booleans())


def rfc4180(rows: list[list[str]], newline: str, quote_all: bool) -> str:
    """CSV as RFC 4180 writes it (Python's csv module leaves a CR unquoted when lines end in LF)."""

    def field(value: str, alone: bool) -> str:
        if quote_all or any(c in value for c in ',"\r\n') or (alone and value == ""):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(",".join(field(v, len(row) == 1) for v in row) + newline for row in rows)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=csv_tables())
def test_csv_files_written_by_a_csv_writer_land_as_read(warehouse_url, tmp_path, table):
    rows, newline, bom, quote_all = table
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    text = ("\ufeff" if bom else "") + rfc4180(rows, newline, quote_all)
    (folder / "accounts.csv").write_bytes(text.encode())
    assert_lands_as_read(warehouse_url, FileSource(folder), "accounts")
    # DuckDB read it, unless a line holds only spaces and tabs (pandas skips it; read as before).
    if len(rows[0]) > 1 or quote_all or all(row[0].strip(" \t") for row in rows[1:]):
        assert plain_csv_rows(folder / "accounts.csv", len(rows[0])) == len(rows) - 1


RAW_CSV = st.lists(st.sampled_from(["a", "é", ",", '"', " ", "\t", "\n", "\r\n", "\r", '""', ',"', '",']), max_size=24)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(["a,b", "a", "a,b,c", '"a",b']), body=RAW_CSV)
def test_any_text_lands_as_read_or_fails_as_read(warehouse_url, tmp_path, header, body):
    """Hand-made CSV of the characters that matter: the same rows or the same error."""
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    (folder / "accounts.csv").write_bytes(f"{header}\n{''.join(body)}".encode())
    assert_lands_as_read(warehouse_url, FileSource(folder), "accounts")


# --- The sql and salesforce sources ---------------------------------------------------------------


def sql_source(url: str, table: str) -> SqlSource:
    sources = load_sources()
    config = sources.sql.model_copy(update={"tables": {"accounts": SqlEntityMapping(table=table, columns={})}})
    return SqlSource(config, url=url)


SQL_ROWS = pd.DataFrame(
    {
        "account_id": ["A1", "A2", "A3", None],
        "employee_count": [120, None, 9007199254740993, 0],
        "annual_revenue": [1.5, 100.0, None, -0.0],
        "updated_at": [datetime(2024, 3, 1, 10), datetime(2024, 3, 1, 10, 0, 0, 5), None, datetime(2024, 3, 1)],
        "referenceable": [True, False, None, True],
        "name": ["Société 😀", "", "  x  ", 'a,b\n"c"'],
    }
)


def test_a_sqlite_table_lands_as_read(warehouse_url, tmp_path, monkeypatch):
    crm = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    SQL_ROWS.to_sql("crm_accounts", crm, index=False)
    crm.dispose()
    monkeypatch.setattr(text_table, "CHUNK_ROWS", 3)
    source = sql_source(f"sqlite:///{tmp_path / 'crm.sqlite'}", "crm_accounts")
    for interval in (DAY1, FULL):
        assert assert_lands_as_read(warehouse_url, source, "accounts", interval=interval).rows == 4


@pytest.mark.postgres
def test_a_postgres_table_lands_as_read(warehouse_url, pg_database, monkeypatch):
    crm = sa.create_engine(pg_database)
    name = f"crm_{uuid.uuid4().hex[:8]}"
    with crm.begin() as conn:
        conn.execute(
            sa.text(
                f"create table {name} (account_id text, employee_count bigint, arr numeric(38, 6), "
                "updated_at timestamp, created_at timestamptz, go_live date, referenceable boolean, note text, "
                "raw bytea, tags jsonb)"
            )
        )
        conn.execute(
            sa.text(
                f"insert into {name} values ('A1', 9223372036854775807, 12345678901234567890.123456, "
                "'2024-03-01 10:00:00.5', '2024-03-01 10:00:00+05', '2024-03-01', true, 'é 😀', '\\xff00', "
                "'{\"a\": [1, 2.5]}'), (null, null, null, null, null, null, null, '', null, null)"
            )
        )
    crm.dispose()
    monkeypatch.setattr(text_table, "CHUNK_ROWS", 1)
    landed = assert_lands_as_read(warehouse_url, sql_source(pg_database, name), "accounts", interval=FULL)
    assert landed.rows == 2


def test_a_sql_column_named_like_our_lineage_fails_as_read(warehouse_url, tmp_path):
    crm = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    SQL_ROWS.assign(_source="crm").to_sql("crm_accounts", crm, index=False)
    crm.dispose()
    error = assert_lands_as_read(
        warehouse_url, sql_source(f"sqlite:///{tmp_path / 'crm.sqlite'}", "crm_accounts"), "accounts"
    )
    assert "have a name the pipeline gives its own lineage columns" in str(error)


def test_a_nul_in_a_sql_source_names_the_table_column_and_row(warehouse_url, tmp_path):
    crm = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    SQL_ROWS.assign(name=["ok", "ok", "bad\x00", "bad\x00"]).to_sql("crm_accounts", crm, index=False)
    crm.dispose()
    source = sql_source(f"sqlite:///{tmp_path / 'crm.sqlite'}", "crm_accounts")
    with pytest.raises(DataContractError) as info:
        source.load_text(warehouse.engine(warehouse_url), "accounts", "updated_at", FULL, work_name())
    assert str(info.value) == (
        "accounts (sql:crm_accounts): column 'name' holds a NUL character (row 3 in the order read). "
        "Fix: remove the character in the source (PostgreSQL text cannot store one)."
    )


class FakeSalesforce:
    """Salesforce's answer to a query: records as its REST API returns them (the client's job); the
    object's describe lists the fields the records hold (the source checks its mapping against it)."""

    def __init__(self, records):
        self.records = records

    def describe_fields(self, object_name):
        names = dict.fromkeys(name for record in self.records for name in record if name != "attributes")
        return {name: {"name": name, "type": "datetime" if name.endswith("Date") else "string"} for name in names}

    def query(self, soql):
        yield from self.records


def test_salesforce_records_land_as_read(warehouse_url, monkeypatch):
    from postsales.config import SalesforceObjectMapping
    from postsales.config import SalesforceSource as SalesforceConfig

    columns = {"account_id": "Id", "name": "Name", "employee_count": "NumberOfEmployees", "created_at": "CreatedDate"}
    columns |= {"referenceable": "Referenceable__c", "also_name": "Name"}
    config = SalesforceConfig(objects={"accounts": SalesforceObjectMapping(object="Account", columns=columns)})
    records = [
        {"attributes": {}, "Id": f"001{i}", "Name": f"N{i} é", "NumberOfEmployees": i, "Referenceable__c": i % 2 == 0}
        | ({"CreatedDate": "2023-06-01T09:00:00.000+0000"} if i % 3 else {})
        for i in range(10)
    ]
    monkeypatch.setattr(text_table, "CHUNK_ROWS", 4)
    source = SalesforceSource(config, client=FakeSalesforce(records))
    assert assert_lands_as_read(warehouse_url, source, "accounts", interval=FULL).rows == 10


def test_a_work_table_name_the_extract_would_not_clean_up_is_refused(warehouse_url, tiny_source):
    with pytest.raises(ValueError, match="does not match"):
        FileSource(tiny_source).load_text(warehouse.engine(warehouse_url), "accounts", "updated_at", DAY1, "landing")


def test_the_work_table_layout(warehouse_url, tiny_source):
    landed = FileSource(tiny_source).load_text(
        warehouse.engine(warehouse_url), "usage_daily", "usage_date", FULL, work_name()
    )
    assert landed.table.schema == "raw"
    assert [c.name for c in landed.table.c] == [text_table.ROW, *tiny.USAGE_COLUMNS, SOURCE, FILE_DAY]
    _, rows = landed_rows(warehouse.engine(warehouse_url), landed)
    assert rows[0][-2:] == [f"files:{tiny_source / 'usage_daily' / '2024-03-01.csv'}", "2024-03-01"]
    assert rows[-1][:2] == ["A2", "2024-03-02"] and rows[-1][-1] == "2024-03-02"
    landed.table.drop(warehouse.engine(warehouse_url))


def test_an_abandoned_landing_is_dropped_by_the_next_extract(warehouse_url, tiny_source):
    from postsales.extract import _drop_abandoned_work_tables

    eng = warehouse.engine(warehouse_url)
    landed = FileSource(tiny_source).load_text(eng, "accounts", "updated_at", DAY1, work_name())
    assert _drop_abandoned_work_tables(eng) == [f"raw.{landed.table.name}"]


def test_names_one_warehouse_cannot_hold_fail_there_naming_the_fix(warehouse_url, tmp_path):
    folder = tmp_path / "usage_daily"
    long_name = "annual recurring revenue in USD as of the last renewal date, per account"  # 73 bytes
    write_rows(folder / "2024-03-01.csv", [["account_id", "Note", long_name], ["A1", "x", "1"]])
    write_rows(folder / "2024-03-02.csv", [["account_id", "note", "_Source"], ["A2", "y", "crm"]])
    eng = warehouse.engine(warehouse_url)
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).load_text(eng, "usage_daily", "usage_date", FULL, work_name())
    if warehouse_url.startswith("duckdb"):  # "Note" and "note" are one DuckDB column
        assert str(info.value) == (
            f"{folder / '2024-03-02.csv'}: column name(s) the warehouse cannot hold as read: 'note': DuckDB column "
            "names ignore case, so it is the same column as 'Note'; '_Source': DuckDB column names ignore case, so "
            "it is the same column as '_source'. Fix: rename the column in the export."
        )
    else:  # PostgreSQL would cut the name at 63 bytes
        problem = f"{folder / '2024-03-01.csv'}: column name(s) the warehouse cannot hold as read: '{long_name}': "
        assert str(info.value).startswith(problem + "PostgreSQL column names are at most 63 bytes")


# --- tests/golden/extract: its corpus and its whole-batch failure cases ----------------------------


@pytest.mark.parametrize("scenario", harness.SCENARIOS, ids=lambda scenario: scenario.name)
def test_the_golden_corpus_lands_as_read(warehouse_url, tmp_path, scenario, caplog):
    caplog.set_level(logging.INFO, logger="postsales.sources.file_landing")
    source = FileSource(harness.copy_corpus(scenario.name, tmp_path))
    sources = load_sources()
    steps = [step for _, phase in scenario.phases for step in phase]
    for step in steps:
        for entity in step.only or harness.entities():
            column = sources.entities[entity].incremental_column
            assert_lands_as_read(warehouse_url, source, entity, column, step.interval)
    assert "as before" not in caplog.text  # every file read by DuckDB (typed Parquet: by pyarrow where it must)


@pytest.mark.parametrize("case", harness.FAILURES, ids=lambda case: case.name)
def test_the_golden_failure_cases_land_or_fail_as_read(warehouse_url, tmp_path, case):
    source = harness.copy_corpus("tiny", tmp_path)
    sources = load_sources()

    def fail(entity: str, interval: Interval, **options) -> None:
        column = sources.entities[entity].incremental_column
        assert_lands_as_read(warehouse_url, FileSource(source), entity, column, interval)

    with harness.source_dir(source):
        case.run(source, lambda *args, **options: None, fail)
