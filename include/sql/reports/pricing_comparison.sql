-- Cohorts acquired before vs after the pricing change, for the report.
select
    pricing_period,
    pricing_change_date,
    months_since_start,
    cohorts,
    cohort_customers,
    starting_mrr,
    logo_retention,
    grr,
    nrr
from mart.pricing_cohort_comparison
where snapshot_month = cast(:snapshot_month as date)
order by months_since_start asc, pricing_period desc
