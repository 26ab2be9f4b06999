"""Salesforce through the Airflow Salesforce provider: ``SalesforceHook``, i.e. simple-salesforce.

The library logs in (any form the provider's ``salesforce`` connection supports: username,
password and security token; IP filtering; the OAuth 2.0 username-password, JWT bearer and
client-credentials flows), holds the session, logs in again when a REST call finds it expired,
and sends the requests: SOQL pages, ``restful`` (sObject Collections), ``bulk2`` (Bulk API 2.0).
Both sides that talk to Salesforce build on :class:`SalesforceClient`: the extraction source
(``postsales.sources.salesforce``) and the write-back adapter (``postsales.crm.salesforce``). It
sits beside both packages so that reading from Salesforce does not import the CRM package.

What this module adds is what no library does:

- **The connection checked first**: a connection that matches no login form fails naming the
  conn_id, the missing field and the fix (:func:`connection_problem`), instead of the library's
  ``TypeError`` or a login sent to the wrong endpoint.
- **Our error taxonomy** (:meth:`SalesforceClient.error`): 429, 5xx, a 403 ``REQUEST_LIMIT_EXCEEDED``
  on a concurrent-request limit, timeouts and connection errors are
  :class:`~postsales.errors.TransientError`, retried by :class:`~postsales.retry.RetryPolicy` (a
  ``Retry-After`` wins); a refused login, a 401 that logging in again did not cure, and other 4xx
  are :class:`~postsales.errors.PermanentError`. Any other 403 ``REQUEST_LIMIT_EXCEEDED`` (``TotalRequests
  Limit exceeded.``) is the org's rolling 24-hour API request limit, spent: nothing succeeds until
  it frees up, so it is not retried (:class:`DailyLimitReached`, a ``PermanentError``).
- **An object's fields** (:meth:`SalesforceClient.describe_fields`, its sObject describe): the
  adapter formats its key for the key field's type, the source checks its mapping against them.
- **SOQL pages retried one at a time** (:meth:`SalesforceClient.query`): ``query_all_iter`` would
  restart the whole query on a failed page.
- **A timeout on every request** (simple-salesforce sets none) and the write requests counted.
- **No secret** (password, security token, consumer secret, private key, session id) in a log
  line or an exception message (:meth:`SalesforceClient.mask`), nor in an exception's chain: the
  library's exception is not kept as the ``__cause__`` or ``__context__`` of ours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests

from postsales.errors import AccessRefusedError, PermanentError, TransientError, mask_secrets
from postsales.retry import RetryPolicy, retry_after_seconds

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

log = logging.getLogger(__name__)

T = TypeVar("T")

# Salesforce status codes worth sending again: lock contention, limits, timeouts, unavailability.
TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "REQUEST_RUNNING_TOO_LONG",
        "QUERY_TIMEOUT",
        "SERVER_UNAVAILABLE",
        "SERVICE_UNAVAILABLE",
    }
)
SECRET_EXTRAS = ("security_token", "consumer_secret", "private_key")
CONNECTION_DOCS = "docs/crm-sync.md#the-salesforce-connection"


def is_transient(code: Any) -> bool:
    return code in TRANSIENT_CODES


class DailyLimitReached(PermanentError):
    """403 ``REQUEST_LIMIT_EXCEEDED`` on the org's rolling 24-hour API request limit (``TotalRequests``).

    No request succeeds until the limit frees up, hours later: not retried within the task
    (not a ``TransientError``) nor by Airflow (a ``NotRetryableError``). A read fails its task at
    once; the write-back adapter fails the batch that met it and every remaining one transiently
    without sending them, for the next run to send.
    """

    def __init__(self, detail: str):
        super().__init__(
            "REQUEST_LIMIT_EXCEEDED",
            f"the Salesforce org's daily API request limit (a rolling 24 hours) is spent ({detail or 'no detail'}); "
            "not retried, as no request succeeds until it frees up: the next scheduled run will pick it up "
            "(Salesforce: Setup > Company Information shows the API requests of the last 24 hours)",
        )


def warn_if_api_version(rules_file: str, api_version: str | None, conn_id: str) -> None:
    """The rules files' ``api_version`` is no longer read: the connection's extra ``version`` sets it."""
    if api_version:
        log.warning(
            "%s: salesforce.api_version %s is no longer read; the API version is the Airflow connection %r's "
            "extra 'version' (simple-salesforce's default when absent). Fix: move it there and remove it from %s.",
            rules_file,
            api_version,
            conn_id,
            rules_file,
        )


class SalesforceClient:
    """One logged-in simple-salesforce ``Salesforce`` (:attr:`sf`), with our retries, errors and masking."""

    def __init__(
        self,
        sf: Salesforce | None,
        conn_id: str,
        retry: RetryPolicy | None = None,
        secrets: tuple = (),
        session: _Session | None = None,
    ):
        self.sf = sf  # None until logged in
        self.conn_id = conn_id  # named in the message of a refused login or session
        self.retry = retry or RetryPolicy()
        self.session = session or getattr(sf, "session", None)
        self._secrets = [s for s in secrets if s]

    def __repr__(self) -> str:
        return f"SalesforceClient({self.instance_url!r})"

    @classmethod
    def from_connection(
        cls, conn_id: str, retry: RetryPolicy | None = None, *, timeout: tuple[float, float] = (10.0, 120.0)
    ) -> SalesforceClient:
        """Logged in through ``SalesforceHook(conn_id)``, with the connection as the provider documents it.

        One addition: a connection without a login whose password is an access token and whose
        extra holds ``instance_url`` (or ``instance``) is the provider's direct session, the
        token passed as the hook's ``session_id``. It cannot log in again when the token expires.
        """
        from airflow.sdk.exceptions import AirflowNotFoundException

        retry = retry or RetryPolicy()
        hook_class = _hook_class()
        try:
            conn = hook_class.get_connection(conn_id)
        except AirflowNotFoundException:  # a task retry would not create it
            raise PermanentError(
                "SALESFORCE_CONNECTION",
                f"no Airflow connection {conn_id!r}. Fix: create it (conn_type salesforce), {CONNECTION_DOCS}.",
            ) from None
        problem = connection_problem(conn)
        if problem:
            raise PermanentError("SALESFORCE_CONNECTION", f"Airflow connection {conn_id!r}: {problem}")
        extra = conn.extra_dejson or {}
        direct = _is_direct_session(conn)
        session = _Session(timeout)
        proxies = _extra(extra, "proxies") or {}
        # simple-salesforce ignores proxies given with a session, logging them (credentials and all):
        # they go on the session instead, and the hook passes none.
        session.proxies.update(proxies)
        hook = hook_class(conn_id, session_id=conn.password if direct else None, session=session)
        proxy_passwords = [urlsplit(str(url)).password for url in proxies.values()]
        secrets = (conn.password, *(_extra(extra, name) for name in SECRET_EXTRAS), *proxy_passwords)
        client = cls(None, conn_id, retry, secrets, session)
        client.sf = client.call("salesforce login", hook.get_conn)
        log.info("salesforce: connection %r, %s, instance %s", conn_id, login_form(conn), client.instance_url)
        return client

    # --- the surface ------------------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}" if self.sf is not None else ""

    @property
    def writes(self) -> int:
        """Write requests sent to the REST API (POST, PATCH, PUT, DELETE): every attempt, a re-login's too."""
        return getattr(self.session, "writes", 0)

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record a SOQL query returns (pages followed), without the ``attributes`` entry.

        A generator: nothing is requested until it is iterated, then one page at a time, each
        retried on its own.
        """
        page = self.call("salesforce query", lambda: self.sf.query(soql))
        followed: set[str] = set()
        while True:
            for record in page.get("records") or []:
                yield {k: v for k, v in record.items() if k != "attributes"}
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            if next_url in followed:  # the same page again and again, forever
                raise TransientError("BAD_RESPONSE", f"the query's next page {next_url} was already read")
            followed.add(next_url)
            page = self.call("salesforce query", lambda url=next_url: self.sf.query_more(url, identifier_is_url=True))

    def describe_fields(self, object_name: str) -> dict[str, dict[str, Any]]:
        """The fields of ``object_name`` the user may see, by API name: its sObject describe
        (``GET sobjects/<object>/describe``, one request), each field as Salesforce describes it
        (``type``: string, double, int, datetime, ...; ``precision``, ``scale``, ``digits``)."""
        found = self.call(f"salesforce describe {object_name}", lambda: getattr(self.sf, object_name).describe())
        fields = found.get("fields") if isinstance(found, dict) else None
        if not isinstance(fields, list):
            raise TransientError("BAD_RESPONSE", f"the describe of {object_name} lists no fields")
        return {str(f["name"]): f for f in fields if isinstance(f, dict) and f.get("name")}

    def call(self, what: str, function: Callable[[], T]) -> T:
        """:meth:`attempt`, retried by the policy while it fails transiently."""
        return self.retry.call(what, lambda: self.attempt(function))

    def attempt(self, function: Callable[[], T]) -> T:
        """``function()`` (a library call), its failure raised as a ``TransientError`` or ``PermanentError``.

        Raised outside the ``except`` block, so the library's exception, which may quote what
        :meth:`mask` hides, is neither its ``__cause__`` nor its ``__context__``: an error
        reporter or a chained traceback would show it.
        """
        try:
            return function()
        except Exception as exc:
            mapped = self.error(exc)
            if mapped is None:
                raise
        raise mapped

    def error(self, exc: Exception) -> TransientError | PermanentError | None:
        """Our taxonomy for a simple-salesforce or ``requests`` exception; None for anything else."""
        from simple_salesforce.exceptions import (
            SalesforceAuthenticationFailed,
            SalesforceBulkV2LoadError,
            SalesforceError,
            SalesforceOperationError,
        )

        if isinstance(exc, requests.Timeout):
            return TransientError("TIMEOUT", self.mask(f"no answer in time: {exc}"))
        if isinstance(exc, requests.ConnectionError):
            return TransientError("CONNECTION_ERROR", self.mask(str(exc)))
        if isinstance(exc, requests.JSONDecodeError):
            return TransientError("BAD_RESPONSE", "the answer is not JSON")
        if isinstance(exc, SalesforceAuthenticationFailed):
            return self._login_error(exc)
        if isinstance(exc, SalesforceError):
            return self._status_error(exc)
        if isinstance(exc, SalesforceBulkV2LoadError):
            return TransientError("BULK_UPLOAD_FAILED", self.mask(str(exc)))
        if isinstance(exc, SalesforceOperationError):  # a Bulk 2.0 job that failed, was aborted or timed out
            code = "BULK_TIMEOUT" if str(exc).startswith("Job timeout") else "BULK_JOB_FAILED"
            return TransientError(code, self.mask(str(exc)))
        if isinstance(exc, requests.RequestException):
            return PermanentError("HTTP_ERROR", self.mask(f"{type(exc).__name__}: {exc}"))
        return None

    def log_in_again(self) -> bool:
        """A new session, for the requests the library does not renew one for itself (Bulk API 2.0's).

        False when the connection cannot log in (a direct session); a failed login raises.
        """
        if getattr(self.sf, "_salesforce_login_partial", None) is None:
            return False
        self.call("salesforce login", self.sf._refresh_session)
        return True

    def mask(self, text: str) -> str:
        """``text`` with every secret of the connection and every session id used replaced by ``***``."""
        sessions = [getattr(self.sf, "session_id", None), *getattr(self.session, "bearer_tokens", ())]
        return mask_secrets(text, [*self._secrets, *sessions])

    # --- the taxonomy -----------------------------------------------------------------------

    def _login_error(self, exc: Any) -> TransientError | PermanentError:
        code, message = exc.code, self.mask(exc.auth_message or "")
        # The code is Salesforce's (INVALID_LOGIN, invalid_grant: a SOAP fault comes with HTTP 500)
        # or, for an answer that is no fault (a proxy's error page), the HTTP status or nothing.
        last = getattr(self.session, "last_response", None)
        status = code if isinstance(code, int) else getattr(last, "status_code", 0)
        unavailable = not isinstance(code, str) and (status == 429 or status >= 500)
        if unavailable or is_transient(code):
            return TransientError(f"HTTP_{status}" if unavailable else str(code), f"login: {message[:300]}")
        return AccessRefusedError(
            str(code or "LOGIN_FAILED").replace(" ", "_").upper(),
            f"{message} (Salesforce refused the login of the Airflow connection {self.conn_id!r}: fix its "
            f"credentials, {CONNECTION_DOCS})",
        )

    def _status_error(self, exc: Any) -> TransientError | PermanentError:
        # simple-salesforce raises a SalesforceError subclass per status (403: SalesforceRefusedRequest),
        # its content the parsed error body: [{"errorCode": ..., "message": ...}].
        status = exc.status
        code, message = _error_of(exc.content, status, self.mask)
        last = getattr(self.session, "last_response", None)
        same = last is not None and last.status_code == status
        retry_after = retry_after_seconds(last.headers.get("Retry-After")) if same else None
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED" and "concurrent" not in message.lower():
            return DailyLimitReached(message)
        if status == 429 or status >= 500 or (status == 403 and code == "REQUEST_LIMIT_EXCEEDED"):
            return TransientError(code, message, retry_after)
        if status == 401:
            code = code if code != f"HTTP_{status}" else "INVALID_SESSION_ID"
            if self.sf is not None and getattr(self.sf, "auth_type", None) == "direct":
                fix = "store a fresh access token as its password, or give it a login"
            else:
                fix = "logging in again did not help: check that its user may use the API"
            return AccessRefusedError(
                code, f"{message} (Salesforce refused the session of the Airflow connection {self.conn_id!r}: {fix})"
            )
        if status == 403:  # the user or org may not do this at all (INSUFFICIENT_ACCESS, API_DISABLED_FOR_ORG)
            return AccessRefusedError(code, message)
        return PermanentError(code, message)


def _hook_class() -> type:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    class Hook(SalesforceHook):
        """The provider's hook, but the extra ``proxies`` left to the session (see ``from_connection``)."""

        def _get_field(self, extras: dict, field_name: str) -> Any:
            return None if field_name == "proxies" else super()._get_field(extras, field_name)

    return Hook


class _Session(requests.Session):
    """The session simple-salesforce sends through.

    A timeout on every request (the library sets none, and a request could hang the task); the
    write requests to the REST API counted; every session id sent kept, to be masked even after
    the library replaced it; the last response kept, because the library's exceptions drop the
    headers and with them ``Retry-After``.
    """

    def __init__(self, timeout: tuple[float, float]):
        super().__init__()
        self.timeout = timeout
        self.writes = 0
        self.bearer_tokens: set[str] = set()
        self.last_response: requests.Response | None = None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        authorization = (kwargs.get("headers") or {}).get("Authorization") or ""
        if authorization.startswith("Bearer "):
            self.bearer_tokens.add(authorization.removeprefix("Bearer "))
        if str(method).upper() != "GET" and "/services/data/" in str(url):
            self.writes += 1
        self.last_response = None
        self.last_response = super().request(method, url, *args, **kwargs)
        return self.last_response


# --- the connection ---------------------------------------------------------------------------


def _extra(extra: dict, name: str) -> Any:
    """An extra field as the provider reads it: its name, else the older ``extra__salesforce__`` one."""
    if name in extra:
        return extra[name] or None
    return extra.get(f"extra__salesforce__{name}") or None


def _is_direct_session(conn: Any) -> bool:
    extra = conn.extra_dejson or {}
    return bool(not conn.login and conn.password and (_extra(extra, "instance_url") or _extra(extra, "instance")))


def login_form(conn: Any) -> str | None:
    """The login simple-salesforce runs for the connection (its order of preference), or None if none fits."""
    extra = conn.extra_dejson or {}
    user, password = conn.login or None, conn.password or None
    key, secret = _extra(extra, "consumer_key"), _extra(extra, "consumer_secret")
    if user and password and _extra(extra, "security_token"):
        return "username, password and security token"
    if _is_direct_session(conn):
        return "access token (direct session)"
    if user and password and _extra(extra, "organization_id"):
        return "username and password, IP filtering"
    if user and password and key and secret:
        return "OAuth 2.0 username-password flow"
    if user and key and (_extra(extra, "private_key") or _extra(extra, "private_key_file_path")):
        return "OAuth 2.0 JWT bearer flow"
    if key and secret and (_extra(extra, "domain") or "login") not in ("login", "test"):
        return "OAuth 2.0 client-credentials flow"
    return None


def connection_problem(conn: Any) -> str | None:
    """What the connection lacks to log in, and the fix; None when a login form fits."""
    extra = conn.extra_dejson or {}
    proxies = _extra(extra, "proxies")
    if proxies and not (isinstance(proxies, dict) and all(isinstance(url, str) for url in proxies.values())):
        return (  # not quoted: a proxy URL may hold a password
            'extra proxies is not a mapping of scheme to proxy URL. Fix: write it {"https": '
            '"http://proxy.example.com:3128"}, as requests takes it.'
        )
    form = login_form(conn)
    if form:
        # simple-salesforce logs in at https://<domain>.salesforce.com (the JWT bearer flow at
        # https://<instance_url>.salesforce.com when instance_url is set): a host or URL there is a
        # host that does not exist, a connection error retried as if Salesforce were down.
        used = {"domain": _extra(extra, "domain")} if form != "access token (direct session)" else {}
        if form == "OAuth 2.0 JWT bearer flow" and _extra(extra, "instance_url"):
            used["instance_url"] = _extra(extra, "instance_url")
        for field, value in used.items():
            if value and ("/" in value or value.lower().endswith(".salesforce.com")):
                host = urlsplit(value if "://" in value else f"//{value}").hostname or ""
                return (
                    f"extra {field} {value!r} is a host or URL, but the login goes to https://<{field}>"
                    f".salesforce.com. Fix: write {host.removesuffix('.salesforce.com')!r} (the My Domain without "
                    f".salesforce.com, or login, or test)"
                    + (", or remove it: the JWT bearer flow needs no instance_url" if field == "instance_url" else "")
                    + f" ({CONNECTION_DOCS})."
                )
        instance_url = _extra(extra, "instance_url")
        if _is_direct_session(conn) and instance_url and "://" not in instance_url:
            return f"extra instance_url {instance_url!r} is not a URL. Fix: write it https://{instance_url}."
        if _is_direct_session(conn) and conn.password != conn.password.strip():  # a header cannot hold it
            return (
                "its password (the access token) begins or ends with whitespace, such as a newline pasted with "
                "it. Fix: store the token alone as the password."
            )
        return None
    user, password = conn.login or None, conn.password or None
    key, secret = _extra(extra, "consumer_key"), _extra(extra, "consumer_secret")
    private = _extra(extra, "private_key") or _extra(extra, "private_key_file_path")
    if not key and extra.get("client_id") and extra.get("client_secret"):
        missing, fix = (
            "extra consumer_key and consumer_secret (client_id/client_secret are this project's former shape)",
            "rename client_id to consumer_key and client_secret to consumer_secret, and set domain to the org's "
            "My Domain without .salesforce.com (e.g. acme.my)",
        )
    elif not user and password and conn.host:
        missing, fix = (
            "a login (host + password as an access token is this project's former shape)",
            "set login (username), password and extra security_token; or keep the token as the password and "
            f"move the host to extra instance_url (https://{conn.host.split('://')[-1].strip('/')})",
        )
    elif key and private:
        missing, fix = "login", "set login to the username of the user the JWT bearer flow acts as"
    elif key and secret:
        missing, fix = (
            "extra domain (the org's My Domain)",
            "set domain to the My Domain without .salesforce.com (e.g. acme.my): the client-credentials flow "
            "cannot use login or test; or set login and password for the username-password flow",
        )
    elif key and user:
        missing, fix = (
            "extra private_key (or private_key_file_path)",
            "set the connected app's private key for the JWT bearer flow, or password and extra consumer_secret "
            "for the username-password flow",
        )
    elif key:
        missing, fix = "extra consumer_secret", "set the connected app's consumer secret and extra domain (My Domain)"
    elif user and password:
        missing, fix = (
            "extra security_token",
            "set the user's security token (Salesforce: Settings > Reset My Security Token), or extra "
            "organization_id if the org trusts this IP",
        )
    elif user:
        missing, fix = "password", "set the user's password and extra security_token"
    else:
        missing, fix = (
            "login",
            "set login (username), password and extra security_token; or login, extra consumer_key and "
            "private_key for the JWT bearer flow",
        )
    return f"no Salesforce login possible: missing {missing}. Fix: {fix} ({CONNECTION_DOCS})."


def _error_of(content: Any, status: int, mask: Callable[[str], str]) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body: ``[{"errorCode": ..., "message": ...}]``,
    masked before it is cut short (a cut could leave part of a secret that masking would not know)."""
    fallback = f"HTTP_{status}"
    body = content[0] if isinstance(content, list) and content else content
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("error") or fallback
        message = body.get("message") or body.get("error_description") or ""
        return mask(str(code)), mask(str(message))[:1000]
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return fallback, mask(str(body or ""))[:300]
