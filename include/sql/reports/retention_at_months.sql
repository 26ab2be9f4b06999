-- Retention k months after acquisition, pooled over every monthly cohort that has reached k:
-- active / cohort size, and revenue retention weighted by starting MRR.
select
    months_since_start,
    count(*) as cohorts,
    sum(cohort_customers) as customers,
    sum(active_customers) * 1.0 / sum(cohort_customers) as logo_retention,
    sum(grr * starting_mrr) / nullif(sum(starting_mrr), 0) as grr,
    sum(nrr * starting_mrr) / nullif(sum(starting_mrr), 0) as nrr
from mart.cohort_retention
where
    snapshot_month = cast(:snapshot_month as date)
    and cohort_grain = 'month'
    and months_since_start in (1, 3, 6, 12, 24)
group by months_since_start
order by months_since_start asc
