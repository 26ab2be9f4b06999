-- Accounts per (quadrant on :compared_to, quadrant on :as_of_date) in mart.account_segments.
-- An account present on only one of the two dates is '(new)' or '(gone)'.
with before_rows as (
    select
        account_id,
        quadrant
    from mart.account_segments
    where as_of_date = cast(:compared_to as date)
),

after_rows as (
    select
        account_id,
        quadrant
    from mart.account_segments
    where as_of_date = cast(:as_of_date as date)
)

select
    coalesce(before_rows.quadrant, '(new)') as from_quadrant,
    coalesce(after_rows.quadrant, '(gone)') as to_quadrant,
    count(*) as account_count
from before_rows
full outer join after_rows on before_rows.account_id = after_rows.account_id
group by coalesce(before_rows.quadrant, '(new)'), coalesce(after_rows.quadrant, '(gone)')
order by from_quadrant, to_quadrant
