"""The venue's WebSocket API (/ws-api/v3) and its Binance profiles, with a real `websockets` client on 127.0.0.1.

Today's Binance (profile 2026, the default) gives account events only over the WebSocket API; the
retired listenKey path answers 410 and its streams are refused. Profile 2025 keeps it for
NautilusTrader < 1.223.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from conftest import run_tc
from opslab import spec
from opslab.venue import profiles, wsapi
from opslab.venue.server import BinanceVenue
from venue_spec import KEY, SECRET, node_spec_fixture

pytestmark = pytest.mark.integration


node_spec = node_spec_fixture("wsapi-test")


@pytest.fixture
def venue(node_spec: spec.RunSpec):
    v = BinanceVenue(node_spec, speed=6000).start()
    yield v
    v.stop()


def rest(v: BinanceVenue, method: str, path: str, params: dict[str, Any] | None = None, signed: bool = False) -> tuple[int, Any]:
    query = urlencode(params or {})
    if signed:
        query = (query + "&" if query else "") + urlencode({"timestamp": int(time.time() * 1000)})
        query += "&signature=" + hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", v.port, timeout=5)
    try:
        conn.request(method, path + ("?" + query if query else ""), headers={"X-MBX-APIKEY": KEY})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body else None
    finally:
        conn.close()


def signed(secret: str = SECRET, key: str = KEY, **extra: Any) -> dict[str, Any]:
    """Params signed as Binance's WS API documents: every param but signature, sorted, name=value joined by &."""
    params: dict[str, Any] = {"apiKey": key, "timestamp": int(time.time() * 1000), **extra}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return {**params, "signature": hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()}


def ask(ws: ClientConnection, method: str, params: dict[str, Any] | None = None, ident: Any = "r1") -> dict[str, Any]:
    ws.send(json.dumps({"id": ident, "method": method, **({"params": params} if params is not None else {})}))
    return json.loads(ws.recv(timeout=5))


def events(ws: ClientConnection, want: set[str], timeout: float = 5) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not want <= {m["event"]["e"] for m in got}:
        got.append(json.loads(ws.recv(timeout=max(0.05, end - time.monotonic()))))
    return got


def market_buy(v: BinanceVenue, client_id: str) -> None:
    status, body = rest(v, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010000",
                                                     "newClientOrderId": client_id}, signed=True)
    assert status == 200, body


def with_price(v: BinanceVenue) -> None:
    v.exchange.start_replay()
    end = time.monotonic() + 10
    while not v.exchange.last_price and time.monotonic() < end:
        time.sleep(0.02)
    assert v.exchange.last_price


def test_logon_subscribe_receives_account_events_wrapped_and_unsubscribe_stops_them(venue):
    with_price(venue)
    with connect(venue.ws_url + wsapi.PATH) as ws:
        before = ask(ws, "session.status")
        assert before["status"] == 200 and before["result"]["apiKey"] is None and before["result"]["authorizedSince"] is None
        logon = ask(ws, "session.logon", signed(), ident=7)
        assert (logon["id"], logon["status"], logon["result"]["apiKey"]) == (7, 200, KEY)
        assert logon["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT" and logon["rateLimits"][0]["count"] >= 2
        status = ask(ws, "session.status")["result"]
        assert status["apiKey"] == KEY and status["authorizedSince"] >= status["connectedSince"] and status["userDataStream"] is False
        assert ask(ws, "userDataStream.subscribe", {})["result"] == {"subscriptionId": 0}
        assert ask(ws, "session.status")["result"]["userDataStream"] is True
        assert ask(ws, "session.subscriptions")["result"] == [{"subscriptionId": 0}]

        market_buy(venue, "O-wsapi-1")
        got = events(ws, {"executionReport", "outboundAccountPosition"})
        assert {m["subscriptionId"] for m in got} == {0} and all(set(m) == {"subscriptionId", "event"} for m in got)
        reports = [m["event"] for m in got if m["event"]["e"] == "executionReport"]
        assert [r["x"] for r in reports] == ["NEW", "TRADE"] and reports[0]["c"] == "O-wsapi-1"
        # commission on every report, as Binance sends it (NautilusTrader 2.0 refuses a report without n)
        assert (Decimal(reports[0]["n"]), reports[0]["N"]) == (0, None) and Decimal(reports[1]["n"]) > 0 and reports[1]["N"] == "USDT"

        assert ask(ws, "userDataStream.unsubscribe", {"subscriptionId": "0"})["result"] == {}  # a string id, as NautilusTrader 1.231 sends it
        ended = json.loads(ws.recv(timeout=5))
        assert ended["subscriptionId"] == 0 and ended["event"]["e"] == "eventStreamTerminated" and ended["event"]["E"] > 0
        market_buy(venue, "O-wsapi-2")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)
        out = ask(ws, "session.logout")["result"]
        assert out["apiKey"] is None and out["authorizedSince"] is None


