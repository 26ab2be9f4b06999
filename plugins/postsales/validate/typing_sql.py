"""Type raw source text in the warehouse, with exactly the result coerce() gives in pandas.

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
    around it (not other Unicode whitespace). The nearest double, kept when ``|x| < 1e32``; -0 is 0.
    ``inf``, ``nan``, ``1_000``, ``0x10``, ``1,000`` are not numbers.
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

DuckDB types the common spellings with its own casts (``TRY_CAST``, which never raises) behind a
guard that admits only text on which the cast agrees with pandas; the rest, and everything on
PostgreSQL, is taken apart with string functions and rebuilt with integer arithmetic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal, localcontext

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnClause, ColumnElement

from postsales.validate.coerce import (
    BIGINT_MAX,
    EXACT_FLOAT_INTEGER,
    FALSE_VALUES,
    NUMBER_LIMIT,
    TRUE_VALUES,
)

DUCKDB = "duckdb"
POSTGRESQL = "postgresql"
DIALECTS = (DUCKDB, POSTGRESQL)
COLUMN_TYPES = ("string", "number", "integer", "date", "timestamp", "boolean")

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
# pandas' ISO 8601 parser (np_datetime_strings.c) after coerce's full-date check.
_CLOCK = (
    r"(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{0,18})?)?)?"
    r"|[0-9]{1,2}:[0-9]{1,2}(?::[0-9]{1,2}(?:\.[0-9]{0,18})?)?)"
)
_ZONE = rf"{_C_SPACE_CLASS}*(?:Z|[+-](?:[0-9]{{2}}(?::?[0-9]{{1,2}})?|[0-9](?::[0-9]{{1,2}})?))?"
INSTANT = rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}(?:[T ]{_CLOCK}{_ZONE})?"

# The spellings DuckDB's own casts read as pandas does: field ranges checked, at most six
# fraction digits. Naive from year 1; with an offset from year 2, so the UTC instant is in year 1 or later.
_MONTH_DAY = r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_HM = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_SECONDS = r":[0-5][0-9](?:\.[0-9]{1,6})?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)"
DUCKDB_NAIVE = rf"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{{2}}|[1-9][0-9]{{3}}){_MONTH_DAY}(?:[T ]{_HM}(?:{_SECONDS})?)?"
# DuckDB reads no offset after HH:MM without seconds.
DUCKDB_OFFSET = rf"(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{{2}}|[1-9][0-9]{{3}}){_MONTH_DAY}[T ]{_HM}{_SECONDS}{_OFFSET}"

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
# 0001-01-01 in days since 1970-01-01.
_FIRST_DAY = -719_162


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


def _number_of(text: ColumnElement, sql_type=sa.Integer) -> ColumnElement:
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


def _item(values: ColumnElement, position: int) -> ColumnElement:
    """The ``position``-th (from 1) of a let-bound list of integers."""
    return sa.literal_column(f"{values}[{position}]", sa.BigInteger)


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
        # DuckDB's trim() with a character list is slow (1.3 µs a value): only where there is something to strip.
        space = self.whitespace_class()
        edge = sa.func.regexp_matches(text, _text(f"^{space}|{space}$"), type_=sa.Boolean)
        return sa.case((edge, self.trim(text, WHITESPACE)), else_=text)

    def idiv(self, dividend: ColumnElement, divisor: int) -> ColumnElement:
        """Integer division of non-negative integers."""
        # A precedence above every other operator: SQLAlchemy then parenthesises the operands.
        return dividend.op("//" if self.duckdb else "/", precedence=100, return_type=sa.BigInteger)(_int(divisor))

    # --- numbers -------------------------------------------------------------------------------------

    def double(self, text: ColumnElement, max_lead: int) -> ColumnElement:
        """The double pandas reads from ``text`` (in the NUMBER grammar); NULL from 10**(max_lead + 1) on.

        pandas parses with fast_float, which rounds to nearest, but fast_float takes no leading '+':
        pandas then falls back to its own parser, which rounds twice (see ``_scaled``). A '+' and
        digits that fit an unsigned 64-bit integer are read as that integer, though, exactly.
        """
        plus = sa.and_(sa.func.strpos(text, "+") > 0, sa.func.left(sa.func.ltrim(text, _text(C_SPACE)), 1) == "+")
        legacy = (sa.and_(plus, sa.not_(self._unsigned_64(text))), self._scaled(text, max_lead, legacy=True))
        if self.duckdb:
            # DuckDB's cast rounds to nearest and gives inf on overflow, 0 on underflow, like fast_float.
            return sa.case(legacy, else_=sa.try_cast(text, sa.Double))
        short = sa.and_(
            sa.func.length(text) <= _SHORT_DECIMAL,
            self.matches(text, rf"{_C_SPACE_CLASS}*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+){_C_SPACE_CLASS}*"),
        )
        return sa.case(legacy, (short, sa.cast(text, sa.Double)), else_=self._scaled(text, max_lead, legacy=False))

    def _unsigned_64(self, text: ColumnElement) -> ColumnElement:
        """``text`` is [+]digits within 2**64 - 1."""
        magnitude = sa.func.ltrim(sa.func.ltrim(self.trim(text, C_SPACE), _text("+")), _text("0"))
        length = sa.func.length(magnitude)
        return sa.and_(
            self.matches(text, rf"{_C_SPACE_CLASS}*\+?[0-9]+{_C_SPACE_CLASS}*"),
            sa.or_(length < 20, sa.and_(length == 20, magnitude.collate("C") <= _text(str(2**64 - 1)))),
        )

    def _scaled(self, text: ColumnElement, max_lead: int, *, legacy: bool) -> ColumnElement:
        """``text`` taken apart into its significant digits and the power of ten of the first of them.

        ``legacy``: pandas' own parser (tokenizer.c, precise_xstrtod), which keeps the first 17
        significant digits, converts them to a double and multiplies or divides that by the double
        nearest to a power of ten. Otherwise the nearest double, by PostgreSQL's cast, which raises
        on overflow and on underflow to 0 instead of giving inf or 0: the size decides those first.
        """
        zero = sa.literal_column("0.0", sa.Double)

        def from_parts(parts: ColumnElement, core: ColumnElement) -> ColumnElement:
            whole, fraction, exponent = (sa.literal_column(f"{parts}[{i}]", sa.Text) for i in (1, 2, 3))
            digits = sa.func.ltrim(whole + fraction, _text("0"))
            exponent_digits = sa.func.ltrim(sa.func.ltrim(exponent, _text("+-")), _text("0"))
            exponent_value = sa.case((sa.func.left(exponent, 1) == "-", -1), else_=1) * sa.case(
                (sa.func.length(exponent_digits) > 9, 10**9),  # far beyond any double either way
                else_=_number_of(exponent_digits, sa.BigInteger),
            )
            # The power of ten of the first significant digit.
            lead = sa.func.length(digits) - sa.func.length(fraction) - 1 + exponent_value

            def by_lead(lead: ColumnElement) -> ColumnElement:
                if legacy:
                    return sa.case(
                        (digits == "", zero),
                        (lead > max_lead + 1, sa.null()),  # at least 10**(max_lead + 2) after two roundings
                        else_=self._legacy_scale(sa.func.left(digits, 17), lead),
                    )
                return sa.case(
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
                )

            return _let(lead, by_lead, sa.BigInteger)

        def from_core(core: ColumnElement) -> ColumnElement:
            unsigned = sa.func.translate(sa.func.ltrim(core, _text("+-")), "E", "e")
            mantissa = sa.func.split_part(unsigned, "e", 1)
            parts = [
                sa.func.split_part(mantissa, ".", 1),
                sa.func.split_part(mantissa, ".", 2),
                sa.func.split_part(unsigned, "e", 2),
            ]
            return _let(self.array(parts, sa.Text), lambda parts: from_parts(parts, core))

        return _let(self.trim(text, C_SPACE), from_core)

    def _legacy_scale(self, digits: ColumnElement, lead: ColumnElement) -> ColumnElement:
        """precise_xstrtod's scaling of up to 17 significant ``digits`` whose first is at 10**``lead``
        (positive: the '+' is all that sends a value here)."""
        mantissa = sa.cast(sa.cast(digits, sa.BigInteger), sa.Double)
        exponent = lead + 1 - sa.func.length(digits)  # of the last digit kept

        def power(exponent: ColumnElement) -> ColumnElement:  # the double nearest to 10**exponent
            return sa.cast(sa.func.concat("1e", exponent), sa.Double)

        # mantissa / 1e(-308 - exponent) / 1e308 for exponents below -308; the second division
        # underflows to 0 exactly when the first gives at most 1e308 * 2**-1075 (PostgreSQL raises then).
        subnormal = _let(
            mantissa / power(-308 - exponent),
            lambda quotient: sa.case(
                (quotient <= sa.literal_column(repr(math.ldexp(1e308, -1075)), sa.Double), sa.literal_column("0.0")),
                else_=quotient / power(308),
            ),
            sa.Double,
        )
        return sa.case(
            (exponent > 308, sa.null()),  # inf
            (exponent > 0, mantissa * power(exponent)),
            (exponent >= -308, mantissa / power(-exponent)),
            (exponent >= -616, subnormal),
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
        return _let(self.strip(text), self._integer)

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
        stripped = self.strip(text)
        # Only ASCII letters can spell the words: PostgreSQL lowers those alone under the C collation;
        # DuckDB's lower() maps no other character to one of them (the tests check every code point).
        lowered = sa.func.lower(stripped if self.duckdb else stripped.collate("C"), type_=sa.Text)

        def of(word: ColumnElement) -> ColumnElement:
            return sa.case(
                (word.in_([_text(w) for w in sorted(TRUE_VALUES)]), sa.true()),
                (word.in_([_text(w) for w in sorted(FALSE_VALUES)]), sa.false()),
            )

        return _let(lowered, of)

    # --- instants ----------------------------------------------------------------------------------------

    def instant(self, text: ColumnElement) -> ColumnElement:
        """The naive UTC timestamp coerce() reads from ``text``."""
        return _let(self.strip(text), self._instant)

    def _instant(self, text: ColumnElement) -> ColumnElement:
        general = (self.matches(text, INSTANT), self._general_instant(text))
        if not self.duckdb:
            return sa.case(general)
        utc = sa.func.make_timestamp(
            sa.func.epoch_us(sa.try_cast(text, sa.TIMESTAMP(timezone=True))), type_=sa.DateTime
        )
        return sa.case(
            (self.matches(text, DUCKDB_NAIVE), sa.try_cast(text, sa.DateTime)),
            (self.matches(text, DUCKDB_OFFSET), utc),
            general,
        )

    def _general_instant(self, text: ColumnElement) -> ColumnElement:
        """``text`` (in the INSTANT grammar) taken apart with string functions, validated and rebuilt."""
        after_date = sa.func.substr(text, 12)
        return _let(
            sa.func.ltrim(after_date, _text("0123456789:.")),
            lambda zone_part: _let(
                sa.func.left(after_date, sa.func.length(after_date) - sa.func.length(zone_part)),
                lambda clock: _let(
                    self._fields(text, clock, sa.func.ltrim(zone_part, _text(C_SPACE))),
                    self._instant_of_fields,
                    sa.ARRAY(sa.BigInteger),
                ),
            ),
        )

    def _fields(self, text: ColumnElement, clock: ColumnElement, zone: ColumnElement) -> ColumnElement:
        """[year, month, day, hour, minute, second, microsecond, nanoseconds past it,
        fraction digits, offset in minutes] as a list of integers."""
        extended = sa.func.strpos(clock, ":") > 0
        hour = sa.case((extended, sa.func.split_part(clock, _text(":"), 1)), else_=sa.func.left(clock, 2))
        minute = sa.case((extended, sa.func.split_part(clock, _text(":"), 2)), else_=sa.func.substr(clock, 3, 2))
        seconds = sa.case((extended, sa.func.split_part(clock, _text(":"), 3)), else_=sa.func.substr(clock, 5))
        fraction = sa.func.split_part(seconds, _text("."), 2)
        offset = sa.func.substr(zone, 2)
        offset_colon = sa.func.strpos(offset, ":") > 0
        offset_hours = sa.case((offset_colon, sa.func.split_part(offset, _text(":"), 1)), else_=sa.func.left(offset, 2))
        offset_minutes = sa.case(
            (offset_colon, sa.func.split_part(offset, _text(":"), 2)), else_=sa.func.substr(offset, 3)
        )
        offset_sign = sa.case((sa.func.left(zone, 1) == "-", -1), else_=1)
        fields = [
            _number_of(sa.func.substr(text, 1, 4)),
            _number_of(sa.func.substr(text, 6, 2)),
            _number_of(sa.func.substr(text, 9, 2)),
            _number_of(hour),
            _number_of(minute),
            _number_of(sa.func.split_part(seconds, _text("."), 1)),
            _number_of(sa.func.rpad(sa.func.left(fraction, 6), 6, _text("0"))),
            _number_of(sa.func.rpad(sa.func.substr(fraction, 7, 3), 3, _text("0"))),
            sa.func.length(fraction),
            offset_sign * (_number_of(offset_hours) * 60 + _number_of(offset_minutes)),
            _number_of(offset_hours),
            _number_of(offset_minutes),
        ]
        return self.array([sa.cast(field, sa.BigInteger) for field in fields], sa.BigInteger)

    def _instant_of_fields(self, fields: ColumnElement) -> ColumnElement:
        year, month, day, hour, minute, second, micro, nano, digits, offset, offset_hours, offset_minutes = (
            _item(fields, position) for position in range(1, 13)
        )
        days_in_month = sa.case(
            (month == 2, 28 + sa.case((self._leap(year), 1), else_=0)),
            (month.in_([4, 6, 9, 11]), 30),
            else_=31,
        )
        valid = sa.and_(
            month.between(1, 12),
            day.between(1, days_in_month),
            hour < 24,
            minute < 60,
            second < 60,
            offset_hours < 24,
            offset_minutes < 60,
        )
        local_day = self._days_from_civil(year, month, day)
        local_time = hour * 3_600_000_000 + minute * 60_000_000 + second * 1_000_000 + micro
        utc_time = local_time - offset * 60_000_000
        shift = sa.case((utc_time < 0, -1), (utc_time >= _DAY_US, 1), else_=0)
        utc_day = local_day + shift
        utc_time = utc_time - shift * _DAY_US
        in_nanosecond_range = sa.and_(
            self._ns_in_range(local_day * _DAY_US + local_time, nano),
            self._ns_in_range(utc_day * _DAY_US + utc_time, nano),
        )
        return sa.case(
            (
                sa.and_(valid, utc_day >= _FIRST_DAY, sa.or_(digits <= 6, in_nanosecond_range)),
                self._timestamp(utc_day, utc_time),
            )
        )

    @staticmethod
    def _leap(year: ColumnElement) -> ColumnElement:
        return sa.and_(year % 4 == 0, sa.or_(year % 100 != 0, year % 400 == 0))

    def _days_from_civil(self, year: ColumnElement, month: ColumnElement, day: ColumnElement) -> ColumnElement:
        """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm, years from 0 on)."""
        # Shifted by one 400-year era so every division is of a non-negative number.
        march_year = year - sa.case((month <= 2, 1), else_=0) + 400
        era = self.idiv(march_year, 400)
        year_of_era = march_year - era * 400
        day_of_year = self.idiv(153 * ((month + 9) % 12) + 2, 5) + day - 1
        day_of_era = year_of_era * 365 + self.idiv(year_of_era, 4) - self.idiv(year_of_era, 100) + day_of_year
        return era * 146_097 + day_of_era - 719_468 - 146_097

    @staticmethod
    def _ns_in_range(micros: ColumnElement, nanos: ColumnElement) -> ColumnElement:
        (low_us, low_ns), (high_us, high_ns) = _NS_MIN, _NS_MAX
        return sa.and_(
            sa.or_(micros > _int(low_us), sa.and_(micros == _int(low_us), nanos >= low_ns)),
            sa.or_(micros < _int(high_us), sa.and_(micros == _int(high_us), nanos <= high_ns)),
        )

    def _timestamp(self, day: ColumnElement, micros: ColumnElement) -> ColumnElement:
        if self.duckdb:
            return sa.func.make_timestamp(day * _DAY_US + micros, type_=sa.DateTime)
        date = sa.literal_column("DATE '1970-01-01'", sa.Date).op("+", return_type=sa.Date)(sa.cast(day, sa.Integer))
        return date.op("+", return_type=sa.DateTime)(micros * sa.literal_column("INTERVAL '1 microsecond'"))
