"""OpenLineage: the datasets each task read and wrote, named by the OpenLineage naming spec.

A task's OpenLineage events (sent by Airflow's OpenLineage provider, ``[openlineage] transport``)
get their datasets from :class:`postsales.lineage.extractor.PostsalesExtractor`:

- **outputs**: the warehouse tables the task wrote in this run. The warehouse reports them where
  every write goes through (``warehouse.delete_partition``, ``warehouse.insert_frame``: a write
  replaces a partition); a table a step writes only when needed (segments of a date that has
  none) is an output only when it was written;
- **inputs**: the warehouse tables the task declares as inlets (``postsales.assets``: what it may
  read; every ``dag.test()`` in the test suite checks them against the SQL the task ran);
- what only the run knows: the source an extract read (each file, the SQL table, the Salesforce
  object: :func:`read_source`) and the CRM object a sync read and, when it changed fields, wrote
  (:func:`read_crm`, :func:`wrote_crm`).

Names (:func:`database_dataset`): PostgreSQL ``postgres://host:port`` + ``database.schema.table``;
DuckDB ``duckdb://<absolute file path>`` + ``<catalog>.schema.table`` (the catalog is the file's
stem; dbt's OpenLineage integration names dbt-duckdb tables the same way); SQLite
``sqlite://<absolute file path>`` + ``main.table``; files ``file`` + the absolute path. A namespace
or name is built from host, port, database and path only: never a user, password or URL query
(tokens), so no credential can reach an event.

OpenLineage is off unless the provider is configured: then :func:`enabled` is False, nothing is
recorded, and outside an Airflow task (``python -m postsales.cli``) Airflow is not even imported.
The records live in the task's process, where the provider's listener runs the extractor. This
module imports no OpenLineage code (the warehouse imports it); the extractor does.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import sqlalchemy as sa

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}


@dataclass(frozen=True)
class DatasetRef:
    """One OpenLineage dataset: its namespace and name, and what its facets say."""

    namespace: str
    name: str
    # (column, type, description) for the schema facet; empty: no schema facet.
    fields: tuple[tuple[str, str, str | None], ...] = ()
    file_count: int | None = None  # files read of a folder dataset (input statistics facet)

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


# --- names --------------------------------------------------------------------------------


def database_dataset(url: str | sa.URL, schema: str | None, table: str, fields=()) -> DatasetRef:
    """The table ``schema.table`` of the database at ``url`` (a SQLAlchemy URL or an Airflow
    connection URI), named by the OpenLineage naming spec; the URL's credentials and query are dropped."""
    import sqlalchemy as sa

    url = sa.make_url(url)
    backend = url.get_backend_name()
    backend = {"postgresql": "postgres", "pgsql": "postgres", "mariadb": "mysql"}.get(backend, backend)
    if backend in ("duckdb", "sqlite"):
        path = _database_file(url.database)
        if backend == "duckdb":
            catalog = "memory" if path == ":memory:" else PurePosixPath(path).stem
            return DatasetRef(f"duckdb://{path}", f"{catalog}.{schema or 'main'}.{table}", tuple(fields))
        return DatasetRef(f"sqlite://{path}", f"{schema or 'main'}.{table}", tuple(fields))
    host = (url.host or "localhost").lower()
    port = url.port or DEFAULT_PORTS.get(backend)
    namespace = f"{backend}://{host}" + (f":{port}" if port else "")
    if backend == "postgres":
        name = f"{url.database}.{schema or 'public'}.{table}"
    else:  # mysql: database.table; anything else: what it has of database, schema, table
        name = ".".join(part for part in (url.database, schema if backend != "mysql" else None, table) if part)
    return DatasetRef(namespace, name, tuple(fields))


def _database_file(database: str | None) -> str:
    """An embedded database's file as an absolute path (relative: to the project root, as
    ``postsales.config.warehouse_url`` makes it), or ``:memory:``."""
    if not database or database == ":memory:":
        return ":memory:"
    path = Path(database)
    if not path.is_absolute():
        from postsales import paths

        path = paths.project_root() / path
    return str(path.resolve())


