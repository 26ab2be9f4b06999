#!/usr/bin/env bash
# One-shot setup run by the compose service airflow-init (as root) before any Airflow service starts:
#   1. refuse empty or placeholder secrets and an invalid Fernet key, naming the .env variable to fix;
#   2. write the admin's password where the api-server's SimpleAuthManager reads it;
#   3. check the warehouse is reachable with POSTSALES_WAREHOUSE_URL (password masked in messages);
#   4. migrate the metadata database, set the postsales_warehouse pool;
#   5. hand the data and log volumes to AIRFLOW_UID.
# Every step is idempotent: rerun it with `docker compose up airflow-init` after changing .env.
set -euo pipefail

fail() {
    echo "airflow-init: $*" >&2
    exit 1
}

# <variable in this container> <variable in .env>: set, and not the .env.example placeholder.
require_secret() {
    local value="${!1:-}"
    [[ -n "${value}" ]] || fail "$2 is empty: set it in .env (see .env.example)"
    [[ "${value}" != *change-me* ]] || fail "$2 still holds the .env.example placeholder: generate one (docs/deploy.md, Secrets)"
}
require_secret AIRFLOW__CORE__FERNET_KEY AIRFLOW_FERNET_KEY
require_secret AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW_JWT_SECRET
require_secret AIRFLOW_ADMIN_PASSWORD AIRFLOW_ADMIN_PASSWORD
require_secret AIRFLOW__DATABASE__SQL_ALCHEMY_CONN POSTGRES_PASSWORD
require_secret POSTSALES_WAREHOUSE_URL POSTSALES_WAREHOUSE_PASSWORD

# The checks below print no values: a traceback could quote a key or a URL with its password.
python - <<'PY' || fail "AIRFLOW_FERNET_KEY is not a Fernet key (32 url-safe base64 bytes): generate one (docs/deploy.md, Secrets)"
import os

from cryptography.fernet import Fernet

try:
    # "new,old" while rotating keys (docs/deploy.md, Upgrades): every key must be valid.
    for key in os.environ["AIRFLOW__CORE__FERNET_KEY"].split(","):
        Fernet(key.strip())
except Exception:
    raise SystemExit(1) from None
PY

# The URLs are built from the passwords: a password that is not URL-safe (say with an @) would
# point them at another host.
python - <<'PY' || fail "POSTGRES_PASSWORD or POSTSALES_WAREHOUSE_PASSWORD breaks a database URL: use URL-safe passwords (openssl rand -hex 24)"
import os

import sqlalchemy as sa

try:
    metadata = sa.engine.make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    sa.engine.make_url(os.environ["POSTSALES_WAREHOUSE_URL"])
except Exception:
    raise SystemExit(1) from None
password = os.environ.get("POSTGRES_PASSWORD")  # set when .env is the env_file
if metadata.host != "postgres" or (password is not None and metadata.password != password):
    raise SystemExit(1)
PY

# SimpleAuthManager (Airflow 3's default) takes its users from [core] simple_auth_manager_users
# (compose sets "<AIRFLOW_ADMIN_USERNAME>:admin") and their passwords from this JSON file; .env is the
# source of truth, so the file is rewritten on every run (a changed password applies on the next up).
[[ "${AIRFLOW_ADMIN_USERNAME:-}" =~ ^[A-Za-z0-9_.@-]+$ ]] \
    || fail "AIRFLOW_ADMIN_USERNAME must be letters, digits and _ . @ - only"
passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
mkdir -p "$(dirname "${passwords_file}")"
python - <<'PY' || fail "could not write ${passwords_file}"
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as stream:
    json.dump({os.environ["AIRFLOW_ADMIN_USERNAME"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, stream)
    stream.write("\n")
os.replace(f"{path}.tmp", path)
PY
chown -R "${AIRFLOW_UID}:0" "$(dirname "${passwords_file}")"
echo "airflow-init: admin user ${AIRFLOW_ADMIN_USERNAME} (password from .env) in ${passwords_file}"

python - <<'PY' || fail "the warehouse is not reachable with POSTSALES_WAREHOUSE_URL (see the error above)"
import os

import sqlalchemy as sa

url = sa.engine.make_url(os.environ["POSTSALES_WAREHOUSE_URL"])
try:
    with sa.create_engine(url).connect() as conn:
        conn.execute(sa.text("select 1"))
except Exception as exc:
    reason = str(exc).splitlines()[0] if str(exc) else ""
    if url.password:  # never print the password, even if the driver quotes it
        reason = reason.replace(str(url.password), "***")
    raise SystemExit(
        f"{type(exc).__name__} connecting to {url.render_as_string(hide_password=True)}: {reason}"
    ) from None
print(f"airflow-init: warehouse reachable at {url.render_as_string(hide_password=True)}")
PY

echo "airflow-init: $(airflow version | tail -n 1), migrating the metadata database"
airflow db migrate

# Every warehouse write takes a slot of this pool (the DAGs use it). DuckDB allows one writer;
# PostgreSQL takes several, each run replacing only its own partition in its own transaction.
airflow pools set postsales_warehouse "${POSTSALES_WAREHOUSE_POOL_SLOTS}" \
    "Warehouse writes (PostgreSQL in docker compose: POSTSALES_WAREHOUSE_POOL_SLOTS)"

logs="${AIRFLOW_HOME:-/opt/airflow}/logs"
mkdir -p "${POSTSALES_DATA_DIR}" "${logs}"
chown -R "${AIRFLOW_UID}:0" "${POSTSALES_DATA_DIR}" "${logs}"
echo "airflow-init: done (data and logs owned by ${AIRFLOW_UID}:0)"
