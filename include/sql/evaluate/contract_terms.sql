-- Every contract of a known account as known at the end of :as_of_date (the version known
-- then, staging.contract_versions), for renewal outcomes: which contracts came up for renewal.
with params as (
    select
        cast(:as_of_date as date) as as_of_date,
        cast(:as_of_date as date) + 1 as next_day
)

select
    contract_versions.account_id,
    contract_versions.contract_id,
    contract_versions.start_date,
    contract_versions.end_date,
    contract_versions.arr
from staging.contract_versions as contract_versions
cross join params
where
    {{ known_at('contract_versions', 'params.next_day') }}
    and contract_versions.start_date <= params.as_of_date
