-- Every version of every contract with the time it was the one known: from its updated_at
-- until the next version's (valid_to null: the latest). The earliest version also stands for
-- the time before it (valid_from null), where the source kept no older history. Loads of
-- one updated_at are one version: the most recent load.
-- A query as of the end of day D picks, per contract_id, the one version with
-- (valid_from is null or valid_from < D + 1) and (valid_to is null or valid_to >= D + 1).
-- All columns pass through: the column list is driven by include/rules/expectations.yaml.
with versions as (
    select contract_version.*  -- noqa: AM04
    from staging.contracts as contract_version
    where not exists (
        select 1
        from staging.contracts as later_load
        where
            later_load.contract_id = contract_version.contract_id
            and later_load.updated_at = contract_version.updated_at
            and later_load._loaded_at > contract_version._loaded_at
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
window by_update as (partition by versions.contract_id order by versions.updated_at)
