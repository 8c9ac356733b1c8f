"""The lab's own small HTTP servers (the metrics exporter, the venue's REST, the alerts receiver): one threaded server class.

A client that goes away mid-answer (a scrape timeout, a drill's dropped connection) or stalls past the
idle timeout is normal for these servers and is not logged; any other error in a handler still prints its
traceback. Every server bounds what a client can hold: a real listen backlog (BACKLOG), an idle/read timeout
per connection (IDLE_TIMEOUT_S: an idle keep-alive connection or a half-sent request is closed, its thread
ends) and at most MAX_CONNECTIONS connections at once (one more is answered 503 and closed at once).
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

BACKLOG = 128  # socketserver's default is 5: a burst of connects would be refused by the kernel
IDLE_TIMEOUT_S = 30.0  # a connection that sends nothing for this long (idle keep-alive, a stalled request) is closed
MAX_CONNECTIONS = 64  # connections served at once, one thread each; more are refused with 503
ECHO_CHARS = 200  # text from a client echoed back (an error message quoting it) is cut to this


def bounded(text: str, limit: int = ECHO_CHARS) -> str:
    """TEXT, or its first LIMIT characters and its length when longer: what an error answer or a log line may echo."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 29\r\nConnection: close\r\n\r\ntoo many connections, retry\r\n"


class LabHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer (daemon threads) that ignores clients hanging up or timing out, with a real backlog, an
    idle timeout and a bound on concurrent connections (set on the instance before it serves, e.g. in tests)."""

    request_queue_size = BACKLOG

    def __init__(self, address: Any, handler: type[BaseHTTPRequestHandler], idle_timeout_s: float = IDLE_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.settimeout(self.idle_timeout_s)  # every read and write of the handler: a stalled client ends its thread
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(0)
                request.send(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: give its slot back
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # BrokenPipe, ConnectionReset, ConnectionAborted; TimeoutError: the idle timeout mid-request
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _LabHTTPServer6(LabHTTPServer):
    address_family = socket.AF_INET6


def bind(host: str, port: int, handler: type[BaseHTTPRequestHandler], what: str, idle_timeout_s: float = IDLE_TIMEOUT_S,
         max_connections: int = MAX_CONNECTIONS) -> LabHTTPServer:
    """A server for HANDLER listening on HOST:PORT (IPv6 when HOST has a colon), its connections bounded (IDLE_TIMEOUT_S,
    MAX_CONNECTIONS, BACKLOG); InputError when the address cannot be bound, naming WHAT to change."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: out of range (0-65535)")
    cls = _LabHTTPServer6 if ":" in host else LabHTTPServer
    try:
        return cls((host, port), handler, idle_timeout_s, max_connections)
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
