"""Type raw source text in the warehouse, with exactly the result the pandas rules give (tests/coerce_oracle.py).

``typed(text, column_type, dialect)`` is a SQLAlchemy expression that evaluates, on DuckDB and on
PostgreSQL, to the value ``coerce()`` gives for the same string, NULL where coerce gives a null.
It never raises: a cast error on one row would take the whole batch down, so every cast sits
behind a guard that admits only text the cast accepts (a regular expression for the grammar,
range checks before a number or a date is built). ``blank_to_null(text, dialect)`` is the gate's
notion of a missing value: text that Python's ``str.strip()`` leaves empty.

The grammar, measured on pandas (tests/integration/test_typing_sql.py holds the evidence):

number
    ``pd.to_numeric``: ``[+-]`` then ``12``, ``12.``, ``12.5`` or ``.5``, an optional exponent
    ``e``/``E`` ``[+-]`` digits of any length; ASCII digits only; spaces, tabs, ``\\n \\v \\f \\r``
    around it (not other Unicode whitespace). ``inf``, ``nan``, ``1_000``, ``0x10``, ``1,000`` are not
    numbers. The nearest double, kept when ``|x| < 1e32``; -0 is 0. After a leading ``+``, though,
    pandas uses its own parser, which rounds twice (the first 17 significant digits to a double,
    then times or divided by a power of ten) unless the text is digits within 2**64 - 1.
integer
    After ``str.strip()``: ``[+-]digits`` exactly over BIGINT's range; any other number spelling
    when its double is whole and ``|x| <= 2**53`` (so ``12.0``, ``1e3``, and also ``12.000000000000000001``).
date, timestamp
    After ``str.strip()``, pandas' ISO 8601 parser from a full ``YYYY-MM-DD`` on: then ``T`` or one
    space and a time ``HH``, ``HHMM``, ``HHMMSS[.f]`` or ``H:M``, ``H:M:S[.f]`` (one or two digits),
    up to 18 fraction digits, truncated to microseconds; then ASCII whitespace and ``Z`` or
    ``[+-]H``, ``[+-]HH``, ``[+-]HH[:]M``, ``[+-]HH[:]MM``, ``[+-]H:M[M]``. No 24:00, no leap second,
    real calendar days (year 0 is a leap year), the UTC instant in year 1 or later. A timestamp is
    the naive UTC instant, a date its UTC day. pandas reads a value with more than six fraction
    digits at nanosecond resolution, where only 1677-09-21 00:12:43.145224193 to 2262-04-11
    23:47:16.854775807 exist (as written and in UTC); outside that range such a value is null.
boolean
    After ``str.strip()``, case-insensitively ``true t 1 yes y`` / ``false f 0 no n``.
string
    The text unchanged.

The common spellings are typed by the databases' own casts (DuckDB's ``TRY_CAST``; PostgreSQL's
after the day is checked against the month), behind a guard that admits only text on which the
cast agrees with pandas. The rest is taken apart and rebuilt with integer arithmetic: on DuckDB
with one regular expression with groups, on PostgreSQL (whose regular expressions with groups
are slow) with string functions. Parts used more than once are bound once (``_let``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnClause, ColumnElement

TRUE_VALUES = frozenset({"true", "t", "1", "yes", "y"})
FALSE_VALUES = frozenset({"false", "f", "0", "no", "n"})
# The SQL casts money to numeric(38, 6): 32 digits before the point. inf, nan and larger
# magnitudes are not valid numbers.
NUMBER_LIMIT = 1e32
# integer columns are BIGINT (postsales.tables.SQL_TYPES).
BIGINT_MAX = 2**63 - 1
# Integers written as 12.0 or 1e3 go through float64, which is exact up to 2**53.
EXACT_FLOAT_INTEGER = 2**53

DUCKDB = "duckdb"
POSTGRESQL = "postgresql"
DIALECTS = (DUCKDB, POSTGRESQL)

# What Python's str.strip() removes (str.isspace()); pyarrow's strip, which coerce() uses, removes the same.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(code) for code in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
# C's isspace(): the whitespace pandas' number parser and its ISO 8601 parser skip.
C_SPACE = " \t\n\x0b\x0c\r"
_C_SPACE_CLASS = r"[ \t\n\v\f\r]"

# pandas' to_numeric, the finite spellings (inf and nan are not numbers here either).
NUMBER = rf"{_C_SPACE_CLASS}*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?{_C_SPACE_CLASS}*"
DIGITS = r"[+-]?[0-9]+"
# pandas' ISO 8601 parser (np_datetime_strings.c) after coerce's full-date check, with a group for
# every field: date, the clock in the basic (HHMMSS) or the extended (H:M:S) form, then the offset.
# The grammar has one parse for any text, so its groups are well defined.
INSTANT_GROUPS = (
    "year",
    "month",
    "day",
    "basic_hour",
    "basic_minute",
    "basic_second",
    "basic_fraction",
    "hour",
    "minute",
    "second",
    "fraction",
    "sign",
    "offset_hours",
    "offset_minutes",
    "short_offset_hours",
    "short_offset_minutes",
)
_INSTANT_GROUPED = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]"
    r"(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]{0,18}))?)?)?"
    r"|([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:\.([0-9]{0,18}))?)?)"
    rf"{_C_SPACE_CLASS}*(?:Z|([+-])(?:([0-9]{{2}})(?::?([0-9]{{1,2}}))?|([0-9])(?::([0-9]{{1,2}}))?))?)?"
)
INSTANT = re.sub(r"\((?!\?)", "(?:", _INSTANT_GROUPED)
assert re.compile(_INSTANT_GROUPED).groups == len(INSTANT_GROUPS)

# The spellings the databases' own casts read as pandas does, once the field ranges are checked
# here (PostgreSQL also needs the day checked against the month first, and takes offsets up to
# 15:59). Naive from year 1; with an offset from year 2, so the UTC instant is in year 1 or later.
_MONTH_DAY = r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_HM = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_SECONDS = r":[0-5][0-9](?:\.[0-9]{1,6})?"
_OFFSET = r"(?:Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)"
CAST_NAIVE = rf"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{{2}}|[1-9][0-9]{{3}}){_MONTH_DAY}(?:[T ]{_HM}(?:{_SECONDS})?)?"
# DuckDB reads no offset after HH:MM without seconds.
CAST_OFFSET = rf"(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{{2}}|[1-9][0-9]{{3}}){_MONTH_DAY}[T ]{_HM}{_SECONDS}{_OFFSET}"
# Seven to 18 fraction digits (.NET writes seven, Java nine), cut to six (the casts would round), in
# years where pandas' nanosecond range cannot end, even a day away in UTC.
_NANOSECOND_YEAR = r"(?:167[89]|16[89][0-9]|1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-5][0-9]|226[01])"
_NANOSECONDS = r":[0-5][0-9]\.[0-9]{7,18}"
CAST_NAIVE_NANOSECONDS = rf"{_NANOSECOND_YEAR}{_MONTH_DAY}[T ]{_HM}{_NANOSECONDS}"
CAST_OFFSET_NANOSECONDS = rf"{_NANOSECOND_YEAR}{_MONTH_DAY}[T ]{_HM}{_NANOSECONDS}{_OFFSET}"

# A decimal string whose first significant digit is at 10**LEAD is in [10**LEAD, 10**(LEAD + 1)).
# Below 10**-324 it rounds to 0; PostgreSQL raises on that underflow instead, and on overflow.
_MIN_LEAD = -324
# 2**-1075, half the smallest subnormal double, as significant digits: a value with lead -324
# rounds to 0 when its digits are at most these (a tie goes to the even 0).
with localcontext() as _context:
    _context.prec = 2000
    HALF_MIN_SUBNORMAL_DIGITS = str(Decimal(2) ** -1075).split("E")[0].replace(".", "").rstrip("0")
# Leads up to here cannot overflow and, for numbers, may still be below NUMBER_LIMIT.
_NUMBER_MAX_LEAD = len(str(int(NUMBER_LIMIT))) - 2  # 1e32 has 33 digits: lead 31 is the last below
_INTEGER_MAX_LEAD = len(str(EXACT_FLOAT_INTEGER)) - 1  # 2**53 has 16 digits: lead 15
# A text of at most this many characters without an exponent is below 1e31 and is 0 or above 1e-31:
# PostgreSQL casts it directly.
_SHORT_DECIMAL = 31

_DAY_US = 86_400_000_000
# Nanosecond timestamps in pandas, as (microseconds since 1970, nanoseconds past them).
_NS_MIN = (-9_223_372_036_854_776, 193)
_NS_MAX = (9_223_372_036_854_775, 807)
# 0001-01-01 in microseconds since 1970; 0000-01-01 to 1970-01-01 in days.
_FIRST_US = -62_135_596_800_000_000
_DAYS_1970 = 719_528


def typed(text: ColumnElement, column_type: str, dialect: str) -> ColumnElement:
    """``text`` typed as ``column_type`` on ``dialect`` (``duckdb`` or ``postgresql``), as coerce() types it.

    ``text`` is evaluated several times: pass a column, or a cheap expression of one.
    """
    sql = _Sql(_dialect_name(dialect))
    if column_type == "string":
        return text
    text = _Given(text)
    if column_type == "number":
        return _Inline(sql.number(text))
    if column_type == "integer":
        return _Inline(sql.integer(text))
    if column_type == "timestamp":
        return _Inline(sql.instant(text))
    if column_type == "date":
        return _Inline(sa.cast(sql.instant(text), sa.Date))
    if column_type == "boolean":
        return _Inline(sql.boolean(text))
    raise ValueError(f"unknown column type {column_type!r}")


def blank_to_null(text: ColumnElement, dialect: str) -> ColumnElement:
    """``text``, or NULL where it is empty or all whitespace (Python's ``str.strip()`` gives "")."""
    sql = _Sql(_dialect_name(dialect))
    text = _Given(text)
    return _Inline(sa.case((sql.matches(text, f"{sql.whitespace_class()}*"), sa.null()), else_=text))


def _dialect_name(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"typing in SQL supports {DIALECTS}, not {dialect!r}")
    return dialect


# --- SQL building blocks ------------------------------------------------------------------------


def _int(value: int) -> ColumnElement:
    return sa.literal_column(str(value), sa.BigInteger)


def _text(value: str) -> ColumnElement:
    """A string literal; characters outside printable ASCII are written as chr() calls, folded by the planner."""
    parts: list[str] = []
    run = ""
    for char in value:
        if " " <= char <= "~":
            run += char.replace("'", "''")
            continue
        if run:
            parts.append(f"'{run}'")
            run = ""
        parts.append(f"chr({ord(char)})")
    if run or not parts:
        parts.append(f"'{run}'")
    return sa.literal_column(" || ".join(parts) if len(parts) > 1 else parts[0], sa.Text)


def _number_of(text: ColumnElement, sql_type=sa.BigInteger) -> ColumnElement:
    """Digits (or '') as a number, '' and NULL as 0. Callers guarantee at most 18 ASCII digits."""
    return sa.func.coalesce(sa.cast(sa.func.nullif(text, ""), sql_type), 0)


class _Inline(ColumnElement):
    """``inner`` with its constants written into the SQL rather than bound: the statement is
    self-contained and DuckDB folds them when it plans. Statements holding it are not cached
    (a cached statement would keep the first constants it was compiled with)."""

    __visit_name__ = "postsales_inline"
    inherit_cache = False

    def __init__(self, inner: ColumnElement):
        self.inner = inner
        self.type = inner.type

    @property
    def _from_objects(self):
        return self.inner._from_objects


@compiles(_Inline)
def _inline(element: _Inline, compiler, **kw) -> str:
    outer = kw.get("literal_binds", False)
    return compiler.process(element.inner, **{**kw, "literal_binds": True, "postsales_literal_binds": outer})


class _Given(ColumnElement):
    """The caller's text inside an _Inline, compiled as the caller compiles it (a bound parameter
    stays bound) and typed as text: a cast of an untyped literal would be made, and raise, while
    PostgreSQL parses the statement, before any CASE could keep it from bad text."""

    __visit_name__ = "postsales_given"
    inherit_cache = False

    def __init__(self, text: ColumnElement):
        is_column = isinstance(text, ColumnClause) and text.table is not None
        self.text = text if is_column else sa.cast(text, sa.Text)
        self.type = sa.Text()

    @property
    def _from_objects(self):
        return self.text._from_objects


@compiles(_Given)
def _given(element: _Given, compiler, **kw) -> str:
    literal_binds = kw.pop("postsales_literal_binds", kw.get("literal_binds", False))
    return compiler.process(element.text, **{**kw, "literal_binds": literal_binds})


_let_names = itertools.count(1)


class _Let(ColumnElement):
    """``body`` with a name bound to ``value``, which is computed once per row.

    PostgreSQL does not share repeated subexpressions, nor does DuckDB inside a CASE branch; an
    expression used several times would be computed each time. PostgreSQL gets a scalar subquery
    (OFFSET 0 keeps the planner from inlining it again), DuckDB a lambda over a one-item list.
    """

    __visit_name__ = "postsales_let"
    inherit_cache = False

    def __init__(self, value: ColumnElement, name: str, body: ColumnElement):
        self.value = value
        self.name = name
        self.body = body
        self.type = body.type

    @property
    def _from_objects(self):
        return [*self.value._from_objects, *self.body._from_objects]


@compiles(_Let, DUCKDB)
def _let_duckdb(element: _Let, compiler, **kw) -> str:
    value = compiler.process(element.value, **kw)
    body = compiler.process(element.body, **kw)
    return f"list_extract(list_transform([{value}], lambda {element.name}: {body}), 1)"


@compiles(_Let, POSTGRESQL)
def _let_postgresql(element: _Let, compiler, **kw) -> str:
    value = compiler.process(element.value, **kw)
    body = compiler.process(element.body, **kw)
    return f"(SELECT {body} FROM (SELECT {value} AS {element.name} OFFSET 0) AS {element.name}_)"


def _let(value: ColumnElement, body: Callable[[ColumnElement], ColumnElement], sql_type=None) -> ColumnElement:
    name = f"_typing_{next(_let_names)}"
    return _Let(value, name, body(sa.literal_column(name, sql_type if sql_type is not None else value.type)))


def _item(values: ColumnElement, position: int | ColumnElement, sql_type=sa.BigInteger) -> ColumnElement:
    """The ``position``-th (from 1) of a list: DuckDB's lists and PostgreSQL's arrays both count from 1."""
    if isinstance(position, int):
        return sa.literal_column(f"{values}[{position}]", sql_type)
    return _Item(values, position, sql_type)


class _Item(ColumnElement):
    __visit_name__ = "postsales_item"
    inherit_cache = False

    def __init__(self, values: ColumnElement, position: ColumnElement, sql_type):
        self.values, self.position, self.type = values, position, sql_type()

    @property
    def _from_objects(self):
        return [*self.values._from_objects, *self.position._from_objects]


@compiles(_Item)
def _item_sql(element: _Item, compiler, **kw) -> str:
    return f"({compiler.process(element.values, **kw)})[{compiler.process(element.position, **kw)}]"


# The doubles nearest to 10**0 .. 10**308, as the C literals 1e0 .. 1e308 of pandas' parser: neither
# database's power() gives them all (10**23 and 10**210 are off by one unit in the last place).
_POWERS = ", ".join(repr(float(f"1e{k}")) for k in range(309))
_POWERS_OF_TEN = {
    DUCKDB: sa.literal_column(f"CAST([{_POWERS}] AS DOUBLE[])"),
    POSTGRESQL: sa.literal_column(f"CAST(ARRAY[{_POWERS}] AS DOUBLE PRECISION[])"),
}


@dataclass(frozen=True)
class _InstantParts:
    """The clock and offset of a text in the INSTANT grammar, as text ('' where absent), and two numbers."""

    hour: ColumnElement
    minute: ColumnElement
    second: ColumnElement
    fraction: ColumnElement
    sign: ColumnElement
    offset_hours: ColumnElement
    offset_minutes: ColumnElement

    @classmethod
    def of(cls, text: ColumnElement) -> _InstantParts:
        after_date = sa.func.substr(text, 12)
        zone_part = sa.func.ltrim(after_date, _text("0123456789:."))
        clock = sa.func.left(after_date, sa.func.length(after_date) - sa.func.length(zone_part))
        zone = sa.func.ltrim(zone_part, _text(C_SPACE))
        # HH, HHMM, HHMMSS[.f] or H:M, H:M:S[.f]
        extended = sa.func.strpos(clock, ":") > 0
        seconds = sa.case((extended, sa.func.split_part(clock, ":", 3)), else_=sa.func.substr(clock, 5))
        # Z, [+-]H, [+-]HH, [+-]HHM, [+-]HHMM, or with a colon
        offset = sa.func.substr(zone, 2)
        offset_colon = sa.func.strpos(offset, ":") > 0
        return cls(
            hour=sa.case((extended, sa.func.split_part(clock, ":", 1)), else_=sa.func.left(clock, 2)),
            minute=sa.case((extended, sa.func.split_part(clock, ":", 2)), else_=sa.func.substr(clock, 3, 2)),
            second=sa.func.split_part(seconds, ".", 1),
            fraction=sa.func.split_part(seconds, ".", 2),
            sign=sa.func.left(zone, 1),
            offset_hours=sa.case((offset_colon, sa.func.split_part(offset, ":", 1)), else_=sa.func.left(offset, 2)),
            offset_minutes=sa.case((offset_colon, sa.func.split_part(offset, ":", 2)), else_=sa.func.substr(offset, 3)),
        )

    @property
    def nanoseconds(self) -> ColumnElement:
        """Nanoseconds past the microsecond (fraction digits 7 to 9)."""
        return _number_of(sa.func.rpad(sa.func.substr(self.fraction, 7, 3), 3, _text("0")))

    @property
    def offset(self) -> ColumnElement:
        """The offset from UTC in minutes."""
        sign = sa.case((self.sign == "-", -1), else_=1)
        return sign * (_number_of(self.offset_hours) * 60 + _number_of(self.offset_minutes))


class _Sql:
    """The expressions for one dialect."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        self.duckdb = dialect == DUCKDB

    # --- text --------------------------------------------------------------------------------------

    def matches(self, text: ColumnElement, pattern: str) -> ColumnElement:
        """``text`` is all of ``pattern`` (RE2 on DuckDB, PostgreSQL's ARE: the patterns use their common syntax)."""
        if self.duckdb:
            return sa.func.regexp_full_match(text, _text(pattern), type_=sa.Boolean)
        return text.bool_op("~")(_text(f"^(?:{pattern})$"))

    def whitespace_class(self) -> str:
        escape = "\\x{{{:x}}}" if self.duckdb else "\\u{:04x}"
        return "[" + "".join(escape.format(ord(char)) for char in WHITESPACE) + "]"

    def trim(self, text: ColumnElement, characters: str) -> ColumnElement:
        return getattr(sa.func, "trim" if self.duckdb else "btrim")(text, _text(characters), type_=sa.Text)

    def strip(self, text: ColumnElement) -> ColumnElement:
        """Python's ``str.strip()``."""
        if not self.duckdb:
            return self.trim(text, WHITESPACE)
        # DuckDB's trim() with a list of characters takes 1.3 µs a value, a regular expression 0.3 µs.
        space = self.whitespace_class()
        return sa.func.regexp_replace(text, _text(f"^{space}+|{space}+$"), "", "g", type_=sa.Text)

    def on_stripped(self, text: ColumnElement, build: Callable[[ColumnElement], ColumnElement]) -> ColumnElement:
        """``build`` applied to ``text`` after Python's ``str.strip()``.

        PostgreSQL binds the stripped text once. DuckDB does so only for text with whitespace at an
        end, and builds the expression again for the rest: a lambda costs it time on every row.
        """
        if not self.duckdb:
            return _let(self.strip(text), build)
        space = self.whitespace_class()
        edge = sa.func.regexp_matches(text, _text(f"^{space}|{space}$"), type_=sa.Boolean)
        return sa.case((edge, _let(self.strip(text), build)), else_=build(text))

    def idiv(self, dividend: ColumnElement, divisor: int) -> ColumnElement:
        """Integer division of non-negative integers."""
        # A precedence above every other operator: SQLAlchemy then parenthesises the operands.
        return dividend.op("//" if self.duckdb else "/", precedence=100, return_type=sa.BigInteger)(_int(divisor))

    # --- numbers -------------------------------------------------------------------------------------

    def double(self, text: ColumnElement, max_lead: int) -> ColumnElement:
        """The double pandas reads from ``text`` (in the NUMBER grammar); NULL from 10**(max_lead + 1) on.

        pandas parses with fast_float, which rounds to nearest, but fast_float takes no leading '+':
        pandas then falls back to its own parser, which rounds twice (see ``_legacy``). A '+' and
        digits that fit an unsigned 64-bit integer are read as that integer, though, exactly.
        """
        plus = sa.and_(sa.func.strpos(text, "+") > 0, sa.func.left(sa.func.ltrim(text, _text(C_SPACE)), 1) == "+")
        legacy = (sa.and_(plus, sa.not_(self._unsigned_64(text))), self._legacy(text, max_lead))
        if self.duckdb:
            # DuckDB's cast rounds to nearest and gives inf on overflow, 0 on underflow, like fast_float.
            return sa.case(legacy, else_=sa.try_cast(text, sa.Double))
        short = sa.and_(
            sa.func.length(text) <= _SHORT_DECIMAL,
            self.matches(text, rf"{_C_SPACE_CLASS}*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+){_C_SPACE_CLASS}*"),
        )
        return sa.case(legacy, (short, sa.cast(text, sa.Double)), else_=self._nearest(text, max_lead))

    def _unsigned_64(self, text: ColumnElement) -> ColumnElement:
        """``text`` is [+]digits within 2**64 - 1."""
        magnitude = sa.func.ltrim(sa.func.ltrim(self.trim(text, C_SPACE), _text("+")), _text("0"))
        length = sa.func.length(magnitude)
        return sa.and_(
            self.matches(text, rf"{_C_SPACE_CLASS}*\+?[0-9]+{_C_SPACE_CLASS}*"),
            sa.or_(length < 20, sa.and_(length == 20, magnitude.collate("C") <= _text(str(2**64 - 1)))),
        )

    def _decimal(self, text: ColumnElement) -> tuple[ColumnElement, ColumnElement, ColumnElement]:
        """``text`` (in the NUMBER grammar) as its significant digits (no leading zeros; '' for zero),
        its fraction digits, and the power of ten of its first significant digit."""
        unsigned = sa.func.translate(sa.func.ltrim(self.trim(text, C_SPACE), _text("+-")), "E", "e")
        mantissa = sa.func.split_part(unsigned, "e", 1)
        return self._decimal_of(
            sa.func.split_part(mantissa, ".", 1),
            sa.func.split_part(mantissa, ".", 2),
            sa.func.split_part(unsigned, "e", 2),
        )

    @staticmethod
    def _decimal_of(
        whole: ColumnElement, fraction: ColumnElement, exponent: ColumnElement
    ) -> tuple[ColumnElement, ColumnElement, ColumnElement]:
        digits = sa.func.ltrim(sa.func.concat(whole, fraction), _text("0"))
        exponent_digits = sa.func.ltrim(sa.func.ltrim(exponent, _text("+-")), _text("0"))
        exponent_value = sa.case((sa.func.left(exponent, 1) == "-", -1), else_=1) * sa.case(
            (sa.func.length(exponent_digits) > 9, 10**9),  # far beyond any double either way
            else_=_number_of(exponent_digits),
        )
        return digits, fraction, sa.func.length(digits) - sa.func.length(fraction) - 1 + exponent_value

    def _nearest(self, text: ColumnElement, max_lead: int) -> ColumnElement:
        """The nearest double by PostgreSQL's cast, which raises on overflow and on underflow to 0
        where pandas gives inf and 0: the size of the number decides those first."""

        def from_core(core: ColumnElement) -> ColumnElement:
            digits, _, lead = self._decimal(core)
            zero = sa.literal_column("0.0", sa.Double)
            return _let(
                lead,
                lambda lead: sa.case(
                    (digits == "", zero),
                    (lead > max_lead, sa.null()),
                    (
                        sa.or_(
                            lead < _MIN_LEAD,
                            sa.and_(
                                lead == _MIN_LEAD,
                                sa.func.rtrim(digits, _text("0")).collate("C") <= _text(HALF_MIN_SUBNORMAL_DIGITS),
                            ),
                        ),
                        zero,
                    ),
                    # The let-bound text, not a constant: PostgreSQL folds constants while planning,
                    # whatever the CASE around them says, and would raise there.
                    else_=sa.cast(core, sa.Double),
                ),
                sa.BigInteger,
            )

        return _let(self.trim(text, C_SPACE), from_core)

    def _legacy(self, text: ColumnElement, max_lead: int) -> ColumnElement:
        """pandas' own parser (tokenizer.c, precise_xstrtod), for a '+' (so a positive number): the
        first 17 significant digits as an integer, converted to a double, multiplied or divided by
        the double nearest to a power of ten. The text work is done before the arithmetic is bound:
        DuckDB, which runs nested string functions slowly in a CASE branch, takes the text apart with
        one regular expression instead."""
        if self.duckdb:
            groups = sa.func.regexp_extract(
                text,
                _text(rf"^{_C_SPACE_CLASS}*\+0*([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?{_C_SPACE_CLASS}*$"),
                sa.literal_column("['whole', 'fraction', 'exponent']"),
            )
            return _let(
                groups,
                lambda groups: self._legacy_of(
                    self._decimal_of(
                        *(sa.literal_column(f"{groups}.{name}") for name in ("whole", "fraction", "exponent"))
                    ),
                    max_lead,
                ),
                sa.Text,
            )
        return self._legacy_of(self._decimal(text), max_lead)

    def _legacy_of(self, decimal: tuple[ColumnElement, ColumnElement, ColumnElement], max_lead: int) -> ColumnElement:
        digits, _, lead = decimal
        kept = sa.func.left(digits, 17)
        exponent = lead + 1 - sa.func.length(kept)  # the power of ten of the last digit kept
        # Below 1e-308 pandas divides twice: by 1e(-308 - exponent), then by 1e308.
        power = _item(
            _POWERS_OF_TEN[self.dialect],
            sa.case((exponent > 0, exponent), (exponent >= -308, -exponent), else_=-308 - exponent) + 1,
            sa.Double,
        )
        # [the kept digits as a double (NULL for zero), the power of ten, lead, exponent]
        parts = [sa.cast(sa.cast(sa.func.nullif(kept, ""), sa.BigInteger), sa.Double), power, lead, exponent]
        return _let(
            self.array([sa.cast(part, sa.Double) for part in parts], sa.Double),
            lambda parts: self._legacy_scale(parts, max_lead),
        )

    @staticmethod
    def _legacy_scale(parts: ColumnElement, max_lead: int) -> ColumnElement:
        mantissa, power, lead, exponent = (_item(parts, position, sa.Double) for position in (1, 2, 3, 4))
        first = sa.case((exponent > 0, mantissa * power), else_=mantissa / power)
        # The second division gives 0 exactly when the first gives at most 1e308 * 2**-1075; PostgreSQL raises then.
        second = sa.case(
            (first <= sa.literal_column(repr(math.ldexp(1e308, -1075)), sa.Double), sa.literal_column("0.0")),
            else_=first / sa.literal_column("1e308", sa.Double),
        )
        return sa.case(
            (mantissa.is_(None), sa.literal_column("0.0", sa.Double)),
            (lead > max_lead + 1, sa.null()),  # at least 10**(max_lead + 2) after two roundings
            (exponent > 308, sa.null()),  # inf
            (exponent >= -308, first),
            (exponent >= -616, second),
            else_=sa.literal_column("0.0", sa.Double),
        )

    def array(self, items: list[ColumnElement], item_type) -> ColumnElement:
        if self.duckdb:
            return sa.func.list_value(*items, type_=sa.ARRAY(item_type))
        return postgresql.array(items, type_=item_type)

    def number(self, text: ColumnElement) -> ColumnElement:
        limit = sa.literal_column(repr(NUMBER_LIMIT), sa.Double)
        parsed = sa.case((self.matches(text, NUMBER), self.double(text, _NUMBER_MAX_LEAD)))
        # + 0.0 turns -0.0 into 0.0, as in coerce().
        return _let(parsed, lambda x: sa.case((sa.func.abs(x) < limit, x + sa.literal_column("0.0", sa.Double))))

    def integer(self, text: ColumnElement) -> ColumnElement:
        return self.on_stripped(text, self._integer)

    def _integer(self, text: ColumnElement) -> ColumnElement:
        exact_limit = sa.literal_column(f"{float(EXACT_FLOAT_INTEGER)!r}", sa.Double)
        whole = _let(
            self.double(text, _INTEGER_MAX_LEAD),
            lambda x: sa.case(
                (sa.and_(sa.func.abs(x) <= exact_limit, x == sa.func.floor(x)), sa.cast(x, sa.BigInteger))
            ),
        )
        return sa.case(
            (self.matches(text, DIGITS), self._bigint(text)),
            (self.matches(text, NUMBER), whole),
        )

    def _bigint(self, digits: ColumnElement) -> ColumnElement:
        if self.duckdb:
            return sa.try_cast(digits, sa.BigInteger)  # NULL outside BIGINT's range
        magnitude = sa.func.ltrim(sa.func.ltrim(digits, _text("+-")), _text("0"))
        limit = sa.case((sa.func.left(digits, 1) == "-", _text(str(BIGINT_MAX + 1))), else_=_text(str(BIGINT_MAX)))
        length = sa.func.length(magnitude)
        # Of two 19-digit numbers, the larger text is the larger number.
        fits = sa.or_(length < 19, sa.and_(length == 19, magnitude.collate("C") <= limit))
        return sa.case((fits, sa.cast(digits, sa.BigInteger)))

    # --- booleans ----------------------------------------------------------------------------------------

    def boolean(self, text: ColumnElement) -> ColumnElement:
        def of(stripped: ColumnElement) -> ColumnElement:
            # Only ASCII letters can spell the words: PostgreSQL lowers those alone under the C collation;
            # DuckDB's lower() maps no other character to one of them (the tests check every code point).
            word = sa.func.lower(stripped if self.duckdb else stripped.collate("C"), type_=sa.Text)
            return sa.case(
                (word.in_([_text(w) for w in sorted(TRUE_VALUES)]), sa.true()),
                (word.in_([_text(w) for w in sorted(FALSE_VALUES)]), sa.false()),
            )

        return self.on_stripped(text, of)

    # --- instants ----------------------------------------------------------------------------------------

    def instant(self, text: ColumnElement) -> ColumnElement:
        """The naive UTC timestamp coerce() reads from ``text``."""
        return self.on_stripped(text, self._instant)

    def _instant(self, text: ColumnElement) -> ColumnElement:
        # 'YYYY-MM-DDTHH:MM:SS.ffffff' is 26 characters: the fraction cut to microseconds, as pandas does.
        cut = sa.func.concat(sa.func.left(text, 26), sa.func.ltrim(sa.func.substr(text, 27), _text("0123456789")))
        casts = [
            (CAST_NAIVE, self._naive_cast(text)),
            (CAST_OFFSET, self._utc_cast(text)),
            (CAST_NAIVE_NANOSECONDS, self._naive_cast(sa.func.left(text, 26))),
            (CAST_OFFSET_NANOSECONDS, self._utc_cast(cut)),
        ]
        if not self.duckdb:  # PostgreSQL raises on a day the month does not have
            year, month, day = (_number_of(sa.func.substr(text, start, 4 if start == 1 else 2)) for start in (1, 6, 9))
            real_day = day <= self._days_in_month(year, month)
            casts = [(pattern, sa.case((real_day, cast))) for pattern, cast in casts]
        return sa.case(
            *((self.matches(text, pattern), cast) for pattern, cast in casts),
            (self.matches(text, INSTANT), self._general_instant(text)),
        )

    def _naive_cast(self, text: ColumnElement) -> ColumnElement:
        return sa.try_cast(text, sa.DateTime) if self.duckdb else sa.cast(text, sa.DateTime)

    def _utc_cast(self, text: ColumnElement) -> ColumnElement:
        """The naive UTC time of ``text`` with an offset, whatever the session's time zone."""
        if self.duckdb:
            instant = sa.try_cast(text, sa.TIMESTAMP(timezone=True))
            return sa.func.make_timestamp(sa.func.epoch_us(instant), type_=sa.DateTime)
        return sa.func.timezone("UTC", sa.cast(text, sa.TIMESTAMP(timezone=True)), type_=sa.DateTime)

    def _general_instant(self, text: ColumnElement) -> ColumnElement:
        """``text`` (in the INSTANT grammar) taken apart with string functions, checked and rebuilt with
        integer arithmetic. The string work is done before the numbers are bound: DuckDB runs string
        functions and nested lambdas slowly inside a lambda."""
        if self.duckdb:
            # One regular expression with groups is cheaper in DuckDB than the string functions,
            # which it runs slowly inside a CASE branch; groups that take no part are ''.
            groups = sa.func.regexp_extract(
                text,
                _text(f"^{_INSTANT_GROUPED}$"),
                sa.literal_column("[" + ", ".join(f"'{g}'" for g in INSTANT_GROUPS) + "]"),
            )

            def from_groups(groups: ColumnElement) -> ColumnElement:
                group = {name: sa.literal_column(f"{groups}.{name}", sa.Text) for name in INSTANT_GROUPS}
                fraction = sa.func.concat(group["basic_fraction"], group["fraction"])
                sign = sa.case((group["sign"] == "-", -1), else_=1)
                offset_hours = _number_of(sa.func.concat(group["offset_hours"], group["short_offset_hours"]))
                offset_minutes = _number_of(sa.func.concat(group["offset_minutes"], group["short_offset_minutes"]))
                return self._instant_of(
                    year=_number_of(group["year"]),
                    month=_number_of(group["month"]),
                    day=_number_of(group["day"]),
                    hour=_number_of(sa.func.concat(group["basic_hour"], group["hour"])),
                    minute=_number_of(sa.func.concat(group["basic_minute"], group["minute"])),
                    second=_number_of(sa.func.concat(group["basic_second"], group["second"])),
                    micro=_number_of(sa.func.rpad(sa.func.left(fraction, 6), 6, _text("0"))),
                    nano=_number_of(sa.func.rpad(sa.func.substr(fraction, 7, 3), 3, _text("0"))),
                    digits=sa.func.length(fraction),
                    offset=sign * (offset_hours * 60 + offset_minutes),
                    offset_hours=offset_hours,
                    offset_minutes=offset_minutes,
                )

            return _let(groups, from_groups, sa.Text)
        parts = _InstantParts.of(text)
        year, month, day = (
            _number_of(sa.func.substr(text, start, length)) for start, length in ((1, 4), (6, 2), (9, 2))
        )
        hour, minute, second = _number_of(parts.hour), _number_of(parts.minute), _number_of(parts.second)
        micro = _number_of(sa.func.rpad(sa.func.left(parts.fraction, 6), 6, _text("0")))
        clock = hour * 3_600_000_000 + minute * 60_000_000 + second * 1_000_000 + micro
        local = self._days_from_civil(year, month, day) * _DAY_US + clock
        fields = [year, month, day, hour, minute, second, parts.nanoseconds, sa.func.length(parts.fraction)]
        fields += [parts.offset, _number_of(parts.offset_hours), _number_of(parts.offset_minutes), local]
        values = self.array([sa.cast(field, sa.BigInteger) for field in fields], sa.BigInteger)
        return _let(values, self._instant_of_fields, sa.ARRAY(sa.BigInteger))

    def _instant_of_fields(self, fields: ColumnElement) -> ColumnElement:
        year, month, day, hour, minute, second, nano, digits, offset, offset_hours, offset_minutes, local = (
            _item(fields, position) for position in range(1, 13)
        )
        return self._instant_of(
            **dict(year=year, month=month, day=day, hour=hour, minute=minute, second=second, nano=nano),
            **dict(digits=digits, offset=offset, offset_hours=offset_hours, offset_minutes=offset_minutes),
            local=local,
        )

    def _instant_of(
        self,
        *,
        year: ColumnElement,
        month: ColumnElement,
        day: ColumnElement,
        hour: ColumnElement,
        minute: ColumnElement,
        second: ColumnElement,
        nano: ColumnElement,
        digits: ColumnElement,
        offset: ColumnElement,
        offset_hours: ColumnElement,
        offset_minutes: ColumnElement,
        micro: ColumnElement | None = None,
        local: ColumnElement | None = None,
    ) -> ColumnElement:
        """The naive UTC timestamp of the fields, NULL where pandas reads none (``local``: microseconds
        since 1970 as written, when the caller has them already; else from ``micro`` and the rest)."""
        if local is None:
            clock = hour * 3_600_000_000 + minute * 60_000_000 + second * 1_000_000 + micro
            local = self._days_from_civil(year, month, day) * _DAY_US + clock
        valid = sa.and_(
            month.between(1, 12),
            day.between(1, self._days_in_month(year, month)),
            hour < 24,
            minute < 60,
            second < 60,
            offset_hours < 24,
            offset_minutes < 60,
        )
        # Bound once, with all the inner expression needs (a DuckDB lambda that reaches out to an
        # enclosing lambda's variable is slow): [local time or NULL, offset, nanoseconds, fraction digits]
        moments = self.array([sa.case((valid, local)), offset * 60_000_000, nano, digits], sa.BigInteger)
        return _let(moments, self._checked_instant, sa.ARRAY(sa.BigInteger))

    def _checked_instant(self, moments: ColumnElement) -> ColumnElement:
        local, offset, nano, digits = (_item(moments, position) for position in range(1, 5))
        utc = local - offset
        # More than six fraction digits: pandas reads nanoseconds, whose range the value must be in,
        # as written and in UTC.
        in_nanosecond_range = sa.and_(self._ns_in_range(local, nano), self._ns_in_range(utc, nano))
        return sa.case(
            (
                sa.and_(local.is_not(None), utc >= _int(_FIRST_US), sa.or_(digits <= 6, in_nanosecond_range)),
                self._timestamp(utc),
            )
        )

    def _days_in_month(self, year: ColumnElement, month: ColumnElement) -> ColumnElement:
        return sa.case(
            (month == 2, 28 + sa.case((self._leap(year), 1), else_=0)),
            (month.in_([4, 6, 9, 11]), 30),
            else_=31,
        )

    @staticmethod
    def _leap(year: ColumnElement) -> ColumnElement:
        return sa.and_(year % 4 == 0, sa.or_(year % 100 != 0, year % 400 == 0))

    def _days_from_civil(self, year: ColumnElement, month: ColumnElement, day: ColumnElement) -> ColumnElement:
        """Days since 1970-01-01 of a proleptic Gregorian date, from year 0 on."""
        # Years from March, so the leap day ends the year; shifted by 400 years so every division is of a
        # non-negative number (146,097 days), and from 0000-03-01 (719,468 days before 1970).
        march_year = year - sa.case((month <= 2, 1), else_=0) + 400
        leap_days = self.idiv(march_year, 4) - self.idiv(march_year, 100) + self.idiv(march_year, 400)
        day_of_year = self.idiv(153 * ((month + 9) % 12) + 2, 5) + day - 1
        return march_year * 365 + leap_days + day_of_year - 719_468 - 146_097

    @staticmethod
    def _ns_in_range(micros: ColumnElement, nanos: ColumnElement) -> ColumnElement:
        (low_us, low_ns), (high_us, high_ns) = _NS_MIN, _NS_MAX
        return sa.and_(
            sa.or_(micros > _int(low_us), sa.and_(micros == _int(low_us), nanos >= low_ns)),
            sa.or_(micros < _int(high_us), sa.and_(micros == _int(high_us), nanos <= high_ns)),
        )

    def _timestamp(self, micros: ColumnElement) -> ColumnElement:
        """The timestamp ``micros`` microseconds after 1970, from year 1 on."""
        if self.duckdb:
            return sa.func.make_timestamp(micros, type_=sa.DateTime)
        # Whole days and the rest: an interval of 10**17 microseconds would go through a double.
        since_year_0 = micros + _DAYS_1970 * _DAY_US  # positive: integer division rounds down
        date = sa.literal_column("DATE '1970-01-01'", sa.Date).op("+", return_type=sa.Date)(
            sa.cast(self.idiv(since_year_0, _DAY_US) - _DAYS_1970, sa.Integer)
        )
        rest = since_year_0 - self.idiv(since_year_0, _DAY_US) * _DAY_US
        return date.op("+", return_type=sa.DateTime)(rest * sa.literal_column("INTERVAL '1 microsecond'"))
