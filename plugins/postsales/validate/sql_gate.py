"""The Great Expectations gate, run in the warehouse on a batch of source text.

The batch sits in a work table of text (``TextTable``: ``_row``, one column per source
column, the lineage). ``build_gate_table`` types it in SQL into a second work table with the
helper columns the expectations read: ``<c>__raw`` (the value, blank as null), ``<c>`` (typed),
``<c>__unparsed`` (set but not of its type), ``<c>__unknown`` (a reference that does not exist),
``<c>__when_<other>_<n>`` (a range that applies where another column has a value), ``_filed`` and
``<c>__filed`` (rows on their file's day), and ``_refusal`` when the source refused rows (a
column it builds itself, ``postsales.sources.REFUSAL``). No rules-file value is ever part of SQL
text: every value is a bound parameter, and the query GX reads is made of our column names only.

GX validates that table through its SQL execution engine (``gx_warehouse``) and names the
failing rows by ``_row``; they go to a third work table ``(_row, check)``. From there everything
is set-based SQL: the quarantine rows with their reasons, the valid rows typed for staging, the
raw copy. The only values GX and its Data Docs see are HTML-escaped in SQL, so a value shown in
a page is text, never markup.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from postsales import warehouse
from postsales.config import ColumnRule, EntityRules, PlausibleDates, Thresholds
from postsales.errors import DataContractError
from postsales.sources import FILE_DAY, LINEAGE, REFUSAL, SOURCE, Interval, Refusal
from postsales.tables import SQL_TYPES
from postsales.validate.typing_sql import blank_to_null, typed

if TYPE_CHECKING:
    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)

ROW = "_row"
# True where a non-string column's source value is given (else null): its not-null check. A string
# column's own typed value is null exactly where its source value is.
GIVEN_SUFFIX = "__given"
UNPARSED_SUFFIX = "__unparsed"
UNKNOWN_SUFFIX = "__unknown"
WHEN_SUFFIX = "__when_"
# True where a row is on the day its file is named for (or the file is named for no day).
FILED = "_filed"
# A unique or key column's values on rows on their file's day, else null.
FILED_SUFFIX = "__filed"
# The compound key as one value (GX's SQL engine names no failing rows for compound uniqueness).
KEY = "_key"
# A checked-unique value where it occurs on more than one row of the batch, else null.
DUPLICATE_SUFFIX = "__duplicate"
# The source value (blanks as null) beside its typed value, inside the gate's select only.
_RAW = "__raw"


@dataclass(frozen=True)
class Check:
    label: str
    columns: tuple[str, ...]
    expectation: Any


@dataclass
class GateTables:
    """The work tables of one gated batch (dropped by the extract)."""

    gate: sa.Table
    failed: sa.Table
    rows_read: int
    rows_quarantined: int
    failures_by_expectation: Counter = field(default_factory=Counter)
    data_docs: str | None = None
    checks: list[Check] = field(default_factory=list)
    # Seconds spent typing the batch into the gate table and validating it (GX, incl. its import).
    phase_seconds: dict[str, float] = field(default_factory=dict)


def require_columns(entity: str, origin: str, columns: list[str], rules: EntityRules) -> None:
    """Fail the batch when a declared column is not among ``columns`` (one file's, or the batch's)."""
    missing = [name for name in rules.columns if name not in columns]
    if missing:
        raise DataContractError(missing_columns_message(entity, origin, missing, columns))


def missing_columns_message(entity: str, origin: str, missing: list[str], found: list[str]) -> str:
    found = [c for c in found if c not in LINEAGE]  # not the lineage the adapters add
    return (
        f"{entity} ({origin}): required column(s) {missing} missing; found {found}. "
        "Fix: add the column(s) to the source export, or map the source column names "
        "in include/rules/sources.yaml."
    )


def source_columns(entity: str, text: TextTable, rules: EntityRules) -> list[str] | None:
    """The batch's source columns; None for a batch with no rows and no columns (no file covers
    the interval): an empty batch, not a broken one. A declared column missing fails the batch."""
    columns = [c for c in text.columns if c not in LINEAGE]
    missing = [name for name in rules.columns if name not in columns]
    if missing and text.rows == 0 and not columns:
        return None
    if missing:
        raise DataContractError(missing_columns_message(entity, text.origin, missing, list(text.columns)))
    return columns


def when_column(name: str, other: str, number: int) -> str:
    """The helper column holding ``name`` where ``other`` has its ``number``-th ranges_when value."""
    return f"{name}{WHEN_SUFFIX}{other}_{number}"


def _bounds_text(low: float | None, high: float | None) -> str:
    low_text = "-inf" if low is None else f"{low:g}"
    high_text = "inf" if high is None else f"{high:g}"
    return f"[{low_text}, {high_text}]"


# html.escape's table: a value shown in Data Docs must be text, never markup. "&" first.
HTML_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;"))


def inert_text(text: str) -> str:
    for plain, escaped in HTML_ESCAPES:
        text = text.replace(plain, escaped)
    return text


def _inert(expr: sa.ColumnElement) -> sa.ColumnElement:
    escaped = expr
    for plain, entity in HTML_ESCAPES:
        escaped = sa.func.replace(escaped, plain, entity)
    # Most values hold none of the characters: looking is cheaper than replacing five times.
    holds_one = sa.or_(*(sa.func.strpos(expr, plain) > 0 for plain, _ in HTML_ESCAPES))
    return sa.case((holds_one, escaped), else_=expr)


def build_checks(
    entity: str,
    rules: EntityRules,
    not_after: datetime,
    plausible: PlausibleDates | None = None,
    filed_column: str | None = None,
    refusals: dict[str, Refusal] | None = None,
) -> list[Check]:
    """One row-level GX expectation per rule in the YAML, labelled for humans.

    The order is the reasons' order in ops.quarantine: column by column as in the YAML, each
    column's kinds of check in the order below, then the column pairs, the compound key, the
    file's day, the source's refusals.

    ``filed_column``: the batch comes from files named for days and ``FILED`` says which rows
    are on their file's day; the others fail one check and are left out of the uniqueness
    checks, so a row copied into another day's file does not take the original down with it.

    ``refusals``: the codes the source's ``REFUSAL`` column may hold, each a check labelled with
    its reason, failed by the rows holding the code.
    """
    plausible = plausible or PlausibleDates()
    checks: list[Check] = []
    for name, rule in rules.columns.items():
        checks += _required_check(name, rule)
        checks += _type_check(name, rule)
        checks += _unique_check(name, rule)
        checks += _range_check(name, rule)
        checks += _conditional_range_checks(name, rule)
        checks += _allowed_check(name, rule)
        checks += _reference_check(name, rule)
        checks += _plausible_date_check(name, rule, plausible)
        checks += _not_future_check(name, rule, not_after)
    checks += _column_pair_checks(rules)
    checks += _compound_key_check(rules)
    checks += _filed_check(filed_column)
    checks += _refusal_checks(refusals or {})
    return checks


# Each builder: the checks one kind of rule asks for (none when the rule does not).


def _required_check(name: str, rule: ColumnRule) -> list[Check]:
    import great_expectations.expectations as gxe

    if not rule.not_null:
        return []
    given = name if rule.type == "string" else name + GIVEN_SUFFIX
    return [Check(f"{name} is required", (name,), gxe.ExpectColumnValuesToNotBeNull(column=given))]


def _type_check(name: str, rule: ColumnRule) -> list[Check]:
    import great_expectations.expectations as gxe

    if rule.type == "string":
        return []
    return [
        Check(
            f"{name} must be a valid {rule.type}",
            (name,),
            gxe.ExpectColumnValuesToBeNull(column=name + UNPARSED_SUFFIX),
        )
    ]


def _unique_check(name: str, rule: ColumnRule) -> list[Check]:
    import great_expectations.expectations as gxe

    if not rule.unique:
        return []
    return [
        Check(
            f"{name} must be unique",
            (name,),
            gxe.ExpectColumnValuesToBeNull(column=name + DUPLICATE_SUFFIX),
        )
    ]


def _range_check(name: str, rule: ColumnRule) -> list[Check]:
    import great_expectations.expectations as gxe

    if rule.min is None and rule.max is None:
        return []
    return [
        Check(
            f"{name} must be in {_bounds_text(rule.min, rule.max)}",
            (name,),
            gxe.ExpectColumnValuesToBeBetween(column=name, min_value=rule.min, max_value=rule.max),
        )
    ]


def _conditional_range_checks(name: str, rule: ColumnRule) -> list[Check]:
    """``ranges_when``: a range per value of another column, read from its helper column."""
    import great_expectations.expectations as gxe

    return [
        Check(
            f"{name} must be in {_bounds_text(low, high)} when {other} is {value}",
            (name, other),
            gxe.ExpectColumnValuesToBeBetween(column=when_column(name, other, number), min_value=low, max_value=high),
        )
        for other, ranges in (rule.ranges_when or {}).items()
        for number, (value, (low, high)) in enumerate(ranges.items())
    ]


def _allowed_check(name: str, rule: ColumnRule) -> list[Check]:
    import great_expectations.expectations as gxe

    if rule.allowed is None:
        return []
    return [
        Check(
            f"{name} must be one of {rule.allowed}",
            (name,),
            gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[inert_text(v) for v in rule.allowed]),
        )
    ]


def _reference_check(name: str, rule: ColumnRule) -> list[Check]:
    import great_expectations.expectations as gxe

    if rule.references is None:
        return []
    return [
        Check(
            f"{name} must exist in {rule.references}",
            (name,),
            gxe.ExpectColumnValuesToBeNull(column=name + UNKNOWN_SUFFIX),
        )
    ]


def _plausible_date_check(name: str, rule: ColumnRule, plausible: PlausibleDates) -> list[Check]:
    import great_expectations.expectations as gxe

    if rule.type not in ("date", "timestamp"):
        return []
    return [
        Check(
            f"{name} must be between {plausible.min} and {plausible.max}",
            (name,),
            gxe.ExpectColumnValuesToBeBetween(
                column=name,
                min_value=datetime.combine(plausible.min, datetime.min.time()),
                max_value=datetime.combine(plausible.max + timedelta(days=1), datetime.min.time()),
                strict_max=True,  # any time on the max day is in
            ),
        )
    ]


def _not_future_check(name: str, rule: ColumnRule, not_after: datetime) -> list[Check]:
    import great_expectations.expectations as gxe

    if not rule.not_future:
        return []
    return [
        Check(
            # No timestamp in the reason: a rerun a minute later must write the same rows.
            f"{name} must not be in the future",
            (name,),
            gxe.ExpectColumnValuesToBeBetween(column=name, max_value=not_after),
        )
    ]


def _column_pair_checks(rules: EntityRules) -> list[Check]:
    import great_expectations.expectations as gxe

    checks = []
    for pair in rules.column_pairs:
        relation = ">=" if pair.or_equal else ">"
        checks.append(
            Check(
                f"{pair.greater} must be {relation} {pair.lesser}",
                (pair.greater, pair.lesser),
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=pair.greater,
                    column_B=pair.lesser,
                    or_equal=pair.or_equal,
                    ignore_row_if="either_value_is_missing",
                ),
            )
        )
    return checks


def _compound_key_check(rules: EntityRules) -> list[Check]:
    """A key of several columns, checked as one text (``KEY``: GX names no failing rows for compound uniqueness)."""
    import great_expectations.expectations as gxe

    if not (rules.unique_key and len(rules.key) > 1):
        return []
    return [
        Check(
            f"({', '.join(rules.key)}) must be unique",
            tuple(rules.key),
            gxe.ExpectColumnValuesToBeNull(column=KEY + DUPLICATE_SUFFIX),
        )
    ]


def _filed_check(filed_column: str | None) -> list[Check]:
    import great_expectations.expectations as gxe

    if not filed_column:
        return []
    return [
        Check(
            f"{filed_column} must be the day its file is named for",
            (filed_column,),
            gxe.ExpectColumnValuesToBeInSet(column=FILED, value_set=[True]),
        )
    ]


def _refusal_checks(refusals: dict[str, Refusal]) -> list[Check]:
    """A row the source refused fails its refusal's check (a null ``REFUSAL``: no objection)."""
    import great_expectations.expectations as gxe

    return [
        Check(refusal.reason, (refusal.column,), gxe.ExpectColumnValuesToNotBeInSet(column=REFUSAL, value_set=[code]))
        for code, refusal in refusals.items()
    ]


