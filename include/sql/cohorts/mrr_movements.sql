-- Total MRR, customers and the MRR bridge per month for one snapshot, from mart.mrr_monthly.
-- Each movement column is the sum of mrr_change over the accounts with that movement, so
-- contraction_mrr and churned_mrr are negative and
-- net_new_mrr = new + expansion + contraction + churned + reactivation = mrr - previous month's mrr.
-- Sums run over exact numeric ARR (mrr_monthly.arr) and are divided by 12 at the end.
with

account_months as (
    select
        account_id,
        month,
        movement,
        cast(arr as numeric(38, 6)) as arr
    from mart.mrr_monthly
    where snapshot_month = cast(:snapshot_month as date)
),

changes as (
    select
        month,
        movement,
        arr,
        arr - coalesce(lag(arr) over (partition by account_id order by month), 0) as arr_change
    from account_months
),

totals as (
    select
        month,
        sum(arr) as arr,
        count(case when arr > 0 then 1 end) as customers,
        sum(case when movement = 'new' then arr_change else 0 end) as new_arr,
        sum(case when movement = 'expansion' then arr_change else 0 end) as expansion_arr,
        sum(case when movement = 'contraction' then arr_change else 0 end) as contraction_arr,
        sum(case when movement = 'churn' then arr_change else 0 end) as churned_arr,
        sum(case when movement = 'reactivation' then arr_change else 0 end) as reactivation_arr,
        sum(arr_change) as net_new_arr
    from changes
    group by month
),

final as (
    select
        month,
        customers,
        cast(:snapshot_month as date) as snapshot_month,
        cast(arr as double precision) / 12 as mrr,
        cast(new_arr as double precision) / 12 as new_mrr,
        cast(expansion_arr as double precision) / 12 as expansion_mrr,
        cast(contraction_arr as double precision) / 12 as contraction_mrr,
        cast(churned_arr as double precision) / 12 as churned_mrr,
        cast(reactivation_arr as double precision) / 12 as reactivation_mrr,
        cast(net_new_arr as double precision) / 12 as net_new_mrr
    from totals
)

select * from final
