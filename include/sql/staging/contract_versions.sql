-- Every loaded row of staging.contracts with the span [valid_from, valid_to) in which it was the
-- version known, per contract_id; a query as of a date takes the row the macro known_at selects.
-- Both rules: include/macros/point_in_time.sql.
{{ version_spans('staging.contracts', 'contract_id') }}
