"""The lab's own small HTTP servers (the metrics exporter, the venue's REST, the alerts receiver): one threaded server class.

A client that goes away mid-answer (a scrape timeout, a drill's dropped connection) is normal for
these servers and is not logged; any other error in a handler still prints its traceback.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

from opslab.errors import InputError


class LabHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer (daemon threads) that ignores clients hanging up."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset, ConnectionAborted
            return
        super().handle_error(request, client_address)


class _LabHTTPServer6(LabHTTPServer):
    address_family = socket.AF_INET6


def bind(host: str, port: int, handler: type[BaseHTTPRequestHandler], what: str) -> LabHTTPServer:
    """A server for HANDLER listening on HOST:PORT (IPv6 when HOST has a colon); InputError when
    the address cannot be bound, naming WHAT to change."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: out of range (0-65535)")
    cls = _LabHTTPServer6 if ":" in host else LabHTTPServer
    try:
        return cls((host, port), handler)
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen on {host} ({exc.strerror}); {what}") from None


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
    """Answer a request with BODY as compact JSON (the venue)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(payload)


def url(server: LabHTTPServer) -> str:
    """http://HOST:PORT of a bound server (brackets around IPv6)."""
    host, port = server.server_address[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


@contextlib.contextmanager
def signals_caught() -> Iterator[threading.Event]:
    """Inside: SIGINT or SIGTERM sets the yielded event instead of ending the process: the one way every lab
    server (the threaded HTTP servers here, the exporter, the venue) is told to stop. Enter it BEFORE a server
    says it listens, so a signal sent right after that line is caught. The previous handlers come back after."""
    got = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        got.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield got
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wait(got: threading.Event) -> None:
    """Block until GOT is set; a timed wait, so the main thread runs the signal handler between waits."""
    while not got.wait(0.5):
        pass


def serve_until_signal(server: LabHTTPServer, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM (signals_caught); ON_READY(url) runs once the socket listens."""
    thread = threading.Thread(target=server.serve_forever, name="http-server", daemon=True)
    with signals_caught() as got:
        thread.start()
        try:
            if on_ready:
                on_ready(url(server))
            wait(got)
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()
