"""Configuration: YAML files under ``include/rules`` loaded into pydantic models.

Every file is read by :func:`read_rules_yaml` (``yaml.safe_load`` that also rejects a key
written twice in one mapping); any problem is raised as :class:`ConfigError` naming the file,
the field and the reason, so a data engineer can fix the YAML without reading a traceback.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from postsales import paths
from postsales.errors import ConfigError  # defined there with the other errors; imported from here too

ENTITIES = ("accounts", "contracts", "survey_responses", "usage_daily")
Entity = Literal["accounts", "contracts", "survey_responses", "usage_daily"]

# Identifiers reach SQL (table and column names); only plain names are accepted.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
Identifier = Annotated[str, Field(pattern=IDENTIFIER.pattern)]
# A column of the input contract: a plain name that starts with a letter (the warehouse's own
# columns start with "_": _source, _run_id, _extra ...) and has no "__" (the gate's helper columns).
COLUMN_NAME = re.compile(r"^(?!.*__)[A-Za-z][A-Za-z0-9_]{0,62}$")


def _column_name(name: str) -> str:
    if not COLUMN_NAME.match(name):
        raise ValueError(f"{name!r} is not a column name: a letter, then letters, digits and single underscores")
    return name


ColumnName = Annotated[str, AfterValidator(_column_name)]

# Control characters (NUL, ESC, ...): PostgreSQL refuses a NUL in text and a CRM field or a
# terminal would carry the rest; tab and line breaks are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_printable(value: str) -> str:
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"{value!r} holds the control character U+{ord(found.group()):04X} at position {found.start()}: "
            "rules text must be printable"
        )
    return value


# Text from a rules file that reaches the warehouse or the CRM (labels, group names, values).
Text = Annotated[str, AfterValidator(check_printable)]


class StrictModel(BaseModel):
    # allow_inf_nan=False: .nan or .inf is no value of any rules field (a NaN band bound or
    # health zero_at silently changed every comparison; an .inf one broke the SQL).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- sources.yaml ---------------------------------------------------------------


class FilesSource(StrictModel):
    """A directory holding the file-source contract (see docs/input-contract.md)."""

    directory: str = "data/demo"


class SqlEntityMapping(StrictModel):
    table: Identifier
    schema_name: Identifier | None = Field(default=None, alias="schema")
    # our column name -> the source column name
    columns: dict[Identifier, Identifier] = Field(default_factory=dict)


class SqlSource(StrictModel):
    """Any SQLAlchemy database holding the same entities, e.g. a CRM mirror."""

    # Secrets never live in YAML: the URL comes from an Airflow connection or an env var.
    conn_id: str | None = None
    url_env: str | None = "POSTSALES_CRM_URL"
    tables: dict[Entity, SqlEntityMapping]

    @model_validator(mode="after")
    def _has_a_url(self) -> SqlSource:
        if not self.conn_id and not self.url_env:
            raise ValueError("set conn_id (an Airflow connection) or url_env (an environment variable)")
        return self


class SalesforceObjectMapping(StrictModel):
    object: Identifier
    # our column name -> the Salesforce field
    columns: dict[Identifier, Identifier] = Field(min_length=1)


class SalesforceSource(StrictModel):
    """Entities read from Salesforce with SOQL, incrementally on SystemModstamp.

    Each entity read from it must map its incremental column (checked by :class:`SourcesConfig`);
    whether the fields exist is checked against the object when it is read.
    """

    conn_id: str = "salesforce_default"
    # No longer read (a warning says so): the API version is the connection's extra "version".
    api_version: str | None = Field(default=None, pattern=r"^\d+\.\d$")
    objects: dict[Entity, SalesforceObjectMapping]


# A HubSpot property's internal name, and an object type: a standard one (companies, deals,
# line_items, feedback_submissions), a custom object's name (p_...) or its type id (2-1234567).
HubSpotName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]
HubSpotObjectType = Annotated[str, Field(pattern=r"^([a-z_]+|p_[A-Za-z0-9_]+|[0-9]+-[0-9]+)$")]


class HubSpotObjectMapping(StrictModel):
    object: HubSpotObjectType
    # our column name -> the HubSpot property (internal name)
    properties: dict[Identifier, HubSpotName] = Field(min_length=1)
    # Only records whose property equals the value are read (e.g. hs_is_closed_won: "true").
    filters: dict[HubSpotName, str] = Field(default_factory=dict)
    # account_id is this property of the record's primary associated company (hs_object_id: the
    # company's record id), rather than a property of the record itself.
    account_from_company: HubSpotName | None = None

    @model_validator(mode="after")
    def _one_account_id(self) -> HubSpotObjectMapping:
        if self.account_from_company and "account_id" in self.properties:
            raise ValueError("account_id is both mapped in properties and taken from account_from_company: keep one")
        return self


class HubSpotSource(StrictModel):
    """Entities read from HubSpot with the CRM search API, incrementally on hs_lastmodifieddate."""

    conn_id: str = "hubspot_default"
    objects: dict[Entity, HubSpotObjectMapping]


class EntitySource(StrictModel):
    """Where one entity comes from and which column drives incremental reads."""

    source: Literal["files", "sql", "salesforce", "hubspot"] = "files"
    incremental_column: Identifier


class SourcesConfig(StrictModel):
    warehouse_url: str = "duckdb:///data/warehouse.duckdb"
    files: FilesSource = FilesSource()
    sql: SqlSource | None = None
    salesforce: SalesforceSource | None = None
    hubspot: HubSpotSource | None = None
    entities: dict[Entity, EntitySource]

    @model_validator(mode="after")
    def _complete(self) -> SourcesConfig:
        missing = [e for e in ENTITIES if e not in self.entities]
        if missing:
            raise ValueError(f"entities is missing {missing}")
        for kind in ("sql", "salesforce", "hubspot"):
            if any(e.source == kind for e in self.entities.values()) and getattr(self, kind) is None:
                raise ValueError(f"an entity uses source '{kind}' but no '{kind}' section is configured")
        for entity, chosen in self.entities.items():
            if chosen.source in ("hubspot", "salesforce"):
                _check_crm_mapping(entity, chosen.incremental_column, getattr(self, chosen.source))
        return self


def _check_crm_mapping(entity: str, incremental_column: str, source: SalesforceSource | HubSpotSource) -> None:
    """What can be checked of a CRM source's mapping without the CRM; the source checks the names
    against the object (Salesforce's describe, HubSpot's properties) before it reads."""
    kind, listed, example = (
        ("salesforce", "columns", "the datetime field the interval is read on, e.g. SystemModstamp (unmapped, "
         "every run would read every record)")
        if isinstance(source, SalesforceSource)
        else ("hubspot", "properties", "the property the interval is read on, e.g. hs_lastmodifieddate")
    )  # fmt: skip
    mapping = source.objects.get(entity)
    if mapping is None:
        raise ValueError(f"entities.{entity}.source is '{kind}' but {kind}.objects has no {entity} mapping")
    if incremental_column not in getattr(mapping, listed):
        raise ValueError(
            f"{kind}.objects.{entity}.{listed} must map {incremental_column} (entities.{entity}.incremental_column) "
            f"to {example}"
        )


# --- expectations.yaml ----------------------------------------------------------

ColumnType = Literal["string", "integer", "number", "date", "timestamp", "boolean"]
ORDERED_TYPES = ("integer", "number", "date", "timestamp")


class ColumnRule(StrictModel):
    type: ColumnType
    not_null: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[Text] | None = None
    references: str | None = None  # "<entity>.<column>"
    not_future: bool = False
    # Range checks that apply only to rows matching another column's value,
    # e.g. score 0-10 where survey_type == nps. The values are data, compared as data: each must
    # be one of the other column's `allowed` values (checked in EntityRules).
    ranges_when: dict[ColumnName, dict[Text, tuple[float, float]]] | None = None
    # Dates a CRM writes for "no end" (9999-12-31): read as empty, which for end_date is evergreen.
    open_ended: list[date] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.references is not None:
            entity, _, column = self.references.partition(".")
            if entity not in ENTITIES or not COLUMN_NAME.match(column):
                raise ValueError(f"references must be '<entity>.<column>', got {self.references!r}")
        numeric = self.type in ("integer", "number")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError("min/max apply to integer and number columns only")
        if self.open_ended and (self.type != "date" or self.not_null):
            raise ValueError("open_ended applies to date columns that may be empty only")
        if self.ranges_when and not numeric:
            raise ValueError("ranges_when applies to integer and number columns only")
        for other, ranges in (self.ranges_when or {}).items():
            for value, (low, high) in ranges.items():
                if low > high:
                    raise ValueError(f"ranges_when.{other}.{value}: {low:g} is greater than {high:g}")
        return self


class ColumnPairRule(StrictModel):
    """``greater`` must be >= ``lesser`` (or strictly greater) where both are set."""

    greater: ColumnName
    lesser: ColumnName
    or_equal: bool = True


class Thresholds(StrictModel):
    """A batch fails when more than ``max_failed_fraction`` of its rows fail validation
    and at least ``min_failed_rows`` do (so one bad row in a three-row day quarantines
    rather than stops the pipeline)."""

    max_failed_fraction: float = Field(default=0.05, ge=0, le=1)
    min_failed_rows: int = Field(default=10, ge=0)


# The days a pandas Timestamp (nanoseconds) holds, which the gate compares dates as.
TIMESTAMP_DAYS = (date(1677, 9, 22), date(2262, 4, 10))


class PlausibleDates(StrictModel):
    """Every date and timestamp column must fall in [min, max] (both days included).

    Fixed days, not "N years from now": a row must get the same verdict in a daily run and in
    a full refresh years later. A 0001-01-01 start date (an unset CRM field) would otherwise
    spread one contract over two thousand years of monthly cohorts.
    """

    min: date = Field(default=date(1990, 1, 1), ge=TIMESTAMP_DAYS[0], le=TIMESTAMP_DAYS[1])
    max: date = Field(default=date(2099, 12, 31), ge=TIMESTAMP_DAYS[0], le=TIMESTAMP_DAYS[1])

    @model_validator(mode="after")
    def _ordered(self) -> PlausibleDates:
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be before max {self.max}")
        return self


class DataDocs(StrictModel):
    """Great Expectations Data Docs under <data dir>/data_docs/ (docs/data-quality.md)."""

    # Sites kept per entity (one per extract run); older ones are deleted after each extract.
    keep_runs: int = Field(default=30, ge=1)


class EntityRules(StrictModel):
    key: list[ColumnName]
    columns: dict[ColumnName, ColumnRule]
    column_pairs: list[ColumnPairRule] = Field(default_factory=list)
    unique_key: bool = True
    thresholds: Thresholds | None = None

    @model_validator(mode="after")
    def _known_columns(self) -> EntityRules:
        for name in self.key:
            if name not in self.columns:
                raise ValueError(f"key column {name!r} is not declared under columns")
        for pair in self.column_pairs:
            for name in (pair.greater, pair.lesser):
                if name not in self.columns:
                    raise ValueError(f"column_pairs refers to undeclared column {name!r}")
                if self.columns[name].type not in ORDERED_TYPES:
                    raise ValueError(f"column_pairs compares {name!r}: it must be one of {list(ORDERED_TYPES)}")
        for name, rule in self.columns.items():
            for other, ranges in (rule.ranges_when or {}).items():
                where = f"columns.{name}.ranges_when.{other}"
                if other not in self.columns:
                    raise ValueError(f"{where}: {other!r} is not a declared column")
                allowed = self.columns[other].allowed
                if allowed is None:
                    raise ValueError(f"{where}: {other!r} must declare its allowed values")
                unknown = [value for value in ranges if value not in allowed]
                if unknown:
                    raise ValueError(f"{where}: {unknown} not among {other}'s allowed values {allowed}")
        return self


class ExpectationsConfig(StrictModel):
    version: int
    thresholds: Thresholds = Thresholds()
    plausible_dates: PlausibleDates = PlausibleDates()
    data_docs: DataDocs = DataDocs()
    entities: dict[Entity, EntityRules]

    def thresholds_for(self, entity: str) -> Thresholds:
        return self.entities[entity].thresholds or self.thresholds

    @model_validator(mode="after")
    def _references_resolve(self) -> ExpectationsConfig:
        missing = [e for e in ENTITIES if e not in self.entities]
        if missing:
            raise ValueError(f"entities is missing {missing}")
        for entity, rules in self.entities.items():
            for name, rule in rules.columns.items():
                if rule.references:
                    target, _, column = rule.references.partition(".")
                    if column not in self.entities[target].columns:
                        raise ValueError(
                            f"entities.{entity}.columns.{name}.references: {rule.references!r} is not a declared column"
                        )
        return self


# --- loading --------------------------------------------------------------------

Model = TypeVar("Model", bound=BaseModel)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    def __init__(self, key: object, line: int, first_line: int) -> None:
        super().__init__(None, None, f"key {key!r} is given twice")
        self.key, self.line, self.first_line = key, line, first_line


# libyaml's parser under the same safe constructor when PyYAML has it (PyPI's wheels do): the
# 33 table homes and the rules files parse in ~1/8 of the time, in every task's process.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RulesLoader(_SafeLoader):
    """``yaml.SafeLoader`` that rejects a key written twice in one mapping.

    Plain YAML keeps the last copy: a second ``account_id: {type: string}`` silently dropped
    the first one's ``not_null`` and ``unique``. Merge keys (``<<: *base``) may still be overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            lines: dict[object, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in lines:
                        raise DuplicateKeyError(key, line, lines[key])
                    lines[key] = line
                except TypeError:  # an unhashable key: SafeLoader rejects it with its own message
                    continue
        return super().construct_mapping(node, deep=deep)


