-- Accounts per segment of each dimension in the latest segmentation.
with latest as (
    select segments.*  -- noqa: AM04
    from mart.account_segments as segments
    where segments.as_of_date = (select max(newest.as_of_date) from mart.account_segments as newest)
),

counts as (
    select
        'value_tier' as dimension,
        value_tier as segment_name,
        count(*) as account_count
    from latest
    group by value_tier
    union all
    select
        'quadrant' as dimension,
        quadrant as segment_name,
        count(*) as account_count
    from latest
    group by quadrant
    union all
    select
        'lifecycle_stage' as dimension,
        lifecycle_stage as segment_name,
        count(*) as account_count
    from latest
    group by lifecycle_stage
    union all
    select
        'adoption_segment' as dimension,
        adoption_segment as segment_name,
        count(*) as account_count
    from latest
    group by adoption_segment
    union all
    select
        'nps_category' as dimension,
        nps_category as segment_name,
        count(*) as account_count
    from latest
    group by nps_category
    union all
    select
        'health_band' as dimension,
        health_band as segment_name,
        count(*) as account_count
    from latest
    group by health_band
    union all
    select
        'engagement_model' as dimension,
        engagement_model as segment_name,
        count(*) as account_count
    from latest
    group by engagement_model
    union all
    select
        'case_study_candidate' as dimension,
        case when case_study_candidate then 'yes' else 'no' end as segment_name,
        count(*) as account_count
    from latest
    group by case_study_candidate
)

select
    dimension,
    segment_name,
    account_count,
    (select max(latest_date.as_of_date) from latest as latest_date) as as_of_date
from counts
order by dimension asc, account_count desc, segment_name asc
