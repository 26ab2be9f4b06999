"""What every CRM adapter provides, and the retry policy they share.

An adapter reads the current value of the mapped fields (and the manual-override field)
for a set of our account ids, and updates existing records — it never creates one. It
returns one :class:`WriteResult` per record: the sync engine advances its state only for
records that succeeded, so anything else is tried again on the next run.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

from postsales.errors import NotRetryableError

log = logging.getLogger(__name__)

Status = Literal["success", "failed_transient", "failed_permanent"]
MAX_RETRY_AFTER = 600.0  # seconds: a longer wait is capped (the record is retried by the next round/run)


@dataclass(frozen=True)
class CrmRecord:
    """A record as the CRM holds it now."""

    account_id: str
    crm_id: str
    values: dict[str, Any]  # CRM field -> value (mapped tag fields and the override field)
    matches: int = 1  # CRM records with this key; more than one is ambiguous and never written


@dataclass(frozen=True)
class Change:
    """Fields to write on one existing record."""

    account_id: str
    crm_id: str
    fields: dict[str, Any]  # CRM field -> new value


@dataclass
class WriteResult:
    account_id: str
    crm_id: str
    status: Status
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 1


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, timeout, lock contention)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retry_after = code, message, retry_after


class PermanentError(NotRetryableError):
    """A failure that retrying cannot fix (bad credentials, invalid field, validation rule).

    Raised out of a task (while building the adapter or reading the CRM) it fails the task at
    once; an adapter's write turns it into a ``failed_permanent`` result for the record instead.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class CrmAdapter(Protocol):
    name: str
    calls: int  # write calls made so far (HTTP requests or transactions)

    def describe(self) -> str:
        """The CRM and object written to, without secrets: the key of the sync state."""

    def fetch(self, account_ids: Sequence[str], crm_fields: Sequence[str]) -> dict[str, CrmRecord]:
        """Current values of ``crm_fields`` for the accounts found, keyed by our account id."""

    def update(self, changes: Sequence[Change]) -> list[WriteResult]:
        """Write ``changes`` (existing records only); one result per change, in any order."""


@dataclass
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: Retry-After wins, else jittered exponential backoff."""
        if retry_after is not None:
            return float(retry_after)
        return self.backoff_seconds * 2 ** (attempt - 1) * (0.5 + random.random() / 2)

    def call(self, what: str, function: Callable[[], Any]) -> Any:
        """Run ``function``, retrying :class:`TransientError` up to ``attempts`` times in all."""
        attempt = 1
        while True:
            try:
                return function()
            except TransientError as exc:
                if attempt >= self.attempts:
                    raise
                wait = self.delay(attempt, exc.retry_after)
                log.warning("%s: %s (attempt %s of %s), retrying in %.1fs", what, exc, attempt, self.attempts, wait)
                self.sleep(wait)
                attempt += 1


def retry_after_seconds(header: str | None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date), capped at :data:`MAX_RETRY_AFTER`."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
