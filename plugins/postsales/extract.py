"""Extract one entity for one data interval: read, validate, load.

The source rows of the interval go to ``raw.<entity>`` as read, the valid ones to
``staging.<entity>`` typed, the invalid ones to ``ops.quarantine`` with reasons,
and the counts to ``ops.extract_runs``. All four change in one transaction that
first deletes the interval's partition, so a rerun leaves identical tables.

Partitions: in ``staging`` an interval's partition is every row whose incremental
column (``updated_at``, ``usage_date`` ...) falls in the interval, so a full
refresh and later daily runs agree on which rows belong to which day. In ``raw``,
``ops.quarantine`` and ``ops.extract_runs`` it is the run's interval; a full
refresh replaces the whole table for that entity.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from postsales import lineage, warehouse
from postsales.config import (
    ConfigError,
    EntityRules,
    ExpectationsConfig,
    SourcesConfig,
    load_expectations,
    load_sources,
)
from postsales.errors import DataContractError
from postsales.sources import FILE_DAY, Interval, make_source
from postsales.validate import data_docs, sql_gate
from postsales.validate.sql_gate import require_columns

if TYPE_CHECKING:
    from postsales.sources import Source
    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)


@dataclass
class ExtractSummary:
    entity: str
    run_id: str
    source: str
    interval_start: str
    interval_end: str
    full_refresh: bool
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    top_failures: dict[str, int] = field(default_factory=dict)
    # Quarantined rows per list of failed expectations (the JSON stored in ops.quarantine), so a
    # run summary can say how many reasons and rows its top reasons leave out.
    quarantine_groups: dict[str, int] = field(default_factory=dict)
    data_docs: str | None = None
    # Wall time of the whole extract (landing, gate, load) and rows read per second of it.
    seconds: float = 0.0
    rows_per_second: float = 0.0
    # Where the seconds went: land (source rows as text), type (the gate table), validate (GX),
    # data_docs, load (raw, staging, quarantine in one transaction).
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def log_line(self) -> str:
        reasons = "; ".join(f"{label}: {n}" for label, n in self.top_failures.items()) or "none"
        return (
            f"{self.entity}: read {self.rows_read}, loaded {self.rows_loaded}, "
            f"quarantined {self.rows_quarantined} (top reasons: {reasons}); "
            f"interval {self.interval_start} .. {self.interval_end}"
            f"{' (full refresh)' if self.full_refresh else ''}; "
            f"{self.seconds:.2f} s, {self.rows_per_second:,.0f} rows/s "
            f"({', '.join(f'{name} {s:.2f} s' for name, s in self.phase_seconds.items())}); "
            f"data docs: {self.data_docs or 'none'}"
        )


def incremental_column(entity: str, sources: SourcesConfig, expectations: ExpectationsConfig) -> tuple[str, str]:
    """The entity's incremental column and its type; it must be declared and required."""
    column = sources.entities[entity].incremental_column
    rule = expectations.entities[entity].columns.get(column)
    if rule is None or rule.type not in ("date", "timestamp") or not rule.not_null:
        raise ConfigError(
            f"include/rules/sources.yaml: field 'entities.{entity}.incremental_column': {column!r} must be a "
            "date or timestamp column declared with not_null: true in include/rules/expectations.yaml"
        )
    return column, rule.type


def extract_entity(
    entity: str,
    *,
    interval: Interval,
    run_id: str,
    allow_empty: bool = False,
    sources: SourcesConfig | None = None,
    expectations: ExpectationsConfig | None = None,
    warehouse_url: str | None = None,
    build_data_docs: bool = True,
) -> ExtractSummary:
    sources = sources or load_sources()
    # The segmentation rules add no requirement: an empty field they read is a data gap the
    # segments report (docs/metrics.md, "Missing rule inputs"), not a reason to quarantine the row.
    expectations = expectations or load_expectations()
    started = time.perf_counter()
    with warehouse.one_connection(warehouse_url) as eng:
        summary = _extract(entity, eng, interval, run_id, allow_empty, sources, expectations, build_data_docs)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.rows_per_second = round(summary.rows_read / summary.seconds, 1) if summary.seconds else 0.0
    log.info(summary.log_line())
    return summary


