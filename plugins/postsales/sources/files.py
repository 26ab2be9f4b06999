"""The ``files`` source: CSV or Parquet files in a directory.

For each entity it reads ``<entity>.csv``, ``<entity>.parquet`` or every CSV/Parquet
file under ``<entity>/`` (e.g. ``usage_daily/2026-01-31.parquet``). Files whose
name is a date outside the data interval are skipped without being opened, so a file
named for a day holds the rows of that day only: each row read carries the day in
``_file_day`` (``FILE_DAY``), and the gate quarantines a row filed under another day.

Only ``YYYY-MM-DD`` names a day; ``20240301.csv`` fails the batch rather than pass for a snapshot.
Suffixes match in any case (``.CSV``). Hidden entries (``.DS_Store``, macOS ``._*`` files) are
ignored; a CSV/Parquet entry that is no readable file (a dangling link, a directory) fails the batch.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import re
import warnings
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from postsales.errors import DataContractError, SourceUnavailableError
from postsales.sources import FILE_DAY, SOURCE, Interval, SourceRead, text_table, with_lineage

if TYPE_CHECKING:
    import sqlalchemy as sa

    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)

SUFFIXES = (".csv", ".parquet")
# A file named YYYY-MM-DD holds that day's rows; a name like a day in another form is an error.
DAY_NAME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DAY_LIKE = re.compile(r"^[0-9]{8}$|^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$")


class FileSource:
    name = "files"

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def files_for(self, entity: str) -> list[Path]:
        if not self.directory.is_dir():
            raise SourceUnavailableError(
                f"source directory {self.directory} does not exist or is not reachable. "
                "Fix: mount it, or set POSTSALES_SOURCE_DIR / files.directory in include/rules/sources.yaml."
            )
        found = [path for path in _listing(self.directory) if path.stem == entity and _is_table(path)]
        folder = self.directory / entity
        if folder.is_dir():
            entries = _listing(folder)
            ignored = [path.name for path in entries if not _is_table(path)]
            if ignored:
                log.warning("%s: ignored %s: not .csv or .parquet files", folder, ", ".join(ignored))
            found += [path for path in entries if _is_table(path)]
        for path in found:
            _check_readable_entry(entity, path)
        if not found and folder.is_dir():
            raise DataContractError(
                f"{entity}: the folder {folder} is empty (no .csv or .parquet file in it). Fix: export the "
                f"{entity} files there (see docs/input-contract.md), or remove the empty folder."
            )
        if not found:
            raise DataContractError(
                f"{entity}: no {entity}.csv, {entity}.parquet or {entity}/ folder of CSV/Parquet files in "
                f"{self.directory}. Fix: export the {entity} table there (see docs/input-contract.md)."
            )
        return found

    def read(self, entity: str, incremental_column: str, interval: Interval) -> SourceRead:
        files = self._interval_files(entity, interval)
        return self._read_files(entity, files, self._origin(entity, files))

    def load_text(
        self, eng: sa.Engine, entity: str, incremental_column: str, interval: Interval, table_name: str
    ) -> TextTable:
        """The rows :meth:`read` returns, landed as text in ``raw.<table_name>`` by the warehouse
        (see :mod:`postsales.sources.file_landing`)."""
        from postsales.sources.file_landing import land_files

        files = self._interval_files(entity, interval)
        landed = land_files(eng, table_name, files, self._origin(entity, files))
        text_table.log_landed(entity, landed.rows, landed.origin, landed.table)
        return landed

    def _interval_files(self, entity: str, interval: Interval) -> list[Path]:
        files = self.files_for(entity)
        if not interval.full_refresh:
            files = [path for path in files if _may_hold_interval(path, interval)]
        return files

    def _origin(self, entity: str, files: list[Path]) -> str:
        return str(files[0]) if len(files) == 1 else f"{self.directory / entity}* ({len(files)} files)"

    def _read_files(self, entity: str, files: list[Path], origin: str) -> SourceRead:
        frames = [read_file(path) for path in files]
        # Each file's own columns: in the concatenated frame, a column one file lacks is just empty.
        file_columns = {str(path): list(frame.columns) for path, frame in zip(files, frames, strict=True)}
        frames = [
            with_lineage(
                frame,
                str(path),
                "rename the column in the export, e.g. to source_note.",
                **{SOURCE: f"files:{path}", FILE_DAY: _file_day_text(path)},
            )
            for path, frame in zip(files, frames, strict=True)
        ]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if frames:
            columns = _union_columns(frames)
            frame = frame.reindex(columns=columns)
        log.info("read %s rows of %s from %s", len(frame), entity, self._origin(entity, files) if files else origin)
        return SourceRead(frame=frame, origin=origin, file_columns=file_columns)


def _union_columns(frames: list[pd.DataFrame]) -> list[str]:
    columns: list[str] = []
    for frame in frames:
        columns += [c for c in frame.columns if c not in columns]
    return columns


def _listing(directory: Path) -> list[Path]:
    """The entries of ``directory`` by name, without hidden ones: ``.DS_Store`` and the ``._<name>``
    AppleDouble files macOS writes next to each file on a shared drive are not exports."""
    return sorted(path for path in directory.iterdir() if not path.name.startswith("."))


def _is_table(path: Path) -> bool:
    """A CSV or Parquet entry by its suffix, in any case (``2024-03-01.CSV`` too)."""
    return path.suffix.lower() in SUFFIXES


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def _check_readable_entry(entity: str, path: Path) -> None:
    """Fail on a CSV/Parquet entry that cannot be read as one file, or whose name is a day misspelt.

    Skipping it would load the day as if it had no rows.
    """
    if path.is_symlink() and not path.exists():
        problem = f"a symbolic link to {path.readlink()}, which does not exist"
    elif path.is_dir():
        problem = "a directory (a Spark-style dataset folder?), not a file"
    elif not path.is_file():
        problem = "not a regular file"
    else:
        problem = None
    if problem:
        raise DataContractError(
            f"{entity}: {path} is {problem}; its rows would be skipped. Fix: put the file itself at that path "
            "(for a Spark dataset folder, write one file, e.g. with coalesce(1)), or remove the entry."
        )
    if DAY_LIKE.match(path.stem) and _file_date(path) is None:
        raise DataContractError(
            f"{entity}: {path} looks named for a day but {path.stem!r} is not a date written YYYY-MM-DD, so "
            "it is neither a day's file nor meant as a snapshot. Fix: rename it to the day it holds "
            f"(e.g. 2024-03-01{path.suffix}), or to a name that is no date if it is a snapshot."
        )


def _file_date(path: Path) -> date | None:
    """The day a file is named for: only ``YYYY-MM-DD`` (``date.fromisoformat`` also reads 20240301)."""
    if not DAY_NAME.match(path.stem):
        return None
    try:
        return date.fromisoformat(path.stem)
    except ValueError:
        return None


def _file_day_text(path: Path) -> str | None:
    """The day a file is named for (``usage_daily/2026-10-15.csv``), as ``FILE_DAY`` lineage."""
    day = _file_date(path)
    return None if day is None else day.isoformat()


def _may_hold_interval(path: Path, interval: Interval) -> bool:
    day = _file_date(path)
    if day is None:
        return True
    day_start = datetime.combine(day, datetime.min.time())
    return day_start < interval.end and day_start + timedelta(days=1) > interval.start


def read_file(path: Path) -> pd.DataFrame:
    """Read one file with every value as a string and empty cells as missing.

    A file that cannot be read as a table of text fails with :class:`DataContractError`
    naming the file and the fix: not UTF-8 (with the byte offset and line), no header, a
    malformed CSV or Parquet file, a column named twice, a NUL character in a value.
    """
    if _is_parquet(path):
        try:
            import pyarrow.parquet as pq

            _check_unique_columns(path, pq.read_schema(path).names)
            # INT96 timestamps (Spark, Impala) in microseconds: in pyarrow's default nanoseconds a
            # date after 2262 wraps around silently (3000-01-01 read as 1830-11-23).
            table = pq.read_table(path, coerce_int96_timestamp_unit="us")
        except DataContractError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataContractError(f"{path}: not a readable Parquet file ({exc}). Fix: re-export the file.") from exc
        return _without_nul(path, _arrow_text(table))
    try:
        with warnings.catch_warnings():
            # index_col=False: a first row with one field more than the header is an error, not a
            # silent shift of every value one column to the right (pandas' default).
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, dtype="object", keep_default_na=False, na_values=[""], encoding="utf-8", index_col=False
            )
    except UnicodeDecodeError as exc:
        # pandas decodes in chunks: exc.start is an offset in some chunk, not in the file.
        offset, line = _first_invalid_utf8(path)
        raise DataContractError(
            f"{path}: not valid UTF-8 ({exc.reason} at byte {offset}, line {line}). "
            "Fix: re-export the file as UTF-8, e.g. "
            f"`iconv -f WINDOWS-1252 -t UTF-8 {path.name} > {path.stem}.utf8.csv`."
        ) from exc
    except pd.errors.ParserWarning as exc:
        raise DataContractError(
            f"{path}: a row has more fields than the header ({exc}). Fix: re-export the file, quoting values "
            "that contain commas."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataContractError(
            f"{path}: the file is empty (no header row). "
            "Fix: export at least the header row, or remove the file if it was written by mistake."
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataContractError(f"{path}: not a well-formed CSV ({exc}). Fix: re-export the file.") from exc
    with path.open(encoding="utf-8-sig", newline="") as handle:  # pandas renames a repeated column arr.1
        _check_unique_columns(path, next(csv.reader(handle), []))
    frame.columns = [str(c).strip() for c in frame.columns]
    return _without_nul(path, frame.astype("object").where(frame.notna(), None))


def _check_unique_columns(path: Path, names: list[str]) -> None:
    counts = Counter(str(name).strip() for name in names)
    repeated = {name: n for name, n in counts.items() if n > 1}
    if repeated:
        shown = ", ".join(f"{name!r} ({n} times)" for name, n in repeated.items())
        raise DataContractError(
            f"{path}: the header names {shown}; which copy holds the data is anyone's guess. "
            "Fix: re-export the file with each column once."
        )


def _without_nul(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame, unless a value holds a NUL character: PostgreSQL text cannot store one, and in
    a CSV it usually means a UTF-16 or binary file."""
    for column in frame.columns:
        found = frame[column].astype("object").str.contains("\x00", regex=False, na=False)
        if found.any():
            raise _nul_error(path, column, int(found.to_numpy().argmax()) + 1)
    return frame