def test_subscribe_signature_needs_no_logon_and_ping_time_answer(venue):
    with_price(venue)
    with connect(venue.ws_url + wsapi.PATH) as ws:
        pong = ask(ws, "ping")
        assert (pong["id"], pong["status"], pong["result"]) == ("r1", 200, {}) and pong["rateLimits"][0]["count"] >= 1
        assert abs(ask(ws, "time")["result"]["serverTime"] - time.time() * 1000) < 5000
        assert ws.ping(b"lab").wait(timeout=5)  # a ping frame gets its pong
        sub = ask(ws, "userDataStream.subscribe.signature", signed())
        assert sub["status"] == 200 and sub["result"] == {"subscriptionId": 0}
        assert ask(ws, "session.status")["result"]["apiKey"] is None  # subscribed without a session
        market_buy(venue, "O-sig")
        got = events(ws, {"executionReport", "outboundAccountPosition"})
        assert {m["subscriptionId"] for m in got} == {0}
        again = ask(ws, "userDataStream.subscribe.signature", signed())
        assert (again["status"], again["error"]["code"]) == (400, -2035)  # one subscription per account per connection


def _state(v: BinanceVenue) -> tuple[Any, ...]:
    snap = v.exchange.snapshot()
    counted = v.stats()
    return (snap["orders"], snap["trades"], snap["balances"], snap["listen_keys"],
            {k: counted[k] for k in ("requests", "served", "errors")}, counted["ws_messages_sent"])