# --- typing in SQL ---------------------------------------------------------------------------


def _misfiled(value: sa.ColumnElement, file_day: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """A typed incremental value not on the day its file is named for (false where either is missing)."""
    return sa.and_(value.is_not(None), file_day.is_not(None), sa.cast(value, sa.Date) != sa.cast(file_day, sa.Date))


def _key_text(parts: list[sa.ColumnElement]) -> sa.ColumnElement:
    """A compound key as one text, unambiguous, null where every part is.

    A text part is length-prefixed (it may hold the separator); a typed part's text (a date, a
    number) holds no ``|``. A missing part is ``~``, which no written part is.
    """
    pieces = []
    for part in parts:
        as_text = sa.cast(part, sa.Text)
        if isinstance(part.type, sa.Text):
            as_text = sa.cast(sa.func.length(part), sa.Text) + sa.literal(":") + as_text
        pieces.append(sa.func.coalesce(as_text, "~"))
    joined = pieces[0]
    for piece in pieces[1:]:
        joined = joined + sa.literal("|") + piece
    return sa.case((sa.and_(*(p.is_(None) for p in parts)), sa.null()), else_=joined)


def gate_columns(rules: EntityRules, filed: bool, refused: bool = False) -> list[sa.Column]:
    """The gate table's columns (name and SQL type); ``refused``: the batch has a ``REFUSAL`` column."""
    columns = [sa.Column(ROW, sa.BigInteger)]
    for name, rule in rules.columns.items():
        sql_type = SQL_TYPES[rule.type]
        columns.append(sa.Column(name, sql_type))
        if rule.type != "string":
            columns += [sa.Column(name + GIVEN_SUFFIX, sa.Boolean), sa.Column(name + UNPARSED_SUFFIX, sa.Text)]
        if rule.references is not None:
            columns.append(sa.Column(name + UNKNOWN_SUFFIX, sa.Text))
        for other, ranges in (rule.ranges_when or {}).items():
            columns += [sa.Column(when_column(name, other, n), sql_type) for n in range(len(ranges))]
    # The uniqueness checks read one column each: the unique column or the compound key's text,
    # from files named for days only its FILED_SUFFIX copy (rows on their file's day).
    compound = rules.unique_key and len(rules.key) > 1
    if filed:
        columns.append(sa.Column(FILED, sa.Boolean))
        columns += [sa.Column(name + FILED_SUFFIX, SQL_TYPES[rules.columns[name].type]) for name in _unique(rules)]
    if compound:
        columns.append(sa.Column(KEY + FILED_SUFFIX if filed else KEY, sa.Text))
    columns += [sa.Column(duplicate, _type_of(columns, checked)) for checked, duplicate in _uniqueness(rules, filed)]
    if refused:
        columns.append(sa.Column(REFUSAL, sa.Text))
    return columns


def _type_of(columns: list[sa.Column], name: str) -> Any:
    return next(column.type for column in columns if column.name == name)


def _uniqueness(rules: EntityRules, filed: bool) -> list[tuple[str, str]]:
    """(checked column, its DUPLICATE_SUFFIX column) per uniqueness check: a unique column or the
    compound key's text; from files named for days, their copies for rows on their file's day."""
    suffix = FILED_SUFFIX if filed else ""
    pairs = [(name + suffix, name + DUPLICATE_SUFFIX) for name in _unique(rules)]
    if rules.unique_key and len(rules.key) > 1:
        pairs.append((KEY + suffix, KEY + DUPLICATE_SUFFIX))
    return pairs


# DuckDB could not spill a grouping of 80M key texts under a 256MB cap (out of memory, even on one
# thread); 26.8M went through. Larger batches are grouped a slice of the keys at a time.
KEYS_PER_GROUPING = 10_000_000


def mark_duplicates(eng: sa.Engine, gate: sa.Table, rules: EntityRules, filed: bool, rows: int) -> None:
    """Fill each DUPLICATE_SUFFIX column: the checked value where more than one row holds it.

    Not GX's ``expect_column_values_to_be_unique``: its SQL counts rows per value with a window
    (``count(*) over (partition by ...)``), which DuckDB cannot spill: at 80M usage rows it ran out
    of memory under a 512MB cap. A grouping spills; GX then checks that the column is null.
    Nulls are never duplicates, and every copy fails (we cannot know which is right), as in GX.
    On DuckDB a batch of ``rows`` is grouped in slices of the keys (by their hash), each slice
    holding about KEYS_PER_GROUPING keys; equal keys are always in the same slice. Each update is
    its own transaction, after the gate's rows are committed: DuckDB updated rows its transaction
    had just inserted 20× slower (26.8M usage rows: 66 s instead of 3 s).
    """
    slices = -(-rows // KEYS_PER_GROUPING) if eng.dialect.name == "duckdb" and rows > KEYS_PER_GROUPING else 1
    for checked, duplicate in _uniqueness(rules, filed):
        value = gate.c[checked]
        for number in range(slices):
            # Integers as SQL text, not parameters: DuckDB planned the parameterised statement 10× slower.
            in_slice = [value.is_not(None)]
            if slices > 1:
                in_slice.append(sa.func.hash(value) % sa.literal_column(str(slices)) == sa.literal_column(str(number)))
            once = sa.func.count() > sa.literal_column("1")
            repeated = sa.select(value).where(*in_slice).group_by(value).having(once)
            with eng.begin() as conn:
                conn.execute(gate.update().where(*in_slice, value.in_(repeated)).values({duplicate: value}))


def _unique(rules: EntityRules) -> list[str]:
    """Columns checked for uniqueness alone."""
    return [name for name, rule in rules.columns.items() if rule.unique]


def gate_select(
    text: sa.Table,
    rules: EntityRules,
    tables: warehouse.Tables,
    dialect: str,
    *,
    interval: Interval,
    incremental: tuple[str, str],
    filed: bool,
    refused: bool = False,
) -> sa.Select:
    """The typed batch: the rows of ``text`` this run reads, with the helper columns (and the
    source's ``REFUSAL`` column when ``refused``).

    A run reads the rows whose incremental value falls in its interval, plus rows the gate must
    see: a missing, unparseable or future value (after ``interval.horizon``) cannot be placed in
    any interval, nor can a row of a file named for a day whose value is on another day (the run
    of that day never opens this file). Other rows belong to the run of their interval.
    """
    values = {}
    for name, rule in rules.columns.items():
        value = blank_to_null(text.c[name], dialect)
        if rule.open_ended:
            open_ended = [sa.literal(day, sa.Date) for day in rule.open_ended]
            value = sa.case((typed(value, rule.type, dialect).in_(open_ended), sa.null()), else_=value)
        values[name] = value
    inner_columns = [text.c[ROW].label(ROW)]
    if filed:
        inner_columns.append(text.c[FILE_DAY].label(FILE_DAY))
    if refused:
        inner_columns.append(text.c[REFUSAL].label(REFUSAL))
    for name, rule in rules.columns.items():
        inner_columns += [
            values[name].label(name + _RAW),
            typed(values[name], rule.type, dialect).label(name),
        ]
    # PostgreSQL: materialised, as every helper column reads the typed values, which it would else
    # type again per use. DuckDB: not, since a materialised CTE of a large batch spills (26.8M usage
    # rows: 11.8 GB of temp files, the gate table 53 s) where typing again costs far less (17 s).
    materialized = ("MATERIALIZED",) if dialect == "postgresql" else ()
    inner = sa.select(*inner_columns).cte("typed").prefix_with(*materialized)
    c = inner.c

    column, _ = incremental
    where = sa.true()
    if not interval.full_refresh and column in rules.columns:
        value = c[column]
        keep = [
            value.is_(None),
            sa.and_(value >= interval.start, value < interval.end),
            value > sa.literal(interval.horizon, sa.DateTime),
        ]
        if filed:
            keep.append(_misfiled(value, c[FILE_DAY]))
        where = sa.or_(*keep)

    out = [c[ROW]]
    joins: list[tuple[sa.Subquery, sa.ColumnElement[bool]]] = []
    for name, rule in rules.columns.items():
        out.append(c[name])
        if rule.type != "string":
            given = c[name + _RAW].is_not(None)
            out += [
                sa.case((given, sa.true())).label(name + GIVEN_SUFFIX),
                sa.case((sa.and_(given, c[name].is_(None)), c[name + _RAW])).label(name + UNPARSED_SUFFIX),
            ]
        if rule.references is not None:
            entity, _, target = rule.references.partition(".")
            raw_keys = tables.raw[entity]
            staged = tables.staging[entity]
            # Every key ever read, valid or quarantined: a contract of an account whose CRM row is
            # quarantined (a missing industry, say) still belongs to a real account.
            known = sa.union(
                sa.select(raw_keys.c.record_key.label("key")).where(raw_keys.c.record_key != ""),
                sa.select(staged.c[target].label("key")),
            ).subquery(f"known_{name}")
            joins.append((known, known.c.key == c[name]))
            unknown = sa.and_(c[name].is_not(None), known.c.key.is_(None))
            out.append(sa.case((unknown, c[name])).label(name + UNKNOWN_SUFFIX))
        for other, ranges in (rule.ranges_when or {}).items():
            for number, value in enumerate(ranges):
                # Compared as data: the YAML value is a bound parameter, never SQL text.
                out.append(
                    sa.case((c[other] == sa.literal(value, sa.Text), c[name])).label(when_column(name, other, number))
                )
    if refused:
        out.append(c[REFUSAL])
    compound = rules.unique_key and len(rules.key) > 1
    if compound:
        out.append(_key_text([c[name] for name in rules.key]).label(KEY))
    if filed:
        on_its_day = sa.not_(_misfiled(c[column], c[FILE_DAY])) if column in rules.columns else sa.true()
        out.append(on_its_day.label(FILED))
        for name in _unique(rules):
            out.append(sa.case((on_its_day, c[name])).label(name + FILED_SUFFIX))
    # What GX reads, and so what its Data Docs show: every text value HTML-escaped, once, here.
    # Escaping is one-to-one, so equality, uniqueness and set membership (``allowed`` is escaped
    # the same way) give the same results; staging takes its text from the landed rows instead.
    text_columns = {column.name for column in gate_columns(rules, filed, refused) if isinstance(column.type, sa.Text)}
    from_clause: sa.FromClause = inner
    for known, on in joins:
        from_clause = from_clause.outerjoin(known, on)
    helpers = sa.select(*out).select_from(from_clause).where(where).cte("helpers").prefix_with(*materialized)
    final = list(helpers.c)
    if compound and filed:
        # The key text is built once, above; only its copy for rows on their file's day is checked.
        final.remove(helpers.c[KEY])
        final.append(sa.case((helpers.c[FILED], helpers.c[KEY])).label(KEY + FILED_SUFFIX))
    return sa.select(
        *((_inert(column) if column.name in text_columns else column).label(column.name) for column in final)
    )


# --- JSON text in SQL --------------------------------------------------------------------------


def json_value(expr: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """``expr`` (text or null) as a JSON value's text: a quoted, escaped string, or ``null``."""
    encoded = sa.func.to_json(expr)
    return sa.func.coalesce(sa.cast(encoded, sa.Text), "null")


def json_object(pairs: list[tuple[str, sa.ColumnElement]], dialect: str) -> sa.ColumnElement:
    """A JSON object's text with ``json.dumps`` separators; keys in the order given, bound as data."""
    if not pairs:
        return sa.literal("{}")
    expr = sa.literal("{")
    for number, (key, value) in enumerate(pairs):
        prefix = ("" if number == 0 else ", ") + json.dumps(key, ensure_ascii=False) + ": "
        expr = expr + sa.literal(prefix, sa.Text) + json_value(value, dialect)
    return expr + sa.literal("}")


def record_key(text: sa.Table, key: list[str]) -> sa.ColumnElement:
    """The row's key as read, parts joined with ``|`` (a missing part as empty)."""
    parts = [sa.func.coalesce(text.c[name], "") for name in key]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + sa.literal("|") + part
    return joined


# --- running the gate ----------------------------------------------------------------------------


def run_checks(
    conn: sa.Connection,
    entity: str,
    gate: sa.Table,
    failed: sa.Table,
    checks: list[Check],
    *,
    docs_dir: Path | None,
    run_name: str,
) -> tuple[Counter, bool]:
    """Validate the gate table with GX on ``conn``; write every failing ``(_row, check)`` to ``failed``.

    One checkpoint run gives each check's counts and the Data Docs (GX's SQL engine lists at most
    ``partial_unexpected_count`` failing rows there). Each failing check is then asked once more
    for all its failing rows by ``_row`` (``unexpected_index_list``, GX's own query on the
    warehouse); only those row numbers leave the warehouse, and go back in one bulk insert.
    """
    import great_expectations as gx
    import pandas as pd

    from postsales.validate import gx_warehouse

    counts: Counter = Counter()
    failing_rows: list[pd.DataFrame] = []
    with gx_warehouse.on_connection(conn) as context:
        source = context.data_sources.get(gx_warehouse.DATASOURCE)
        name = gate.name
        # A query asset: GX's table asset reflects the table's column types, which fails on DuckDB.
        query = str(sa.select(gate).compile(dialect=conn.dialect))
        asset = source.add_query_asset(name, query=query)
        batch_definition = asset.add_batch_definition_whole_table(name)
        suite = gx.ExpectationSuite(name=f"{entity}_contract")
        for number, check in enumerate(checks):
            suite.add_expectation(_expectation(check, number))
        suite = context.suites.add(suite)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{entity}_validation", data=batch_definition, suite=suite)
        )
        actions = []
        if docs_dir is not None:
            docs_dir.mkdir(parents=True, exist_ok=True)
            _docs_site(context, docs_dir)
            actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["postsales"]))
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{entity}_{run_name}")[:120],
                validation_definitions=[validation],
                actions=actions,
                result_format={"result_format": "SUMMARY", "unexpected_index_column_names": [ROW]},
            )
        )
        try:
            result = checkpoint.run()
            validation_result = next(iter(result.run_results.values()))
            batch = batch_definition.get_batch()
            for expectation_result in validation_result.results:
                problem = _raised(expectation_result.exception_info)
                unexpected = expectation_result.result.get("unexpected_count")
                if problem or (unexpected is None and not expectation_result.success):
                    raise RuntimeError(
                        f"{entity}: Great Expectations could not evaluate "
                        f"{expectation_result.expectation_config.type}: {problem or 'no result'}"
                    )
                if not unexpected:
                    continue
                number = expectation_result.expectation_config.meta["check"]
                counts[checks[number].label] += unexpected
                # The first run lists up to partial_unexpected_count rows: all of them, most days.
                rows = _row_numbers(expectation_result.result.get("partial_unexpected_index_list") or [])
                if len(rows) < unexpected:
                    every = batch.validate(
                        _expectation(checks[number], number),
                        result_format={
                            "result_format": "COMPLETE",
                            "unexpected_index_column_names": [ROW],
                            "partial_unexpected_count": unexpected,
                            "exclude_unexpected_values": True,
                        },
                    )
                    rows = _row_numbers(every.result.get("unexpected_index_list") or [])
                if len(rows) != unexpected:
                    raise RuntimeError(
                        f"{entity}: Great Expectations counted {unexpected} rows failing "
                        f"'{checks[number].label}' but listed {len(rows)}"
                    )
                failing_rows.append(pd.DataFrame({ROW: pd.array(rows, dtype="int64"), "check_number": number}))
        finally:
            context.checkpoints.delete(checkpoint.name)
            context.validation_definitions.delete(validation.name)
            context.suites.delete(suite.name)
            source.delete_asset(name)
            if docs_dir is not None:
                context.delete_data_docs_site("postsales")
    if failing_rows:
        warehouse.insert_frame(conn, failed, pd.concat(failing_rows, ignore_index=True))
    return counts, bool(validation_result.success)


