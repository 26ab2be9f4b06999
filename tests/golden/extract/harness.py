"""Run the golden extract scenarios and failure cases, dump the warehouse, compare with the frozen files.

Shared by freeze.py (writes expected/) and tests/integration/test_extract_golden.py (compares).
A scenario runs ``postsales.extract.extract_entity`` for every entity of include/rules/sources.yaml,
interval after interval, on a copy of one corpus directory; after each phase the warehouse is dumped:
raw.*, staging.*, ops.quarantine, ops.extract_runs, and the summaries the extracts returned.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from postsales import warehouse
from postsales.config import ExpectationsConfig, Thresholds, load_expectations, load_sources
from postsales.extract import extract_entity
from postsales.sources import Interval

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
EXPECTED = HERE / "expected"
BACKENDS = ("duckdb", "postgres")
# Stands for the copy of the corpus a run reads: paths differ from run to run, the rest of the text must not.
SOURCE_PLACEHOLDER = "<source>"

# Columns that differ from run to run. Everything else is compared, including the run ids (fixed here).
VOLATILE = {"_loaded_at", "quarantined_at", "finished_at", "data_docs", "seconds", "rows_per_second", "phase_seconds"}
# JSON text columns are frozen and compared as the parsed value (objects by key, lists in order), not
# as text: a load done in SQL may write the same JSON with other spacing or key order per backend.
JSON_COLUMNS = {"payload", "_extra", "failed_expectations", "offending_values", "raw_row"}


@cache
def _rules() -> ExpectationsConfig:
    return load_expectations()


@cache
def _tables() -> warehouse.Tables:
    return warehouse.build_tables(_rules())


def entities() -> list[str]:
    return list(load_sources().entities)


def backend_of(url: str) -> str:
    return "postgres" if url.startswith("postgresql") else "duckdb"


# --- scenarios ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Every entity extracted for one interval, with the run id ``golden-<name>``."""

    name: str
    interval: Interval
    only: tuple[str, ...] | None = None  # these entities, not all


@dataclass(frozen=True)
class Scenario:
    name: str  # also the corpus directory
    # After each phase, the tables of the entities it extracted are dumped (expected/<backend>/<name>/<phase>/).
    phases: tuple[tuple[str, tuple[Step, ...]], ...]
    # The bad-input corpora hold far more bad rows than the 5% that fail a batch: with the default
    # thresholds every batch would fail and nothing row-level would be frozen.
    loose_thresholds: bool = False

    def expectations(self) -> ExpectationsConfig:
        rules = _rules()
        if self.loose_thresholds:
            rules = rules.model_copy(update={"thresholds": Thresholds(max_failed_fraction=1.0)})
        return rules


def _day(name: str, day: dt.date) -> Step:
    start = dt.datetime.combine(day, dt.time())
    return Step(name, Interval(start, start + dt.timedelta(days=1)))


DEMO_FULL = Step("full", Interval(dt.datetime(2023, 11, 1), dt.datetime(2026, 11, 1), full_refresh=True))
DEMO_DAY1 = _day("2026-10-30", dt.date(2026, 10, 30))
DEMO_DAY2 = _day("2026-10-31", dt.date(2026, 10, 31))  # the demo's last day: its file holds a future-dated row
TINY_DAY1 = _day("2024-03-01", dt.date(2024, 3, 1))
TINY_DAY2 = _day("2024-03-02", dt.date(2024, 3, 2))
TINY_FULL = Step("full", Interval(dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 5), full_refresh=True))

SCENARIOS = (
    # A full refresh, then daily runs (which replace their day's partition of staging).
    Scenario("demo", (("full-then-daily", (DEMO_FULL, DEMO_DAY1, DEMO_DAY2)),)),
    # Daily runs on an empty warehouse (each day knows only the keys read so far), then a full refresh,
    # which replaces every raw and quarantine row of the entity.
    Scenario(
        "bad",
        (("daily", (TINY_DAY1, TINY_DAY2)), ("full", (TINY_FULL,))),
        loose_thresholds=True,
    ),
    # Parquet is turned into text as it is read, the same for any interval: a full refresh reads it all.
    Scenario("parquet", (("full", (TINY_FULL,)),), loose_thresholds=True),
)


