-- Latest loaded version of every account: no newer row exists for the same account_id.
-- Ties on updated_at go to the most recently loaded row.
select accounts.*
from staging.accounts as accounts
where not exists (
    select 1
    from staging.accounts as newer
    where
        newer.account_id = accounts.account_id
        and (
            newer.updated_at > accounts.updated_at
            or (newer.updated_at = accounts.updated_at and newer._loaded_at > accounts._loaded_at)
        )
)
