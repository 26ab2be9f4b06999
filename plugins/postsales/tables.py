"""The warehouse tables the stages write, each defined in its one home.

``include/tables/<schema>/<table>.yaml`` states a table's description, grain, key,
partitioning (what one run replaces in one transaction), what fills it (the query, the
function, the DAGs), its columns and the invariants its rows must hold. This module reads
the homes into one SQLAlchemy ``MetaData``; a stage module takes its tables from here
(``table("mart.mrr_monthly")``) and never defines one itself. The raw and staging tables
follow ``include/rules/expectations.yaml`` and are built by ``postsales.warehouse``.

``tests/integration/test_table_invariants.py`` checks every home's key and invariants on a
warehouse the whole pipeline filled, on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from postsales import paths
from postsales.config import ConfigError, EntityRules, StrictModel, load_yaml

# The column types a home may name, and what each is in SQLAlchemy (the same DDL on
# DuckDB and PostgreSQL; double is double precision).
COLUMN_TYPES = {
    "text": sa.Text,
    "double": lambda: sa.Float(53),
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "boolean": sa.Boolean,
    "date": sa.Date,
    "timestamp": sa.DateTime,
}

# An expectations.yaml column type -> the staging column's type.
SQL_TYPES = {
    "string": sa.Text,
    "integer": sa.BigInteger,
    "number": sa.Float(53),
    "date": sa.Date,
    "timestamp": sa.DateTime,
    "boolean": sa.Boolean,
}

IDENTIFIER = r"^[a-z_][a-z0-9_]*$"


class ColumnHome(StrictModel):
    name: str = Field(pattern=IDENTIFIER)
    type: Literal["text", "double", "integer", "bigint", "boolean", "date", "timestamp"]
    nullable: bool = True
    description: str | None = None


class Invariant(StrictModel):
    """A rule the table's rows must hold, as the query of the rows that break it (none: it holds)."""

    name: str = Field(pattern=IDENTIFIER)
    description: str
    violations: str = Field(min_length=1, description="a select of the offending rows; no parameters")


class FilledBy(StrictModel):
    query: str | None = Field(None, description="the SQL file whose rows fill the table, from the project root")
    reads: list[str] = Field(default_factory=list, description="SQL files the code reads to compute the rows")
    code: str = Field(description="the function that writes the table")
    dags: list[str] = Field(min_length=1)


class TableHome(StrictModel):
    name: str = Field(pattern=r"^(raw|staging|mart|ops)\.[a-z_][a-z0-9_]*$")
    description: str
    grain: str
    key: list[str] = Field(description="the columns one row is unique on; empty for an append-only log")
    primary_key: bool = False
    partition: list[str] = Field(description="the columns a run replaces the rows of, in one transaction")
    columns_from: Literal["expectations"] | None = Field(
        None, description="expectations: the entity's columns of include/rules/expectations.yaml come first"
    )
    filled_by: FilledBy
    tests: list[str] = Field(default_factory=list, description="test files that read the table")
    columns: list[ColumnHome] = Field(min_length=1)
    invariants: list[Invariant] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_refer_to_columns(self) -> TableHome:
        names = [column.name for column in self.columns]
        if self.columns_from:  # key and partition name the entity's columns too: checked on the built table
            return self
        if len(set(names)) != len(names):
            raise ValueError(f"columns: a name is given twice: {sorted({n for n in names if names.count(n) > 1})}")
        for field in ("key", "partition"):
            unknown = [name for name in getattr(self, field) if name not in names]
            if unknown:
                raise ValueError(f"{field}: {unknown} are not columns of the table")
        if self.primary_key and not self.key:
            raise ValueError("primary_key: true needs a key")
        invariants = [invariant.name for invariant in self.invariants]
        if len(set(invariants)) != len(invariants):
            raise ValueError("invariants: a name is given twice")
        return self

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.name.split(".")[1]


def tables_dir() -> Path:
    return paths.include_dir() / "tables"


def homes() -> dict[str, TableHome]:
    """Every table home, by qualified name; a home's name must match its path. Read once per
    include directory, as the SQL templates are (``warehouse._sql_templates``)."""
    return _homes(tables_dir())


@cache
def _homes(directory: Path) -> dict[str, TableHome]:
    found: dict[str, TableHome] = {}
    for path in sorted(directory.glob("*/*.yaml")):
        home = load_yaml(path, TableHome)
        expected = f"{path.parent.name}.{path.stem}"
        if home.name != expected:
            raise ConfigError(f"{path}: field 'name': {home.name!r} must be {expected!r}, the file's place")
        found[home.name] = home
    return found


def catalog() -> sa.MetaData:
    """One MetaData holding every table of :func:`homes` but the staging tables, whose columns
    follow expectations.yaml (:func:`staging_table`)."""
    return _catalog(tables_dir())


@cache
def _catalog(directory: Path) -> sa.MetaData:
    metadata = sa.MetaData()
    for home in _homes(directory).values():
        if home.columns_from is None:
            _build(home, metadata)
    return metadata


def staging_table(entity: str, rules: EntityRules, metadata: sa.MetaData) -> sa.Table:
    """``staging.<entity>``: the entity's columns of expectations.yaml, typed, then its home's."""
    home = homes()[f"staging.{entity}"]
    clash = sorted({column.name for column in home.columns} & set(rules.columns))
    if clash:
        raise ConfigError(
            f"include/rules/expectations.yaml: field 'entities.{entity}.columns': {clash} are the warehouse's own "
            f"columns of staging.{entity} (include/tables/staging/{entity}.yaml): rename them"
        )
    declared = [sa.Column(name, SQL_TYPES[rule.type]) for name, rule in rules.columns.items()]
    return _build(home, metadata, declared)


def _build(home: TableHome, metadata: sa.MetaData, leading: list[sa.Column] | None = None) -> sa.Table:
    key = set(home.key) if home.primary_key else set()
    return sa.Table(
        home.table_name,
        metadata,
        *(leading or []),
        *(
            sa.Column(
                column.name,
                COLUMN_TYPES[column.type](),
                nullable=column.nullable,
                primary_key=column.name in key,
                comment=column.description,
            )
            for column in home.columns
        ),
        schema=home.schema,
        info={"home": home},
    )


def table(name: str) -> sa.Table:
    """The table ``<schema>.<table>`` as its home defines it."""
    try:
        return catalog().tables[name]
    except KeyError:
        raise ConfigError(f"{tables_dir() / name.replace('.', '/', 1)}.yaml: no such table home") from None


def home_of(table_: sa.Table) -> TableHome:
    return table_.info["home"]


def violations(conn: sa.Connection, table_: sa.Table, *, limit: int = 5) -> dict[str, list[tuple]]:
    """The rows of ``table_`` breaking its home's rules, by rule (only rules broken): ``key_unique``
    (rows sharing a key) and each invariant. Up to ``limit`` rows each."""
    home = home_of(table_)
    found: dict[str, list[tuple]] = {}
    if home.key:
        key = [table_.c[name] for name in home.key]
        duplicates = sa.select(*key, sa.func.count().label("rows")).group_by(*key).having(sa.func.count() > 1)
        rows = conn.execute(duplicates.limit(limit)).all()
        if rows:
            found["key_unique"] = [tuple(row) for row in rows]
    for invariant in home.invariants:
        query = sa.text(f"select * from (\n{invariant.violations}\n) as violations limit {int(limit)}")
        rows = conn.execute(query).all()
        if rows:
            found[invariant.name] = [tuple(row) for row in rows]
    return found
