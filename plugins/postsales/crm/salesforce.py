"""The ``salesforce`` CRM adapter: write-back through :class:`postsales.salesforce_api.SalesforceClient`.

The requests are simple-salesforce's (the client's ``sf``); what is built here is what no
library does: which records to read and write, and one result per change.

- **Read**: SOQL ``SELECT Id, <key>, <fields> FROM <object> WHERE <key> IN (...)`` in chunks
  of up to 200 keys (and a bounded URL); a key longer than any text field holds (255) is in no
  record. A key held by several records is reported with ``matches`` > 1 and never written.
  The key field's type comes from the object's describe (one request per adapter, not for
  ``Id``): a numeric key field (double, int, long, currency, percent: a Number external id)
  is compared with unquoted number literals (``IN (123,456)``: Salesforce refuses a quoted
  one), and a key that is not such a number written as Salesforce returns it (``"0123"``,
  ``"123.0"``, ``"1e3"``, ``"abc"``, a fraction for a whole-number field, more digits than the
  field holds) is in no record and never sent. The number Salesforce returns (``123.0``) is
  account ``"123"``; ``"0123"`` never matches it, as a number holds no leading zero and two of
  our ids would otherwise claim one record.
- **Write**: up to ``bulk_threshold`` changes go through sObject Collections
  (``PATCH composite/sobjects`` through ``sf.restful``, 200 records a call, ``allOrNone:
  false``), one result per record; above it, one Bulk API 2.0 ingest job (``sf.bulk2.<object>
  .update``: create, upload, close, poll), whose successful, failed and unprocessed rows are
  read back. Every change gets exactly one :class:`WriteResult`: lock contention and limits are
  ``failed_transient`` (the sync sends them again), everything else Salesforce rejects is
  ``failed_permanent``.
- **The org's daily API limit** (403 ``REQUEST_LIMIT_EXCEEDED``, ``TotalRequests``:
  ``DailyLimitReached``) is not retried: no request succeeds until it frees up. A read raises it
  (the task fails at once, the next scheduled run reads again); in a write, the batch or job
  that met it and every remaining one, in this call and the sync's later rounds, fail
  ``failed_transient`` with its code without a further request, for the next run to send (met
  while reading a finished job's results, the rows not read are ``NO_RESULT``).
- **Errors of a whole request** (retries, transient or permanent) and the connection are the
  client's: see ``postsales.salesforce_api``.

No secret reaches a log line or an exception message: the messages Salesforce sends back for a
record or a job go through the client's ``mask`` too.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from postsales.crm.base import Change, CrmRecord, WriteResult, chunks, keeps_results
from postsales.crm.config import SalesforceCrm
from postsales.errors import AccessRefusedError, PermanentError, TransientError
from postsales.retry import RetryPolicy
from postsales.salesforce_api import DailyLimitReached, SalesforceClient, is_transient, warn_if_api_version

log = logging.getLogger(__name__)

COLLECTION_SIZE = 200  # sObject Collections: at most 200 records a request
QUERY_KEYS = 200  # keys per SOQL query
MAX_QUERY_CHARS = 12_000  # the encoded SOQL per GET: keeps the URL well under Salesforce's 16,384
MAX_KEY_CHARS = 255  # a Salesforce text field (an external id) holds at most 255 characters
# Describe types whose values SOQL compares as numbers (no quotes); int and long hold whole numbers.
NUMERIC_TYPES = frozenset({"double", "int", "long", "currency", "percent"})
INTEGER_TYPES = frozenset({"int", "long"})
MAX_DIGITS = 18  # a Salesforce number field holds at most 18 digits
# A number as Salesforce returns it and SOQL takes it: no sign but "-", no leading zero, no
# trailing zero after the point, no exponent.
PLAIN_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(?:\.([0-9]*[1-9]))?$")
CRM_RULES = "include/rules/crm_sync.yaml"
BULK_NULL = "#N/A"

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # an object or field API name
SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
SOQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def soql_string(value: str) -> str:
    """A SOQL string literal: quotes and backslashes escaped."""
    return "'" + value.translate(SOQL_ESCAPES) + "'"


def soql_number(key: str, field: dict[str, Any]) -> str | None:
    """``key`` as a SOQL number literal for the numeric ``field`` (its describe), or None when no
    value of the field reads back as ``key``: see the module's docstring."""
    plain = PLAIN_NUMBER.match(key)
    if plain is None or key == "-0":
        return None
    whole, fraction = plain.group(1), plain.group(2) or ""
    scale = field.get("scale")
    if fraction and (field.get("type") in INTEGER_TYPES or (scale is not None and len(fraction) > int(scale))):
        return None
    if field.get("type") in INTEGER_TYPES:
        digits = int(field.get("digits") or 0) or MAX_DIGITS
    else:
        digits = (int(field.get("precision") or 0) - int(scale or 0)) or MAX_DIGITS
    return key if len(whole) <= max(digits, 1) else None


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal in UTC (a naive datetime is taken as UTC), to the second."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise PermanentError("INVALID_FIELD", f"not a Salesforce {what} name: {value!r}")
    return value