BAD = [
    ("unsigned logon", {"id": 1, "method": "session.logon", "params": {"apiKey": KEY, "timestamp": 1}}, -1102),
    ("bad signature", {"id": 2, "method": "session.logon", "params": lambda: signed(secret="not-the-secret")}, -1022),
    ("unknown key", {"id": 3, "method": "session.logon", "params": lambda: signed(key="someone-else")}, -2015),
    ("stale timestamp", {"id": 4, "method": "session.logon", "params": lambda: signed(timestamp=int(time.time() * 1000) - 120_000)}, -1021),
    ("unknown method", {"id": 5, "method": "order.teleport", "params": {}}, -1020),
    ("params not an object", {"id": 6, "method": "ping", "params": [1]}, -1135),
    ("no method", {"id": 7, "params": {}}, -1102),
    ("unknown param", {"id": 8, "method": "ping", "params": {"foo": 1}}, -1103),
    ("subscribe before logon", {"id": 9, "method": "userDataStream.subscribe", "params": {}}, -2015),
    ("unsubscribe unknown id", {"id": 10, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": 5}}, -2036),
    ("bad subscription id", {"id": 11, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": "x"}}, -1100),
]


@pytest.mark.parametrize("case,request_,code", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_binance_errors_and_change_nothing(venue, case, request_, code):
    if callable(request_["params"]):  # signed now, not at import
        request_ = {**request_, "params": request_["params"]()}
    with connect(venue.ws_url + wsapi.PATH) as ws:
        before = _state(venue)  # after the handshake, which the fault switch counts like any request
        ws.send(json.dumps(request_))
        answer = json.loads(ws.recv(timeout=5))
        assert answer["id"] == request_["id"] and answer["status"] == 400 and "result" not in answer
        assert answer["error"]["code"] == code and answer["error"]["msg"]
        assert answer["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
        status = ask(ws, "session.status")["result"]
        assert status["apiKey"] is None and status["userDataStream"] is False
        assert _state(venue) == before


def test_malformed_json_binary_frames_and_oversized_frames(venue):
    before = _state(venue)[:4]  # the exchange's record (each handshake below is counted in the stats)
    with connect(venue.ws_url + wsapi.PATH) as ws:
        ws.send("{not json")
        answer = json.loads(ws.recv(timeout=5))
        assert (answer["id"], answer["status"], answer["error"]["code"]) == (None, 400, -1135)
        ws.send(b'{"id": 1, "method": "ping"}')
        assert json.loads(ws.recv(timeout=5))["error"]["code"] == -1135  # requests are text frames
    with connect(venue.ws_url + wsapi.PATH, max_size=None) as ws:
        ws.send(json.dumps({"id": 1, "method": "ping", "params": {"pad": "x" * 8192}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with connect(venue.ws_url + wsapi.PATH) as ws:  # the venue goes on serving
        assert ask(ws, "ping")["status"] == 200
    assert _state(venue)[:4] == before


def test_a_connection_lives_24_dataset_hours_then_the_venue_closes_it(venue):
    lifetime = wsapi.DAY_S / venue.exchange.speed  # 14.4 s at speed 6000
    with connect(venue.ws_url + wsapi.PATH) as ws:
        opened = time.monotonic()
        assert ask(ws, "session.logon", signed())["status"] == 200
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=lifetime + 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert lifetime - 1 <= time.monotonic() - opened <= lifetime + 5


def test_old_listen_key_client_fails_under_2026_and_works_under_2025(node_spec):
    with BinanceVenue(node_spec, speed=6000, binance_api="2025") as old:
        status, body = rest(old, "POST", "/api/v3/userDataStream")
        assert status == 200
        key = body["listenKey"]
        with connect(old.ws_url + f"/stream?streams={key}") as user:
            with_price(old)
            market_buy(old, "O-2025")
            assert json.loads(user.recv(timeout=5))["stream"] == key
        assert rest(old, "PUT", "/api/v3/userDataStream", {"listenKey": key})[0] == 200
    with BinanceVenue(node_spec, speed=6000) as today:  # same saved state: the key is still on record, and refused
        assert today.profile.name == profiles.DEFAULT == "2026"
        for method in ("POST", "PUT", "DELETE"):
            status, body = rest(today, method, "/api/v3/userDataStream", {"listenKey": key} if method != "POST" else None)
            assert status == 410 and body["code"] == -1000 and "WebSocket API" in body["msg"]
        with pytest.raises(InvalidStatus) as refused:  # a combined stream naming it: refused at the handshake
            connect(today.ws_url + f"/stream?streams={key}")
        assert refused.value.response.status_code == 400
        with connect(today.ws_url + f"/ws/{key}") as raw:  # /ws/<anything> opens, as on Binance, but subscribes nothing
            raw.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            assert json.loads(raw.recv(timeout=5)) == {"result": [], "id": 1}
        with connect(today.ws_url + wsapi.PATH) as ws:  # what a client does today
            assert ask(ws, "session.logon", signed())["status"] == 200


def test_the_profile_for_a_nautilus_version_and_the_cli_flag(tmp_path):
    assert [profiles.for_nautilus(v) for v in ("1.221.0", "1.222.0", "1.223.0", "1.231.0", "2.0.0rc3", "not installed")] == \
        ["2025", "2025", "2026", "2026", "2026", profiles.DEFAULT]
    bad = run_tc("venue", "serve", "--binance-api", "2024", artifacts=tmp_path)
    assert bad.code == 2 and "2026" in bad.err and "2025" in bad.err


@pytest.mark.parametrize("accept, status", [("application/sbe", 406), ("application/sbe, application/json", 200),
                                            ("application/json", 200), ("*/*", 200)])
def test_no_sbe_asked_for_sbe_alone_answers_406_and_json_when_json_is_accepted_too(venue, accept, status):
    """Binance's SBE FAQ, for an exchange without SBE: NautilusTrader 2.0 sends Accept: application/sbe alone (ADR 0002)."""
    conn = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=5)
    try:
        conn.request("GET", "/api/v3/time", headers={"Accept": accept, "X-MBX-SBE": "3:5"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == status and (("serverTime" in body) if status == 200 else body["code"] == -1000)


def test_ws_api_with_sbe_response_format_is_refused_at_the_handshake(venue):
    with pytest.raises(InvalidStatus) as refused:
        connect(venue.ws_url + wsapi.PATH + "?responseFormat=sbe&sbeSchemaId=3&sbeSchemaVersion=5")
    assert refused.value.response.status_code == 400 and b"SBE is not enabled" in refused.value.response.body
    with connect(venue.ws_url + wsapi.PATH + "?responseFormat=json") as ws:
        assert ask(ws, "ping")["status"] == 200
