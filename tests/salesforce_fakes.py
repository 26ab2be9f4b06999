"""Salesforce as the Airflow provider's connection reaches it, for ``responses``: the connections as the
provider documents them (``AIRFLOW_CONN_<ID>`` in JSON), and the real shapes of the login answers.

- The SOAP ``login`` call (username, password and security token): ``POST
  https://<domain>.salesforce.com/services/Soap/u/<version>``, answered with a ``loginResponse``
  (``serverUrl``, ``sessionId``) or, with HTTP 500, a ``LoginFault``.
- The OAuth 2.0 token endpoint (JWT bearer, client credentials): ``POST
  https://<domain>.salesforce.com/services/oauth2/token``, answered with ``access_token`` and
  ``instance_url``, or ``{"error", "error_description"}``.
"""

from __future__ import annotations

import json

import responses

INSTANCE = "https://acme.my.salesforce.com"
VERSION = "62.0"  # the connection's extra "version"
API = f"{INSTANCE}/services/data/v{VERSION}"
QUERY = f"{API}/query/"
USERNAME = "integration@acme.example"
PASSWORD = "Pa55-w0rd-do-not-log"
SECURITY_TOKEN = "Sec-T0ken-do-not-log-XYZ"
SESSION = "00D5g000004XyzE!AQ0AQH8sEcReTsEsSiOn.do_not_log_me"
SOAP_LOGIN = f"{INSTANCE}/services/Soap/u/{VERSION}"  # domain acme.my: the org's My Domain
ORG = "00D5g000004XyzEEAS"


def connection_json(extra: dict | None = None, **fields) -> str:
    """An Airflow connection as the provider's documentation builds it, in JSON for AIRFLOW_CONN_<ID>.

    ``airflow.sdk.Connection``: Airflow 3's ``airflow.models.Connection``, whose extra is JSON text.
    """
    from airflow.sdk import Connection

    return Connection(conn_id="unused", conn_type="salesforce", extra=json.dumps(extra or {}), **fields).as_json()


def password_connection(**extra) -> str:
    """Username, password and security token (domain: the org's My Domain, API version pinned)."""
    extras = {"security_token": SECURITY_TOKEN, "domain": "acme.my", "version": VERSION} | extra
    return connection_json(login=USERNAME, password=PASSWORD, extra={k: v for k, v in extras.items() if v is not None})


def use_connection(monkeypatch, conn_json: str, conn_id: str = "salesforce_default") -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json)


def soap_login_response(session_id: str = SESSION, instance: str = INSTANCE) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>\
<metadataServerUrl>{instance}/services/Soap/m/{VERSION}/{ORG[:15]}</metadataServerUrl>\
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
<serverUrl>{instance}/services/Soap/u/{VERSION}/{ORG[:15]}</serverUrl>\
<sessionId>{session_id}</sessionId><userId>0055g00000AbCdEAAV</userId>\
<userInfo><organizationId>{ORG}</organizationId><userName>{USERNAME}</userName></userInfo>\
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""


def soap_login_fault(code: str, message: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>\
<faultstring>{code}: {message}</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault">\
<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage>\
</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"""


def add_soap_login(session_id: str = SESSION, url: str = SOAP_LOGIN) -> None:
    responses.post(url, body=soap_login_response(session_id), content_type="text/xml; charset=utf-8")


def token_response(access_token: str, instance: str = INSTANCE) -> dict:
    """The OAuth 2.0 token endpoint's answer."""
    return {
        "access_token": access_token,
        "instance_url": instance,
        "id": f"https://login.salesforce.com/id/{ORG}/0055g00000AbCdEAAV",
        "token_type": "Bearer",
        "scope": "api",
        "issued_at": "1793505600000",
        "signature": "c2lnbmF0dXJlLW9mLXRoZS10b2tlbg==",
    }


def error(code: str, message: str) -> list[dict]:
    """A REST API error body."""
    return [{"message": message, "errorCode": code}]


# --- the sObject describe (GET /services/data/vXX.X/sobjects/<object>/describe) -------------------

SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "picklist": "xsd:string",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "long": "xsd:long",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}
NUMBERS = ("double", "currency", "percent")


def describe_url(object_name: str = "Account") -> str:
    return f"{API}/sobjects/{object_name}/describe"


def describe_field(name: str, type: str = "string", **extra) -> dict:
    """One entry of a describe's ``fields``: the attributes Salesforce sends for every field (a subset)."""
    return {
        "name": name,
        "label": name.removesuffix("__c").replace("_", " "),
        "type": type,
        "soapType": SOAP_TYPES[type],
        "length": 255 if type in ("string", "picklist") else 18 if type in ("id", "reference") else 0,
        "byteLength": 765 if type in ("string", "picklist") else 18 if type in ("id", "reference") else 0,
        "precision": 18 if type in NUMBERS else 0,
        "scale": 0,
        "digits": 9 if type == "int" else 18 if type == "long" else 0,
        "custom": name.endswith("__c"),
        "externalId": False,
        "idLookup": type == "id",
        "unique": False,
        "nillable": type not in ("id", "boolean"),
        "filterable": True,
        "updateable": type != "id" and name != "SystemModstamp",
        "calculated": False,
    } | extra


def describe_response(object_name: str, fields: list[dict]) -> dict:
    """An sObject describe, as ``sf.<object>.describe()`` returns it (a subset of its attributes)."""
    return {
        "name": object_name,
        "label": object_name,
        "labelPlural": f"{object_name}s",
        "custom": object_name.endswith("__c"),
        "keyPrefix": "001" if object_name == "Account" else None,
        "queryable": True,
        "updateable": True,
        "fields": fields,
        "urls": {
            "sobject": f"/services/data/v{VERSION}/sobjects/{object_name}",
            "describe": f"/services/data/v{VERSION}/sobjects/{object_name}/describe",
        },
    }
