"""`tc metrics serve`: /metrics (the artifact collector) and /healthz on a small HTTP server."""

from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from opslab import httpserver
from opslab.errors import InputError
from opslab.metrics.collector import ArtifactCollector


def render(root: Path) -> bytes:
    """One scrape of ROOT in the Prometheus text format (`tc metrics dump`), through
    prometheus_client's own registry (only the artifact collector: no process/platform noise)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ArtifactCollector(root))
    return generate_latest(registry)


class _Handler(BaseHTTPRequestHandler):
    collector: ArtifactCollector
    lock: threading.Lock

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            with self.lock:  # one scrape at a time keeps the cache simple
                chunks, ctype, status = self.collector.exposition(), CONTENT_TYPE_LATEST, 200
        elif path == "/healthz":
            chunks, ctype, status = [b"ok\n"], "text/plain; charset=utf-8", 200
        else:
            chunks, ctype, status = [b"not found: try /metrics or /healthz\n"], "text/plain; charset=utf-8", 404
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(sum(len(chunk) for chunk in chunks)))
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)


class MetricsServer:
    """The exporter: binds HOST:PORT (127.0.0.1 by default) and serves until shutdown()."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 9108) -> None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InputError(f"--host: {host!r}: expected an IP address such as 127.0.0.1 (the default) or 0.0.0.0 inside a container") from None
        self.collector = ArtifactCollector(root)
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"collector": self.collector, "lock": self.lock})
        self.server = httpserver.bind(host, port, handler, "set --port or TC_METRICS_PORT")

    def _warm(self) -> None:
        """Read every artifact once at start (scrapes wait on the lock meanwhile, /healthz does not)."""
        with self.lock:
            self.collector.rendered_artifacts()

    @property
    def url(self) -> str:
        return httpserver.url(self.server)

    def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        threading.Thread(target=self._warm, name="warm-cache", daemon=True).start()
        if on_ready:
            on_ready(self.url)
        self.server.serve_forever()
        self.server.server_close()