def _extract(
    entity: str,
    eng: sa.Engine,
    interval: Interval,
    run_id: str,
    allow_empty: bool,
    sources: SourcesConfig,
    expectations: ExpectationsConfig,
    build_data_docs: bool,
) -> ExtractSummary:
    """Land, validate (type and GX) and load the interval; the work tables are dropped however it ends."""
    incremental = incremental_column(entity, sources, expectations)
    source = make_source(sources.entities[entity].source, sources)
    tables = warehouse.ensure_schema(eng, warehouse.build_tables(expectations))
    _drop_abandoned_work_tables(eng)
    run = _Run.start(entity, run_id, interval, incremental, expectations, tables)
    claim = _WorkTag(eng)
    work: list[sa.Table] = []
    phases: dict[str, float] = {}
    try:
        text, source_columns = _land(eng, run, source, claim.tag, work, phases)
        gated = _validate(eng, run, source, text, source_columns, claim.tag, work, phases, build_data_docs)
        with _timed(phases, "load"):
            summary = _load(eng, run, source, text, source_columns, gated, allow_empty)
        summary.phase_seconds = {name: round(seconds, 3) for name, seconds in phases.items()}
    finally:
        for table in work:
            table.drop(eng, checkfirst=True)
        claim.release()
    return summary


@dataclass(frozen=True, eq=False)
class _Run:
    """One extract: what it writes beside its rows, and the partition of each table it replaces
    (the module's docstring; None: the whole table)."""

    entity: str
    run_id: str
    interval: Interval
    incremental: tuple[str, str]  # the incremental column and its type
    expectations: ExpectationsConfig
    tables: warehouse.Tables
    loaded_at: datetime
    staging_where: sa.ColumnElement[bool] | None
    raw_where: sa.ColumnElement[bool] | None
    quarantine_where: sa.ColumnElement[bool] | None
    runs_where: sa.ColumnElement[bool]

    @classmethod
    def start(
        cls,
        entity: str,
        run_id: str,
        interval: Interval,
        incremental: tuple[str, str],
        expectations: ExpectationsConfig,
        tables: warehouse.Tables,
    ) -> _Run:
        loaded_at = datetime.now(UTC).replace(tzinfo=None)
        staging, raw, quarantine, runs = (
            tables.staging[entity],
            tables.raw[entity],
            tables.quarantine,
            tables.extract_runs,
        )
        if interval.full_refresh:
            staging_where = raw_where = None
            quarantine_where = quarantine.c.source_table == entity
        else:
            bound = staging.c[incremental[0]]
            staging_where = sa.and_(bound >= interval.start, bound < interval.end)
            raw_where = _run_partition(raw, interval)
            quarantine_where = sa.and_(quarantine.c.source_table == entity, _run_partition(quarantine, interval))
        runs_where = sa.and_(runs.c.source_table == entity, _run_partition(runs, interval))
        return cls(entity, run_id, interval, incremental, expectations, tables, loaded_at,
                   staging_where, raw_where, quarantine_where, runs_where)  # fmt: skip

    @property
    def rules(self) -> EntityRules:
        return self.expectations.entities[self.entity]

    @property
    def staging(self) -> sa.Table:
        return self.tables.staging[self.entity]

    @property
    def raw(self) -> sa.Table:
        return self.tables.raw[self.entity]

    @property
    def partition(self) -> dict[str, Any]:
        """The run's interval, as stored on each row of raw, ops.quarantine and ops.extract_runs."""
        interval = self.interval
        return {"interval_start": interval.start, "interval_end": interval.end, "full_refresh": interval.full_refresh}


