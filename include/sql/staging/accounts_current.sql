-- Latest loaded version of every account: no newer row exists for the same account_id.
-- Ties on updated_at go to the most recently loaded row.
-- All columns pass through: the column list is driven by include/rules/expectations.yaml.
select account_version.*  -- noqa: AM04
from staging.accounts as account_version
where not exists (
    select 1
    from staging.accounts as newer
    where
        newer.account_id = account_version.account_id
        and (
            newer.updated_at > account_version.updated_at
            or (newer.updated_at = account_version.updated_at and newer._loaded_at > account_version._loaded_at)
        )
)