def _raised(info: dict[str, Any] | None) -> str | None:
    """The message of an exception GX caught, if any: ``exception_info`` is one such dict, or one
    per metric that failed (keyed by the metric's id)."""
    info = info or {}
    found = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [str(item.get("exception_message")) for item in found if item.get("raised_exception")]
    return "; ".join(messages) or None


def _expectation(check: Check, number: int) -> Any:
    expectation = check.expectation.copy()
    expectation.id = None
    expectation.meta = {"label": check.label, "check": number}
    return expectation


def _row_numbers(index_list: list[dict[str, Any]]) -> list[int]:
    """``_row`` of each failing row; with ``exclude_unexpected_values`` GX gives one dict holding the list."""
    rows: list[int] = []
    for item in index_list:
        value = item[ROW]
        rows += value if isinstance(value, list) else [value]
    return rows


def _docs_site(context: Any, docs_dir: Path) -> None:
    context.add_data_docs_site(
        site_name="postsales",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )


def checks_table(checks: list[Check]) -> sa.Subquery:
    """(check_number, label as JSON text) for every check, bound as data."""
    rows = [(number, json.dumps(check.label, ensure_ascii=False)) for number, check in enumerate(checks)]
    return (
        sa.values(sa.column("check_number", sa.Integer), sa.column("label_json", sa.Text), name="checks")
        .data(rows)
        .alias("checks")
    )


