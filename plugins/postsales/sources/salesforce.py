"""The ``salesforce`` source: entities read from Salesforce with SOQL.

Incremental on ``SystemModstamp`` (every Salesforce object has it; map it to the entity's
incremental column, e.g. ``updated_at: SystemModstamp``), the interval's exact bounds.
A full refresh reads everything. Field names are mapped in ``include/rules/sources.yaml``;
the connection and its token come from the Airflow connection, never from YAML. Values
are returned as text, like every source, so the gate sees what Salesforce held.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pandas as pd

from postsales.config import SalesforceSource as SalesforceSourceConfig
from postsales.errors import DataContractError, SourceUnavailableError
from postsales.sources import SOURCE, Interval, SourceRead, with_lineage

log = logging.getLogger(__name__)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SalesforceSource:
    name = "salesforce"

    def __init__(self, config: SalesforceSourceConfig, adapter: Any = None):
        self.config = config
        self._adapter = adapter

    def _client(self, object_name: str):
        if self._adapter is not None:
            return self._adapter
        from postsales.crm.base import PermanentError
        from postsales.crm.config import SalesforceCrm
        from postsales.crm.salesforce import SalesforceAdapter

        crm = SalesforceCrm(conn_id=self.config.conn_id, api_version=self.config.api_version, object=object_name)
        try:
            return SalesforceAdapter.from_connection(crm, "Id")
        except PermanentError as exc:  # no credentials, refused client credentials: not a retry's worth
            raise PermanentError(exc.code, f"salesforce source: {exc.message}") from None

    def read(self, entity: str, incremental_column: str, interval: Interval) -> SourceRead:
        mapping = self.config.objects.get(entity)
        if mapping is None:
            raise DataContractError(
                f"{entity}: no object mapping under salesforce.objects in include/rules/sources.yaml. "
                f"Fix: add salesforce.objects.{entity} with its object and field names."
            )
        fields = list(dict.fromkeys(mapping.columns.values()))
        soql = f"SELECT {', '.join(fields)} FROM {mapping.object}"
        modstamp = mapping.columns.get(incremental_column)
        if not interval.full_refresh and modstamp:
            soql += f" WHERE {modstamp} >= {_literal(interval.start)} AND {modstamp} < {_literal(interval.end)}"
        from postsales.crm.base import PermanentError, TransientError

        client = self._client(mapping.object)
        try:
            records = list(client.query(soql))
        except TransientError as exc:
            raise SourceUnavailableError(f"{entity}: salesforce did not answer: {exc}") from None
        except PermanentError as exc:
            raise DataContractError(
                f"{entity}: salesforce rejected the query on {mapping.object}: {exc}. "
                f"Fix: check salesforce.objects.{entity}.columns in include/rules/sources.yaml."
            ) from None
        ours = {source: column for column, source in mapping.columns.items()}
        rows = [{ours.get(k, k): _text(v) for k, v in record.items() if k in ours} for record in records]
        frame = pd.DataFrame(rows, columns=list(mapping.columns), dtype="object")
        origin = f"salesforce:{mapping.object}"
        frame = with_lineage(
            frame,
            f"{entity} ({origin})",
            f"rename the key in salesforce.objects.{entity}.columns in include/rules/sources.yaml.",
            **{SOURCE: origin},
        )
        log.info("read %s rows of %s from %s", len(frame), entity, origin)
        return SourceRead(frame=frame, origin=origin)


def _literal(moment: datetime) -> str:
    """A SOQL datetime literal (UTC, no quotes)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
