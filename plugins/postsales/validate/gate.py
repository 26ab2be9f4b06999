"""Great Expectations gate for one extracted batch.

The suite is built from ``include/rules/expectations.yaml``. Every expectation is
row-level, so GX tells us which rows failed and why: those rows go to quarantine
with the failed expectations and the offending values, and the rest load. A batch
that breaks the contract as a whole (a required column missing, too many bad rows)
fails the task with a message that names the table, column, counts and the fix.

No rules-file value is ever parsed as code: a condition (a value that must parse, a reference
that must exist, a range that applies where another column has a value) is computed from the
data into a helper column whose name we generate, and GX checks that column; no expectation
has a ``row_condition``. The frame GX sees has its text HTML-escaped, so a value shown in the
Data Docs is text, never markup.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from postsales.config import DataDocs, EntityRules, PlausibleDates, Thresholds
from postsales.errors import DataContractError
from postsales.sources import LINEAGE
from postsales.validate.coerce import coerce
from postsales.validate.data_docs import publish
from postsales.values import is_missing

log = logging.getLogger(__name__)

# Helper columns of the frame GX validates; declared column names cannot contain "__".
RAW_SUFFIX = "__raw"
UNPARSED_SUFFIX = "__unparsed"
UNKNOWN_SUFFIX = "__unknown"
WHEN_SUFFIX = "__when_"
# True where a row is on the day its file is named for (or the file is named for no day).
FILED = "_filed"
# A unique or key column's values on rows on their file's day, else null.
FILED_SUFFIX = "__filed"


@dataclass
class GateResult:
    entity: str
    rows_read: int
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    failures_by_expectation: Counter = field(default_factory=Counter)
    data_docs: str | None = None
    success: bool = True

    @property
    def rows_valid(self) -> int:
        return len(self.valid)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)


@dataclass(frozen=True)
class _Check:
    label: str
    columns: tuple[str, ...]
    expectation: Any


def require_columns(entity: str, origin: str, columns: list[str], rules: EntityRules) -> None:
    """Fail the batch when a declared column is not among ``columns`` (one file's, or the batch's)."""
    missing = [name for name in rules.columns if name not in columns]
    if missing:
        raise DataContractError(_missing_columns_message(entity, origin, missing, columns))


def _missing_columns_message(entity: str, origin: str, missing: list[str], found: list[str]) -> str:
    found = [c for c in found if c not in LINEAGE]  # not the lineage the adapters add
    return (
        f"{entity} ({origin}): required column(s) {missing} missing; found {found}. "
        "Fix: add the column(s) to the source export, or map the source column names "
        "in include/rules/sources.yaml."
    )


def _when_column(name: str, other: str, number: int) -> str:
    """The helper column holding ``name`` where ``other`` has its ``number``-th ranges_when value."""
    return f"{name}{WHEN_SUFFIX}{other}_{number}"


def misfiled(values: pd.Series, file_days: pd.Series) -> pd.Series:
    """Typed incremental values not on the day their file is named for (False where either is missing)."""
    days = pd.to_datetime(pd.Series(file_days.to_numpy(), index=values.index), format="ISO8601", errors="coerce")
    return (values.notna() & days.notna() & (values.dt.normalize() != days)).astype(bool)


def build_checks(
    entity: str,
    rules: EntityRules,
    not_after: datetime,
    plausible: PlausibleDates | None = None,
    filed_column: str | None = None,
) -> list[_Check]:
    """One row-level GX expectation per rule in the YAML, labelled for humans.

    ``filed_column``: the batch comes from files named for days and ``FILED`` says which rows
    are on their file's day; the others fail one check and are left out of the uniqueness
    checks, so a row copied into another day's file does not take the original down with it
    (whether both files are gated together or not).
    """
    plausible = plausible or PlausibleDates()

    def unique_column(name: str) -> str:
        # Misfiled rows are null in the FILED_SUFFIX copy, and GX skips nulls in uniqueness checks.
        return name + FILED_SUFFIX if filed_column else name

    import great_expectations.expectations as gxe

    checks: list[_Check] = []
    for name, rule in rules.columns.items():
        raw_name = name + RAW_SUFFIX
        if rule.not_null:
            checks.append(
                _Check(
                    f"{name} is required",
                    (name,),
                    gxe.ExpectColumnValuesToNotBeNull(column=raw_name),
                )
            )
        if rule.type != "string":
            checks.append(
                _Check(
                    f"{name} must be a valid {rule.type}",
                    (name,),
                    gxe.ExpectColumnValuesToBeNull(column=name + UNPARSED_SUFFIX),
                )
            )
        if rule.unique:
            checks.append(
                _Check(f"{name} must be unique", (name,), gxe.ExpectColumnValuesToBeUnique(column=unique_column(name)))
            )
        if rule.min is not None or rule.max is not None:
            bounds = _bounds_text(rule.min, rule.max)
            checks.append(
                _Check(
                    f"{name} must be in {bounds}",
                    (name,),
                    gxe.ExpectColumnValuesToBeBetween(column=name, min_value=rule.min, max_value=rule.max),
                )
            )
        for other, ranges in (rule.ranges_when or {}).items():
            for number, (value, (low, high)) in enumerate(ranges.items()):
                checks.append(
                    _Check(
                        f"{name} must be in {_bounds_text(low, high)} when {other} is {value}",
                        (name, other),
                        gxe.ExpectColumnValuesToBeBetween(
                            column=_when_column(name, other, number), min_value=low, max_value=high
                        ),
                    )
                )
        if rule.allowed is not None:
            checks.append(
                _Check(
                    f"{name} must be one of {rule.allowed}",
                    (name,),
                    gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[_inert_text(v) for v in rule.allowed]),
                )
            )
        if rule.references is not None:
            checks.append(
                _Check(
                    f"{name} must exist in {rule.references}",
                    (name,),
                    gxe.ExpectColumnValuesToBeNull(column=name + UNKNOWN_SUFFIX),
                )
            )
        if rule.type in ("date", "timestamp"):
            checks.append(
                _Check(
                    f"{name} must be between {plausible.min} and {plausible.max}",
                    (name,),
                    gxe.ExpectColumnValuesToBeBetween(
                        column=name,
                        min_value=pd.Timestamp(plausible.min),
                        max_value=pd.Timestamp(plausible.max + timedelta(days=1)),
                        strict_max=True,  # any time on the max day is in
                    ),
                )
            )
        if rule.not_future:
            checks.append(
                _Check(
                    # No timestamp in the reason: a rerun a minute later must write the same rows.
                    f"{name} must not be in the future",
                    (name,),
                    gxe.ExpectColumnValuesToBeBetween(column=name, max_value=pd.Timestamp(not_after)),
                )
            )
    for pair in rules.column_pairs:
        relation = ">=" if pair.or_equal else ">"
        checks.append(
            _Check(
                f"{pair.greater} must be {relation} {pair.lesser}",
                (pair.greater, pair.lesser),
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=pair.greater,
                    column_B=pair.lesser,
                    or_equal=pair.or_equal,
                    ignore_row_if="either_value_is_missing",
                ),
            )
        )
    if rules.unique_key and len(rules.key) > 1:
        checks.append(
            _Check(
                f"({', '.join(rules.key)}) must be unique",
                tuple(rules.key),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=[unique_column(name) for name in rules.key]),
            )
        )
    if filed_column:
        checks.append(
            _Check(
                f"{filed_column} must be the day its file is named for",
                (filed_column,),
                gxe.ExpectColumnValuesToBeInSet(column=FILED, value_set=[True]),
            )
        )
    return checks


def _bounds_text(low: float | None, high: float | None) -> str:
    low_text = "-inf" if low is None else f"{low:g}"
    high_text = "inf" if high is None else f"{high:g}"
    return f"[{low_text}, {high_text}]"


def _frame_for_gate(raw: pd.DataFrame, rules: EntityRules, known: dict[str, set[str]]) -> pd.DataFrame:
    frame = pd.DataFrame(index=raw.index)
    for name, rule in rules.columns.items():
        values = raw[name]
        # Blank strings are missing values, whatever the source format.
        values = values.where(values.isna() | (values.astype("object").map(lambda v: str(v).strip()) != ""))
        if rule.open_ended:
            values = values.where(~coerce(values, rule.type).isin(pd.to_datetime(rule.open_ended)))
        frame[name + RAW_SUFFIX] = values
        frame[name] = coerce(values, rule.type)
        if rule.type != "string":
            # Set but not parseable as the column's type: the raw value, else null.
            frame[name + UNPARSED_SUFFIX] = values.where(values.notna() & frame[name].isna())
        if rule.references is not None:
            targets = known.get(rule.references, set())
            frame[name + UNKNOWN_SUFFIX] = frame[name].where(frame[name].notna() & ~frame[name].isin(targets))
    for name, rule in rules.columns.items():
        for other, ranges in (rule.ranges_when or {}).items():
            for number, value in enumerate(ranges):
                # Compared as data: the YAML value is never part of an expression.
                frame[_when_column(name, other, number)] = frame[name].where(frame[other] == value)
    return frame


# html.escape's table: a value shown in Data Docs must be text, never markup.
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def _inert_text(text: str) -> str:
    return text.translate(_HTML_ESCAPES)


def _inert(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text value HTML-escaped, for GX and its Data Docs.

    GX writes the unexpected values into its pages as they are. Escaping is one-to-one, so equality,
    uniqueness and set membership (``allowed`` is escaped the same way) give the same results.
    """
    inert = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind == "string":
            inert[column] = values.str.translate(_HTML_ESCAPES)
        elif kind not in ("empty", "boolean", "integer", "floating", "decimal"):
            inert[column] = values.map(lambda v: _inert_text(v) if isinstance(v, str) else v)
    return inert


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def _run_suite(entity: str, frame: pd.DataFrame, checks: list[_Check], docs_dir: Path | None, run_name: str):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    actions = []
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name="postsales",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["postsales"]))
    batch_definition = (
        context.data_sources.add_pandas(f"{entity}_source")
        .add_dataframe_asset(entity)
        .add_batch_definition_whole_dataframe(f"{entity}_batch")
    )
    suite = gx.ExpectationSuite(name=f"{entity}_contract")
    for index, check in enumerate(checks):
        check.expectation.meta = {"label": check.label, "check": index}
        suite.add_expectation(check.expectation)
    suite = context.suites.add(suite)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{entity}_validation", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=_safe_name(f"{entity}_{run_name}"),
            validation_definitions=[validation],
            actions=actions,
            result_format={"result_format": "COMPLETE"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": _inert(frame)})
    validation_result = next(iter(result.run_results.values()))
    return validation_result


def run_gate(
    entity: str,
    raw: pd.DataFrame,
    rules: EntityRules,
    thresholds: Thresholds,
    *,
    not_after: datetime,
    known: dict[str, set[str]] | None = None,
    origin: str = "source",
    plausible_dates: PlausibleDates | None = None,
    file_days: tuple[str, pd.Series] | None = None,
    docs_dir: Path | None = None,
    run_name: str = "run",
    keep_docs_runs: int = DataDocs().keep_runs,
) -> GateResult:
    """Validate ``raw`` (strings, one column per source column) and split it.

    ``known`` maps a ``references`` target such as ``accounts.account_id`` to the
    set of values that exist. ``origin`` names the file or table in messages. Dates outside
    ``plausible_dates`` (default: the YAML's defaults) are quarantined. ``file_days``
    (incremental column, the day each row's file is named for or None) quarantines rows filed
    under another day. ``docs_dir``
    (``data_docs.site_dir``) gets the batch's Data Docs, published for offline reading with
    the entity's sites beyond ``keep_docs_runs`` deleted.
    """
    known = known or {}
    missing = [name for name in rules.columns if name not in raw.columns]
    if missing and len(raw) == 0 and set(raw.columns) <= set(LINEAGE):
        # Nothing was read at all (no file covers the interval; only the lineage column the
        # extract adds): an empty batch, not a broken one.
        raw = pd.DataFrame(columns=[*rules.columns, *raw.columns], dtype="object")
        missing = []
    if missing:
        raise DataContractError(_missing_columns_message(entity, origin, missing, list(raw.columns)))
    raw = raw.reset_index(drop=True)
    rows_read = len(raw)
    frame = _frame_for_gate(raw, rules, known)
    filed_column = None
    if file_days is not None:
        filed_column, days = file_days
        frame[FILED] = ~misfiled(frame[filed_column], days)
        unique_columns = {name for name, rule in rules.columns.items() if rule.unique}
        for name in unique_columns | (set(rules.key) if rules.unique_key else set()):
            frame[name + FILED_SUFFIX] = frame[name].where(frame[FILED])
    checks = build_checks(entity, rules, not_after, plausible_dates, filed_column)

    failed: dict[int, list[str]] = {}
    offending: dict[int, dict[str, Any]] = {}
    counts: Counter = Counter()
    data_docs = None
    success = True
    if rows_read:
        result = _run_suite(entity, frame, checks, docs_dir, run_name)
        success = bool(result.success)
        # GX does not guarantee result order; follow the suite's order so reasons are stable.
        for expectation_result in sorted(result.results, key=lambda r: r.expectation_config.meta["check"]):
            info = expectation_result.exception_info or {}
            if info.get("raised_exception"):
                raise RuntimeError(
                    f"{entity}: Great Expectations could not evaluate "
                    f"{expectation_result.expectation_config.type}: {info.get('exception_message')}"
                )
            check = checks[expectation_result.expectation_config.meta["check"]]
            rows = expectation_result.result.get("unexpected_index_list") or []
            counts[check.label] += len(rows)
            for row in rows:
                failed.setdefault(row, []).append(check.label)
                values = offending.setdefault(row, {})
                for column in check.columns:
                    values[column] = _jsonable(raw.at[row, column])
        if docs_dir is not None:
            data_docs = str(publish(docs_dir, entity, keep_docs_runs))
            log.info("Great Expectations Data Docs for %s: %s", entity, data_docs)

    bad_rows = sorted(failed)
    fraction = len(bad_rows) / rows_read if rows_read else 0.0
    if fraction > thresholds.max_failed_fraction and len(bad_rows) >= thresholds.min_failed_rows:
        top = ", ".join(f"'{label}': {n}" for label, n in counts.most_common(5) if n)
        raise DataContractError(
            f"{entity} ({origin}): {len(bad_rows)} of {rows_read} rows ({fraction:.1%}) failed validation, "
            f"above the {thresholds.max_failed_fraction:.1%} threshold; top failures: {top}. Nothing was loaded. "
            "Fix the source rows (see the Data Docs"
            + (f" at {data_docs}" if data_docs else "")
            + ") or raise thresholds.max_failed_fraction in include/rules/expectations.yaml."
        )

    declared = list(rules.columns)
    # The adapters' lineage (_source) is passed through; any other column, `_notes` too, is data.
    lineage = [c for c in raw.columns if c in LINEAGE]
    extra_columns = [c for c in raw.columns if c not in rules.columns and c not in lineage]
    keep = frame.index.difference(bad_rows)
    valid = frame.loc[keep, declared].copy()
    for column in lineage:
        valid[column] = raw.loc[keep, column]
    if extra_columns:
        valid["_extra"] = [
            json.dumps({c: _jsonable(v) for c, v in zip(extra_columns, row, strict=True)}, sort_keys=True)
            for row in raw.loc[keep, extra_columns].itertuples(index=False)
        ]
    else:
        valid["_extra"] = None
    quarantine = pd.DataFrame(
        {
            "record_key": [_record_key(raw, rules.key, row) for row in bad_rows],
            "failed_expectations": [json.dumps(failed[row]) for row in bad_rows],
            "offending_values": [json.dumps(offending[row], sort_keys=True) for row in bad_rows],
            "raw_row": [json.dumps(_row_dict(raw, row)) for row in bad_rows],
            **{column: [raw.at[row, column] for row in bad_rows] for column in lineage},
        }
    )
    if len(valid) + len(quarantine) != rows_read:
        raise AssertionError(f"{entity}: rows read {rows_read} != valid {len(valid)} + quarantined {len(quarantine)}")
    return GateResult(
        entity=entity,
        rows_read=rows_read,
        valid=valid.reset_index(drop=True),
        quarantine=quarantine,
        failures_by_expectation=+counts,
        data_docs=data_docs,
        success=success,
    )


def _jsonable(value: Any) -> Any:
    if is_missing(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _row_dict(raw: pd.DataFrame, row: int) -> dict[str, Any]:
    """The source row as read, without the adapter's lineage columns."""
    return {column: _jsonable(raw.at[row, column]) for column in raw.columns if column not in LINEAGE}


def _record_key(raw: pd.DataFrame, key: list[str], row: int) -> str:
    values = [_jsonable(raw.at[row, column]) for column in key]
    return "|".join("" if v is None else str(v) for v in values)
