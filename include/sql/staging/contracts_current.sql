-- Latest loaded version of every contract: no newer row exists for the same contract_id.
-- Ties on updated_at go to the most recently loaded row.
-- All columns pass through: the column list is driven by include/rules/expectations.yaml.
select contract_version.*  -- noqa: AM04
from staging.contracts as contract_version
where not exists (
    select 1
    from staging.contracts as newer
    where
        newer.contract_id = contract_version.contract_id
        and (
            newer.updated_at > contract_version.updated_at
            or (newer.updated_at = contract_version.updated_at and newer._loaded_at > contract_version._loaded_at)
        )
)
