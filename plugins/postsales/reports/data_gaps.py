"""Data gaps per field, for the people who fix them in the CRM: how many segmented accounts
miss each rule input and which dimensions fell back to Unknown or Unclassified because of it
(``include/sql/reports/data_gaps.sql`` over ``mart.account_data_gaps``; docs/metrics.md,
"Missing rule inputs"). One query, read by :func:`data_gaps`; the run summary prints it as
text and the evaluation report as a section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from postsales import warehouse
from postsales.reports.html import Section, table

# What a CRM owner reads for the gap "no row of the account" (mart.account_data_gaps.field).
FIELD_LABELS = {"accounts": "no valid account row (quarantined: see ops.quarantine)"}


@dataclass(frozen=True)
class FieldGap:
    field: str
    accounts: int  # segmented accounts missing it
    unknown: dict[str, int] = field(default_factory=dict)  # dimension -> accounts Unknown for lack of it

    @property
    def label(self) -> str:
        return FIELD_LABELS.get(self.field, self.field)


@dataclass(frozen=True)
class DataGaps:
    as_of_date: date
    segmented_accounts: int
    fields: list[FieldGap]  # most accounts first


def data_gaps(conn: sa.Connection, as_of: date | None = None) -> DataGaps | None:
    """The gaps of the latest segmentation on or before ``as_of`` (default: the latest); None without one."""
    if not sa.inspect(conn).has_table("account_data_gaps", schema="mart"):
        return None
    rows = warehouse.query(conn, "reports", "data_gaps", as_of_date=as_of)
    if not rows:
        return None
    totals: dict[str, int] = {}
    unknown: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.field is None:
            continue  # a segmentation without gaps
        if row.dimension is None:
            totals[row.field] = int(row.account_count)
        else:
            unknown.setdefault(row.field, {})[row.dimension] = int(row.account_count)
    as_of_date = rows[0].as_of_date
    return DataGaps(
        as_of_date=as_of_date if isinstance(as_of_date, date) else date.fromisoformat(str(as_of_date)[:10]),
        segmented_accounts=int(rows[0].segmented_accounts),
        fields=sorted(
            (FieldGap(name, count, unknown.get(name, {})) for name, count in totals.items()),
            key=lambda gap: (-gap.accounts, gap.field),
        ),
    )


def _unknown_text(gap: FieldGap) -> str:
    ordered = sorted(gap.unknown.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{dimension} {count}" for dimension, count in ordered)


def summary_lines(gaps: DataGaps | None) -> list[str]:
    """The gaps as lines of the run summary."""
    if gaps is None:
        return []
    head = f"data gaps as of {gaps.as_of_date} (mart.account_data_gaps; fill them in the CRM):"
    if not gaps.fields:
        return [f"{head} none: every rule input of the {gaps.segmented_accounts} segmented accounts is filled in"]
    lines = [head]
    for gap in gaps.fields:
        unknown = _unknown_text(gap)
        lines.append(
            f"  {gap.label}: {gap.accounts} of {gaps.segmented_accounts} segmented accounts"
            + (
                f"; Unknown or Unclassified because of it: {unknown}"
                if unknown
                else "; no value fell back to Unknown or Unclassified"
            )
        )
    return lines


def section(gaps: DataGaps | None) -> Section:
    """The gaps as a section of an HTML report."""
    title = "Data gaps"
    if gaps is None:
        return Section(title, "<p>No segmentation on or before this date.</p>")
    intro = (
        f"<p class=note>Segmentation as of {gaps.as_of_date}: {gaps.segmented_accounts} accounts. "
        "Rule inputs missing in the CRM, and the values that fell back to Unknown for lack of them "
        "(mart.account_data_gaps). Fill these fields in to segment the accounts fully.</p>"
    )
    rows = [(gap.label, gap.accounts, _unknown_text(gap) or "none") for gap in gaps.fields]
    empty = "Every rule input of every segmented account is filled in."
    headers = ["missing", "accounts", "Unknown or Unclassified because of it"]
    return Section(title, intro + table(headers, rows, empty=empty))
