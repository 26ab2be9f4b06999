"""The ``hubspot`` CRM adapter: segment tags written to HubSpot companies.

The HTTP, the token, the retries and the searches are HubSpot's official client's, through
``postsales.hubspot_api.HubSpotClient``; this module decides what to read and what each
answer means for each record:

- **Read**: with the key ``hs_object_id`` our account id *is* the company's record id and the
  companies are read by id (``crm.companies.batch_api.read``, 100 a call). Any other key is
  looked up with the search API (``crm.companies.search_api.do_search``, an ``IN`` filter of at
  most 100 values, pages followed). A key held by several companies is reported with
  ``matches`` > 1 and never written.
- **Write**: ``crm.companies.batch_api.update``, 100 companies a call, every value sent as the
  string HubSpot expects (``"true"``/``"false"``, numbers as text, ``""`` clears). An input is
  a success when the answer's ``results`` hold it (a 200's hold every one); a 207 names the
  failed ids per error (``errors[].context.ids``): ``OBJECT_NOT_FOUND``/``VALIDATION_ERROR``
  are ``failed_permanent``, rate limits and internal errors ``failed_transient``; an input in
  neither (an answer that is not HubSpot's) is ``failed_transient`` ``NO_RESULT``. When
  HubSpot refuses a whole batch as invalid (400 ``VALIDATION_ERROR``) the batch is split in
  halves, level by level, to find the records at fault, so a few bad values do not hold back
  the rest (:meth:`HubSpotAdapter._isolate`): a refusal no part of which is accepted after two
  levels is systematic (a wrong type for every record: 6 extra calls), and one ``update`` spends
  at most ``ISOLATION_CALLS`` (200) extra calls on it.
- **Errors of a whole request**: the client retries 429, 5xx, 423, timeouts and dropped
  connections; what is left fails the batch transiently. The *daily* limit is not retried:
  in a write the remaining batches fail transiently at once, unsent, and the next run sends them
  again; in a read (``fetch``, ``describe``) it fails the sync at once with a ``PermanentError``
  ``DAILY_LIMIT``, since Airflow's retries minutes later would fail the same way until the limit
  resets. 401 (``UNAUTHORIZED``: renew the private-app token) and 403 (a scope missing) stop the
  update after that batch: its records fail permanently, no later batch is sent, and the sync
  fails its task once it has audited them. Other 4xx are permanent for the batch's records.
- **Sync state** is keyed by :meth:`HubSpotAdapter.describe`, ``hubspot:<portal id>/companies``:
  two HubSpot accounts never share it.

The access token never reaches a log line or an exception message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from postsales.crm.base import Change, CrmRecord, WriteResult, chunks, keeps_results
from postsales.crm.config import HubSpotCrm
from postsales.errors import AccessRefusedError, PermanentError, TransientError
from postsales.hubspot_api import (
    NAME,
    RECORD_ID,
    TRANSIENT_CATEGORIES,
    DailyLimitReached,
    HubSpotClient,
    property_name,
)
from postsales.retry import RetryPolicy

BATCH_SIZE = 100  # batch read/update: at most 100 inputs a request
SEARCH_VALUES = 100  # values in one IN filter
# A whole batch refused as invalid: split it to find the records at fault (not when a property does not exist).
SPLITTABLE_CATEGORIES = frozenset({"VALIDATION_ERROR"})
# Extra batch calls one update() may spend on splitting refused batches: with one bad record a
# batch costs about 14 (100 -> 50 -> ... -> 1, two calls a level), so a push isolates a dozen or
# more bad records before the parts still refused fail as they are (the next sync sends them again).
ISOLATION_CALLS = 200
# Levels of halving after which a refusal with no part accepted is taken as systematic (the same
# wrong value for every record): the parts fail as they are, after 2 + 4 extra calls.
SYSTEMATIC_LEVELS = 2
RECORD_ID_VALUE = re.compile(r"^[0-9]{1,20}$")
# What picks up a sync that a read failed for the daily limit (the diff-only push sends every change again).
DAILY_LIMIT_THEN = (
    "The next scheduled sync picks the changes up; to sync sooner, clear this task once the limit has reset."
)


def hubspot_value(value: Any) -> str:
    """A value as HubSpot takes it: text; booleans ``true``/``false``; ``""`` clears the property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text or "E" in text:
            text = format(Decimal(text), "f")
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


