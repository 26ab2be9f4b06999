-- Quarantined rows per table and failed-expectation list (a JSON array, split in Python).
select
    source_table,
    failed_expectations,
    count(*) as quarantined_rows
from ops.quarantine
group by source_table, failed_expectations
order by source_table asc, quarantined_rows desc, failed_expectations asc
