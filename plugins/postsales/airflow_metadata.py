"""Connection settings for Airflow's own metadata database, as `make` sets it up.

Imported by Airflow through ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS`` (the Makefile
sets it only while the metadata database is the default SQLite file).
"""

# SQLite takes one writer at a time and Python's sqlite3 gives up after waiting 5 s for the
# lock. A busy scheduler holds it longer, so `airflow backfill create` and `airflow dags
# unpause` failed with "database is locked" under `make airflow`. Wait up to a minute.
SQLITE_CONNECT_ARGS = {"timeout": 60}
