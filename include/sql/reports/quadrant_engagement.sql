-- Accounts and ARR per quadrant and engagement model (the approach) as of :as_of_date.
select
    quadrant,
    engagement_model,
    count(*) as account_count,
    coalesce(sum(arr), 0) as arr
from mart.account_segments
where as_of_date = cast(:as_of_date as date)
group by quadrant, engagement_model
order by quadrant, engagement_model
