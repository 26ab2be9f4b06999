{#- The point-in-time rules, written once (docs/metrics.md, "Point in time"). Every query in
    include/sql that reads a versioned staging view takes its rows through these macros;
    warehouse.sql_text renders them, and sqlfluff lints the rendered queries. -#}

{#- True for the one version of each row known at `moment`, an exclusive end (the first day after
    the as-of date or month). staging.account_versions / contract_versions give every version the
    span [valid_from, valid_to) of the loads it was the latest of; the first version's span is
    open at the start (valid_from null) so data loaded after a date still fills that date, and
    the latest's at the end (valid_to null). -#}
{% macro known_at(versions, moment) -%}
({{ versions }}.valid_from is null or {{ versions }}.valid_from < {{ moment }})
and ({{ versions }}.valid_to is null or {{ versions }}.valid_to >= {{ moment }})
{%- endmacro %}

{#- The contracts known at the end of `params`.as_of_date that had started by then, one row per
    contract: the version is picked first and filtered on after, so a later version moving the
    start date never changes what was known. ARR is exact (numeric(38, 6)): a double sum depends
    on the order parallel threads add in, and tied ARRs must not come apart from run to run.
    `params` names a relation with the columns as_of_date and next_day (= as_of_date + 1). -#}
{% macro contracts_known_at(params) -%}
select
    contract_versions.contract_id,
    contract_versions.account_id,
    contract_versions.start_date,
    contract_versions.end_date,
    cast(contract_versions.arr as numeric(38, 6)) as arr
from staging.contract_versions as contract_versions
cross join {{ params }}
where
    {{ known_at('contract_versions', params ~ '.next_day') }}
    and contract_versions.start_date <= {{ params }}.as_of_date
{%- endmacro %}

{#- Every loaded row of `table` (staging.accounts, staging.contracts) with the span in which it was
    the version known: from its updated_at until the next version's (valid_to null: the latest).
    The earliest version also stands for the time before it (valid_from null), where the source
    kept no older history. A row loaded again later with the same updated_at is superseded by that
    load: its span is empty (valid_from = valid_to). One window, one sort: no self-join. The spans
    come first: PostgreSQL's create or replace view may only add columns at the end, and the
    table's columns follow include/rules/expectations.yaml. -#}
{% macro version_spans(table, key) -%}
select  -- noqa: ST06
    case
        when lead(loaded_version.updated_at) over by_load = loaded_version.updated_at
            then loaded_version.updated_at
        when loaded_version.updated_at = first_value(loaded_version.updated_at) over by_load
            then null
        else loaded_version.updated_at
    end as valid_from,
    case
        when lead(loaded_version.updated_at) over by_load = loaded_version.updated_at
            then loaded_version.updated_at
        else lead(loaded_version.updated_at) over by_load
    end as valid_to,
    loaded_version.*  -- noqa: AM04
from {{ table }} as loaded_version
window by_load as (
    partition by loaded_version.{{ key }}
    order by loaded_version.updated_at asc, loaded_version._loaded_at asc
)
{%- endmacro %}