def _id15(crm_id: str) -> str:
    """Record ids compare on their first 15 (case-sensitive) characters: the 18-character form adds a checksum."""
    return crm_id[:15] if SALESFORCE_ID.match(crm_id) else crm_id


def bulk_value(value: Any) -> str:
    """A value as Bulk API 2.0 CSV text: ``true``/``false``, ``#N/A`` for null, plain decimals."""
    if value is None or value == "":
        return BULK_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def split_bulk_error(text: str) -> tuple[str, str]:
    """``"UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"`` -> (code, message)."""
    code, sep, rest = (text or "").partition(":")
    if sep and ERROR_CODE.match(code.strip()):
        message = rest.strip()
        if message.endswith(":--"):  # no field named
            message = message[:-3].rstrip()
        return code.strip(), message
    return "BULK_ERROR", (text or "no error given").strip()


class SalesforceAdapter:
    name = "salesforce"

    def __init__(
        self,
        client: SalesforceClient,
        config: SalesforceCrm,
        key_field: str,
        *,
        poll_interval: float = 5.0,
        poll_timeout: float = 3600.0,
    ):
        self.client = client
        self.config = config
        self.key_field = _name(key_field, "key field")
        self.object = _name(config.object, "object")
        self.poll_interval, self.poll_timeout = poll_interval, poll_timeout
        self._access_refused: AccessRefusedError | None = None
        self.bulk_jobs = 0  # Bulk API 2.0 ingest jobs run to the end (their results read)
        self._daily_limit: DailyLimitReached | None = None  # met once: no request succeeds until it frees up
        self._key_describe: dict[str, Any] | None = None  # the key field, as the object's describe has it

    def __repr__(self) -> str:
        return f"SalesforceAdapter({self.describe()!r})"

    @property
    def calls(self) -> int:
        """Write requests sent: Collections PATCHes; per Bulk job its create, upload and close (and an abort)."""
        return self.client.writes

    @classmethod
    def from_connection(
        cls,
        config: SalesforceCrm,
        key_field: str,
        retry: RetryPolicy | None = None,
        *,
        poll_interval: float = 5.0,
        poll_timeout: float = 3600.0,
        **kwargs: Any,
    ) -> SalesforceAdapter:
        """From the Airflow connection ``config.conn_id``: see :meth:`SalesforceClient.from_connection`
        (``kwargs``, e.g. ``timeout``, go to the client)."""
        warn_if_api_version("include/rules/crm_sync.yaml", config.api_version, config.conn_id)
        client = SalesforceClient.from_connection(config.conn_id, retry, **kwargs)
        return cls(client, config, key_field, poll_interval=poll_interval, poll_timeout=poll_timeout)

    # --- the adapter protocol ---------------------------------------------------------------

    def describe(self) -> str:
        return f"salesforce:{(urlsplit(self.client.instance_url).hostname or '').lower()}/{self.object}"

    def fetch(self, account_ids: Sequence[str], crm_fields: Sequence[str]) -> dict[str, CrmRecord]:
        fields = [_name(f, "field") for f in dict.fromkeys(crm_fields)]
        select = ", ".join(dict.fromkeys(["Id", self.key_field, *fields]))
        keys = list(dict.fromkeys(map(str, account_ids)))
        if self.key_field == "Id":  # what cannot be a record id is not in the CRM (and would fail the whole query)
            keys = [k for k in keys if SALESFORCE_ID.match(k)]
        # Longer is in no record, and one key past the URL's bound would fail the whole sync (414).
        keys = [k for k in keys if len(k) <= MAX_KEY_CHARS]
        literals = self._key_literals(keys) if keys else {}
        keys = list(literals)
        # Records name the field as Salesforce spells it; SOQL took it in any case.
        key_name = self._key_describe["name"] if self._key_describe else self.key_field
        exact = {self._key_of(k): k for k in keys}
        # Text comparisons in SOQL ignore case: 'acc-1' answers a query for 'ACC-1'.
        folded: dict[str, str | None] = {}
        for key in keys:
            folded[key.casefold()] = None if key.casefold() in folded else key
        found: dict[str, CrmRecord] = {}
        prefix = f"SELECT {select} FROM {self.object} WHERE {self.key_field} IN ("
        for part in self._key_chunks([literals[k] for k in keys], prefix):
            soql = prefix + ",".join(part) + ")"
            for record in self.client.query(soql):
                key = _key_text(record.get(key_name))
                account_id = exact.get(self._key_of(key)) or folded.get(key.casefold())
                if account_id is None:
                    continue
                if account_id in found:
                    first = found[account_id]
                    found[account_id] = CrmRecord(account_id, first.crm_id, first.values, matches=first.matches + 1)
                else:
                    values = {f: record.get(f) for f in fields}
                    found[account_id] = CrmRecord(account_id, str(record["Id"]), values)
        return found

    def read_accounts_since(self, modstamp: datetime, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Records whose ``SystemModstamp`` is at or after ``modstamp``, oldest first, for incremental extraction.

        The bound is inclusive (to the second) so nothing modified in the same second is missed:
        the caller sees the boundary records again and de-duplicates by ``Id``.
        """
        names = [_name(f, "field") for f in fields]
        select = ", ".join(dict.fromkeys(["Id", "SystemModstamp", *names]))
        soql = (
            f"SELECT {select} FROM {self.object} WHERE SystemModstamp >= {soql_datetime(modstamp)} "
            "ORDER BY SystemModstamp, Id"
        )
        yield from self.client.query(soql)

    @keeps_results
    def update(self, changes: Sequence[Change]) -> Iterator[WriteResult]:
        self._access_refused = None
        changes = list(changes)
        results: list[WriteResult] = []
        # Two of our accounts on one CRM record: ambiguous, and Salesforce rejects duplicate ids in a request.
        targets: dict[str, list[Change]] = {}
        for change in changes:
            targets.setdefault(_id15(change.crm_id), []).append(change)
        unique = []
        for group in targets.values():
            if len(group) == 1:
                unique.append(group[0])
                continue
            accounts = sorted(c.account_id for c in group)
            results += [
                _failed(c, "failed_permanent", "DUPLICATE_ID", f"record {c.crm_id} is the target of {accounts}")
                for c in group
            ]
        invalid = [c for c in unique if any(not NAME.match(f) for f in c.fields)]
        for change in invalid:
            bad = sorted(f for f in change.fields if not NAME.match(f))
            results.append(_failed(change, "failed_permanent", "INVALID_FIELD", f"not Salesforce field names: {bad}"))
        unique = [c for c in unique if c not in invalid]
        yield from results
        if len(unique) > self.config.bulk_threshold:
            requests = [(self._bulk, unique)]
        else:
            requests = [(self._collection, part) for part in chunks(unique, COLLECTION_SIZE)]
        for send, part in requests:
            yield from send(part)
            if self._access_refused is not None:  # the user cannot write: no later request can succeed
                raise self._access_refused

    # --- sObject Collections ----------------------------------------------------------------

    def _collection(self, part: Sequence[Change]) -> list[WriteResult]:
        if self._daily_limit is not None:
            return _all_failed(part, self._daily_limit, attempts=0)
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": self.object},
                    "id": c.crm_id,
                    **{f: _json_value(v) for f, v in c.fields.items()},
                }
                for c in part
            ],
        }
        attempts = 0

        def send() -> Any:
            nonlocal attempts
            attempts += 1
            return self.client.sf.restful("composite/sobjects", method="PATCH", json=body)

        try:
            saved = self.client.call("salesforce update", send)
        except DailyLimitReached as exc:
            self._daily_limit = exc
            return _all_failed(part, exc, attempts)
        except TransientError as exc:
            return [_failed(c, "failed_transient", exc.code, exc.message, attempts) for c in part]
        except PermanentError as exc:
            self._note_refusal(exc)
            return [_failed(c, "failed_permanent", exc.code, exc.message, attempts) for c in part]
        if not isinstance(saved, list):
            saved = []
        results = []
        for index, change in enumerate(part):
            outcome = saved[index] if index < len(saved) and isinstance(saved[index], dict) else None
            if outcome is None:
                results.append(_failed(change, "failed_transient", "NO_RESULT", "no result for the record", attempts))
            elif outcome.get("success"):
                results.append(WriteResult(change.account_id, change.crm_id, "success", attempts=attempts))
            else:
                error = (outcome.get("errors") or [{}])[0]
                code = str(error.get("statusCode") or "UNKNOWN_ERROR")
                message = self.client.mask(str(error.get("message") or ""))
                if error.get("fields"):
                    message = f"{message} (fields: {', '.join(map(str, error['fields']))})"
                status = "failed_transient" if is_transient(code) else "failed_permanent"
                results.append(_failed(change, status, code, message, attempts))
        return results

    # --- Bulk API 2.0 -----------------------------------------------------------------------

    def _bulk(self, changes: Sequence[Change]) -> list[WriteResult]:
        """One ingest job (more only past the library's 100 MB a job), then its rows read back."""
        if self._daily_limit is not None:
            return _all_failed(changes, self._daily_limit, attempts=0)
        bulk = getattr(self.client.sf.bulk2, self.object)
        # The library waits up to 24 hours for a job, a class constant with no argument: our bound,
        # after which it aborts the job. (Renamed in a later version, this fails loudly.)
        bulk._client.DEFAULT_WAIT_TIMEOUT_SECONDS = self.poll_timeout
        # A field a change does not set is an empty cell: Salesforce leaves it unchanged.
        records = [{"Id": c.crm_id} | {f: bulk_value(v) for f, v in c.fields.items()} for c in changes]
        try:
            jobs = self.client.attempt(lambda: bulk.update(records=records, wait=self.poll_interval))
        except (TransientError, PermanentError) as exc:
            # Not created or not uploaded: nothing written. Failed or timed out afterwards: some rows
            # may be, but the library keeps the job id to itself, so every record gets the (transient)
            # error and is sent again: an update is idempotent.
            if isinstance(exc, DailyLimitReached):
                self._daily_limit = exc
                return _all_failed(changes, exc)
            if isinstance(exc, PermanentError) and exc.code == "INVALID_SESSION_ID":
                exc = self._session_expired(exc)
            self._note_refusal(exc)
            return _all_failed(changes, exc)
        by_id = {_id15(c.crm_id): c for c in changes}
        outcome: dict[str, WriteResult] = {}
        problems = []
        for job in jobs:
            job_id = str(job["job_id"])
            self.bulk_jobs += 1
            log.info(
                "salesforce bulk job %s: %s of %s processed, %s failed",
                job_id,
                job.get("numberRecordsProcessed"),
                job.get("numberRecordsTotal"),
                job.get("numberRecordsFailed"),
            )
            for kind in ("successful", "failed", "unprocessed"):
                if self._daily_limit is not None:  # no request succeeds until it frees up
                    problems.append(f"{job_id} {kind}: {self._daily_limit.code}")
                    continue
                try:
                    text = self._bulk_results(kind, job_id)
                except (TransientError, PermanentError) as exc:
                    if isinstance(exc, DailyLimitReached):
                        self._daily_limit = exc
                    problems.append(f"{job_id} {kind}: {exc.code}")
                    continue
                for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff"))):
                    change = by_id.get(_id15(row.get("Id") or row.get("sf__Id") or ""))
                    if change is None or change.crm_id in outcome:
                        continue
                    outcome[change.crm_id] = self._bulk_result(change, kind, row, job_id)
        missing = f"no result in bulk job(s) {', '.join(str(j['job_id']) for j in jobs) or '(none)'}"
        if problems:
            missing += f"; results unreadable: {', '.join(problems)}"
        return [outcome.get(c.crm_id) or _failed(c, "failed_transient", "NO_RESULT", missing) for c in changes]

    def _bulk_results(self, kind: str, job_id: str) -> str:
        """A job's ``successful``, ``failed`` or ``unprocessed`` rows (CSV); an expired session renewed once."""

        def read() -> str:
            handler = getattr(self.client.sf.bulk2, self.object)  # holds the session id it is built with
            return getattr(handler, f"get_{kind}_records")(job_id)

        try:
            return self.client.call(f"salesforce bulk {kind} results", read)
        except PermanentError as exc:
            if exc.code != "INVALID_SESSION_ID" or not self.client.log_in_again():
                raise
        return self.client.call(f"salesforce bulk {kind} results", read)

    def _note_refusal(self, exc: Exception) -> None:
        if isinstance(exc, AccessRefusedError):
            self._access_refused = exc

    def _session_expired(self, exc: PermanentError) -> TransientError | PermanentError:
        """A Bulk API 2.0 request refused the session: the library's Bulk requests do not log in again
        as its REST calls do. Logged in again here, the records are worth sending again."""
        try:
            renewed = self.client.log_in_again()
        except (TransientError, PermanentError) as refused:
            return refused
        if not renewed:  # a direct session: its message says to store a fresh token
            return exc
        return TransientError(
            "INVALID_SESSION_ID",
            "the session expired during the Bulk API 2.0 job, whose requests do not log in again; logged in "
            "again for the records to be sent again",
        )

    def _bulk_result(self, change: Change, kind: str, row: dict[str, str], job_id: str) -> WriteResult:
        if kind == "successful":
            return WriteResult(change.account_id, change.crm_id, "success")
        if kind == "failed":
            code, message = split_bulk_error(row.get("sf__Error", ""))
            status = "failed_transient" if is_transient(code) else "failed_permanent"
            return _failed(change, status, code, self.client.mask(message))
        return _failed(change, "failed_transient", "UNPROCESSED", f"bulk job {job_id} did not process it")

    # --- reading ----------------------------------------------------------------------------

    def _key_literals(self, keys: list[str]) -> dict[str, str]:
        """Each key that a record's key can be, as its SOQL literal: a number for a numeric key field,
        else a string (the key field's type from the object's describe, read once; ``Id`` is no number)."""
        if self.key_field == "Id":
            return {key: soql_string(key) for key in keys}
        field = self._key_field()
        if field.get("type") not in NUMERIC_TYPES:
            return {key: soql_string(key) for key in keys}
        numbers = {key: soql_number(key, field) for key in keys}
        return {key: literal for key, literal in numbers.items() if literal is not None}

    def _key_field(self) -> dict[str, Any]:
        """The key field as the object's describe has it (one request, the first time)."""
        if self._key_describe is None:
            fields = self.client.describe_fields(self.object)
            by_name = {name.lower(): field for name, field in fields.items()}  # SOQL names ignore case
            found = by_name.get(self.key_field.lower())
            if found is None:
                close = difflib.get_close_matches(self.key_field, sorted(fields), n=3)
                hint = f"; the nearest: {', '.join(close)}" if close else ""
                raise PermanentError(
                    "INVALID_FIELD",
                    f"{CRM_RULES}: field 'key.crm_key_field': {self.key_field!r} is not a field of {self.object} "
                    f"the Salesforce connection's user can see{hint}. Fix: set key.crm_key_field to the field "
                    "holding our account id (its API name), or grant the user access to it.",
                )
            self._key_describe = found
        return self._key_describe

    def _key_chunks(self, literals: list[str], prefix: str) -> Iterator[list[str]]:
        """Up to :data:`QUERY_KEYS` key literals a query, fewer if the encoded SOQL would get too long."""
        part: list[str] = []
        length = len(quote(prefix + ")"))
        for literal in literals:
            extra = len(quote(literal + ","))
            if part and (len(part) >= QUERY_KEYS or length + extra > MAX_QUERY_CHARS):
                yield part
                part, length = [], len(quote(prefix + ")"))
            part.append(literal)
            length += extra
        if part:
            yield part

    def _key_of(self, value: str) -> str:
        """How a key is compared: record ids on their 15 characters, other keys as given."""
        return _id15(value) if self.key_field == "Id" else value


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def _key_text(value: Any) -> str:
    """A key as text; a number written plainly: a Number external id comes back as 123.0 (``"123"``),
    a small fraction as 1e-05 (``"0.00001"``)."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    return "" if value is None else str(value)


def _failed(change: Change, status: str, code: str, message: str, attempts: int = 1) -> WriteResult:
    return WriteResult(change.account_id, change.crm_id, status, code, message, max(attempts, 1))  # type: ignore[arg-type]


def _all_failed(
    changes: Sequence[Change], exc: TransientError | PermanentError, attempts: int = 1
) -> list[WriteResult]:
    """Every change failed with ``exc``: transiently for a ``TransientError`` and the daily limit (the next
    run sends them), else permanently."""
    transient = isinstance(exc, (TransientError, DailyLimitReached))
    status = "failed_transient" if transient else "failed_permanent"
    return [_failed(c, status, exc.code, exc.message, attempts) for c in changes]
