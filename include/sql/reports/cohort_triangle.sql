-- The retention triangle of one snapshot and cohort grain, for the report: mart.cohort_retention's
-- rows as they are, plus cohort_size, the whole cohort: a yearly cohort's base grows through its
-- first year (docs/metrics.md), so its size is the largest base, every account acquired in that
-- year (so far, for the current year).
select
    cohort_retention.*,  -- noqa: AM04
    max(cohort_retention.cohort_customers) over (partition by cohort_retention.cohort_month) as cohort_size
from mart.cohort_retention as cohort_retention
where
    cohort_retention.snapshot_month = cast(:snapshot_month as date)
    and cohort_retention.cohort_grain = :cohort_grain
order by cohort_retention.cohort_month asc, cohort_retention.months_since_start asc
