#!/usr/bin/env bash
# The warehouse next to Airflow's metadata database: its own login role owning its own database,
# so the pipeline cannot touch Airflow's tables. The postgres image runs this once, when the data
# volume is empty (later password changes: ALTER ROLE by hand, see docs/deploy.md).
set -euo pipefail
: "${POSTSALES_WAREHOUSE_DB:?}" "${POSTSALES_WAREHOUSE_USER:?}" "${POSTSALES_WAREHOUSE_PASSWORD:?}"

# psql variables (:"name" quotes an identifier, :'name' a literal) keep the values out of the SQL text.
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}" \
    --set=warehouse_db="${POSTSALES_WAREHOUSE_DB}" \
    --set=warehouse_user="${POSTSALES_WAREHOUSE_USER}" \
    --set=warehouse_password="${POSTSALES_WAREHOUSE_PASSWORD}" <<'SQL'
create role :"warehouse_user" login password :'warehouse_password';
create database :"warehouse_db" owner :"warehouse_user";
revoke all on database :"warehouse_db" from public;
SQL
echo "postgres-init: created database ${POSTSALES_WAREHOUSE_DB} owned by ${POSTSALES_WAREHOUSE_USER}"
