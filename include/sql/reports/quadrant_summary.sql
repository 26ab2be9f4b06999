-- The Grow / Protect / Re-evaluate / Manage 2x2 as of :as_of_date, one row per quadrant
-- (docs/metrics.md, "Quadrant"): accounts, ARR, wallet and unrealised wallet (what is left to
-- win, never negative), the mean share of wallet, and each quadrant's part of all accounts and
-- of all ARR (what the 80:20 focus check compares), plus the accounts recommended to move
-- (longer than the dwell limit in Re-evaluate). Unclassified accounts have no axis values.
with segments as (
    select
        quadrant,
        recommended_quadrant,
        arr,
        wallet_size,
        share_of_wallet
    from mart.account_segments
    where as_of_date = cast(:as_of_date as date)
),

per_quadrant as (
    select
        quadrant,
        count(*) as account_count,
        coalesce(sum(arr), 0) as arr,
        sum(wallet_size) as wallet,
        -- greatest() skips nulls: without a wallet nothing is known to be unrealised
        sum(
            case when wallet_size is not null then greatest(wallet_size - coalesce(arr, 0), 0) end
        ) as unrealized_wallet,
        avg(share_of_wallet) as avg_share_of_wallet,
        sum(case when recommended_quadrant <> quadrant then 1 else 0 end) as recommended_to_move
    from segments
    group by quadrant
),

totals as (
    select
        count(*) as account_count,
        sum(arr) as arr
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
    per_quadrant.account_count * 1.0 / totals.account_count as part_of_accounts,
    per_quadrant.arr / nullif(totals.arr, 0) as part_of_arr
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
