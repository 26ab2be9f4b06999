-- The retention triangle of one snapshot and cohort grain, for the report.
select
    cohort_month,
    months_since_start,
    cohort_customers,
    active_customers,
    starting_mrr,
    mrr,
    logo_retention,
    grr,
    nrr
from mart.cohort_retention
where
    snapshot_month = cast(:snapshot_month as date)
    and cohort_grain = :cohort_grain
order by cohort_month asc, months_since_start asc
