"""What widely used Binance clients send, and what the venue must answer as Binance does (issues 25, 27).

Real clients on loopback: http.client for REST (query string, form body, both), the `websockets`
client for streams (/ws, /ws/<stream>, /stream), and a raw socket that never reads (the slow
consumer that must not freeze the venue).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from opslab import spec
from opslab.venue.server import BinanceVenue
from venue_spec import KEY, SECRET, node_spec_fixture

pytestmark = pytest.mark.integration


node_spec = node_spec_fixture("venue-protocol", bars=2000)


@pytest.fixture
def venue(node_spec: spec.RunSpec):
    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()  # 2025: the listenKey tests below need it
    yield v
    v.stop()


def sign(payload: str) -> str:
    return hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def request(v: BinanceVenue, method: str, path: str, query: str = "", body: str | bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", v.port, timeout=5)
    try:
        hdrs = {"X-MBX-APIKEY": KEY, **(headers or {})}
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path + ("?" + query if query else ""), body=body, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(raw) if raw else None
    finally:
        conn.close()


def rest_order(v: BinanceVenue, price: str = "1000.00", client_id: str = "P-1") -> dict[str, Any]:
    """A resting LIMIT buy far below the market, placed with everything in the query (as NautilusTrader does)."""
    query = urlencode({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000",
                       "price": price, "newClientOrderId": client_id, "timestamp": now_ms()})
    status, _, body = request(v, "POST", "/api/v3/order", query + "&signature=" + sign(query))
    assert status == 200, body
    return body


@pytest.fixture
def trading(venue: BinanceVenue) -> BinanceVenue:
    venue.exchange.start_replay()
    end = time.monotonic() + 5
    while venue.exchange.last_price is None:
        assert time.monotonic() < end, "no price"
        time.sleep(0.02)
    return venue


# --- 1. signed requests: query, body, both --------------------------------------------------------
def test_signature_and_parameters_in_the_query_the_body_or_both(trading):
    v = trading
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000", "price": "1000.00"}
    # everything in the form body, signature last in the body (ccxt, python-binance for POST)
    body = urlencode({**base, "newClientOrderId": "B-body", "timestamp": now_ms()})
    status, _, answer = request(v, "POST", "/api/v3/order", body=body + "&signature=" + sign(body))
    assert status == 200 and answer["clientOrderId"] == "B-body", answer
    # parameters split between both; signature over query + body concatenated without separator, in the query
    query = urlencode({"symbol": "BTCUSDT", "timestamp": now_ms()})
    body = urlencode({k: v for k, v in base.items() if k != "symbol"} | {"newClientOrderId": "B-mixed"})
    status, _, answer = request(v, "POST", "/api/v3/order", query + "&signature=" + sign(query + body), body=body)
    assert status == 200 and answer["clientOrderId"] == "B-mixed", answer
    # ... or with the signature in the body
    query = urlencode({"symbol": "BTCUSDT", "timestamp": now_ms()})
    body = urlencode(base | {"symbol": "BTCUSDT", "newClientOrderId": "B-sig-in-body"})
    status, _, answer = request(v, "POST", "/api/v3/order", query, body=body + "&signature=" + sign(query + body))
    assert status == 200 and answer["clientOrderId"] == "B-sig-in-body", answer
    # an HMAC signature is compared case-insensitively
    query = urlencode({"timestamp": now_ms()})
    status, _, answer = request(v, "GET", "/api/v3/account", query + "&signature=" + sign(query).upper())
    assert status == 200 and answer["accountType"] == "SPOT"
    # a parameter in both: the query string's is used (here the symbol; the body's would be refused)
    query = urlencode({"symbol": "BTCUSDT", "timestamp": now_ms()})
    body = urlencode({"symbol": "ETHUSDT"})
    status, _, answer = request(v, "DELETE", "/api/v3/openOrders", query + "&signature=" + sign(query + body), body=body)
    assert status == 200 and {o["origClientOrderId"] for o in answer} == {"B-body", "B-mixed", "B-sig-in-body"}


def test_a_bad_signature_in_the_body_is_1022_and_changes_nothing(trading):
    v = trading
    rest_order(v, client_id="keep-me")
    before = v.exchange.snapshot()
    body = urlencode({"symbol": "BTCUSDT", "timestamp": now_ms()})
    status, headers, answer = request(v, "DELETE", "/api/v3/openOrders", body=body + "&signature=" + sign(body + "x"))
    assert (status, answer["code"]) == (400, -1022) and answer["msg"] == "Signature for this request is not valid."
    status, _, answer = request(v, "DELETE", "/api/v3/openOrders", body=body + "&signature=" + "0" * 64)
    assert (status, answer["code"]) == (400, -1022)
    after = v.exchange.snapshot()
    assert [o["status"] for o in after["orders"]] == [o["status"] for o in before["orders"]] == ["NEW"]
    assert after["balances"] == before["balances"]
    # two signatures, or none, are refused too
    status, _, answer = request(v, "DELETE", "/api/v3/openOrders", "signature=" + sign(body), body=body + "&signature=" + sign(body))
    assert (status, answer["code"]) == (400, -1101)
    status, _, answer = request(v, "DELETE", "/api/v3/openOrders", body=body)
    assert (status, answer["code"]) == (400, -1102)


@pytest.mark.parametrize("window, expected", [
    ("5000.5", 200), ("60000", 200), ("0.001", None), ("60000.000", 200),
    ("60000.001", -1131), ("0", -1131), ("5000.1234", -1100), ("5e3", -1100), ("-1", -1100),
])
def test_recv_window_takes_up_to_three_decimals_and_at_most_60000(venue, window, expected):
    query = urlencode({"timestamp": now_ms() - 10, "recvWindow": window})
    status, _, answer = request(venue, "GET", "/api/v3/account", query + "&signature=" + sign(query))
    if expected == 200:
        assert status == 200, answer
    elif expected is None:  # a valid window smaller than the request's age: outside the window
        assert (status, answer["code"]) == (400, -1021)
    else:
        assert (status, answer["code"]) == (400, expected), answer


def test_a_timestamp_in_microseconds_is_accepted(venue):
    query = urlencode({"timestamp": int(time.time() * 1_000_000)})
    assert request(venue, "GET", "/api/v3/account", query + "&signature=" + sign(query))[0] == 200


def test_an_oversized_or_chunked_body_gets_a_binance_shaped_error_and_is_not_read(venue):
    body = "symbol=BTCUSDT&" + "x=" + "a" * 20_000
    status, headers, answer = request(venue, "POST", "/api/v3/order", body=body)
    assert status == 413 and answer["code"] == -1101 and "at most 16384" in answer["msg"]
    assert "X-MBX-USED-WEIGHT-1M" in headers
    conn = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=5)
    try:
        conn.request("POST", "/api/v3/order", body=iter([b"symbol=BTCUSDT"]), headers={"Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        assert resp.status == 413 and json.loads(resp.read())["code"] == -1101
    finally:
        conn.close()


# --- 4. used weight on every answer -----------------------------------------------------------------
def test_every_answer_carries_the_used_weight_of_the_minute_by_the_documented_table(venue):
    from opslab.venue import rest

    def used(answer: tuple[int, dict[str, str], Any]) -> int:
        headers = answer[1]
        assert headers["X-MBX-USED-WEIGHT-1M"] == headers["X-MBX-USED-WEIGHT"]
        return int(headers["X-MBX-USED-WEIGHT-1M"])

    if time.time() % 60 > 57:  # the counter restarts on the minute: do not straddle it
        time.sleep(3.5)
    start = used(request(venue, "GET", "/api/v3/ping"))
    assert used(request(venue, "GET", "/api/v3/time")) == start + 1
    assert used(request(venue, "GET", "/api/v3/depth", "symbol=BTCUSDT&limit=1000")) == start + 51
    assert used(request(venue, "GET", "/api/v3/exchangeInfo")) == start + 71
    query = urlencode({"timestamp": now_ms()})
    assert used(request(venue, "GET", "/api/v3/openOrders", query + "&signature=" + sign(query))) == start + 151  # no symbol: 80
    assert used(request(venue, "GET", "/api/v3/account", "timestamp=1&signature=00")) == start + 171  # refused, still weighed
    assert used(request(venue, "GET", "/api/v3/nope")) == start + 171  # unknown: no weight, the header all the same
    assert rest.ROUTES[("GET", "/api/v3/depth")].weigh({"limit": "5000"}) == 250
    assert rest.ROUTES[("GET", "/api/v3/myTrades")].weigh({"orderId": "1"}) == 5


# --- 5. the cancel answer ----------------------------------------------------------------------------
CANCEL_KEYS = {"symbol", "origClientOrderId", "orderId", "orderListId", "clientOrderId", "transactTime", "price", "origQty",
               "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
               "selfTradePreventionMode"}


def test_the_cancel_answers_have_binances_field_set(trading):
    v = trading
    placed = rest_order(v, client_id="C-one")
    query = urlencode({"symbol": "BTCUSDT", "origClientOrderId": "C-one", "newClientOrderId": "cancel-C-one", "timestamp": now_ms()})
    status, _, answer = request(v, "DELETE", "/api/v3/order", query + "&signature=" + sign(query))
    assert status == 200 and set(answer) == CANCEL_KEYS, answer
    assert answer["origClientOrderId"] == "C-one" and answer["clientOrderId"] == "cancel-C-one"
    assert answer["orderId"] == placed["orderId"] and answer["status"] == "CANCELED" and answer["executedQty"] == "0.000000"
    assert answer["transactTime"] >= placed["transactTime"] and abs(answer["transactTime"] - now_ms()) < 5000
    rest_order(v, client_id="C-two")
    rest_order(v, client_id="C-three")
    query = urlencode({"symbol": "BTCUSDT", "timestamp": now_ms()})
    status, _, answer = request(v, "DELETE", "/api/v3/openOrders", query + "&signature=" + sign(query))
    assert status == 200 and [set(a) for a in answer] == [CANCEL_KEYS, CANCEL_KEYS]
    assert [a["origClientOrderId"] for a in answer] == ["C-two", "C-three"]
    assert len({a["clientOrderId"] for a in answer}) == 1 and len(answer[0]["clientOrderId"]) == 22  # one generated id per request
    from nautilus_trader.adapters.binance.common.schemas.account import BinanceOrder
    import msgspec

    assert msgspec.json.decode(json.dumps(answer[0]).encode(), type=BinanceOrder).transactTime == answer[0]["transactTime"]


def test_cancel_checks_both_ids_and_cancel_restrictions(trading):
    v = trading
    placed = rest_order(v, client_id="R-one")

    def cancel(**params: Any) -> tuple[int, Any]:
        query = urlencode({"symbol": "BTCUSDT", **params, "timestamp": now_ms()})
        status, _, answer = request(v, "DELETE", "/api/v3/order", query + "&signature=" + sign(query))
        return status, answer

    assert cancel(orderId=placed["orderId"], origClientOrderId="someone-else")[1]["code"] == -2011
    assert cancel(orderId=placed["orderId"], cancelRestrictions="NEVER")[1]["code"] == -1145
    status, answer = cancel(orderId=placed["orderId"], cancelRestrictions="ONLY_PARTIALLY_FILLED")
    assert (status, answer["code"], answer["msg"]) == (400, -2011, "Order was not canceled due to cancel restrictions.")
    status, answer = cancel(orderId=placed["orderId"], origClientOrderId="R-one", cancelRestrictions="ONLY_NEW")
    assert status == 200 and answer["status"] == "CANCELED"


# --- 2. streams: paths, framing, requests ------------------------------------------------------------
def recv_json(ws: Any, want: Any = lambda m: True, timeout: float = 3.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        msg = json.loads(ws.recv(timeout=max(0.01, end - time.monotonic())))
        if want(msg):
            return msg


def test_raw_and_combined_paths_frame_events_as_binance_does(venue):
    from websockets.sync.client import connect

    with connect(venue.ws_url + "/ws/btcusdt@trade") as raw:
        assert recv_json(raw)["e"] == "trade"  # raw: the event itself
    with connect(venue.ws_url + "/ws") as bare:
        bare.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1}))
        assert recv_json(bare, lambda m: "id" in m) == {"result": None, "id": 1}
        event = recv_json(bare)
        assert "stream" not in event and event["s"] == "BTCUSDT" and "b" in event
        bare.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "abc"}))
        assert recv_json(bare, lambda m: "id" in m) == {"result": ["btcusdt@bookTicker"], "id": "abc"}
        bare.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 2}))
        assert recv_json(bare, lambda m: "id" in m) == {"result": None, "id": 2}
        assert recv_json(bare, lambda m: "stream" in m)["stream"] == "btcusdt@bookTicker"
        bare.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 3}))
        assert recv_json(bare, lambda m: m.get("id") == 3) == {"result": None, "id": 3}
    with connect(venue.ws_url + "/ws/some-client-chosen-name") as anything:  # accepted, subscribed to nothing
        anything.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert recv_json(anything) == {"result": [], "id": 4}
        anything.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 5}))
        assert recv_json(anything) == {"result": False, "id": 5}
    with connect(venue.ws_url + "/stream") as combined:
        combined.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 6}))
        assert recv_json(combined, lambda m: "id" in m) == {"result": None, "id": 6}
        event = recv_json(combined)
        assert event["stream"] == "btcusdt@trade" and event["data"]["e"] == "trade"


def test_bad_requests_and_unknown_streams_get_binances_errors(venue):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for path in ("/stream?streams=ethusdt@trade", "/elsewhere"):
        with pytest.raises(InvalidStatus) as refused:
            with connect(venue.ws_url + path):
                pass
        assert refused.value.response.status_code in (400, 404)
    with connect(venue.ws_url + "/ws") as ws:
        cases = [("{nope", 3), (json.dumps({"params": [], "id": 1}), 2), (json.dumps({"method": "PUBLISH", "id": 1}), 2),
                 (json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 1}), 2),
                 (json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1.5}), 2),
                 (json.dumps({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}), 1),
                 (json.dumps({"method": "GET_PROPERTY", "params": ["colour"], "id": 1}), 0)]
        for frame, code in cases:
            ws.send(frame)
            assert recv_json(ws)["error"]["code"] == code, frame
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 9}))
        assert recv_json(ws) == {"result": [], "id": 9}  # nothing was subscribed by the bad ones


def test_the_listen_key_stream_works_on_both_paths(trading):
    from websockets.sync.client import connect

    v = trading
    assert v.profile.name == "2025"  # the retired listenKey path: only the 2025 profile serves it
    key = request(v, "POST", "/api/v3/userDataStream")[2]["listenKey"]
    with connect(v.ws_url + f"/stream?streams={key}") as combined, connect(v.ws_url + f"/ws/{key}") as raw:
        for ws in (combined, raw):  # an answer means the venue holds the subscription: the order's events cannot precede it
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            assert recv_json(ws, lambda m: m.get("id") == 1)["result"] == [key]
        rest_order(v, client_id="U-1")
        wrapped = recv_json(combined, lambda m: m.get("data", {}).get("e") == "executionReport")
        assert wrapped["stream"] == key and wrapped["data"]["c"] == "U-1"
        assert recv_json(raw, lambda m: m.get("e") == "executionReport")["c"] == "U-1"


def test_stream_klines_open_on_the_minute_and_close_59999_ms_later(venue):
    from websockets.sync.client import connect

    with connect(venue.ws_url + "/ws/btcusdt@kline_1m") as ws:
        klines = [recv_json(ws, timeout=5)["k"] for _ in range(4)]
    assert all(k["t"] % 60_000 == 0 and k["T"] == k["t"] + 59_999 and k["x"] for k in klines)
    assert [klines[i + 1]["t"] - klines[i]["t"] for i in range(3)] == [60_000] * 3  # one bar, one minute
    assert klines[0]["t"] <= now_ms()


# --- 6. a slow consumer is disconnected; the venue never waits for it ----------------------------------
def test_a_consumer_that_stops_reading_is_disconnected_and_freezes_nothing(trading):
    import base64
    import os
    import socket

    v = trading
    v.exchange.speed = 6000.0
    for i in range(3):
        rest_order(v, client_id=f"K-{i}")
    port = int(v.ws_url.rsplit(":", 1)[1])
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # a tiny window: the venue's writes block almost at once
    slow.settimeout(5)
    slow.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    streams = "btcusdt@depth/btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker/btcusdt@kline_1m"
    slow.sendall((f"GET /stream?streams={streams} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert slow.recv(256).startswith(b"HTTP/1.1 101")  # upgraded; from here on it reads nothing
    try:
        end = time.monotonic() + 30
        while v.hub.slow_disconnected == 0:  # the queue fills at the replay's pace; meanwhile the venue must answer
            assert time.monotonic() < end, "the slow consumer was never disconnected"
            start = time.monotonic()
            assert request(v, "GET", "/api/v3/ping")[0] == 200
            assert time.monotonic() - start < 1.0
            time.sleep(0.1)
        query = urlencode({"symbol": "BTCUSDT", "timestamp": now_ms()})
        start = time.monotonic()
        status, _, answer = request(v, "DELETE", "/api/v3/openOrders", query + "&signature=" + sign(query))
        assert status == 200 and len(answer) == 3 and time.monotonic() - start < 1.0  # the kill switch's call
        assert v.stats()["ws_slow_disconnected"] == 1
        with v.hub.lock:
            assert all(c.conn.request.path.find("btcusdt@depth/") < 0 for c in v.hub.clients.values())  # it is gone
    finally:
        slow.close()
