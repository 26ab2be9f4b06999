"""Landing the files source's rows as text in a work table (``FileSource.load_text``).

The files are read by DuckDB: on a DuckDB warehouse by the warehouse itself, into the work
table in one statement per file; on PostgreSQL by an in-memory DuckDB whose result streams in
Arrow chunks through ``COPY`` (memory bounded by the chunk). Where DuckDB would not give the
text :func:`~postsales.sources.files.read_file` gives, the file is read as before and its text
handed over in Arrow:

- a CSV file that is not plain RFC 4180 (:mod:`postsales.sources.csv_shape`), or whose row
  count DuckDB does not reproduce: read by pandas (``read_file``), as before;
- a Parquet column of a type whose text DuckDB writes otherwise (floats, time zones, nested
  values, binary, ...): the file is read by pyarrow in record batches and cast in Arrow.

A problem is reported with the message ``read_file`` gives: when DuckDB fails on a file (or a
header cannot be read), NUL characters are first looked for in the files already landed (in
SQL), then ``read_file`` is asked; it raises today's error, or reads the file after all (then
its rows are landed). The lineage check runs last, as in ``FileSource.read``.
"""

from __future__ import annotations

import csv
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import sqlalchemy as sa

from postsales.errors import DataContractError
from postsales.sources import LINEAGE, lineage_error, text_table
from postsales.sources.csv_shape import plain_csv_rows
from postsales.sources.files import (
    _arrow_column_text,
    _check_unique_columns,
    _file_day_text,
    _is_parquet,
    _nul_error,
    _unnamed_index,
    read_file,
)
from postsales.sources.text_table import ROW, ChunkWriter, NulInChunk, TextTable, quote, strings, text_chunk
from postsales.warehouse import qualified

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pandas as pd

log = logging.getLogger(__name__)

LINEAGE_FIX = "rename the column in the export, e.g. to source_note."

# Arrow types whose text DuckDB's cast to VARCHAR writes exactly as pyarrow's cast does.
_SAME_TEXT = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_integer,
    pa.types.is_boolean,
    pa.types.is_date32,
    pa.types.is_decimal128,
)
# Naive timestamps: pyarrow writes the unit's digits of fraction, DuckDB trims them; strftime
# writes them all, and the zero fraction is dropped as _arrow_column_text drops it.
_TIMESTAMP_FORMAT = {
    "s": "%Y-%m-%dT%H:%M:%S",
    "ms": "%Y-%m-%dT%H:%M:%S.%g",
    "us": "%Y-%m-%dT%H:%M:%S.%f",
    "ns": "%Y-%m-%dT%H:%M:%S.%n",
}


@dataclass
class _Head:
    """What a file's header (CSV) or footer (Parquet) tells before its rows are read."""

    names: list[str]  # the file's columns, as read_file names them
    parquet_sql: dict[str, str] | None = None  # Parquet: each column's text in DuckDB SQL
    parquet_arrow: bool = False  # Parquet: some column's text is pyarrow's to write
    rows: int | None = 0  # the rows its footer counts (Parquet), or plain_csv_rows (None: not plain)


@dataclass
class _Landed:
    path: Path
    names: list[str]
    first_row: int  # the file's first _row
    rows: int = 0


def _csv_options() -> dict:
    return {"dtype": "object", "keep_default_na": False, "na_values": [""], "encoding": "utf-8", "index_col": False}


def _head(path: Path) -> _Head | None:
    """The file's columns and how to read it; None if it cannot be read so (read_file will say why)."""
    try:
        if _is_parquet(path):
            return _parquet_head(path)
        import pandas as pd

        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            names = [str(c).strip() for c in pd.read_csv(path, nrows=0, **_csv_options()).columns]
        with path.open(encoding="utf-8-sig", newline="") as handle:
            _check_unique_columns(path, next(csv.reader(handle), []))
        return _Head(names, rows=plain_csv_rows(path, len(names)))
    except Exception:
        return None


def _parquet_head(path: Path) -> _Head:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, coerce_int96_timestamp_unit="us") as parquet:
        schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    _check_unique_columns(path, schema.names)
    unnamed = set(_unnamed_index(schema))
    names = [name for name in schema.names if name not in unnamed]
    sql = {name: _parquet_text_sql(name, schema.field(name).type) for name in names}
    # DuckDB matches column names ignoring case: "Name" and "name" are read by pyarrow.
    arrow = None in sql.values() or len({name.lower() for name in schema.names}) < len(schema.names)
    return _Head(names, parquet_sql=sql, parquet_arrow=arrow, rows=rows)