def check_columns_table(checks: list[Check]) -> sa.Subquery:
    """(check_number, column, its JSON key, its place among the columns by code point) for every check."""
    names = sorted({column for check in checks for column in check.columns})
    place = {name: number for number, name in enumerate(names)}
    rows = [
        (number, column, json.dumps(column, ensure_ascii=False), place[column])
        for number, check in enumerate(checks)
        for column in check.columns
    ]
    return (
        sa.values(
            sa.column("check_number", sa.Integer),
            sa.column("column_name", sa.Text),
            sa.column("key_json", sa.Text),
            sa.column("place", sa.Integer),
            name="check_columns",
        )
        .data(rows)
        .alias("check_columns")
    )


def quarantine_select(
    text: sa.Table,
    failed: sa.Table,
    checks: list[Check],
    rules: EntityRules,
    source_columns: list[str],
    dialect: str,
) -> sa.Select:
    """One row per failing row: key, reasons (in check order), the offending values, the row as read.

    The JSON texts are ``json.dumps``' (separators ``, `` and ``: ``, keys sorted for the
    offending values), built in SQL.
    """
    labels = checks_table(checks)
    reasons = (
        sa.select(
            failed.c[ROW].label(ROW),
            (
                sa.literal("[")
                + sa.func.string_agg(labels.c.label_json, aggregate_order_by(sa.literal(", "), failed.c.check_number))
                + sa.literal("]")
            ).label("failed_expectations"),
        )
        .join_from(failed, labels, labels.c.check_number == failed.c.check_number)
        .group_by(failed.c[ROW])
        .subquery("reasons")
    )
    columns = check_columns_table(checks)
    pairs = (
        sa.select(failed.c[ROW].label(ROW), columns.c.column_name, columns.c.key_json, columns.c.place)
        .join_from(failed, columns, columns.c.check_number == failed.c.check_number)
        .distinct()
        .subquery("pairs")
    )
    value = sa.case(
        *((pairs.c.column_name == sa.literal(name, sa.Text), text.c[name]) for name in rules.columns),
        else_=sa.null(),
    )
    offending = (
        sa.select(
            pairs.c[ROW].label(ROW),
            (
                sa.literal("{")
                + sa.func.string_agg(
                    pairs.c.key_json + sa.literal(": ") + json_value(value, dialect),
                    aggregate_order_by(sa.literal(", "), pairs.c.place),
                )
                + sa.literal("}")
            ).label("offending_values"),
        )
        .join_from(pairs, text, text.c[ROW] == pairs.c[ROW])
        .group_by(pairs.c[ROW])
        .subquery("offending")
    )
    return (
        sa.select(
            record_key(text, rules.key).label("record_key"),
            reasons.c.failed_expectations,
            offending.c.offending_values,
            json_object([(name, text.c[name]) for name in source_columns], dialect).label("raw_row"),
            text.c[SOURCE].label("source"),
        )
        .join_from(reasons, text, text.c[ROW] == reasons.c[ROW])
        .join(offending, offending.c[ROW] == reasons.c[ROW])
    )


