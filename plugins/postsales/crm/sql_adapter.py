"""The ``sql`` CRM adapter: a CRM table reachable through SQLAlchemy (the demo CRM by default).

Reads the mapped fields by key in chunks and updates each record with its own UPDATE in
one transaction per chunk, so a chunk either lands whole or not at all. A record whose key
is not in the table is reported as not found; nothing is ever inserted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from postsales.config import ConfigError
from postsales.crm.base import Change, CrmRecord, WriteResult, chunks
from postsales.crm.config import SqlCrm
from postsales.errors import PermanentError, TransientError, safe_url
from postsales.retry import RetryPolicy

RULES_FILE = "include/rules/crm_sync.yaml"

CHUNK = 500


def resolve_url(config: SqlCrm) -> str:
    """The CRM URL from the Airflow connection, else the environment variable, else the default."""
    if config.conn_id:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(config.conn_id).get_uri()
    if config.url_env and os.environ.get(config.url_env):
        return os.environ[config.url_env]
    if config.demo_crm_fallback:
        from postsales.config import source_dir

        demo = source_dir() / "crm.sqlite"
        if demo.exists():
            return f"sqlite:///{demo}"
    raise PermanentError(
        "NO_CRM_URL", f"no CRM to sync to: set sql.conn_id in crm_sync.yaml or ${config.url_env} (or run make demo)"
    )


def _url_source(config: SqlCrm) -> str:
    """Where the CRM URL came from, for a message (resolve_url's order)."""
    if config.conn_id:
        return f"sql.conn_id (the Airflow connection {config.conn_id!r})"
    if config.url_env and os.environ.get(config.url_env):
        return f"${config.url_env}"
    return f"${config.url_env} (unset: the demo CRM was used)"


class SqlCrmAdapter:
    name = "sql"

    def __init__(self, config: SqlCrm, key_field: str, retry: RetryPolicy | None = None, url: str | None = None):
        self.config, self.key_field = config, key_field
        self.retry = retry or RetryPolicy()
        self.calls = 0  # write calls (one transaction per chunk)
        self.engine = sa.create_engine(url or resolve_url(config))
        shown = safe_url(self.engine.url)
        try:
            self.table = sa.Table(config.table, sa.MetaData(), autoload_with=self.engine)
        except sa.exc.NoSuchTableError:
            # A wrong name or database is not fixed by a retry: ConfigError fails the task at once.
            raise ConfigError(
                f"{RULES_FILE}: field 'sql.table': the CRM database {shown} has no table {config.table!r}. "
                f"Fix: set sql.table to the CRM's account table, or point {_url_source(config)} at the CRM "
                "database that holds it."
            ) from None
        if key_field not in self.table.c:
            raise ConfigError(
                f"{RULES_FILE}: field 'key.crm_key_field': the CRM table {config.table!r} in {shown} has no "
                f"column {key_field!r}; it has {list(self.table.c.keys())}. Fix: set key.crm_key_field to the "
                "column holding our account id."
            )

    def describe(self) -> str:
        return f"sql:{safe_url(self.engine.url)}/{self.config.table}"

    def _columns(self, crm_fields: Sequence[str]) -> list[sa.Column]:
        missing = [f for f in crm_fields if f not in self.table.c]
        if missing:
            raise PermanentError("INVALID_FIELD", f"{self.config.table} has no column(s) {missing}")
        return [self.table.c[f] for f in crm_fields]

    def fetch(self, account_ids: Sequence[str], crm_fields: Sequence[str]) -> dict[str, CrmRecord]:
        key = self.table.c[self.key_field]
        columns = self._columns(crm_fields)
        found: dict[str, CrmRecord] = {}
        for part in chunks(list(account_ids), CHUNK):
            rows = self.retry.call(
                "crm fetch",
                lambda part=part: self._read(sa.select(key, *columns).where(key.in_(part))),
            )
            for row in rows:
                account_id = str(row[0])
                values = dict(zip(crm_fields, row[1:], strict=True))
                seen = found[account_id].matches if account_id in found else 0
                found[account_id] = CrmRecord(account_id, account_id, values, matches=seen + 1)
        return found

    def _read(self, statement: sa.Select) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement))
        except sa.exc.OperationalError as exc:  # locked database, lost connection: worth a retry
            raise TransientError("DB_OPERATIONAL", str(exc.orig)[:300]) from exc

    def _typed(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Values in the column's own type (a flag into an INTEGER column is 1/0, a date is a date)."""
        typed = {}
        for name, value in fields.items():
            column_type = self.table.c[name].type
            if value is not None and isinstance(column_type, sa.Integer) and isinstance(value, bool):
                value = int(value)
            elif value is not None and isinstance(column_type, sa.Date) and isinstance(value, str):
                value = date.fromisoformat(value[:10])
            elif value is not None and isinstance(column_type, sa.String) and not isinstance(value, str):
                value = str(value).lower() if isinstance(value, bool) else str(value)
            typed[name] = value
        return typed

    def update(self, changes: Sequence[Change]) -> list[WriteResult]:
        results: list[WriteResult] = []
        key = self.table.c[self.key_field]
        for part in chunks(list(changes), CHUNK):

            def write(part: Sequence[Change] = part) -> list[int]:
                self.calls += 1
                try:
                    with self.engine.begin() as conn:
                        counts = [
                            conn.execute(
                                self.table.update().where(key == change.crm_id).values(**self._typed(change.fields))
                            ).rowcount
                            for change in part
                        ]
                        if any(count > 1 for count in counts):  # the key stopped being unique since the read
                            raise PermanentError("DUPLICATE_KEY", "a key matches several CRM rows; nothing written")
                        return counts
                except sa.exc.OperationalError as exc:
                    raise TransientError("DB_OPERATIONAL", str(exc.orig)[:300]) from exc
                except (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError) as exc:
                    raise PermanentError("DB_REJECTED", str(exc.orig)[:300]) from exc

            try:
                counts = self.retry.call("crm update", write)
            except TransientError as exc:
                results += [_failed(c, "failed_transient", exc.code, exc.message, self.retry.attempts) for c in part]
                continue
            except PermanentError as exc:
                results += [_failed(c, "failed_permanent", exc.code, exc.message, 1) for c in part]
                continue
            for change, count in zip(part, counts, strict=True):
                if count == 1:
                    results.append(WriteResult(change.account_id, change.crm_id, "success"))
                else:
                    results.append(_failed(change, "failed_permanent", "NOT_FOUND", f"{count} rows match the key", 1))
        return results


def _failed(change: Change, status: str, code: str, message: str, attempts: int) -> WriteResult:
    return WriteResult(change.account_id, change.crm_id, status, code, message, attempts)  # type: ignore[arg-type]
