"""Which CSV files are plain (read by DuckDB) and how many data rows they hold, in any block size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postsales.sources import csv_shape
from postsales.sources.csv_shape import plain_csv_rows

PLAIN = {
    "lf": (b"a,b\n1,2\n3,4\n", 2, 2),
    "crlf": (b"a,b\r\n1,2\r\n", 2, 1),
    "bom": (b"\xef\xbb\xbfa,b\n1,2\n", 2, 1),
    "no final line end": (b"a,b\n1,2", 2, 1),
    "header only": (b"a,b\n", 2, 0),
    "header only, no line end": (b"a,b", 2, 0),
    "quoted everything": (b'"a","b"\n"1","x, ""y""\n\r\nz"\n', 2, 1),
    "empty fields": (b"a,b,c\n,,\n1,,\n", 3, 2),
    "quoted empty": (b'a\n""\n', 1, 1),
    "spaces inside fields": (b"a,b\n 1 , 2 \n", 2, 1),
    "one column": (b"a\n1\nx y\n", 1, 2),
    "nul": (b"a,b\n1,x\x00y\n", 2, 1),
}
NOT_PLAIN = {
    "empty file": (b"", 1),
    "blank line": (b"a,b\n1,2\n\n3,4\n", 2),
    "crlf blank line": (b"a,b\r\n1,2\r\n\r\n", 2),
    "whitespace line, one column": (b"a\n1\n \t\n2\n", 1),
    "blank line, one column": (b"a\n1\n\n2\n", 1),
    "blank line before the header": (b"\na,b\n1,2\n", 2),
    "one field too many": (b"a,b\n1,2,3\n", 2),
    "an empty field too many": (b"a,b\n1,2,\n", 2),
    "one field short": (b"a,b,c\n1,2\n", 3),
    "space before a quote": (b'a,b\n1, "2"\n', 2),
    "space after a quote": (b'a,b\n"1" ,2\n', 2),
    "quote inside a field": (b'a,b\n1x"y,2\n', 2),
    "text after a closing quote": (b'a,b\n"1"x,2\n', 2),
    "unterminated quote": (b'a,b\n1,"2\n', 2),
    "lone CR": (b"a,b\r1,2\r", 2),
    "CR at the end": (b"a,b\n1,2\r", 2),
    "line break in the header": (b'a,"b\nc"\n1,2\n', 2),
}


@pytest.mark.parametrize("block", [3, 4, 5, 7, 1 << 20])
@pytest.mark.parametrize("case", list(PLAIN), ids=list(PLAIN))
def test_plain_files_and_their_rows(tmp_path, monkeypatch, case, block):
    content, fields, rows = PLAIN[case]
    monkeypatch.setattr(csv_shape, "BLOCK_BYTES", block)
    (tmp_path / "f.csv").write_bytes(content)
    assert plain_csv_rows(tmp_path / "f.csv", fields) == rows


@pytest.mark.parametrize("block", [3, 4, 5, 7, 1 << 20])
@pytest.mark.parametrize("case", list(NOT_PLAIN), ids=list(NOT_PLAIN))
def test_files_that_are_not_plain(tmp_path, monkeypatch, case, block):
    content, fields = NOT_PLAIN[case]
    monkeypatch.setattr(csv_shape, "BLOCK_BYTES", block)
    (tmp_path / "f.csv").write_bytes(content)
    assert plain_csv_rows(tmp_path / "f.csv", fields) is None


PIECES = st.sampled_from(["a", "é", ",", '"', " ", "\t", "\n", "\r\n", "\r", '""', ',"', '",', "\x00"])


@settings(max_examples=300, deadline=None)
@given(header=st.sampled_from(["a,b", "a", "a,b,c", '"a",b']), body=st.lists(PIECES, max_size=30))
def test_the_answer_does_not_depend_on_where_blocks_end(tmp_path_factory, header, body):
    path = tmp_path_factory.mktemp("shape") / "f.csv"
    path.write_bytes(f"{header}\n{''.join(body)}".encode())
    fields = header.count(",") + 1
    answers = set()
    default = csv_shape.BLOCK_BYTES
    try:
        for block in (3, 4, 5, 8, 13, 1 << 20):
            csv_shape.BLOCK_BYTES = block
            answers.add(plain_csv_rows(path, fields))
    finally:
        csv_shape.BLOCK_BYTES = default
    assert len(answers) == 1