def valid_select(
    text: sa.Table,
    gate: sa.Table,
    failed: sa.Table,
    rules: EntityRules,
    source_columns: list[str],
    dialect: str,
) -> sa.Select:
    """The rows that passed, typed for staging, with their extra source columns as ``_extra``.

    Text comes from the landed rows (the gate table holds it HTML-escaped for GX)."""
    extra = sorted(name for name in source_columns if name not in rules.columns and name not in LINEAGE)
    extra_json = json_object([(name, text.c[name]) for name in extra], dialect) if extra else sa.null()
    return (
        sa.select(
            *(
                (blank_to_null(text.c[name], dialect) if rule.type == "string" else gate.c[name]).label(name)
                for name, rule in rules.columns.items()
            ),
            extra_json.label("_extra"),
            text.c[SOURCE].label(SOURCE),
        )
        .join_from(gate, text, text.c[ROW] == gate.c[ROW])
        .where(~sa.exists().where(failed.c[ROW] == gate.c[ROW]))
    )


def raw_select(
    text: sa.Table,
    gate: sa.Table,
    rules: EntityRules,
    source_columns: list[str],
    dialect: str,
    *,
    every_row: bool = False,
) -> sa.Select:
    """Every row the run read, as read: key and payload (the source columns as JSON).

    The run read the rows of ``text`` that are in the gate table; ``every_row`` (a full refresh,
    whose gate takes every landed row) reads ``text`` alone, without joining the two.
    """
    payload = json_object([(name, text.c[name]) for name in source_columns], dialect)
    has_key = all(name in source_columns for name in rules.key)
    select = sa.select(
        (record_key(text, rules.key) if has_key else sa.null()).label("record_key"),
        payload.label("payload"),
        text.c[SOURCE].label(SOURCE),
    )
    return select if every_row else select.join_from(gate, text, text.c[ROW] == gate.c[ROW])


