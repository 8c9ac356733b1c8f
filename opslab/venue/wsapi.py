"""Binance's Spot WebSocket API at /ws-api/v3 on the venue's WebSocket port: sessions and the User Data Stream.

Requests are JSON text frames {"id", "method", "params"}; every answer is {"id", "status", "result"} or
{"id", "status", "error": {"code", "msg"}}, with "rateLimits"
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/request-format,
.../websocket-api/response-format). Account events (executionReport, outboundAccountPosition,
balanceUpdate: the exchange's USER_STREAM) go to every subscription as {"subscriptionId": N, "event": {...}}
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/user-data-stream-requests).

Methods: session.logon / session.status / session.logout
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/authentication-requests),
userDataStream.subscribe / .subscribe.signature / .unsubscribe, session.subscriptions (the page above),
ping and time (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/general-requests).
Order methods (order.place, ...) are not served: the clients the lab runs place orders over REST.

Bounds: frames above streams.MAX_MESSAGE close the connection with 1009 (the server's max_size),
at most MAX_SESSIONS connections, MAX_SUBSCRIPTIONS per connection; a connection lives 24 hours of
dataset time (24 h / the replay speed of wall time), then the venue closes it as Binance does
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/general-api-information).
A refused request changes nothing: the session, its subscriptions and the exchange stay as they were.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from opslab.venue import auth
from opslab.venue.exchange import VenueError

PATH = "/ws-api/v3"
MAX_SESSIONS = 64
MAX_SUBSCRIPTIONS = 16  # Binance allows 1,000; the venue has one account, so one per connection is all a client needs
MAX_SUBSCRIPTION_IDS = 65_535  # Binance: total subscriptions over a session's lifetime
WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per minute, as Binance reports it in rateLimits
DAY_S = 86_400.0
SIGNED_PARAMS = {"apiKey", "timestamp", "signature", "recvWindow"}
# name -> (request weight, the params it accepts); weights from Binance's method pages
METHODS: dict[str, tuple[int, set[str]]] = {
    "session.logon": (2, SIGNED_PARAMS),
    "session.status": (2, set()),
    "session.logout": (2, set()),
    "session.subscriptions": (2, set()),
    "userDataStream.subscribe": (2, set()),
    "userDataStream.subscribe.signature": (2, SIGNED_PARAMS),
    "userDataStream.unsubscribe": (2, {"subscriptionId"}),
    "ping": (1, set()),
    "time": (1, set()),
}


@dataclass
class Session:
    conn: ServerConnection
    connected_ms: int
    api_key: str | None = None
    authorized_ms: int | None = None
    subs: dict[int, bool] = field(default_factory=dict)  # subscriptionId -> made by userDataStream.subscribe (ends at logout)
    next_id: int = 0
    after: list[dict[str, Any]] = field(default_factory=list)  # events due right after the current answer


class WsApi:
    """The sessions of /ws-api/v3 for one venue (streams.Hub routes the path here)."""

    def __init__(self, credentials: Callable[[], tuple[str | None, str | None]], server_time_ms: Callable[[], int],
                 lifetime_s: float, send: Callable[[ServerConnection, str, bool], bool], close: Callable[[ServerConnection, int, str], None],
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 reject: Callable[[int, dict[str, Any] | None], None] = lambda code, detail: None,
                 answers: Callable[[ServerConnection], bool] = lambda conn: True) -> None:
        """SEND queues a text frame on a connection's bounded send queue (its flag: an event, counted as a
        message sent, rather than an answer; False: not sent, the connection is too slow or gone); CLOSE starts
        its closing handshake. Both are the hub's, so a session never blocks the venue. CLOCK_MS is the venue's own
        clock signed requests are timed by (clock_skew); REJECT(code, detail) counts every refusal by its error code;
        ANSWERS(conn) is False for a connection that answers nothing any more (the half_open fault): its requests are ignored."""
        self.credentials, self.server_time_ms, self.lifetime_s = credentials, server_time_ms, lifetime_s
        self.answers = answers
        self.clock_ms, self.reject = clock_ms, reject
        self.send, self.close = send, close
        self.lock = threading.Lock()
        self.sessions: dict[ServerConnection, Session] = {}
        self._window = (0, 0)  # (minute, weight used): one IP on loopback, so one budget for every connection

    def full(self) -> bool:
        with self.lock:
            return len(self.sessions) >= MAX_SESSIONS

    def serve(self, conn: ServerConnection) -> None:
        """Answer CONN's requests until it closes or outlives Binance's 24-hour limit."""
        session = Session(conn, self.server_time_ms())
        with self.lock:
            self.sessions[conn] = session
        expiry = threading.Timer(self.lifetime_s, self._expire, args=(conn,))
        expiry.daemon = True
        expiry.start()
        try:
            for raw in conn:
                if not self.answers(conn):
                    continue
                self._send(conn, self._answer(session, raw))
                while session.after:
                    self._send(conn, session.after.pop(0), event=True)
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            with self.lock:
                self.sessions.pop(conn, None)

    def _expire(self, conn: ServerConnection) -> None:
        self.close(conn, 1000, "24-hour connection limit")

    def push(self, event: dict[str, Any]) -> int:
        """Send one account event to every subscription; how many frames went out."""
        with self.lock:
            targets = [(s.conn, sub) for s in self.sessions.values() for sub in s.subs]
        sent = 0
        for conn, sub in targets:
            sent += self._send(conn, {"subscriptionId": sub, "event": event}, event=True)
        return sent

    def end_streams(self, silent: bool) -> int:
        """End every session's user data stream subscriptions (the user_stream_expiry fault): Binance's eventStreamTerminated for
        each, unless SILENT; the sessions stay logged on. How many ended."""
        with self.lock:
            ended = [(s.conn, sorted(s.subs)) for s in self.sessions.values() if s.subs]
            for s in self.sessions.values():
                s.subs.clear()
        now = self.server_time_ms()
        for conn, subs in ended:
            for sub in subs if not silent else ():
                self._send(conn, {"subscriptionId": sub, "event": {"e": "eventStreamTerminated", "E": now}}, event=True)
        return sum(len(subs) for _, subs in ended)

    def subscriptions(self) -> int:
        """Active user data stream subscriptions over every session."""
        with self.lock:
            return sum(len(s.subs) for s in self.sessions.values())

    def _send(self, conn: ServerConnection, body: dict[str, Any], event: bool = False) -> int:
        return 1 if self.send(conn, json.dumps(body, separators=(",", ":")), event) else 0

    # --- one request ------------------------------------------------------------------------
    def _weigh(self, weight: int) -> tuple[bool, list[dict[str, Any]]]:
        minute = int(time.time() // 60)
        with self.lock:
            start, used = self._window
            used = used if start == minute else 0
            ok = used + weight <= WEIGHT_LIMIT
            self._window = (minute, used + weight if ok else used)
            count = self._window[1]
        return ok, [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": WEIGHT_LIMIT, "count": count}]

    def _answer(self, session: Session, raw: str | bytes) -> dict[str, Any]:
        ident: Any = None
        try:
            if isinstance(raw, bytes):
                raise VenueError(400, -1135, "Invalid JSON request; send requests as JSON text frames.")
            try:
                msg = json.loads(raw)
            except ValueError:
                raise VenueError(400, -1135, "Invalid JSON request.") from None
            if not isinstance(msg, dict):
                raise VenueError(400, -1135, "Invalid JSON request; expected an object.")
            ident = msg.get("id")
            if not (ident is None or isinstance(ident, (int, str)) and not isinstance(ident, bool)) or len(str(ident)) > 36:
                ident = None
                raise VenueError(400, -1100, "Illegal characters found in parameter 'id'; expected an integer or a string of at most 36 characters.")
            method, params = msg.get("method"), msg.get("params", {})
            if not isinstance(method, str) or not method:
                raise VenueError(400, -1102, "Mandatory parameter 'method' was not sent, was empty/null, or malformed.")
            if not isinstance(params, dict):
                raise VenueError(400, -1135, "Invalid 'params' in JSON request; expected an object.")
            if method not in METHODS:
                raise VenueError(400, -1020, f"Unsupported method '{method[:64]}'.")
        except VenueError as exc:
            return self._error(ident, exc, self._weigh(1)[1])
        weight, accepted = METHODS[method]
        ok, limits = self._weigh(weight)
        if not ok:
            busy = VenueError(429, -1003, f"Too much request weight used; current limit is {WEIGHT_LIMIT} request weight per 1 MINUTE.")
            return self._error(ident, busy, limits)
        try:
            unknown = sorted(set(params) - accepted)
            if unknown:
                raise VenueError(400, -1103, f"An unknown parameter was sent: '{unknown[0][:64]}'.")
            result = getattr(self, "_" + method.replace(".", "_"))(session, params)
        except VenueError as exc:
            detail = None
            if exc.code == -1021:
                ts = params.get("timestamp")
                ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else None
                now = self.clock_ms()
                detail = {"surface": "ws-api", "request": method, "timestamp": ts, "venue_time_ms": now,
                          "recv_window_ms": str(params["recvWindow"]) if params.get("recvWindow") is not None else None,
                          "client_lead_ms": None if ts is None else ts - now}
            return self._error(ident, exc, limits, detail)
        return {"id": ident, "status": 200, "result": result, "rateLimits": limits}

    def _error(self, ident: Any, exc: VenueError, limits: list[dict[str, Any]], detail: dict[str, Any] | None = None) -> dict[str, Any]:
        self.reject(exc.code, detail)
        return {"id": ident, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}, "rateLimits": limits}

    def _status(self, session: Session) -> dict[str, Any]:
        return {"apiKey": session.api_key, "authorizedSince": session.authorized_ms, "connectedSince": session.connected_ms,
                "returnRateLimits": True, "serverTime": self.server_time_ms(), "userDataStream": bool(session.subs)}

    def _signed(self, params: dict[str, Any]) -> str:
        key, secret = self.credentials()
        auth.check_ws_signed(params, key, secret, now_ms=self.clock_ms())  # the venue's clock, like REST's check
        return str(params["apiKey"])

    def _new_subscription(self, session: Session, by_logon: bool) -> dict[str, Any]:
        with self.lock:
            if session.subs:  # Binance: one active subscription per account per connection; the venue has one account
                raise VenueError(400, -2035, "User Data Stream subscription already active.")
            if session.next_id >= MAX_SUBSCRIPTION_IDS:
                raise VenueError(400, -2039, "Maximum subscription ID reached for this connection.")
            sub, session.next_id = session.next_id, session.next_id + 1
            session.subs[sub] = by_logon
        return {"subscriptionId": sub}

    def _terminate(self, session: Session, subs: list[int]) -> None:
        """Binance's eventStreamTerminated for each ended subscription, sent after the request's answer."""
        now = self.server_time_ms()
        session.after.extend({"subscriptionId": sub, "event": {"e": "eventStreamTerminated", "E": now}} for sub in subs)

    def _session_logon(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        key = self._signed(params)
        with self.lock:
            session.api_key, session.authorized_ms = key, self.server_time_ms()
        return self._status(session)

    def _session_status(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self._status(session)

    def _session_logout(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            ended = [sub for sub, by_logon in session.subs.items() if by_logon]
            for sub in ended:
                del session.subs[sub]
            session.api_key = session.authorized_ms = None
        self._terminate(session, ended)
        return self._status(session)

    def _session_subscriptions(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            return [{"subscriptionId": sub} for sub in sorted(session.subs)]

    def _userDataStream_subscribe(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        if session.api_key is None:
            raise VenueError(400, -2015, "Invalid API-key, IP, or permissions for action.")  # no session.logon yet
        return self._new_subscription(session, True)

    def _userDataStream_subscribe_signature(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._signed(params)
        return self._new_subscription(session, False)

    def _userDataStream_unsubscribe(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("subscriptionId")
        if wanted is not None:
            # NautilusTrader 1.231 sends the id back as a string: digits are accepted as the integer they spell
            if isinstance(wanted, bool) or not (isinstance(wanted, int) or isinstance(wanted, str) and wanted.isdigit()):
                raise VenueError(400, -1100, "Illegal characters found in parameter 'subscriptionId'; legal range is '0..65535'.")
            wanted = int(wanted)
        with self.lock:
            if wanted is not None and wanted not in session.subs:
                raise VenueError(400, -2036, "User Data Stream subscription not active.")
            ended = [wanted] if wanted is not None else sorted(session.subs)
            for sub in ended:
                del session.subs[sub]
        self._terminate(session, ended)
        return {}

    def _ping(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _time(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return {"serverTime": self.server_time_ms()}
