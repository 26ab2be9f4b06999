"""Retrying a remote call within a task: :class:`RetryPolicy` and the ``Retry-After`` header.

A call that fails with a :class:`~postsales.errors.TransientError` (429, 5xx, a timeout,
lock contention) is sent again, after the server's ``Retry-After`` or a jittered exponential
backoff. The CRM adapters and the Salesforce client (``postsales.salesforce_api``) share it.
This is not Airflow's task retry (``postsales.dag_defaults``), which reruns the whole task.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from postsales.errors import TransientError

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 600.0  # seconds: a longer wait is capped (the record is retried by the next round/run)


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
