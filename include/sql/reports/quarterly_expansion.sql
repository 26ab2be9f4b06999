-- Expansion this quarter (the snapshot's) and last quarter, per monthly cohort, side by side.
with quarters as (
    select
        cohort_month,
        quarter_start,
        cohort_customers,
        expansion_mrr,
        expansion_rate
    from mart.cohort_quarterly_expansion
    where snapshot_month = cast(:snapshot_month as date)
),

this_quarter as (
    select max(quarter_start) as quarter_start
    from quarters
),

last_quarter as (
    select max(quarters.quarter_start) as quarter_start
    from quarters
    cross join this_quarter
    where quarters.quarter_start < this_quarter.quarter_start
)

select
    quarters.cohort_month,
    this_quarter.quarter_start as this_quarter,
    max(case when quarters.quarter_start = this_quarter.quarter_start then quarters.cohort_customers end)
        as customers,
    max(case when quarters.quarter_start = this_quarter.quarter_start then quarters.expansion_mrr end)
        as expansion_mrr_this_quarter,
    max(case when quarters.quarter_start = this_quarter.quarter_start then quarters.expansion_rate end)
        as expansion_rate_this_quarter,
    max(case when quarters.quarter_start = last_quarter.quarter_start then quarters.expansion_mrr end)
        as expansion_mrr_last_quarter,
    max(case when quarters.quarter_start = last_quarter.quarter_start then quarters.expansion_rate end)
        as expansion_rate_last_quarter
from quarters
cross join this_quarter
cross join last_quarter
group by quarters.cohort_month, this_quarter.quarter_start
order by quarters.cohort_month asc
