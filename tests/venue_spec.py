"""The node spec and the credentials the venue's integration tests start a venue with, the waits of the tests that
start a node process, and stand-ins for a venue that is not there (one copy for all of them)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from opslab import spec
from opslab.datasets import store

KEY, SECRET = "test-key-0123", "test-secret-4567"
SPEC_TEXT = """schema_version: 1
run_id: {run_id}
scenario: {{name: ops_smoke_demo, version: "1.0.0"}}
strategy: {{name: smoke, version: "1"}}
instrument: BTCUSDT
venue: BINANCE
dataset: {{kind: synthetic, seed: 7, start: "2024-01-01T00:00:00Z", bars: {bars}}}
engine: {{kind: node, node: {{venue_http_url: "http://127.0.0.1:18080", venue_ws_url: "ws://127.0.0.1:18081"}}}}
connectivity_readiness:
  venue: BINANCE
  placeholders:
    - {{role: api_key, env: TC_TEST_BINANCE_KEY}}
    - {{role: api_secret, env: TC_TEST_BINANCE_SECRET}}
"""


def spec_text(run_id: str = "venue-test", bars: int = 400) -> str:
    return SPEC_TEXT.format(run_id=run_id, bars=bars)


def load_node_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_id: str = "venue-test", bars: int = 400,
                   text: str | None = None) -> spec.RunSpec:
    """The spec written under TMP_PATH (TEXT, or spec_text(RUN_ID, BARS)), its credentials and artifacts root in the
    environment, its dataset prepared."""
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("TC_TEST_BINANCE_KEY", KEY)
    monkeypatch.setenv("TC_TEST_BINANCE_SECRET", SECRET)
    path = tmp_path / "node.yaml"
    path.write_text(text if text is not None else spec_text(run_id, bars))
    loaded = spec.load(path)
    store.prepare(store.DatasetParams.from_spec(loaded.data))
    return loaded


def node_spec_fixture(run_id: str, bars: int = 400) -> Any:
    """A module's `node_spec` fixture (`node_spec = node_spec_fixture("my-test")`): load_node_spec for RUN_ID, BARS."""
    @pytest.fixture(name="node_spec")
    def fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> spec.RunSpec:
        return load_node_spec(tmp_path, monkeypatch, run_id=run_id, bars=bars)

    return fixture


def read_json(path: Path) -> Any:
    """PATH's JSON, or None while it is absent or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def wait_for_node(predicate: Callable[[], Any], proc: subprocess.Popen, timeout: float, what: str, every: float = 0.05) -> Any:
    """PREDICATE's first truthy value; fails naming WHAT when the node process PROC exits first or TIMEOUT passes
    (a liveness bound, not a speed assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"node exited ({proc.returncode}) while waiting for {what}: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else can take it meanwhile) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextlib.contextmanager
def silent_port() -> Iterator[socket.socket]:
    """A loopback port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


@contextlib.contextmanager
def http_venue(ping_status: int) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 that answers GET /api/v3/ping with PING_STATUS (and 404 elsewhere)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = ping_status if self.path == "/api/v3/ping" else 404
            body = b"{}" if status == 200 else b'{"code": -1, "msg": "no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
