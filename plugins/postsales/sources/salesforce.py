"""The ``salesforce`` source: entities read from Salesforce with SOQL.

Incremental on ``SystemModstamp`` (every Salesforce object has it; map it to the entity's
incremental column, e.g. ``updated_at: SystemModstamp``), the interval's exact bounds.
A full refresh reads everything. Field names are mapped in ``include/rules/sources.yaml``;
the connection and its token come from the Airflow connection, never from YAML. Values
are returned as text, like every source, so the gate sees what Salesforce held.

Before reading, the mapped fields are checked against the object's describe (one request): a
field the object lacks (or that the connection's user cannot see), a name written in another
case (records name a field as Salesforce spells it, so its values would be lost) and an
incremental column mapped to a field that is not a datetime fail naming the file, the field,
the nearest valid names and the fix, before Salesforce refuses the query. (Loading
``sources.yaml`` checks what it can without Salesforce: that the entity has a mapping and that
it maps its incremental column.)

Queries go through ``postsales.salesforce_api.SalesforceClient`` (the Airflow Salesforce
provider's hook, simple-salesforce underneath), the client the CRM write-back adapter builds on
too; reading does not import the CRM package.
"""

from __future__ import annotations

import difflib
import itertools
import logging
from contextlib import contextmanager
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

    from postsales.config import SalesforceObjectMapping
    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)

RULES = "include/rules/sources.yaml"


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
        # anything with query(soql) and describe_fields(object); else one from the Airflow connection
        self._given_client = client

    def _client(self):
        if self._given_client is not None:
            return self._given_client
        from postsales.salesforce_api import SalesforceClient, warn_if_api_version

        warn_if_api_version(RULES, self.config.api_version, self.config.conn_id)
        try:
            return SalesforceClient.from_connection(self.config.conn_id)
        except PermanentError as exc:  # a connection missing a field, a refused login: not a retry's worth
            raise PermanentError(exc.code, f"salesforce source: {exc.message}") from None

    def read(self, entity: str, incremental_column: str, interval: Interval) -> SourceRead:
        mapping, soql = self._query(entity, incremental_column, interval)
        records = list(self._records(entity, mapping, incremental_column, soql))
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
        records = self._records(entity, mapping, incremental_column, soql)

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

    def _records(
        self, entity: str, mapping: SalesforceObjectMapping, incremental_column: str, soql: str
    ) -> Iterator[dict]:
        """The query's records as its pages arrive, once the mapping is checked against the object's
        describe; a failure named as a retry's worth or not."""
        try:  # a connection missing a field or a refused login stays a PermanentError, naming the connection
            client = self._client()
        except TransientError as exc:
            raise SourceUnavailableError(f"{entity}: salesforce did not answer the login: {exc}") from None
        object_fix = (
            f"check salesforce.objects.{entity}.object in {RULES}: the object's API name (Account, Contract, a "
            "custom object's Name__c), which the connection's user may read."
        )
        with _answers(entity, f"the describe of {mapping.object}", object_fix):
            fields = client.describe_fields(mapping.object)
        _check_fields(entity, mapping, incremental_column, fields)
        with _answers(
            entity, f"the query on {mapping.object}", f"check salesforce.objects.{entity}.columns in {RULES}."
        ):
            yield from client.query(soql)


@contextmanager
def _answers(entity: str, what: str, fix: str) -> Iterator[None]:
    """Salesforce unavailable is retried (Airflow); a refused request or the daily limit fails at once."""
    from postsales.salesforce_api import DailyLimitReached

    try:
        yield
    except TransientError as exc:
        raise SourceUnavailableError(f"{entity}: salesforce did not answer: {exc}") from None
    except DailyLimitReached as exc:  # not a task retry's worth: hours until it frees up
        raise PermanentError(exc.code, f"{entity}: salesforce source: {exc.message}") from None
    except PermanentError as exc:
        raise DataContractError(f"{entity}: salesforce rejected {what}: {exc}. Fix: {fix}") from None


def _check_fields(
    entity: str, mapping: SalesforceObjectMapping, incremental_column: str, fields: dict[str, dict[str, Any]]
) -> None:
    """Every mapped field is a field of the object (one the connection's user can see), written as
    Salesforce spells it; the incremental column's is a datetime (the interval's bounds are datetime
    literals). Raises a ``DataContractError`` naming each field at fault and the nearest valid names."""
    where = f"salesforce.objects.{entity}.columns"
    spelt = {name.lower(): name for name in fields}
    datetimes = sorted(name for name, field in fields.items() if field.get("type") == "datetime")
    problems, fixes = [], {}
    for column, name in mapping.columns.items():
        incremental = column == incremental_column
        field = f"field '{where}.{column}'" + (f" (entities.{entity}.incremental_column)" if incremental else "")
        actual = spelt.get(name.lower())
        if actual is None:
            nearest = _nearest(name, datetimes if incremental else fields)
            problems.append(f"{field}: {name!r} is not a field of {mapping.object}{nearest}")
            fixes["name"] = (
                f"write the field's API name (Salesforce: Setup > Object Manager > {mapping.object} > Fields & "
                f"Relationships > Field Name) in {where}, or give the connection's user access to the field"
            )
        elif actual != name:
            problems.append(
                f"{field}: {name!r} is spelt {actual!r} in Salesforce, which names it so in every record: the column "
                "would be read empty"
            )
            fixes["case"] = f"write each name in {where} as Salesforce spells it"
        elif incremental and fields[actual].get("type") != "datetime":
            kind = fields[actual].get("type")
            problems.append(f"{field}: {name!r} is a {kind} field, not a datetime{_nearest(name, datetimes)}")
        if incremental and (actual is None or fields[actual].get("type") != "datetime"):
            fixes["incremental"] = (
                f"map {incremental_column} to the datetime field the interval is read on, such as SystemModstamp"
            )
    if problems:
        raise DataContractError(
            f"{entity} (salesforce:{mapping.object}): {RULES}: {'; '.join(problems)}. Fix: {'; '.join(fixes.values())}."
        )


def _nearest(name: str, names) -> str:
    """`` (the nearest: A, B)``, the valid names closest to ``name``; empty when none is close."""
    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
    return f" (the nearest: {', '.join(close)})" if close else ""


def _lineage_fix(entity: str) -> str:
    return f"rename the key in salesforce.objects.{entity}.columns in include/rules/sources.yaml."


def _literal(moment: datetime) -> str:
    """A SOQL datetime literal (UTC, no quotes)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
