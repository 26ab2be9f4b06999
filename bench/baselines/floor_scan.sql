-- Floor: one scan of every input column that segmentation and cohorts read, in one statement.
-- No join, no window, no grouping by account: the least work any implementation must do
-- over the same staging tables. Sums and lengths make DuckDB read every value.
with usage_scan as (
    select
        count(*) as usage_rows,
        sum(length(account_id)) as usage_id_chars,
        max(usage_date) as usage_latest,
        sum(active_users) as active_users,
        sum(licensed_seats) as licensed_seats,
        sum(events) as events,
        sum(features_used) as features_used
    from staging.usage_daily
),

contract_scan as (
    select
        count(*) as contract_rows,
        sum(length(contract_id) + length(account_id)) as contract_id_chars,
        max(start_date) as latest_start,
        max(end_date) as latest_end,
        sum(arr) as arr,
        max(updated_at) as contracts_updated
    from staging.contracts
),

account_scan as (
    select
        count(*) as account_rows,
        sum(length(account_id) + length(industry) + length(coalesce(lifecycle_stage, ''))) as account_chars,
        sum(employee_count) as employees,
        sum(annual_revenue) as revenue,
        sum(wallet_potential_arr) as wallet,
        max(created_at) as accounts_created,
        max(updated_at) as accounts_updated,
        max(go_live_date) as latest_go_live
    from staging.accounts
),

survey_scan as (
    select
        count(*) as survey_rows,
        sum(length(account_id) + length(survey_type)) as survey_chars,
        sum(score) as score,
        max(responded_at) as latest_response
    from staging.survey_responses
)

select
    usage_scan.*,
    contract_scan.*,
    account_scan.*,
    survey_scan.*
from usage_scan
cross join contract_scan
cross join account_scan
cross join survey_scan
