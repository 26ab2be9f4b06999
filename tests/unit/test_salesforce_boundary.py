"""Reading from Salesforce does not depend on writing to it, and both go through the provider's hook.

The extraction source (postsales.sources.salesforce) and the CRM write-back adapter
(postsales.crm.salesforce) both build on the client in postsales.salesforce_api, which logs in
through the Airflow Salesforce provider's SalesforceHook (simple-salesforce); the source and the
client import nothing from the CRM package, and the adapter sends no request but through the
client's library object.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "plugins" / "postsales"
CRM = "postsales.crm"


def imported_modules(path: Path) -> set[str]:
    """Every module (and ``module.name``) the file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.relative_to(ROOT)}: a relative import could hide the CRM package"
            found.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return found


def test_the_source_and_the_client_import_nothing_from_the_crm_package():
    assert "postsales.salesforce_api.SalesforceClient" in imported_modules(LIBRARY / "sources" / "salesforce.py")
    for path in (LIBRARY / "sources" / "salesforce.py", LIBRARY / "salesforce_api.py"):
        crm = sorted(m for m in imported_modules(path) if m == CRM or m.startswith(f"{CRM}."))
        assert not crm, f"{path.relative_to(ROOT)} imports {crm}"


def test_the_adapter_talks_to_salesforce_through_the_client():
    imported = imported_modules(LIBRARY / "crm" / "salesforce.py")
    assert "postsales.salesforce_api.SalesforceClient" in imported
    assert not {m for m in imported if m.split(".")[0] in ("requests", "simple_salesforce", "airflow")}


def test_the_client_logs_in_through_the_providers_hook():
    imported = imported_modules(LIBRARY / "salesforce_api.py")
    assert "airflow.providers.salesforce.hooks.salesforce.SalesforceHook" in imported


def test_reading_from_salesforce_loads_no_crm_module(tmp_path):
    """What the extract runs, lazy imports included: the source builds its client from the connection
    (a direct session, which sends no request)."""
    probe = """
import sys
from postsales.config import SalesforceObjectMapping, SalesforceSource as Config
from postsales.sources.salesforce import SalesforceSource
mapping = SalesforceObjectMapping(object="Account", columns={"account_id": "Id"})
client = SalesforceSource(Config(objects={"accounts": mapping}))._client()
print(type(client).__module__, type(client).__name__)
print(sorted(m for m in sys.modules if m == "postsales.crm" or m.startswith("postsales.crm.")))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POSTSALES"))}
    env |= {"AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "plugins")}
    connection = {"conn_type": "salesforce", "password": "00D-token", "extra": {"instance_url": "https://acme.my"}}
    env["AIRFLOW_CONN_SALESFORCE_DEFAULT"] = json.dumps(connection)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-2:] == ["postsales.salesforce_api SalesforceClient", "[]"], out.stdout
