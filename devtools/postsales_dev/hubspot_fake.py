"""HubSpot's CRM API behind a real HTTP server on 127.0.0.1, for the tests and the bench.

The official client (``hubspot-api-client``) sends its requests through urllib3, which the
``responses`` library (a patch of ``requests``) never sees; so the fakes answer at the HTTP
level, in a thread, with the request and response shapes HubSpot documents.

- :class:`HubSpotServer`: the server. Routes are added as canned replies (``add``: status,
  JSON, headers; or ``drop`` the connection without an answer, or ``stall`` past the client's
  read timeout) or callbacks (``add_callback``); several replies on one route are used in
  order and the last one repeats, as ``responses`` does. Every request is recorded in
  ``calls`` (``call.request.url``, ``.headers``, ``.body``, ``.json()``). A route nobody added
  answers 501, so a test sees an unexpected request. ``GET /account-info/v3/details`` answers
  the server's ``portal_id`` unless a test adds that route.
- :class:`FakePortal`: one HubSpot account in memory: records by object type (companies,
  deals, custom objects), their associations and property definitions, behind the search API
  (filters, sorts, ``after`` paging, the 10,000-result cap), batch read and update (207 with
  ``errors[].context.ids`` for unknown ids), v4 association batch reads, the properties API
  and account info; it refuses any token but its own with a 401.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SEARCH_CAP = 10_000
CORRELATION = "aeb5f871-7f07-4993-9211-075dc63e7cbf"
STAMP = "2026-03-01T08:00:00.000Z"


@dataclass
class Request:
    method: str
    url: str  # the full URL, query included
    path: str
    query: dict[str, str]
    headers: Message  # case-insensitive, as HTTP headers are
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Call:
    request: Request
    status: int | None  # None: the connection was dropped or stalled


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None  # "drop": close without answering; "stall": answer after `stall` seconds
    stall: float = 0.0


Callback = Callable[[Request], tuple[int, dict[str, str], str | bytes]]


def reply(status: int = 200, json_body: Any = None, body: str | bytes | None = None, headers=None) -> Reply:
    if json_body is not None:
        body, headers = json.dumps(json_body), {"Content-Type": "application/json;charset=utf-8"} | (headers or {})
    raw = body.encode() if isinstance(body, str) else (body or b"")
    return Reply(status, raw, dict(headers or {}))


def error_body(category: str, message: str, **extra: Any) -> dict:
    """HubSpot's error body (``status``, ``message``, ``correlationId``, ``category``)."""
    return {"status": "error", "message": message, "correlationId": CORRELATION, "category": category} | extra


def _pattern(path: str) -> re.Pattern:
    """``/crm/v3/objects/{objectType}/search`` as a regular expression of its path."""
    parts = re.split(r"(\{[A-Za-z_]+\})", path)
    return re.compile(
        "^" + "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts) + "$"
    )


class HubSpotServer:
    def __init__(self, portal_id: int = 1234567):
        self.portal_id = portal_id
        self.calls: list[Call] = []
        # Each route's answers: [answer, given at least once].
        self._routes: list[tuple[str, re.Pattern, list[list]]] = []
        self._defaults: list[tuple[str, re.Pattern, list[list]]] = [
            ("GET", _pattern("/account-info/v3/details"), [[lambda request: account_info(self.portal_id), False]])
        ]
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hubspot-fake", daemon=True)
        self._thread.start()

    def __enter__(self) -> HubSpotServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(
        self,
        method: str,
        path: str,
        status: int = 200,
        json: Any = None,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        action: str | None = None,
        stall: float = 0.0,
    ) -> None:
        """A canned reply on ``method path`` (``{name}`` matches one path segment)."""
        answer = reply(status, json, body, headers)
        answer.action, answer.stall = action, stall
        self._route(method, path).append([answer, False])

    def add_callback(self, method: str, path: str, callback: Callback) -> None:
        """``callback(request)`` answers ``(status, headers, body)``."""
        self._route(method, path).append([callback, False])

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def _route(self, method: str, path: str) -> list[list]:
        with self._lock:
            for known, pattern, answers in self._routes:
                if known == method and pattern.pattern == _pattern(path).pattern:
                    return answers
            answers: list[list] = []
            self._routes.append((method, _pattern(path), answers))
            return answers

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            for method, pattern, answers in [*reversed(self._routes), *self._defaults]:  # the latest route wins
                if method == request.method and pattern.match(request.path) and answers:
                    # As responses does: an unused first answer is popped; a used one gives way to the next.
                    if len(answers) > 1 and answers[0][1]:
                        answers.pop(0)
                    entry = answers.pop(0) if len(answers) > 1 else answers[0]
                    entry[1] = True
                    answer = entry[0]
                    break
            else:
                return reply(501, error_body("NOT_IMPLEMENTED", f"no fake for {request.method} {request.path}"))
        if isinstance(answer, Reply):
            return answer
        status, headers, body = answer(request)
        content = {"Content-Type": "application/json;charset=utf-8"} if body else {}
        return reply(status, body=body, headers=content | dict(headers or {}))