def failed_fraction_error(
    entity: str, origin: str, gated: GateTables, thresholds: Thresholds
) -> DataContractError | None:
    """The error that fails a batch with too many bad rows (both the share and the count above limits)."""
    bad_rows, rows_read = gated.rows_quarantined, gated.rows_read
    fraction = bad_rows / rows_read if rows_read else 0.0
    if fraction > thresholds.max_failed_fraction and bad_rows >= thresholds.min_failed_rows:
        top = ", ".join(f"'{label}': {n}" for label, n in gated.failures_by_expectation.most_common(5) if n)
        return DataContractError(
            f"{entity} ({origin}): {bad_rows} of {rows_read} rows ({fraction:.1%}) failed validation, "
            f"above the {thresholds.max_failed_fraction:.1%} threshold; top failures: {top}. Nothing was loaded. "
            "Fix the source rows (see the Data Docs"
            + (f" at {gated.data_docs}" if gated.data_docs else "")
            + ") or raise thresholds.max_failed_fraction in include/rules/expectations.yaml."
        )
    return None


def gate_batch(
    eng: sa.Engine,
    text: TextTable,
    source_columns: list[str] | None,
    entity: str,
    rules: EntityRules,
    tables: warehouse.Tables,
    *,
    tag: str,
    interval: Interval,
    not_after: datetime,
    incremental: tuple[str, str],
    filed: bool,
    plausible: PlausibleDates | None,
    docs_dir: Path | None,
    run_name: str,
    work: list[sa.Table],
) -> GateTables:
    """Type the batch in ``text`` into the gate table, validate it with GX, list the failing rows.

    ``source_columns`` None: an empty batch with no columns (nothing to type). The work tables
    made here are appended to ``work`` as soon as they exist, for the caller to drop.
    """
    from postsales.sources.text_table import work_table_place

    column, _ = incremental
    refused = bool(text.refusals)
    place = work_table_place(warehouse.temporary_work_tables(eng))
    gate = sa.Table(f"_load_gate_{tag}", sa.MetaData(), *gate_columns(rules, filed, refused), **place)
    failed = sa.Table(
        f"_load_fail_{tag}",
        sa.MetaData(),
        sa.Column(ROW, sa.BigInteger),
        sa.Column("check_number", sa.Integer),
        **place,
    )
    started = time.perf_counter()
    with eng.begin() as conn:
        for table in (gate, failed):
            table.create(conn)
            work.append(table)
        if source_columns is not None:
            select = gate_select(
                text.table,
                rules,
                tables,
                conn.dialect.name,
                interval=interval,
                incremental=incremental,
                filed=filed,
                refused=refused,
            )
            conn.execute(gate.insert().from_select([c.name for c in select.selected_columns], select))
        rows_read = conn.execute(sa.select(sa.func.count()).select_from(gate)).scalar_one()
    if source_columns is not None:
        mark_duplicates(eng, gate, rules, filed, rows_read)
    typed_at = time.perf_counter()
    checks = build_checks(entity, rules, not_after, plausible, column if filed else None, text.refusals)
    counts: Counter = Counter()
    if rows_read:
        with eng.begin() as conn:
            counts, _ = run_checks(conn, entity, gate, failed, checks, docs_dir=docs_dir, run_name=run_name)
    with eng.connect() as conn:
        bad_rows = conn.execute(sa.select(sa.func.count(sa.distinct(failed.c[ROW])))).scalar_one()
    phases = {"type": typed_at - started, "validate": time.perf_counter() - typed_at}
    return GateTables(gate, failed, rows_read, bad_rows, counts, checks=checks, phase_seconds=phases)
