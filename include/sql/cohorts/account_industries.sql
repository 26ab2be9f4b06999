-- Each account's industry as known at the end of the snapshot month (the version known then,
-- staging.account_versions: latest loaded before the next month, else the earliest).
with snapshot as (
    select cast(:next_month as date) as next_month
)

select
    account_versions.account_id,
    account_versions.industry
from staging.account_versions as account_versions
cross join snapshot
where
    {{ known_at('account_versions', 'snapshot.next_month') }}