def _parquet_text_sql(name: str, arrow_type: pa.DataType) -> str | None:
    """DuckDB SQL giving the text pyarrow's cast gives for a Parquet column, or None if none does."""
    column = f"file.{quote(name)}"
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type if pa.types.is_string(arrow_type.value_type) else arrow_type
    if any(test(arrow_type) for test in _SAME_TEXT):
        return f"cast({column} as varchar)"
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:
        return rf"regexp_replace(strftime({column}, '{_TIMESTAMP_FORMAT[arrow_type.unit]}'), '\.0+$', '')"
    return None


def land_files(eng: sa.Engine, table_name: str, files: list[Path], origin: str) -> TextTable:
    heads = [_head(path) for path in files]
    columns = _union([head.names for head in heads if head])
    problems = text_table.unlandable_names([c for c in columns if c not in LINEAGE], eng.dialect.name)
    kept = [c for c in columns if c not in LINEAGE and c not in problems]
    landing = _Landing(eng, text_table.create_work_table(eng, table_name, kept))
    with text_table.driver_connection(eng) as driver:
        landing.run(driver, files, heads)
    file_columns = {str(landed.path): landed.names for landed in landing.landed}
    for landed in landing.landed:
        problem = lineage_error(landed.names, str(landed.path), LINEAGE_FIX)
        if problem:
            raise problem
    # Names only read_file revealed count too (such a name was not landed).
    columns = _union([landed.names for landed in landing.landed])
    problems = text_table.unlandable_names([c for c in columns if c not in LINEAGE], eng.dialect.name)
    for landed in landing.landed:
        named = {c: problems[c] for c in landed.names if c in problems}
        if named:
            raise text_table.unlandable_error(str(landed.path), named, "rename the column in the export.")
    return TextTable(
        table=landing.table,
        columns=[c for c in columns if c not in LINEAGE],
        origin=origin,
        file_columns=file_columns,
        rows=landing.rows,
    )


def _union(lists: list[list[str]]) -> list[str]:
    columns: list[str] = []
    for names in lists:
        columns += [c for c in names if c not in columns]
    return columns


# Files of one shape are landed by one statement of up to about this many rows: a statement
# per file costs about as much as landing a day of usage.
GROUP_ROWS = 500_000


