"""HubSpot's CRM API on the official client (``hubspot-api-client``): what the write-back adapter
(``crm/hubspot.py``) and the extraction source (``sources/hubspot.py``) both build on.

The library does the HTTP (urllib3), the bearer token, JSON in and out (its models), the
endpoints, and the retrying: a urllib3 ``Retry`` handed to ``HubSpot(retry=...)`` sends a
request again after a 429, 423, 408 or 5xx, a timeout or a dropped connection, honours
``Retry-After`` (seconds or a date, capped at ``MAX_RETRY_AFTER``) and gives up after
``RetryPolicy.attempts`` requests. What HubSpot needs beyond that is here:

- **the daily limit**: a 429 whose body names the ``DAILY`` policy is not retried (nothing
  succeeds before the limit resets): :class:`DailyLimitReached`, which a read turns into a
  ``PermanentError`` ``DAILY_LIMIT`` (:meth:`DailyLimitReached.read_error`: the task fails at
  once, as Airflow's retries minutes later would fail the same way);
- **the wait** after a 429 without ``Retry-After`` is HubSpot's rate-limit window
  (``X-HubSpot-RateLimit-Interval-Milliseconds``), after a 423 two seconds, else our jittered
  backoff (``RetryPolicy.delay``); sleeping goes through ``RetryPolicy.sleep``;
- **errors** mapped to ``TransientError`` / ``PermanentError`` (401 is ``UNAUTHORIZED``: renew
  the token), the private-app token masked in every message, and the library's DEBUG log of
  every response body kept off;
- **search**: pacing (HubSpot takes 5 searches a second per account), pages followed (past an
  empty page that names a next one, as records deleted since they were indexed leave), and the
  10,000-result cap of one query passed by searching again from the last modification time
  seen (:meth:`HubSpotClient.search_since`);
- **the portal id** (account-info API), which keys the CRM sync state.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from urllib3.exceptions import HTTPError, InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from postsales.errors import AccessRefusedError, PermanentError, TransientError, mask_secrets
from postsales.retry import MAX_RETRY_AFTER, RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.hubapi.com"
SEARCH_PAGE = 100  # search results a page
SEARCH_CAP = 10_000  # the search API returns at most 10,000 results for one query
SEARCH_INTERVAL = 0.25  # seconds between search requests (HubSpot allows 5 a second per account)
LOCKED_WAIT = 2.0  # seconds to wait after a 423 Locked without Retry-After
RETRIED_STATUSES = frozenset({408, 423, 429, *range(500, 600)})
RECORD_ID = "hs_object_id"
MODIFIED = "hs_lastmodifieddate"
NAME = re.compile(r"^[A-Za-z0-9_]+$")  # a property's internal name
WRITE_SCOPES = "the crm.objects.companies.read and crm.objects.companies.write scopes"
# Error categories of a batch (207) worth sending again; anything else a record fails with is permanent.
TRANSIENT_CATEGORIES = frozenset({"RATE_LIMITS", "RATE_LIMIT", "INTERNAL_ERROR", "TIMEOUT", "LOCKED"})


class DailyLimitReached(Exception):
    """429 on the daily policy: nothing succeeds before the limit resets, so no retry (not a TransientError).

    A write fails its remaining batches transiently without sending them (the next run sends
    them); a read fails the task at once: :meth:`read_error`.
    """

    def __init__(self, message: str):
        super().__init__(f"DAILY_LIMIT: {message}")
        self.code, self.message = "DAILY_LIMIT", message

    def read_error(self, then: str, what: str = "") -> PermanentError:
        """The error a read raises: a ``PermanentError`` (a ``NotRetryableError``), so the Airflow
        task fails at once instead of retrying in vain until the limit resets. HubSpot resets daily
        limits at midnight in the account's time zone. ``then``: what picks the work up."""
        return PermanentError(
            self.code,
            f"{what}HubSpot's daily API limit is spent ({self.message}); nothing succeeds before it resets at "
            f"midnight in the HubSpot account's time zone, so the task fails without retries. {then}",
        )


class CompanyAssociations(NamedTuple):
    """The companies a record is associated with (ids), and those of them labelled Primary."""

    companies: list[str]
    primary: list[str]


def property_name(value: str, what: str = "property") -> str:
    if not NAME.match(value or ""):
        raise PermanentError("INVALID_FIELD", f"not a HubSpot {what} name: {value!r}")
    return value


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


