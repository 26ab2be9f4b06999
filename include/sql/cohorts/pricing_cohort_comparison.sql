-- Cohorts acquired before vs on/after the pricing change, side by side: retention k months
-- after acquisition pooled over the monthly cohorts of each period that have reached k.
-- Money is summed as numeric(38, 6) so the result does not depend on summation order.
with cohorts as (
    select
        cohort_month,
        months_since_start,
        cohort_customers,
        active_customers,
        cast(starting_mrr as numeric(38, 6)) as starting_mrr,
        cast(mrr as numeric(38, 6)) as mrr,
        cast(grr * starting_mrr as numeric(38, 6)) as retained_mrr,
        case
            when cohort_month < cast(:pricing_change_date as date) then 'before'
            else 'after'
        end as pricing_period
    from mart.cohort_retention
    where
        snapshot_month = cast(:snapshot_month as date)
        and cohort_grain = 'month'
        and months_since_start in (0, 3, 6, 12)
)

select
    pricing_period,
    months_since_start,
    cast(:snapshot_month as date) as snapshot_month,
    cast(:pricing_change_date as date) as pricing_change_date,
    cast(sum(starting_mrr) as double precision) as starting_mrr,
    count(*) as cohorts,
    sum(cohort_customers) as cohort_customers,
    cast(sum(active_customers) as double precision) / cast(sum(cohort_customers) as double precision)
        as logo_retention,
    cast(sum(retained_mrr) as double precision) / nullif(cast(sum(starting_mrr) as double precision), 0) as grr,
    cast(sum(mrr) as double precision) / nullif(cast(sum(starting_mrr) as double precision), 0) as nrr
from cohorts
group by pricing_period, months_since_start