class _Landing:
    def __init__(self, eng: sa.Engine, table: sa.Table):
        self.eng = eng
        self.duckdb = eng.dialect.name == "duckdb"
        self.table = table
        self.landed: list[_Landed] = []
        self.rows = 0
        self.reader = None  # PostgreSQL: an in-memory DuckDB reads the files
        self.writer: ChunkWriter

    def run(self, driver, files: list[Path], heads: list[_Head | None]) -> None:
        self.writer = ChunkWriter(driver, self.eng.dialect.name, self.table)
        if not self.duckdb:
            self.reader = _in_memory_duckdb()
        try:
            for unit in _units(files, heads):
                self._land_unit(unit)
            if self.duckdb:
                self._raise_first_nul()
        finally:
            if self.reader is not None:
                self.reader.close()

    def _land_unit(self, unit: list[tuple[Path, _Head | None]]) -> None:
        """Files of one shape by DuckDB in one statement, committed; if DuckDB fails on them,
        each alone; a file DuckDB cannot read as read_file does, by read_file."""
        path, head = unit[0]
        if head is None or (head.parquet_sql is None and head.rows is None):
            reason = _ReadAsBefore("its header or footer could not be read" if head is None else "not plain CSV")
            self._land_slowly(_Landed(path, head.names if head else [], self.rows + 1), reason)
            return
        landed: list[_Landed] = []
        for file_path, file_head in unit:
            first_row = self.rows + 1 + sum(file.rows for file in landed)
            landed.append(_Landed(file_path, file_head.names, first_row, file_head.rows or 0))
        try:
            self._land_fast(landed, head)
            self.writer.commit()
        except NulInChunk as found:  # PostgreSQL: nothing of the chunk was sent
            self.writer.rollback()
            if len(unit) > 1:
                self._land_each(unit)
                return
            read_file(path)  # raises the message naming the file, column and data row
            raise _nul_error(path, found.column, found.row - landed[0].first_row + 1) from None
        except Exception as exc:
            self.writer.rollback()
            if len(unit) > 1:
                log.info("%s: landing these %s files one by one (%s)", path, len(unit), _first_line(exc))
                self._delete_from(landed[0].first_row)
                self._land_each(unit)
            else:
                self._land_slowly(_Landed(path, head.names, self.rows + 1), exc)
            return
        for file in landed:
            self._landed(file)

    def _land_each(self, unit: list[tuple[Path, _Head | None]]) -> None:
        for file in unit:
            self._land_unit([file])

    def _landed(self, landed: _Landed) -> None:
        self.landed.append(landed)
        self.rows += landed.rows

    def _land_fast(self, landed: list[_Landed], head: _Head) -> None:
        """Land the files (of ``head``'s shape) by DuckDB, or raise."""
        if head.parquet_sql is None:
            self._land_csv(landed)
        elif head.parquet_arrow:
            self.writer.begin()  # several chunks, one transaction
            landed[0].rows = self._land_parquet_arrow(landed[0])
        else:
            self._land_parquet_sql(landed, head.parquet_sql)

    def _land_slowly(self, landed: _Landed, reason: Exception) -> None:
        """The file as read_file reads it, or its error (after any NUL in the files landed before)."""
        self._delete_from(landed.first_row)
        if isinstance(reason, _ReadAsBefore):
            log.info("%s: %s; reading it as before", landed.path, _first_line(reason))
        else:
            log.warning("%s: DuckDB could not read it (%s); reading it as before", landed.path, _first_line(reason))
        try:
            frame = read_file(landed.path)  # the file is bad: the message naming it and the fix
        except DataContractError:
            if self.duckdb:  # unless a file before it holds a NUL character (read() stops there)
                self._raise_first_nul()
            raise
        landed.names = list(frame.columns)
        self._add_columns(landed.names)
        self.writer.begin()
        landed.rows = self._land_frame(landed, frame)
        self.writer.commit()
        self._landed(landed)

    def _delete_from(self, first_row: int) -> None:
        """Remove what a failed landing left: a statement whose rows came out otherwise than
        counted (DuckDB undoes a failed statement itself, PostgreSQL's rollback the rest)."""
        with self.eng.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c[ROW] >= first_row))

    def _add_columns(self, names: list[str]) -> None:
        """Add the columns of a file that only read_file could read, which its header did not show."""
        physical = self._source_columns()
        new = [c for c in names if c not in physical and c not in LINEAGE]
        new = [c for c in new if not text_table.unlandable_names([*physical, c], self.eng.dialect.name).get(c)]
        if new:
            self.table = self.writer.table = text_table.add_columns(self.eng, self.table, new)

    def _source_columns(self) -> set[str]:
        """The work table's columns for source columns (not the row number, not the lineage)."""
        return {c.name for c in self.table.c if c.name not in (ROW, *LINEAGE)}

    def _select_columns(self, landed: _Landed, expressions: list[str]) -> tuple[list[str], str]:
        """The work table's columns this file fills, and the SQL list of their values."""
        physical = self._source_columns()
        chosen = [(name, sql) for name, sql in zip(landed.names, expressions, strict=True) if name in physical]
        return [name for name, _ in chosen], "".join(f"{sql}, " for _, sql in chosen)

    def _land_csv(self, landed: list[_Landed]) -> None:
        """Plain CSV files of one header in one statement; each file's rows numbered in file order
        (WITH ORDINALITY) from its first _row. The numbers must come out exactly as counted."""
        names = landed[0].names
        targets, values = self._select_columns(landed[0], [f"file.c{i}" for i in range(len(names))])
        columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names))) + "}"
        selects = [
            f"select ordinality + {file.first_row - 1}, {values}{_lineage_sql(file)} "
            f"from read_csv({_literal(str(file.path))}, columns = {columns}, header = true, delim = ',', "
            "quote = '\"', escape = '\"', auto_detect = false, strict_mode = true, null_padding = false, "
            "encoding = 'utf-8') with ordinality as file"
            for file in landed
        ]
        rows = self._run_select(targets, " union all ".join(selects))
        first, expected = landed[0].first_row, sum(file.rows for file in landed)
        # One file's row more and another's less would number two rows alike.
        check = (
            f"select count(*), count(distinct {ROW}), coalesce(max({ROW}), {first - 1}) "
            f"from {qualified(self.table)} where {ROW} >= {first}"
        )
        counted = tuple(self.writer.driver.execute(check).fetchone())
        if rows != expected or counted != (expected, expected, first + expected - 1):
            raise _ReadAsBefore(f"DuckDB read {rows} rows where the files hold {expected}")

    def _land_parquet_sql(self, landed: list[_Landed], sql: dict[str, str]) -> None:
        """Parquet files of one shape in one statement: each row numbered from its file's first _row."""
        targets, values = self._select_columns(landed[0], [sql[name] for name in landed[0].names])
        paths = ", ".join(_literal(str(file.path)) for file in landed)
        lineage = ", ".join(f"({_literal(str(file.path))}, {file.first_row}, {_lineage_sql(file)})" for file in landed)
        select = (
            f"select lineage.first_row + file.file_row_number, {values}lineage.source, lineage.file_day "
            f"from read_parquet([{paths}], file_row_number = true, filename = true) as file "
            f"join (values {lineage}) as lineage (path, first_row, source, file_day) on file.filename = lineage.path"
        )
        rows = self._run_select(targets, select)
        if rows != sum(file.rows for file in landed):
            raise _ReadAsBefore(f"DuckDB read {rows} rows where the footers count {sum(f.rows for f in landed)}")

    def _run_select(self, targets: list[str], select: str) -> int:
        """Insert ``select``'s rows (``_row``, the ``targets`` columns, the lineage) into the work table:
        on DuckDB in the warehouse itself, else from the in-memory reader in Arrow chunks."""
        names = [ROW, *targets, *LINEAGE]
        if self.duckdb:
            table = f"{qualified(self.table)}"
            column_list = ", ".join(quote(name) for name in names)
            return int(self.writer.driver.execute(f"insert into {table} ({column_list}) {select}").fetchone()[0])
        rows = 0
        for batch in self.reader.execute(select).fetch_record_batch(text_table.CHUNK_ROWS):
            rows += self.writer.write(pa.RecordBatch.from_arrays(batch.columns, names=names))
        return rows

    def _land_parquet_arrow(self, landed: _Landed) -> int:
        import pyarrow.parquet as pq

        physical = self._source_columns()
        names = [name for name in landed.names if name in physical]
        source, day = f"files:{landed.path}", _file_day_text(landed.path)
        rows = 0
        with pq.ParquetFile(landed.path, coerce_int96_timestamp_unit="us") as parquet:
            batches = parquet.iter_batches(batch_size=text_table.CHUNK_ROWS, columns=names, use_pandas_metadata=False)
            for batch in batches:
                text = {name: _arrow_column_text(batch.column(name)) for name in names}
                rows += self.writer.write(text_chunk(landed.first_row + rows, text, source, day, batch.num_rows))
        return rows

    def _land_frame(self, landed: _Landed, frame: pd.DataFrame) -> int:
        """Land the frame read_file gave (text already: str or None), in chunks."""
        physical = self._source_columns()
        names = [name for name in landed.names if name in physical]
        source, day = f"files:{landed.path}", _file_day_text(landed.path)
        for start in range(0, len(frame), text_table.CHUNK_ROWS):
            part = frame.iloc[start : start + text_table.CHUNK_ROWS]
            text = {name: strings(part[name].to_numpy(dtype=object)) for name in names}
            self.writer.write(text_chunk(landed.first_row + start, text, source, day, len(part)))
        return len(frame)

    def _raise_first_nul(self) -> None:
        """Fail on the first landed file holding a NUL character (found in SQL)."""
        if not self.landed:
            return
        physical = [c.name for c in self.table.c if c.name not in (ROW, *LINEAGE)]
        with self.eng.connect() as conn:
            found = text_table.first_nul_rows(conn, self.table, physical, by_source=True)
        for landed in self.landed:
            firsts = found.get(f"files:{landed.path}")
            if firsts:
                read_file(landed.path)  # raises the message naming the file, column and data row
                column = next(name for name in landed.names if name in firsts)
                raise _nul_error(landed.path, column, firsts[column] - landed.first_row + 1)


