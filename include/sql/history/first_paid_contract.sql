-- Where history starts, as known at the end of the day before :next_day: the first day a paid
-- contract (arr > 0) starts, from the contract versions known then (staging.contract_versions),
-- and how many contracts are known at all. Nothing can be computed for a date before it
-- (docs/metrics.md, "Where history starts").
select
    min(case when contract_versions.arr > 0 then contract_versions.start_date end) as first_paid_start,
    count(*) as contracts_known
from staging.contract_versions as contract_versions
where
    {{ known_at('contract_versions', ':next_day') }}
