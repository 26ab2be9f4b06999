"""The ``hubspot`` CRM adapter: the CRM v3 REST API through ``requests``, no HubSpot library.

- **Read**: with the key ``hs_object_id`` our account id *is* the company's record id and
  the companies are read by id (``POST /crm/v3/objects/companies/batch/read``, 100 a call).
  Any other key is looked up with the search API (``POST .../companies/search``, an ``IN``
  filter of at most 100 values, pages followed through ``paging.next.after``). A key held by
  several companies is reported with ``matches`` > 1 and never written.
- **Write**: ``POST .../companies/batch/update``, 100 companies a call, every value sent as
  the string HubSpot expects (``"true"``/``"false"``, numbers as text, ``""`` clears). A 200
  is a success for every input; a 207 names the failed ids per error
  (``errors[].context.ids``): ``OBJECT_NOT_FOUND``/``VALIDATION_ERROR`` are
  ``failed_permanent``, rate limits and internal errors ``failed_transient``. When HubSpot
  refuses a whole batch as invalid (400 ``VALIDATION_ERROR``) the batch is split in halves to
  find the record at fault, so one bad value does not hold back the other 99.
- **Errors of a whole request**: 429 (``Retry-After`` if sent, else the
  ``X-HubSpot-RateLimit-Interval-Milliseconds`` window, else backoff), 5xx, 423, timeouts and
  connection errors are retried by :class:`RetryPolicy`; the *daily* limit is not retried
  (the remaining batches fail transiently at once, the next run sends them again); 401 is
  ``UNAUTHORIZED`` (renew the private-app token); other 4xx are permanent.

The access token never reaches a log line or an exception message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import requests

from postsales.crm.base import Change, CrmRecord, WriteResult, chunks
from postsales.crm.config import HubSpotCrm
from postsales.errors import PermanentError, TransientError
from postsales.retry import MAX_RETRY_AFTER, RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
BATCH_SIZE = 100  # batch read/update: at most 100 inputs a request
SEARCH_PAGE = 100  # search results a page
SEARCH_VALUES = 100  # values in one IN filter
SEARCH_CAP = 10_000  # the search API returns at most 10,000 results for one query
SEARCH_INTERVAL = 0.25  # seconds between search requests (HubSpot allows 5 a second per account)
LOCKED_WAIT = 2.0  # seconds to wait after a 423 Locked without Retry-After
RECORD_ID = "hs_object_id"
MODIFIED = "hs_lastmodifieddate"

# Error categories of a batch (207) worth sending again; anything else a record fails with is permanent.
TRANSIENT_CATEGORIES = frozenset({"RATE_LIMITS", "RATE_LIMIT", "INTERNAL_ERROR", "TIMEOUT", "LOCKED"})
# A whole batch refused as invalid: split it to find the records at fault (not when a property does not exist).
SPLITTABLE_CATEGORIES = frozenset({"VALIDATION_ERROR"})

NAME = re.compile(r"^[A-Za-z0-9_]+$")  # a property's internal name
RECORD_ID_VALUE = re.compile(r"^[0-9]{1,20}$")


class DailyLimitReached(Exception):
    """429 on the daily policy: nothing succeeds before the limit resets, so no retry (not a TransientError)."""

    def __init__(self, message: str):
        super().__init__(f"DAILY_LIMIT: {message}")
        self.code, self.message = "DAILY_LIMIT", message


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


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_timestamp(value: Any) -> int | None:
    """A HubSpot datetime property (ISO 8601 or epoch milliseconds) as epoch milliseconds."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _name(value: str, what: str) -> str:
    if not NAME.match(value or ""):
        raise PermanentError("INVALID_FIELD", f"not a HubSpot {what} name: {value!r}")
    return value


