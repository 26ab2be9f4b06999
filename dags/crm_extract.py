"""
### CRM extract

Reads **accounts**, **contracts** and **survey responses** changed in the run's data
interval (by `updated_at` / `responded_at`) from the configured source, validates them
with the Great Expectations gate and loads `raw` → `staging`. Bad rows go to
`ops.quarantine` with the reasons. Each task replaces exactly its interval's partition
in one transaction, so reruns and backfills are idempotent.

Params: `full_refresh` reads the whole source and replaces the tables; `allow_empty`
lets an empty source empty an interval that already holds rows.
Sources and rules: `include/rules/sources.yaml`, `include/rules/expectations.yaml`.
"""

from __future__ import annotations

from airflow.sdk import dag

from postsales.dag_defaults import EXTRACT_PARAMS, add_run_summary, daily, postsales_dag
from postsales.tasks.extract import extract_accounts, extract_contracts, extract_survey_responses


@dag(schedule=daily(), params=EXTRACT_PARAMS, **postsales_dag("crm_extract", __doc__, tags=["extract", "crm"]))
def crm_extract():
    # Contracts and responses are checked against the accounts already loaded.
    extract_accounts() >> [extract_contracts(), extract_survey_responses()]
    add_run_summary()


crm_extract()
