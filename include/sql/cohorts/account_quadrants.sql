-- Each account's quadrant in the latest segmentation on or before the snapshot month's end:
-- the month's last day, which compute_snapshot segments first when it has no partition.
with latest_run as (
    select max(as_of_date) as as_of_date
    from mart.account_segments
    where as_of_date < cast(:next_month as date)
)

select
    segments.account_id,
    segments.quadrant
from mart.account_segments as segments
inner join latest_run on segments.as_of_date = latest_run.as_of_date
