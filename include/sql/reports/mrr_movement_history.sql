-- MRR and its movements per month as known at one snapshot, for the report.
select
    month,
    mrr,
    customers,
    new_mrr,
    expansion_mrr,
    reactivation_mrr,
    contraction_mrr,
    churned_mrr,
    net_new_mrr
from mart.mrr_movements
where snapshot_month = cast(:snapshot_month as date)
order by month asc