def _handler(server: HubSpotServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                self.command,
                f"{server.url}{self.path}",
                parts.path,
                dict(parse_qsl(parts.query)),
                self.headers,
                body,
            )
            answer = server._answer(request)
            call = Call(request, None if answer.action else answer.status)
            with server._lock:
                server.calls.append(call)
            if answer.action == "drop":
                self.close_connection = True
                return
            if answer.action == "stall":
                time.sleep(answer.stall)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:  # the client gave up (a stalled answer)
                pass

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def account_info(portal_id: int) -> tuple[int, dict, str]:
    """``GET /account-info/v3/details``."""
    details = {
        "portalId": portal_id,
        "accountType": "STANDARD",
        "timeZone": "US/Eastern",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": "-05:00",
        "utcOffsetMilliseconds": -18000000,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }
    return 200, {}, json.dumps(details)


# --- a portal in memory ----------------------------------------------------------------------

# Properties HubSpot keeps on every record, and the datetime ones (compared as instants).
DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")
DATETIME_PROPERTIES = frozenset({"createdate", "hs_createdate", "hs_lastmodifieddate", "closedate"})
# HubSpot-defined association type ids of a primary company, by object type associated from.
PRIMARY_COMPANY = {"deals": 5, "contacts": 1, "tickets": 26}