@dataclass
class _RetryState:
    """Shared by every copy urllib3 makes of the Retry: the policy, the masking, the retries made."""

    policy: RetryPolicy
    mask: Callable[[str], str]
    retries: int = 0


class _Retry(Retry):
    """urllib3's Retry with HubSpot's daily limit, waits and our sleep (see the module's docstring)."""

    def __init__(self, *args: Any, state: _RetryState | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.state = state

    @classmethod
    def for_policy(cls, state: _RetryState) -> _Retry:
        return cls(
            total=state.policy.attempts - 1,
            status_forcelist=RETRIED_STATUSES,
            # POST too: a search reads, and a batch update sets values (sending it twice is harmless).
            allowed_methods=None,
            raise_on_status=False,  # the last answer reaches the library, which raises it with its body
            retry_after_max=int(MAX_RETRY_AFTER),
            state=state,
        )

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.state = self.state
        return retry

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None) -> _Retry:
        if response is not None and response.status == 429 and _policy_name(response.data) == "DAILY":
            raise MaxRetryError(_pool, url, ResponseError("the daily limit is reached"))  # answered as it came
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        self.state.retries += 1
        cause = f"{type(error).__name__}: {error}" if error is not None else f"HTTP {response.status}"
        attempt, attempts = len(retry.history), self.state.policy.attempts
        where = f"{method} {urlsplit(url or '').path}"
        log.warning("hubspot %s: %s (attempt %s of %s), retrying", where, self.state.mask(cause), attempt, attempts)
        return retry

    def get_retry_after(self, response) -> float | None:
        try:
            wait = super().get_retry_after(response)
        except InvalidHeader:
            wait = None
        if wait is None and response.status == 429:
            wait = _rate_limit_window(response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        if wait is None and response.status == 423:
            wait = LOCKED_WAIT
        return wait

    def get_backoff_time(self) -> float:
        return self.state.policy.delay(len(self.history))

    def sleep(self, response=None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        self.state.policy.sleep(self.get_backoff_time() if wait is None else wait)


def _rate_limit_window(value: str | None) -> float | None:
    """Seconds of HubSpot's rate-limit window header (milliseconds), capped."""
    try:
        return min(max(float(value) / 1000, 0.0), MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


def _policy_name(body: bytes | str | None) -> str:
    """The ``policyName`` of a 429 body (``DAILY``, ``TEN_SECONDLY_ROLLING``, ...), upper case."""
    found = _json_object(body)
    return str(found.get("policyName") or "").upper()


def _json_object(body: bytes | str | None) -> dict[str, Any]:
    try:
        found = json.loads(body) if body else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


@functools.cache
def _api_errors() -> tuple[type[Exception], ...]:
    """The ``ApiException`` of each API package used (each generated package has its own class)."""
    from hubspot.crm.associations.v4 import ApiException as AssociationsError
    from hubspot.crm.companies import ApiException as CompaniesError
    from hubspot.crm.objects import ApiException as ObjectsError
    from hubspot.crm.properties import ApiException as PropertiesError

    return CompaniesError, ObjectsError, AssociationsError, PropertiesError


def _quiet_library_logs() -> None:
    """The generated client logs every response body at DEBUG (``hubspot.*.rest``): customer data,
    and whatever a server echoes back. Its loggers stop at INFO unless someone set them."""
    library = logging.getLogger("hubspot")
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)


def _read(object_type: str) -> str:
    """The read scope of an object type (a custom object's is crm.objects.custom.read)."""
    kind = "custom" if object_type.startswith("p_") or object_type[:1].isdigit() else object_type
    return f"the crm.objects.{kind}.read scope"


def _connection_url(conn: Any) -> str:
    """The connection's host as a URL, as Airflow's HTTP connections read it: a host with its scheme
    as it is; else the schema field's scheme (https without one), and the port field (a connection
    given as a URI, ``http://:token@proxy.example:8080``, or in the UI keeps its port there)."""
    host = str(conn.host).strip().rstrip("/")
    if "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    return f"{host}:{conn.port}" if conn.port and urlsplit(host).port is None else host


def base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


class HubSpotClient:
    """One HubSpot account through a private app's access token."""

    def __init__(
        self,
        access_token: str,
        *,
        conn_id: str = "hubspot_default",
        host: str = DEFAULT_HOST,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        search_interval: float = SEARCH_INTERVAL,
    ):
        if not access_token:
            raise PermanentError("NO_CREDENTIALS", f"no HubSpot access token (connection {conn_id!r})")
        if access_token != access_token.strip():  # http.client would refuse the header, quoting the token
            raise PermanentError(
                "BAD_CREDENTIALS",
                f"the access token of the Airflow connection {conn_id!r} (its password) begins or ends with "
                "whitespace, such as a newline pasted with it. Fix: store the token alone as the password",
            )
        from hubspot import HubSpot

        _quiet_library_logs()
        self._token = access_token
        self.conn_id = conn_id
        self.host = base_url(host)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.search_interval = search_interval
        self.last_attempts = 0  # requests the last call took, urllib3's retries included
        self._state = _RetryState(self.retry, self.mask)
        self._last_search = float("-inf")
        # client_side_validation off: the models would refuse an answer lacking a field HubSpot does not always send.
        self._hub = HubSpot(
            access_token=access_token,
            retry=_Retry.for_policy(self._state),
            host=self.host,
            client_side_validation=False,
        )

    def __repr__(self) -> str:
        return f"HubSpotClient({self.host!r}, conn_id={self.conn_id!r})"

    @classmethod
    def from_connection(cls, conn_id: str, retry: RetryPolicy | None = None, **kwargs: Any) -> HubSpotClient:
        """From the Airflow connection ``conn_id``: ``password`` = the private app's access token.

        The connection's ``host``, when set, replaces ``https://api.hubapi.com`` (a proxy, a test server).
        """
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:  # a task retry would not create it
            raise PermanentError(
                "NO_CREDENTIALS",
                f"no Airflow connection {conn_id!r}. Fix: create it with the HubSpot private-app access token as "
                "its password (docs/crm-sync.md)",
            ) from None
        if not conn.password:
            raise PermanentError(
                "NO_CREDENTIALS", f"connection {conn_id!r} needs the HubSpot private-app access token as its password"
            )
        if conn.host and "host" not in kwargs:
            kwargs["host"] = _connection_url(conn)
        return cls(conn.password, conn_id=conn_id, retry=retry, **kwargs)

    def mask(self, text: str) -> str:
        return mask_secrets(text, [self._token])

    # --- the library's API objects (each owns a connection pool: built once) -------------------

    @functools.cached_property
    def companies(self):
        """``crm.companies.batch_api``: batch read and update of companies."""
        return self._hub.crm.companies.batch_api

    @functools.cached_property
    def company_search(self):
        return self._hub.crm.companies.search_api

    @functools.cached_property
    def object_search(self):
        """``crm.objects.search_api``: search on any object type (deals, custom objects)."""
        return self._hub.crm.objects.search_api

    @functools.cached_property
    def associations(self):
        return self._hub.crm.associations.v4.batch_api

    @functools.cached_property
    def properties(self):
        return self._hub.crm.properties.core_api

    # --- calls --------------------------------------------------------------------------------

    def call(self, what: str, function: Callable[..., Any], *args: Any, scopes: str = WRITE_SCOPES, **kwargs):
        """``function(*args, **kwargs)`` of the library, its errors as ours; ``last_attempts`` says
        how many requests it took (urllib3's retries included). ``scopes``: what a 403 says the
        private app needs."""
        before = self._state.retries
        # Raised after the except blocks, not in them: the library's exception may quote the token,
        # and one raised inside would keep it as the __context__ that error reporters print.
        mapped: Exception
        try:
            return function(*args, _request_timeout=self.timeout, **kwargs)
        except _api_errors() as exc:
            mapped = self._error(exc, scopes)
        except HTTPError as exc:  # retries exhausted on a timeout or a dropped connection
            reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
            code = "TIMEOUT" if "timeout" in type(reason).__name__.lower() else "CONNECTION_ERROR"
            mapped = TransientError(code, self.mask(f"{what}: {type(reason).__name__}: {reason}"))
        finally:
            self.last_attempts = self._state.retries - before + 1
        raise mapped

    def _error(self, exc: Any, scopes: str) -> Exception:
        status = int(exc.status or 0)
        text = exc.body if isinstance(exc.body, str) else (exc.body or b"").decode("utf-8", "replace")
        body = _json_object(text)
        category = str(body.get("category") or body.get("errorType") or f"HTTP_{status}")
        # Masked before a body that is not HubSpot's JSON is cut short: a cut could leave part of the token.
        message = self.mask(str(body.get("message") or "")) or self.mask(text)[:300]
        message = message or self.mask(str(exc.reason or ""))
        if status == 429:
            if str(body.get("policyName") or "").upper() == "DAILY":
                return DailyLimitReached(message or "the daily API limit is reached")
            return TransientError("RATE_LIMITS", message)
        if status == 0:  # no HTTP answer the library could read (TLS, an unreadable body)
            return TransientError("BAD_RESPONSE", message)
        if status >= 500 or status in (408, 423):
            return TransientError(category, message)
        if status == 401:
            return AccessRefusedError(
                "UNAUTHORIZED",
                f"HubSpot refused the access token ({category}: {message}); renew the private app's access token "
                f"and store it as the password of the Airflow connection {self.conn_id!r}",
            )
        if status == 403:
            return AccessRefusedError(category, f"{message} (the private app needs {scopes})")
        return PermanentError(category, message)

    @functools.cached_property
    def portal_id(self) -> str:
        """The HubSpot account (portal, hub) id of the token, from the account-info API."""
        details = self.call(
            "hubspot account",
            self.companies.api_client.call_api,
            "/account-info/v3/details",
            "GET",
            auth_settings=["oauth2"],
            response_types_map={200: "object"},
            _return_http_data_only=True,
            scopes="the oauth scope, which HubSpot lists for the account-info API",
        )
        portal = (details or {}).get("portalId") if isinstance(details, dict) else None
        if portal is None or not str(portal).isdigit():
            raise TransientError("BAD_RESPONSE", "the account-info API named no portalId")
        return str(portal)

    def property_names(self, object_type: str) -> set[str]:
        """Every property the account defines on ``object_type`` (internal names)."""
        found = self.call("hubspot properties", self.properties.get_all, object_type, scopes=_read(object_type))
        return {str(p.name) for p in found.results or []}

    # --- search -------------------------------------------------------------------------------

    def search_page(self, object_type: str, request: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        """One page: its records (``{"id", "properties"}``) and the cursor of the next page (None: the last)."""
        self._throttle_search()
        if object_type == "companies":
            from hubspot.crm.companies import PublicObjectSearchRequest

            page = self.call(
                "hubspot search",
                self.company_search.do_search,
                PublicObjectSearchRequest(**request),
                scopes=_read("companies"),
            )
        else:
            from hubspot.crm.objects import PublicObjectSearchRequest

            page = self.call(
                "hubspot search",
                self.object_search.do_search,
                object_type,
                PublicObjectSearchRequest(**request),
                scopes=_read(object_type),
            )
        records = [{"id": str(r.id), "properties": dict(r.properties or {})} for r in page.results or []]
        after = page.paging.next.after if page.paging and page.paging.next else None
        # An empty page with a next cursor is followed, not taken as the end: the search pages by
        # offset over HubSpot's index and loads a page's records after, so records deleted (or
        # archived) since they were indexed leave a page short or empty while later offsets hold
        # more. Failing instead would not help: a retry gets the same empty page. The cursor must
        # still move forward (below), and HubSpot refuses offsets past 10,000.
        if after is None:
            return records, None
        after = str(after)
        if not after.isdigit():
            raise TransientError("BAD_RESPONSE", f"unexpected search cursor {after[:50]!r}")
        if int(after) <= int(request.get("after") or 0):  # the same page again and again, forever
            raise TransientError("BAD_RESPONSE", f"the search cursor {after} does not move past {request.get('after')}")
        return records, after

    def search(self, object_type: str, filters: list[dict[str, Any]], properties: Sequence[str]) -> Iterator[dict]:
        """Every record matching ``filters`` (one filter group), pages followed."""
        request = {
            "filter_groups": [{"filters": filters}],
            "properties": list(properties),
            "limit": SEARCH_PAGE,
        }
        after: str | None = None
        while True:
            records, after = self.search_page(object_type, request | ({"after": after} if after else {}))
            yield from records
            if after is None:
                return

    def search_since(
        self,
        object_type: str,
        since: datetime,
        properties: Sequence[str],
        *,
        until: datetime | None = None,
        filters: Sequence[dict[str, Any]] = (),
        modified: str = MODIFIED,
        restart_each_page: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Records with ``modified`` at or after ``since`` (and before ``until``), oldest first.

        The search API stops at 10,000 results a query: the search then starts again from the
        last ``modified`` value seen (inclusive), skipping the records already yielded at it.
        With ``restart_each_page`` it starts again after every page whose last record is newer
        than the bound: a record modified while the pages are read leaves the results (or moves
        to their end) without shifting an unread record past the next page's offset.
        """
        names = list(dict.fromkeys([RECORD_ID, modified, *(property_name(p) for p in properties)]))
        window = [{"propertyName": modified, "operator": "LT", "value": str(epoch_ms(until))}] if until else []
        bound = epoch_ms(since)
        yielded_at_bound: set[str] = set()  # ids already yielded whose modification time is ``bound``
        while True:
            request = {
                "filter_groups": [
                    {
                        "filters": [
                            {"propertyName": modified, "operator": "GTE", "value": str(bound)},
                            *window,
                            *filters,
                        ]
                    }
                ],
                "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
                "properties": names,
                "limit": SEARCH_PAGE,
            }
            last_ms, last_ids = bound, set(yielded_at_bound)
            after: str | None = None
            while True:
                records, after = self.search_page(object_type, request | ({"after": after} if after else {}))
                for record in records:
                    stamp = parse_timestamp(record["properties"].get(modified))
                    if stamp == bound and record["id"] in yielded_at_bound:
                        continue
                    yield record
                    if stamp is not None and stamp > last_ms:
                        last_ms, last_ids = stamp, set()
                    if stamp == last_ms:
                        last_ids.add(record["id"])
                if after is None:
                    return
                if int(after) + SEARCH_PAGE > SEARCH_CAP or (restart_each_page and last_ms > bound):
                    break
            if last_ms == bound:
                raise PermanentError(
                    "SEARCH_CAP", f"more than {SEARCH_CAP} {object_type} modified at {bound} ms: cannot page past them"
                )
            if not restart_each_page:
                log.info("hubspot search: %s results reached, searching again from %s ms", SEARCH_CAP, last_ms)
            bound, yielded_at_bound = last_ms, last_ids

    def _throttle_search(self) -> None:
        wait = self._last_search + self.search_interval - time.monotonic()
        if wait > 0:
            self.retry.sleep(wait)
        self._last_search = time.monotonic()

    # --- batch reads ----------------------------------------------------------------------------

    def read_companies(self, ids: Sequence[str], properties: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``properties`` of the companies ``ids`` (at most 100) that exist, by id.

        An unknown id is simply absent; a transient error of part of the batch (in a 207) is
        worth the whole read again later, so it raises.
        """
        from hubspot.crm.companies import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        body = BatchReadInputSimplePublicObjectId(
            properties=list(properties), inputs=[SimplePublicObjectId(id=i) for i in ids]
        )
        page = self.call("hubspot read", self.companies.read, body, archived="false", scopes=_read("companies"))
        for error in getattr(page, "errors", None) or []:
            category = str(error.category or "")
            if category in TRANSIENT_CATEGORIES:
                raise TransientError(category, self.mask(str(error.message or "")))
        return {str(r.id): dict(r.properties or {}) for r in page.results or []}

    def company_associations(self, object_type: str, ids: Sequence[str]) -> dict[str, CompanyAssociations]:
        """The companies each record of ``object_type`` (at most 1,000 ids) is associated with, by
        record id: all of them, and those labelled ``Primary``. A record with none is absent
        (HubSpot names it among the errors, ``NO_ASSOCIATIONS_FOUND``); a transient error of part of
        the batch raises, as it could leave a record without the companies it has.
        """
        from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest

        body = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": i} for i in ids])
        page = self.call(
            "hubspot associations",
            self.associations.get_page,
            object_type,
            "companies",
            body,
            scopes=f"{_read(object_type)} and {_read('companies')}",
        )
        for error in getattr(page, "errors", None) or []:
            category = str(error.category or "")
            if category in TRANSIENT_CATEGORIES:
                raise TransientError(category, self.mask(str(error.message or "")))
        found: dict[str, CompanyAssociations] = {}
        for result in page.results or []:
            targets = result.to or []
            primary = [
                t for t in targets if any(str(a.label or "").lower() == "primary" for a in t.association_types or [])
            ]
            found[str(result._from.id)] = CompanyAssociations(
                [str(t.to_object_id) for t in targets], [str(t.to_object_id) for t in primary]
            )
        return found