@contextlib.contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Seconds spent in the block, as ``phases[name]`` (left out when the block raises)."""
    started = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - started


def _land(
    eng: sa.Engine, run: _Run, source: Source, tag: str, work: list[sa.Table], phases: dict[str, float]
) -> tuple[TextTable, list[str] | None]:
    """The interval's source rows as text in a work table, and their source columns (None: an
    empty batch with no columns). A declared column missing from the batch or any file fails it."""
    with _timed(phases, "land"):
        text = source.load_text(eng, run.entity, run.incremental[0], run.interval, f"_load_text_{tag}")
        work.append(text.table)
    lineage.read_source(source, run.entity, list(text.file_columns))
    warehouse.fit_extract_memory(eng, text.rows)  # for the typing and validation that follow
    for path, columns in text.file_columns.items():
        require_columns(run.entity, path, columns, run.rules)
    return text, sql_gate.source_columns(run.entity, text, run.rules)


def _validate(
    eng: sa.Engine,
    run: _Run,
    source: Source,
    text: TextTable,
    source_columns: list[str] | None,
    tag: str,
    work: list[sa.Table],
    phases: dict[str, float],
    build_data_docs: bool,
) -> sql_gate.GateTables:
    """Type the batch and run the GX gate on it, then publish its Data Docs; raises when too
    many rows failed (nothing is loaded then)."""
    entity, expectations = run.entity, run.expectations
    filed = FILE_DAY in text.table.c and source.name == "files"
    docs_dir = data_docs.site_dir(run.run_id, entity) if build_data_docs else None  # one site per run and entity
    gated = sql_gate.gate_batch(
        eng,
        text,
        source_columns,
        entity,
        run.rules,
        run.tables,
        tag=tag,
        interval=run.interval,
        not_after=run.interval.horizon,
        incremental=run.incremental,
        filed=filed,
        plausible=expectations.plausible_dates,
        docs_dir=docs_dir,
        run_name=run.run_id,
        work=work,
    )
    phases |= gated.phase_seconds
    if docs_dir is not None and gated.rows_read:
        with _timed(phases, "data_docs"):
            gated.data_docs = str(data_docs.publish(docs_dir, entity, expectations.data_docs.keep_runs))
            log.info("Great Expectations Data Docs for %s: %s", entity, gated.data_docs)
    error = sql_gate.failed_fraction_error(entity, text.origin, gated, expectations.thresholds_for(entity))
    if error is not None:
        raise error
    return gated


def _load(
    eng: sa.Engine,
    run: _Run,
    source: Source,
    text: TextTable,
    source_columns: list[str] | None,
    gated: sql_gate.GateTables,
    allow_empty: bool,
) -> ExtractSummary:
    """One transaction: the run's partitions of raw, staging and ops.quarantine replaced by the
    batch, the counts checked, the run recorded in ops.extract_runs."""
    with eng.begin() as conn:
        if not allow_empty:
            _refuse_to_wipe(conn, run, text.origin, gated.rows_read)
        for table, where in ((run.raw, run.raw_where), (run.staging, run.staging_where),
                             (run.tables.quarantine, run.quarantine_where)):  # fmt: skip
            warehouse.delete_partition(conn, table, where)
        if source_columns is not None:
            _insert_batch(conn, run, text, gated, source_columns)
        summary = _checked_summary(conn, run, source, text, gated)
        _record_run(conn, run, summary)
    return summary


def _refuse_to_wipe(conn: sa.Connection, run: _Run, origin: str, rows_read: int) -> None:
    """An empty read over a loaded partition is a broken export more often than an empty source."""
    existing = _rows_in(conn, run.staging, run.staging_where)
    if rows_read == 0 and existing:
        interval = run.interval
        raise DataContractError(
            f"{run.entity} ({origin}): the source returned 0 rows for "
            f"{'a full refresh' if interval.full_refresh else f'{interval.start} .. {interval.end}'} "
            f"but the warehouse holds {existing} rows there; refusing to wipe them. Fix: check the "
            "export; if the source really is empty for this interval, rerun with allow_empty=true."
        )


def _insert_batch(
    conn: sa.Connection, run: _Run, text: TextTable, gated: sql_gate.GateTables, source_columns: list[str]
) -> None:
    """The rows read into raw, the valid ones typed into staging, the failing ones into ops.quarantine."""
    rules, dialect, gate, failed = run.rules, conn.dialect.name, gated.gate, gated.failed
    load_columns = [
        sa.literal(run.run_id, sa.Text).label("_run_id"),
        sa.literal(run.loaded_at, sa.DateTime).label("_loaded_at"),
    ]
    partition_columns = [sa.literal(value).label(name) for name, value in run.partition.items()]
    every_row = run.interval.full_refresh  # the gate of a full refresh holds every landed row
    _insert(conn, run.raw, sql_gate.raw_select(text.table, gate, rules, source_columns, dialect, every_row=every_row),
            [*partition_columns, *load_columns])  # fmt: skip
    _insert(conn, run.staging, sql_gate.valid_select(text.table, gate, failed, rules, source_columns, dialect),
            load_columns)  # fmt: skip
    _insert(
        conn,
        run.tables.quarantine,
        sql_gate.quarantine_select(text.table, failed, gated.checks, rules, source_columns, dialect),
        [
            sa.literal(run.entity, sa.Text).label("source_table"),
            sa.literal(run.run_id, sa.Text).label("run_id"),
            sa.literal(run.loaded_at, sa.DateTime).label("quarantined_at"),
            *partition_columns,
        ],
    )


def _checked_summary(
    conn: sa.Connection, run: _Run, source: Source, text: TextTable, gated: sql_gate.GateTables
) -> ExtractSummary:
    """The run's counts, once the tables agree with them: rows read = rows loaded + rows quarantined."""
    quarantine = run.tables.quarantine
    groups = dict(
        conn.execute(
            sa.select(quarantine.c.failed_expectations, sa.func.count())
            .where(run.quarantine_where if run.quarantine_where is not None else sa.true())
            .where(quarantine.c.run_id == run.run_id)
            .group_by(quarantine.c.failed_expectations)
            .order_by(quarantine.c.failed_expectations)
        ).all()
    )
    rows_read, bad_rows = gated.rows_read, gated.rows_quarantined
    summary = ExtractSummary(
        entity=run.entity,
        run_id=run.run_id,
        source=f"{source.name}:{text.origin}",
        interval_start=run.interval.start.isoformat(),
        interval_end=run.interval.end.isoformat(),
        full_refresh=run.interval.full_refresh,
        rows_read=rows_read,
        rows_loaded=rows_read - bad_rows,
        rows_quarantined=bad_rows,
        top_failures=dict((+gated.failures_by_expectation).most_common(5)),
        quarantine_groups=groups,
        data_docs=gated.data_docs,
    )
    staged = _rows_in(conn, run.staging, run.staging_where) if run.staging_where is not None else None
    quarantined = sum(groups.values())
    if quarantined != bad_rows or (staged is not None and staged != summary.rows_loaded):
        raise AssertionError(f"{run.entity}: rows read != rows loaded + rows quarantined ({summary})")
    return summary


