-- Rows in each staging table (every loaded version included).
with counts as (
    select
        'accounts' as source_table,
        count(*) as staged_rows
    from staging.accounts
    union all
    select
        'contracts' as source_table,
        count(*) as staged_rows
    from staging.contracts
    union all
    select
        'survey_responses' as source_table,
        count(*) as staged_rows
    from staging.survey_responses
    union all
    select
        'usage_daily' as source_table,
        count(*) as staged_rows
    from staging.usage_daily
)

select
    source_table,
    staged_rows
from counts
order by source_table
