"""
### Cohort analysis

Monthly snapshot of MRR and acquisition cohorts. A run for month M (data interval = the
calendar month) computes, as of the end of M and from data known then:

- `mart.mrr_monthly` — MRR per account and month with its movement (new, expansion,
  contraction, churn, reactivation, unchanged);
- `mart.mrr_movements` — MRR, customers and the sum of each movement per month;
- `mart.cohort_retention` — logo retention, GRR and NRR by monthly and yearly acquisition cohort;

replacing exactly that `snapshot_month` partition in one transaction, then writes a
self-contained HTML report (path in the task log). Backfill history with
`airflow backfill create --dag-id cohort_analysis --from-date … --to-date …` (any month since
the first paid contract; an earlier month fails and names the first one); recompute one month
with a manual run and the param `{"month": "YYYY-MM"}`; rerunning a
month gives identical rows. Definitions: `docs/metrics.md`; runbook: `docs/operations.md`.
"""

from __future__ import annotations

from airflow.sdk import dag

from postsales.dag_defaults import MONTH_PARAMS, add_run_summary, monthly, postsales_dag
from postsales.tasks.cohorts import compute_cohort_snapshot, write_cohort_report


@dag(
    schedule=monthly(),
    params=MONTH_PARAMS,
    **postsales_dag("cohort_analysis", __doc__, tags=["cohorts"]),
)
def cohort_analysis():
    write_cohort_report(compute_cohort_snapshot())
    add_run_summary()


cohort_analysis()
