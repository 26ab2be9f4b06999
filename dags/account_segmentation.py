"""
### Account segmentation

Places every customer account, as of a date, on five dimensions — firmographic, customer
value (ARR tier; a CRM override wins), lifecycle stage, customer status (NPS, CSAT,
health) and product adoption — scores its health (0–100, per-component scores kept),
puts it in the **Grow / Protect / Re-evaluate / Manage** quadrant, picks an engagement
model and flags case-study candidates. Then forecasts tier migration: the projected value
tier at +6/+9/+12/+15 months and the flags `smb_to_mm_6_9m`, `mm_to_ent_12_15m` and
`ent_decline_risk` in `mart.account_forecasts` (same key as the segments). Every
assignment and every flag carries a JSON explanation (the rule that fired and the inputs
it saw, or the growth rates and points behind a flag) and the rules version. Last, the
segmentation report: the 2x2 scatter, the 80:20 focus check, movers, tier-migration
candidates and the thresholds' sensitivity, in `data/reports/segmentation_<as-of date>.html`.

Runs when the extract DAGs have updated all four staging Assets; the as-of date is the
last complete day they loaded. Trigger it with `as_of_date` to compute any past date: only
data known at that date is used, and the date's partition of `mart.account_segments` is
replaced, so reruns are idempotent. Rules: `include/rules/segmentation.yaml` and
`include/rules/forecast.yaml`; metric definitions: `docs/metrics.md`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from postsales.assets import STAGING
from postsales.dag_defaults import add_run_summary, postsales_dag
from postsales.tasks.segment import forecast_tier_migration, segment_accounts, write_segmentation_report


@dag(
    schedule=list(STAGING.values()),
    params={
        "as_of_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Compute segments as of this date (YYYY-MM-DD); empty = the last day the extracts loaded.",
        )
    },
    **postsales_dag("account_segmentation", __doc__, tags=["segmentation"]),
)
def account_segmentation():
    segments = segment_accounts()
    write_segmentation_report(segments, forecast_tier_migration(segments))
    add_run_summary()


account_segmentation()
