-- Each account's industry as known at the end of the snapshot month (latest version loaded
-- before the next month; the earliest one where the source kept no older history).
with versions as (
    select
        account_id,
        industry,
        row_number() over (
            partition by account_id
            order by
                case when updated_at < cast(:next_month as date) then 0 else 1 end asc,
                case when updated_at < cast(:next_month as date) then updated_at end desc,
                updated_at asc,
                _loaded_at desc
        ) as version_rank
    from staging.accounts
)

select
    account_id,
    industry
from versions
where version_rank = 1
