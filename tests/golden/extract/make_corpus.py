"""Write the golden extract corpus: corpus/{demo,tiny,bad,parquet}/, real CSV and Parquet files.

Run from the repository root: ``.venv/bin/python tests/golden/extract/make_corpus.py``.
The files are committed; this script only says how they were made. Rerunning it rewrites them
(and may change them if the demo generator, tests/tiny.py or pyarrow changed): then the frozen
outputs must be regenerated too (freeze.py), and both diffs reviewed.

- demo: the demo generator, small (DEMO below).
- tiny: tests/tiny.py's source as it is; the base of the whole-batch failure cases (harness.FAILURES).
- bad: tiny plus a row or file for every bad-input case of tests/integration/test_bad_input.py,
  tests/integration/test_extract.py and tests/unit/test_files_source.py that ends in rows loaded or
  quarantined, and a few more (non-ASCII, emoji, HTML, blanks, time zones, misfiled rows).
  The cases are copied here, not imported, so the corpus does not move when those tests do.
- parquet: typed Parquet columns (integers with nulls, NaN, decimals, INT96 and zoned timestamps,
  dates, booleans, dictionaries, lists, structs, pandas indexes).
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CORPUS = HERE / "corpus"
# The demo, small: a week of usage (harness.DEMO_DAY1 and DEMO_DAY2 are its last two days).
DEMO = {"accounts": 60, "seed": 7, "as_of": dt.date(2026, 10, 31), "usage_days": 7}


def _tiny():
    for path in (ROOT / "plugins", ROOT / "devtools", ROOT / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import tiny

    return tiny


def write_csv(path: Path, columns: list[str], rows, *, encoding: str = "utf-8", lineterminator: str = "\r\n") -> None:
    """A CSV as Python's csv module writes it: CRLF by default, fields with a comma, quote or line break quoted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator=lineterminator)
        writer.writeheader()
        writer.writerows(rows)


# --- demo ---------------------------------------------------------------------------------------


def make_demo(target: Path) -> None:
    from postsales_dev.demo import generate

    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch), DEMO["accounts"], DEMO["seed"], DEMO["as_of"], DEMO["usage_days"])
        target.mkdir(parents=True)
        # Not crm.sqlite (the SQL source's copy): only the file source and what documents it.
        for name in ("accounts.csv", "contracts.csv", "survey_responses.csv", "_bad_rows.json", "_demo.json"):
            shutil.copy2(Path(scratch) / name, target / name)
        shutil.copytree(Path(scratch) / "usage_daily", target / "usage_daily")


# --- bad ----------------------------------------------------------------------------------------

LONG_NAME = "Very Long Company " * 600  # ~11 kB in one cell (test_bad_input has ~100 kB: the frozen files stay small)
# Columns an ELT tool or a person adds to an export: data (_extra), not lineage. Set on a few rows only.
UNDERSCORE_COLUMNS = {
    "_notes": "call back in May",
    "_fivetran_synced": "2024-03-01T02:00:00",
    "_airbyte_ab_id": "9f1c",
    "_sdc_batched_at": "2024-03-01T02:00:01",
    "_run_id": "their run",
    "_extra": "{not json",
    "_loaded_at": "yesterday",
}
UNDERSCORE_ROWS = {"A1", "A4", "X-EMOJI"}

