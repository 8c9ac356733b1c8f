"""The venue's WebSocket surface, on the `websockets` library (threading server).

Binance's market-stream protocol (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams):
raw streams at /ws/<stream> (several: /ws/a/b), or /ws alone, push each event as it is; combined
streams at /stream?streams=a/b/c (or /stream alone) wrap it as {"stream": NAME, "data": {...}}. On
either, {"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS" | "SET_PROPERTY" |
"GET_PROPERTY", "params": [...], "id": N} with Binance's replies and error codes (0-3). Market
streams: btcusdt@trade, @kline_1m, @bookTicker, @depth and @depth@100ms (diffs with update ids). A
listen key (from POST /api/v3/userDataStream; profile 2025 only, profiles.py) is the user data stream,
on either path. The path /ws-api/v3 is Binance's WebSocket API, served by wsapi.py through the same
bounded send queues. Unknown
streams are refused: 400 at a /stream handshake, error code 2 on SUBSCRIBE; a name under /ws/ that
is no stream subscribes nothing (the socket is open for SUBSCRIBE, as clients that connect to
/ws/<anything> expect).

Every connection has a bounded send queue drained by its own sender thread: publishing (called by
the replay under the exchange's lock) only enqueues, never waits for a socket, and a connection
whose queue is full (a consumer that stopped reading) is disconnected at once (its TCP socket shut
down) and counted (`slow_disconnected`). Bounded too: connections (MAX_CONNECTIONS), client frames
(MAX_MESSAGE), streams per connection (MAX_STREAMS), an idle opening handshake (OPEN_TIMEOUT_S).

The fault switch applies: drop closes every socket and refuses new ones, error_5xx refuses the
handshake with 503, latency delays every push (in the sender, not the publisher), stale_book and
sequence_gap act on the book (exchange.py), silent_market withholds every market stream message
(the replay, pings, the user data stream and REST go on), the rate_limit ban answers handshakes
418 like REST, and half_open leaves every connection open when it is switched on half-open: nothing is
sent on it again (events, replies, the venue's pings, a close) and nothing it sends is answered (its
frames are ignored, its pings get no pong), but it is never closed; new connections are served as ever.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.sync.server import ServerConnection, serve

from opslab import market
from opslab.venue import faults as fault_switch
from opslab.venue import profiles, wsapi
from opslab.venue.exchange import SYMBOL, USER_STREAM, Exchange
from opslab.venue.stats import VenueStats


def market_streams(symbol: str = SYMBOL, interval: str = market.INTERVAL) -> frozenset[str]:
    """The Spot market streams of a replay of SYMBOL's bars of INTERVAL (btcusdt@trade, btcusdt@kline_1m, ...)."""
    return frozenset(f"{symbol.lower()}@{s}" for s in ("trade", f"kline_{interval}", "bookTicker", "depth", "depth@100ms"))


MARKET_STREAMS = market_streams()  # the lab's own replay (BTCUSDT, 1m)
MAX_MESSAGE = 4096  # client frames are subscription requests: small
MAX_STREAMS = 32
MAX_CONNECTIONS = 128
SEND_QUEUE = 1024  # messages waiting for one connection; a full queue is a consumer that fell behind
OPEN_TIMEOUT_S = 5.0  # an opening handshake idle longer than this is dropped
CLOSE_TIMEOUT_S = 2.0  # a closing handshake not answered within this: the socket is shut down
PING_INTERVAL_S = 20.0
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
# "Alphanumeric string; max length 36" in the doc's words, yet its own examples are UUIDs with hyphens
# (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/user-data-stream-requests: id
# 7d3b9b46-5f4f-4c8b-9a2d-0a8f9a4a0f5b) and Binance's SDK (binance-sdk-spot) subscribes with uuid4 ids: accepted.
_ID = re.compile(r"[A-Za-z0-9-]{1,36}")


def parse_path(path: str) -> tuple[bool, list[str]] | None:
    """(combined, streams named in PATH), or None for a path that is no stream endpoint."""
    split = urlsplit(path)
    if split.path in ("/stream", "/stream/"):
        return True, [s for s in parse_qs(split.query).get("streams", [""])[0].split("/") if s]
    if split.path in ("/ws", "/ws/"):
        return False, []
    if split.path.startswith("/ws/"):
        return False, [s for s in split.path[len("/ws/"):].split("/") if s]
    return None


