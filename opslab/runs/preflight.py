"""Checks an engine command makes before it runs anything: the engine kind, the bars to use, stale data, and
for a node that its venue answers at all.

No NautilusTrader import here; the engine is imported by backtest.py / paper.py / node.py when they run it.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any

from opslab import urls
from opslab.datasets import store
from opslab.errors import EXIT_CODES, InputError
from opslab.result import Result
from opslab.runs import Run
from opslab.spec import RunSpec

STALE_RUNBOOK = "runbook: docs/runbooks/stale_data.md"
REACH_TIMEOUT_S = 2.0  # each step of venue_reachable: TCP connect, then the ping's answer
PING_PATH = "/api/v3/ping"  # Binance Spot's connectivity test: {} with 200 when the REST API is up


def check_kind(spec: RunSpec, kind: str) -> None:
    """InputError when the spec's engine.kind does not match the command."""
    if spec.data["engine"]["kind"] != kind:
        raise InputError(f"{spec.path}: /engine/kind: is {spec.data['engine']['kind']!r}, but `tc run {kind}` needs {kind!r}")


def bars_to_use(spec: RunSpec, manifest: dict[str, Any]) -> int:
    """Bars the engine processes: the dataset's, bounded by engine.max_bars."""
    return min(manifest["rows"], spec.data["engine"]["max_bars"])


def stale_block(run: Run) -> Result | None:
    """When the dataset is older than safety.max_data_age_seconds: record it, return the blocked result."""
    bound = run.spec.data["safety"].get("max_data_age_seconds")
    if bound is None:
        return None
    manifest = run.dataset
    age = store.last_bar_age_seconds(manifest)
    if age <= bound:
        return None
    message = (f"dataset {manifest['dataset_id']}: last bar closed {age} s ago ({manifest['last_bar_close']}), "
               f"older than safety.max_data_age_seconds={bound}; refusing to trade on stale data")
    if not run.has_event("data_stale_detected", age_seconds=age):
        run.event("data_stale_detected", {"age_seconds": age, "max_data_age_seconds": bound, "last_bar_close": manifest["last_bar_close"]})
    run.meta(status="blocked")
    return Result("failed", message, [str(run.folder)], {"run_id": run.run_id, "age_seconds": age, "max_data_age_seconds": bound},
                  exit_code=EXIT_CODES["check"], details=[STALE_RUNBOOK])


def _reach_failure(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out after {REACH_TIMEOUT_S:g} s"
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def venue_reachable(http_url: str, ws_url: str, where: dict[str, str]) -> None:
    """InputError (one line naming the URL and what failed) unless the venue answers: a GET of PING_PATH on the
    HTTP URL answered 2xx and a TCP connect to the WebSocket URL's port, each step bounded by REACH_TIMEOUT_S. WHERE names
    the source of each URL (the spec field or the --venue-url flag). Both URLs passed the loopback rules already;
    they are parsed again here, so nothing else is ever connected to."""
    target = urls.parse(http_url)
    conn = http.client.HTTPConnection(target.address, target.port, timeout=REACH_TIMEOUT_S)
    try:
        conn.request("GET", PING_PATH, headers={"Host": target.host, "Connection": "close"})
        answer = conn.getresponse()
        answer.read(1 << 16)
        status, reason = answer.status, answer.reason if answer.reason.isascii() and answer.reason.isprintable() else ""
    except OSError as exc:
        raise InputError(f"{where['http']}: {http_url}: venue unreachable: {_reach_failure(exc)} (GET {PING_PATH})") from None
    except http.client.HTTPException as exc:
        raise InputError(f"{where['http']}: {http_url}: venue unreachable: not an HTTP answer ({type(exc).__name__}) "
                         f"(GET {PING_PATH})") from None
    finally:
        conn.close()
    if not 200 <= status < 300:
        raise InputError(f"{where['http']}: {http_url}: venue unreachable: GET {PING_PATH} answered HTTP {status} {reason[:60]}".rstrip())
    target = urls.parse("http" + ws_url[len("ws"):])
    try:
        socket.create_connection((target.address, target.port), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise InputError(f"{where['ws']}: {ws_url}: venue unreachable: {_reach_failure(exc)} "
                         f"(TCP connect to {target.address}:{target.port})") from None
