"""The Salesforce REST API client: its connection, its requests, its SOQL queries (``requests``, no Salesforce library).

Both sides that talk to Salesforce build on :class:`SalesforceClient`: the extraction source
(``postsales.sources.salesforce``, SOQL reads) and the CRM write-back adapter
(``postsales.crm.salesforce``: current values, sObject Collections, Bulk API 2.0). It is one
module beside both packages rather than inside either, so that reading from Salesforce does
not import the CRM package, and so that the client can be rebuilt (on the Airflow Salesforce
provider's hook, say) behind the same small surface: :meth:`~SalesforceClient.from_connection`,
:meth:`~SalesforceClient.query`, :meth:`~SalesforceClient.call` and :meth:`~SalesforceClient.send`.

- **Connection**: the Airflow connection's host is the instance URL and its password an access
  token, or its extra holds ``client_id``/``client_secret``/``domain`` for the OAuth 2.0
  client-credentials flow (:class:`ClientCredentials`), which is run again for a fresh token.
- **Errors of a whole request**: 429, 5xx, timeouts, connection errors and 403
  ``REQUEST_LIMIT_EXCEEDED`` are :class:`~postsales.errors.TransientError`, retried by
  :class:`~postsales.retry.RetryPolicy` (a ``Retry-After`` wins); 401 ``INVALID_SESSION_ID``
  refreshes the token once (when a refresher is known, i.e. the client-credentials flow) and
  sends the request again; other 4xx are :class:`~postsales.errors.PermanentError`.
- **Queries**: every record a SOQL query returns, following ``nextRecordsUrl``.

The access token (and the client secret) never reach a log line or an exception message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests

from postsales.errors import PermanentError, TransientError
from postsales.retry import RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)

TokenRefresher = Callable[[], str]


class SalesforceClient:
    """Authenticated requests to one Salesforce org's REST API (``/services/data/v<api_version>``)."""

    def __init__(
        self,
        instance_url: str,
        access_token: str,
        conn_id: str,
        api_version: str,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        token_refresher: TokenRefresher | None = None,
        *,
        timeout: tuple[float, float] = (10.0, 120.0),
    ):
        if not instance_url:
            raise PermanentError("NO_INSTANCE_URL", "no Salesforce instance URL (the connection's host)")
        if not access_token:
            raise PermanentError("NO_CREDENTIALS", "no Salesforce access token")
        self.instance_url = _base_url(instance_url)
        self._token = access_token
        self._secrets: list[str] = [access_token]
        self.conn_id, self.api_version = conn_id, api_version  # the connection is named in a 401's message
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.token_refresher = token_refresher
        self.timeout = timeout
        self.writes = 0  # requests sent with write=True (every attempt, a 401's second try too)

    def __repr__(self) -> str:
        return f"SalesforceClient({self.instance_url!r})"

    @classmethod
    def from_connection(
        cls, conn_id: str, api_version: str, retry: RetryPolicy | None = None, **kwargs: Any
    ) -> SalesforceClient:
        """From the Airflow connection ``conn_id``.

        Either ``host`` = the instance URL and ``password`` = an access token, or ``extra``
        ``{"client_id", "client_secret", "domain"}`` for the OAuth 2.0 client-credentials flow
        (``domain``: the My Domain host; the connection's host when absent). With client
        credentials an expired token is refreshed by running the flow again.
        """
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson or {}
        retry = retry or RetryPolicy()
        session = kwargs.pop("session", None) or requests.Session()
        if extra.get("client_id") and extra.get("client_secret"):
            domain = extra.get("domain") or conn.host
            if not domain:
                raise PermanentError("NO_INSTANCE_URL", f"connection {conn_id!r}: no domain nor host")
            credentials = ClientCredentials(
                _login_url(domain), extra["client_id"], extra["client_secret"], session, retry
            )
            token, instance_url = credentials.token()
            client = cls(
                instance_url or _base_url(conn.host or domain),
                token,
                conn_id,
                api_version,
                retry,
                session=session,
                token_refresher=lambda: credentials.token()[0],
                **kwargs,
            )
            client._secrets.append(credentials.client_secret)
            return client
        if not conn.host or not conn.password:
            raise PermanentError(
                "NO_CREDENTIALS",
                f"connection {conn_id!r} needs host (instance URL) and password (access token), "
                "or extra client_id/client_secret/domain",
            )
        return cls(conn.host, conn.password, conn_id, api_version, retry, session=session, **kwargs)

    # --- the surface ------------------------------------------------------------------------

    def path(self, resource: str) -> str:
        """The path of a REST resource of this API version: ``query``, ``composite/sobjects``, ..."""
        return f"/services/data/v{self.api_version}/{resource}"

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record a SOQL query returns (pages followed), without the ``attributes`` entry.

        A generator: nothing is requested until it is iterated, then one page at a time.
        """
        page = self.call("salesforce query", "GET", self.path("query"), params={"q": soql})
        while True:
            for record in page.get("records") or []:
                yield {k: v for k, v in record.items() if k != "attributes"}
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self.call("salesforce query", "GET", next_url)

    def call(self, what: str, method: str, url: str, *, parse: bool = True, **kwargs: Any) -> Any:
        """:meth:`send`, retried by the policy; the JSON body (``{}`` when empty), or the response if not ``parse``."""
        response = self.retry.call(what, lambda: self.send(method, url, **kwargs))
        return self._json(response) if parse else response

    def send(
        self, method: str, url: str, *, write: bool = False, parse: bool = False, **kwargs: Any
    ) -> requests.Response | Any:
        """One request (and, on an expired session with a refresher, one more with a fresh token).

        ``url``: a path on the instance or a full URL. ``write``: counted in :attr:`writes`.
        ``parse``: the JSON body instead of the response (a non-JSON body is a ``TransientError``).
        """
        refreshed = False
        while True:
            response = self._request(method, url, write=write, **kwargs)
            if response.status_code == 401 and self.token_refresher and not refreshed:
                log.info("salesforce: session expired, refreshing the access token")
                self._set_token(self.token_refresher())
                refreshed = True
                continue
            self._raise_for(response)
            return self._json(response) if parse else response

    def mask(self, text: str) -> str:
        """``text`` with every token and secret this client knows replaced by ``***``."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- HTTP -------------------------------------------------------------------------------

    def _json(self, response: requests.Response) -> Any:
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError("BAD_RESPONSE", f"not JSON (HTTP {response.status_code})") from exc

    def _request(self, method: str, url: str, *, write: bool, headers: dict | None = None, **kwargs: Any):
        full = url if url.startswith("http") else f"{self.instance_url}{url}"
        all_headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"} | (headers or {})
        if write:
            self.writes += 1
        try:
            return self.session.request(method, full, headers=all_headers, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise TransientError("TIMEOUT", self.mask(f"{method} {urlsplit(full).path}: {exc}")) from None
        except requests.ConnectionError as exc:
            raise TransientError("CONNECTION_ERROR", self.mask(f"{method} {urlsplit(full).path}: {exc}")) from None
        except requests.RequestException as exc:
            raise PermanentError("HTTP_ERROR", self.mask(f"{method} {urlsplit(full).path}: {exc}")) from None

    def _raise_for(self, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        code, message = _error_of(response)
        code, message = self.mask(code), self.mask(message)
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429 or status >= 500 or (status == 403 and code == "REQUEST_LIMIT_EXCEEDED"):
            raise TransientError(code, message, retry_after)
        if status == 401:  # without a token refresher, or the refreshed token was refused too
            raise PermanentError(
                code if code != f"HTTP_{status}" else "INVALID_SESSION_ID",
                f"{message} (Salesforce refused the access token: store a valid one as the password of the "
                f"Airflow connection {self.conn_id!r}, or client credentials in its extra)",
            )
        raise PermanentError(code, message)

    def _set_token(self, token: str) -> None:
        if not token:
            raise PermanentError("INVALID_SESSION_ID", "the token refresher returned no token")
        self._token = token
        self._secrets.append(token)


class ClientCredentials:
    """The OAuth 2.0 client-credentials flow: ``POST {domain}/services/oauth2/token``."""

    def __init__(
        self, login_url: str, client_id: str, client_secret: str, session: requests.Session, retry: RetryPolicy
    ):
        self.login_url, self.client_id, self.client_secret = login_url, client_id, client_secret
        self.session, self.retry = session, retry

    def __repr__(self) -> str:
        return f"ClientCredentials({self.login_url!r})"

    def token(self) -> tuple[str, str | None]:
        """A fresh access token and the instance URL it is for."""
        return self.retry.call("salesforce token", self._token)

    def _token(self) -> tuple[str, str | None]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
        url = f"{self.login_url}/services/oauth2/token"
        try:
            response = self.session.post(url, data=form, headers={"Accept": "application/json"}, timeout=(10, 60))
        except requests.Timeout:
            raise TransientError("TIMEOUT", f"POST {url} timed out") from None
        except requests.RequestException as exc:
            raise TransientError("CONNECTION_ERROR", f"POST {url}: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"HTTP_{response.status_code}", "token endpoint unavailable")
        if response.status_code >= 400 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error", f"HTTP_{response.status_code}") if isinstance(body, dict) else "BAD_RESPONSE"
            description = body.get("error_description", "") if isinstance(body, dict) else ""
            raise PermanentError("OAUTH_" + str(error).upper(), str(description).replace(self.client_secret, "***"))
        return body["access_token"], body.get("instance_url")


def _base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


def _login_url(domain: str) -> str:
    """``acme.my.salesforce.com``, ``https://acme.my.salesforce.com``, or ``login``/``test``."""
    domain = domain.strip().rstrip("/")
    if "." not in domain and "://" not in domain:
        return f"https://{domain}.salesforce.com"
    return _base_url(domain)


def _error_of(response: requests.Response) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error response: ``[{"errorCode": ..., "message": ...}]``."""
    fallback = f"HTTP_{response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return fallback, (response.text or "")[:300]
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("error") or fallback
        message = body.get("message") or body.get("error_description") or ""
        return str(code), str(message)[:1000]
    return fallback, str(body)[:300]
