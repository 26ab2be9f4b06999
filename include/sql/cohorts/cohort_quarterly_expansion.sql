-- Expansion per monthly cohort and calendar quarter: MRR gained from existing customers
-- (movement 'expansion') in the quarter, over the cohort's MRR at the end of the quarter
-- before, so this quarter and last quarter can be compared cohort by cohort.
-- Money is summed as numeric(38, 6) so the result does not depend on summation order.
with account_months as (
    select
        monthly.account_id,
        monthly.month,
        cast(monthly.mrr as numeric(38, 6)) as mrr,
        monthly.movement,
        cast(monthly.mrr_change as numeric(38, 6)) as mrr_change,
        cast(date_trunc('quarter', cast(monthly.month as timestamp)) as date) as quarter_start
    from mart.mrr_monthly as monthly
    where monthly.snapshot_month = cast(:snapshot_month as date)
),

acquisitions as (
    select
        account_id,
        min(month) as cohort_month
    from account_months
    group by account_id
),

quarter_ends as (
    -- MRR on the last month of each quarter, to be the base of the next quarter.
    select
        account_id,
        quarter_start,
        mrr
    from account_months
    where month = (cast(quarter_start as date) + interval '2 months')
),

quarterly as (
    select
        acquisitions.cohort_month,
        account_months.quarter_start,
        count(distinct account_months.account_id) as cohort_customers,
        sum(case when account_months.movement = 'expansion' then account_months.mrr_change else 0 end)
            as expansion_mrr,
        sum(case when account_months.movement = 'contraction' then account_months.mrr_change else 0 end)
            as contraction_mrr,
        sum(case when account_months.movement = 'churn' then account_months.mrr_change else 0 end) as churned_mrr
    from account_months
    inner join acquisitions on account_months.account_id = acquisitions.account_id
    group by acquisitions.cohort_month, account_months.quarter_start
),

opening as (
    select
        acquisitions.cohort_month,
        cast(quarter_ends.quarter_start + interval '3 months' as date) as quarter_start,
        sum(quarter_ends.mrr) as opening_mrr
    from quarter_ends
    inner join acquisitions on quarter_ends.account_id = acquisitions.account_id
    group by acquisitions.cohort_month, quarter_ends.quarter_start
)

select
    quarterly.cohort_month,
    quarterly.quarter_start,
    quarterly.cohort_customers,
    cast(opening.opening_mrr as double precision) as opening_mrr,
    cast(quarterly.expansion_mrr as double precision) as expansion_mrr,
    cast(quarterly.contraction_mrr as double precision) as contraction_mrr,
    cast(quarterly.churned_mrr as double precision) as churned_mrr,
    cast(:snapshot_month as date) as snapshot_month,
    cast(quarterly.expansion_mrr as double precision)
    / nullif(cast(opening.opening_mrr as double precision), 0) as expansion_rate
from quarterly
left join opening
    on
        quarterly.cohort_month = opening.cohort_month
        and quarterly.quarter_start = opening.quarter_start
