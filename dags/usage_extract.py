"""
### Product-usage extract

Reads the daily product-usage rows whose `usage_date` falls in the run's data interval
(daily files such as `usage_daily/2026-11-22.parquet` outside it are not opened),
validates them with the Great Expectations gate and loads `raw` → `staging.usage_daily`.
Bad rows go to `ops.quarantine`; usage for an account not yet loaded by `crm_extract`
is quarantined too and is recovered by rerunning the interval.

Params: `full_refresh` reads every file and replaces the table; `allow_empty` lets an
empty source empty an interval that already holds rows.
"""

from __future__ import annotations

from airflow.sdk import dag

from postsales.dag_defaults import EXTRACT_PARAMS, add_run_summary, daily, postsales_dag
from postsales.tasks.extract import extract_usage_daily


@dag(schedule=daily(), params=EXTRACT_PARAMS, **postsales_dag("usage_extract", __doc__, tags=["extract", "usage"]))
def usage_extract():
    extract_usage_daily()
    add_run_summary()


usage_extract()
