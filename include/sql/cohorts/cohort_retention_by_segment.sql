-- Logo and revenue retention per acquisition cohort and segment for one snapshot, from
-- mart.mrr_monthly and mart.account_cohort_segments (every account is in dimension 'all'
-- with segment 'all', which is mart.cohort_retention).
-- An account's cohort is its first month with MRR > 0 (grain 'month') or that month's year
-- (grain 'year', cohort_month = 1 January); its starting MRR is its MRR in that first month.
-- months_since_start = calendar months from cohort_month to the measured month.
-- The base at each month is the cohort's accounts acquired by then: the whole cohort for
-- monthly cohorts, the accounts acquired from January up to that month for yearly ones
-- (the whole cohort from December on). mart.mrr_monthly has one row per account and month
-- from its first MRR month, so counting an account's rows counts it into the base.
--   logo_retention = active_customers / cohort_customers
--   nrr = sum of MRR / sum of starting MRR
--   grr = sum of least(MRR, starting MRR) / sum of starting MRR (never above 1)
with

account_months as (
    select
        account_id,
        month,
        cast(arr as numeric(38, 6)) as arr
    from mart.mrr_monthly
    where snapshot_month = cast(:snapshot_month as date)
),

first_months as (
    select
        account_id,
        min(month) as first_month
    from account_months
    group by account_id
),

acquisitions as (
    select
        account_months.account_id,
        account_months.month as first_month,
        account_months.arr as starting_arr
    from account_months
    inner join first_months
        on
            account_months.account_id = first_months.account_id
            and account_months.month = first_months.first_month
),

grains as (
    select 'month' as cohort_grain
    union all
    select 'year' as cohort_grain
),

account_cohorts as (
    select
        acquisitions.account_id,
        acquisitions.starting_arr,
        segments.dimension,
        segments.segment_value,
        grains.cohort_grain,
        case
            when grains.cohort_grain = 'month' then acquisitions.first_month
            else cast(date_trunc('year', cast(acquisitions.first_month as timestamp)) as date)
        end as cohort_month
    from acquisitions
    inner join mart.account_cohort_segments as segments
        on
            acquisitions.account_id = segments.account_id
            and segments.snapshot_month = cast(:snapshot_month as date)
    cross join grains
),

cohort_months as (
    select
        account_cohorts.dimension,
        account_cohorts.segment_value,
        account_cohorts.cohort_grain,
        account_cohorts.cohort_month,
        account_months.month,
        count(*) as cohort_customers,
        count(case when account_months.arr > 0 then 1 end) as active_customers,
        sum(account_cohorts.starting_arr) as starting_arr,
        sum(account_months.arr) as arr,
        sum(least(account_months.arr, account_cohorts.starting_arr)) as retained_arr
    from account_cohorts
    inner join account_months
        on account_cohorts.account_id = account_months.account_id
    group by
        account_cohorts.dimension,
        account_cohorts.segment_value,
        account_cohorts.cohort_grain,
        account_cohorts.cohort_month,
        account_months.month
),

final as (
    select
        dimension,
        segment_value,
        cohort_grain,
        cohort_month,
        cohort_customers,
        active_customers,
        cast(:snapshot_month as date) as snapshot_month,
        cast(
            (extract(year from month) - extract(year from cohort_month)) * 12
            + extract(month from month) - extract(month from cohort_month)
            as integer
        ) as months_since_start,
        cast(starting_arr as double precision) / 12 as starting_mrr,
        cast(arr as double precision) / 12 as mrr,
        cast(active_customers as double precision) / cast(cohort_customers as double precision) as logo_retention,
        cast(retained_arr as double precision) / cast(starting_arr as double precision) as grr,
        cast(arr as double precision) / cast(starting_arr as double precision) as nrr
    from cohort_months
)

select * from final
