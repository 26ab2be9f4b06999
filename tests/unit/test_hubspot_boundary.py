"""Reading from HubSpot does not depend on writing to it, and no HubSpot code speaks HTTP itself.

The extraction source (postsales.sources.hubspot) and the write-back adapter
(postsales.crm.hubspot) both build on postsales.hubspot_api.HubSpotClient, which builds on
HubSpot's official client (hubspot-api-client); the source and the client import nothing from
the CRM package, and none of the three imports an HTTP library.
"""

from __future__ import annotations

from pathlib import Path

from test_salesforce_boundary import CRM, imported_modules

LIBRARY = Path(__file__).resolve().parents[2] / "plugins" / "postsales"
FILES = (LIBRARY / "sources" / "hubspot.py", LIBRARY / "hubspot_api.py", LIBRARY / "crm" / "hubspot.py")
HTTP = ("requests", "urllib.request", "http.client", "httpx", "aiohttp")


def test_the_source_and_the_client_import_nothing_from_the_crm_package():
    assert "postsales.hubspot_api.HubSpotClient" in imported_modules(LIBRARY / "sources" / "hubspot.py")
    for path in FILES[:2]:
        crm = sorted(m for m in imported_modules(path) if m == CRM or m.startswith(f"{CRM}."))
        assert not crm, f"{path.name} imports {crm}"


def test_hubspot_is_reached_through_the_official_client_only():
    assert "postsales.hubspot_api.HubSpotClient" in imported_modules(LIBRARY / "crm" / "hubspot.py")
    assert "hubspot.HubSpot" in imported_modules(LIBRARY / "hubspot_api.py")
    for path in FILES:
        http = sorted(m for m in imported_modules(path) if m.split(".")[0] in HTTP or m in HTTP)
        assert not http, f"{path.name} imports {http}"
