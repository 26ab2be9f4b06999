"""The ``salesforce`` source: entities read from Salesforce with SOQL.

Incremental on ``SystemModstamp`` (every Salesforce object has it; map it to the entity's
incremental column, e.g. ``updated_at: SystemModstamp``), the interval's exact bounds.
A full refresh reads everything. Field names are mapped in ``include/rules/sources.yaml``;
the connection and its token come from the Airflow connection, never from YAML. Values
are returned as text, like every source, so the gate sees what Salesforce held.

Queries go through ``postsales.salesforce_api.SalesforceClient`` (the Airflow Salesforce
provider's hook, simple-salesforce underneath), the client the CRM write-back adapter builds on
too; reading does not import the CRM package.
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from postsales.config import SalesforceSource as SalesforceSourceConfig
from postsales.errors import DataContractError, PermanentError, SourceUnavailableError, TransientError
from postsales.sources import (
    Interval,
    SourceRead,
    entity_mapping,
    lineage_error,
    source_read,
    text_table,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import sqlalchemy as sa

    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SalesforceSource:
    name = "salesforce"

    def __init__(self, config: SalesforceSourceConfig, client: Any = None):
        self.config = config
        self._given_client = client  # anything with query(soql); else one from the Airflow connection

    def _client(self):
        if self._given_client is not None:
            return self._given_client
        from postsales.salesforce_api import SalesforceClient, warn_if_api_version

        warn_if_api_version("include/rules/sources.yaml", self.config.api_version, self.config.conn_id)
        try:
            return SalesforceClient.from_connection(self.config.conn_id)
        except PermanentError as exc:  # a connection missing a field, a refused login: not a retry's worth
            raise PermanentError(exc.code, f"salesforce source: {exc.message}") from None

    def read(self, entity: str, incremental_column: str, interval: Interval) -> SourceRead:
        mapping, soql = self._query(entity, incremental_column, interval)
        records = list(self._records(entity, mapping, soql))
        ours = {source: column for column, source in mapping.columns.items()}
        rows = [{ours.get(k, k): _text(v) for k, v in record.items() if k in ours} for record in records]
        frame = pd.DataFrame(rows, columns=list(mapping.columns), dtype="object")
        return source_read(frame, entity, f"salesforce:{mapping.object}", _lineage_fix(entity))

    def load_text(
        self, eng: sa.Engine, entity: str, incremental_column: str, interval: Interval, table_name: str
    ) -> TextTable:
        """The rows :meth:`read` returns, landed as text in ``raw.<table_name>``, in chunks as the
        query's pages arrive."""
        mapping, soql = self._query(entity, incremental_column, interval)
        origin = f"salesforce:{mapping.object}"
        where = f"{entity} ({origin})"
        columns = list(mapping.columns)
        problem = lineage_error(columns, where, _lineage_fix(entity))
        if problem:
            raise problem
        names = text_table.unlandable_names(columns, eng.dialect.name)
        if names:
            raise text_table.unlandable_error(where, names, _lineage_fix(entity))
        ours = {source: column for column, source in mapping.columns.items()}
        records = self._records(entity, mapping, soql)

        def chunks():
            while chunk := list(itertools.islice(records, text_table.CHUNK_ROWS)):
                rows = [{ours.get(k, k): v for k, v in record.items() if k in ours} for record in chunk]
                yield [tuple(row.get(column) for column in columns) for row in rows]

        landed = text_table.land_rows(eng, table_name, columns, chunks(), _text, origin, where)
        text_table.log_landed(entity, landed.rows, origin, landed.table)
        return landed

    def _query(self, entity: str, incremental_column: str, interval: Interval):
        """The entity's mapping and its SOQL for the interval."""
        mapping = entity_mapping(self.config.objects, entity, "salesforce.objects", "its object and field names")
        fields = list(dict.fromkeys(mapping.columns.values()))
        soql = f"SELECT {', '.join(fields)} FROM {mapping.object}"
        modstamp = mapping.columns.get(incremental_column)
        if not interval.full_refresh and modstamp:
            soql += f" WHERE {modstamp} >= {_literal(interval.start)} AND {modstamp} < {_literal(interval.end)}"
        return mapping, soql

    def _records(self, entity: str, mapping, soql: str) -> Iterator[dict]:
        """The query's records as its pages arrive; a failure named as a retry's worth or not."""
        from postsales.salesforce_api import DailyLimitReached

        try:  # a connection missing a field or a refused login stays a PermanentError, naming the connection
            client = self._client()
        except TransientError as exc:
            raise SourceUnavailableError(f"{entity}: salesforce did not answer the login: {exc}") from None
        try:
            yield from client.query(soql)
        except TransientError as exc:
            raise SourceUnavailableError(f"{entity}: salesforce did not answer: {exc}") from None
        except DailyLimitReached as exc:  # not a task retry's worth: hours until it frees up
            raise PermanentError(exc.code, f"{entity}: salesforce source: {exc.message}") from None
        except PermanentError as exc:
            raise DataContractError(
                f"{entity}: salesforce rejected the query on {mapping.object}: {exc}. "
                f"Fix: check salesforce.objects.{entity}.columns in include/rules/sources.yaml."
            ) from None


def _lineage_fix(entity: str) -> str:
    return f"rename the key in salesforce.objects.{entity}.columns in include/rules/sources.yaml."


def _literal(moment: datetime) -> str:
    """A SOQL datetime literal (UTC, no quotes)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
