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
from dataclasses import dataclass, field
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

if TYPE_CHECKING:
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


@dataclass
class _Landed:
    path: Path
    names: list[str]
    first_row: int  # the file's first _row
    rows: int = 0


@dataclass
class _State:
    table: sa.Table
    landed: list[_Landed] = field(default_factory=list)
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
        return _Head(names)
    except Exception:
        return None


def _parquet_head(path: Path) -> _Head:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, coerce_int96_timestamp_unit="us") as parquet:
        schema = parquet.schema_arrow
    _check_unique_columns(path, schema.names)
    unnamed = set(_unnamed_index(schema))
    names = [name for name in schema.names if name not in unnamed]
    sql = {name: _parquet_text_sql(name, schema.field(name).type) for name in names}
    # DuckDB matches column names ignoring case: "Name" and "name" are read by pyarrow.
    arrow = None in sql.values() or len({name.lower() for name in schema.names}) < len(schema.names)
    return _Head(names, parquet_sql=sql, parquet_arrow=arrow)


def _parquet_text_sql(name: str, arrow_type: pa.DataType) -> str | None:
    """DuckDB SQL giving the text pyarrow's cast gives for a Parquet column, or None if none does."""
    column = quote(name)
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type if pa.types.is_string(arrow_type.value_type) else arrow_type
    if any(test(arrow_type) for test in _SAME_TEXT):
        return f"cast({column} as varchar)"
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:
        return rf"regexp_replace(strftime({column}, '{_TIMESTAMP_FORMAT[arrow_type.unit]}'), '\.0+$', '')"
    return None


def land_files(eng: sa.Engine, table_name: str, files: list[Path], origin: str) -> TextTable:
    heads = [_head(path) for path in files]
    file_columns = {str(path): head.names for path, head in zip(files, heads, strict=True) if head}
    columns = _union([head.names for head in heads if head])
    problems = text_table.unlandable_names([c for c in columns if c not in LINEAGE], eng.dialect.name)
    kept = [c for c in columns if c not in LINEAGE and c not in problems]
    state = _State(text_table.create_work_table(eng, table_name, kept))
    reader = None
    try:
        with text_table.driver_connection(eng) as driver:
            if eng.dialect.name != "duckdb":
                reader = _in_memory_duckdb()
            writer = ChunkWriter(driver, eng.dialect.name, state.table)
            for path, head in zip(files, heads, strict=True):
                names = _land_file(eng, state, writer, reader, path, head)
                file_columns[str(path)] = names
                columns += [c for c in names if c not in columns]
            if eng.dialect.name == "duckdb":
                _raise_first_nul(eng, state, len(state.landed))
    finally:
        if reader is not None:
            reader.close()
    file_columns = {str(path): file_columns[str(path)] for path in files}
    for path in files:
        problem = lineage_error(file_columns[str(path)], str(path), LINEAGE_FIX)
        if problem:
            raise problem
    for path in files:
        named = {c: problems[c] for c in file_columns[str(path)] if c in problems}
        if named:
            raise text_table.unlandable_error(str(path), named, "rename the column in the export.")
    return TextTable(
        table=state.table,
        columns=[c for c in columns if c not in LINEAGE],
        origin=origin,
        file_columns=file_columns,
        rows=state.rows,
    )


def _union(lists: list[list[str]]) -> list[str]:
    columns: list[str] = []
    for names in lists:
        columns += [c for c in names if c not in columns]
    return columns


def _in_memory_duckdb():
    import duckdb

    from postsales import warehouse

    return duckdb.connect(":memory:", config={"memory_limit": warehouse.duckdb_memory_limit()})


def _land_file(eng, state: _State, writer: ChunkWriter, reader, path: Path, head: _Head | None) -> list[str]:
    """Land one file's rows after those landed so far; returns its columns."""
    landed = _Landed(path, head.names if head else [], state.rows + 1)
    try:
        if head is None:
            raise _ReadAsBefore("its header could not be read")
        if head.parquet_sql is None:
            landed.rows = _land_csv(eng, state, writer, reader, landed)
        elif head.parquet_arrow:
            landed.rows = _land_parquet_arrow(state, writer, landed)
        else:
            landed.rows = _land_parquet_sql(eng, state, writer, reader, landed, head.parquet_sql)
        writer.commit()
    except NulInChunk as found:  # PostgreSQL: nothing of the chunk was sent
        writer.rollback()
        read_file(path)  # raises the message naming the file, column and data row
        raise _nul_error(path, found.column, found.row - landed.first_row + 1) from None
    except (_ReadAsBefore, Exception) as exc:
        if isinstance(exc, DataContractError):
            raise
        writer.rollback()
        _delete_rows_from(eng, state, landed.first_row)
        if not isinstance(exc, _ReadAsBefore):
            log.warning("%s: DuckDB could not read it (%s); reading it as before", path, str(exc).splitlines()[0])
        if eng.dialect.name == "duckdb":
            _raise_first_nul(eng, state, len(state.landed))
        frame = read_file(path)  # raises the message naming the file and the fix, if the file is bad
        landed.names = list(frame.columns)
        landed.rows = _land_frame(eng, state, writer, landed, frame)
        writer.commit()
    state.landed.append(landed)
    state.rows += landed.rows
    return landed.names


class _ReadAsBefore(Exception):  # not an error: the file is read by read_file instead
    pass