def file_dataset(path: str | Path) -> DatasetRef:
    """A local file: namespace ``file``, name its absolute path (the spec's local file system)."""
    return DatasetRef("file", str(Path(path).resolve()))


def service_host(conn_id: str, extra_key: str | None = None, default: str | None = None) -> str | None:
    """The host an Airflow connection points at, lowercase, without scheme, user, password or port
    (``extra_key``: an extra field naming the host when ``host`` is empty, e.g. Salesforce's ``domain``)."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # the task's own call to the service says what is wrong with the connection
        return default
    extra = conn.extra_dejson or {}
    value = conn.host or (extra.get(extra_key) if extra_key else None) or default
    if not value:
        return None
    return (urlsplit(value if "//" in value else f"//{value}").hostname or "").lower() or default


def salesforce_dataset(source: Any, sobject: str) -> DatasetRef:
    """A Salesforce object read by the Salesforce source: ``salesforce://<instance host>`` (the
    org its login landed on, as the push names it) + the object's API name; without a session,
    the connection's host or login domain."""
    try:
        host = (urlsplit(source._client().instance_url).hostname or "").lower()
    except Exception as exc:
        log.info("lineage: Salesforce instance unknown (%s): naming the connection", type(exc).__name__)
        host = ""
    host = host or service_host(source.config.conn_id, "domain")
    return DatasetRef(f"salesforce://{host}" if host else "salesforce", sobject)


def hubspot_dataset(source: Any, object_type: str) -> DatasetRef:
    """A HubSpot object type read by the HubSpot source: ``hubspot://<portal id>`` (the portal
    of the source's token, as the push names it), else the API host; the name is the object
    type (``companies``, ``deals``). Lineage never fails an extract: a portal HubSpot does not
    name (no ``oauth`` scope, a limit) leaves the host."""
    try:
        where = source._client().portal_id
    except Exception as exc:
        log.info("lineage: HubSpot portal unknown (%s): naming the API host", type(exc).__name__)
        where = service_host(source.config.conn_id, default="api.hubapi.com")
    return DatasetRef(f"hubspot://{where}", object_type)


def table_fields(table: sa.Table) -> tuple[tuple[str, str, str | None], ...]:
    """The schema facet's fields of a SQLAlchemy table: each column, its type and description."""
    fields = []
    for column in table.columns:
        try:
            kind = str(column.type)
        except Exception:  # a type the generic dialect cannot name
            kind = type(column.type).__name__
        fields.append((column.name, kind, column.comment))
    return tuple(fields)


def warehouse_table(url: str | sa.URL, table: sa.Table) -> DatasetRef:
    return database_dataset(url, table.schema, table.name, table_fields(table))


def is_warehouse_table(table: sa.Table) -> bool:
    """A table of the warehouse's schemas; not a work table (``_load_*``, temporary)."""
    from postsales.warehouse import SCHEMAS

    return table.schema in SCHEMAS and not table.name.startswith("_")


# --- what a task records --------------------------------------------------------------------


@dataclass
class Collected:
    """What one task try read and wrote at runtime, by (namespace, name)."""

    key: tuple
    inputs: dict[tuple[str, str], DatasetRef] = field(default_factory=dict)
    outputs: dict[tuple[str, str], DatasetRef] = field(default_factory=dict)


# One task runs at a time in a process (a worker's task process, or dag.test()); a record for
# another task try replaces the previous one, so a long dag.test() session keeps one.
_current: Collected | None = None
_lock = threading.Lock()


def enabled() -> bool:
    """Is the OpenLineage provider configured in this (Airflow) process?"""
    if "airflow" not in sys.modules:  # not inside Airflow: never import it just to find out
        return False
    return _provider_enabled()


@cache
def _provider_enabled() -> bool:
    try:
        from airflow.providers.openlineage import conf
    except ImportError:
        return False
    return not conf.is_disabled()


def task_key(ti: Any) -> tuple:
    """What identifies a task try, from a task instance (the task's or the listener's)."""
    return ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1), ti.try_number


