"""A local Slack-compatible webhook: records every POST, answers with a chosen status or delay.

slack_sdk posts with urllib, which the `responses` library does not intercept, so the
alert tests talk HTTP to this server on 127.0.0.1 instead.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxsecrettoken"


@dataclass
class FakeWebhook:
    status: int = 200
    delay_seconds: float = 0.0
    requests: list[dict] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{SECRET_PATH}"

    @property
    def texts(self) -> list[str]:
        return [r["body"]["text"] for r in self.requests]

    def connection_json(self) -> str:
        """The value of AIRFLOW_CONN_<ID> for this webhook (full URL in the password)."""
        return json.dumps({"conn_type": "slackwebhook", "password": self.url})


def start() -> FakeWebhook:
    hook = FakeWebhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            hook.requests.append(
                {"path": self.path, "headers": dict(self.headers.items()), "body": json.loads(body or "null")}
            )
            if hook.delay_seconds:
                time.sleep(hook.delay_seconds)
            payload = b"ok" if hook.status == 200 else b"internal_error"
            self.send_response(hook.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # keep the URL out of the test output too
            pass

    hook.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.server.daemon_threads = True
    threading.Thread(target=hook.server.serve_forever, daemon=True).start()
    return hook
