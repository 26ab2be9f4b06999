-- Monthly trajectory of every account with a contract known at the end of :as_of_date:
-- ARR (contracts active on each point date) and usage (seats, active users) averaged over
-- the :usage_days days ending on it, at :as_of_date and each of the :months months before.
-- Contract versions are chosen as of :as_of_date (staging.contract_versions) before filtering,
-- so rows loaded later never change a past trajectory.
with params as (
    select
        cast(:as_of_date as date) as as_of_date,
        cast(:usage_days as integer) as usage_days,
        cast(:as_of_date as date) + 1 as next_day
),

points as (
    select
        month_offsets.months_back,
        cast(params.as_of_date - month_offsets.months_back * interval '1 month' as date) as point_date
    from params
    cross join generate_series(0, cast(:months as integer)) as month_offsets (months_back)
),

contracts_as_of as (
    -- The accounts are those of the contracts, as in segmentation and cohorts: an account's own
    -- row (quarantined, or created in the CRM after its contract started) plays no part.
    {{ contracts_known_at('params') }}
),

arr_at_points as (
    select
        contracts_as_of.account_id,
        points.months_back,
        points.point_date,
        cast(sum(contracts_as_of.arr) as double precision) as arr,
        count(*) as active_contracts
    from contracts_as_of
    inner join points
        on
            contracts_as_of.start_date <= points.point_date
            and (contracts_as_of.end_date is null or contracts_as_of.end_date >= points.point_date)
    group by contracts_as_of.account_id, points.months_back, points.point_date
),

account_points as (
    select
        accounts_with_contracts.account_id,
        points.months_back,
        points.point_date
    from (select distinct contracts_as_of.account_id from contracts_as_of) as accounts_with_contracts
    cross join points
),

point_days as (
    -- Each day of the window ending on each point date: an equi-join key for the usage scan.
    -- Windows can overlap (e.g. 28 February and 31 January), so a day may belong to two points.
    select
        points.months_back,
        points.point_date - cast(window_days.days_back as integer) as usage_date
    from points
    cross join params
    cross join generate_series(0, params.usage_days - 1) as window_days (days_back)
),

usage_at_points as (
    select
        usage_rows.account_id,
        point_days.months_back,
        count(*) as usage_days,
        avg(usage_rows.licensed_seats) as avg_licensed_seats,
        avg(usage_rows.active_users) as avg_active_users
    from staging.usage_daily as usage_rows
    inner join point_days on usage_rows.usage_date = point_days.usage_date
    group by usage_rows.account_id, point_days.months_back
)

select
    account_points.account_id,
    account_points.months_back,
    account_points.point_date,
    usage_at_points.avg_licensed_seats,
    usage_at_points.avg_active_users,
    coalesce(arr_at_points.arr, 0) as arr,
    coalesce(arr_at_points.active_contracts, 0) as active_contracts,
    coalesce(usage_at_points.usage_days, 0) as usage_days
from account_points
left join arr_at_points
    on
        account_points.account_id = arr_at_points.account_id
        and account_points.months_back = arr_at_points.months_back
left join usage_at_points
    on
        account_points.account_id = usage_at_points.account_id
        and account_points.months_back = usage_at_points.months_back
