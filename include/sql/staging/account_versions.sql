-- Every loaded row of staging.accounts with the span in which it was the version known:
-- from its updated_at until the next version's (valid_to null: the latest). The earliest
-- version also stands for the time before it (valid_from null), where the source kept no
-- older history. A row loaded again later with the same updated_at is superseded by that
-- load: its span is empty (valid_from = valid_to).
-- A query as of the end of day D takes, per account_id, the one row with
-- valid_from < D + 1 <= valid_to, a null bound open: the macro known_at (include/macros).
-- One window, one sort: no self-join. The spans come first: PostgreSQL's create or replace
-- view may only add columns at the end, and the columns of staging.accounts follow
-- include/rules/expectations.yaml.
select  -- noqa: ST06
    case
        when lead(account_version.updated_at) over by_load = account_version.updated_at
            then account_version.updated_at
        when account_version.updated_at = first_value(account_version.updated_at) over by_load
            then null
        else account_version.updated_at
    end as valid_from,
    case
        when lead(account_version.updated_at) over by_load = account_version.updated_at
            then account_version.updated_at
        else lead(account_version.updated_at) over by_load
    end as valid_to,
    account_version.*  -- noqa: AM04
from staging.accounts as account_version
window by_load as (
    partition by account_version.account_id
    order by account_version.updated_at asc, account_version._loaded_at asc
)
