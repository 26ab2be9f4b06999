"""Reports: self-contained HTML for humans, next to the tables."""
