-- Data gaps of the latest segmentation on or before :as_of_date (null: the latest of all):
-- per missing rule input (mart.account_data_gaps.field), the segmented accounts missing it
-- (dimension null) and, per dimension, those that fell back to Unknown for lack of it.
-- One row with field null when that segmentation has no gap; no row without a segmentation.
with latest as (
    select max(segments.as_of_date) as as_of_date
    from mart.account_segments as segments
    where segments.as_of_date <= coalesce(cast(:as_of_date as date), cast('9999-12-31' as date))
),

segmented as (
    select
        latest.as_of_date,
        count(*) as segmented_accounts
    from latest
    inner join mart.account_segments as segments on latest.as_of_date = segments.as_of_date
    group by latest.as_of_date
),

gaps as (
    select
        data_gaps.field,
        data_gaps.dimension,
        count(distinct data_gaps.account_id) as account_count
    from mart.account_data_gaps as data_gaps
    inner join latest on data_gaps.as_of_date = latest.as_of_date
    group by data_gaps.field, data_gaps.dimension
)

select
    segmented.as_of_date,
    segmented.segmented_accounts,
    gaps.field,
    gaps.dimension,
    gaps.account_count
from segmented
left join gaps on 1 = 1
order by gaps.field asc, gaps.dimension asc nulls first