class _ReadAsBefore(Exception):  # not an error: the file is read by read_file instead
    pass


def _units(files: list[Path], heads: list[_Head | None]) -> Iterator[list[tuple[Path, _Head | None]]]:
    """The files in order, in units landed by one statement: consecutive files DuckDB reads alike
    (plain CSV of one header, Parquet of one shape) up to GROUP_ROWS rows; else one file."""
    unit: list[tuple[Path, _Head | None]] = []
    for path, head in zip(files, heads, strict=True):
        joins = (
            unit
            and _joinable(unit[0][1])
            and _joinable(head)
            and unit[0][1].parquet_sql == head.parquet_sql
            and unit[0][1].names == head.names
            and sum(h.rows for _, h in unit) + head.rows <= GROUP_ROWS
        )
        if unit and not joins:
            yield unit
            unit = []
        unit.append((path, head))
    if unit:
        yield unit


def _joinable(head: _Head | None) -> bool:
    return head is not None and head.rows is not None and not head.parquet_arrow


def _first_line(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


def _in_memory_duckdb():
    import duckdb

    from postsales import warehouse

    reader = duckdb.connect(":memory:", config={"memory_limit": warehouse.duckdb_memory_limit()})
    reader.execute("set enable_progress_bar = false")
    return reader


def _lineage_sql(landed: _Landed) -> str:
    day = _file_day_text(landed.path)
    source = _literal(f"files:{landed.path}")
    return f"{source}, {'null' if day is None else _literal(day)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
