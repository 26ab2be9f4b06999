-- The retention triangle of one snapshot and cohort grain, for the report. cohort_size is the
-- whole cohort: a yearly cohort's base grows through its first year (docs/metrics.md), so its
-- size is the largest base, every account acquired in that year (so far, for the current year).
select
    cohort_month,
    months_since_start,
    cohort_customers,
    active_customers,
    starting_mrr,
    mrr,
    logo_retention,
    grr,
    nrr,
    max(cohort_customers) over (partition by cohort_month) as cohort_size
from mart.cohort_retention
where
    snapshot_month = cast(:snapshot_month as date)
    and cohort_grain = :cohort_grain
order by cohort_month asc, months_since_start asc
