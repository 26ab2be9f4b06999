-- Every version of every account with the time it was the one known: from its updated_at
-- until the next version's (valid_to null: the latest). The earliest version also stands for
-- the time before it (valid_from null), where the source kept no older history. Loads of
-- one updated_at are one version: the most recent load.
-- A query as of the end of day D picks, per account_id, the one version with
-- (valid_from is null or valid_from < D + 1) and (valid_to is null or valid_to >= D + 1).
-- All columns pass through: the column list is driven by include/rules/expectations.yaml.
with versions as (
    select account_version.*  -- noqa: AM04
    from staging.accounts as account_version
    where not exists (
        select 1
        from staging.accounts as later_load
        where
            later_load.account_id = account_version.account_id
            and later_load.updated_at = account_version.updated_at
            and later_load._loaded_at > account_version._loaded_at
    )
)

-- The two spans come first: PostgreSQL's create or replace view may only add columns at the end.
select  -- noqa: ST06
    case
        when lag(versions.updated_at) over by_update is not null then versions.updated_at
    end as valid_from,
    lead(versions.updated_at) over by_update as valid_to,
    versions.*  -- noqa: AM04
from versions
window by_update as (partition by versions.account_id order by versions.updated_at)