def _select_columns(state: _State, landed: _Landed, expressions: list[str]) -> tuple[list[str], str]:
    """The work table's columns this file fills, and the SQL list of their values."""
    physical = {c.name for c in state.table.c}
    chosen = [(name, sql) for name, sql in zip(landed.names, expressions, strict=True) if name in physical]
    return [name for name, _ in chosen], "".join(f"{sql}, " for _, sql in chosen)


def _lineage_sql(landed: _Landed) -> str:
    day = _file_day_text(landed.path)
    source = _literal(f"files:{landed.path}")
    return f"{source}, {'null' if day is None else _literal(day)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _land_csv(eng, state: _State, writer: ChunkWriter, reader, landed: _Landed) -> int:
    expected = plain_csv_rows(landed.path, len(landed.names))
    if expected is None:
        raise _ReadAsBefore("not plain CSV")
    targets, values = _select_columns(state, landed, [quote(f"c{i}") for i in range(len(landed.names))])
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(landed.names))) + "}"
    # Rows in file order: WITH ORDINALITY numbers them as the file holds them.
    scan = (
        f"read_csv({_literal(str(landed.path))}, columns = {columns}, header = true, delim = ',', quote = '\"', "
        "escape = '\"', auto_detect = false, strict_mode = true, null_padding = false, encoding = 'utf-8') "
        "with ordinality"
    )
    select = f"select ordinality + {landed.first_row - 1}, {values}{_lineage_sql(landed)} from {scan}"
    rows = _run_select(eng, writer, reader, targets, select)
    if rows != expected:
        raise _ReadAsBefore(f"DuckDB read {rows} rows where the file holds {expected}")
    return rows


def _land_parquet_sql(eng, state: _State, writer: ChunkWriter, reader, landed: _Landed, sql: dict[str, str]) -> int:
    targets, values = _select_columns(state, landed, [sql[name] for name in landed.names])
    select = (
        f"select file_row_number + {landed.first_row}, {values}{_lineage_sql(landed)} "
        f"from read_parquet({_literal(str(landed.path))}, file_row_number = true)"
    )
    return _run_select(eng, writer, reader, targets, select)


def _run_select(eng, writer: ChunkWriter, reader, targets: list[str], select: str) -> int:
    """Insert ``select``'s rows (``_row``, the ``targets`` columns, the lineage) into the work table:
    on DuckDB in the warehouse itself, else from the in-memory ``reader`` in Arrow chunks."""
    names = [ROW, *targets, *LINEAGE]
    if eng.dialect.name == "duckdb":
        table = f"{text_table.SCHEMA}.{quote(writer.table.name)}"
        column_list = ", ".join(quote(name) for name in names)
        return int(writer.driver.execute(f"insert into {table} ({column_list}) {select}").fetchone()[0])
    rows = 0
    for batch in reader.execute(select).fetch_record_batch(text_table.CHUNK_ROWS):
        rows += writer.write(pa.RecordBatch.from_arrays(batch.columns, names=names))
    return rows


def _land_parquet_arrow(state: _State, writer: ChunkWriter, landed: _Landed) -> int:
    import pyarrow.parquet as pq

    physical = {c.name for c in state.table.c}
    names = [name for name in landed.names if name in physical]
    source, day = f"files:{landed.path}", _file_day_text(landed.path)
    rows = 0
    with pq.ParquetFile(landed.path, coerce_int96_timestamp_unit="us") as parquet:
        for batch in parquet.iter_batches(batch_size=text_table.CHUNK_ROWS, columns=names, use_pandas_metadata=False):
            text = {name: _arrow_column_text(batch.column(name)) for name in names}
            rows += writer.write(text_chunk(landed.first_row + rows, text, source, day, batch.num_rows))
    return rows


def _land_frame(eng, state: _State, writer: ChunkWriter, landed: _Landed, frame: pd.DataFrame) -> int:
    """Land the frame read_file gave, in chunks (text already: str or None)."""
    physical = {c.name for c in state.table.c}
    new = [c for c in landed.names if c not in physical and c not in LINEAGE]
    new = [c for c in new if not text_table.unlandable_names([*physical, c], eng.dialect.name).get(c)]
    if new:
        state.table = text_table.add_columns(eng, state.table, new)
        writer.table = state.table
        physical |= set(new)
    names = [name for name in landed.names if name in physical]
    source, day = f"files:{landed.path}", _file_day_text(landed.path)
    for start in range(0, len(frame), text_table.CHUNK_ROWS):
        part = frame.iloc[start : start + text_table.CHUNK_ROWS]
        text = {name: strings(part[name].to_numpy(dtype=object)) for name in names}
        writer.write(text_chunk(landed.first_row + start, text, source, day, len(part)))
    return len(frame)


def _delete_rows_from(eng, state: _State, first_row: int) -> None:
    """Remove what a failed read of a file left (DuckDB undoes a failed statement itself)."""
    with eng.begin() as conn:
        conn.execute(sa.delete(state.table).where(state.table.c[ROW] >= first_row))


def _raise_first_nul(eng, state: _State, files: int) -> None:
    """Fail on the first of the first ``files`` landed files holding a NUL character (found in SQL)."""
    landed = state.landed[:files]
    if not landed:
        return
    physical = [c.name for c in state.table.c if c.name not in (ROW, *LINEAGE)]
    with eng.connect() as conn:
        found = text_table.first_nul_rows(conn, state.table, physical, by_source=True)
    for file in landed:
        firsts = found.get(f"files:{file.path}")
        if firsts:
            read_file(file.path)  # raises the message naming the file, column and data row
            column = next(name for name in file.names if name in firsts)
            raise _nul_error(file.path, column, firsts[column] - file.first_row + 1)
