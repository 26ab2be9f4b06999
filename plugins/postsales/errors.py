"""Errors the pipeline raises on purpose, each with a message a data engineer can act on.

Two kinds, and Airflow treats them differently (``postsales.dag_defaults.RETRY_POLICY``):
a :class:`NotRetryableError` fails the task at once, whatever its ``retries``; anything
else (a :class:`SourceUnavailableError`, a lost connection, a timeout) is retried.

A remote API call (a CRM, Salesforce as a source) fails with a :class:`TransientError`
(worth sending again: ``postsales.retry.RetryPolicy`` does, within the task) or a
:class:`PermanentError` (a :class:`NotRetryableError`).

This module imports nothing: the DAG files import it, through dag_defaults, at parse time.
"""


class PostsalesError(Exception):
    """Base class."""


class SourceUnavailableError(PostsalesError):
    """The source could not be reached (missing directory, database down).

    Transient by nature: Airflow retries the task before failing it.
    """


class NotRetryableError(PostsalesError):
    """Retrying cannot help: a person has to fix the input, a rules file or a setting first.

    Every task of every project DAG fails at once on it (no retry), with its message.
    """


class DataContractError(NotRetryableError):
    """The input breaks the documented contract: retrying cannot help.

    The message names the file or table, the column, the counts and the fix.
    """


class ConfigError(NotRetryableError, ValueError):
    """A configuration file is missing, unreadable or invalid (postsales.config re-exports it)."""


class TransientError(Exception):
    """A remote call's failure worth retrying (429, 5xx, timeout, lock contention)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retry_after = code, message, retry_after


class PermanentError(NotRetryableError):
    """A remote call's failure that retrying cannot fix (bad credentials, invalid field, validation rule).

    Raised out of a task (while connecting, or reading the CRM or a source) it fails the task at
    once; a CRM adapter's write turns it into a ``failed_permanent`` result for the record instead.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class AccessRefusedError(PermanentError):
    """The CRM refused the credentials or their permission for a whole request (HTTP 401 or 403).

    No other request with the same credentials can succeed: a sync stops writing at once and
    fails its task, after auditing what was already written, instead of sending every batch.
    """


def mask_secrets(text: str, secrets) -> str:
    """``text`` with every secret replaced by ``***``, in each form a message may quote it.

    As given; stripped of surrounding whitespace (a token pasted with its newline); and escaped
    as ``repr`` escapes it (``'Bearer tok\\n'`` in a library's "invalid header" message). The
    longest forms go first, so a secret that holds another leaves no part of itself behind.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            for form in (secret, secret.strip()):
                forms |= {form, repr(form)[1:-1]}
    for form in sorted(filter(None, forms), key=len, reverse=True):
        text = text.replace(form, "***")
    return text


# Query parameters of a database URL that carry a secret (psycopg's password, an ODBC string
# with PWD=, Snowflake's private_key_file_pwd, a token or API key).
SECRET_QUERY_KEYS = ("pass", "pwd", "secret", "token", "key", "odbc_connect", "credential")


def safe_url(url) -> str:
    """A database URL as messages, logs and state keys may show it: no password, and ``***`` for
    every query value whose name says it is a secret (``render_as_string(hide_password=True)``
    hides only the password field)."""
    import sqlalchemy as sa  # only when called: this module imports nothing at parse time

    url = sa.engine.make_url(url)
    query = {
        name: "***" if any(part in name.lower() for part in SECRET_QUERY_KEYS) else value
        for name, value in url.query.items()
    }
    return url.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
