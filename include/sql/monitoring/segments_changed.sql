-- Accounts whose value tier or quadrant in mart.account_segments as of :as_of_date differs
-- from their row on the previous as-of date in the table (compared_to). Accounts present on
-- only one of the two dates are not counted. No previous date: compared_to is null.
with params as (
    select cast(:as_of_date as date) as as_of_date
),

previous_date as (
    select max(segments.as_of_date) as compared_to
    from mart.account_segments as segments
    cross join params
    where segments.as_of_date < params.as_of_date
),

current_segments as (
    select
        segments.account_id,
        segments.value_tier,
        segments.quadrant
    from mart.account_segments as segments
    inner join params on segments.as_of_date = params.as_of_date
),

previous_segments as (
    select
        segments.account_id,
        segments.value_tier,
        segments.quadrant
    from mart.account_segments as segments
    inner join previous_date on segments.as_of_date = previous_date.compared_to
),

changed as (
    select count(*) as segments_changed
    from current_segments
    inner join previous_segments on current_segments.account_id = previous_segments.account_id
    where
        current_segments.value_tier <> previous_segments.value_tier
        or current_segments.quadrant <> previous_segments.quadrant
)

select
    previous_date.compared_to,
    changed.segments_changed
from previous_date
cross join changed
