"""The lab's fake venue: a real HTTP server on 127.0.0.1 that answers like a public exchange REST API.

Endpoints (Binance-shaped, BTCUSDT only): /api/v3/ping, /api/v3/time, /api/v3/exchangeInfo,
/api/v3/depth (order book snapshot with a lastUpdateId sequence), /api/v3/klines (recent bars from
the lab's deterministic generator). Content is deterministic: the book is derived from the sequence
number, the bars from seed 42.

Faults, switchable at start (`--fault`) and at runtime (GET/POST/DELETE /admin/faults, loopback):
  latency=MS          answer after MS milliseconds
  error_5xx           answer 503
  rate_limit=W[/S]    a request-weight budget of W per S seconds (default 60); beyond it 429 + Retry-After;
                      a client that sends again before that Retry-After passed commits a violation, and
                      at BAN_AFTER violations every request is answered 418 (IP banned) for
                      min(2 x S, BAN_MAX_S) seconds, then normal limiting resumes (as Binance does)
  drop[=K]            close connections without answering (all of them, or only the next K)
  frozen_time         server time stops advancing
  stale_book          depth lastUpdateId and timestamp stop advancing
  sequence_gap=N      depth lastUpdateId jumps by N+1 instead of 1 (N updates are never seen)
  silent_market       (Binance venue) market streams are not published; sockets stay open and pinged,
                      the user data stream and REST keep working, the replay keeps its schedule
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from opslab import clock, fs, httpserver
from opslab.datasets import store
from opslab.errors import InputError

ALLOWED_HOSTS = ("127.0.0.1", "::1")
WEIGHTS = {"/api/v3/ping": 1, "/api/v3/time": 1, "/api/v3/exchangeInfo": 10, "/api/v3/depth": 5, "/api/v3/klines": 2}
MAX_ADMIN_BODY = 1 << 16  # a fault list is a few bytes
FAULT_NAMES = ("latency", "error_5xx", "rate_limit", "drop", "frozen_time", "stale_book", "sequence_gap", "silent_market")
BAN_AFTER = 3  # violations (requests before a 429's Retry-After passed) that earn a 418 ban
BAN_MAX_S = 300
KLINE_PARAMS = store.DatasetParams(42, "2024-01-01T00:00:00Z", 1440, "42000.00")


def parse_faults(specs: list[str]) -> dict[str, Any]:
    """`--fault` strings -> the fault mapping; InputError on anything unknown or malformed."""
    faults: dict[str, Any] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in FAULT_NAMES:
            raise InputError(f"--fault {spec!r}: unknown fault; known: {', '.join(FAULT_NAMES)}")
        faults.update(_fault_value(name, value, f"--fault {spec!r}"))
    return faults


def _fault_value(name: str, value: str, where: str) -> dict[str, Any]:
    try:
        if name == "latency":
            ms = int(value.removesuffix("ms"))
            if not 0 <= ms <= 60_000:
                raise ValueError
            return {"latency_ms": ms}
        if name == "rate_limit":
            weight, _, window = value.partition("/")
            w, s = int(weight), int(window or 60)
            if w < 1 or not 1 <= s <= 3600:
                raise ValueError
            return {"rate_limit": {"weight": w, "window_s": s}}
        if name == "drop" and value:
            k = int(value)
            if k < 1:
                raise ValueError
            return {"drop": k}
        if name == "sequence_gap":
            n = int(value or 10)
            if n < 1:
                raise ValueError
            return {"sequence_gap": n}
        if value:
            raise ValueError
        return {name: True}
    except ValueError:
        raise InputError(f"{where}: bad value for {name} (latency=MS, rate_limit=WEIGHT[/SECONDS], sequence_gap=N, drop=K; others take no value)") from None


def faults_from_json(doc: Any) -> dict[str, Any]:
    """Admin endpoint body {"faults": ["drop", "latency=200"]} -> fault mapping."""
    if not isinstance(doc, dict) or not isinstance(doc.get("faults"), list) or not all(isinstance(f, str) for f in doc["faults"]):
        raise InputError('expected {"faults": ["name[=value]", ...]}')
    return parse_faults(doc["faults"])


@dataclass
class VenueState:
    """Everything the handlers share, behind one lock."""

    faults: dict[str, Any] = field(default_factory=dict)
    sequence: int = 1000
    frozen_ms: int | None = None
    book_ms: int | None = None
    window_start: float = 0.0
    used_weight: int = 0
    retry_until: float = 0.0  # monotonic end of the last 429's Retry-After
    violations: int = 0
    banned_until: float = 0.0  # monotonic; 0 when not banned
    stats: dict[str, int] = field(default_factory=lambda: {"requests": 0, "served": 0, "throttled": 0, "dropped": 0, "errors": 0, "banned": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeVenue:
    """Start/stop the fake venue in-process on a free loopback port (port=0) or a given one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, faults: dict[str, Any] | None = None) -> None:
        if host not in ALLOWED_HOSTS:
            raise InputError(f"--host: {host!r}: the fake venue binds loopback only (127.0.0.1 or ::1)")
        self.state = VenueState()
        _apply(self.state, dict(faults or {}))
        handler = type("Handler", (_Handler,), {"venue": self.state})
        self.server = httpserver.bind(host, port, handler, "choose another --port, or 0 for a free one")
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return httpserver.url(self.server)

    def set_faults(self, faults: dict[str, Any]) -> None:
        """Replace the active faults."""
        with self.state.lock:
            _apply(self.state, faults)

    def start(self) -> "FakeVenue":
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-venue", daemon=True)
        self.thread.start()
        return self

    def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in this thread until shutdown() (the CLI's SIGINT/SIGTERM)."""
        if on_ready:
            on_ready(self.url)
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread:
            self.thread.join(timeout=5)

    def __enter__(self) -> "FakeVenue":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _apply(state: VenueState, faults: dict[str, Any]) -> None:
    now_ms = int(time.time() * 1000)
    state.faults = dict(faults)
    state.frozen_ms = now_ms if faults.get("frozen_time") else None
    state.book_ms = now_ms if faults.get("stale_book") else None
    state.window_start, state.used_weight = time.monotonic(), 0
    state.retry_until, state.violations, state.banned_until = 0.0, 0, 0.0


def active_faults(faults: dict[str, Any]) -> list[str]:
    """The names (as in FAULT_NAMES) of the faults in effect, sorted."""
    return sorted({"latency" if key == "latency_ms" else key for key, value in faults.items() if value})


def ban_seconds(window_s: int) -> int:
    """How long a ban lasts under a rate_limit window of WINDOW_S seconds."""
    return min(2 * window_s, BAN_MAX_S)


class _Handler(BaseHTTPRequestHandler):
    venue: VenueState
    server_version = "opslab-fake-venue/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the CLI prints one line when listening

    # --- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        httpserver.send_json(self, status, body, headers)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/admin/faults":
            with self.venue.lock:
                return self._send(200, {"faults": self.venue.faults, "stats": dict(self.venue.stats), "sequence": self.venue.sequence})
        self._public(path)

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/admin/faults":
            return self._send(404, {"code": -1, "msg": "not found"})
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit() or int(text) > MAX_ADMIN_BODY:  # the body is not read: bounded before parsing
            self.close_connection = True
            return self._send(413, {"code": -1, "msg": f"body of {text} bytes; at most {MAX_ADMIN_BODY}"})
        try:
            faults = faults_from_json(fs.parse_json(self.rfile.read(int(text)) or b"null", "body"))
        except (ValueError, InputError) as exc:
            return self._send(400, {"code": -1, "msg": str(exc)})
        with self.venue.lock:
            _apply(self.venue, faults)
            current = dict(self.venue.faults)
        self._send(200, {"faults": current})

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path != "/admin/faults":
            return self._send(404, {"code": -1, "msg": "not found"})
        with self.venue.lock:
            _apply(self.venue, {})
        self._send(200, {"faults": {}})

    # --- the public API ----------------------------------------------------------------------
    def _public(self, path: str) -> None:
        v = self.venue
        if path not in WEIGHTS:
            with v.lock:
                v.stats["requests"] += 1
            return self._send(404, {"code": -1100, "msg": f"unknown endpoint {path}"})
        verdict = admit(v, WEIGHTS[path])
        if verdict.action == "drop":
            self.close_connection = True
            return  # no status line: the client sees the connection close
        if verdict.status != 200:
            return self._send(verdict.status, verdict.body, verdict.headers)
        with v.lock:
            body = self._answer(path, verdict.faults)
        self._send(200, body, verdict.headers)

    def _answer(self, path: str, faults: dict[str, Any]) -> Any:
        v = self.venue
        now_ms = v.frozen_ms if v.frozen_ms is not None else int(time.time() * 1000)
        if path == "/api/v3/ping":
            return {}
        if path == "/api/v3/time":
            return {"serverTime": now_ms}
        if path == "/api/v3/exchangeInfo":
            limit = faults.get("rate_limit") or {"weight": 6000, "window_s": 60}
            return {"timezone": "UTC", "serverTime": now_ms,
                    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": limit["window_s"], "limit": limit["weight"]}],
                    "symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
                                 "baseAssetPrecision": 8, "quotePrecision": 8,
                                 "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}, {"filterType": "LOT_SIZE", "stepSize": "0.000001"}]}]}
        if path == "/api/v3/depth":
            if v.book_ms is None:
                v.sequence += 1 + int(faults.get("sequence_gap", 0))
                book_ms = now_ms
            else:
                book_ms = v.book_ms
            return _book(v.sequence, book_ms, self._query_int("limit", 5, 1, 100))
        return _klines(self._query_int("limit", 5, 1, 1000))

    def _query_int(self, name: str, default: int, low: int, high: int) -> int:
        values = parse_qs(urlsplit(self.path).query).get(name)
        try:
            return min(high, max(low, int(values[0]))) if values else default
        except ValueError:
            return default


@dataclass
class Verdict:
    """What the fault switch says about one request: serve (status 200), answer an error, or drop."""

    action: str  # serve | error | drop
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)


def admit(v: VenueState, weight: int) -> Verdict:
    """Apply the active faults to one request of WEIGHT (counts it in v.stats); sleeps for latency.

    Shared by the fake venue's REST handler and the Binance venue's REST and WebSocket surfaces.
    """
    with v.lock:
        v.stats["requests"] += 1
        faults = dict(v.faults)
        if faults.get("drop"):
            v.stats["dropped"] += 1
            if faults["drop"] is not True:  # drop=K: only the next K requests
                v.faults["drop"] = faults["drop"] - 1 or False
            return Verdict("drop", faults=faults)
    if faults.get("latency_ms"):
        time.sleep(faults["latency_ms"] / 1000.0)
    with v.lock:
        limit = faults.get("rate_limit")
        headers: dict[str, str] = {}
        if limit:
            verdict = _limit(v, limit, weight, faults)
            if verdict.status != 200:
                return verdict
            headers = verdict.headers
        if faults.get("error_5xx"):
            v.stats["errors"] += 1
            return Verdict("error", 503, {"code": -1001, "msg": "Internal error; please try again."}, faults=faults)
        v.stats["served"] += 1
        return Verdict("serve", 200, None, headers, faults)


def _limit(v: VenueState, limit: dict[str, int], weight: int, faults: dict[str, Any]) -> Verdict:
    """The rate_limit fault for one request, under v.lock: serve (200, with the used weight), 429, or 418 while banned."""
    now = time.monotonic()
    if v.banned_until and now >= v.banned_until:  # the ban is over: a fresh window, a clean record
        v.banned_until, v.violations, v.retry_until = 0.0, 0, 0.0
        v.window_start, v.used_weight = now, 0
    if not v.banned_until:
        if now - v.window_start >= limit["window_s"]:
            v.window_start, v.used_weight = now, 0
        if v.used_weight + weight <= limit["weight"]:
            v.used_weight += weight
            return Verdict("serve", 200, None, {"X-MBX-USED-WEIGHT-1M": str(v.used_weight)}, faults)
        if now < v.retry_until:
            v.violations += 1
        if v.violations < BAN_AFTER:
            v.stats["throttled"] += 1
            retry = max(1, math.ceil(limit["window_s"] - (now - v.window_start)))
            v.retry_until = now + retry
            return Verdict("error", 429, {"code": -1003, "msg": "Too many requests; honour Retry-After."},
                           {"Retry-After": str(retry), "X-MBX-USED-WEIGHT-1M": str(v.used_weight)}, faults)
        v.banned_until = now + ban_seconds(limit["window_s"])
    v.stats["banned"] += 1
    remaining = v.banned_until - now
    until_ms = int((time.time() + remaining) * 1000)
    return Verdict("error", 418, {"code": -1003, "msg": f"Way too many requests; IP banned until {until_ms}."},
                   {"Retry-After": str(max(1, math.ceil(remaining)))}, faults)


def _book(sequence: int, ts_ms: int, depth: int) -> dict[str, Any]:
    mid = 4_200_000 + (sequence * 37) % 20_000  # cents, deterministic in the sequence
    bids = [[f"{(mid - 1 - i) / 100:.2f}", f"{0.5 + i * 0.25:.6f}"] for i in range(depth)]
    asks = [[f"{(mid + 1 + i) / 100:.2f}", f"{0.5 + i * 0.25:.6f}"] for i in range(depth)]
    return {"lastUpdateId": sequence, "E": ts_ms, "bids": bids, "asks": asks}


def _klines(limit: int) -> list[list[Any]]:
    rows = [line.decode().strip().split(",") for line in store.generate_rows(KLINE_PARAMS)][1:]
    out = []
    for ts, o, h, low, c, vol in rows[-limit:]:
        close_ms = int(clock.epoch_seconds(ts)) * 1000
        out.append([close_ms - 60_000, o, h, low, c, vol, close_ms - 1, "0", 0, "0", "0", "0"])
    return out
