"""The Airflow pool that serialises warehouse access (a constant, importable without Airflow)."""

# DuckDB allows one process to open its file for writing: every task that opens the warehouse
# takes a slot of this pool. `make` creates it with 1 slot; raise it on PostgreSQL.
WAREHOUSE_POOL = "postsales_warehouse"
