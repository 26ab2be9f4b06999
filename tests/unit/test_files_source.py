"""The files source: formats, encodings, empty files, interval pruning, unreachable directories."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tiny
from postsales.errors import DataContractError, SourceUnavailableError
from postsales.sources import Interval
from postsales.sources.files import FileSource

DAY1 = Interval(datetime(2024, 3, 1), datetime(2024, 3, 2))


def test_csv_values_are_strings_with_missing_as_none(tmp_path):
    tiny.write_csv(tmp_path / "contracts.csv", tiny.CONTRACT_COLUMNS, tiny.CONTRACTS)
    read = FileSource(tmp_path).read("contracts", "updated_at", DAY1)
    frame = read.frame.set_index("contract_id")
    assert len(frame) == len(tiny.CONTRACTS)
    assert frame.loc["C2", "arr"] == "n/a"
    assert frame.loc["C6", "end_date"] is None
    assert frame.loc["C1", "_source"] == f"files:{tmp_path / 'contracts.csv'}"


def test_parquet_is_read_as_strings(tmp_path):
    frame = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "usage_date": pd.to_datetime(["2024-03-01", "2024-03-01"]).date,
            "active_users": [3, None],
            "flag": [True, False],
        }
    )
    (tmp_path / "usage_daily").mkdir()
    frame.to_parquet(tmp_path / "usage_daily" / "2024-03-01.parquet")
    read = FileSource(tmp_path).read("usage_daily", "usage_date", DAY1).frame
    assert read["usage_date"].tolist() == ["2024-03-01", "2024-03-01"]
    assert read["active_users"].tolist() == ["3", None]  # a float column of pandas; 3.0 in Parquet
    assert read["flag"].tolist() == ["true", "false"]


def test_parquet_values_are_the_exact_text_of_each_type(tmp_path):
    utc = dt.UTC
    table = pa.table(
        {
            "account_id": ["A1", "A2", "A3"],
            # pandas reads an integer column holding a null as float64: ...993 became ...992.0
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
    frame = FileSource(tmp_path).read("accounts", "updated_at", DAY1).frame.drop(columns=["_source", "_file_day"])
    assert frame.to_dict("list") == {
        "account_id": ["A1", "A2", "A3"],
        "employee_count": ["9007199254740993", None, "9223372036854775807"],
        "annual_revenue": ["1.5", "nan", None],  # NaN is the text a CSV would carry: not a valid number
        "wallet_potential_arr": ["12345678901234567890.123456", "5.000000", None],
        "created_at": ["2024-03-01T10:00:00", "2024-03-01T10:00:00.000005", None],
        "updated_at": ["2024-03-01T15:00:00+05:00"] * 3,
        "go_live_date": ["2024-03-01", "0001-01-01", None],
        "referenceable": ["true", "false", None],
        "industry": ["Software", "Retail", "Software"],
        "tags": ['["a", "<b>"]', "[]", None],
    }


def test_int96_timestamps_after_2262_do_not_wrap_around(tmp_path):
    created = pa.array([dt.datetime(3000, 1, 1), dt.datetime(2023, 6, 1, 9)], pa.timestamp("us"))
    table = pa.table({"account_id": ["A1", "A2"], "created_at": created})
    pq.write_table(table, tmp_path / "accounts.parquet", use_deprecated_int96_timestamps=True)
    frame = FileSource(tmp_path).read("accounts", "updated_at", DAY1).frame
    assert frame["created_at"].tolist() == ["3000-01-01T00:00:00", "2023-06-01T09:00:00"]  # not 1830-11-23


def test_a_pandas_index_in_parquet_is_read_as_the_column_it_names(tmp_path):
    frame = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "name": ["x", "y", "z"]})
    frame.set_index("account_id").to_parquet(tmp_path / "accounts.parquet")
    frame.iloc[[2, 0]].to_parquet(tmp_path / "contracts.parquet")  # an unnamed index: pandas' row numbers
    accounts = FileSource(tmp_path).read("accounts", "updated_at", DAY1).frame
    assert accounts[["account_id", "name"]].to_dict("list") == {
        "account_id": ["A1", "A2", "A3"],
        "name": ["x", "y", "z"],
    }
    contracts = FileSource(tmp_path).read("contracts", "updated_at", DAY1).frame
    assert list(contracts.columns) == ["account_id", "name", "_source", "_file_day"]


def test_non_utf8_csv_names_file_and_fix(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_bytes("account_id,name\nA1,Société Générale\n".encode("latin-1"))
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).read("accounts", "updated_at", DAY1)
    message = str(info.value)
    assert str(path) in message and "not valid UTF-8" in message and "iconv" in message


def test_empty_file_names_file_and_fix(tmp_path):
    (tmp_path / "accounts.csv").write_bytes(b"")
    with pytest.raises(DataContractError, match="the file is empty \\(no header row\\)"):
        FileSource(tmp_path).read("accounts", "updated_at", DAY1)


def test_header_only_file_is_an_empty_extract(tmp_path):
    tiny.write_csv(tmp_path / "accounts.csv", tiny.ACCOUNT_COLUMNS, [])
    frame = FileSource(tmp_path).read("accounts", "updated_at", DAY1).frame
    assert len(frame) == 0
    assert list(frame.columns)[: len(tiny.ACCOUNT_COLUMNS)] == tiny.ACCOUNT_COLUMNS


def test_date_named_files_outside_the_interval_are_not_opened(tmp_path):
    tiny.write_csv(tmp_path / "usage_daily" / "2024-03-01.csv", tiny.USAGE_COLUMNS, tiny.USAGE_FILES["2024-03-01"])
    (tmp_path / "usage_daily" / "2024-02-29.csv").write_bytes(b"\xff\xfe not a csv")  # would fail if opened
    read = FileSource(tmp_path).read("usage_daily", "usage_date", DAY1)
    assert len(read.frame) == len(tiny.USAGE_FILES["2024-03-01"])
    with pytest.raises(DataContractError, match=r"2024-02-29\.csv"):
        FileSource(tmp_path).read("usage_daily", "usage_date", Interval(DAY1.start, DAY1.end, full_refresh=True))


def test_no_file_in_the_interval_reads_nothing(tmp_path):
    tiny.write_csv(tmp_path / "usage_daily" / "2024-03-01.csv", tiny.USAGE_COLUMNS, tiny.USAGE_FILES["2024-03-01"])
    read = FileSource(tmp_path).read("usage_daily", "usage_date", Interval(datetime(2024, 5, 1), datetime(2024, 5, 2)))
    assert read.frame.empty


def test_missing_entity_file_says_what_is_expected(tmp_path):
    with pytest.raises(DataContractError, match=r"no contracts.csv, contracts.parquet or contracts/ folder"):
        FileSource(tmp_path).read("contracts", "updated_at", DAY1)


def test_unreachable_directory_is_transient(tmp_path):
    with pytest.raises(SourceUnavailableError, match="does not exist or is not reachable"):
        FileSource(tmp_path / "gone").read("accounts", "updated_at", DAY1)


def test_non_utf8_byte_is_reported_at_its_offset_and_line_in_the_file(tmp_path):
    # pandas decodes in chunks of 256 KiB: its own offset is within a chunk, not within the file.
    head = b"account_id,name\n" + b"A0001,Plain name\n" * 50_000
    (tmp_path / "accounts.csv").write_bytes(head + b"A9999,Soci\xe9t\xe9\n")
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).read("accounts", "updated_at", DAY1)
    offset = len(head) + len(b"A9999,Soci")
    assert f"invalid continuation byte at byte {offset}, line 50002)" in str(info.value)


def test_a_column_named_twice_fails_naming_it(tmp_path):
    (tmp_path / "contracts.csv").write_text("contract_id,arr,plan, arr\nC1,100,Growth,200\n")
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).read("contracts", "updated_at", DAY1)
    assert str(info.value).startswith(f"{tmp_path / 'contracts.csv'}: the header names 'arr' (2 times)")


def test_a_row_with_one_field_too_many_fails_instead_of_shifting_the_values(tmp_path):
    # pandas' default takes the first field as the index and shifts the rest one column left.
    (tmp_path / "contracts.csv").write_text("contract_id,arr\nC1,1,000\n")
    with pytest.raises(DataContractError, match=r"contracts\.csv: a row has more fields than the header"):
        FileSource(tmp_path).read("contracts", "updated_at", DAY1)


def test_an_empty_folder_says_it_is_empty(tmp_path):
    (tmp_path / "usage_daily").mkdir()
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).read("usage_daily", "usage_date", DAY1)
    assert str(info.value).startswith(f"usage_daily: the folder {tmp_path / 'usage_daily'} is empty")


def test_a_nul_character_fails_the_file_naming_the_column(tmp_path):
    (tmp_path / "accounts.csv").write_bytes(b"account_id,name\nA1,ok\nA2,bad\x00name\n")
    with pytest.raises(DataContractError, match=r"accounts\.csv: column 'name' holds a NUL character \(data row 2\)"):
        FileSource(tmp_path).read("accounts", "updated_at", DAY1)


def write_day(folder, name: str) -> int:
    """The 2024-03-01 usage rows under ``folder/name``; returns how many."""
    rows = tiny.USAGE_FILES["2024-03-01"]
    tiny.write_csv(folder / name, tiny.USAGE_COLUMNS, rows)
    return len(rows)


def test_an_upper_case_suffix_is_read(tmp_path):
    rows = write_day(tmp_path / "usage_daily", "2024-03-01.CSV")
    read = FileSource(tmp_path).read("usage_daily", "usage_date", DAY1)
    assert len(read.frame) == rows > 0
    assert set(read.frame["_file_day"]) == {"2024-03-01"}


def test_hidden_files_and_macos_appledouble_files_are_ignored(tmp_path):
    rows = write_day(tmp_path / "usage_daily", "2024-03-01.csv")
    (tmp_path / "usage_daily" / "._2024-03-01.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X  ")
    (tmp_path / "usage_daily" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    assert FileSource(tmp_path).files_for("usage_daily") == [tmp_path / "usage_daily" / "2024-03-01.csv"]
    assert len(FileSource(tmp_path).read("usage_daily", "usage_date", DAY1).frame) == rows


def test_a_dangling_link_named_for_a_day_fails_instead_of_reading_nothing(tmp_path):
    write_day(tmp_path / "usage_daily", "2024-03-02.csv")
    link = tmp_path / "usage_daily" / "2024-03-01.csv"
    link.symlink_to(tmp_path / "moved.csv")
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).read("usage_daily", "usage_date", DAY1)
    assert str(info.value).startswith(
        f"usage_daily: {link} is a symbolic link to {tmp_path / 'moved.csv'}, which does not exist; "
        "its rows would be skipped. Fix:"
    )


def test_a_directory_named_like_a_parquet_file_fails(tmp_path):
    dataset = tmp_path / "usage_daily" / "2024-03-01.parquet"
    dataset.mkdir(parents=True)
    (dataset / "part-00000.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).read("usage_daily", "usage_date", DAY1)
    assert str(info.value).startswith(
        f"usage_daily: {dataset} is a directory (a Spark-style dataset folder?), not a file; "
        "its rows would be skipped. Fix:"
    )


@pytest.mark.parametrize("name", ["20240301.csv", "2024-3-1.csv", "2024-02-30.csv"])
def test_a_day_not_written_yyyy_mm_dd_fails_rather_than_pass_for_another_day_or_a_snapshot(tmp_path, name):
    write_day(tmp_path / "usage_daily", name)
    path = tmp_path / "usage_daily" / name
    with pytest.raises(DataContractError) as info:
        FileSource(tmp_path).read("usage_daily", "usage_date", DAY1)
    assert str(info.value).startswith(
        f"usage_daily: {path} looks named for a day but {path.stem!r} is not a date written YYYY-MM-DD"
    )


@pytest.mark.parametrize(
    ("section", "holds"),
    [
        ("sql.tables", "its table and column names"),
        ("salesforce.objects", "its object and field names"),
        ("hubspot.objects", "its object type and property names"),
    ],
)
def test_an_entity_without_a_mapping_fails_naming_the_section_and_the_fix(section, holds):
    from postsales.errors import DataContractError
    from postsales.sources import entity_mapping

    assert entity_mapping({"accounts": "the mapping"}, "accounts", section, holds) == "the mapping"
    kind = {"sql.tables": "table"}.get(section, "object")
    with pytest.raises(DataContractError) as failure:
        entity_mapping({"accounts": "the mapping"}, "contracts", section, holds)
    assert str(failure.value) == (
        f"contracts: no {kind} mapping under {section} in include/rules/sources.yaml. "
        f"Fix: add {section}.contracts with {holds}."
    )
