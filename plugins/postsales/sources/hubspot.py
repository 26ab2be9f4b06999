"""The ``hubspot`` source: entities read from HubSpot with the CRM search API.

Each entity maps to a HubSpot object type and our columns to its properties (internal names)
in ``include/rules/sources.yaml`` (``hubspot.objects.<entity>``), as the sql source maps
columns: companies for ``accounts``, deals for ``contracts`` (docs/input-contract.md says why
deals). Incremental on the property mapped to the entity's incremental column
(``hs_lastmodifieddate``): the interval's exact bounds go into the search filter, and a full
refresh reads every record. The client (``postsales.hubspot_api.HubSpotClient``, on HubSpot's
official client) pages the results, passing the search API's 10,000-result cap by searching
again from the last modification time seen. A record read twice (it changed while the pages
were read) is kept once, as last read.

Values are returned as HubSpot holds them, as text, so the Great Expectations gate sees what
the CRM held; an empty property is a missing value. Before reading, the mapped properties are
checked against the account's property definitions: HubSpot returns an unknown property as
empty rather than refusing it, so a misspelt name would otherwise quarantine every row.

``account_from_company``: the entity's ``account_id`` is a property of the record's primary
associated company (v4 associations, then a batch read of those companies), for records such
as deals that belong to a company rather than naming it: the company labelled Primary, else
the only one. A record without exactly one such company (no company; several and none
primary; several primary) has no ``account_id`` and is refused (``postsales.sources.Refusal``):
the gate quarantines it with ``account_id is required`` and a reason saying which case it is
and how to fix it in HubSpot.

The connection and its token come from the Airflow connection, never from YAML. This module
imports nothing from ``postsales.crm``.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from postsales.config import HubSpotObjectMapping
from postsales.config import HubSpotSource as HubSpotSourceConfig
from postsales.errors import DataContractError, PermanentError, SourceUnavailableError, TransientError
from postsales.sources import (
    REFUSAL,
    Interval,
    Refusal,
    SourceRead,
    entity_mapping,
    lineage_error,
    source_read,
    text_table,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    from postsales.hubspot_api import CompanyAssociations, HubSpotClient
    from postsales.sources.text_table import TextTable

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1)
# Properties HubSpot sets on every record: no record lacks them, so none is left out of an interval.
ALWAYS_SET = frozenset({"hs_lastmodifieddate", "createdate", "hs_createdate", "hs_object_id"})
ASSOCIATION_BATCH = 1_000  # ids a v4 association batch read takes
COMPANY_BATCH = 100  # ids a companies batch read takes
RULES = "include/rules/sources.yaml"
# What reads an interval whose extract failed for HubSpot's daily limit: each run reads its own interval.
DAILY_LIMIT_THEN = (
    "The next scheduled run reads only its own interval: clear this task once the limit has reset to read this one."
)


# Why a record of an entity with account_from_company has no account_id: REFUSAL's codes.
NO_COMPANY, NO_PRIMARY, SEVERAL_PRIMARY = "no_company", "no_primary_company", "several_primary_companies"


def _refusals(mapping: HubSpotObjectMapping) -> dict[str, Refusal]:
    """The reasons a record without exactly one primary company is quarantined with (one text per
    case, so the quarantine's reasons group by case; the record's id is its key)."""
    if not mapping.account_from_company:
        return {}
    record = "deal" if mapping.object == "deals" else f"{mapping.object} record"
    return {
        NO_COMPANY: Refusal(
            "account_id",
            f"account_id: the {record} has no associated company in HubSpot; associate it with its account's company",
        ),
        NO_PRIMARY: Refusal(
            "account_id",
            f"account_id: the {record} has several associated companies in HubSpot and none is primary; make its "
            "account's company the primary one",
        ),
        SEVERAL_PRIMARY: Refusal(
            "account_id",
            f"account_id: the {record} has several primary companies in HubSpot; keep one primary: its account's "
            "company",
        ),
    }


def _text(value: Any) -> str | None:
    """A property value as the gate reads it: HubSpot sends text; an empty property is missing."""
    return None if value is None or value == "" else str(value)


class HubSpotSource:
    name = "hubspot"

    def __init__(self, config: HubSpotSourceConfig, client: HubSpotClient | None = None):
        self.config = config
        self._given_client = client  # else one from the Airflow connection

    def _client(self) -> HubSpotClient:
        if self._given_client is not None:
            return self._given_client
        from postsales.hubspot_api import HubSpotClient

        try:
            self._given_client = HubSpotClient.from_connection(self.config.conn_id)
        except PermanentError as exc:  # no token: not a retry's worth
            raise PermanentError(exc.code, f"hubspot source: {exc.message}") from None
        return self._given_client

    def read(self, entity: str, incremental_column: str, interval: Interval) -> SourceRead:
        """The interval's records, a text column each mapped property (and ``account_id``); with
        ``account_from_company``, also ``REFUSAL``: the code of the reason a record has none."""
        mapping = self._mapping(entity)
        columns = [*_columns(mapping), *([REFUSAL] if mapping.account_from_company else [])]
        frame = pd.DataFrame(
            [[_text(v) for v in row] for row in self._rows(entity, mapping, incremental_column, interval)],
            columns=columns,
            dtype="object",
        )
        return source_read(frame, entity, f"hubspot:{mapping.object}", _lineage_fix(entity))

    def load_text(
        self, eng: sa.Engine, entity: str, incremental_column: str, interval: Interval, table_name: str
    ) -> TextTable:
        """The rows :meth:`read` returns, landed as text in ``raw.<table_name>``."""
        mapping = self._mapping(entity)
        columns = _columns(mapping)
        origin = f"hubspot:{mapping.object}"
        where = f"{entity} ({origin})"
        problem = lineage_error(columns, where, _lineage_fix(entity))
        if problem:
            raise problem
        names = text_table.unlandable_names(columns, eng.dialect.name)
        if names:
            raise text_table.unlandable_error(where, names, _lineage_fix(entity))
        rows = self._rows(entity, mapping, incremental_column, interval)

        def chunks():
            for start in range(0, len(rows), text_table.CHUNK_ROWS):
                yield rows[start : start + text_table.CHUNK_ROWS]

        landed = text_table.land_rows(eng, table_name, columns, chunks(), _text, origin, where, _refusals(mapping))
        text_table.log_landed(entity, landed.rows, origin, landed.table)
        return landed

    def _mapping(self, entity: str) -> HubSpotObjectMapping:
        return entity_mapping(self.config.objects, entity, "hubspot.objects", "its object type and property names")

    def _rows(
        self, entity: str, mapping: HubSpotObjectMapping, incremental_column: str, interval: Interval
    ) -> list[tuple]:
        """The interval's records, one tuple a record in :func:`_columns` order, then (``account_from_company``)
        the code of its refusal or None (read before anything is landed)."""
        client = self._client()
        modified = mapping.properties[incremental_column]  # guaranteed by SourcesConfig validation
        names = list(dict.fromkeys(mapping.properties.values()))
        filters = [{"propertyName": p, "operator": "EQ", "value": v} for p, v in mapping.filters.items()]
        records: dict[str, dict[str, Any]] = {}
        with self._errors(entity, mapping):
            self._check_properties(client, entity, mapping)
            since, until = (EPOCH, None) if interval.full_refresh else (interval.start, interval.end)
            found = client.search_since(
                mapping.object, since, names, until=until, filters=filters, modified=modified, restart_each_page=True
            )
            for record in found:
                records[record["id"]] = record["properties"]
            if modified not in ALWAYS_SET:  # records without it belong to no interval: read, and quarantined
                lacking = [*filters, {"propertyName": modified, "operator": "NOT_HAS_PROPERTY"}]
                for record in client.search(mapping.object, lacking, names):
                    records[record["id"]] = record["properties"]
            accounts = self._accounts(client, mapping, list(records)) if mapping.account_from_company else None
        rows = []
        for record_id, properties in records.items():
            row = [properties.get(name) for name in mapping.properties.values()]
            rows.append((*row, *accounts[record_id]) if accounts is not None else tuple(row))
        return rows

    def _check_properties(self, client: HubSpotClient, entity: str, mapping: HubSpotObjectMapping) -> None:
        """Every mapped property exists on the object type (and the company key on companies)."""
        where = f"hubspot.objects.{entity}"
        wanted = [(f"{where}.properties.{ours}", name, mapping.object) for ours, name in mapping.properties.items()]
        wanted += [(f"{where}.filters", name, mapping.object) for name in mapping.filters]
        if mapping.account_from_company:
            wanted.append((f"{where}.account_from_company", mapping.account_from_company, "companies"))
        known = {kind: client.property_names(kind) for kind in dict.fromkeys(kind for *_, kind in wanted)}
        unknown = [(field, name, kind) for field, name, kind in wanted if name not in known[kind]]
        if not unknown:
            return
        listed = "; ".join(
            f"field '{field}': {name!r} is not a property of {kind}{_close(name, known[kind])}"
            for field, name, kind in unknown
        )
        raise DataContractError(
            f"{entity} (hubspot:{mapping.object}): {RULES}: {listed}. HubSpot would return such a property empty "
            "on every record. Fix: write the property's internal name (HubSpot: Settings > Properties > the "
            f"property > internal name) in {where}, or create the property in HubSpot."
        )

    def _accounts(
        self, client: HubSpotClient, mapping: HubSpotObjectMapping, ids: list[str]
    ) -> dict[str, tuple[Any, str | None]]:
        """Each record's ``account_id`` (``account_from_company`` of its primary company) and the
        code of its refusal: None, or why it has no primary company (then no ``account_id``)."""
        chosen: dict[str, tuple[str | None, str | None]] = {}
        for start in range(0, len(ids), ASSOCIATION_BATCH):
            part = ids[start : start + ASSOCIATION_BATCH]
            found = client.company_associations(mapping.object, part)
            chosen |= {record: _primary_company(found.get(record)) for record in part}
        key = mapping.account_from_company
        companies = sorted({company for company, _ in chosen.values() if company is not None})
        if key == "hs_object_id":
            values: dict[str, Any] = {company: company for company in companies}
        else:
            values = {}
            for start in range(0, len(companies), COMPANY_BATCH):
                read = client.read_companies(companies[start : start + COMPANY_BATCH], [key])
                values |= {company: properties.get(key) for company, properties in read.items()}
        return {record: (values.get(company or ""), refusal) for record, (company, refusal) in chosen.items()}

    @contextmanager
    def _errors(self, entity: str, mapping: HubSpotObjectMapping) -> Iterator[None]:
        """HubSpot unavailable is retried (Airflow); a refused request, or the daily limit spent, fails
        at once, naming the fix."""
        from postsales.hubspot_api import DailyLimitReached

        try:
            yield
        except DailyLimitReached as exc:  # Airflow's retries would fail the same way until the limit resets
            raise exc.read_error(DAILY_LIMIT_THEN, f"{entity}: hubspot source: ") from None
        except TransientError as exc:
            raise SourceUnavailableError(f"{entity}: hubspot did not answer: {exc}") from None
        except PermanentError as exc:
            if exc.code in ("UNAUTHORIZED", "NO_CREDENTIALS"):
                raise PermanentError(exc.code, f"hubspot source: {exc.message}") from None
            raise DataContractError(
                f"{entity}: hubspot refused the search on {mapping.object}: {exc}. "
                f"Fix: check hubspot.objects.{entity} in {RULES}."
            ) from None


def _primary_company(associated: CompanyAssociations | None) -> tuple[str | None, str | None]:
    """The record's company, the one labelled Primary, else the only one: ``(company, None)``; or
    ``(None, code)``, the code of why it has none."""
    if associated is None or not associated.companies:
        return None, NO_COMPANY
    if len(associated.primary) > 1:
        return None, SEVERAL_PRIMARY
    if associated.primary:
        return associated.primary[0], None
    if len(associated.companies) > 1:
        return None, NO_PRIMARY
    return associated.companies[0], None


def _columns(mapping: HubSpotObjectMapping) -> list[str]:
    return [*mapping.properties, *(["account_id"] if mapping.account_from_company else [])]


def _close(name: str, known: set[str]) -> str:
    matches = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _lineage_fix(entity: str) -> str:
    return f"rename the key in hubspot.objects.{entity}.properties in {RULES}."
