-- The Grow / Protect / Re-evaluate / Manage 2x2 as of :as_of_date, one row per quadrant
-- (docs/metrics.md, "Quadrant" and "Focus check"): accounts, ARR, wallet and unrealised wallet
-- (what is left to win, never negative), the mean share of wallet, the accounts recommended to
-- move (longer than the dwell limit in Re-evaluate), each quadrant's part of all accounts, ARR
-- and unrealised wallet, and the 80:20 focus check: its accounts per engagement model (other:
-- Unknown or a model not named below) and its share of customer-success capacity, an account's
-- capacity being its engagement model's weight (bound: :high_touch_weight, :pooled_weight,
-- :tech_touch_weight; any other model weighs 0). Unclassified accounts have no axis values.
with segments as (
    select
        quadrant,
        recommended_quadrant,
        engagement_model,
        arr,
        wallet_size,
        share_of_wallet,
        -- greatest() skips nulls: without a wallet nothing is known to be unrealised
        case
            when wallet_size is not null then greatest(wallet_size - coalesce(arr, 0), 0)
        end as unrealized_wallet,
        case engagement_model
            when 'high-touch' then cast(:high_touch_weight as double precision)
            when 'pooled' then cast(:pooled_weight as double precision)
            when 'tech-touch' then cast(:tech_touch_weight as double precision)
            else 0.0
        end as capacity
    from mart.account_segments
    where as_of_date = cast(:as_of_date as date)
),

per_quadrant as (
    select
        quadrant,
        count(*) as account_count,
        coalesce(sum(arr), 0) as arr,
        sum(wallet_size) as wallet,
        sum(unrealized_wallet) as unrealized_wallet,
        avg(share_of_wallet) as avg_share_of_wallet,
        sum(case when recommended_quadrant <> quadrant then 1 else 0 end) as recommended_to_move,
        sum(case when engagement_model = 'high-touch' then 1 else 0 end) as high_touch_accounts,
        sum(case when engagement_model = 'pooled' then 1 else 0 end) as pooled_accounts,
        sum(case when engagement_model = 'tech-touch' then 1 else 0 end) as tech_touch_accounts,
        -- Unknown (a rule undecided for a missing input) or a model the weights do not name.
        sum(
            case
                when engagement_model in ('high-touch', 'pooled', 'tech-touch') then 0 else 1
            end
        ) as other_accounts,
        sum(capacity) as capacity
    from segments
    group by quadrant
),

totals as (
    select
        count(*) as account_count,
        sum(arr) as arr,
        sum(unrealized_wallet) as unrealized_wallet,
        sum(capacity) as capacity
    from segments
)

select
    per_quadrant.quadrant,
    per_quadrant.account_count,
    per_quadrant.arr,
    per_quadrant.wallet,
    per_quadrant.unrealized_wallet,
    per_quadrant.avg_share_of_wallet,
    per_quadrant.recommended_to_move,
    per_quadrant.high_touch_accounts,
    per_quadrant.pooled_accounts,
    per_quadrant.tech_touch_accounts,
    per_quadrant.other_accounts,
    per_quadrant.capacity,
    per_quadrant.account_count * 1.0 / totals.account_count as part_of_accounts,
    per_quadrant.arr / nullif(totals.arr, 0) as part_of_arr,
    per_quadrant.unrealized_wallet / nullif(totals.unrealized_wallet, 0) as part_of_unrealized_wallet,
    per_quadrant.capacity / nullif(totals.capacity, 0) as capacity_share
from per_quadrant
cross join totals
order by
    case per_quadrant.quadrant
        when 'Grow' then 1
        when 'Protect' then 2
        when 'Re-evaluate' then 3
        when 'Manage' then 4
        else 5
    end,
    per_quadrant.quadrant
