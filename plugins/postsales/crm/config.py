"""``include/rules/crm_sync.yaml``: which CRM, which fields, and the safety settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from postsales import paths
from postsales.config import Identifier, StrictModel, Text, load_yaml

# Columns a field mapping may read: mart.account_segments, mart.account_forecasts and the stamp.
SYNCABLE_COLUMNS = {
    "value_tier": "text",
    "quadrant": "text",
    "recommended_quadrant": "text",
    "lifecycle_stage": "text",
    "health_score": "number",
    "health_band": "text",
    "nps_category": "text",
    "adoption_segment": "text",
    "engagement_model": "text",
    "case_study_candidate": "boolean",
    "firmographic_segment": "text",
    "arr_band": "text",
    "smb_to_mm_6_9m": "boolean",
    "mm_to_ent_12_15m": "boolean",
    "ent_decline_risk": "boolean",
    "projected_tier_12m": "text",
    "segment_updated_at": "date",
    "rules_version": "text",
}


class SqlCrm(StrictModel):
    conn_id: str | None = None
    url_env: str | None = "POSTSALES_CRM_SYNC_URL"
    # Neither set: the demo CRM the demo generator writes next to the file source (crm.sqlite).
    demo_crm_fallback: bool = True
    table: Identifier


class SalesforceCrm(StrictModel):
    conn_id: str = "salesforce_default"
    # No longer read (a warning says so): the API version is the connection's extra "version".
    api_version: str | None = Field(default=None, pattern=r"^\d+\.\d$")
    object: Identifier = "Account"
    bulk_threshold: int = Field(default=2000, ge=1)


class HubSpotCrm(StrictModel):
    conn_id: str = "hubspot_default"
    object: Literal["companies"] = "companies"


class KeyMapping(StrictModel):
    crm_key_field: Identifier


class FieldMapping(StrictModel):
    crm_field: Identifier
    write_nulls: bool = False


class Safety(StrictModel):
    max_changed_share: float = Field(default=0.3, gt=0, le=1)
    dry_run_first_push: bool = True


class Retries(StrictModel):
    attempts: int = Field(default=4, ge=1, le=10)
    backoff_seconds: float = Field(default=2, ge=0, le=300)


class Schedules(StrictModel):
    revision_interval_months: int = Field(default=6, ge=6, le=9)
    # Revisions fall on months anchor + k * interval.
    revision_anchor_month: date = date(2026, 1, 1)
    annual_review_month: int = Field(default=1, ge=1, le=12)

    @model_validator(mode="after")
    def _anchor_first_day(self) -> Schedules:
        if self.revision_anchor_month.day != 1:
            raise ValueError("revision_anchor_month must be the first day of a month")
        return self

    def is_revision_month(self, month: date) -> bool:
        months = (month.year - self.revision_anchor_month.year) * 12 + month.month - self.revision_anchor_month.month
        return months % self.revision_interval_months == 0


class CrmSyncConfig(StrictModel):
    version: Text
    adapter: Literal["sql", "salesforce", "hubspot"]
    sql: SqlCrm | None = None
    salesforce: SalesforceCrm | None = None
    hubspot: HubSpotCrm | None = None
    key: KeyMapping
    fields: dict[str, FieldMapping] = Field(min_length=1)
    manual_override_field: Identifier | None = None
    compare_with_crm: bool = True
    safety: Safety = Safety()
    retries: Retries = Retries()
    schedules: Schedules = Schedules()

    @model_validator(mode="after")
    def _consistent(self) -> CrmSyncConfig:
        if getattr(self, self.adapter) is None:
            raise ValueError(f"adapter is {self.adapter!r} but there is no '{self.adapter}' section")
        unknown = sorted(set(self.fields) - SYNCABLE_COLUMNS.keys())
        if unknown:
            raise ValueError(f"fields: unknown columns {unknown}; choose from {sorted(SYNCABLE_COLUMNS)}")
        targets = [mapping.crm_field for mapping in self.fields.values()]
        duplicated = sorted({t for t in targets if targets.count(t) > 1})
        if duplicated:
            raise ValueError(f"fields: CRM fields mapped more than once: {duplicated}")
        reserved = {self.key.crm_key_field, self.manual_override_field} & set(targets)
        if reserved:
            raise ValueError(f"fields: {sorted(reserved)} is the key or the manual-override field, not a tag")
        return self

    def crm_fields(self) -> dict[str, str]:
        """Our column -> CRM field."""
        return {column: mapping.crm_field for column, mapping in self.fields.items()}


def load_crm_sync(path: Path | None = None) -> CrmSyncConfig:
    return load_yaml(path or paths.rules_dir() / "crm_sync.yaml", CrmSyncConfig)