def _valid_id(ident: Any) -> bool:
    """Binance's accepted request ids: a 64-bit signed integer, an alphanumeric string (hyphens allowed: UUIDs) of at most 36, or null."""
    if ident is None:
        return True
    if isinstance(ident, bool):
        return False
    if isinstance(ident, int):
        return -(2**63) <= ident < 2**63
    return isinstance(ident, str) and bool(_ID.fullmatch(ident))


class Client:
    """One connection: its subscriptions, whether it is combined, and its bounded send queue and sender."""

    def __init__(self, hub: "Hub", conn: ServerConnection, combined: bool) -> None:
        self.hub, self.conn, self.combined = hub, conn, combined
        self.subs: set[str] = set()
        self.queue: queue.Queue[tuple[float, str, Any] | None] = queue.Queue(SEND_QUEUE)
        self.pong: threading.Event | None = None  # the last ping's: set once answered
        self.gone = False  # disconnected by the venue (slow, or a fault)
        self.frozen = False  # half-open (the half_open fault): open, and silent both ways from now on
        self.thread = threading.Thread(target=self._drain, name="venue-ws-send", daemon=True)

    def offer(self, kind: str, payload: Any, due: float = 0.0) -> bool:
        """Enqueue without waiting; False when the queue is full. A half-open connection swallows everything."""
        if self.frozen:
            return True
        try:
            self.queue.put_nowait((due, kind, payload))
            return True
        except queue.Full:
            return False

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            due, kind, payload = item
            if due > time.monotonic():  # the latency fault, applied here: the publisher never sleeps
                time.sleep(due - time.monotonic())
            try:
                if kind in ("text", "reply"):  # an event pushed (counted as a message sent), or an answer
                    self.conn.send(payload)
                    if kind == "text":
                        self.hub.count_sent()
                elif kind == "ping":
                    self.pong = self.conn.ping(payload)
                    self.hub.counters.add("ws_pings_sent")
                elif kind == "frozen":  # half-open: the sender sends nothing more
                    return
                else:  # close
                    self.conn.close(*payload)
                    return
            except (ConnectionClosed, RuntimeError, OSError):
                return

    def _replace_queue(self, last: tuple[float, str, Any] | None) -> None:
        with self.queue.mutex:
            self.queue.queue.clear()
            self.queue.queue.append(last)
            self.queue.not_empty.notify()

    def abort(self) -> None:
        """Disconnect now: shut the TCP socket down (a sender blocked on it fails at once), stop the sender."""
        self.gone = True
        try:
            self.conn.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._replace_queue(None)

    def freeze(self) -> None:
        """Half-open from now: what is queued is dropped, nothing is sent again, and pings get no pong. The library answers pings
        itself in its reading thread (websockets' sans-I/O Protocol.recv_frame sends a PONG frame through send_frame); the only way
        to keep it from answering without closing the connection is to drop PONG frames at that one call."""
        self.frozen = True
        self._replace_queue((0.0, "frozen", None))
        protocol = self.conn.protocol
        send_frame = protocol.send_frame

        def no_pong(frame: Any) -> None:
            if frame.opcode is not Opcode.PONG:
                send_frame(frame)

        protocol.send_frame = no_pong  # type: ignore[method-assign]

    def close(self, code: int, reason: str) -> None:
        """The closing handshake next (what was queued is dropped); the socket shut down if it is not done in time. A half-open
        connection gets neither: it stays as it is until the client gives up on it (or the venue stops)."""
        if self.frozen:
            return
        self.gone = True
        self._replace_queue((0.0, "close", (code, reason)))
        timer = threading.Timer(CLOSE_TIMEOUT_S, self.abort)
        timer.daemon = True
        timer.start()

    def stop(self) -> None:
        self._replace_queue(None)


