"""`tc alerts receive`: the lab's Alertmanager webhook receiver on 127.0.0.1.

POST /alerts takes one webhook payload (version 4), validates it and appends it to
alerts/notifications.jsonl: 200 when kept; 400 (bad JSON or schema), 411 (no Content-Length) or
413 (too large) and nothing written otherwise; 503 when the history cannot be written (or disagrees with its
anchor). An error quotes at most httpserver.ECHO_CHARS characters of what it refuses. GET /healthz answers `ok`. Alertmanager retries a
delivery that did not get a 2xx, so a refused payload is reported to it, not lost silently.
"""

from __future__ import annotations

import ipaddress
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable

from opslab import httpserver
from opslab.alerts import notifications
from opslab.errors import InputError

PATH = "/alerts"
DEFAULT_PORT = 9095

Listener = Callable[[str, dict[str, Any] | None, str | None], None]  # (recorded | refused | failed, kept line, error)


class _Handler(BaseHTTPRequestHandler):
    root: Path
    listener: Listener | None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = (json.dumps(body, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _tell(self, outcome: str, line: dict[str, Any] | None, error: str | None) -> None:
        if self.listener:
            self.listener(outcome, line, error)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/healthz":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": f"not found: POST {PATH} or GET /healthz"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self._answer(404, {"error": f"not found: POST {PATH}"})
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._answer(411, {"error": "Content-Length required"})
            return
        length = int(length_text)
        if length > notifications.MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            error = f"body of {length} bytes exceeds {notifications.MAX_BODY_BYTES}"
            self._tell("refused", None, error)
            self._answer(413, {"error": error})
            return
        body = self.rfile.read(length)
        try:
            payload = notifications.parse_payload(body)
        except InputError as exc:  # its message may quote the payload: echoed bounded, in the answer and the log
            error = httpserver.bounded(str(exc))
            self._tell("refused", None, error)
            self._answer(400, {"error": error})
            return
        try:
            line = notifications.record(payload, self.root)
        except (OSError, InputError) as exc:  # disk full, root gone, a link: Alertmanager retries a 5xx
            error = f"cannot write {notifications.history_path(self.root)}: {getattr(exc, 'strerror', None) or exc}"
            self._tell("failed", None, error)
            self._answer(503, {"error": error})
            return
        self._tell("recorded", line, None)
        self._answer(200, {"status": "recorded", "seq": line["seq"]})


class Receiver:
    """Binds HOST:PORT (127.0.0.1 by default) and records notifications under ROOT until shutdown()."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, listener: Listener | None = None) -> None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InputError(f"--host: {host!r}: expected an IP address such as 127.0.0.1 (the default) or 0.0.0.0 inside a container") from None
        handler = type("Handler", (_Handler,), {"root": root, "listener": staticmethod(listener) if listener else None})
        self.server = httpserver.bind(host, port, handler, "set --port or TC_ALERTS_PORT")

    @property
    def url(self) -> str:
        return httpserver.url(self.server)
