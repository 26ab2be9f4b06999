"""Errors the pipeline raises on purpose, each with a message a data engineer can act on.

Two kinds, and Airflow treats them differently (``postsales.dag_defaults.RETRY_POLICY``):
a :class:`NotRetryableError` fails the task at once, whatever its ``retries``; anything
else (a :class:`SourceUnavailableError`, a lost connection, a timeout) is retried.

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
