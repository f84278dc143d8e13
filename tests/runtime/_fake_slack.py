"""A local HTTP server standing in for Slack (Web API + incoming webhook) and for a generic JSON webhook.

The real slack-sdk clients talk to it over real HTTP on 127.0.0.1:

- ``POST /api/chat.postMessage``: checks ``Authorization: Bearer <token>`` (``invalid_auth`` otherwise),
  answers ``{"ok": false, "error": "channel_not_found"}`` for channels in ``missing_channels``, HTTP 429
  with ``Retry-After`` while ``rate_limited`` is positive, else ``{"ok": true, ...}``.
- ``POST /services/T000/B000/<secret>``: an incoming webhook; answers HTTP 429 while
  ``webhook_rate_limited`` is positive, then ``webhook_answer`` (``200 ok``).
- ``POST /hooks/generic``: a generic JSON webhook; answers ``generic_answers`` in turn, then 204.

Every request is recorded in ``requests`` (path, headers, parsed JSON body).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "xoxb-0000-test-token"
WEBHOOK_SECRET = "s3cr3tW3bh00kT0k3n"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeSlack:
    token: str = TOKEN
    missing_channels: set[str] = field(default_factory=set)
    rate_limited: int = 0
    retry_after: str = "1"
    webhook_answer: tuple[int, str] = (200, "ok")
    webhook_rate_limited: int = 0
    generic_answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                recorded = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with fake._lock:
                    fake.requests.append(recorded)
                status, headers, payload = fake._answer(recorded)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-slack", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def origin(self) -> str:
        assert self._server is not None, "FakeSlack.start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """For ``WebClient(base_url=...)``."""
        return f"{self.origin}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.origin}/services/T000/B000/{WEBHOOK_SECRET}"

    @property
    def generic_url(self) -> str:
        return f"{self.origin}/hooks/generic"

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    # ------------------------------------------------------------------ answers

    def _answer(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        if request.path == "/api/chat.postMessage":
            return self._post_message(request)
        if request.path.startswith("/services/"):
            with self._lock:
                if self.webhook_rate_limited > 0:
                    self.webhook_rate_limited -= 1
                    return (
                        429,
                        {"Content-Type": "text/html", "Retry-After": self.retry_after},
                        b"rate_limited",
                    )
            status, text = self.webhook_answer
            return status, {"Content-Type": "text/html"}, text.encode()
        if request.path == "/hooks/generic":
            with self._lock:
                status, headers = self.generic_answers.pop(0) if self.generic_answers else (204, {})
            return status, headers, b""
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def _post_message(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        def answer(status: int, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, str], bytes]:
            return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()

        with self._lock:
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return answer(429, {"ok": False, "error": "ratelimited"}, **{"Retry-After": self.retry_after})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return answer(200, {"ok": False, "error": "invalid_auth"})
        channel = request.json.get("channel")
        if channel in self.missing_channels:
            return answer(200, {"ok": False, "error": "channel_not_found"})
        return answer(
            200,
            {
                "ok": True,
                "channel": "C0FLOWKIT",
                "ts": "1795744841.000100",
                "message": {"text": request.json["text"]},
            },
        )
