"""The Great Expectations gate: type coercion, suite building and quarantine."""
