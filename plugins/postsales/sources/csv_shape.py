"""Whether a CSV file is plain RFC 4180, the shape on which DuckDB's reader and pandas' agree.

On other shapes they part silently: pandas skips blank and whitespace-only lines, keeps the
text after a closing quote and fails a row with empty fields beyond the header, where DuckDB
reads a blank line of a one-column file as a NULL row, trims spaces around quotes and drops
trailing empty fields (measured with DuckDB 1.5 and pandas 3.1). A file that is not plain is
read by pandas, as before; a plain one by the warehouse.

Plain: an optional UTF-8 BOM, then records ending in LF or CRLF (the last may lack it), each
with exactly as many fields as the header; a field either holds no quote, or is quoted from
its first to its last byte, with quotes doubled inside; outside quotes, CR only before LF; no
record blank or only spaces and tabs. The file is scanned in blocks with numpy, never row by row.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

BLOCK_BYTES = 1 << 23
COMMA, QUOTE, LF, CR, SPACE, TAB = 44, 34, 10, 13, 32, 9


def plain_csv_rows(path: Path, fields: int) -> int | None:
    """The number of data rows of ``path`` if every record (header included) is plain and has
    ``fields`` fields, else None."""
    scan = _Scan(fields)
    with path.open("rb") as handle:
        data = handle.read(BLOCK_BYTES)
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        while True:
            more = handle.read(BLOCK_BYTES)
            if not more:
                return scan.records - 1 if scan.block(data, b"", last=True) else None
            # The last two bytes wait for the next block: a quote or a CR is judged by what follows.
            if not scan.block(data[:-2], data[-2:], last=False):
                return None
            data = data[-2:] + more


class _Scan:
    def __init__(self, fields: int):
        self.fields = fields
        self.inside = 0  # 1 while inside a quoted field
        self.before = LF  # the byte before the block (at the start, a record starts)
        self.before_closing = False  # whether that byte closed a quoted field
        self.commas = 0  # field separators so far in the current record
        self.solid = 0  # bytes other than space, tab, CR so far in the current record
        self.open_record = False  # whether the current record has any byte yet
        self.records = 0  # records ended so far (the header is the first)

    def block(self, data: bytes, lookahead: bytes, last: bool) -> bool:
        """Scan ``data``, followed by the two bytes ``lookahead`` (or by the end of the file)."""
        import numpy as np

        if data:
            b = np.frombuffer(data, np.uint8)
            # The byte after each byte, and the one after that; the end of the file counts as LF.
            following = np.frombuffer(data[1:] + (b"\n\n" if last else lookahead), np.uint8)
            if not self._plain(b, following[: b.size], following[1 : b.size + 1], last):
                return False
        return self._finish() if last else True

    def _plain(self, b, after, after2, last: bool) -> bool:
        import numpy as np

        quote = b == QUOTE
        # uint8 sums wrap at 256, which keeps their parity: inside quotes after an odd count.
        inside_after = (np.cumsum(quote, dtype=np.uint8) + self.inside) & 1
        inside_before = (inside_after ^ quote).astype(bool)
        opening = quote & ~inside_before
        closing = quote & inside_before
        previous = np.concatenate(([self.before], b[:-1]))
        previous_closing = np.concatenate(([self.before_closing], closing[:-1]))
        field_start = (previous == COMMA) | (previous == LF)
        if (opening & ~(field_start | previous_closing)).any():
            return False  # a quote inside an unquoted field, or after a space
        ends_field = (after == QUOTE) | (after == COMMA) | (after == LF) | ((after == CR) & (after2 == LF))
        if (closing & ~ends_field).any():
            return False  # text after a closing quote
        outside = ~inside_before & ~quote
        if ((b == CR) & outside & (after != LF)).any() or (last and b[-1] == CR and outside[-1]):
            return False  # a CR that ends no line
        newlines = np.flatnonzero((b == LF) & outside)
        if self.records == 0:
            # DuckDB loses every row after a header holding a quoted line break (1.5).
            header = b[: newlines[0]] if newlines.size else b
            if (((header == LF) | (header == CR)) & inside_before[: header.size]).any():
                return False
        commas = np.flatnonzero((b == COMMA) & outside)
        if newlines.size:
            per_record = np.diff(np.searchsorted(commas, newlines), prepend=0)
            per_record[0] += self.commas
            if (per_record != self.fields - 1).any():
                return False
            self.commas = int(commas.size - np.searchsorted(commas, newlines[-1]))
        else:
            self.commas += int(commas.size)
        if self.fields == 1 and not self._solid_records(b, newlines):
            return False
        self.open_record = newlines.size == 0 or int(newlines[-1]) < b.size - 1
        self.records += int(newlines.size)
        self.inside = int(inside_after[-1])
        self.before = int(b[-1])
        self.before_closing = bool(closing[-1])
        return True

    def _solid_records(self, b, newlines) -> bool:
        """With one field, no record may be blank or only spaces and tabs (pandas skips those lines)."""
        import numpy as np

        solid = np.cumsum(~((b == SPACE) | (b == TAB) | (b == CR) | (b == LF)), dtype=np.int64)
        if newlines.size == 0:
            self.solid += int(solid[-1])
            return True
        at_ends = solid[newlines]
        per_record = np.diff(at_ends, prepend=0)
        per_record[0] += self.solid
        if (per_record == 0).any():
            return False
        self.solid = int(solid[-1] - at_ends[-1])
        return True

    def _finish(self) -> bool:
        if self.inside:
            return False  # the file ends inside quotes
        if not self.open_record:
            return self.records > 0  # the file ends with a line end (an empty file has no header)
        self.records += 1
        return self.commas == self.fields - 1 and (self.fields > 1 or self.solid > 0)
