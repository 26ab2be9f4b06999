-- Every loaded row of staging.accounts with the span [valid_from, valid_to) in which it was the
-- version known, per account_id; a query as of a date takes the row the macro known_at selects.
-- Both rules: include/macros/point_in_time.sql.
{{ version_spans('staging.accounts', 'account_id') }}
