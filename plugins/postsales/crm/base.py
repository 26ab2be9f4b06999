"""What every CRM adapter provides.

An adapter reads the current value of the mapped fields (and the manual-override field)
for a set of our account ids, and updates existing records — it never creates one. It
returns one :class:`WriteResult` per record: the sync engine advances its state only for
records that succeeded, so anything else is tried again on the next run. An adapter that
stops part-way (an :class:`~postsales.errors.AccessRefusedError`: no later batch could succeed;
or a bug) raises :class:`WriteInterrupted` holding the results of the batches answered before,
so the engine audits everything written before it fails the task. The errors of a
call (``TransientError``, ``PermanentError``) are in ``postsales.errors``, the retry policy
adapters share in ``postsales.retry``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Status = Literal["success", "failed_transient", "failed_permanent"]


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


class CrmAdapter(Protocol):
    name: str
    calls: int  # write calls made so far (HTTP requests or transactions)

    def describe(self) -> str:
        """The CRM instance and object written to, without secrets: the key of the sync state, so it
        names the instance (database, Salesforce host, HubSpot portal) and two never share state."""

    def fetch(self, account_ids: Sequence[str], crm_fields: Sequence[str]) -> dict[str, CrmRecord]:
        """Current values of ``crm_fields`` for the accounts found, keyed by our account id."""

    def update(self, changes: Sequence[Change]) -> list[WriteResult]:
        """Write ``changes`` (existing records only); one result per change, in any order.

        Raises :class:`WriteInterrupted` when it stops before the end (see the module's doc)."""


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class WriteInterrupted(Exception):
    """An update stopped part-way; ``results`` are those of the batches answered before it.

    The error that stopped it is the ``__cause__``.
    """

    def __init__(self, results: list[WriteResult]):
        super().__init__(f"the update stopped after {len(results)} results")
        self.results = results


def keeps_results(
    write: Callable[..., Iterator[WriteResult]],
) -> Callable[..., list[WriteResult]]:
    """An adapter's ``update`` from a generator of its results: the list of them, or, when the
    generator raises, :class:`WriteInterrupted` holding those yielded before."""

    @functools.wraps(write)
    def update(self: Any, changes: Sequence[Change]) -> list[WriteResult]:
        results: list[WriteResult] = []
        try:
            for result in write(self, changes):
                results.append(result)
        except Exception as exc:
            raise WriteInterrupted(results) from exc
        return results

    return update