@contextmanager
def source_dir(path: Path) -> Iterator[None]:
    """POSTSALES_SOURCE_DIR set to ``path`` (it wins over sources.yaml) for the block."""
    before = os.environ.get("POSTSALES_SOURCE_DIR")
    os.environ["POSTSALES_SOURCE_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["POSTSALES_SOURCE_DIR"]
        else:
            os.environ["POSTSALES_SOURCE_DIR"] = before


def copy_corpus(name: str, workdir: Path) -> Path:
    """A copy of corpus/<name> (hidden files too) to read: the runs never touch the committed files."""
    target = workdir / f"source-{name}"
    shutil.copytree(CORPUS / name, target, symlinks=True)
    return target


def run_scenario(scenario: Scenario, url: str, workdir: Path) -> list[tuple[str, dict[str, list[dict]]]]:
    """(phase, the dump after it) for each phase in turn; ``url`` must be an empty warehouse."""
    source = copy_corpus(scenario.name, workdir)
    rules = scenario.expectations()
    dumps = []
    with source_dir(source):
        for phase, steps in scenario.phases:
            summaries = []
            extracted: list[str] = []
            for step in steps:
                for entity in step.only or entities():
                    if entity not in extracted:
                        extracted.append(entity)
                    summary = extract_entity(
                        entity,
                        interval=step.interval,
                        run_id=f"golden-{step.name}",
                        expectations=rules,
                        warehouse_url=url,
                        build_data_docs=False,
                    )
                    summaries.append({"step": step.name, **summary.as_dict()})
            dumps.append((phase, dump(url, source, summaries, extracted)))
    return dumps


# --- dumps --------------------------------------------------------------------------------------


def _value(value: Any, source: str) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return value.replace(source, SOURCE_PLACEHOLDER)
    return value


def _row(row: dict[str, Any], source: str) -> dict[str, Any]:
    out = {}
    for column, value in row.items():
        if column in VOLATILE:
            continue
        if column in JSON_COLUMNS and value is not None:
            value = json.loads(value)
        out[column] = _value(value, source)
    return out


def dump(
    url: str, source: Path, summaries: list[dict] | None = None, only: list[str] | None = None
) -> dict[str, list[dict]]:
    """The extract tables (of the entities ``only``, else all) as rows of plain values, JSON text
    parsed, the source path replaced."""
    tables = _tables()
    chosen = only or entities()
    targets = [
        *(tables.raw[e] for e in chosen),
        *(tables.staging[e] for e in chosen),
        tables.quarantine,
        tables.extract_runs,
    ]
    result: dict[str, list[dict]] = {}
    with warehouse.engine(url).connect() as conn:
        listed = sa.text("select table_schema, table_name from information_schema.tables")
        existing = {f"{schema}.{name}" for schema, name in conn.execute(listed)}
        for table in targets:
            name = f"{table.schema}.{table.name}"
            if name not in existing:
                result[name] = []
                continue
            query = sa.select(table)
            if "source_table" in table.c:
                query = query.where(table.c.source_table.in_(chosen))
            rows = conn.execute(query).mappings().all()
            result[name] = sorted((_row(dict(r), str(source)) for r in rows), key=canonical)
    if summaries is not None:
        result["summary"] = sorted(
            (_row({k: v for k, v in s.items() if k != "data_docs"}, str(source)) for s in summaries), key=canonical
        )
    leaked = [name for name, rows in result.items() if str(source) in json.dumps(rows, ensure_ascii=False)]
    if leaked:
        raise AssertionError(f"the source path is left in {leaked}: normalise it in harness._value")
    return result


def canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def expected_dir(backend: str, scenario: str, phase: str) -> Path:
    return EXPECTED / backend / scenario / phase


def write_dump(directory: Path, tables: dict[str, list[dict]]) -> None:
    """<table>.jsonl per table: its columns as a JSON list on the first line, then one JSON list per
    row, sorted (a table without rows is the header alone). Non-ASCII is written as it is, to read."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name, rows in tables.items():
        columns = list(rows[0]) if rows else []
        lines = [json.dumps(columns), *sorted(json.dumps([r[c] for c in columns], ensure_ascii=False) for r in rows)]
        (directory / f"{name}.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8", newline="\n")


def read_dump(directory: Path) -> dict[str, list[dict]]:
    tables = {}
    for path in sorted(directory.glob("*.jsonl")):
        # split("\n"), not splitlines(): a value may hold U+2028 and other characters splitlines breaks on.
        header, *rows = (json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line)
        tables[path.stem] = [dict(zip(header, row, strict=True)) for row in rows]
    return tables


# --- differences --------------------------------------------------------------------------------


def _key_columns(table: str) -> list[str]:
    """Columns that pair a missing row with the unexpected row it probably became, for the report."""
    if table.startswith("staging."):
        entity = table.removeprefix("staging.")
        rules = _rules().entities[entity]
        incremental = load_sources().entities[entity].incremental_column
        return [*rules.key, *([incremental] if incremental not in rules.key else [])]
    partition = ["interval_start", "interval_end", "full_refresh"]
    return {
        "ops.quarantine": ["source_table", "record_key", *partition],
        "ops.extract_runs": ["source_table", *partition],
        "summary": ["step", "entity"],
    }.get(table, ["record_key", *partition])


def _short(value: Any, width: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} chars)"


def _changes(frozen: Any, found: Any, path: str) -> list[str]:
    """Where two values differ: within objects key by key, else the two values."""
    if isinstance(frozen, dict) and isinstance(found, dict):
        return [
            change
            for key in sorted(set(frozen) | set(found), key=str)
            for change in _changes(frozen.get(key, "<absent>"), found.get(key, "<absent>"), f"{path}[{key!r}]")
        ]
    if json.dumps(frozen, sort_keys=True) == json.dumps(found, sort_keys=True):  # NaN equals NaN here
        return []
    return [f"{path}: frozen {_short(frozen)}, found {_short(found)}"]


def diff_dumps(expected: dict[str, list[dict]], found: dict[str, list[dict]], limit: int = 5) -> list[str]:
    """Per table that differs: the counts, then the first differing rows, named by their key columns;
    a frozen row and a found row with the same key are shown column by column."""
    report = []
    for table in sorted(set(expected) | set(found)):
        want = Counter(canonical(r) for r in expected.get(table, []))
        got = Counter(canonical(r) for r in found.get(table, []))
        if want == got:
            continue
        missing = [json.loads(r) for r in sorted((want - got).elements())]
        unexpected = [json.loads(r) for r in sorted((got - want).elements())]
        lines = [
            f"{table}: {sum(want.values())} rows frozen, {sum(got.values())} found; "
            f"{len(missing)} frozen rows missing, {len(unexpected)} rows not frozen"
        ]
        columns = _key_columns(table)

        def key(row: dict, columns=columns) -> str:
            return json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False)

        def rest(row: dict, columns=columns) -> str:
            return _short({c: v for c, v in row.items() if c not in columns}, 400)

        by_key: dict[str, list[dict]] = defaultdict(list)
        for row in unexpected:
            by_key[key(row)].append(row)
        shown = 0
        for row in missing:
            if shown >= limit:
                break
            pair = by_key[key(row)].pop(0) if by_key[key(row)] else None
            shown += 1 if pair is None else 2
            if pair is None:
                lines.append(f"  missing {key(row)}: {rest(row)}")
                continue
            changes = [
                change
                for column in sorted(set(row) | set(pair))
                for change in _changes(row.get(column, "<absent>"), pair.get(column, "<absent>"), column)
            ]
            lines.append(f"  changed {key(row)}: " + "; ".join(changes))
        for row in (r for rows in by_key.values() for r in rows):
            if shown >= limit:
                break
            shown += 1
            lines.append(f"  not frozen {key(row)}: {rest(row)}")
        if len(missing) + len(unexpected) > shown:
            lines.append(f"  ... ({len(missing) + len(unexpected)} differing rows in all)")
        report.append("\n".join(lines))
    return report


def unbalanced_batches(tables: dict[str, list[dict]]) -> list[dict]:
    """Batches (ops.extract_runs rows, returned summaries) where rows read != loaded + quarantined."""
    rows = [*tables.get("ops.extract_runs", []), *tables.get("summary", [])]
    return [r for r in rows if r["rows_read"] != r["rows_loaded"] + r["rows_quarantined"]]


# --- whole-batch failures -----------------------------------------------------------------------
# Each case changes a copy of corpus/tiny, runs the extracts it needs first (``extract``), then the one
# that fails the whole batch (``fail``). Frozen:
# the error's type and message (the copy's path as <source>) and whether the failing extract left
# the warehouse as it found it (it must: nothing is loaded from a failed batch).

DAY1 = TINY_DAY1.interval
DAY2 = TINY_DAY2.interval
FULL = Interval(dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 3), full_refresh=True)
FAILURE_RUN_ID = "golden-failure"


def _rows(path: Path) -> tuple[list[str], list[dict]]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, columns: list[str], rows: list[dict]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _daily_file_missing_a_column(source: Path, extract, fail) -> None:  # test_bad_input
    path = source / "usage_daily" / "2024-03-02.csv"
    columns, rows = _rows(path)
    columns.remove("events")
    _write(path, columns, [{c: r[c] for c in columns} for r in rows])
    fail("usage_daily", FULL)


def _column_named_twice(source: Path, extract, fail) -> None:  # test_bad_input
    path = source / "contracts.csv"
    columns, rows = _rows(path)
    _write(path, [*columns, "arr_again"], [{**r, "arr_again": "1"} for r in rows])
    path.write_text(path.read_text(encoding="utf-8").replace("arr_again", "arr", 1), encoding="utf-8")
    fail("contracts", DAY1)


def _column_named_twice_once_padded(source: Path, extract, fail) -> None:  # test_files_source
    (source / "contracts.csv").write_text("contract_id,arr,plan, arr\nC1,100,Growth,200\n", encoding="utf-8")
    fail("contracts", DAY1)


def _nul_character(source: Path, extract, fail) -> None:  # test_bad_input
    path = source / "accounts.csv"
    columns, rows = _rows(path)
    _write(path, columns, [*rows, {**rows[0], "account_id": "X-NUL", "name": "Acme\x00Corp"}])
    fail("accounts", DAY1)


def _nul_byte(source: Path, extract, fail) -> None:  # test_files_source
    (source / "accounts.csv").write_bytes(b"account_id,name\nA1,ok\nA2,bad\x00name\n")
    fail("accounts", DAY1)


def _lineage_column(column: str):
    def case(source: Path, extract, fail) -> None:  # test_bad_input
        path = source / "accounts.csv"
        columns, rows = _rows(path)
        _write(path, [*columns, column], [{**r, column: "crm"} for r in rows])
        fail("accounts", DAY1)

    return case


def _empty_extract(interval: Interval):
    def case(source: Path, extract, fail) -> None:  # test_extract
        extract("accounts", DAY1)
        columns, _ = _rows(source / "accounts.csv")
        _write(source / "accounts.csv", columns, [])
        fail("accounts", interval)

    return case


def _missing_required_column(source: Path, extract, fail) -> None:  # test_extract
    columns, rows = _rows(source / "accounts.csv")
    columns.remove("industry")
    _write(source / "accounts.csv", columns, [{c: r[c] for c in columns} for r in rows])
    fail("accounts", DAY1)


def _too_many_bad_rows(source: Path, extract, fail) -> None:  # test_extract (the default thresholds)
    columns, rows = _rows(source / "accounts.csv")
    _write(source / "accounts.csv", columns, [{**r, "employee_count": "many"} for r in rows])
    fail("accounts", DAY1)


def _unreachable_source(source: Path, extract, fail) -> None:  # test_extract
    shutil.rmtree(source)
    fail("accounts", DAY1)


def _not_utf8(source: Path, extract, fail) -> None:  # test_files_source
    (source / "accounts.csv").write_bytes("account_id,name\nA1,Société Générale\n".encode("latin-1"))
    fail("accounts", DAY1)


def _not_utf8_far_into_the_file(source: Path, extract, fail) -> None:  # test_files_source: pandas decodes in chunks
    head = b"account_id,name\n" + b"A0001,Plain name\n" * 50_000
    (source / "accounts.csv").write_bytes(head + b"A9999,Soci\xe9t\xe9\n")
    fail("accounts", DAY1)


def _empty_file(source: Path, extract, fail) -> None:  # test_files_source
    (source / "accounts.csv").write_bytes(b"")
    fail("accounts", DAY1)


def _broken_file_of_another_day(source: Path, extract, fail) -> None:  # test_files_source
    (source / "usage_daily" / "2024-02-29.csv").write_bytes(b"\xff\xfe not a csv")
    extract("accounts", DAY1)
    extract("usage_daily", DAY1)  # succeeds: the file of another day is not opened
    fail("usage_daily", FULL)


def _missing_entity_file(source: Path, extract, fail) -> None:  # test_files_source
    (source / "contracts.csv").unlink()
    fail("contracts", DAY1)


def _row_with_a_field_too_many(source: Path, extract, fail) -> None:  # test_files_source
    (source / "contracts.csv").write_text("contract_id,arr\nC1,1,000\n", encoding="utf-8")
    fail("contracts", DAY1)


def _empty_folder(source: Path, extract, fail) -> None:  # test_files_source
    for path in (source / "usage_daily").iterdir():
        path.unlink()
    (source / "usage_daily" / ".keep").write_bytes(b"")  # hidden: ignored
    fail("usage_daily", DAY1)


def _dangling_link(source: Path, extract, fail) -> None:  # test_files_source
    (source / "usage_daily" / "2024-03-01.csv").rename(source / "moved.csv")
    (source / "usage_daily" / "2024-03-01.csv").symlink_to(source / "gone" / "2024-03-01.csv")
    fail("usage_daily", DAY1)


def _directory_named_like_a_parquet_file(source: Path, extract, fail) -> None:  # test_files_source
    dataset = source / "usage_daily" / "2024-03-03.parquet"
    dataset.mkdir()
    (dataset / "part-00000.parquet").write_bytes(b"PAR1")
    fail("usage_daily", DAY1)


def _day_not_written_yyyy_mm_dd(name: str):
    def case(source: Path, extract, fail) -> None:  # test_files_source
        shutil.copy(source / "usage_daily" / "2024-03-01.csv", source / "usage_daily" / name)
        fail("usage_daily", DAY1)

    return case


@dataclass(frozen=True)
class Failure:
    name: str
    run: Callable[[Path, Callable, Callable], None]  # (the copy of corpus/tiny, extract, fail)


FAILURES = (
    Failure("daily-file-missing-a-column", _daily_file_missing_a_column),
    Failure("column-named-twice", _column_named_twice),
    Failure("column-named-twice-once-padded", _column_named_twice_once_padded),
    Failure("nul-character", _nul_character),
    Failure("nul-byte", _nul_byte),
    Failure("lineage-column-_source", _lineage_column("_source")),
    Failure("lineage-column-_file_day", _lineage_column("_file_day")),
    Failure("empty-extract-of-a-loaded-day", _empty_extract(DAY1)),
    Failure("empty-extract-of-a-full-refresh", _empty_extract(FULL)),
    Failure("missing-required-column", _missing_required_column),
    Failure("too-many-bad-rows", _too_many_bad_rows),
    Failure("unreachable-source", _unreachable_source),
    Failure("not-utf8", _not_utf8),
    Failure("not-utf8-far-into-the-file", _not_utf8_far_into_the_file),
    Failure("empty-file", _empty_file),
    Failure("broken-file-of-another-day", _broken_file_of_another_day),
    Failure("missing-entity-file", _missing_entity_file),
    Failure("row-with-a-field-too-many", _row_with_a_field_too_many),
    Failure("empty-folder", _empty_folder),
    Failure("dangling-link", _dangling_link),
    Failure("directory-named-like-a-parquet-file", _directory_named_like_a_parquet_file),
    Failure("day-named-20240301", _day_not_written_yyyy_mm_dd("20240301.csv")),
    Failure("day-named-2024-3-1", _day_not_written_yyyy_mm_dd("2024-3-1.csv")),
    Failure("day-named-2024-02-30", _day_not_written_yyyy_mm_dd("2024-02-30.csv")),
)


class _Failed(Exception):
    def __init__(self, error: BaseException, unchanged: bool):
        super().__init__(str(error))
        self.error = error
        self.unchanged = unchanged


def run_failure(case: Failure, url: str, workdir: Path) -> dict[str, Any]:
    """What the case's failing extract raised, and whether it left the warehouse as it was."""
    source = copy_corpus("tiny", workdir)

    def extract(entity: str, interval: Interval, **options) -> None:
        extract_entity(
            entity, interval=interval, run_id=FAILURE_RUN_ID, warehouse_url=url, build_data_docs=False, **options
        )

    def fail(entity: str, interval: Interval, **options) -> None:
        before = dump(url, source)
        try:
            extract(entity, interval, **options)
        except Exception as error:
            raise _Failed(error, dump(url, source) == before) from error

    with source_dir(source):
        try:
            case.run(source, extract, fail)
        except _Failed as failed:
            return {
                "case": case.name,
                "error": type(failed.error).__name__,
                "message": str(failed.error).replace(str(source), SOURCE_PLACEHOLDER),
                "warehouse_unchanged": failed.unchanged,
            }
    return {"case": case.name, "error": None, "message": None, "warehouse_unchanged": None}


def failures_path(backend: str) -> Path:
    return EXPECTED / backend / "failures.jsonl"


def write_failures(path: Path, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sorted(results, key=lambda r: r["case"]))
    path.write_text(text, encoding="utf-8", newline="\n")


def read_failures(path: Path) -> dict[str, dict]:
    results = (json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line)
    return {r["case"]: r for r in results}