def epoch_ms(value: str | None) -> int | None:
    """A datetime property (ISO 8601 or epoch milliseconds) as epoch milliseconds."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _comparable(name: str, value: Any, datetimes: frozenset[str] | set[str] = DATETIME_PROPERTIES) -> Any:
    if name in datetimes:
        return epoch_ms(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None if value is None else str(value).lower()


def _sort_key(name: str, value: Any, datetimes: set[str]) -> tuple[bool, Any]:
    """Records without the value last (ascending)."""
    found = _comparable(name, value, datetimes)
    return (found is None, 0 if found is None else found)


class FakePortal:
    """One HubSpot account: ``records[object_type][id] = {property: text}``."""

    def __init__(self, portal_id: int = 1234567, token: str | None = None):
        self.portal_id = portal_id
        self.token = token  # None: any bearer token is accepted
        self.records: dict[str, dict[str, dict[str, str | None]]] = {}
        self.associations: dict[tuple[str, str], dict[str, list[tuple[str, bool]]]] = {}
        self.defined: dict[str, set[str]] = {}  # property definitions beyond the values held
        self.datetimes: set[str] = set(DATETIME_PROPERTIES)  # compared as instants
        self._index: dict[tuple[str, str], dict[str, list[str]]] = {}  # (type, property) -> value -> ids

    # --- content ------------------------------------------------------------------------------

    def add(self, object_type: str, record_id: str | int, properties: dict[str, Any]) -> str:
        """A record; ``createdate`` and ``hs_lastmodifieddate`` default to a fixed instant."""
        record_id = str(record_id)
        values = {"createdate": STAMP, "hs_lastmodifieddate": STAMP} | {
            k: None if v is None else str(v) for k, v in properties.items()
        }
        self.records.setdefault(object_type, {})[record_id] = values | {"hs_object_id": record_id}
        self._index = {key: index for key, index in self._index.items() if key[0] != object_type}
        return record_id

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, primary: bool = True) -> None:
        self.associations.setdefault((from_type, to_type), {}).setdefault(str(from_id), []).append(
            (str(to_id), primary)
        )

    def define(self, object_type: str, *names: str, kind: str = "string") -> None:
        """Property definitions (``kind="datetime"``: filtered and sorted as instants)."""
        self.defined.setdefault(object_type, set()).update(names)
        if kind == "datetime":
            self.datetimes.update(names)

    def property_names(self, object_type: str) -> set[str]:
        held = {name for values in self.records.get(object_type, {}).values() for name in values}
        return set(DEFAULT_PROPERTIES) | held | self.defined.get(object_type, set())

    # --- the API --------------------------------------------------------------------------------

    def install(self, server: HubSpotServer) -> FakePortal:
        server.portal_id = self.portal_id
        routes = {
            ("GET", "/account-info/v3/details"): lambda request: account_info(self.portal_id),
            ("GET", "/crm/v3/properties/{objectType}"): self.properties,
            ("POST", "/crm/v3/objects/{objectType}/search"): self.search,
            ("POST", "/crm/v3/objects/{objectType}/batch/read"): self.batch_read,
            ("POST", "/crm/v3/objects/{objectType}/batch/update"): self.batch_update,
            ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read"): self.association_read,
        }
        for (method, path), handler in routes.items():
            server.add_callback(method, path, self._authorized(path, handler))
        return self

    def _authorized(self, path: str, handler: Callable[..., tuple[int, dict, str]]) -> Callback:
        pattern = _pattern(path)

        def answer(request: Request) -> tuple[int, dict, str]:
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                message = "Authentication credentials not found. This API supports OAuth 2.0 authentication."
                return 401, {}, json.dumps(error_body("INVALID_AUTHENTICATION", message))
            return handler(request, **pattern.match(request.path).groupdict())

        return answer

    def properties(self, request: Request, objectType: str) -> tuple[int, dict, str]:
        results = [
            {
                "name": name,
                "label": name.replace("_", " ").title(),
                "type": "datetime" if name in self.datetimes else "string",
                "fieldType": "date" if name in self.datetimes else "text",
                "groupName": f"{objectType.rstrip('s')}information",
                "hidden": False,
                "calculated": False,
                "hasUniqueValue": False,
                "createdAt": STAMP,
                "updatedAt": STAMP,
                "displayOrder": -1,
                "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
                "options": [],
            }
            for name in sorted(self.property_names(objectType))
        ]
        return 200, {}, json.dumps({"results": results})

    def _matches(self, object_type: str, record: dict[str, str | None], flt: dict) -> bool:
        name, operator = flt["propertyName"], flt["operator"]
        value = record.get(name)
        if operator == "HAS_PROPERTY":
            return value not in (None, "")
        if operator == "NOT_HAS_PROPERTY":
            return value in (None, "")
        if operator in ("IN", "NOT_IN"):
            found = str(value).lower() in {str(v).lower() for v in flt["values"]} if value is not None else False
            return found if operator == "IN" else not found
        have, want = _comparable(name, value, self.datetimes), _comparable(name, flt.get("value"), self.datetimes)
        if operator == "EQ":
            return have == want
        if operator == "NEQ":
            return have != want
        if have is None or want is None:
            return False
        return {"GT": have > want, "GTE": have >= want, "LT": have < want, "LTE": have <= want}[operator]

    def _candidates(self, object_type: str, groups: list[dict]) -> list[str]:
        """Ids worth testing: through an index when the one group's filter is an IN or EQ on a property."""
        records = self.records.get(object_type, {})
        if len(groups) == 1:
            for flt in groups[0].get("filters") or []:
                if flt["operator"] in ("IN", "EQ"):
                    index = self._index.get((object_type, flt["propertyName"]))
                    if index is None:
                        index = {}
                        for record_id, values in records.items():
                            held = values.get(flt["propertyName"])
                            if held is not None:
                                index.setdefault(str(held).lower(), []).append(record_id)
                        self._index[(object_type, flt["propertyName"])] = index
                    wanted = flt.get("values") or [flt.get("value")]
                    return list(dict.fromkeys(i for v in wanted for i in index.get(str(v).lower(), [])))
        return list(records)

    def search(self, request: Request, objectType: str) -> tuple[int, dict, str]:
        body = request.json()
        groups = body.get("filterGroups") or []
        records = self.records.get(objectType, {})
        hits = [
            record_id
            for record_id in self._candidates(objectType, groups)
            if not groups
            or any(all(self._matches(objectType, records[record_id], f) for f in g["filters"]) for g in groups)
        ]
        hits.sort(key=lambda record_id: int(record_id) if record_id.isdigit() else record_id)
        for sort in reversed(body.get("sorts") or []):
            name = sort["propertyName"] if isinstance(sort, dict) else sort.lstrip("-")
            descending = (sort.get("direction") == "DESCENDING") if isinstance(sort, dict) else sort.startswith("-")
            hits.sort(key=lambda i, n=name: _sort_key(n, records[i].get(n), self.datetimes), reverse=descending)
        offset, limit = int(body.get("after") or 0), int(body.get("limit") or 10)
        if offset + limit > SEARCH_CAP:
            message = f"The search API returns at most {SEARCH_CAP} results per query."
            return 400, {}, json.dumps(error_body("VALIDATION_ERROR", message))
        names = body.get("properties") or list(DEFAULT_PROPERTIES)
        page = {
            "total": len(hits),
            "results": [self._record(objectType, i, names) for i in hits[offset : offset + limit]],
        }
        if offset + limit < len(hits):
            after = str(offset + limit)
            link = f"/crm/v3/objects/{objectType}/search?after={after}"
            page["paging"] = {"next": {"after": after, "link": link}}
        return 200, {}, json.dumps(page)

    def _record(self, object_type: str, record_id: str, names: list[str]) -> dict:
        values = self.records[object_type][record_id]
        shown = dict.fromkeys([*DEFAULT_PROPERTIES, *names])
        return {
            "id": record_id,
            "properties": {name: values.get(name) for name in shown},
            "createdAt": values.get("createdate") or STAMP,
            "updatedAt": values.get("hs_lastmodifieddate") or STAMP,
            "archived": False,
        }

    def _batch(self, results: list[dict], missing: list[str], object_type: str) -> tuple[int, dict, str]:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": STAMP, "completedAt": STAMP}
        if not missing:
            return 200, {}, json.dumps(body)
        message = f"Could not get some {object_type.upper().rstrip('S')} objects, they may be deleted or not exist."
        error = {"status": "error", "category": "OBJECT_NOT_FOUND", "message": message, "context": {"ids": missing}}
        return 207, {}, json.dumps(body | {"numErrors": 1, "errors": [error]})

    def batch_read(self, request: Request, objectType: str) -> tuple[int, dict, str]:
        body = request.json()
        records = self.records.get(objectType, {})
        ids = [str(i["id"]) for i in body["inputs"]]
        results = [self._record(objectType, i, body.get("properties") or []) for i in ids if i in records]
        return self._batch(results, [i for i in ids if i not in records], objectType)

    def batch_update(self, request: Request, objectType: str) -> tuple[int, dict, str]:
        records = self.records.get(objectType, {})
        results, missing = [], []
        for item in request.json()["inputs"]:
            record_id = str(item["id"])
            if record_id not in records:
                missing.append(record_id)
                continue
            for name, value in item["properties"].items():
                records[record_id][name] = value or None
                self._index.pop((objectType, name), None)
            results.append(self._record(objectType, record_id, list(item["properties"])))
        return self._batch(results, missing, objectType)

    def association_read(self, request: Request, fromObjectType: str, toObjectType: str) -> tuple[int, dict, str]:
        links = self.associations.get((fromObjectType, toObjectType), {})
        primary_type = PRIMARY_COMPANY.get(fromObjectType, 1) if toObjectType == "companies" else 1
        results, none = [], []
        for item in request.json()["inputs"]:
            from_id = str(item["id"])
            if not links.get(from_id):
                none.append(from_id)
                continue
            to = [
                {
                    "toObjectId": int(to_id) if to_id.isdigit() else to_id,
                    "associationTypes": [
                        *(
                            [{"category": "HUBSPOT_DEFINED", "typeId": primary_type, "label": "Primary"}]
                            if primary
                            else []
                        ),
                        {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None},
                    ],
                }
                for to_id, primary in links[from_id]
            ]
            results.append({"from": {"id": from_id}, "to": to})
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": STAMP, "completedAt": STAMP}
        if not none:
            return 200, {}, json.dumps(body)
        errors = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {toObjectType} is associated with {fromObjectType} {from_id}.",
                "context": {"fromObjectId": [from_id]},
            }
            for from_id in none
        ]
        return 207, {}, json.dumps(body | {"numErrors": len(errors), "errors": errors})
