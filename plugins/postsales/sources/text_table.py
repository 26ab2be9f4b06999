"""A source's rows landed as text in a warehouse work table, by the engine's own bulk path.

``Source.load_text`` puts the rows ``Source.read`` would return into ``raw.<table_name>``:
``_row`` (1..n in source order), one TEXT column per source column (and ``_refusal`` for a source
that refuses rows: ``postsales.sources.REFUSAL``), then the lineage columns ``_source`` and
``_file_day``; every value the same text (or NULL) as in ``SourceRead.frame``.
Rows arrive in Arrow chunks of text (or, for files on DuckDB, straight from DuckDB's readers):
DuckDB scans a chunk in place, PostgreSQL receives it as CSV through ``COPY``, so memory is
bounded by the chunk whatever the number of rows. The caller names the table and drops it.
"""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import sqlalchemy as sa

from postsales.errors import DataContractError
from postsales.sources import FILE_DAY, LINEAGE, REFUSAL, SOURCE, Refusal
from postsales.warehouse import qualified, temporary_work_tables

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

log = logging.getLogger(__name__)

SCHEMA = "raw"
ROW = "_row"  # the row's place in the source: files in the order listed, rows in file order
# Rows per Arrow chunk sent to the warehouse: bounds memory (a usage row is ~60 bytes of text).
CHUNK_ROWS = 100_000
# PostgreSQL truncates longer identifiers (NAMEDATALEN - 1 bytes).
POSTGRES_NAME_BYTES = 63


@dataclass
class TextTable:
    table: sa.Table  # raw.<name>: _row BIGINT, one TEXT column per source column, (_refusal,) _source, _file_day
    columns: list[str]  # source columns in first-seen order (no lineage), as SourceRead.frame has them
    origin: str  # the file(s) or table, for messages: SourceRead.origin
    file_columns: dict[str, list[str]] = field(default_factory=dict)  # each file's own columns (files)
    rows: int = 0
    # The codes a row's REFUSAL may hold, and why: the table then has that column (not a source column).
    refusals: dict[str, Refusal] = field(default_factory=dict)


def work_table(name: str, columns: list[str], temporary: bool = False) -> sa.Table:
    """The work table's definition: ``_row``, the source columns as TEXT, then the lineage."""
    _check_work_table_name(name)
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column(ROW, sa.BigInteger, nullable=False),
        *(sa.Column(column, sa.Text) for column in columns),
        sa.Column(SOURCE, sa.Text, nullable=False),
        sa.Column(FILE_DAY, sa.Text),
        **work_table_place(temporary),
    )


def work_table_place(temporary: bool) -> dict:
    """Where a work table goes: ``raw``, or (``warehouse.temporary_work_tables``) DuckDB's temp catalog."""
    return {"prefixes": ["TEMPORARY"]} if temporary else {"schema": SCHEMA}


def _check_work_table_name(name: str) -> None:
    # Imported here: extract imports the sources package.
    from postsales.extract import WORK_TABLE

    if not WORK_TABLE.match(name):
        raise ValueError(
            f"work table name {name!r} does not match {WORK_TABLE.pattern}, so a crashed load would leave it behind"
        )


def create_work_table(eng: sa.Engine, name: str, columns: list[str]) -> sa.Table:
    table = work_table(name, columns, temporary_work_tables(eng))
    with eng.begin() as conn:
        if table.schema:
            conn.execute(sa.text(f"create schema if not exists {table.schema}"))
        table.create(conn)
    return table


def add_columns(eng: sa.Engine, table: sa.Table, columns: list[str]) -> sa.Table:
    """``table`` with ``columns`` added at the end (a file whose columns only its full read revealed)."""
    with eng.begin() as conn:
        for column in columns:
            conn.execute(sa.text(f"alter table {qualified(table)} add column {quote(column)} text"))
    return sa.Table(
        table.name,
        sa.MetaData(),
        *(c.copy() for c in table.c),
        *(sa.Column(c, sa.Text) for c in columns),
        **work_table_place(table.schema is None),
    )


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def unlandable_names(columns: list[str], dialect: str) -> dict[str, str]:
    """Source column names the work table cannot hold as they are, with the reason.

    Lineage names are not listed: the caller reports them as ``with_lineage`` does.
    """
    problems: dict[str, str] = {}
    seen: dict[str, str] = {name: name for name in (ROW, *LINEAGE)}  # the work table's own columns
    for column in columns:
        if column == ROW:
            problems[column] = f"{ROW} is the name the pipeline gives the row number of the landed rows"
        elif column == "":
            problems[column] = "an empty (or blank) name cannot name a warehouse column"
        elif dialect == "postgresql" and len(column.encode()) > POSTGRES_NAME_BYTES:
            problems[column] = f"PostgreSQL column names are at most {POSTGRES_NAME_BYTES} bytes"
        elif dialect == "duckdb" and column.lower() in seen and column not in LINEAGE:
            problems[column] = f"DuckDB column names ignore case, so it is the same column as {seen[column.lower()]!r}"
        seen.setdefault(column.lower(), column)
    return problems


