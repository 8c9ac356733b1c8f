"""The Binance-compatible venue over real HTTP and WebSocket on 127.0.0.1.

Shapes are checked with NautilusTrader 1.221.0's own msgspec decoders (the structs its Binance
clients decode with), so a field the adapter needs and the venue forgets fails here.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import run_tc
from opslab import spec
from opslab.venue.server import BinanceVenue
from venue_spec import KEY, SECRET, spec_text, node_spec_fixture
from opslab.errors import InputError

pytestmark = pytest.mark.integration


node_spec = node_spec_fixture("venue-test")


@pytest.fixture
def venue(node_spec: spec.RunSpec):
    v = BinanceVenue(node_spec, speed=6000, binance_api="2025").start()  # these tests drive the listenKey path
    yield v
    v.stop()


def call(v: BinanceVenue, method: str, path: str, params: dict[str, Any] | None = None, signed: bool = False,
         key: str | None = KEY, secret: str = SECRET, ts_offset_ms: int = 0, raw_query: str | None = None) -> tuple[int, Any]:
    query = urlencode(params or {})
    if signed:
        query = (query + "&" if query else "") + urlencode({"timestamp": int(time.time() * 1000) + ts_offset_ms})
        query += "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    if raw_query is not None:
        query = raw_query
    conn = http.client.HTTPConnection("127.0.0.1", int(v.url.rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request(method, path + ("?" + query if query else ""), headers={"X-MBX-APIKEY": key} if key else {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body else None
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 5.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_rest_answers_decode_with_the_adapters_own_structs(venue):
    from nautilus_trader.adapters.binance.common.schemas.account import BinanceOrder, BinanceUserTrade
    from nautilus_trader.adapters.binance.common.schemas.market import BinanceDepth, BinanceKline, BinanceTime
    from nautilus_trader.adapters.binance.common.schemas.user import BinanceListenKey
    from nautilus_trader.adapters.binance.spot.schemas.account import BinanceSpotAccountInfo
    from nautilus_trader.adapters.binance.spot.schemas.market import BinanceSpotExchangeInfo
    from nautilus_trader.adapters.binance.spot.schemas.wallet import BinanceSpotTradeFee

    def decode(kind: Any, answer: tuple[int, Any]) -> Any:
        assert answer[0] == 200, answer
        return msgspec.json.decode(json.dumps(answer[1]).encode(), type=kind)

    assert decode(BinanceTime, call(venue, "GET", "/api/v3/time")).serverTime > 0
    info = decode(BinanceSpotExchangeInfo, call(venue, "GET", "/api/v3/exchangeInfo", {"symbols": '["BTCUSDT"]'}))
    assert {f.filterType.value for f in info.symbols[0].filters} >= {"PRICE_FILTER", "LOT_SIZE"}
    assert decode(list[BinanceSpotTradeFee], call(venue, "GET", "/sapi/v1/asset/tradeFee", signed=True))[0].takerCommission == "0.001"
    account = decode(BinanceSpotAccountInfo, call(venue, "GET", "/api/v3/account", signed=True))
    assert {b.asset: b.free for b in account.balances} == {"BTC": "1.00000000", "USDT": "100000.00000000"}
    decode(BinanceListenKey, call(venue, "POST", "/api/v3/userDataStream"))
    venue.exchange.start_replay()
    wait_for(lambda: venue.exchange.last_price, what="the first replayed price")
    decode(BinanceDepth, call(venue, "GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5}))
    placed = decode(BinanceOrder, call(venue, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                                         "quantity": "0.010000", "newClientOrderId": "O-1"}, signed=True))
    assert placed.status.value == "FILLED" and placed.fills and placed.executedQty == "0.010000"
    decode(BinanceOrder, call(venue, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "O-1"}, signed=True))
    assert len(decode(list[BinanceOrder], call(venue, "GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}, signed=True))) == 1
    trades = decode(list[BinanceUserTrade], call(venue, "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}, signed=True))
    assert trades[0].orderId == placed.orderId and trades[0].isBuyer
    klines = decode(list[BinanceKline], call(venue, "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 3}))
    assert 1 <= len(klines) <= 3


@pytest.mark.parametrize("case, expected", [
    ("no key", (401, -2014)),
    ("wrong key", (401, -2015)),
    ("bad signature", (400, -1022)),
    ("stale timestamp", (400, -1021)),
    ("future timestamp", (400, -1021)),
    ("no signature", (400, -1102)),
])
def test_signed_requests_are_checked_like_binance(venue, case, expected):
    kwargs: dict[str, Any] = {"signed": True}
    if case == "no key":
        kwargs["key"] = None
    elif case == "wrong key":
        kwargs["key"] = "other"
    elif case == "bad signature":
        kwargs["secret"] = "not-the-secret"
    elif case == "stale timestamp":
        kwargs["ts_offset_ms"] = -6000  # the default recvWindow is 5000 ms
    elif case == "future timestamp":
        kwargs["ts_offset_ms"] = 5000
    else:
        kwargs = {"raw_query": f"timestamp={int(time.time() * 1000)}"}
    status, body = call(venue, "GET", "/api/v3/account", **kwargs)
    assert (status, body["code"]) == expected and body["msg"]


def test_unknown_endpoints_methods_and_oversized_requests_get_binance_shaped_errors(venue):
    assert call(venue, "GET", "/api/v3/nope") == (404, {"code": -1100, "msg": "unknown endpoint /api/v3/nope"})
    status, body = call(venue, "PATCH", "/api/v3/order")
    assert (status, body["code"]) == (405, -1000)
    status, body = call(venue, "PUT", "/api/v3/order")
    assert (status, body["code"]) == (405, -1000)
    status, body = call(venue, "GET", "/api/v3/ping", raw_query="x=" + "a" * 9000)
    assert (status, body["code"]) == (414, -1101)
    status, body = call(venue, "GET", "/api/v3/depth", {"symbol": "XRPUSDT"})
    assert (status, body["code"]) == (400, -1121)
    status, body = call(venue, "PUT", "/api/v3/userDataStream", {"listenKey": "0" * 60})
    assert (status, body["code"]) == (400, -1125)


def test_matching_is_deterministic_and_balances_are_locked_and_released(venue):
    ex = venue.exchange
    ex.start_replay()
    wait_for(lambda: ex.last_price, what="a price")
    with ex.lock:  # freeze the book while we read the touch and trade against it
        ask = ex.last_price + ex_tick()
        order = ex.place("BUY", "MARKET", "0.500000", None, None, "O-m")
        far = ex.place("BUY", "LIMIT", "0.100000", "1000.00", "GTC", "O-far")
        usdt = {k: v for k, v in ex.state["balances"]["USDT"].items()}
    assert order["status"] == "FILLED" and order["fills"][0]["price"] == format(ask, "f")
    assert far["status"] == "NEW" and usdt["locked"] == "100.10000000"  # 0.1 x 1000 plus the 0.1 % fee
    ioc = ex.place("BUY", "LIMIT", "0.100000", "1000.00", "IOC", "O-ioc")
    assert ioc["status"] == "EXPIRED" and ex.state["balances"]["USDT"]["locked"] == "100.10000000"
    status, body = call(venue, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1000.000000"}, signed=True)
    assert (status, body["code"]) == (400, -2010)
    cancelled = call(venue, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "O-far"}, signed=True)[1]
    assert cancelled["status"] == "CANCELED"
    assert ex.state["balances"]["USDT"]["locked"] == "0.00000000"
    assert call(venue, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "O-far"}, signed=True)[1]["code"] == -2011
    near = ex.place("SELL", "LIMIT", "0.200000", format(ex.last_price + 50, "f"), "GTC", "O-near")
    assert near["status"] == "NEW" and ex.state["balances"]["BTC"]["locked"] == "0.20000000"


def ex_tick():
    from opslab.venue.exchange import TICK

    return TICK


def test_streams_push_market_data_and_the_user_stream_reports_orders(venue):
    listen_key = call(venue, "POST", "/api/v3/userDataStream")[1]["listenKey"]
    with connect(venue.ws_url + "/stream?streams=btcusdt@trade") as market, connect(venue.ws_url + f"/stream?streams={listen_key}") as user:
        market.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m", "btcusdt@depth@100ms", "btcusdt@bookTicker"], "id": 7}))
        seen: dict[str, list[dict]] = {}
        end = time.monotonic() + 5
        while time.monotonic() < end and not {"btcusdt@trade", "btcusdt@kline_1m", "btcusdt@depth@100ms", "btcusdt@bookTicker"} <= seen.keys():
            msg = json.loads(market.recv(timeout=2))
            seen.setdefault(msg.get("stream", "reply"), []).append(msg)
        assert seen["reply"][0] == {"result": None, "id": 7}
        depth = [m["data"]["u"] for m in seen["btcusdt@depth@100ms"]]
        assert depth == list(range(depth[0], depth[0] + len(depth)))  # consecutive update ids
        assert all(m["data"]["k"]["x"] for m in seen["btcusdt@kline_1m"])
        call(venue, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010000",
                                              "newClientOrderId": "O-ws"}, signed=True)
        events = [json.loads(user.recv(timeout=2)) for _ in range(3)]
    from nautilus_trader.adapters.binance.spot.schemas.user import BinanceSpotAccountUpdateWrapper, BinanceSpotOrderUpdateWrapper

    reports = [msgspec.json.decode(json.dumps(e).encode(), type=BinanceSpotOrderUpdateWrapper) for e in events[:2]]
    assert [r.data.x.value for r in reports] == ["NEW", "TRADE"] and reports[1].data.N == "USDT"
    assert msgspec.json.decode(json.dumps(events[2]).encode(), type=BinanceSpotAccountUpdateWrapper).data.B
    assert events[0]["stream"] == listen_key


def test_unknown_streams_are_refused(venue):
    with pytest.raises(InvalidStatus) as refused:
        with connect(venue.ws_url + "/stream?streams=" + "f" * 60):
            pass
    assert refused.value.response.status_code == 400
    with connect(venue.ws_url + "/stream?streams=btcusdt@trade") as ws:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 1}))
        reply = json.loads(ws.recv(timeout=2))
        while "id" not in reply:
            reply = json.loads(ws.recv(timeout=2))
        assert reply["error"]["code"] == 2


def test_faults_apply_to_rest_and_websocket(venue):
    venue.set_faults({"error_5xx": True})
    assert call(venue, "GET", "/api/v3/ping")[0] == 503
    with pytest.raises(InvalidStatus) as refused:
        with connect(venue.ws_url + "/stream?streams=btcusdt@trade"):
            pass
    assert refused.value.response.status_code == 503
    venue.set_faults({})
    with connect(venue.ws_url + "/stream?streams=btcusdt@trade") as ws:
        ws.recv(timeout=2)
        venue.set_faults({"drop": True})
        with pytest.raises(ConnectionClosed):
            for _ in range(200):
                ws.recv(timeout=2)
    venue.set_faults({"frozen_time": True})
    frozen = call(venue, "GET", "/api/v3/time")[1]["serverTime"]
    time.sleep(0.05)
    assert call(venue, "GET", "/api/v3/time")[1]["serverTime"] == frozen
    venue.set_faults({"stale_book": True})
    first = venue.exchange.state["update_id"]
    time.sleep(0.2)
    assert venue.exchange.state["update_id"] == first  # the book stopped while trades continue
    venue.set_faults({"sequence_gap": 5})
    time.sleep(0.1)
    gap_before = venue.exchange.state["update_id"]
    time.sleep(0.1)
    assert (venue.exchange.state["update_id"] - gap_before) % 6 == 0


def test_drop_closes_every_connection_at_once_even_behind_a_client_that_never_answers(venue):
    """A client that ignores the closing handshake must hold up neither the admin call nor the close of
    the others (they stop carrying market data at once, as on a real drop)."""
    import base64
    import os
    import socket

    silent = socket.create_connection(("127.0.0.1", int(venue.ws_url.rsplit(":", 1)[1])), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    silent.sendall((f"GET /stream?streams=btcusdt@trade HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert silent.recv(4096).startswith(b"HTTP/1.1 101")  # upgraded; from here on it reads nothing, answers nothing
    try:
        with connect(venue.ws_url + "/stream?streams=btcusdt@trade") as ws:
            ws.recv(timeout=2)
            start = time.monotonic()
            venue.set_faults({"drop": True})
            assert time.monotonic() - start < 1.0, "the admin call waited for closing handshakes"
            with pytest.raises(ConnectionClosed):
                for _ in range(200):
                    ws.recv(timeout=2)
            assert time.monotonic() - start < 3.0, "a well-behaved client was closed only after the silent one timed out"
    finally:
        silent.close()
        venue.set_faults({})


def test_state_survives_a_venue_restart_and_reset_discards_it(node_spec):
    first = BinanceVenue(node_spec, speed=6000).start()
    try:
        first.exchange.start_replay()
        wait_for(lambda: first.exchange.last_price, what="a price")
        call(first, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                              "quantity": "0.010000", "price": "1000.00", "newClientOrderId": "O-keep"}, signed=True)
        cursor = first.exchange.state["replay"]["cursor"]
    finally:
        first.stop()
    second = BinanceVenue(node_spec, speed=6000).start()
    try:
        open_ = call(second, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, signed=True)[1]
        assert [o["clientOrderId"] for o in open_] == ["O-keep"]
        assert second.exchange.state["replay"]["cursor"] >= cursor
        assert second.exchange.state["balances"]["USDT"]["locked"] == "10.01000000"
    finally:
        second.stop()
    third = BinanceVenue(node_spec, speed=6000, reset=True).start()
    try:
        assert call(third, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, signed=True)[1] == []
    finally:
        third.stop()
    assert KEY not in (Path(node_spec.path).parent / "artifacts" / "venue" / "venue-test" / "state.json").read_text()


def test_venue_refuses_other_hosts_and_missing_credentials(node_spec, monkeypatch):
    with pytest.raises(InputError, match="loopback only"):
        BinanceVenue(node_spec, host="0.0.0.0")
    monkeypatch.delenv("TC_TEST_BINANCE_SECRET")
    with pytest.raises(InputError, match="TC_TEST_BINANCE_SECRET: not set"):
        BinanceVenue(node_spec)


def test_cli_venue_serve_bad_input_is_one_line_exit_2(tmp_path):
    spec_file = tmp_path / "node.yaml"
    spec_file.write_text(spec_text())
    done = run_tc("venue", "serve", "--spec", str(spec_file), artifacts=tmp_path / "artifacts")
    assert done.code == 2 and done.err.count("\n") == 1 and "TC_TEST_BINANCE_KEY" in done.err
    done = run_tc("venue", "serve", "--spec", str(spec_file), "--speed", "0", artifacts=tmp_path / "artifacts",
                  TC_TEST_BINANCE_KEY="k", TC_TEST_BINANCE_SECRET="s")
    assert done.code == 2 and "--speed" in done.err
    done = run_tc("venue", "serve", "--spec", str(spec_file), "--funding-every-bars", "0", artifacts=tmp_path / "artifacts",
                  TC_TEST_BINANCE_KEY="k", TC_TEST_BINANCE_SECRET="s")
    assert done.code == 2 and done.err.count("\n") == 1 and "--funding-every-bars 0: expected 1 to 100,000 replayed bars" in done.err


def test_trade_and_order_history_pages_and_filters_like_binance(venue):
    venue.exchange.start_replay()
    wait_for(lambda: venue.exchange.last_price, what="a price")
    for i in range(3):
        venue.exchange.place("BUY", "MARKET", "0.001000", None, None, f"O-h{i}")

    def get(path: str, **params: Any) -> Any:
        status, body = call(venue, "GET", path, {"symbol": "BTCUSDT", **params}, signed=True)
        return body if status == 200 else (status, body["code"])

    assert [t["id"] for t in get("/api/v3/myTrades", fromId=2)] == [2, 3]
    assert [t["id"] for t in get("/api/v3/myTrades", limit=1)] == [3]
    assert [t["orderId"] for t in get("/api/v3/myTrades", orderId=2)] == [2]
    assert get("/api/v3/myTrades", fromId=1, startTime=0) == (400, -1128)
    assert [o["orderId"] for o in get("/api/v3/allOrders", orderId=2)] == [2, 3]
    assert get("/api/v3/allOrders", startTime=int(time.time() * 1000) + 60_000) == []
    from opslab.venue.client import RECORD_TIMEOUT_S, VenueClient

    client = VenueClient(venue.url, RECORD_TIMEOUT_S, api_key=KEY, api_secret=SECRET)
    assert [t["id"] for t in client.all_trades()] == [1, 2, 3]
    assert client.account_counts() == {"venue_orders": 3, "venue_trades": 3, "venue_orders_canceled": 0}
    assert client.account_snapshot("venue-test")["positions"] == [{"instrument": "BTCUSDT.BINANCE", "side": "LONG", "quantity": "0.003"}]


# --- node drill support: silent_market, the 418 ban, the admin fill, stats.json ------------------
@pytest.fixture
def pinged_venue(node_spec: spec.RunSpec):
    v = BinanceVenue(node_spec, speed=6000, ping_interval_s=0.2, binance_api="2025").start()
    yield v
    v.stop()


def admin(v: BinanceVenue, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", int(v.url.rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def drain(ws: Any) -> list[dict]:
    """Every message already waiting on WS."""
    out = []
    while True:
        try:
            out.append(json.loads(ws.recv(timeout=0.05)))
        except TimeoutError:
            return out


def test_silent_market_withholds_market_streams_while_the_socket_the_pings_and_the_user_stream_live_on(pinged_venue):
    v = pinged_venue
    listen_key = call(v, "POST", "/api/v3/userDataStream")[1]["listenKey"]
    with connect(v.ws_url + "/stream?streams=btcusdt@trade/btcusdt@depth@100ms") as market, connect(v.ws_url + f"/stream?streams={listen_key}") as user:
        assert json.loads(market.recv(timeout=2))["stream"] in ("btcusdt@trade", "btcusdt@depth@100ms")
        assert admin(v, "POST", "/admin/faults", b'{"faults": ["silent_market"]}') == (200, {"faults": {"silent_market": True}})
        time.sleep(0.1)
        drain(market)  # what was in flight before the switch
        cursor, pongs = v.exchange.state["replay"]["cursor"], v.counters.counts["ws_pongs_received"]
        with pytest.raises(TimeoutError):
            market.recv(timeout=1.0)
        assert v.exchange.state["replay"]["cursor"] > cursor  # market time went on
        wait_for(lambda: v.counters.counts["ws_pongs_received"] > pongs, what="a ping answered during the silence")
        assert call(v, "GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5})[0] == 200  # REST still answers
        market.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))  # the socket still takes commands
        assert json.loads(market.recv(timeout=2)) == {"result": ["btcusdt@depth@100ms", "btcusdt@trade"], "id": 3}
        call(v, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010000",
                                          "newClientOrderId": "O-silent"}, signed=True)
        reports = [json.loads(user.recv(timeout=2))["data"] for _ in range(3)]
        assert [r.get("x") for r in reports[:2]] == ["NEW", "TRADE"] and reports[2]["e"] == "outboundAccountPosition"
        assert admin(v, "DELETE", "/admin/faults")[0] == 200
        assert json.loads(market.recv(timeout=2))["stream"] in ("btcusdt@trade", "btcusdt@depth@100ms")
        suppressed = v.counters.counts["market_suppressed"]  # read once published again: settled
        assert suppressed > 0
    doc = v.counters.document()
    assert doc["market_messages"]["suppressed"] == suppressed and doc["ws"]["pongs_received"] >= 1


def test_rate_limit_escalates_to_a_418_ban_when_retry_after_is_ignored_and_recovers_after_it(node_spec):
    from opslab.venue import faults

    with BinanceVenue(node_spec, faults={"rate_limit": {"weight": 1, "window_s": 2}}) as v:  # 2 s: a loaded machine stays in one window
        port = int(v.url.rsplit(":", 1)[1])

        def ping() -> tuple[int, dict, dict[str, str]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/api/v3/ping")
                resp = conn.getresponse()
                return resp.status, json.loads(resp.read()), dict(resp.getheaders())
            finally:
                conn.close()

        assert ping()[0] == 200
        answers = [ping() for _ in range(faults.BAN_AFTER + 2)]  # straight on, ignoring Retry-After
        statuses = [a[0] for a in answers]
        assert statuses == [429] * faults.BAN_AFTER + [418, 418], statuses
        status, body, headers = answers[-2]
        assert body["code"] == -1003 and body["msg"].startswith("Way too many requests; IP banned until ")
        until_ms = int(body["msg"].rsplit(" ", 1)[1].rstrip("."))
        assert 0 < until_ms - time.time() * 1000 <= faults.ban_seconds(2) * 1000
        assert 1 <= int(headers["Retry-After"]) <= faults.ban_seconds(2)
        with pytest.raises(InvalidStatus) as refused:  # the ban covers the WebSocket handshake too
            with connect(v.ws_url + "/stream?streams=btcusdt@trade"):
                pass
        assert refused.value.response.status_code == 418 and refused.value.response.headers["Retry-After"]
        doc = v.counters.document()
        assert doc["requests"]["throttled"] == faults.BAN_AFTER and doc["requests"]["banned"] == 3
        assert doc["rate_limit"]["banned_until"] is not None
        time.sleep(int(answers[-1][2]["Retry-After"]))
        assert ping()[0] == 200  # the ban is over: normal limiting again
        throttled = ping()
        assert throttled[0] == 429
        time.sleep(int(throttled[2]["Retry-After"]))  # a client that honours Retry-After is never banned
        assert ping()[0] == 200
        doc = v.counters.document()
        assert doc["rate_limit"] == {"violations": 0, "banned_until": None} and doc["requests"]["banned"] == 3


def test_admin_fill_fills_resting_orders_at_their_price_and_reports_them_on_the_user_stream(venue):
    placed = call(venue, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                                   "quantity": "0.010000", "price": "1000.00", "newClientOrderId": "O-rest"}, signed=True)[1]
    assert placed["status"] == "NEW"
    listen_key = call(venue, "POST", "/api/v3/userDataStream")[1]["listenKey"]
    with connect(venue.ws_url + f"/stream?streams={listen_key}") as user:
        # the handshake's answer can reach the client before the venue's connection thread subscribed the key
        # (a fill in between is on no stream, as on Binance): fill only once the key has its subscriber
        end = time.monotonic() + 5
        while not any(listen_key in c.subs for c in list(venue.hub.clients.values())) and time.monotonic() < end:
            time.sleep(0.01)
        assert admin(venue, "POST", "/admin/fill") == (200, {"filled": [placed["orderId"]]})
        events = [json.loads(user.recv(timeout=2)) for _ in range(2)]
    from nautilus_trader.adapters.binance.spot.schemas.user import BinanceSpotAccountUpdateWrapper, BinanceSpotOrderUpdateWrapper

    report = msgspec.json.decode(json.dumps(events[0]).encode(), type=BinanceSpotOrderUpdateWrapper).data
    assert (report.x.value, report.X.value, report.i, report.L, report.l, report.m) == ("TRADE", "FILLED", placed["orderId"], "1000.00", "0.010000", True)
    assert msgspec.json.decode(json.dumps(events[1]).encode(), type=BinanceSpotAccountUpdateWrapper).data.B
    trades = call(venue, "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}, signed=True)[1]
    assert [(t["orderId"], t["price"], t["qty"], t["isMaker"]) for t in trades] == [(placed["orderId"], "1000.00", "0.010000", True)]
    account = {b["asset"]: b for b in call(venue, "GET", "/api/v3/account", signed=True)[1]["balances"]}
    assert account["USDT"] == {"asset": "USDT", "free": "99989.99000000", "locked": "0.00000000"}  # 10 + 0.01 fee
    assert account["BTC"]["free"] == "1.01000000"
    assert call(venue, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, signed=True)[1] == []
    assert admin(venue, "POST", "/admin/fill", b"{}") == (200, {"filled": []})


@pytest.mark.parametrize("method, body, expected", [
    ("POST", b'{"orders": [1]}', 400),
    ("POST", b"fill them", 400),
    ("POST", b"[" * 5000, 400),
    ("POST", b"x" * 20000, 413),
    ("GET", None, 405),
    ("DELETE", None, 405),
])
def test_admin_fill_refuses_bad_bodies_and_methods_with_one_line(venue, method, body, expected):
    status, answer = admin(venue, method, "/admin/fill", body)
    assert status == expected and answer["msg"] and "\n" not in answer["msg"]
    assert venue.exchange.state["trades"] == []


def test_stats_json_is_written_schema_valid_counted_and_exported(node_spec, tmp_path):
    from opslab import contracts
    from opslab.metrics import cache

    v = BinanceVenue(node_spec, speed=6000).start()
    path = v.counters.path
    try:
        assert json.loads(path.read_text())["requests"]["total"] == 0  # written at start: every series exists before it moves
        for _ in range(2):
            assert call(v, "GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5})[0] == 200
        with pytest.raises(InvalidStatus):
            with connect(v.ws_url + "/stream?streams=nope"):
                pass
        with connect(v.ws_url + "/stream?streams=btcusdt@trade") as ws:
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}))
            wait_for(lambda: v.counters.counts["ws_subscribe_commands"], what="the SUBSCRIBE counted")
        v.set_faults({"stale_book": True})
        wait_for(lambda: json.loads(path.read_text())["faults_active"] == ["stale_book"], what="stats.json rewritten within a second or two")
    finally:
        v.stop()
    doc = json.loads(path.read_text())
    assert contracts.errors_for("venue_stats", doc, str(path)) == []
    assert doc["depth_snapshots"] == 2
    assert {k: doc["ws"][k] for k in ("connections_opened", "connections_refused", "subscribe_commands")} == \
        {"connections_opened": 1, "connections_refused": 1, "subscribe_commands": 1}
    assert doc["requests"] == {"total": 4, "served": 4, "throttled": 0, "banned": 0, "dropped": 0, "errors": 0}
    assert doc["market_messages"]["published"] > 0 and doc["market_messages"]["suppressed"] == 0
    assert v.stats()["venue_stats"]["requests"] == doc["requests"] and v.stats()["served"] == 4
    rel = path.relative_to(tmp_path / "artifacts").as_posix()
    assert rel == "venue/venue-test/stats.json" and contracts.classify(rel, "root")[0].name == "venue_stats"

    samples = {(name, labels): value for name, labels, value in cache.ArtifactCollector(tmp_path / "artifacts").samples()}
    assert samples[("tc_venue_requests", ("venue-test", "served"))] == 4
    assert samples[("tc_venue_requests", ("venue-test", "banned"))] == 0
    assert samples[("tc_venue_depth_snapshots", ("venue-test",))] == 2
    assert samples[("tc_venue_ws_connections", ("venue-test",))] == 1
    assert samples[("tc_venue_ws_connections_refused", ("venue-test",))] == 1
    assert samples[("tc_venue_ws_subscribe_commands", ("venue-test",))] == 1
    assert samples[("tc_venue_fault_active", ("venue-test", "stale_book"))] == 1
    assert samples[("tc_venue_fault_active", ("venue-test", "silent_market"))] == 0
    assert ("tc_venue_stats_timestamp_seconds", ("venue-test",)) in samples
    from opslab.metrics.server import dump

    text = dump(tmp_path / "artifacts").body
    assert 'tc_venue_requests_total{outcome="throttled",run_id="venue-test"} 0.0' in text
    assert 'tc_venue_market_messages_total{outcome="suppressed",run_id="venue-test"} 0.0' in text
