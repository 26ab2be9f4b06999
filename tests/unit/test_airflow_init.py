"""deploy/airflow-init.sh refuses bad settings before touching Airflow, naming the .env variable.

The script runs for real (bash, and this venv's python for the Fernet and URL checks); every case
fails in a check that comes before the first `airflow` command, so no Airflow or database is needed.
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


def good_settings() -> dict[str, str]:
    return {
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": "3f" * 32,
        "AIRFLOW_ADMIN_PASSWORD": "admin-7d2a",
        "POSTGRES_PASSWORD": "pg-91e3",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://airflow:pg-91e3@postgres:5432/airflow",
        "POSTSALES_WAREHOUSE_URL": UNREACHABLE_WAREHOUSE,
    }


def run_init(**overrides: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": os.environ.get("HOME", "/tmp"),
        **good_settings(),
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
    ],
)
def test_a_missing_or_placeholder_secret_stops_the_init_naming_the_variable(overrides, message):
    result = run_init(**overrides)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"airflow-init: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_valid_fernet_keys_pass_while_rotating_and_one_bad_key_fails():
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    rotating = run_init(AIRFLOW__CORE__FERNET_KEY=f"{new},{old}")
    # Past the key check: it stops later, at the (unreachable) warehouse.
    assert "the warehouse is not reachable" in rotating.stderr
    broken = run_init(AIRFLOW__CORE__FERNET_KEY=f"{new},{old[:-2]}")
    assert "airflow-init: AIRFLOW_FERNET_KEY is not a Fernet key" in broken.stderr
    assert new not in broken.stdout + broken.stderr


def test_a_password_that_breaks_the_url_is_refused_without_printing_it():
    password = "p@ss-5e0d"
    result = run_init(
        POSTGRES_PASSWORD=password,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg://airflow:{password}@postgres:5432/airflow",
    )
    assert result.returncode == 1
    assert "POSTGRES_PASSWORD or POSTSALES_WAREHOUSE_PASSWORD breaks a database URL" in result.stderr
    assert password not in result.stdout + result.stderr


def test_an_unreachable_warehouse_is_reported_with_the_password_masked():
    result = run_init()
    assert result.returncode == 1
    assert "the warehouse is not reachable with POSTSALES_WAREHOUSE_URL" in result.stderr
    assert "OperationalError connecting to postgresql+psycopg://postsales:***@127.0.0.1:1/postsales_warehouse" in (
        result.stderr
    )
    assert WAREHOUSE_PASSWORD not in result.stdout + result.stderr