def unlandable_error(where: str, problems: dict[str, str], fix: str) -> DataContractError:
    shown = "; ".join(f"{name!r}: {reason}" for name, reason in problems.items())
    return DataContractError(f"{where}: column name(s) the warehouse cannot hold as read: {shown}. Fix: {fix}")


# --- writing Arrow chunks -------------------------------------------------------------------------


class NulInChunk(Exception):
    """A value of the chunk holds a NUL character (PostgreSQL text cannot store one)."""

    def __init__(self, column: str, row: int):
        super().__init__(column, row)
        self.column = column
        self.row = row  # its _row


@contextmanager
def driver_connection(eng: sa.Engine) -> Iterator:
    """The DB-API driver's own connection (duckdb or psycopg), closed afterwards."""
    raw = eng.raw_connection()
    try:
        if eng.dialect.name == "duckdb":  # a long insert would draw a progress bar on stdout
            raw.driver_connection.execute("set enable_progress_bar = false")
        yield raw.driver_connection
    finally:
        raw.close()


class ChunkWriter:
    """Appends Arrow chunks (``_row``, text columns, lineage) to the work table.

    DuckDB scans the chunk where it is (no copy into Python objects); PostgreSQL receives it
    as CSV written by Arrow, through ``COPY``. On PostgreSQL a chunk holding a NUL character
    raises :class:`NulInChunk` before anything is sent (its text type cannot store one); on
    DuckDB the caller checks the loaded table in SQL (:func:`first_nul_rows`).
    """

    def __init__(self, driver, dialect: str, table: sa.Table):
        self.driver = driver
        self.dialect = dialect
        self.table = table
        self.open = False  # DuckDB: whether a transaction is open (else each statement commits)

    def write(self, chunk: pa.Table | pa.RecordBatch) -> int:
        if chunk.num_rows == 0:
            return 0
        column_list = ", ".join(quote(name) for name in chunk.schema.names)
        target = qualified(self.table)
        if self.dialect == "duckdb":
            view = "_postsales_text_chunk"
            self.driver.register(view, chunk)
            try:
                self.driver.execute(f"insert into {target} ({column_list}) select {column_list} from {view}")
            finally:
                self.driver.unregister(view)
        elif self.dialect == "postgresql":
            check_no_nul(chunk)
            self.copy_csv(target, column_list, chunk)
        else:
            raise NotImplementedError(f"landing text in a {self.dialect} warehouse")
        return chunk.num_rows

    def copy_csv(self, target: str, column_list: str, chunk: pa.Table | pa.RecordBatch) -> None:
        import pyarrow.csv as pa_csv

        # Arrow quotes every string ("" is an empty string) and leaves a null empty, which
        # COPY's CSV format reads as NULL: the two stay apart.
        buffer = io.BytesIO()
        pa_csv.write_csv(chunk, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
        with (
            self.driver.cursor() as cursor,
            cursor.copy(f"copy {target} ({column_list}) from stdin (format csv)") as copy,
        ):
            copy.write(buffer.getbuffer())

    def begin(self) -> None:
        """Start a transaction (PostgreSQL's driver starts one with the first statement)."""
        if self.dialect == "duckdb" and not self.open:
            self.driver.execute("begin transaction")
            self.open = True

    def commit(self) -> None:
        """Commit the transaction; on DuckDB outside one, each statement has committed itself."""
        if self.dialect != "duckdb":
            self.driver.commit()
        elif self.open:
            self.driver.execute("commit")
            self.open = False

    def rollback(self) -> None:
        if self.dialect != "duckdb":
            self.driver.rollback()
        elif self.open:
            self.driver.execute("rollback")
            self.open = False


def check_no_nul(chunk: pa.Table | pa.RecordBatch) -> None:
    """Raise :class:`NulInChunk` for the first text column (in order) holding a NUL, at its first row."""
    import pyarrow.compute as pc

    for name, column in zip(chunk.schema.names, chunk.columns, strict=True):
        if name == ROW or not pa.types.is_string(column.type):
            continue
        found = pc.match_substring(column, "\x00")
        if pc.any(found).as_py():
            first = pc.index(found, True).as_py()
            raise NulInChunk(name, int(chunk.column(ROW)[first].as_py()))


def first_nul_rows(conn: sa.Connection, table: sa.Table, columns: list[str], by_source: bool):
    """Where NUL characters are in the landed rows, in one set-based query.

    Returns ``{source: {column: first _row}}`` (``by_source``) or ``{column: first _row}``,
    listing only the columns (and sources) that hold one.
    """
    if not columns:
        return {}
    has_nul = [f"strpos({quote(column)}, chr(0)) > 0" for column in columns]
    firsts = ", ".join(f"min(case when {test} then {ROW} end)" for test in has_nul)
    target = qualified(table)
    where = " or ".join(has_nul)
    if by_source:
        rows = conn.execute(sa.text(f"select {SOURCE}, {firsts} from {target} where {where} group by {SOURCE}")).all()
        return {
            row[0]: {column: first for column, first in zip(columns, row[1:], strict=True) if first is not None}
            for row in rows
        }
    row = conn.execute(sa.text(f"select {firsts} from {target} where {where}")).one()
    return {column: first for column, first in zip(columns, row, strict=True) if first is not None}


def text_chunk(first_row: int, columns: dict[str, pa.Array], source: str, file_day: str | None, rows: int) -> pa.Table:
    """An Arrow chunk in the work table's layout: ``_row`` from ``first_row``, the text, the lineage."""
    import numpy as np

    return pa.table(
        {
            ROW: pa.array(np.arange(first_row, first_row + rows, dtype=np.int64)),
            **columns,
            SOURCE: pa.repeat(pa.scalar(source, pa.string()), rows),
            FILE_DAY: pa.repeat(pa.scalar(file_day, pa.string()), rows),
        }
    )


def strings(values: list) -> pa.Array:
    """Python text values (str or None) as an Arrow string array."""
    return pa.array(values, pa.string())


def nul_in_source_error(where: str, column: str, row: int) -> DataContractError:
    """A NUL character in a table source (sql, salesforce): no file to re-export, so the fix is in the source."""
    return DataContractError(
        f"{where}: column {column!r} holds a NUL character (row {row} in the order read). "
        "Fix: remove the character in the source (PostgreSQL text cannot store one)."
    )


def log_landed(entity: str, rows: int, origin: str, table: sa.Table) -> None:
    log.info("landed %s rows of %s from %s in %s.%s", rows, entity, origin, table.schema, table.name)


# Rows landed per transaction: a commit per chunk costs time, and DuckDB keeps a transaction's
# rows in memory until it commits.
COMMIT_ROWS = 500_000


def land_rows(
    eng: sa.Engine,
    table_name: str,
    columns: list[str],
    chunks: Iterable[Sequence[Sequence]],
    text: Callable[[object], str | None],
    origin: str,
    where: str,
    refusals: Mapping[str, Refusal] | None = None,
) -> TextTable:
    """Land rows of a table source (sql, salesforce, hubspot): ``chunks`` of row tuples in ``columns``
    order, each value made text by ``text``, numbered in the order given; ``origin`` is their
    ``_source``. With ``refusals``, each tuple ends with the row's refusal code (None: none),
    landed in ``REFUSAL``."""
    landed = [*columns, REFUSAL] if refusals else list(columns)
    table = create_work_table(eng, table_name, landed)
    rows = committed = 0
    with driver_connection(eng) as driver:
        writer = ChunkWriter(driver, eng.dialect.name, table)
        try:
            writer.begin()
            for chunk in chunks:
                if not chunk:
                    continue
                by_column = zip(*chunk, strict=True) if landed else ()
                arrays = {
                    name: strings([text(v) for v in values]) for name, values in zip(landed, by_column, strict=True)
                }
                writer.write(text_chunk(rows + 1, arrays, origin, None, len(chunk)))
                rows += len(chunk)
                if rows - committed >= COMMIT_ROWS:
                    writer.commit()
                    writer.begin()
                    committed = rows
            writer.commit()
        except NulInChunk as found:  # PostgreSQL: the chunk was not sent
            writer.rollback()
            raise nul_in_source_error(where, found.column, found.row) from None
        except BaseException:
            writer.rollback()
            raise
    if eng.dialect.name == "duckdb":
        with eng.connect() as conn:
            firsts = first_nul_rows(conn, table, columns, by_source=False)
        if firsts:
            column = next(name for name in columns if name in firsts)
            raise nul_in_source_error(where, column, firsts[column])
    return TextTable(table=table, columns=list(columns), origin=origin, rows=rows, refusals=dict(refusals or {}))
