-- Logo and revenue retention per acquisition cohort over all accounts: the 'all' slice of
-- mart.cohort_retention_by_segment (definitions there and in docs/metrics.md).
select
    snapshot_month,
    cohort_grain,
    cohort_month,
    months_since_start,
    cohort_customers,
    active_customers,
    starting_mrr,
    mrr,
    logo_retention,
    grr,
    nrr
from mart.cohort_retention_by_segment
where
    snapshot_month = cast(:snapshot_month as date)
    and dimension = 'all'
