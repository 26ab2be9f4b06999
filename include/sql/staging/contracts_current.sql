-- Latest loaded version of every contract: no newer row exists for the same contract_id.
-- Ties on updated_at go to the most recently loaded row.
select contracts.*
from staging.contracts as contracts
where not exists (
    select 1
    from staging.contracts as newer
    where
        newer.contract_id = contracts.contract_id
        and (
            newer.updated_at > contracts.updated_at
            or (newer.updated_at = contracts.updated_at and newer._loaded_at > contracts._loaded_at)
        )
)
