-- The latest segmentation: every account's row of the most recent as-of date.
select segments.*  -- noqa: AM04
from mart.account_segments as segments
where segments.as_of_date = (select max(latest.as_of_date) from mart.account_segments as latest)
