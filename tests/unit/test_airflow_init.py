"""deploy/airflow-init.sh refuses bad settings before touching Airflow, naming the .env variable,
and writes the admin password where Airflow's SimpleAuthManager reads it.

The script runs for real (bash, and this venv's python for its checks); every case stops at or
before the warehouse check, ahead of the first `airflow` command, so no metadata database is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "airflow-init.sh"
WAREHOUSE_PASSWORD = "wh-4b1c9e7f"
# Port 1 on loopback refuses at once: a warehouse that is not there.
UNREACHABLE_WAREHOUSE = f"postgresql+psycopg://postsales:{WAREHOUSE_PASSWORD}@127.0.0.1:1/postsales_warehouse"


ADMIN, ADMIN_PASSWORD = "ops-admin", "admin-7d2a"
JWT_SECRET = "3f" * 64


@pytest.fixture
def passwords_file(tmp_path) -> Path:
    return tmp_path / "auth" / "passwords.json"


def good_settings(passwords_file: Path) -> dict[str, str]:
    return {
        "AIRFLOW_UID": str(os.getuid()),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW_ADMIN_USERNAME": ADMIN,
        "AIRFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "POSTGRES_PASSWORD": "pg-91e3",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://airflow:pg-91e3@postgres:5432/airflow",
        "POSTSALES_WAREHOUSE_URL": UNREACHABLE_WAREHOUSE,
    }


def run_init(passwords_file: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": os.environ.get("HOME", "/tmp"),
        **good_settings(passwords_file),
        **overrides,
    }
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"AIRFLOW__API_AUTH__JWT_SECRET": "change-me-jwt-secret"},
            "AIRFLOW_JWT_SECRET still holds the .env.example placeholder",
        ),
        ({"AIRFLOW_ADMIN_PASSWORD": ""}, "AIRFLOW_ADMIN_PASSWORD is empty"),
        (
            {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://airflow:change-me-pg@postgres:5432/airflow"},
            "POSTGRES_PASSWORD still holds the .env.example placeholder",
        ),
        (
            {"POSTSALES_WAREHOUSE_URL": "postgresql+psycopg://postsales:change-me-warehouse-password@postgres/w"},
            "POSTSALES_WAREHOUSE_PASSWORD still holds the .env.example placeholder",
        ),
        ({"AIRFLOW__CORE__FERNET_KEY": "not-a-fernet-key"}, "AIRFLOW_FERNET_KEY is not a Fernet key"),
        ({"AIRFLOW_ADMIN_USERNAME": "ops:admin"}, "AIRFLOW_ADMIN_USERNAME must be letters, digits"),
    ],
)
def test_a_missing_or_placeholder_secret_stops_the_init_naming_the_variable(passwords_file, overrides, message):
    result = run_init(passwords_file, **overrides)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"airflow-init: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_valid_fernet_keys_pass_while_rotating_and_one_bad_key_fails(passwords_file):
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    rotating = run_init(passwords_file, AIRFLOW__CORE__FERNET_KEY=f"{new},{old}")
    # Past the key check: it stops later, at the (unreachable) warehouse.
    assert "the warehouse is not reachable" in rotating.stderr
    broken = run_init(passwords_file, AIRFLOW__CORE__FERNET_KEY=f"{new},{old[:-2]}")
    assert "airflow-init: AIRFLOW_FERNET_KEY is not a Fernet key" in broken.stderr
    assert new not in broken.stdout + broken.stderr


def test_a_password_that_breaks_the_url_is_refused_without_printing_it(passwords_file):
    password = "p@ss-5e0d"
    result = run_init(
        passwords_file,
        POSTGRES_PASSWORD=password,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg://airflow:{password}@postgres:5432/airflow",
    )
    assert result.returncode == 1
    assert "POSTGRES_PASSWORD or POSTSALES_WAREHOUSE_PASSWORD breaks a database URL" in result.stderr
    assert password not in result.stdout + result.stderr


def test_an_unreachable_warehouse_is_reported_with_the_password_masked(passwords_file):
    result = run_init(passwords_file)
    assert result.returncode == 1
    assert "the warehouse is not reachable with POSTSALES_WAREHOUSE_URL" in result.stderr
    assert "OperationalError connecting to postgresql+psycopg://postsales:***@127.0.0.1:1/postsales_warehouse" in (
        result.stderr
    )
    assert WAREHOUSE_PASSWORD not in result.stdout + result.stderr


LOGIN = """
from airflow.api_fastapi.app import create_auth_manager
from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody
from airflow.api_fastapi.auth.managers.simple.services.login import SimpleAuthManagerLogin
from fastapi import HTTPException
import jwt, sys

create_auth_manager().init()
token = SimpleAuthManagerLogin.create_token(LoginBody(username=sys.argv[1], password=sys.argv[2]))
claims = jwt.decode(token, sys.argv[3], algorithms=["HS512"], audience="apache-airflow")
print(claims["sub"], claims["role"])
try:
    SimpleAuthManagerLogin.create_token(LoginBody(username=sys.argv[1], password="not-" + sys.argv[2]))
except HTTPException as exc:
    print("wrong password:", exc.status_code)
"""


def test_the_admin_logs_in_with_the_env_password_through_airflows_simple_auth_manager(passwords_file, tmp_path):
    result = run_init(passwords_file)  # stops at the warehouse, after writing the passwords file
    assert f"admin user {ADMIN} (password from .env) in {passwords_file}" in result.stdout
    assert passwords_file.stat().st_mode & 0o777 == 0o600
    assert ADMIN_PASSWORD not in result.stdout + result.stderr
    # What the compose file gives the api-server (tests/unit/test_compose.py checks it sets these).
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
    }
    login = subprocess.run(
        [sys.executable, "-c", LOGIN, ADMIN, ADMIN_PASSWORD, JWT_SECRET],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert login.returncode == 0, login.stderr
    assert login.stdout.split("\n")[-3:] == [f"{ADMIN} admin", "wrong password: 401", ""]
    # The api-server kept the password from .env instead of generating one.
    assert passwords_file.read_text() == f'{{"{ADMIN}": "{ADMIN_PASSWORD}"}}\n'
