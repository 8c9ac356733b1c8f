"""`tc metrics serve` and `tc metrics dump`: /metrics and /healthz over the artifact cache.

The server is aiohttp (asyncio): HTTP/1.1 keep-alive, a real listen backlog, idle connections
closed after KEEPALIVE_S and costing no thread while they wait, gzip when the client asks for it,
and OpenMetrics or the classic text format by the Accept header. The scrape itself (reading what
changed, joining the cached families) runs in a bounded pool of WORKERS threads under one lock.
The start-up read runs in the background; until it is done /metrics answers at once with what it
has read so far and tc_exporter_warming 1 (never blocking past Prometheus's scrape timeout).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from opslab import httpserver
from opslab.errors import InputError
from opslab.metrics.cache import ArtifactCollector
from opslab.metrics.catalog import PER_RUN_DEFAULT
from opslab.metrics.exposition import CONTENT_TYPES, TEXT, negotiate
from opslab.result import Result

BACKLOG = 256
KEEPALIVE_S = 15.0
WORKERS = 2
PER_RUN_ENV = "TC_METRICS_PER_RUN"


def build_info() -> tuple[str, str, str]:
    """(opslab, nautilus_trader, python) versions for tc_build_info (no Nautilus import)."""
    from opslab.runs import versions

    found = versions()
    return found["opslab"], found["nautilus_trader"], found["python"]


def per_run_limit(text: str | None) -> int:
    """TC_METRICS_PER_RUN / --per-run: how many of the newest runs get per-run families."""
    value = text or str(PER_RUN_DEFAULT)
    if not value.isdigit() or not 0 <= int(value) <= 100_000:
        raise InputError(f"{PER_RUN_ENV}: expected an integer 0-100000, got {value!r}")
    return int(value)


def collector(root: Path, per_run: int = PER_RUN_DEFAULT) -> ArtifactCollector:
    """The cache over ROOT, as the exporter builds it."""
    return ArtifactCollector(root, per_run=per_run, build=build_info())


def dump(root: Path, dialect: str = TEXT, per_run: int = PER_RUN_DEFAULT) -> Result:
    """`tc metrics dump`: one scrape of ROOT, through the same encoder as the server."""
    text = b"".join(collector(root, per_run).exposition(dialect)).decode()
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return Result("ok", f"{samples} sample(s)", data={"exposition": text}, body=text)


class MetricsServer:
    """The exporter on HOST:PORT (127.0.0.1 by default)."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 9108, per_run: int = PER_RUN_DEFAULT) -> None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise InputError(f"--host: {host!r}: expected an IP address such as 127.0.0.1 (the default) or 0.0.0.0 inside a container") from None
        if not 0 <= port <= 65535:
            raise InputError(f"--port {port}: out of range (0-65535)")
        self.host, self.port = host, port
        self.exposed = not address.is_loopback
        self.collector = collector(root, per_run)
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="scrape")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def scrapes(self) -> int:
        return self.collector.scrapes

    def _scrape(self, dialect: str) -> bytes:
        self.collector.scrapes_waiting += 1
        with self.lock:
            self.collector.scrapes_waiting -= 1
            return b"".join(self.collector.exposition(dialect, refresh=not self.collector.warming))

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        dialect = negotiate(request.headers.get("Accept", ""))
        body = await asyncio.get_running_loop().run_in_executor(self.pool, self._scrape, dialect)
        response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPES[dialect]})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def _healthz(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text="ok\n")

    async def _run(self, on_ready: Callable[[str], None] | None, ready: threading.Event | None) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_S, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=BACKLOG, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise InputError(f"--port {self.port}: cannot listen on {self.host} ({exc.strerror}); set --port or TC_METRICS_PORT") from None
        host, port = site._server.sockets[0].getsockname()[:2]  # the bound port when 0 was asked for
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self.collector.warming = True  # before the thread starts: a scrape right now must not wait for the whole read
        threading.Thread(target=self.collector.warm, args=(self.lock,), name="warm-cache", daemon=True).start()
        if on_ready:
            on_ready(self.url)
        if ready:
            ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            self.pool.shutdown(wait=False)

    def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM (httpserver.signals_caught); ON_READY(url) once the socket listens."""
        with httpserver.signals_caught() as got:
            self.start()
            try:
                if on_ready:
                    on_ready(self.url)
                httpserver.wait(got)
            finally:
                self.stop()

    def start(self) -> "MetricsServer":
        """Serve in a background thread (tests, benchmarks); returns once it listens."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._run(None, ready))
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="metrics-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop a server started with start()."""
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)
