"""Source adapters: each reads one entity for a data interval as raw strings.

An adapter returns every source column as text (extra columns kept), so the
Great Expectations gate sees exactly what the source held and can quarantine a
value that does not parse instead of losing it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from postsales.errors import DataContractError

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from postsales.config import SourcesConfig
    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Interval:
    """A run's data interval in naive UTC; ``full_refresh`` reads everything."""

    start: datetime
    end: datetime
    full_refresh: bool = False

    @classmethod
    def from_airflow(cls, start: datetime, end: datetime, full_refresh: bool = False) -> Interval:
        return cls(naive_utc(start), naive_utc(end), full_refresh)

    @property
    def horizon(self) -> datetime:
        """Nothing can be dated after this: the later of the interval end and now.

        A backfilled interval ends in the past, yet rows dated between its end and
        now are not "future" — they belong to later intervals.
        """
        return max(self.end, datetime.now(UTC).replace(tzinfo=None))

    def widened(self, days: int = 1) -> tuple[datetime, datetime]:
        """Bounds padded by ``days`` for a coarse pre-filter in the source."""
        return self.start - timedelta(days=days), self.end + timedelta(days=days)


def naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


# The lineage columns an adapter adds to each row, and the only ones: where the row came from,
# and the day (ISO text) its file is named for, or None. Any other column, whatever its name
# (`_notes`, `_fivetran_synced`, `_airbyte_ab_id`), is source data: an extra column.
SOURCE = "_source"
FILE_DAY = "_file_day"
LINEAGE = (SOURCE, FILE_DAY)

# A source that builds a column itself (hubspot's ``account_from_company``) may refuse the rows it
# could not build, saying why: its work table then holds this column, each such row the code of a
# :class:`Refusal` of ``TextTable.refusals`` (null: no objection), and the gate quarantines the row
# with that refusal's reason. No other source lands it.
REFUSAL = "_refusal"


@dataclass(frozen=True)
class Refusal:
    """A reason a source refused rows: the column it could not build, and the reason as the
    quarantine states it (one text for every row refused so, as an expectation's is)."""

    column: str
    reason: str


def with_lineage(frame: pd.DataFrame, where: str, fix: str, **lineage: object) -> pd.DataFrame:
    """``frame`` with the lineage columns added; a source column of a lineage name fails the batch.

    Its values would be overwritten by the lineage, so lost. ``where`` names the file or table
    and ``fix`` says how to rename the column in that source (``{column}``: the first one).
    """
    problem = lineage_error(list(frame.columns), where, fix)
    if problem:
        raise problem
    return frame.assign(**lineage)


def lineage_error(columns: list[str], where: str, fix: str) -> DataContractError | None:
    """The error for source columns named like a lineage column, if any (see :func:`with_lineage`)."""
    taken = [column for column in columns if column in LINEAGE]
    if not taken:
        return None
    return DataContractError(
        f"{where}: column(s) {taken} have a name the pipeline gives its own lineage columns "
        f"({', '.join(LINEAGE)}), which would overwrite their values. Fix: {fix.format(column=taken[0])}"
    )


@dataclass
class SourceRead:
    frame: pd.DataFrame  # all columns as strings (None for missing), plus the LINEAGE columns
    origin: str  # the file(s) or table, for messages
    # Each file's own columns, when the frame joins several files (FileSource).
    file_columns: dict[str, list[str]] = field(default_factory=dict)


def source_read(frame: pd.DataFrame, entity: str, origin: str, fix: str) -> SourceRead:
    """A source's rows of ``entity`` (all text) read from ``origin``, with the lineage columns
    (:func:`with_lineage`, ``fix`` for a clash), logged."""
    frame = with_lineage(frame, f"{entity} ({origin})", fix, **{SOURCE: origin})
    log.info("read %s rows of %s from %s", len(frame), entity, origin)
    return SourceRead(frame=frame, origin=origin)


SOURCES_RULES = "include/rules/sources.yaml"
M = TypeVar("M")


def entity_mapping(mappings: Mapping[str, M], entity: str, section: str, holds: str) -> M:
    """The entity's mapping under ``section`` of sources.yaml (``sql.tables``, ``salesforce.objects``,
    ``hubspot.objects``); none fails naming the section and what to add (``holds``)."""
    mapping = mappings.get(entity)
    if mapping is None:
        kind = section.split(".")[-1].removesuffix("s")
        raise DataContractError(
            f"{entity}: no {kind} mapping under {section} in {SOURCES_RULES}. Fix: add {section}.{entity} with {holds}."
        )
    return mapping


class Source(Protocol):
    name: str

    def read(self, entity: str, incremental_column: str, interval: Interval) -> SourceRead: ...

    def load_text(
        self, eng: sa.Engine, entity: str, incremental_column: str, interval: Interval, table_name: str
    ) -> TextTable:
        """The rows :meth:`read` returns, landed as text in the work table ``raw.<table_name>``
        (see :mod:`postsales.sources.text_table`); the caller drops the table.

        ``table_name`` must match ``extract.WORK_TABLE`` (``_load_text_<8 hex>``), and its tag be
        held (``extract._WorkTag``) while the table is in use: the next extract drops the work
        tables whose tag nobody holds."""
        ...


def make_source(kind: str, config: SourcesConfig) -> Source:
    if kind == "files":
        from postsales.config import source_dir
        from postsales.sources.files import FileSource

        return FileSource(source_dir(config))
    if kind == "sql":
        from postsales.sources.sql import SqlSource

        assert config.sql is not None  # guaranteed by SourcesConfig validation
        return SqlSource(config.sql)
    if kind == "salesforce":
        from postsales.sources.salesforce import SalesforceSource

        assert config.salesforce is not None  # guaranteed by SourcesConfig validation
        return SalesforceSource(config.salesforce)
    if kind == "hubspot":
        from postsales.sources.hubspot import HubSpotSource

        assert config.hubspot is not None  # guaranteed by SourcesConfig validation
        return HubSpotSource(config.hubspot)
    raise ValueError(f"unknown source kind {kind!r}")