def _current_task() -> tuple | None:
    try:
        from airflow.sdk import get_current_context

        return task_key(get_current_context()["ti"])
    except Exception:  # no task running: a script, a test's own setup
        return None


def _record(kind: str, make) -> None:
    """Record the dataset ``make()`` returns as an input or output of the running task; never
    fails the task (lineage is a report, not part of the work)."""
    global _current
    if not enabled():
        return
    try:
        key = _current_task()
        if key is None:
            return
        dataset = make()
        with _lock:
            if _current is None or _current.key != key:
                _current = Collected(key)
            getattr(_current, kind)[dataset.key] = dataset
    except Exception:
        log.warning("OpenLineage: could not record a %s dataset", kind[:-1], exc_info=True)


def collected(ti: Any) -> Collected:
    """What the task try ``ti`` recorded (empty when it recorded nothing)."""
    key = task_key(ti)
    with _lock:
        if _current is not None and _current.key == key:
            return _current
    return Collected(key)


def wrote(conn: sa.Connection, table: sa.Table) -> None:
    """The running task wrote ``table`` through ``conn`` (called by the warehouse's write primitives)."""
    if enabled() and is_warehouse_table(table):
        _record("outputs", lambda: warehouse_table(conn.engine.url, table))


def read_source(source: Any, entity: str, files: list[str]) -> None:
    """The running extract read ``entity`` from ``source`` (``files``: what a file source landed)."""
    if not enabled():
        return
    for dataset in source_datasets(source, entity, files):
        _record("inputs", lambda dataset=dataset: dataset)


def source_datasets(source: Any, entity: str, files: list[str]) -> list[DatasetRef]:
    """The datasets an extract of ``entity`` read: each file (the day files of a folder as the
    folder), the SQL source's table, the Salesforce object."""
    if source.name == "files":
        return file_datasets(files)
    if source.name == "sql":
        mapping = source.config.tables[entity]
        return [database_dataset(source.url(), mapping.schema_name, mapping.table)]
    if source.name == "salesforce":
        return [salesforce_dataset(source, source.config.objects[entity].object)]
    if source.name == "hubspot":
        return [hubspot_dataset(source, source.config.objects[entity].object)]
    return []


def file_datasets(files: list[str]) -> list[DatasetRef]:
    """Each file as a dataset; files named for a day (``usage_daily/2026-10-15.parquet``) are the
    partitions of their folder, which is the dataset (its input statistics count the files read),
    as OpenLineage's own date trimmer names a date-partitioned path."""
    from postsales.sources.files import DAY_NAME

    singles, folders = [], {}
    for name in files:
        path = Path(name)
        if DAY_NAME.match(path.stem):
            folders.setdefault(path.parent, []).append(path)
        else:
            singles.append(file_dataset(path))
    grouped = [
        DatasetRef("file", str(folder.resolve()), file_count=len(paths)) for folder, paths in sorted(folders.items())
    ]
    return singles + grouped


def crm_dataset(config: Any, adapter: Any) -> DatasetRef:
    """The CRM object a sync reads and writes (``include/rules/crm_sync.yaml``). Salesforce and
    HubSpot are named by the target the adapter already resolved for the sync state
    (``describe()``: ``salesforce:<instance host>/<object>``, ``hubspot:<portal id>/companies``),
    so lineage and state agree on which org or portal was written."""
    if config.adapter == "sql":
        return database_dataset(adapter.engine.url, None, config.sql.table)
    kind, _, target = adapter.describe().partition(":")
    where, _, name = target.rpartition("/")
    return DatasetRef(f"{kind}://{where}" if where else kind, name)


def read_crm(config: Any, adapter: Any) -> None:
    """The running task read the CRM object's current values (every sync, a dry run too)."""
    if enabled():
        _record("inputs", lambda: crm_dataset(config, adapter))


def wrote_crm(config: Any, adapter: Any) -> None:
    """The running task changed fields of the CRM object."""
    if enabled():
        _record("outputs", lambda: crm_dataset(config, adapter))
