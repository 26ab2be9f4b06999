-- Every account of mart.account_segments as of :as_of_date with its name, its place on the
-- 2x2 and its tier-migration flags (mart.account_forecasts of the same date; null when not
-- forecast), largest ARR first: the scatter's points and the report's per-account table.
select
    segments.account_id,
    features.name,
    segments.quadrant,
    segments.quadrant_rule,
    segments.quadrant_cell,
    segments.plane_quadrant,
    segments.recommended_quadrant,
    segments.reevaluate_days,
    segments.share_of_wallet,
    segments.wallet_size,
    segments.arr,
    segments.value_tier,
    segments.engagement_model,
    segments.explanation,
    forecasts.smb_to_mm_6_9m,
    forecasts.mm_to_ent_12_15m,
    forecasts.ent_decline_risk,
    forecasts.months_to_next_tier,
    forecasts.projected_tier_9m,
    forecasts.projected_tier_15m
from mart.account_segments as segments
left join mart.account_features as features
    on
        segments.as_of_date = features.as_of_date
        and segments.account_id = features.account_id
left join mart.account_forecasts as forecasts
    on
        segments.as_of_date = forecasts.as_of_date
        and segments.account_id = forecasts.account_id
where segments.as_of_date = cast(:as_of_date as date)
order by segments.arr desc nulls last, segments.account_id asc
