-- The dates the segmentation report compares :as_of_date with: the previous as-of date in
-- mart.account_segments, and the as-of date of the last CRM revision pushed before it (the
-- latest ops.crm_sync_runs row in mode 'push': the tags the CRM was given). Null: none.
with params as (
    select cast(:as_of_date as date) as as_of_date
),

previous_snapshot as (
    select max(segments.as_of_date) as previous_snapshot
    from mart.account_segments as segments
    cross join params
    where segments.as_of_date < params.as_of_date
),

last_revision as (
    select max(runs.as_of_date) as last_revision
    from ops.crm_sync_runs as runs
    cross join params
    where runs.mode = 'push' and runs.as_of_date < params.as_of_date
)

select
    previous_snapshot.previous_snapshot,
    last_revision.last_revision
from previous_snapshot
cross join last_revision