def _nul_error(path: Path, column: str, data_row: int) -> DataContractError:
    return DataContractError(
        f"{path}: column {column!r} holds a NUL character (data row {data_row}). "
        "Fix: re-export the file as UTF-8 text (a NUL usually means UTF-16 or a binary file), "
        "or remove the character in the source."
    )


def _first_invalid_utf8(path: Path) -> tuple[int, int]:
    """The byte offset and line (from 1) of the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's pending bytes of the previous chunk, then this chunk.
                pending = len(exc.object) - len(chunk)
                return offset - pending + exc.start, newlines + exc.object[: exc.start].count(b"\n") + 1
            if not chunk:
                return offset, newlines + 1
            offset += len(chunk)
            newlines += chunk.count(b"\n")


# pandas writes an unnamed index other than a RangeIndex as a column of this name.
UNNAMED_INDEX = re.compile(r"^__index_level_[0-9]+__$")


def _arrow_text(table: pa.Table) -> pd.DataFrame:
    """A Parquet table as text, each column cast in Arrow, never through float64.

    ``pd.read_parquet`` turns an integer column holding a null into float64 (9007199254740993
    read as 9007199254740992.0, an id 1 as ``1.0``). A pandas index written with the data
    (``set_index("account_id").to_parquet()``) is read as the column it names; an unnamed one
    (``__index_level_0__``) is pandas' row numbering, not data. A NaN is the text ``nan``, as in
    a CSV (so not a valid number); a null is missing.
    """
    table = table.drop_columns(_unnamed_index(table.schema))
    return pd.DataFrame(
        {name: _column_text(column) for name, column in zip(table.column_names, table.columns, strict=True)},
        dtype="object",
    )


def _unnamed_index(schema: pa.Schema) -> list[str]:
    """The columns holding pandas' row numbering (an unnamed index), which are not data."""
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    return [c for c in index if isinstance(c, str) and UNNAMED_INDEX.match(c) and c in schema.names]


def _column_text(column: pa.ChunkedArray):
    """The column as an array of str (None where null): the text a CSV export would carry."""
    return _arrow_column_text(column).to_numpy(zero_copy_only=False)


def _arrow_column_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The column as Arrow text (null where null), cast in Arrow: see :func:`_column_text`."""
    import pyarrow.compute as pc

    try:
        text = pc.cast(column, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # nested values, binary that is not UTF-8
        return pa.array([None if value is None else _text(value) for value in column.to_pylist()], pa.string())
    if pa.types.is_timestamp(column.type):
        # Arrow writes "2024-03-01 15:00:00.000000+0500"; ISO 8601 as Python writes it is
        # "2024-03-01T15:00:00+05:00" (no fraction when it is zero).
        text = pc.replace_substring_regex(text, pattern=r"^([0-9-]+) ", replacement=r"\1T")
        text = pc.replace_substring_regex(text, pattern=r"\.0+($|[+Z-])", replacement=r"\1")
        text = pc.replace_substring_regex(text, pattern=r"([+-][0-9]{2})([0-9]{2})$", replacement=r"\1:\2")
    return text


def _text(value: object) -> str:
    """A nested value (list, struct, map) as JSON; anything else as ``str``."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
