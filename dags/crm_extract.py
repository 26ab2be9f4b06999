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

from airflow.sdk import dag, task

from postsales.assets import STAGING
from postsales.dag_defaults import EXTRACT_PARAMS, WAREHOUSE_POOL, add_run_summary, daily, postsales_dag


@dag(schedule=daily(), params=EXTRACT_PARAMS, **postsales_dag("crm_extract", __doc__, tags=["extract", "crm"]))
def crm_extract():
    @task(pool=WAREHOUSE_POOL, outlets=[STAGING["accounts"]])
    def extract_accounts() -> dict:
        from postsales.tasks import extract

        return extract("accounts")

    @task(pool=WAREHOUSE_POOL, outlets=[STAGING["contracts"]])
    def extract_contracts() -> dict:
        from postsales.tasks import extract

        return extract("contracts")

    @task(pool=WAREHOUSE_POOL, outlets=[STAGING["survey_responses"]])
    def extract_survey_responses() -> dict:
        from postsales.tasks import extract

        return extract("survey_responses")

    # Contracts and responses are checked against the accounts already loaded.
    accounts = extract_accounts()
    accounts >> [extract_contracts(), extract_survey_responses()]
    add_run_summary()


crm_extract()