# (account_id, fields as exported)
ACCOUNT_CASES = [
    # test_bad_input: integers beyond BIGINT, exact integers within it
    ("X-1E400", {"employee_count": "1e400"}),
    ("X-20DIGITS", {"employee_count": "99999999999999999999"}),
    ("X-BIGINT-MAX-PLUS-1", {"employee_count": "9223372036854775808"}),
    ("X-BIGINT-MAX", {"employee_count": "9223372036854775807"}),
    ("X-BIGINT-MIN", {"employee_count": "-9223372036854775808"}),  # a valid integer, below min 0
    ("X-2POW53-PLUS-1", {"employee_count": "9007199254740993"}),
    # test_bad_input: money beyond the business bound
    ("X-WALLET", {"wallet_potential_arr": "2e12", "annual_revenue": "1e13"}),
    ("X-REVENUE-AT-BOUND", {"annual_revenue": "1e12"}),
    # test_bad_input: implausible dates
    ("X-CREATED", {"created_at": "0001-01-01T00:00:00"}),
    # test_bad_input's ACCOUNT_CASES
    ("X-NEG-ZERO", {"employee_count": "-0"}),
    ("X-NEG-ZERO-NUMBER", {"annual_revenue": "-0.0"}),
    ("X-SPACES", {"employee_count": " 12 ", "wallet_potential_arr": " 5e3 "}),
    ("X-SCIENTIFIC", {"employee_count": "1.2e1", "wallet_potential_arr": "5000"}),
    ("X-INT-AS-FLOAT", {"employee_count": "12.0"}),
    ("X-FRACTION", {"employee_count": "12.5"}),
    ("X-HEX", {"employee_count": "0x10"}),
    ("X-FULLWIDTH", {"employee_count": "１２"}),
    ("X-THOUSANDS", {"annual_revenue": "1,000,000"}),
    ("X-CURRENCY", {"annual_revenue": "$5000"}),
    ("X-EURO", {"annual_revenue": "5.000,00 €"}),
    ("X-NAN", {"annual_revenue": "nan"}),
    ("X-NAN-INT", {"employee_count": "NaN"}),
    ("X-NULL", {"annual_revenue": "NULL"}),
    ("X-NA", {"wallet_potential_arr": "N/A"}),
    ("X-NEG-INF", {"wallet_potential_arr": "-inf"}),
    ("X-INF", {"annual_revenue": "inf"}),
    ("   ", {}),  # a whitespace-only key is no key
    ("X-BOOL-CAPS", {"referenceable": "TRUE"}),
    ("X-BOOL-YES", {"referenceable": " Yes "}),
    ("X-BOOL-EMPTY", {"referenceable": ""}),
    ("X-BOOL-TWO", {"referenceable": "2"}),
    ("X-BOOL-JA", {"referenceable": "ja"}),
    ("X-FEB-30", {"go_live_date": "2024-02-30"}),
    ("X-MONTH-13", {"go_live_date": "2024-13-01"}),
    ("X-US-DATE", {"go_live_date": "01/02/2024"}),
    ("X-MONTH-ONLY", {"go_live_date": "2024-01"}),
    ("X-BASIC-ISO", {"go_live_date": "20240101"}),
    ("X-LEAP-DAY", {"go_live_date": "2024-02-29"}),
    ("X-PADDED-DATE", {"go_live_date": " 2024-02-01 "}),
    ("X-LEAP-SECOND", {"created_at": "2016-12-31T23:59:60Z"}),
    ("X-FAR-OFFSET", {"created_at": "2023-06-01T10:00:00+14:00"}),
    ("X-STAGE-CASE", {"lifecycle_stage": "adoption"}),
    ("X-STAGE-SPACE", {"lifecycle_stage": "Adoption "}),
    ("X-SCRIPT", {"segment_override": "<script>alert(1)</script>"}),
    ("X-LONG", {"name": LONG_NAME}),
    ("X-CONTROL", {"name": "Red\x1b[31m Corp\x07\r\n2nd line"}),  # a quoted CRLF inside a field
    ("X-FORMULA", {"name": '=HYPERLINK("http://evil.example","x")'}),
    ("X-SQL", {"name": "Robert'); DROP TABLE staging.accounts;--"}),
    ("X-ZERO-WIDTH", {"industry": "Software\u200b"}),
    # test_extract: empty fields the segmentation rules read load as nulls; blank is missing
    ("X-BLANK-INPUTS", {"annual_revenue": "", "wallet_potential_arr": "", "industry": "", "employee_count": ""}),
    ("X-WHITESPACE-INPUTS", {"industry": "   ", "employee_count": "\t", "country": " ", "go_live_date": "  "}),
    ("X-BLANK-NAME", {"name": "  "}),
    ("X-BLANK-UPDATED", {"updated_at": ""}),  # no interval: read (and quarantined) by every run
    ("X-BAD-UPDATED", {"updated_at": "yesterday"}),  # likewise
    ("X-FUTURE-UPDATED", {"updated_at": "2098-01-01T00:00:00"}),  # likewise: after every run's horizon
    # time zones: the UTC instant decides the day, and so the interval
    ("X-UPDATED-Z", {"updated_at": "2024-03-01T10:00:00Z"}),
    ("X-EDGE-TO-DAY1", {"updated_at": "2024-03-02T01:00:00+02:00"}),  # 2024-03-01T23:00Z
    ("X-EDGE-TO-DAY2", {"updated_at": "2024-03-01T23:30:00-01:00"}),  # 2024-03-02T00:30Z
    # HTML and script are text: loaded as exported, or quarantined with the value as exported
    ("X-HTML-NAME", {"name": '<b>Bold</b> & <img src=x onerror="alert(1)">'}),
    ("X-HTML-STAGE", {"lifecycle_stage": "<i>Adoption</i>"}),
    ("X-QUOTES", {"name": 'Acme, "The" Company'}),
    # non-ASCII and emoji, in values and in keys
    ("X-ACCENTS", {"name": "Société Générale Zürich"}),
    ("X-CJK", {"name": "株式会社テスト", "country": "JP"}),
    ("X-EMOJI", {"name": "Rocket 🚀 Labs 👩‍💻", "industry": "Software 🔥"}),
    ("X-RTL", {"name": "شركة الاختبار"}),
    ("X-COMBINING", {"name": "Cafe\u0301"}),
    ("X-EMOJI-STAGE", {"lifecycle_stage": "Adoption 🚀"}),
    ("X-ÜBER", {}),
    ("X-🚀", {}),
    # duplicates: two versions of one account on two days are one per daily run, two in a full refresh
    ("X-TWO-DAYS", {"name": "Day one"}),
    ("X-TWO-DAYS", {"name": "Day two", "updated_at": "2024-03-02T12:00:00"}),
    # accounts of the usage cases (tiny's fillers have a usage row on 2024-03-01 already)
    *((f"X-USAGE-{i}", {}) for i in range(1, 10)),
]

