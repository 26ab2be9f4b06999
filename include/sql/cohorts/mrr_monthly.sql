-- MRR per account and month for one snapshot, with the month's movement.
-- The snapshot for month M (snapshot_month = first day of M) holds every month from the account's
-- first month with MRR up to M, computed from contracts as known at the end of M.
-- Rules (docs/metrics.md, "Cohorts and MRR"):
--   * point in time: per contract, the version known at the end of M (staging.contract_versions:
--     the latest with updated_at before the first day of M+1, else the earliest version);
--   * a month's ARR = sum of arr of the contracts active on its last day (end_date inclusive,
--     empty end_date = evergreen); zero-ARR contracts add nothing; MRR = ARR / 12;
--   * ARR is summed as numeric(38, 6) so movements compare exact sums, not floating-point noise;
--   * months at 0 after a churn are kept (movement null, mrr_change 0), so every account has
--     one row per month from its first MRR month to M; the other cohort queries rely on that.
with recursive

snapshot as (
    select
        cast(:snapshot_month as date) as snapshot_month,
        cast(cast(:snapshot_month as date) + interval '1 month' as date) as next_month
),

contracts_as_known as (
    select
        contract_versions.contract_id,
        contract_versions.account_id,
        contract_versions.start_date,
        contract_versions.end_date,
        contract_versions.arr
    from staging.contract_versions as contract_versions
    cross join snapshot
    where
        {{ known_at('contract_versions', 'snapshot.next_month') }}
),

paid_contracts as (
    select
        contracts_as_known.account_id,
        contracts_as_known.start_date,
        contracts_as_known.end_date,
        cast(contracts_as_known.arr as numeric(38, 6)) as arr
    from contracts_as_known
    cross join snapshot
    where
        contracts_as_known.arr > 0
        and contracts_as_known.start_date < snapshot.next_month
),

first_month as (
    select cast(date_trunc('month', cast(min(start_date) as timestamp)) as date) as month_start
    from paid_contracts
),

months (month_start) as (
    select month_start
    from first_month
    where month_start is not null

    union all

    select cast(months.month_start + interval '1 month' as date) as month_start
    from months
    cross join snapshot
    where months.month_start < snapshot.snapshot_month
),

month_ends as (
    select
        month_start,
        cast(month_start + interval '1 month' - interval '1 day' as date) as month_end
    from months
),

account_month_arr as (
    select
        paid_contracts.account_id,
        month_ends.month_start,
        sum(paid_contracts.arr) as arr
    from paid_contracts
    inner join month_ends
        on
            paid_contracts.start_date <= month_ends.month_end
            and (paid_contracts.end_date is null or paid_contracts.end_date >= month_ends.month_end)
    group by paid_contracts.account_id, month_ends.month_start
),

first_months as (
    select
        account_id,
        min(month_start) as first_month
    from account_month_arr
    group by account_id
),

account_months as (
    select
        first_months.account_id,
        months.month_start,
        coalesce(account_month_arr.arr, 0) as arr
    from first_months
    inner join months
        on first_months.first_month <= months.month_start
    left join account_month_arr
        on
            first_months.account_id = account_month_arr.account_id
            and months.month_start = account_month_arr.month_start
),

with_previous as (
    select
        account_id,
        month_start,
        arr,
        lag(arr) over (partition by account_id order by month_start) as previous_arr
    from account_months
),

final as (
    select
        snapshot.snapshot_month,
        with_previous.account_id,
        with_previous.month_start as month,  -- noqa: RF04
        cast(with_previous.arr as double precision) as arr,
        cast(with_previous.arr as double precision) / 12 as mrr,
        case
            when with_previous.previous_arr is null then 'new'
            when with_previous.previous_arr = 0 and with_previous.arr > 0 then 'reactivation'
            when with_previous.previous_arr > 0 and with_previous.arr = 0 then 'churn'
            when with_previous.arr > with_previous.previous_arr then 'expansion'
            when with_previous.arr < with_previous.previous_arr then 'contraction'
            when with_previous.arr > 0 then 'unchanged'
        end as movement,
        cast(with_previous.arr - coalesce(with_previous.previous_arr, 0) as double precision) / 12 as mrr_change
    from with_previous
    cross join snapshot
)

select * from final