def read_rules_yaml(text: str) -> object:
    """``yaml.safe_load`` semantics (no tags beyond plain data), plus no key written twice."""
    return yaml.load(text, Loader=RulesLoader)  # a SafeLoader: plain data only, never objects


def load_yaml(path: Path, model: type[Model]) -> Model:
    """Load ``path`` into ``model``; errors name the file, the field and the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    try:
        data = read_rules_yaml(text)
    except DuplicateKeyError as exc:
        raise ConfigError(
            f"{path}: line {exc.line}: key {exc.key!r} is given twice (first on line {exc.first_line}); "
            "YAML would keep only the last: remove one"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '<root>'}': {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


def load_sources(path: Path | None = None) -> SourcesConfig:
    return load_yaml(path or paths.rules_dir() / "sources.yaml", SourcesConfig)


def load_expectations(path: Path | None = None) -> ExpectationsConfig:
    return load_yaml(path or paths.rules_dir() / "expectations.yaml", ExpectationsConfig)


def _resolve_local_path(value: str) -> str:
    """Make a relative path (or a relative ``duckdb:///`` URL) relative to the project root."""
    prefix = "duckdb:///"
    if value.startswith(prefix):
        db = value[len(prefix) :]
        if db and db != ":memory:" and not db.startswith("/"):
            return prefix + str(paths.project_root() / db)
        return value
    return value


def warehouse_url(config: SourcesConfig | None = None) -> str:
    """``POSTSALES_WAREHOUSE_URL`` wins over sources.yaml's ``warehouse_url``."""
    url = os.environ.get("POSTSALES_WAREHOUSE_URL") or (config or load_sources()).warehouse_url
    return _resolve_local_path(url)


def source_dir(config: SourcesConfig | None = None) -> Path:
    """``POSTSALES_SOURCE_DIR`` wins over sources.yaml's ``files.directory``."""
    raw = os.environ.get("POSTSALES_SOURCE_DIR") or (config or load_sources()).files.directory
    path = Path(raw)
    return path if path.is_absolute() else paths.project_root() / path
