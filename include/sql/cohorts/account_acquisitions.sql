-- Each account's acquisition (first month with MRR > 0) and ARR then, as known at the snapshot.
with account_months as (
    select
        account_id,
        month,
        arr
    from mart.mrr_monthly
    where snapshot_month = cast(:snapshot_month as date)
),

first_months as (
    select
        account_id,
        min(month) as cohort_month
    from account_months
    group by account_id
)

select
    first_months.account_id,
    first_months.cohort_month,
    account_months.arr as starting_arr
from first_months
inner join account_months
    on
        first_months.account_id = account_months.account_id
        and first_months.cohort_month = account_months.month