class HubSpotAdapter:
    name = "hubspot"

    def __init__(
        self,
        access_token: str,
        config: HubSpotCrm,
        key_field: str,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: tuple[float, float] = (10.0, 120.0),
        search_interval: float = SEARCH_INTERVAL,
    ):
        if not access_token:
            raise PermanentError("NO_CREDENTIALS", f"no HubSpot access token (connection {config.conn_id!r})")
        self._token = access_token
        self.config = config
        self.object = config.object
        self.key_field = _name(key_field, "key property")
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.base_url = _base_url(base_url)
        self.timeout = timeout
        self.search_interval = search_interval
        self.calls = 0  # batch-update requests sent (every attempt)
        self._last_search = float("-inf")
        self._daily_limit: DailyLimitReached | None = None

    def __repr__(self) -> str:
        return f"HubSpotAdapter({self.describe()!r})"

    @classmethod
    def from_connection(
        cls, config: HubSpotCrm, key_field: str, retry: RetryPolicy | None = None, **kwargs: Any
    ) -> HubSpotAdapter:
        """From the Airflow connection ``config.conn_id``: ``password`` = the private app's access token.

        The connection's ``host``, when set, replaces ``https://api.hubapi.com`` (a proxy, a test server).
        """
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(config.conn_id)
        if not conn.password:
            raise PermanentError(
                "NO_CREDENTIALS",
                f"connection {config.conn_id!r} needs the HubSpot private-app access token as its password",
            )
        if conn.host and "base_url" not in kwargs:
            kwargs["base_url"] = conn.host
        return cls(conn.password, config, key_field, retry, **kwargs)

    # --- the adapter protocol ---------------------------------------------------------------

    def describe(self) -> str:
        return f"hubspot:{self.object}"

    def fetch(self, account_ids: Sequence[str], crm_fields: Sequence[str]) -> dict[str, CrmRecord]:
        fields = [_name(f, "property") for f in dict.fromkeys(crm_fields)]
        keys = list(dict.fromkeys(map(str, account_ids)))
        if self.key_field == RECORD_ID:
            return self._fetch_by_id(keys, fields)
        return self._fetch_by_search(keys, fields)

    def update(self, changes: Sequence[Change]) -> list[WriteResult]:
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
        for part in chunks(unique, BATCH_SIZE):
            batch, refused = self._batch(part)
            results += self._isolate(part) if refused and len(part) > 1 else batch
        return results

    # --- incremental read -------------------------------------------------------------------

    def read_companies_since(self, modified_since: datetime, properties: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Companies with ``hs_lastmodifieddate`` at or after ``modified_since``, oldest first.

        Yields the search results as HubSpot returns them (``id``, ``properties``, ...). The
        search API stops at 10,000 results a query: the search then starts again from the last
        ``hs_lastmodifieddate`` seen (inclusive), skipping the companies already yielded at it.
        """
        names = list(dict.fromkeys([RECORD_ID, MODIFIED, *(_name(p, "property") for p in properties)]))
        bound = epoch_ms(modified_since)
        yielded_at_bound: set[str] = set()  # ids already yielded whose modification time is ``bound``
        while True:
            body = {
                "filterGroups": [{"filters": [{"propertyName": MODIFIED, "operator": "GTE", "value": str(bound)}]}],
                "sorts": [{"propertyName": MODIFIED, "direction": "ASCENDING"}],
                "properties": names,
                "limit": SEARCH_PAGE,
            }
            last_ms, last_ids = bound, set(yielded_at_bound)
            after: str | None = None
            while True:
                page = self._search_page(body, after)
                for company in page.get("results") or []:
                    modified = parse_timestamp((company.get("properties") or {}).get(MODIFIED))
                    if modified == bound and str(company.get("id")) in yielded_at_bound:
                        continue
                    yield company
                    if modified is not None and modified > last_ms:
                        last_ms, last_ids = modified, set()
                    if modified == last_ms:
                        last_ids.add(str(company.get("id")))
                after = _next_after(page)
                if after is None:
                    return
                if int(after) + SEARCH_PAGE > SEARCH_CAP:
                    break
            if last_ms == bound:
                raise PermanentError(
                    "SEARCH_CAP", f"more than {SEARCH_CAP} companies modified at {bound} ms: cannot page past them"
                )
            log.info("hubspot search: %s results reached, searching again from %s ms", SEARCH_CAP, last_ms)
            bound, yielded_at_bound = last_ms, last_ids

    # --- reading ----------------------------------------------------------------------------

    def _fetch_by_id(self, keys: list[str], fields: list[str]) -> dict[str, CrmRecord]:
        ids = [k for k in keys if RECORD_ID_VALUE.match(k)]  # what cannot be a record id is not in the CRM
        found: dict[str, CrmRecord] = {}
        for part in chunks(ids, BATCH_SIZE):
            body = {"properties": fields, "inputs": [{"id": i} for i in part]}
            page = self._call("hubspot read", "POST", self._path("batch/read"), json=body, params={"archived": "false"})
            for error in page.get("errors") or []:
                category = str(error.get("category") or "")
                if category in TRANSIENT_CATEGORIES:  # after a 207: worth the whole read again later
                    raise TransientError(category, self._mask(str(error.get("message") or "")))
            wanted = set(part)
            for company in page.get("results") or []:
                crm_id = str(company.get("id"))
                if crm_id in wanted:
                    props = company.get("properties") or {}
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
            body = {
                "filterGroups": [{"filters": [{"propertyName": self.key_field, "operator": "IN", "values": values}]}],
                "properties": names,
                "limit": SEARCH_PAGE,
            }
            for company in self._search(body):
                props = company.get("properties") or {}
                key = "" if props.get(self.key_field) is None else str(props[self.key_field])
                account_id = key if key in exact else folded.get(key.casefold())
                if account_id is None:
                    continue
                if account_id in found:
                    first = found[account_id]
                    found[account_id] = CrmRecord(account_id, first.crm_id, first.values, matches=first.matches + 1)
                else:
                    found[account_id] = CrmRecord(account_id, str(company["id"]), {f: props.get(f) for f in fields})
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

    def _search(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every result of a search, pages followed."""
        after: str | None = None
        while True:
            page = self._search_page(body, after)
            yield from page.get("results") or []
            after = _next_after(page)
            if after is None:
                return

    def _search_page(self, body: dict[str, Any], after: str | None) -> dict[str, Any]:
        self._throttle_search()
        return self._call(
            "hubspot search", "POST", self._path("search"), json=body | ({"after": after} if after else {})
        )

    def _throttle_search(self) -> None:
        wait = self._last_search + self.search_interval - time.monotonic()
        if wait > 0:
            self.retry.sleep(wait)
        self._last_search = time.monotonic()

    # --- writing ----------------------------------------------------------------------------

    def _batch(self, part: Sequence[Change]) -> tuple[list[WriteResult], bool]:
        """One batch update: a result per change, and whether HubSpot refused the batch as invalid."""
        if self._daily_limit is not None:
            return _all_failed(part, "failed_transient", self._daily_limit.code, self._daily_limit.message, 0), False
        body = {
            "inputs": [
                {"id": str(c.crm_id), "properties": {f: hubspot_value(v) for f, v in c.fields.items()}} for c in part
            ]
        }
        attempts = 0

        def send() -> requests.Response:
            nonlocal attempts
            attempts += 1
            return self._send("POST", self._path("batch/update"), json=body, write=True)

        try:
            response = self.retry.call("hubspot update", send)
        except DailyLimitReached as exc:
            self._daily_limit = exc
            return _all_failed(part, "failed_transient", exc.code, exc.message, attempts), False
        except TransientError as exc:
            return _all_failed(part, "failed_transient", exc.code, exc.message, attempts), False
        except PermanentError as exc:
            refused = exc.code in SPLITTABLE_CATEGORIES and "PROPERTY_DOESNT_EXIST" not in exc.message
            return _all_failed(part, "failed_permanent", exc.code, exc.message, attempts), refused
        try:
            body_out = response.json() if response.content else {}
        except ValueError:
            body_out = {}
        return self._outcomes(part, body_out if isinstance(body_out, dict) else {}, attempts), False

    def _outcomes(self, part: Sequence[Change], body: dict[str, Any], attempts: int) -> list[WriteResult]:
        """Per record: failed if an error names its id, else a success (a 200, or a 207's other ids)."""
        failed: dict[str, tuple[str, str, str]] = {}  # id -> (status, code, message)
        unattributed: tuple[str, str, str] | None = None
        for error in body.get("errors") or []:
            if not isinstance(error, dict):
                continue
            category = str(error.get("category") or "UNKNOWN_ERROR")
            status = "failed_transient" if category in TRANSIENT_CATEGORIES else "failed_permanent"
            message = self._mask(str(error.get("message") or ""))
            context = error.get("context") or {}
            ids = [str(i) for i in context.get("ids") or []] if isinstance(context, dict) else []
            named = context.get("propertyName") if isinstance(context, dict) else None
            if named:
                names = ", ".join(map(str, named)) if isinstance(named, list) else str(named)
                message = f"{message} (properties: {names})"
            outcome = (status, category, message)
            for crm_id in ids:
                if failed.get(crm_id, ("",))[0] != "failed_permanent":  # permanent wins: retrying will not help
                    failed[crm_id] = outcome
            if not ids and unattributed is None:
                unattributed = outcome
        updated = {str(r.get("id")) for r in body.get("results") or [] if isinstance(r, dict)}
        results = []
        for change in part:
            crm_id = str(change.crm_id)
            outcome = failed.get(crm_id) or (unattributed if unattributed and crm_id not in updated else None)
            if outcome is None:
                results.append(WriteResult(change.account_id, change.crm_id, "success", attempts=max(attempts, 1)))
            else:
                results.append(_failed(change, *outcome, attempts))
        return results

    def _isolate(self, part: Sequence[Change]) -> list[WriteResult]:
        """A batch refused as a whole: send its halves, splitting on while exactly one half is refused.

        Both halves refused means the cause is not one record (a wrong property type, say):
        they fail as they are, so a systematic error costs two extra calls, one bad record about
        two per halving.
        """
        middle = len(part) // 2
        halves = [part[:middle], part[middle:]]
        outcomes = [self._batch(half) for half in halves]
        if all(refused for _, refused in outcomes):
            return [result for results, _ in outcomes for result in results]
        results: list[WriteResult] = []
        for half, (half_results, refused) in zip(halves, outcomes, strict=True):
            results += self._isolate(half) if refused and len(half) > 1 else half_results
        return results

    # --- HTTP -------------------------------------------------------------------------------

    def _path(self, resource: str) -> str:
        return f"/crm/v3/objects/{self.object}/{resource}"

    def _call(self, what: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.retry.call(what, lambda: self._send(method, path, **kwargs))
        except DailyLimitReached as exc:  # a read cannot wait for tomorrow: the run fails and is tried again
            raise TransientError(exc.code, exc.message) from None
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError("BAD_RESPONSE", f"not JSON (HTTP {response.status_code})") from exc
        return body if isinstance(body, dict) else {}

    def _send(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if write:
            self.calls += 1
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise TransientError("TIMEOUT", self._mask(f"{method} {path}: {exc}")) from None
        except requests.ConnectionError as exc:
            raise TransientError("CONNECTION_ERROR", self._mask(f"{method} {path}: {exc}")) from None
        except requests.RequestException as exc:
            raise PermanentError("HTTP_ERROR", self._mask(f"{method} {path}: {exc}")) from None
        self._raise_for(response)
        return response

    def _raise_for(self, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        body = _json_or_none(response)
        body = body if isinstance(body, dict) else {}
        category = str(body.get("category") or body.get("errorType") or f"HTTP_{status}")
        message = self._mask(str(body.get("message") or (response.text or "")[:300]))
        if status == 429:
            if str(body.get("policyName") or "").upper() == "DAILY":
                raise DailyLimitReached(message or "the daily API limit is reached")
            raise TransientError("RATE_LIMITS", message, _rate_limit_wait(response))
        if status >= 500 or status in (408, 423):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise TransientError(category, message, LOCKED_WAIT if wait is None and status == 423 else wait)
        if status == 401:
            raise PermanentError(
                "UNAUTHORIZED",
                f"HubSpot refused the access token ({category}: {message}); renew the private app's access token "
                f"and store it as the password of the Airflow connection {self.config.conn_id!r}",
            )
        if status == 403:
            raise PermanentError(
                category,
                f"{message} (the private app needs the crm.objects.{self.object}.read and .write scopes)",
            )
        raise PermanentError(category, message)

    def _mask(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _rate_limit_wait(response: requests.Response) -> float | None:
    """Seconds to wait after a 429: ``Retry-After``, else the rate-limit window, else None (backoff)."""
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    if wait is not None:
        return wait
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    try:
        return min(max(float(interval) / 1000, 0.0), MAX_RETRY_AFTER) if interval else None
    except ValueError:
        return None


def _next_after(page: dict[str, Any]) -> str | None:
    """The cursor of the next page (a result offset as text), None on the last page."""
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    if after is None or not page.get("results"):
        return None
    after = str(after)
    if not after.isdigit():
        raise TransientError("BAD_RESPONSE", f"unexpected search cursor {after[:50]!r}")
    return after


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


def _failed(change: Change, status: str, code: str, message: str, attempts: int = 1) -> WriteResult:
    return WriteResult(change.account_id, change.crm_id, status, code, message, max(attempts, 1))  # type: ignore[arg-type]


def _all_failed(part: Sequence[Change], status: str, code: str, message: str, attempts: int) -> list[WriteResult]:
    return [_failed(c, status, code, message, attempts) for c in part]
