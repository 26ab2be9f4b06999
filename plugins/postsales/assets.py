"""Airflow Assets the DAGs publish and schedule on (one per staged entity).

Kept free of heavy imports: DAG files import this at parse time.
"""

from airflow.sdk import Asset

STAGING_ACCOUNTS = Asset(name="staging_accounts", uri="postsales://warehouse/staging/accounts")
STAGING_CONTRACTS = Asset(name="staging_contracts", uri="postsales://warehouse/staging/contracts")
STAGING_SURVEY_RESPONSES = Asset(name="staging_survey_responses", uri="postsales://warehouse/staging/survey_responses")
STAGING_USAGE_DAILY = Asset(name="staging_usage_daily", uri="postsales://warehouse/staging/usage_daily")

STAGING = {
    "accounts": STAGING_ACCOUNTS,
    "contracts": STAGING_CONTRACTS,
    "survey_responses": STAGING_SURVEY_RESPONSES,
    "usage_daily": STAGING_USAGE_DAILY,
}

MART_ACCOUNT_SEGMENTS = Asset(name="mart_account_segments", uri="postsales://warehouse/mart/account_segments")
MART_COHORTS = Asset(name="mart_cohorts", uri="postsales://warehouse/mart/cohort_retention")
MART_ACCOUNT_FORECASTS = Asset(name="mart_account_forecasts", uri="postsales://warehouse/mart/account_forecasts")
MART_EVALUATION = Asset(name="mart_evaluation", uri="postsales://warehouse/mart/health_outcomes")
