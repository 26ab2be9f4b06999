"""Errors the pipeline raises on purpose, each with a message a data engineer can act on."""


class PostsalesError(Exception):
    """Base class."""


class SourceUnavailableError(PostsalesError):
    """The source could not be reached (missing directory, database down).

    Transient by nature: Airflow retries the task before failing it.
    """


class DataContractError(PostsalesError):
    """The input breaks the documented contract: retrying cannot help.

    The message names the file or table, the column, the counts and the fix.
    """