# (contract_id, account_id, fields as exported)
CONTRACT_CASES = [
    # test_bad_input: non-finite and oversized ARR
    ("X-INF", "A1", {"arr": "inf"}),
    ("X-INFINITY", "A1", {"arr": "Infinity"}),
    ("X-1E400", "A1", {"arr": "1e400"}),
    ("X-1E32", "A1", {"arr": "1e32"}),
    ("X-BIG", "A1", {"arr": "99000000000000000000000000000000"}),
    ("X-NEG-INF", "A1", {"arr": "-inf"}),
    ("X-NAN-ARR", "A1", {"arr": "NaN"}),
    # test_bad_input: money beyond the business bound
    ("X-HUGE-1", "A1", {"arr": "99000000000000000000000000000000"}),
    ("X-HUGE-2", "A1", {"arr": "99000000000000000000000000000000"}),
    ("X-ABOVE", "A1", {"arr": "1000000000000.01"}),
    ("X-TOP-1", "A3", {"arr": "1000000000000"}),
    ("X-TOP-2", "A3", {"arr": "1e12"}),
    # test_bad_input: dates with an offset are the date of the UTC instant
    ("X-Z", "A1", {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-12-31T23:00:00-05:00"}),
    ("X-OFFSET", "A1", {"start_date": "2024-01-01T01:00:00+02:00", "end_date": "2025-01-01"}),
    # test_bad_input: implausible dates, an open end
    ("X-YEAR1", "A1", {"start_date": "0001-01-01"}),
    ("X-1989", "A1", {"start_date": "1989-12-31"}),
    ("X-2100", "A1", {"end_date": "2100-01-01"}),
    ("X-1990", "A1", {"start_date": "1990-01-01"}),
    ("X-2099", "A1", {"end_date": "2099-12-31"}),
    ("X-OPEN", "A1", {"end_date": "9999-12-31"}),
    ("X-OPEN-WITH-TIME", "A1", {"end_date": "9999-12-31T00:00:00"}),
    # test_bad_input's CONTRACT_CASES
    ("X-TINY-ARR", "A1", {"arr": "1e-7"}),
    ("X-NEG-ZERO-ARR", "A1", {"arr": "-0"}),
    ("X-SPACE-THOUSANDS", "A1", {"arr": "12 000"}),
    ("X-EMPTY-ARR", "A1", {"arr": ""}),
    ("X-BAD-LEAP", "A1", {"end_date": "2023-02-29"}),
    ("X-DATE-WITH-TIME", "A1", {"start_date": "2024-01-15T00:00:00"}),
    ("X-YEAR-ZERO", "A1", {"start_date": "0000-01-01"}),
    ("X-YEAR-10000", "A1", {"end_date": "10000-01-01"}),
    # references: a quarantined account is a known one; an unknown or blank one is not
    ("X-REF-QUARANTINED", "A4", {}),
    ("X-REF-EMOJI", "X-🚀", {}),
    ("X-REF-UNKNOWN-EMOJI", "A🚀", {}),
    ("X-REF-BLANK", " ", {}),
    ("X-REF-DAY2", "X-EDGE-TO-DAY2", {"updated_at": "2024-03-02T10:00:00"}),
    # a day-1 contract of an account first read on day 2: unknown to a day-1 run, known after a full refresh
    ("X-REF-LATER-ACCOUNT", "A2", {}),
    # duplicates (both copies quarantined), a padded key (kept as exported), a one-day contract
    ("X-DUP", "A1", {"arr": "100"}),
    ("X-DUP", "A1", {"arr": "200"}),
    (" X-PAD ", "A1", {}),
    ("X-SAME-DAY", "A1", {"start_date": "2024-02-01", "end_date": "2024-02-01"}),
    ("X-HTML-PLAN", "A1", {"plan": "<b>Growth</b> & more"}),
]

SURVEY_CASES = [
    {"account_id": "A1", "responded_at": "2024-03-01T14:00:00", "survey_type": "NPS", "score": "9"},
    {"account_id": "A1", "responded_at": "2024-03-01T15:00:00Z", "survey_type": "nps", "score": "8.5"},
    {"account_id": "A1", "responded_at": "2024-03-01T17:30:00+01:00", "survey_type": "nps", "score": "7"},
    # the same key as tiny's A3 csat row: both copies quarantined
    {"account_id": "A3", "responded_at": "2024-03-01T12:00:00", "survey_type": "csat", "score": "5"},
    # the same instant as tiny's A1 nps row written with a Z: the same key
    {"account_id": "A1", "responded_at": "2024-03-01T12:00:00Z", "survey_type": "nps", "score": "9"},
    {"account_id": "A1", "responded_at": "2024-03-01T17:00:00", "survey_type": "nps", "score": ""},
    {"account_id": "A9", "responded_at": "2024-03-01T12:00:00", "survey_type": "nps", "score": "5"},
    {"account_id": "A1", "responded_at": "2024-03-01T18:00:00", "survey_type": "csat", "score": "5.5"},
    {"account_id": "A1", "responded_at": "not a time", "survey_type": "nps", "score": "5"},
    {"account_id": "A1", "responded_at": "2024-03-01T19:00:00", "survey_type": "nps 🚀", "score": "5"},
    {"account_id": "A1", "responded_at": "2024-03-01 20:00:00", "survey_type": "nps", "score": "6"},
    {"account_id": "A2", "responded_at": "2024-03-02T09:00:00", "survey_type": "csat", "score": "3"},
    {"account_id": "A1", "responded_at": "2024-03-01T21:00:00", "survey_type": "csat", "score": "  "},
]


def make_bad(target: Path) -> None:
    tiny = _tiny()
    day1, day2 = "2024-03-01", "2024-03-02"

    accounts = [*tiny.ACCOUNTS]
    for key, fields in ACCOUNT_CASES:
        accounts.append(tiny._account(key, **fields))
    accounts = [{**row, **(UNDERSCORE_COLUMNS if row["account_id"] in UNDERSCORE_ROWS else {})} for row in accounts]
    write_csv(target / "accounts.csv", [*tiny.ACCOUNT_COLUMNS, *UNDERSCORE_COLUMNS], accounts)

    contracts = [*tiny.CONTRACTS, *({**tiny._contract(key, account), **f} for key, account, f in CONTRACT_CASES)]
    # With a byte order mark and CRLF line ends, as Excel writes "CSV UTF-8".
    write_csv(target / "contracts.csv", tiny.CONTRACT_COLUMNS, contracts, encoding="utf-8-sig")

    # LF line ends.
    write_csv(target / "survey_responses.csv", tiny.SURVEY_COLUMNS, [*tiny.SURVEYS, *SURVEY_CASES], lineterminator="\n")

    usage = target / "usage_daily"
    day1_rows = [
        *tiny.USAGE_FILES[day1],
        tiny._usage("F010"),  # a second copy of F010's row: both quarantined
        {**tiny._usage("F011"), "usage_date": "2024-03-01T00:00:00Z"},  # F011's day again, written another way
        {**tiny._usage("X-USAGE-1"), "active_users": "1.5"},
        {**tiny._usage("X-USAGE-2"), "active_users": "-1"},
        {**tiny._usage("X-USAGE-3"), "active_users": ""},
        {**tiny._usage("X-USAGE-4"), "licensed_seats": "1e3"},
        {**tiny._usage("X-USAGE-5"), "usage_date": "2024-03-01T00:00:00Z"},
        {**tiny._usage("X-USAGE-6"), "usage_date": "2024-03-01T23:00:00-05:00"},  # 2024-03-02 in UTC: misfiled
        {**tiny._usage("X-USAGE-7"), "usage_date": "03/01/2024"},  # no date: read by every run of this file
        {**tiny._usage("X-USAGE-8"), "events": "9223372036854775808"},
        {**tiny._usage("X-USAGE-9"), "features_used": " 7 "},
    ]
    # One column more in this file only: an extra column (_extra), empty for rows of other files read with it.
    day1_rows = [{**row, "source_system": "v2" if row["account_id"] in ("F001", "A1") else ""} for row in day1_rows]
    write_csv(usage / f"{day1}.csv", [*tiny.USAGE_COLUMNS, "source_system"], day1_rows)
    # test_bad_input: rows filed under another day's file (A2's is nowhere else; F001's is a copy of a day-1 row)
    late = [tiny._usage("A2", day=day1, active="7"), tiny._usage("F001", day=day1)]
    write_csv(usage / f"{day2}.csv", tiny.USAGE_COLUMNS, [*tiny.USAGE_FILES[day2], *late])
    # test_files_source: an upper-case suffix is read; a header-only file is a day without rows
    write_csv(usage / "2024-03-03.CSV", tiny.USAGE_COLUMNS, [tiny._usage(a, day="2024-03-03") for a in ("A1", "A2")])
    write_csv(usage / "2024-03-04.csv", tiny.USAGE_COLUMNS, [])
    # A file named for no day is read by every run; its rows are in the interval of their date.
    write_csv(usage / "late-export.csv", tiny.USAGE_COLUMNS, [tiny._usage("A3", day=day2, active="4")])
    # test_files_source: hidden entries (macOS) and files that are no CSV/Parquet are ignored
    (usage / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (usage / f"._{day1}.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X  ")
    (usage / "README.txt").write_text("Daily usage exports, one file per day.\n", encoding="utf-8")


# --- parquet ------------------------------------------------------------------------------------

PARQUET_FILLERS = [f"F{i:03d}" for i in range(1, 11)]


def make_parquet(target: Path) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    tiny = _tiny()
    target.mkdir(parents=True)
    utc = dt.UTC
    ts = dt.datetime.fromisoformat

    # accounts: typed columns, timestamps as INT96 (Spark, Impala), a list and a struct column (extra)
    ids = [*PARQUET_FILLERS, "A1", "A3", "A4", "P-2POW53", "P-BIGINT-MAX", "P-NO-COUNT", "P-NAN", "P-NEG-ZERO",
           "P-TINY", "P-YEAR-3000", "P-YEAR-1", "P-NO-FLAG", "P-DECIMAL", "P-DECIMAL-BIG", "P-EMOJI", "P-DUP",
           "P-DUP", "P-DAY2"]  # fmt: skip
    n = len(ids)
    employee_count = [120] * n
    annual_revenue = [5_000_000.0] * n
    wallet = [Decimal("50000.000000")] * n
    created = [ts("2023-06-01T09:00:00")] * n
    updated = [ts("2024-03-01T10:00:00")] * n
    go_live = [dt.date(2023, 8, 1)] * n
    stage = ["Adoption"] * n
    referenceable = [False] * n
    names = [f"Company {i}" for i in ids]
    tags = [["a", "<b>"] if i == "A1" else [] for i in ids]
    meta = [{"tier": "gold", "since": 2020} if i == "A3" else None for i in ids]
    at = {key: ids.index(key) for key in ids}
    employee_count[at["P-2POW53"]] = 9007199254740993  # float64 would read 9007199254740992
    employee_count[at["P-BIGINT-MAX"]] = 9223372036854775807
    employee_count[at["P-NO-COUNT"]] = None  # an integer column with a null: pandas would read float64
    annual_revenue[at["P-NAN"]] = float("nan")  # the text nan, as in a CSV: no valid number
    annual_revenue[at["P-NEG-ZERO"]] = -0.0
    annual_revenue[at["P-TINY"]] = 1e-7
    created[at["P-YEAR-3000"]] = ts("3000-01-01T00:00:00")  # INT96 in nanoseconds would wrap to 1830
    go_live[at["P-YEAR-1"]] = dt.date(1, 1, 1)
    referenceable[at["P-NO-FLAG"]] = None
    wallet[at["P-DECIMAL"]] = Decimal("12345.678901")
    wallet[at["P-DECIMAL-BIG"]] = Decimal("12345678901234567890.123456")  # beyond the 1e12 bound
    names[at["P-EMOJI"]] = "Émoji 🚀 & <b>Co</b>"
    stage[at["A4"]] = "Onboarding"
    updated[at["P-DAY2"]] = ts("2024-03-02T08:00:00")
    accounts = pa.table(
        {
            "account_id": pa.array(ids, pa.string()),
            "name": pa.array(names, pa.string()),
            "industry": pa.array(["Software"] * (n - 3) + ["Retail", "Software", None]).dictionary_encode(),
            "employee_count": pa.array(employee_count, pa.int64()),
            "annual_revenue": pa.array(annual_revenue, pa.float64()),
            "country": pa.array(["US"] * n, pa.string()),
            "created_at": pa.array(created, pa.timestamp("us")),
            "updated_at": pa.array(updated, pa.timestamp("us")),
            "wallet_potential_arr": pa.array(wallet, pa.decimal128(38, 6)),
            "go_live_date": pa.array(go_live, pa.date32()),
            "lifecycle_stage": pa.array(stage, pa.string()),
            "referenceable": pa.array(referenceable, pa.bool_()),
            "segment_override": pa.array([None] * n, pa.string()),
            "tags": pa.array(tags, pa.list_(pa.string())),
            "meta": pa.array(meta, pa.struct([("tier", pa.string()), ("since", pa.int64())])),
        }
    )
    pq.write_table(accounts, target / "accounts.parquet", use_deprecated_int96_timestamps=True)

    # contracts: the key as a pandas index (read as the column it names), a zoned timestamp, a float ARR
    rows = [tiny._contract(f"{a}-C1", a) for a in PARQUET_FILLERS]
    rows += [
        tiny._contract("C1", "A1"),
        tiny._contract("C-OPEN", "A1", end="9999-12-31"),
        tiny._contract("C-NO-END", "A1", end=""),
        tiny._contract("C-NAN", "A1", arr="nan"),  # pandas writes a NaN of a float column as null
        tiny._contract("C-EARLY", "A3", start="1985-01-01"),
        tiny._contract("C-UNKNOWN", "P-NOBODY"),
        tiny._contract("C-LATE-DAY1", "A1", updated="2024-03-01T23:30:00"),  # 2024-03-02T04:30:00+05:00 in the file
        tiny._contract("C-DAY2", "P-DAY2", updated="2024-03-02T09:00:00"),
    ]
    contracts = pd.DataFrame(rows)
    contracts["start_date"] = [dt.date.fromisoformat(v) for v in contracts["start_date"]]
    contracts["end_date"] = [dt.date.fromisoformat(v) if v else None for v in contracts["end_date"]]
    contracts["arr"] = contracts["arr"].astype("float64")
    contracts["updated_at"] = pd.to_datetime(contracts["updated_at"]).dt.tz_localize(utc).dt.tz_convert("Asia/Karachi")
    contracts.set_index("contract_id").to_parquet(target / "contracts.parquet")

    # survey_responses: an unnamed pandas index (row numbers, not data), a nullable integer score
    surveys = pd.DataFrame(
        [
            *({"account_id": a, "responded_at": "2024-03-01T12:00:00", "survey_type": "nps", "score": 8}
              for a in PARQUET_FILLERS),
            {"account_id": "A1", "responded_at": "2024-03-01T13:00:00", "survey_type": "nps", "score": None},
            {"account_id": "A1", "responded_at": "2024-03-01T14:00:00", "survey_type": "csat", "score": 9},
            {"account_id": "A3", "responded_at": "2024-03-02T12:00:00.250", "survey_type": "csat", "score": 4},
        ]
    )  # fmt: skip
    surveys["responded_at"] = pd.to_datetime(surveys["responded_at"], format="ISO8601").astype("datetime64[ms]")
    surveys["score"] = surveys["score"].astype("Int64")
    surveys.iloc[::-1].to_parquet(target / "survey_responses.parquet")

    # usage_daily: date32 days, integer columns with a null, a float column of whole numbers, a boolean
    usage = target / "usage_daily"
    usage.mkdir()
    day1 = [*PARQUET_FILLERS, "A1", "A3", "P-NULL-USERS", "A9"]
    pq.write_table(
        pa.table(
            {
                "account_id": day1,
                "usage_date": pa.array([dt.date(2024, 3, 1)] * len(day1), pa.date32()),
                "active_users": pa.array([10] * (len(day1) - 2) + [None, 3], pa.int64()),
                "licensed_seats": pa.array([20.0] * (len(day1) - 1) + [20.5], pa.float64()),
                "events": pa.array([300] * len(day1), pa.int32()),
                "features_used": pa.array([5] * len(day1), pa.int64()),
                "trial": pa.array([True, False, None, *([False] * (len(day1) - 3))], pa.bool_()),
            }
        ),
        usage / "2024-03-01.parquet",
    )
    day2 = ["A1", "A3", "F001"]
    pq.write_table(
        pa.table(
            {
                "account_id": day2,
                # timestamps, not dates; F001's is on the day before: misfiled
                "usage_date": pa.array(
                    [ts("2024-03-02T00:00:00"), ts("2024-03-02T00:00:00"), ts("2024-03-01T12:00:00")],
                    pa.timestamp("us"),
                ),
                "active_users": pa.array([1, 2, 3], pa.int64()),
                "licensed_seats": pa.array([20, 20, 20], pa.int64()),
                "events": pa.array([30, 20, 10], pa.int64()),
                "features_used": pa.array([1, 2, 3], pa.int64()),
            }
        ),
        usage / "2024-03-02.parquet",
    )


def main() -> int:
    _tiny()
    makers = {"demo": make_demo, "tiny": lambda target: _tiny().build(target), "bad": make_bad, "parquet": make_parquet}
    for name, make in makers.items():
        target = CORPUS / name
        if target.exists():
            shutil.rmtree(target)
        make(target)
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
