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
    (account_versions.valid_from is null or account_versions.valid_from < snapshot.next_month)
    and (account_versions.valid_to is null or account_versions.valid_to >= snapshot.next_month)
