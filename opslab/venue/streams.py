"""The venue's WebSocket surface, on the `websockets` library (threading server).

Binance's combined-stream protocol: connect to /stream?streams=a/b/c, then
{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": N}; every
pushed message is {"stream": NAME, "data": {...}}. Market streams: btcusdt@trade, @kline_1m,
@bookTicker, @depth and @depth@100ms (diffs with update ids). A listen key (from POST
/api/v3/userDataStream; profile 2025 only, profiles.py) is the user data stream. Unknown streams are
refused. The path /ws-api/v3 is Binance's WebSocket API, served by wsapi.py. The fault switch
applies: drop closes every socket and refuses new ones, error_5xx refuses the handshake with 503,
latency delays every push, stale_book/sequence_gap act on the book (exchange.py), silent_market
withholds every market stream message (the replay, pings, the user data stream and REST go on), and
the rate_limit ban answers handshakes 418 like REST.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response
from websockets.sync.server import ServerConnection, serve

from opslab.venue import faults as fault_switch
from opslab.venue import profiles, wsapi
from opslab.venue.exchange import SYMBOL, USER_STREAM, Exchange
from opslab.venue.stats import VenueStats

MARKET_STREAMS = {f"{SYMBOL.lower()}@{s}" for s in ("trade", "kline_1m", "bookTicker", "depth", "depth@100ms")}
MAX_MESSAGE = 4096  # client frames are subscription requests: small
MAX_STREAMS = 32
PING_INTERVAL_S = 20.0


class Hub:
    """Subscribers per connection; publish() pushes one message to every subscriber of a stream.

    Given the venue's parts, not the venue (server.py builds the hub; it does not import server.py)."""

    def __init__(self, host: str, switch: fault_switch.VenueState, exchange: Exchange, counters: VenueStats, port: int = 0,
                 ping_interval_s: float = PING_INTERVAL_S, profile: profiles.Profile | None = None,
                 credentials: Callable[[], tuple[str | None, str | None]] = lambda: (None, None)) -> None:
        self.switch, self.exchange, self.counters = switch, exchange, counters
        self.profile = profile or profiles.get(profiles.DEFAULT)
        self.wsapi = wsapi.WsApi(credentials, self._server_time_ms, wsapi.DAY_S / exchange.speed)
        self.lock = threading.Lock()
        self.subs: dict[ServerConnection, set[str]] = {}
        self._closing: set[ServerConnection] = set()
        self.sent = 0
        self.ping_interval_s = ping_interval_s
        # The library's own keepalive pings carry 4 random bytes; NautilusTrader 1.221's Binance client
        # echoes a ping payload as text and fails on non-UTF-8 bytes, so the venue pings itself, as
        # Binance does, with a text payload (the server time).
        self.server = serve(self._handle, host, port, process_request=self._admit, max_size=MAX_MESSAGE,
                            ping_interval=None, compression=None)
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pinger = threading.Thread(target=self._ping_all, name="venue-ws-ping", daemon=True)
        self.port: int = self.server.socket.getsockname()[1]

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, name="venue-ws", daemon=True)
        self.thread.start()
        self._pinger.start()

    def _ping_all(self) -> None:
        waiting: list[threading.Event] = []  # last round's pings: a set event is a pong received
        while not self._stop.wait(self.ping_interval_s):
            self.counters.add("ws_pongs_received", sum(1 for pong in waiting if pong.is_set()))
            with self.lock:
                conns = list(self.subs)
            waiting = []
            for conn in conns:
                try:
                    waiting.append(conn.ping(str(int(time.time() * 1000))))
                except (ConnectionClosed, RuntimeError):
                    continue
                self.counters.add("ws_pings_sent")

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        if self.thread:
            self.thread.join(timeout=5)

    def _server_time_ms(self) -> int:
        frozen = self.switch.frozen_ms
        return frozen if frozen is not None else int(time.time() * 1000)

    def valid(self, stream: str) -> bool:
        return stream in MARKET_STREAMS or (self.profile.listen_key and self.exchange.has_listen_key(stream))

    def _admit(self, conn: ServerConnection, request: Any) -> Response | None:
        refused = self._refusal(request)
        self.counters.add("ws_connections_refused" if refused else "ws_connections_opened")
        return refused

    def _refusal(self, request: Any) -> Response | None:
        verdict = fault_switch.admit(self.switch, 1)
        if verdict.action == "drop" or verdict.status != 200:
            status = 503 if verdict.action == "drop" else verdict.status
            return _reply(status, verdict.body or {"code": -1001, "msg": "Internal error; please try again."}, verdict.headers)
        split = urlsplit(request.path)
        if split.path == wsapi.PATH:
            return _reply(429, {"code": -1003, "msg": f"Too many connections; at most {wsapi.MAX_SESSIONS}."}) if self.wsapi.full() else None
        streams = [s for s in parse_qs(split.query).get("streams", [""])[0].split("/") if s] if split.path == "/stream" else []
        if split.path.startswith("/ws/"):
            streams = [split.path[len("/ws/"):]]
        if not streams or len(streams) > MAX_STREAMS:
            return _reply(400, {"code": -1100, "msg": "expected /stream?streams=NAME[/NAME...] or /ws/NAME"})
        bad = [s for s in streams if not self.valid(s)]
        if bad:
            return _reply(400, {"code": -1121, "msg": f"Invalid stream: {bad[0][:64]}"})
        return None

    def _handle(self, conn: ServerConnection) -> None:
        split = urlsplit(conn.request.path)
        if split.path == wsapi.PATH:  # a WebSocket API session: pinged and closed by faults like every connection
            self._subscribe(conn, [])
            try:
                return self.wsapi.serve(conn)
            finally:
                with self.lock:
                    self.subs.pop(conn, None)
        streams = parse_qs(split.query).get("streams", [""])[0].split("/") if split.path == "/stream" else [split.path[len("/ws/"):]]
        self._subscribe(conn, [s for s in streams if s])
        try:
            for raw in conn:
                self._command(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                self.subs.pop(conn, None)

    def _subscribe(self, conn: ServerConnection, streams: list[str]) -> None:
        with self.lock:
            self.subs.setdefault(conn, set()).update(streams)
        if any(s in MARKET_STREAMS for s in streams):
            self.exchange.start_replay()

    def _command(self, conn: ServerConnection, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
            method, params, ident = msg["method"], msg.get("params", []), msg.get("id")
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return self._send(conn, {"error": {"code": 3, "msg": "Invalid JSON: expected {method, params, id}"}})
        if method == "SUBSCRIBE":
            bad = [p for p in params if not self.valid(p)]
            if bad or len(self.subs.get(conn, ())) + len(params) > MAX_STREAMS:
                return self._send(conn, {"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0][:64] if bad else ''}"}, "id": ident})
            self._subscribe(conn, params)
            self.counters.subscribed()
            return self._send(conn, {"result": None, "id": ident})
        if method == "UNSUBSCRIBE":
            with self.lock:
                self.subs.get(conn, set()).difference_update(params)
            return self._send(conn, {"result": None, "id": ident})
        if method == "LIST_SUBSCRIPTIONS":
            with self.lock:
                return self._send(conn, {"result": sorted(self.subs.get(conn, ())), "id": ident})
        self._send(conn, {"error": {"code": 1, "msg": f"Invalid method {str(method)[:32]}"}, "id": ident})

    def _send(self, conn: ServerConnection, body: dict[str, Any]) -> None:
        try:
            conn.send(json.dumps(body, separators=(",", ":")))
        except ConnectionClosed:
            pass

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        """Push {"stream", "data"} to every connection subscribed to STREAM (called in the exchange's order)."""
        faults = self.switch.faults
        if faults.get("drop") or faults.get("error_5xx"):
            self.close_all()
            return
        if stream != USER_STREAM:
            if faults.get("silent_market"):
                self.counters.add("market_suppressed")
                return
            self.counters.add("market_published")
        if faults.get("latency_ms"):
            time.sleep(faults["latency_ms"] / 1000.0)
        with self.lock:
            if stream == USER_STREAM:  # user data: to each connection on a listen key, named by its key
                targets = [(c, key) for c, subs in self.subs.items() for key in subs if key not in MARKET_STREAMS]
            else:
                targets = [(c, stream) for c, subs in self.subs.items() if stream in subs]
        for conn, name in targets:
            try:
                conn.send(json.dumps({"stream": name, "data": data}, separators=(",", ":")))
                self.sent += 1
            except ConnectionClosed:
                pass
        if stream == USER_STREAM:
            self.sent += self.wsapi.push(data)

    def close_all(self) -> None:
        """Close every connection (a fault). Returns at once: a close waits for each client's closing
        handshake, and neither the admin answer nor the replay thread may wait for that."""
        with self.lock:
            conns = [c for c in self.subs if c not in self._closing]
            self._closing.update(conns)
        for conn in conns:  # one thread each: all of them stop carrying data now, whoever answers late
            threading.Thread(target=self._close, args=(conn,), name="venue-ws-close", daemon=True).start()
        self.counters.add("ws_closed_by_fault", len(conns))

    def _close(self, conn: ServerConnection) -> None:
        conn.close(1011, "venue fault")
        with self.lock:
            self._closing.discard(conn)


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(body).encode()
    reasons = {400: "Bad Request", 418: "I'm a teapot", 429: "Too Many Requests", 503: "Service Unavailable"}
    extra = [(k, v) for k, v in (headers or {}).items() if k == "Retry-After"]
    return Response(status, reasons.get(status, "Error"),
                    Headers([("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *extra]), payload)
