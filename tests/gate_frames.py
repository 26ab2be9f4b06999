"""The warehouse gate on a small frame of text, for tests that state a case as a table.

``run_gate`` lands the frame in a DuckDB work table (``text_table.land_rows``, as a table source
lands its rows), runs ``sql_gate.gate_batch`` on it exactly as the extract does, and reads back
the rows that would be staged and quarantined.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from postsales import warehouse
from postsales.config import EntityRules, Thresholds, load_expectations
from postsales.sources import REFUSAL, Interval, Refusal
from postsales.sources.text_table import land_rows
from postsales.validate import sql_gate
from postsales.values import is_missing

EVERYTHING = Interval(datetime(1900, 1, 1), datetime(2100, 1, 1), full_refresh=True)


@dataclass
class Gated:
    rows_read: int
    valid: pd.DataFrame
    quarantine: pd.DataFrame

    @property
    def rows_valid(self) -> int:
        return len(self.valid)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)


def run_gate(
    entity: str,
    frame: pd.DataFrame,
    rules: EntityRules,
    thresholds: Thresholds,
    *,
    not_after: datetime,
    known: dict[str, set[str]] | None = None,
    origin: str = "test:frame",
    refusals: dict[str, Refusal] | None = None,
) -> Gated:
    """Gate ``frame`` (text or None per cell) as the extract gates a batch; ``known`` seeds the
    keys a ``references`` rule finds (``{"accounts.account_id": {"A1"}}``); with ``refusals``, the
    frame's ``_refusal`` column holds each row's refusal code, as a source that refuses rows lands it."""
    folder = Path(tempfile.mkdtemp(prefix="gate-frames-"))
    url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    eng = warehouse.engine(url)
    try:
        tables = warehouse.ensure_schema(eng, warehouse.build_tables(load_expectations()))
        _seed_known(eng, tables, known or {})
        tag = uuid.uuid4().hex[:8]
        columns = [str(c) for c in frame.columns if c not in ("_source", "_file_day", REFUSAL)]
        landed = [*columns, REFUSAL] if refusals else columns
        rows = [tuple(row) for row in frame[landed].itertuples(index=False, name=None)]
        text = land_rows(eng, f"_load_text_{tag}", columns, [rows], _text, origin, origin, refusals)
        source_columns = sql_gate.source_columns(entity, text, rules)
        work: list[sa.Table] = []
        gated = sql_gate.gate_batch(
            eng,
            text,
            source_columns,
            entity,
            rules,
            tables,
            tag=tag,
            interval=EVERYTHING,
            not_after=not_after,
            incremental=("", "timestamp"),
            filed=False,
            plausible=None,
            docs_dir=None,
            run_name="test",
            work=work,
        )
        error = sql_gate.failed_fraction_error(entity, origin, gated, thresholds)
        if error is not None:
            raise error
        dialect = eng.dialect.name
        with eng.connect() as conn:
            valid = pd.DataFrame(
                conn.execute(
                    sql_gate.valid_select(
                        text.table, gated.gate, gated.failed, rules, source_columns, dialect
                    ).order_by(gated.gate.c[sql_gate.ROW])
                )
                .mappings()
                .all()
            )
            quarantine = pd.DataFrame(
                conn.execute(
                    sql_gate.quarantine_select(
                        text.table, gated.failed, gated.checks, rules, source_columns, dialect
                    ).order_by(text.table.c[sql_gate.ROW])
                )
                .mappings()
                .all(),
                columns=["record_key", "failed_expectations", "offending_values", "raw_row", "source"],
            )
        return Gated(gated.rows_read, valid, quarantine)
    finally:
        warehouse.dispose_all()


def _text(value: object) -> str | None:
    return None if is_missing(value) else str(value)


def _seed_known(eng: sa.Engine, tables: warehouse.Tables, known: dict[str, set[str]]) -> None:
    with eng.begin() as conn:
        for reference, keys in known.items():
            entity, _, column = reference.partition(".")
            staged = tables.staging[entity]
            rows = [
                {column: key, "_run_id": "seed", "_source": "seed", "_loaded_at": datetime(2000, 1, 1)} for key in keys
            ]
            if rows:
                conn.execute(staged.insert(), rows)
