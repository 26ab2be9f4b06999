-- MRR movements the way a team following dbt-labs/mrr-playbook would write them, as plain DuckDB SQL.
-- Transcribed from https://github.com/dbt-labs/mrr-playbook (commit 54478a5):
--   models/utils/util_months.sql           -> months (a month spine)
--   models/customer_revenue_by_month.sql   -> customers, customer_months, joined, customer_revenue
--   models/customer_churn_month.sql        -> churn_months
--   models/mrr.sql                         -> unioned, mrr_with_changes, final
-- Adapted to our contracts, and only where needed to compare totals with mart.mrr_movements:
--   * subscription_periods = the latest loaded version of each paid contract (staging keeps every
--     version); end_date made exclusive (+1 day), an evergreen contract runs past the snapshot;
--   * a month's MRR is tested on its last day (ours) instead of its first day (the playbook);
--   * concurrent subscriptions of a customer are summed per month (the playbook assumes one);
--   * months stop at the snapshot month (:snapshot_month) instead of current_date.
with

latest_versions as (
    select
        account_id,
        start_date,
        end_date,
        arr,
        row_number() over (partition by contract_id order by updated_at desc, _loaded_at desc) as newest_first
    from staging.contracts
),

subscription_periods as (
    select
        account_id as customer_id,
        start_date,
        coalesce(end_date + 1, cast(:snapshot_month as date) + interval '2 month') as end_date,
        arr / 12 as monthly_amount
    from latest_versions
    where newest_first = 1 and arr > 0 and start_date <= last_day(cast(:snapshot_month as date))
),

months as (
    select cast(range as date) as date_month
    from
        range(
            (select date_trunc('month', min(start_date)) from subscription_periods),
            cast(:snapshot_month as date) + interval '2 month',
            interval '1 month'
        )
),

customers as (
    select
        customer_id,
        date_trunc('month', min(start_date)) as date_month_start,
        date_trunc('month', max(end_date)) as date_month_end
    from subscription_periods
    group by 1
),

customer_months as (
    select
        customers.customer_id,
        months.date_month
    from customers
    inner join months
        on
            customers.date_month_start <= months.date_month
            and customers.date_month_end > months.date_month
),

joined as (
    select
        customer_months.date_month,
        customer_months.customer_id,
        coalesce(sum(subscription_periods.monthly_amount), 0) as mrr
    from customer_months
    left join subscription_periods
        on
            customer_months.customer_id = subscription_periods.customer_id
            and last_day(customer_months.date_month) >= subscription_periods.start_date
            and last_day(customer_months.date_month) < subscription_periods.end_date
    group by 1, 2
),

customer_revenue as (
    select
        date_month,
        customer_id,
        mrr,
        mrr > 0 as is_active,
        min(case when mrr > 0 then date_month end) over (partition by customer_id) as first_active_month,
        max(case when mrr > 0 then date_month end) over (partition by customer_id) as last_active_month
    from joined
),

customer_revenue_by_month as (
    select
        *,
        first_active_month = date_month as is_first_month,
        last_active_month = date_month as is_last_month
    from customer_revenue
    where first_active_month is not null
),

churn_months as (
    select
        cast(date_month + interval '1 month' as date) as date_month,
        customer_id,
        0.0 as mrr,
        false as is_active,
        first_active_month,
        last_active_month,
        false as is_first_month,
        false as is_last_month
    from customer_revenue_by_month
    where is_last_month
),

unioned as (
    select * from customer_revenue_by_month
    union all
    select * from churn_months
),

mrr_with_changes as (
    select
        *,
        coalesce(lag(is_active) over (partition by customer_id order by date_month), false)
            as previous_month_is_active,
        coalesce(lag(mrr) over (partition by customer_id order by date_month), 0) as previous_month_mrr
    from unioned
),

final as (
    select
        date_month,
        customer_id,
        mrr,
        mrr - previous_month_mrr as mrr_change,
        case
            when is_first_month then 'new'
            when not is_active and previous_month_is_active then 'churn'
            when is_active and not previous_month_is_active then 'reactivation'
            when mrr - previous_month_mrr > 0 then 'upgrade'
            when mrr - previous_month_mrr < 0 then 'downgrade'
        end as change_category,
        least(mrr, previous_month_mrr) as renewal_amount
    from mrr_with_changes
    where date_month <= cast(:snapshot_month as date)
)

select * from final
