-- The most recent load of each table: counts and where its Data Docs are.
with ranked as (
    select
        source_table,
        run_id,
        source,
        interval_start,
        interval_end,
        full_refresh,
        rows_read,
        rows_loaded,
        rows_quarantined,
        data_docs,
        finished_at,
        row_number() over (partition by source_table order by finished_at desc) as recency
    from ops.extract_runs
)

select
    source_table,
    run_id,
    source,
    interval_start,
    interval_end,
    full_refresh,
    rows_read,
    rows_loaded,
    rows_quarantined,
    data_docs,
    finished_at
from ranked
where recency = 1
order by source_table
