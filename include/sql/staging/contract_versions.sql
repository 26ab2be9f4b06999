-- Every loaded row of staging.contracts with the span in which it was the version known:
-- from its updated_at until the next version's (valid_to null: the latest). The earliest
-- version also stands for the time before it (valid_from null), where the source kept no
-- older history. A row loaded again later with the same updated_at is superseded by that
-- load: its span is empty (valid_from = valid_to).
-- A query as of the end of day D takes, per contract_id, the one row with
-- valid_from < D + 1 <= valid_to, a null bound open: the macro known_at (include/macros).
-- One window, one sort: no self-join. The spans come first: PostgreSQL's create or replace
-- view may only add columns at the end, and the columns of staging.contracts follow
-- include/rules/expectations.yaml.
select  -- noqa: ST06
    case
        when lead(contract_version.updated_at) over by_load = contract_version.updated_at
            then contract_version.updated_at
        when contract_version.updated_at = first_value(contract_version.updated_at) over by_load
            then null
        else contract_version.updated_at
    end as valid_from,
    case
        when lead(contract_version.updated_at) over by_load = contract_version.updated_at
            then contract_version.updated_at
        else lead(contract_version.updated_at) over by_load
    end as valid_to,
    contract_version.*  -- noqa: AM04
from staging.contracts as contract_version
window by_load as (
    partition by contract_version.contract_id
    order by contract_version.updated_at asc, contract_version._loaded_at asc
)