class Hub:
    """The connections and their subscriptions; publish() enqueues one message for every subscriber of a stream.

    Given the venue's parts, not the venue (server.py builds the hub; it does not import server.py). A subclass serves
    another market on its own port (futures_streams.FuturesHub): its market streams, its stream paths, no WebSocket API."""

    ws_api_path: str | None = wsapi.PATH

    def __init__(self, host: str, switch: fault_switch.VenueState, exchange: Exchange, counters: VenueStats, port: int = 0,
                 ping_interval_s: float = PING_INTERVAL_S, profile: profiles.Profile | None = None,
                 credentials: Callable[[], tuple[str | None, str | None]] = lambda: (None, None)) -> None:
        self.switch, self.exchange, self.counters = switch, exchange, counters
        self.market_streams = self.streams_of_market()
        self.profile = profile or profiles.get(profiles.DEFAULT)
        self.wsapi = wsapi.WsApi(credentials, self._server_time_ms, wsapi.DAY_S / exchange.speed, self._offer_text, self._close_one,
                                 clock_ms=lambda: fault_switch.clock_ms(switch),
                                 reject=lambda code, detail: fault_switch.count_reject(switch, code, detail), answers=self._answers)
        self.lock = threading.Lock()
        self.clients: dict[ServerConnection, Client] = {}
        self.sent = 0
        self.slow_disconnected = 0  # connections dropped because their send queue was full
        self._sent_lock = threading.Lock()
        self.ping_interval_s = ping_interval_s
        # The library's own keepalive pings carry 4 random bytes; NautilusTrader 1.221's Binance client
        # echoes a ping payload as text and fails on non-UTF-8 bytes, so the venue pings itself, as
        # Binance does, with a text payload (the server time).
        self.server = serve(self._handle, host, port, process_request=self._admit, max_size=MAX_MESSAGE,
                            ping_interval=None, compression=None, open_timeout=OPEN_TIMEOUT_S, close_timeout=CLOSE_TIMEOUT_S)
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pinger = threading.Thread(target=self._ping_all, name="venue-ws-ping", daemon=True)
        self.port: int = self.server.socket.getsockname()[1]

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, name="venue-ws", daemon=True)
        self.thread.start()
        self._pinger.start()

    def count_sent(self) -> None:
        with self._sent_lock:
            self.sent += 1

    def _ping_all(self) -> None:
        while not self._stop.wait(self.ping_interval_s):
            with self.lock:
                clients = list(self.clients.values())
            self.counters.add("ws_pongs_received", sum(1 for c in clients if c.pong is not None and c.pong.is_set()))
            for client in clients:
                client.pong = None
                if not client.offer("ping", str(int(time.time() * 1000))):
                    self._drop_slow(client)

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        if self.thread:
            self.thread.join(timeout=5)
        with self.lock:
            clients = list(self.clients.values())
        for client in clients:
            client.abort()

    def streams_of(self, path: str) -> tuple[bool, list[str]] | None:
        """(combined, streams) PATH names, or None for a path that is no stream endpoint."""
        return parse_path(path)

    def _server_time_ms(self) -> int:
        return fault_switch.server_time_ms(self.switch)

    def streams_of_market(self) -> frozenset[str]:
        """The market streams a client may subscribe to: the replayed symbol's."""
        return market_streams(self.exchange.symbol, self.exchange.interval)

    def valid(self, stream: str) -> bool:
        return stream in self.market_streams or (self.profile.listen_key and self.exchange.has_listen_key(stream))

    def _admit(self, conn: ServerConnection, request: Any) -> Response | None:
        refused = self._refusal(request)
        self.counters.add("ws_connections_refused" if refused else "ws_connections_opened")
        return refused

    def _refusal(self, request: Any) -> Response | None:
        verdict = fault_switch.admit(self.switch, 1)
        if verdict.action == "drop" or verdict.status != 200:
            status = 503 if verdict.action == "drop" else verdict.status
            return _reply(status, verdict.body or {"code": -1001, "msg": "Internal error; please try again."}, verdict.headers)
        with self.lock:
            full = len(self.clients) >= MAX_CONNECTIONS
        if full:
            return _reply(429, {"code": -1003, "msg": f"Too many connections; at most {MAX_CONNECTIONS}."}, {"Retry-After": "1"})
        if urlsplit(request.path).path == self.ws_api_path:
            if "sbe" in parse_qs(urlsplit(request.path).query).get("responseFormat", []):  # SBE not enabled: 400 (SBE FAQ)
                return _reply(400, {"code": -1000, "msg": "SBE is not enabled on this venue; connect without responseFormat=sbe."})
            return _reply(429, {"code": -1003, "msg": f"Too many connections; at most {wsapi.MAX_SESSIONS}."}) if self.wsapi.full() else None
        parsed = self.streams_of(request.path)
        if parsed is None:
            return _reply(404, {"code": -1100, "msg": "expected /ws, /ws/NAME, /stream?streams=NAME[/NAME...] or /ws-api/v3"})
        combined, streams = parsed
        if len(streams) > MAX_STREAMS:
            return _reply(400, {"code": -1100, "msg": f"at most {MAX_STREAMS} streams per connection"})
        bad = [s for s in streams if not self.valid(s)]
        if combined and bad:
            return _reply(400, {"code": -1121, "msg": f"Invalid stream: {bad[0][:64]}"})
        return None

    def _handle(self, conn: ServerConnection) -> None:
        if urlsplit(conn.request.path).path == self.ws_api_path:  # a WebSocket API session, through its own send queue
            client = Client(self, conn, combined=False)
            with self.lock:
                self.clients[conn] = client
            client.thread.start()
            try:
                return self.wsapi.serve(conn)
            finally:
                with self.lock:
                    self.clients.pop(conn, None)
                client.stop()
        parsed = self.streams_of(conn.request.path)
        assert parsed is not None  # _refusal refused anything else
        combined, streams = parsed
        client = Client(self, conn, combined)
        with self.lock:
            self.clients[conn] = client
        client.thread.start()
        self._subscribe(client, [s for s in streams if self.valid(s)])
        try:
            for raw in conn:
                if not client.frozen:  # a half-open connection answers nothing
                    self._command(client, raw)
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                self.clients.pop(conn, None)
            client.stop()

    def _subscribe(self, client: Client, streams: list[str], reply: dict[str, Any] | None = None) -> None:
        with self.lock:  # the reply is queued before any event of the new streams
            client.subs.update(streams)
            queued = reply is None or client.offer("text", _json(reply))
        if not queued:
            self._drop_slow(client)
        if any(s in self.market_streams for s in streams):
            self.exchange.start_replay()

    def _command(self, client: Client, raw: str | bytes) -> None:
        """One request frame; Binance's replies and error codes ("Live Subscribing/Unsubscribing to streams")."""
        try:
            msg = json.loads(raw)
        except ValueError as exc:
            return self._send(client, {"error": {"code": 3, "msg": f"Invalid JSON: {exc}"[:120]}})
        if not isinstance(msg, dict):
            return self._send(client, {"error": {"code": 2, "msg": "Invalid request: expected an object"}})
        ident = msg.get("id")
        if not _valid_id(ident):
            return self._send(client, {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}})
        method, params = msg.get("method"), msg.get("params", [])
        if method is None:
            return self._send(client, {"error": {"code": 2, "msg": "Invalid request: missing field `method`"}, "id": ident})
        if method not in METHODS:
            return self._send(client, {"error": {"code": 2, "msg": f"Invalid request: unknown variant {str(method)[:32]}, expected one of "
                                                 + ", ".join(f"`{m}`" for m in METHODS)}, "id": ident})
        if not isinstance(params, list) or method in ("SUBSCRIBE", "UNSUBSCRIBE") and not all(isinstance(p, str) for p in params):
            return self._send(client, {"error": {"code": 2, "msg": "Invalid request: params must be a list of stream names"}, "id": ident})
        if method == "SUBSCRIBE":
            bad = [p for p in params if not self.valid(p)]
            if bad:
                return self._send(client, {"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0][:64]}"}, "id": ident})
            if len(client.subs | set(params)) > MAX_STREAMS:
                return self._send(client, {"error": {"code": 2, "msg": f"Invalid request: at most {MAX_STREAMS} streams"}, "id": ident})
            self.counters.subscribed()
            return self._subscribe(client, params, {"result": None, "id": ident})
        if method == "UNSUBSCRIBE":
            with self.lock:
                client.subs.difference_update(params)
            return self._send(client, {"result": None, "id": ident})
        if method == "LIST_SUBSCRIPTIONS":
            with self.lock:
                subs = sorted(client.subs)
            return self._send(client, {"result": subs, "id": ident})
        if not params or params[0] != "combined":
            return self._send(client, {"error": {"code": 0, "msg": "Unknown property", "id": ident}})
        if method == "GET_PROPERTY":
            return self._send(client, {"result": client.combined, "id": ident})
        if len(params) != 2 or not isinstance(params[1], bool):
            return self._send(client, {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": ident})
        client.combined = params[1]
        self._send(client, {"result": None, "id": ident})

    def _send(self, client: Client, body: dict[str, Any]) -> None:
        if not client.offer("reply", _json(body)):
            self._drop_slow(client)

    def _offer_text(self, conn: ServerConnection, text: str, event: bool) -> bool:
        """A frame for one connection (the WebSocket API's answers, or with EVENT its pushed events): queued,
        never waited for."""
        with self.lock:
            client = self.clients.get(conn)
        if client is None or client.gone or client.frozen:
            return False
        if client.offer("text" if event else "reply", text):
            return True
        self._drop_slow(client)
        return False

    def _answers(self, conn: ServerConnection) -> bool:
        """False once CONN is half-open (the half_open fault): the WebSocket API ignores what it sends."""
        with self.lock:
            client = self.clients.get(conn)
        return client is None or not client.frozen

    def _close_one(self, conn: ServerConnection, code: int, reason: str) -> None:
        with self.lock:
            client = self.clients.get(conn)
        if client is not None:
            client.close(code, reason)

    def _drop_slow(self, client: Client) -> None:
        with self.lock:
            if client.gone:
                return
            self.slow_disconnected += 1
        client.abort()

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        """Enqueue DATA for every connection subscribed to STREAM (called in the exchange's order, under its lock):
        raw on /ws connections, {"stream", "data"} on combined ones. Never waits for a socket."""
        faults = self.switch.faults
        if faults.get("drop") or faults.get("error_5xx"):
            self.close_all()
            return
        if stream != USER_STREAM:
            if faults.get("silent_market"):
                self.counters.add("market_suppressed")
                return
            self.counters.add("market_published")
        if stream == USER_STREAM:
            end = fault_switch.end_user_stream(self.switch, data)
            if end is not None:  # user_stream_expiry: the stream ends before this event
                self._end_user_streams(end)
        due = time.monotonic() + faults["latency_ms"] / 1000.0 if faults.get("latency_ms") else 0.0
        raw = _json(data)
        with self.lock:
            if stream == USER_STREAM:  # user data: to each connection on a listen key, named by its key
                targets = [(c, key) for c in self.clients.values() if not c.gone for key in c.subs if key not in self.market_streams]
            else:
                targets = [(c, stream) for c in self.clients.values() if not c.gone and stream in c.subs]
        slow = [client for client, name in targets
                if not client.offer("text", f'{{"stream":{json.dumps(name)},"data":{raw}}}' if client.combined else raw, due)]
        for client in slow:
            self._drop_slow(client)
        if stream == USER_STREAM:
            self.wsapi.push(data)

    def _end_user_streams(self, record: dict[str, Any]) -> None:
        """user_stream_expiry: every listen key expires (listenKeyExpired on its streams, unless silent) and every WebSocket API
        subscription ends (eventStreamTerminated, unless silent); the connections stay open."""
        now = fault_switch.server_time_ms(self.switch)
        with self.lock:
            keyed = [(c, key) for c in self.clients.values() if not c.gone for key in sorted(c.subs) if key not in self.market_streams]
            for client, key in keyed:
                client.subs.discard(key)
        for client, key in keyed:
            if not record["silent"]:
                raw = _json({"e": "listenKeyExpired", "E": now, "listenKey": key})
                client.offer("text", f'{{"stream":{json.dumps(key)},"data":{raw}}}' if client.combined else raw)
        keys = self.exchange.expire_listen_keys()
        subs = self.wsapi.end_streams(record["silent"])
        fault_switch.ended(self.switch, record, subs, keys)

    def user_streams_active(self) -> int:
        """User data streams being delivered now: listen keys subscribed on a connection and WebSocket API subscriptions."""
        with self.lock:
            keyed = sum(1 for c in self.clients.values() if not c.gone for key in c.subs if key not in self.market_streams)
        return keyed + self.wsapi.subscriptions()

    def freeze_all(self) -> int:
        """half_open: every connection open now goes half-open (Client.freeze); how many."""
        with self.lock:
            clients = [c for c in self.clients.values() if not c.gone and not c.frozen]
        for client in clients:
            client.freeze()
        self.counters.add("ws_half_open", len(clients))
        return len(clients)

    def close_all(self) -> None:
        """Close every connection (a fault). Returns at once: each sender does its closing handshake, and a
        connection that does not finish it within CLOSE_TIMEOUT_S is shut down."""
        with self.lock:
            clients = [c for c in self.clients.values() if not c.gone]
            for client in clients:
                client.gone = True
        for client in clients:
            client.close(1011, "venue fault")
        self.counters.add("ws_closed_by_fault", len(clients))


def _json(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(body).encode()
    reasons = {400: "Bad Request", 404: "Not Found", 418: "I'm a teapot", 429: "Too Many Requests", 503: "Service Unavailable"}
    extra = [(k, v) for k, v in (headers or {}).items() if k == "Retry-After"]
    return Response(status, reasons.get(status, "Error"),
                    Headers([("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *extra]), payload)