def _record_run(conn: sa.Connection, run: _Run, summary: ExtractSummary) -> None:
    """The run's row of ops.extract_runs, replacing any earlier run of the same interval."""
    runs = run.tables.extract_runs
    runs_row = {
        "source_table": run.entity,
        "run_id": run.run_id,
        "source": summary.source,
        **run.partition,
        "rows_read": summary.rows_read,
        "rows_loaded": summary.rows_loaded,
        "rows_quarantined": summary.rows_quarantined,
        "data_docs": summary.data_docs,
        "finished_at": run.loaded_at,
    }
    warehouse.delete_partition(conn, runs, run.runs_where)
    conn.execute(runs.insert(), [runs_row])


def _rows_in(conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool] | None) -> int:
    statement = sa.select(sa.func.count()).select_from(table)
    return conn.execute(statement if where is None else statement.where(where)).scalar_one()


def _insert(conn: sa.Connection, table: sa.Table, select: sa.Select, constants: list[sa.ColumnElement]) -> None:
    """INSERT INTO ``table`` SELECT: the select's columns plus ``constants`` (labelled literals)."""
    statement = select.add_columns(*constants)
    conn.execute(table.insert().from_select([c.name for c in statement.selected_columns], statement))


# Work tables are named _load_<table>_<tag>. A load holds its tag until it has dropped them: in this
# process's set and, on PostgreSQL, as a session advisory lock (released when the session ends, so a
# load killed with kill -9 holds nothing). The next extract drops the work tables nobody holds.
WORK_TABLE = re.compile(r"^_load_[a-z0-9_]+_([0-9a-f]{8})$")
WORK_LOCK_SPACE = 0x7073  # the first key of the two-key advisory locks that hold work tags ("ps")
_held_tags: set[str] = set()
_held_lock = threading.Lock()


def _work_lock_key(tag: str) -> int:
    return int(tag, 16) - 2**31  # an int4, the second key


class _WorkTag:
    """A fresh tag for a load's work tables, held until ``release``."""

    def __init__(self, eng: sa.Engine):
        self.tag = uuid.uuid4().hex[:8]
        with _held_lock:
            _held_tags.add(self.tag)
        self._session = None
        if eng.dialect.name == "postgresql":
            self._session = eng.connect()
            lock = sa.text("select pg_advisory_lock(:space, :key)")
            self._session.execute(lock, {"space": WORK_LOCK_SPACE, "key": _work_lock_key(self.tag)})
            self._session.commit()  # the lock is the session's: no transaction left open

    def release(self) -> None:
        if self._session is not None:
            unlock = sa.text("select pg_advisory_unlock(:space, :key)")
            self._session.execute(unlock, {"space": WORK_LOCK_SPACE, "key": _work_lock_key(self.tag)})
            self._session.commit()
            self._session.close()
        with _held_lock:
            _held_tags.discard(self.tag)


def _drop_abandoned_work_tables(eng: sa.Engine) -> list[str]:
    """Drop the work tables of loads that ended without dropping them (a crash); returns them."""
    listed = sa.text(
        "select table_schema, table_name from information_schema.tables where table_schema in :schemas"
    ).bindparams(sa.bindparam("schemas", expanding=True))
    with eng.connect() as conn:
        found = conn.execute(listed, {"schemas": ["raw", "staging", "ops"]}).all()
    dropped = []
    for schema, name in found:
        match = WORK_TABLE.match(name)
        if match is None or match.group(1) in _held_tags:
            continue
        with eng.begin() as conn:
            if conn.dialect.name == "postgresql":
                held = sa.text("select not pg_try_advisory_xact_lock(:space, :key)")
                if conn.execute(held, {"space": WORK_LOCK_SPACE, "key": _work_lock_key(match.group(1))}).scalar():
                    continue  # a load running in another process
            conn.execute(sa.text(f'drop table if exists {schema}."{name}"'))  # a name WORK_TABLE matched
        dropped.append(f"{schema}.{name}")
    if dropped:
        log.warning("dropped work tables a crashed load left behind: %s", ", ".join(dropped))
    return dropped


def _run_partition(table: sa.Table, interval: Interval) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.full_refresh.is_(interval.full_refresh),
        table.c.interval_start == interval.start,
        table.c.interval_end == interval.end,
    )