class HubSpotAdapter:
    name = "hubspot"

    def __init__(self, client: HubSpotClient, config: HubSpotCrm, key_field: str):
        self.client = client
        self.config = config
        self.object = config.object
        self.key_field = property_name(key_field, "key property")
        self.calls = 0  # batch-update requests sent (every attempt)
        self._daily_limit: DailyLimitReached | None = None
        self._access_refused: AccessRefusedError | None = None
        self._isolation_left = ISOLATION_CALLS  # extra calls the current update() may spend in _isolate

    def __repr__(self) -> str:
        return f"HubSpotAdapter({self.client.host!r}, {self.object!r})"

    @property
    def retry(self) -> RetryPolicy:
        return self.client.retry

    @classmethod
    def from_connection(
        cls, config: HubSpotCrm, key_field: str, retry: RetryPolicy | None = None, **kwargs: Any
    ) -> HubSpotAdapter:
        """From the Airflow connection ``config.conn_id`` (``HubSpotClient.from_connection``)."""
        return cls(HubSpotClient.from_connection(config.conn_id, retry, **kwargs), config, key_field)

    # --- the adapter protocol ---------------------------------------------------------------

    def describe(self) -> str:
        """``hubspot:<portal id>/companies``: the sync state's key (asks HubSpot the portal once)."""
        try:
            portal = self.client.portal_id
        except DailyLimitReached as exc:
            raise exc.read_error(DAILY_LIMIT_THEN) from None
        return f"hubspot:{portal}/{self.object}"

    def fetch(self, account_ids: Sequence[str], crm_fields: Sequence[str]) -> dict[str, CrmRecord]:
        fields = [property_name(f) for f in dict.fromkeys(crm_fields)]
        keys = list(dict.fromkeys(map(str, account_ids)))
        try:
            if self.key_field == RECORD_ID:
                return self._fetch_by_id(keys, fields)
            return self._fetch_by_search(keys, fields)
        except DailyLimitReached as exc:  # a read cannot wait for tomorrow, nor can Airflow's retries
            raise exc.read_error(DAILY_LIMIT_THEN) from None

    @keeps_results
    def update(self, changes: Sequence[Change]) -> Iterator[WriteResult]:
        self._access_refused = None
        self._isolation_left = ISOLATION_CALLS
        results: list[WriteResult] = []
        # Two of our accounts on one company: ambiguous, and HubSpot refuses duplicate ids in a batch.
        targets: dict[str, list[Change]] = {}
        for change in changes:
            targets.setdefault(str(change.crm_id), []).append(change)
        unique: list[Change] = []
        for crm_id, group in targets.items():
            if len(group) > 1:
                accounts = sorted(c.account_id for c in group)
                results += [
                    _failed(c, "failed_permanent", "DUPLICATE_ID", f"company {crm_id} is the target of {accounts}")
                    for c in group
                ]
            elif not RECORD_ID_VALUE.match(crm_id):
                results.append(
                    _failed(group[0], "failed_permanent", "INVALID_ID", f"not a HubSpot record id: {crm_id!r}")
                )
            elif bad := sorted(f for f in group[0].fields if not NAME.match(f)):
                results.append(
                    _failed(group[0], "failed_permanent", "INVALID_FIELD", f"not HubSpot property names: {bad}")
                )
            else:
                unique.append(group[0])
        yield from results
        for part in chunks(unique, BATCH_SIZE):
            batch, refused = self._batch(part)
            yield from self._isolate(part, batch) if refused and len(part) > 1 else batch
            if self._access_refused is not None:  # the token cannot write: no later batch can succeed
                raise self._access_refused

    def read_companies_since(self, modified_since: datetime, properties: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Companies modified at or after ``modified_since``, oldest first (``HubSpotClient.search_since``)."""
        return self.client.search_since("companies", modified_since, properties)

    # --- reading ----------------------------------------------------------------------------

    def _fetch_by_id(self, keys: list[str], fields: list[str]) -> dict[str, CrmRecord]:
        ids = [k for k in keys if RECORD_ID_VALUE.match(k)]  # what cannot be a record id is not in the CRM
        found: dict[str, CrmRecord] = {}
        for part in chunks(ids, BATCH_SIZE):
            for crm_id, props in self.client.read_companies(part, fields).items():
                found[crm_id] = CrmRecord(crm_id, crm_id, {f: props.get(f) for f in fields})
        return found

    def _fetch_by_search(self, keys: list[str], fields: list[str]) -> dict[str, CrmRecord]:
        found: dict[str, CrmRecord] = {}
        names = list(dict.fromkeys([self.key_field, *fields]))
        for part, values in self._value_chunks(keys):
            exact = set(part)
            folded: dict[str, str | None] = {}
            for key in part:
                folded[key.casefold()] = None if key.casefold() in folded else key
            filters = [{"propertyName": self.key_field, "operator": "IN", "values": values}]
            for company in self.client.search(self.object, filters, names):
                props = company["properties"]
                key = "" if props.get(self.key_field) is None else str(props[self.key_field])
                account_id = key if key in exact else folded.get(key.casefold())
                if account_id is None:
                    continue
                if account_id in found:
                    first = found[account_id]
                    found[account_id] = CrmRecord(account_id, first.crm_id, first.values, matches=first.matches + 1)
                else:
                    found[account_id] = CrmRecord(account_id, company["id"], {f: props.get(f) for f in fields})
        return found

    @staticmethod
    def _value_chunks(keys: list[str]) -> Iterator[tuple[list[str], list[str]]]:
        """Keys in groups whose IN values (each key, and its lowercase form when it differs) number at most 100.

        HubSpot's search guide says an ``IN`` filter on a text property wants lowercase values
        (not verified against a live portal); sending the key as given too keeps the lookup
        right either way. Results are matched back exactly first, then ignoring case.
        """
        part: list[str] = []
        values: list[str] = []
        for key in keys:
            forms = list(dict.fromkeys([key, key.lower()]))
            if part and len(values) + len(forms) > SEARCH_VALUES:
                yield part, values
                part, values = [], []
            part.append(key)
            values += forms
        if part:
            yield part, values

    # --- writing ----------------------------------------------------------------------------

    def _batch(self, part: Sequence[Change]) -> tuple[list[WriteResult], bool]:
        """One batch update: a result per change, and whether HubSpot refused the batch as invalid."""
        if self._daily_limit is not None:
            return _all_failed(part, "failed_transient", self._daily_limit.code, self._daily_limit.message, 0), False
        from hubspot.crm.companies import BatchInputSimplePublicObjectBatchInput, SimplePublicObjectBatchInput

        body = BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(
                    id=str(c.crm_id), properties={f: hubspot_value(v) for f, v in c.fields.items()}
                )
                for c in part
            ]
        )
        try:
            answer = self.client.call("hubspot update", self.client.companies.update, body)
        except DailyLimitReached as exc:
            self._daily_limit = exc
            return _all_failed(part, "failed_transient", exc.code, exc.message, self._sent()), False
        except TransientError as exc:
            return _all_failed(part, "failed_transient", exc.code, exc.message, self._sent()), False
        except PermanentError as exc:
            if isinstance(exc, AccessRefusedError):
                self._access_refused = exc
            refused = exc.code in SPLITTABLE_CATEGORIES and "PROPERTY_DOESNT_EXIST" not in exc.message
            return _all_failed(part, "failed_permanent", exc.code, exc.message, self._sent()), refused
        return self._outcomes(part, answer, self._sent()), False

    def _sent(self) -> int:
        """Count the requests the last update took as write calls; returns them."""
        self.calls += self.client.last_attempts
        return self.client.last_attempts

    def _outcomes(self, part: Sequence[Change], answer: Any, attempts: int) -> list[WriteResult]:
        """Per record: failed if an error names its id, a success if a result does; else the error naming
        no id, or (no result at all: an answer that is not HubSpot's, a proxy's page) ``NO_RESULT``."""
        failed: dict[str, tuple[str, str, str]] = {}  # id -> (status, code, message)
        unattributed: tuple[str, str, str] | None = None
        for error in getattr(answer, "errors", None) or []:
            category = str(error.category or "UNKNOWN_ERROR")
            status = "failed_transient" if category in TRANSIENT_CATEGORIES else "failed_permanent"
            message = self.client.mask(str(error.message or ""))
            context = error.context if isinstance(error.context, dict) else {}
            ids = [_record_id(i) for i in context.get("ids") or []]
            named = context.get("propertyName")
            if named:
                names = ", ".join(map(str, named)) if isinstance(named, list) else str(named)
                message = f"{message} (properties: {names})"
            outcome = (status, category, message)
            for crm_id in ids:
                if failed.get(crm_id, ("",))[0] != "failed_permanent":  # permanent wins: retrying will not help
                    failed[crm_id] = outcome
            if not ids and unattributed is None:
                unattributed = outcome
        updated = {_record_id(r.id) for r in getattr(answer, "results", None) or []}
        no_result = ("failed_transient", "NO_RESULT", "HubSpot's answer holds no result for the company")
        results = []
        for change in part:
            crm_id = _record_id(change.crm_id)
            outcome = failed.get(crm_id) or (None if crm_id in updated else unattributed or no_result)
            if outcome is None:
                results.append(WriteResult(change.account_id, change.crm_id, "success", attempts=max(attempts, 1)))
            else:
                results.append(_failed(change, *outcome, attempts))
        return results

    def _isolate(self, part: Sequence[Change], refusal: list[WriteResult]) -> list[WriteResult]:
        """A batch refused as a whole (``refusal``: its results): find the records at fault.

        Level by level, every part still refused is halved and each half sent. While no part has
        been accepted, the cause may be no record but the request (a wrong property type for
        every one): after ``SYSTEMATIC_LEVELS`` levels without an accepted part the parts still
        refused fail as they are. Once a part is accepted, refused parts are halved down to
        single records, two calls a split out of the update's ``ISOLATION_CALLS``; when those are
        spent, the parts still refused fail as they are, saying they were not isolated. Results
        come back in the order of ``part``.
        """
        done: dict[int, list[WriteResult]] = {}  # results by the offset in ``part`` of their first change
        refused = [(0, len(part), refusal)]  # (start, end, results) of each part refused as a whole
        accepted = False
        level = 0
        while refused:
            level += 1
            still: list[tuple[int, int, list[WriteResult]]] = []
            for start, end, results in refused:
                if self._isolation_left < 2:
                    done[start] = [_not_isolated(r, end - start) for r in results]
                    continue
                self._isolation_left -= 2
                middle = start + (end - start) // 2
                for low, high in ((start, middle), (middle, end)):
                    half, half_refused = self._batch(part[low:high])
                    accepted = accepted or any(r.status == "success" for r in half)
                    if half_refused and high - low > 1:
                        still.append((low, high, half))
                    else:
                        done[low] = half
            if not accepted and level >= SYSTEMATIC_LEVELS:
                done |= {start: results for start, _, results in still}
                break
            refused = still
        return [result for start in sorted(done) for result in done[start]]


def _record_id(value: Any) -> str:
    """A record id as compared: HubSpot's ids are numbers, which a leading zero does not change."""
    text = str(value)
    return str(int(text)) if text.isdigit() else text


def _failed(change: Change, status: str, code: str, message: str, attempts: int = 1) -> WriteResult:
    return WriteResult(change.account_id, change.crm_id, status, code, message, max(attempts, 1))  # type: ignore[arg-type]


def _all_failed(part: Sequence[Change], status: str, code: str, message: str, attempts: int) -> list[WriteResult]:
    return [_failed(c, status, code, message, attempts) for c in part]


def _not_isolated(result: WriteResult, size: int) -> WriteResult:
    """The refusal of a part ``_isolate`` could no longer split, saying so."""
    note = (
        f"not isolated: HubSpot refused these {size} companies as a whole, and the {ISOLATION_CALLS} extra calls "
        "an update may spend on finding the records at fault are spent; the next sync sends them again"
    )
    return replace(result, error_message=f"{result.error_message} ({note})")
