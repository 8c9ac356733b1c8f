"""`tc metrics serve` and `tc metrics dump`: /metrics and /healthz over the artifact cache."""

from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from opslab import httpserver
from opslab.errors import InputError
from opslab.metrics.cache import ArtifactCollector
from opslab.metrics.exposition import CONTENT_TYPE
from opslab.result import Result


def dump(root: Path) -> Result:
    """`tc metrics dump`: one scrape of ROOT, through the same encoder as the server."""
    text = b"".join(ArtifactCollector(root).exposition()).decode()
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return Result("ok", f"{samples} sample(s)", data={"exposition": text}, body=text)


class _Handler(BaseHTTPRequestHandler):
    collector: ArtifactCollector
    lock: threading.Lock

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            with self.lock:  # one scrape at a time keeps the cache simple
                chunks, ctype, status = self.collector.exposition(), CONTENT_TYPE, 200
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
    """The exporter: binds HOST:PORT (127.0.0.1 by default); serve with httpserver.serve_until_signal."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 9108) -> None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise InputError(f"--host: {host!r}: expected an IP address such as 127.0.0.1 (the default) or 0.0.0.0 inside a container") from None
        self.exposed = not address.is_loopback
        self.collector = ArtifactCollector(root)
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"collector": self.collector, "lock": self.lock})
        self.server = httpserver.bind(host, port, handler, "set --port or TC_METRICS_PORT")

    def _warm(self) -> None:
        """Read every artifact once at start (scrapes wait on the lock meanwhile, /healthz does not)."""
        with self.lock:
            self.collector.rendered_artifacts()

    def start_warming(self) -> None:
        """Read the artifacts in the background, so the first scrape is warm."""
        threading.Thread(target=self._warm, name="warm-cache", daemon=True).start()

    @property
    def scrapes(self) -> int:
        return self.collector.scrapes

    @property
    def url(self) -> str:
        return httpserver.url(self.server)
