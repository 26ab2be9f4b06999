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

import itertools
import json
import logging
import re
import threading
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from postsales import warehouse
from postsales.config import (
    ConfigError,
    EntityRules,
    ExpectationsConfig,
    SourcesConfig,
    load_expectations,
    load_sources,
)
from postsales.errors import DataContractError
from postsales.sources import FILE_DAY, SOURCE, Interval, make_source
from postsales.validate import data_docs
from postsales.validate.coerce import coerce
from postsales.validate.gate import misfiled, require_columns, run_gate

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

    def as_dict(self) -> dict:
        return asdict(self)

    def log_line(self) -> str:
        reasons = "; ".join(f"{label}: {n}" for label, n in self.top_failures.items()) or "none"
        return (
            f"{self.entity}: read {self.rows_read}, loaded {self.rows_loaded}, "
            f"quarantined {self.rows_quarantined} (top reasons: {reasons}); "
            f"interval {self.interval_start} .. {self.interval_end}"
            f"{' (full refresh)' if self.full_refresh else ''}; data docs: {self.data_docs or 'none'}"
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


def in_interval(frame: pd.DataFrame, column: str, column_type: str, interval: Interval) -> pd.DataFrame:
    """Rows whose incremental value falls in the interval, plus rows the gate must see.

    A missing, unparseable or future value (after ``interval.horizon``) cannot be placed
    in any interval; such rows are kept so the gate quarantines them rather than letting
    them vanish. So is a row of a file named for a day (``FILE_DAY``) whose value is on
    another day: the run of its own day never opens this file, so this run counts it and
    the gate quarantines it, as a full refresh does. Other rows outside the interval are
    read by the run of their interval (a snapshot such as ``accounts.csv`` is read by every run).
    """
    if interval.full_refresh or frame.empty:
        return frame
    if column not in frame.columns:
        return frame  # the gate reports the missing column
    values = coerce(frame[column], column_type)
    keep = values.isna() | ((values >= interval.start) & (values < interval.end)) | (values > interval.horizon)
    if FILE_DAY in frame.columns:
        keep |= misfiled(values, frame[FILE_DAY])
    return frame.loc[keep.to_numpy()]


def _known_values(conn: sa.Connection, rules: EntityRules, tables: warehouse.Tables) -> dict[str, set[str]]:
    """Keys that exist in each referenced entity: every key ever read, valid or quarantined.

    A contract for an account whose CRM row is quarantined (say, a missing industry) still
    belongs to a real account, so it is not quarantined with it.
    """
    known: dict[str, set[str]] = {}
    for rule in rules.columns.values():
        if rule.references and rule.references not in known:
            entity, _, column = rule.references.partition(".")
            raw_keys = sa.select(tables.raw[entity].c.record_key).where(tables.raw[entity].c.record_key != "")
            staged_keys = sa.select(tables.staging[entity].c[column])
            known[rule.references] = {
                row[0] for row in conn.execute(sa.union(raw_keys, staged_keys)) if row[0] is not None
            }
    return known


def _typed_for_load(valid: pd.DataFrame, rules: EntityRules) -> pd.DataFrame:
    frame = valid.copy()
    for name, rule in rules.columns.items():
        if rule.type == "integer":
            frame[name] = frame[name].astype("Int64")
        elif rule.type == "date":
            frame[name] = frame[name].dt.date.astype("object").where(frame[name].notna(), None)
    return frame


# A full refresh of a folder of files (a year of daily usage) is validated and loaded in
# groups of whole files of about this many rows, so memory stays bounded by the group
# (at 10k accounts, a year of usage: 2.1 GiB peak with groups of 500k rows, 1.3 GiB with 200k).
BATCH_ROWS = 200_000


def read_batches(source, entity: str, column: str, interval: Interval, max_rows: int):
    """The source's rows for the interval, in groups when the source can (files), else in one read."""
    if hasattr(source, "read_batches"):
        yield from source.read_batches(entity, column, interval, max_rows)
    else:
        yield source.read(entity, column, interval)


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
    batch_rows: int = BATCH_ROWS,
) -> ExtractSummary:
    sources = sources or load_sources()
    # The segmentation rules add no requirement: an empty field they read is a data gap the
    # segments report (docs/metrics.md, "Missing rule inputs"), not a reason to quarantine the row.
    expectations = expectations or load_expectations()
    rules = expectations.entities[entity]
    column, column_type = incremental_column(entity, sources, expectations)
    source = make_source(sources.entities[entity].source, sources)

    eng = warehouse.engine(warehouse_url)
    tables = warehouse.ensure_schema(eng, warehouse.build_tables(expectations))
    _drop_abandoned_work_tables(eng)
    with eng.connect() as conn:
        known = _known_values(conn, rules, tables)

    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    load_columns = {"_run_id": run_id, "_loaded_at": loaded_at}
    partition = {"interval_start": interval.start, "interval_end": interval.end, "full_refresh": interval.full_refresh}

    staging = tables.staging[entity]
    raw = tables.raw[entity]
    quarantine = tables.quarantine
    runs = tables.extract_runs

    if interval.full_refresh:
        staging_where = None
        raw_where = None
        quarantine_where = quarantine.c.source_table == entity
    else:
        bound = staging.c[column]
        staging_where = sa.and_(bound >= interval.start, bound < interval.end)
        raw_where = _run_partition(raw, interval)
        quarantine_where = sa.and_(quarantine.c.source_table == entity, _run_partition(quarantine, interval))
    runs_where = sa.and_(runs.c.source_table == entity, _run_partition(runs, interval))

    counts = Counter()
    failures: Counter = Counter()
    failure_groups: Counter = Counter()
    found: dict[str, str | None] = {"origin": source.name, "data_docs": None}

    def prepare(number: int, read) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Gate one group of rows; its raw, valid and quarantined frames, ready to insert."""
        found["origin"] = read.origin
        for path, columns in read.file_columns.items():
            require_columns(entity, path, columns, rules)
        frame = in_interval(read.frame, column, column_type, interval)
        if SOURCE not in frame.columns:
            frame = frame.assign(**{SOURCE: read.origin})
        file_days = frame.pop(FILE_DAY) if FILE_DAY in frame.columns else None
        # One Data Docs site per group of files.
        docs_dir = data_docs.site_dir(run_id, entity, number) if build_data_docs else None
        gate = run_gate(
            entity,
            frame,
            rules,
            expectations.thresholds_for(entity),
            not_after=interval.horizon,
            known=known,
            origin=read.origin,
            plausible_dates=expectations.plausible_dates,
            file_days=None if file_days is None else (column, file_days),
            docs_dir=docs_dir,
            run_name=run_id,
            keep_docs_runs=expectations.data_docs.keep_runs,
        )
        found["data_docs"] = found["data_docs"] or gate.data_docs
        counts.update(read=gate.rows_read, loaded=gate.rows_valid, quarantined=gate.rows_quarantined)
        failures.update(gate.failures_by_expectation)
        failure_groups.update(gate.quarantine["failed_expectations"])
        raw_frame = pd.DataFrame(
            {
                "record_key": _record_keys(frame, rules.key),
                "payload": _payloads(frame.drop(columns=SOURCE)),
                "_source": frame[SOURCE].to_numpy(),
            }
        ).assign(**partition, **load_columns)
        valid = _typed_for_load(gate.valid, rules).assign(**load_columns)
        quarantine_frame = gate.quarantine.rename(columns={"_source": "source"}).assign(
            source_table=entity, run_id=run_id, quarantined_at=loaded_at, **partition
        )
        return raw_frame, valid, quarantine_frame

    def existing_rows(conn: sa.Connection) -> int:
        """Counted before the partition is replaced: an empty source must not wipe it."""
        if allow_empty:
            return 0
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(staging)
            .where(staging_where if staging_where is not None else sa.true())
        ).scalar_one()

    def finish(conn: sa.Connection, existing: int) -> ExtractSummary:
        origin = found["origin"]
        if counts["read"] == 0 and existing:
            raise DataContractError(
                f"{entity} ({origin}): the source returned 0 rows for "
                f"{'a full refresh' if interval.full_refresh else f'{interval.start} .. {interval.end}'} "
                f"but the warehouse holds {existing} rows there; refusing to wipe them. Fix: check the "
                "export; if the source really is empty for this interval, rerun with allow_empty=true."
            )
        summary = ExtractSummary(
            entity=entity,
            run_id=run_id,
            source=f"{source.name}:{origin}",
            interval_start=interval.start.isoformat(),
            interval_end=interval.end.isoformat(),
            full_refresh=interval.full_refresh,
            rows_read=counts["read"],
            rows_loaded=counts["loaded"],
            rows_quarantined=counts["quarantined"],
            top_failures=dict((+failures).most_common(5)),
            quarantine_groups=dict(sorted(failure_groups.items())),
            data_docs=found["data_docs"],
        )
        if summary.rows_read != summary.rows_loaded + summary.rows_quarantined:
            raise AssertionError(f"{entity}: rows read != rows loaded + rows quarantined ({summary})")
        runs_frame = pd.DataFrame(
            [
                {
                    "source_table": entity,
                    "run_id": run_id,
                    "source": summary.source,
                    **partition,
                    "rows_read": summary.rows_read,
                    "rows_loaded": summary.rows_loaded,
                    "rows_quarantined": summary.rows_quarantined,
                    "data_docs": summary.data_docs,
                    "finished_at": loaded_at,
                }
            ]
        )
        warehouse.replace_rows(conn, runs, runs_where, runs_frame)
        return summary

    targets = ((raw, raw_where), (staging, staging_where), (quarantine, quarantine_where))
    groups, several = _peek_several(read_batches(source, entity, column, interval, batch_rows))
    if not several:
        with eng.begin() as conn:
            existing = existing_rows(conn)
            for number, read in enumerate(groups, start=1):
                for (table, where), rows in zip(targets, prepare(number, read), strict=True):
                    warehouse.replace_rows(conn, table, where, rows)
            summary = finish(conn, existing)
    else:
        # Several groups: each is committed to work tables as it is gated (a transaction holding
        # every group's rows uncommitted keeps them all in memory on DuckDB), then one transaction
        # replaces the partitions from the work tables, checks keys across groups and records the run.
        claim = _WorkTag(eng)
        work = {table: _work_table(table, claim.tag) for table, _ in targets}
        try:
            for table in work.values():
                table.create(eng)
            for number, read in enumerate(groups, start=1):
                frames = prepare(number, read)
                del read
                with eng.begin() as conn:
                    for (table, _), rows in zip(targets, frames, strict=True):
                        warehouse.insert_frame(conn, work[table], rows)
                del frames
            with eng.begin() as conn:
                existing = existing_rows(conn)
                for table, where in targets:
                    warehouse.delete_partition(conn, table, where)
                    columns = [c.name for c in work[table].c]
                    conn.execute(table.insert().from_select(columns, sa.select(*work[table].c)))
                _check_unique_across_batches(conn, entity, found["origin"], staging, staging_where, rules)
                summary = finish(conn, existing)
        finally:
            for table in work.values():
                table.drop(eng, checkfirst=True)
            claim.release()
    log.info(summary.log_line())
    return summary


def _peek_several(groups):
    """(the same groups, whether there is more than one), reading at most the first two."""
    first = next(groups)
    second = next(groups, None)
    if second is None:
        return iter([first]), False
    return itertools.chain([first, second], groups), True


def _work_table(table: sa.Table, tag: str) -> sa.Table:
    """An empty, constraint-free copy of ``table`` for one load in groups, dropped afterwards."""
    name = f"_load_{table.name}_{tag}"
    return sa.Table(name, sa.MetaData(), *(sa.Column(c.name, c.type) for c in table.c), schema=table.schema)


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


def _payloads(frame: pd.DataFrame) -> list[str]:
    """Each row as JSON, one row at a time (not a list of every row's dict first)."""
    columns = list(frame.columns)
    return [json.dumps(dict(zip(columns, row, strict=True)), default=str) for row in frame.itertuples(False, None)]


def _check_unique_across_batches(
    conn: sa.Connection,
    entity: str,
    origin: str,
    staging: sa.Table,
    where: sa.ColumnElement[bool] | None,
    rules: EntityRules,
) -> None:
    """The gate checks uniqueness within a group of files; across groups it is checked here, in SQL.

    A key in two files of a folder (a row filed under the wrong day) fails the load, rolling
    back the transaction, with the keys to fix.
    """
    keys = [list(rules.key)] if rules.unique_key else []
    keys += [[name] for name, rule in rules.columns.items() if rule.unique and [name] not in keys]
    for key in keys:
        columns = [staging.c[name] for name in key]
        duplicates = conn.execute(
            sa.select(*columns, sa.func.count().label("copies"))
            .where(where if where is not None else sa.true())
            .group_by(*columns)
            .having(sa.func.count() > 1)
            .limit(5)
        ).all()
        if duplicates:
            shown = "; ".join(
                ", ".join(f"{name}={value}" for name, value in zip(key, row, strict=False)) + f" ({row[-1]} rows)"
                for row in duplicates
            )
            raise DataContractError(
                f"{entity} ({origin}): ({', '.join(key)}) must be unique but these keys are in more than one "
                f"file: {shown}. Nothing was loaded. Fix: remove the duplicate rows from the source files."
            )


def _run_partition(table: sa.Table, interval: Interval) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.full_refresh.is_(interval.full_refresh),
        table.c.interval_start == interval.start,
        table.c.interval_end == interval.end,
    )


def _record_keys(frame: pd.DataFrame, key: list[str]) -> list[str | None]:
    if frame.empty:
        return []
    if any(k not in frame.columns for k in key):
        return [None] * len(frame)
    parts = frame[key].astype("object").where(frame[key].notna(), "")
    return ["|".join(str(v) for v in row) for row in parts.itertuples(index=False)]
