-- Every contract of a known account as known at the end of :as_of_date (the latest
-- version loaded by then), for renewal outcomes: which contracts came up for renewal.
with params as (
    select
        cast(:as_of_date as date) as as_of_date,
        cast(:as_of_date as date) + 1 as next_day
),

contract_versions as (
    select
        contracts.contract_id,
        contracts.account_id,
        contracts.start_date,
        contracts.end_date,
        contracts.arr,
        row_number() over (
            partition by contracts.contract_id
            order by
                case when contracts.updated_at < params.next_day then 0 else 1 end asc,
                case when contracts.updated_at < params.next_day then contracts.updated_at end desc,
                contracts.updated_at asc,
                contracts._loaded_at desc
        ) as version_rank
    from staging.contracts as contracts
    cross join params
)

select
    contract_versions.account_id,
    contract_versions.contract_id,
    contract_versions.start_date,
    contract_versions.end_date,
    contract_versions.arr
from contract_versions
cross join params
where
    contract_versions.version_rank = 1
    and contract_versions.start_date <= params.as_of_date
