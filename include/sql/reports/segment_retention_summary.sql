-- Retention k months after acquisition per segment, pooled over the monthly cohorts that
-- reached k, for every segment dimension of one snapshot.
select
    dimension,
    segment_value,
    months_since_start,
    count(*) as cohorts,
    sum(cohort_customers) as customers,
    sum(active_customers) * 1.0 / sum(cohort_customers) as logo_retention,
    sum(nrr * starting_mrr) / nullif(sum(starting_mrr), 0) as nrr
from mart.cohort_retention_by_segment
where
    snapshot_month = cast(:snapshot_month as date)
    and cohort_grain = 'month'
    and dimension != 'all'
    and months_since_start in (3, 6, 12)
group by dimension, segment_value, months_since_start
order by dimension asc, segment_value asc, months_since_start asc
