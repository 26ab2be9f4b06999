-- Point-in-time inputs of segmentation: one row per customer account as of :as_of_date.
-- Only data known at the end of :as_of_date is used: the version of each account and
-- contract known then (staging.account_versions, staging.contract_versions), responses and
-- usage up to that day.
-- A customer is an account with ARR > 0 on :as_of_date (a contract with arr > 0 active that
-- day), exactly as cohorts count customers (MRR > 0 on a month's last day): a zero-ARR pilot
-- is not one. The population comes from the contracts alone; the account's own row only adds
-- attributes, and when no row of it is known (e.g. quarantined) they are missing
-- (account_known false) instead of the customer being dropped.
with params as (
    select
        cast(:as_of_date as date) as as_of_date,
        cast(:nps_window_days as integer) as nps_window_days,
        cast(:csat_window_days as integer) as csat_window_days,
        cast(:usage_window_days as integer) as usage_window_days,
        cast(:as_of_date as date) + 1 as next_day
),

accounts_as_of as (
    select account_versions.*  -- noqa: AM04
    from staging.account_versions as account_versions
    cross join params
    where
        {{ known_at('account_versions', 'params.next_day') }}
),

contracts_as_of as (
    {{ contracts_known_at('params') }}
),

contract_rollup as (
    select
        contracts_as_of.account_id,
        min(contracts_as_of.start_date) as customer_since,
        sum(case
            when contracts_as_of.end_date is null or contracts_as_of.end_date >= params.as_of_date
                then 1
            else 0
        end) as active_contracts,
        sum(case
            when contracts_as_of.end_date is null or contracts_as_of.end_date >= params.as_of_date
                then contracts_as_of.arr
            else 0
        end) as arr,
        sum(case
            when
                contracts_as_of.start_date <= params.as_of_date - 90
                and (contracts_as_of.end_date is null or contracts_as_of.end_date >= params.as_of_date - 90)
                then contracts_as_of.arr
            else 0
        end) as arr_90d_ago,
        sum(case
            when
                contracts_as_of.start_date <= params.as_of_date - 365
                and (contracts_as_of.end_date is null or contracts_as_of.end_date >= params.as_of_date - 365)
                then contracts_as_of.arr
            else 0
        end) as arr_365d_ago,
        min(case
            when contracts_as_of.end_date >= params.as_of_date
                then contracts_as_of.end_date
        end) as next_renewal_date
    from contracts_as_of
    cross join params
    group by contracts_as_of.account_id
),

nps as (
    select
        responses.account_id,
        avg(responses.score) as nps_avg,
        count(*) as nps_responses,
        max(responses.responded_at) as nps_latest_at
    from staging.survey_responses as responses
    cross join params
    where
        responses.survey_type = 'nps'
        and responses.responded_at < params.next_day
        and responses.responded_at >= params.next_day - params.nps_window_days
    group by responses.account_id
),

nps_latest as (
    -- The latest response in the window; ties (same timestamp) take the lower score.
    select
        responses.account_id,
        min(responses.score) as nps_latest
    from staging.survey_responses as responses
    inner join nps
        on
            responses.account_id = nps.account_id
            and responses.responded_at = nps.nps_latest_at
    where responses.survey_type = 'nps'
    group by responses.account_id
),

csat as (
    select
        responses.account_id,
        avg(responses.score) as csat_avg,
        count(*) as csat_responses
    from staging.survey_responses as responses
    cross join params
    where
        responses.survey_type = 'csat'
        and responses.responded_at < params.next_day
        and responses.responded_at >= params.next_day - params.csat_window_days
    group by responses.account_id
),

usage_rows_in_windows as (
    select
        usage_rows.account_id,
        usage_rows.active_users,
        usage_rows.licensed_seats,
        usage_rows.events,
        usage_rows.features_used,
        usage_rows.usage_date > params.as_of_date - params.usage_window_days as is_recent
    from staging.usage_daily as usage_rows
    cross join params
    where
        usage_rows.usage_date <= params.as_of_date
        and usage_rows.usage_date > params.as_of_date - 2 * params.usage_window_days
),

usage_windows as (
    -- Both windows in one aggregation: one pass over the usage rows, one hash table.
    select
        account_id,
        count(case when is_recent then 1 end) as usage_days,
        avg(case when is_recent then active_users end) as avg_active_users,
        avg(case when is_recent then licensed_seats end) as avg_licensed_seats,
        sum(case when is_recent then active_users end) * 1.0
        / nullif(sum(case when is_recent then licensed_seats end), 0) as seat_utilization,
        sum(case when is_recent then events end) * 1.0
        / nullif(sum(case when is_recent then active_users end), 0) as events_per_active_user,
        avg(case when is_recent then features_used end) as avg_features_used,
        avg(case when not is_recent then active_users end) as avg_active_users_previous
    from usage_rows_in_windows
    group by account_id
),

customers as (
    select
        contract_rollup.account_id,
        accounts_as_of.name,
        accounts_as_of.industry,
        accounts_as_of.country,
        accounts_as_of.employee_count,
        accounts_as_of.annual_revenue,
        accounts_as_of.wallet_potential_arr,
        accounts_as_of.go_live_date,
        accounts_as_of.lifecycle_stage as crm_lifecycle_stage,
        accounts_as_of.referenceable,
        accounts_as_of.segment_override,
        contract_rollup.customer_since,
        contract_rollup.active_contracts,
        cast(contract_rollup.arr as double precision) as arr,
        cast(contract_rollup.arr_90d_ago as double precision) as arr_90d_ago,
        cast(contract_rollup.arr_365d_ago as double precision) as arr_365d_ago,
        contract_rollup.next_renewal_date,
        params.as_of_date,
        accounts_as_of.account_id is not null as account_known
    from contract_rollup
    left join accounts_as_of on contract_rollup.account_id = accounts_as_of.account_id
    cross join params
    where contract_rollup.arr > 0
)

select
    customers.as_of_date,
    customers.account_id,
    customers.account_known,
    customers.name,
    customers.industry,
    customers.country,
    customers.employee_count,
    customers.annual_revenue,
    customers.wallet_potential_arr,
    customers.go_live_date,
    customers.crm_lifecycle_stage,
    customers.referenceable,
    customers.segment_override,
    customers.customer_since,
    customers.active_contracts,
    customers.arr,
    customers.arr_90d_ago,
    customers.arr_365d_ago,
    customers.next_renewal_date,
    nps_latest.nps_latest,
    nps.nps_avg,
    csat.csat_avg,
    usage_windows.avg_active_users,
    usage_windows.avg_licensed_seats,
    usage_windows.seat_utilization,
    usage_windows.events_per_active_user,
    usage_windows.avg_features_used,
    usage_windows.avg_active_users_previous,
    customers.arr - customers.arr_90d_ago as arr_change_90d,
    customers.arr / nullif(customers.arr_365d_ago, 0) - 1 as arr_growth_365d,
    percent_rank() over (order by customers.arr) as arr_percentile,
    customers.arr / nullif(customers.wallet_potential_arr, 0) as wallet_share,
    customers.wallet_potential_arr - customers.arr as unrealized_wallet,
    customers.as_of_date - customers.customer_since as tenure_days,
    (extract(year from customers.as_of_date) - extract(year from customers.customer_since)) * 12
    + extract(month from customers.as_of_date) - extract(month from customers.customer_since)
    - case
        when extract(day from customers.as_of_date) < extract(day from customers.customer_since) then 1 else 0
    end as tenure_months,
    customers.as_of_date - customers.go_live_date as days_since_go_live,
    customers.next_renewal_date - customers.as_of_date as days_to_renewal,
    coalesce(nps.nps_responses, 0) as nps_responses,
    coalesce(csat.csat_responses, 0) as csat_responses,
    coalesce(usage_windows.usage_days, 0) as usage_days,
    usage_windows.avg_active_users / nullif(usage_windows.avg_active_users_previous, 0) as usage_trend
from customers
left join nps on customers.account_id = nps.account_id
left join nps_latest on customers.account_id = nps_latest.account_id
left join csat on customers.account_id = csat.account_id
left join usage_windows on customers.account_id = usage_windows.account_id
