"""Issue 32 item 1 (venue side): Binance USD-M Futures beside Spot, over real HTTP and WebSocket on 127.0.0.1.

The real NautilusTrader USD-M data and execution clients of the installed engine (a TradingNode in its own process,
futures_node_script.py) load BTCUSDT-PERP.BINANCE, get quotes and bars, sign in with a REST listenKey and fill a MARKET
order: their fills come from ORDER_TRADE_UPDATE only (the order's REST answer is NEW), and the venue's positionRisk shows
the position. A real third-party client (python-binance's futures_* calls) walks the REST surface; the answers decode
with the adapters' own msgspec structs; the market and user streams carry Binance's events; bad input gets Binance's error.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import msgspec
import pytest
from websockets.sync.client import ClientConnection, connect

from opslab.venue import faults
from opslab.venue import futures_contract as contract
from opslab.venue.server import BinanceVenue
from integration.test_binance_venue import call, wait_for  # tests/ is on the path (pyproject)
from venue_clients import CLIENT_WARNINGS
from venue_spec import KEY, SECRET, load_node_spec

pytestmark = [pytest.mark.integration, *CLIENT_WARNINGS]
HERE = Path(__file__).resolve().parent
SYM = contract.SYMBOL


@pytest.fixture
def venue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BinanceVenue]:
    v = BinanceVenue(load_node_spec(tmp_path, monkeypatch, run_id="venue-futures"), speed=6000).start()
    yield v
    v.stop()


def priced(v: BinanceVenue, bars: int = 0) -> Decimal:
    """The perpetual's mark once Spot's replay printed (and replayed BARS bars), with the replay then stopped: the book holds still."""
    v.exchange.start_replay()
    wait_for(lambda: v.futures.mark and v.exchange.state["replay"]["cursor"] >= bars, what="a futures mark price")
    v.exchange.stop()
    assert v.futures.mark is not None
    return v.futures.mark


def order(v: BinanceVenue, **params: Any) -> tuple[int, Any]:
    return call(v, "POST", "/fapi/v1/order", {"symbol": SYM, **params}, signed=True)


def user_stream(v: BinanceVenue, path: str) -> tuple[ClientConnection, list[dict[str, Any]]]:
    """A raw WebSocket on the futures streams at PATH and the list its events (unwrapped) arrive in, once the venue subscribed it."""
    ws = connect(v.futures_ws_url + path)
    got: list[dict[str, Any]] = []

    def read() -> None:
        try:
            for raw in ws:
                msg = json.loads(raw)
                got.append(msg["data"] if "stream" in msg else msg)
        except Exception:  # the socket closed
            pass

    threading.Thread(target=read, daemon=True).start()
    assert v.futures_hub is not None
    wait_for(lambda: any(c.subs for c in list(v.futures_hub.clients.values())), what="the stream subscribed")
    return ws, got


def events(got: list[dict[str, Any]], kind: str, n: int) -> list[dict[str, Any]]:
    """The first N events of KIND the stream received (waiting for them, bounded)."""
    return wait_for(lambda: [e for e in list(got) if e.get("e") == kind][:n] if sum(e.get("e") == kind for e in list(got)) >= n else None,
                    what=f"{n} {kind}")


def node_run(v: BinanceVenue, out: Path, *mode: str) -> dict[str, Any]:
    """futures_node_script.py against V (MODE: `observe` sends no order); what the node saw."""
    env = {**os.environ, "BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET}
    run = subprocess.run([sys.executable, str(HERE / "futures_node_script.py"), v.url.rstrip("/"), v.futures_ws_url, str(out), "45", *mode],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.exists(), run.stderr[-3000:]
    node = json.loads(out.read_text())
    assert node["data_connected"] and node["exec_connected"], run.stderr[-3000:]
    return node


def test_nautilus_usdm_clients_load_the_perpetual_fill_a_market_order_and_see_the_position(tmp_path, monkeypatch):
    v = BinanceVenue(load_node_spec(tmp_path, monkeypatch, run_id="venue-futures-node"), speed=600).start()
    try:
        node = node_run(v, tmp_path / "node.json")
        assert (node["instrument"], node["instrument_type"]) == ("BTCUSDT-PERP.BINANCE", "CryptoPerpetual")
        assert node["quotes"] > 0 and node["bars"] > 0  # bookTicker quotes, closed klines
        assert [f["qty"] for f in node["fills"]] == ["0.010"]  # from ORDER_TRADE_UPDATE: the REST answer said NEW
        px = Decimal(node["fills"][0]["px"])
        assert [(p["side"], p["quantity"], p["avg_px_open"]) for p in node["positions"]] == [("LONG", "0.010", float(px))]
        status, risk = call(v, "GET", "/fapi/v3/positionRisk", {"symbol": SYM}, signed=True)
        assert status == 200 and risk[0]["positionAmt"] == "0.010" and Decimal(risk[0]["entryPrice"]) == px
        fee = px * Decimal("0.010") * contract.TAKER_FEE
        assert Decimal(node["balances"]["USDT"].split()[0]) == Decimal(100000) - fee.quantize(contract.DP)
        # a second node on the same venue trades nothing: its reconciliation brings the position back from the venue (positionRisk
        # names the symbol with a position; allOrders and userTrades its order and fill)
        again = node_run(v, tmp_path / "again.json", "observe")
        assert again["fills"] == [] and [(p["side"], p["quantity"]) for p in again["positions"]] == [("LONG", "0.010")]
    finally:
        v.stop()


def test_rest_answers_decode_with_the_usdm_adapters_own_structs(venue):
    from nautilus_trader.adapters.binance.common.schemas.account import BinanceOrder, BinanceUserTrade
    from nautilus_trader.adapters.binance.common.schemas.market import BinanceDepth, BinanceTime
    from nautilus_trader.adapters.binance.common.schemas.user import BinanceListenKey
    from nautilus_trader.adapters.binance.futures.schemas.account import (BinanceFuturesAccountInfo, BinanceFuturesDualSidePosition,
                                                                          BinanceFuturesLeverage, BinanceFuturesPositionRisk,
                                                                          BinanceFuturesSymbolConfig)
    from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesExchangeInfo, BinanceFuturesMarkFunding
    from nautilus_trader.adapters.binance.futures.schemas.wallet import BinanceFuturesCommissionRate

    def decode(kind: Any, answer: tuple[int, Any]) -> Any:
        assert answer[0] == 200, answer
        return msgspec.json.decode(json.dumps(answer[1]).encode(), type=kind)

    mark = priced(venue)
    info = decode(BinanceFuturesExchangeInfo, call(venue, "GET", "/fapi/v1/exchangeInfo"))
    filters = {f.filterType.value: f for f in info.symbols[0].filters}
    assert (info.symbols[0].contractType, filters["PRICE_FILTER"].tickSize, filters["LOT_SIZE"].stepSize) == ("PERPETUAL", "0.10", "0.001")
    assert decode(BinanceTime, call(venue, "GET", "/fapi/v1/time")).serverTime > 0
    book = decode(BinanceDepth, call(venue, "GET", "/fapi/v1/depth", {"symbol": SYM, "limit": 5}))
    assert Decimal(book.asks[0][0]) == mark + contract.TICK and Decimal(book.bids[0][0]) == mark - contract.TICK
    assert Decimal(decode(BinanceFuturesMarkFunding, call(venue, "GET", "/fapi/v1/premiumIndex", {"symbol": SYM})).markPrice) == mark
    assert decode(BinanceFuturesCommissionRate, call(venue, "GET", "/fapi/v1/commissionRate", {"symbol": SYM}, signed=True)).takerCommissionRate == "0.0005"
    assert decode(BinanceFuturesDualSidePosition, call(venue, "GET", "/fapi/v1/positionSide/dual", signed=True)).dualSidePosition is False
    assert decode(BinanceFuturesLeverage, call(venue, "POST", "/fapi/v1/leverage", {"symbol": SYM, "leverage": 10}, signed=True)).leverage == 10
    assert decode(list[BinanceFuturesSymbolConfig], call(venue, "GET", "/fapi/v1/symbolConfig", signed=True))[0].leverage == 10
    placed = decode(BinanceOrder, order(venue, side="SELL", type="MARKET", quantity="0.010", newClientOrderId="c-1"))
    assert (placed.status.value, placed.clientOrderId, placed.executedQty) == ("NEW", "c-1", "0.000")
    filled = decode(BinanceOrder, call(venue, "GET", "/fapi/v1/order", {"symbol": SYM, "orderId": placed.orderId}, signed=True))
    assert (filled.status.value, filled.executedQty, Decimal(filled.avgPrice or "0")) == ("FILLED", "0.010", mark - contract.TICK)
    trades = decode(list[BinanceUserTrade], call(venue, "GET", "/fapi/v1/userTrades", {"symbol": SYM}, signed=True))
    assert [(t.qty, t.side.value, t.realizedPnl) for t in trades] == [("0.010", "SELL", "0.00000000")]
    risk = decode(list[BinanceFuturesPositionRisk], call(venue, "GET", "/fapi/v3/positionRisk", signed=True))
    assert [(r.positionSide.value, r.positionAmt, Decimal(r.entryPrice)) for r in risk] == [("BOTH", "-0.010", mark - contract.TICK)]
    account = decode(BinanceFuturesAccountInfo, call(venue, "GET", "/fapi/v2/account", signed=True))
    wallet = Decimal(100000) - ((mark - contract.TICK) * Decimal("0.010") * contract.TAKER_FEE).quantize(contract.DP)
    assert Decimal(account.assets[0].walletBalance) == wallet and account.canTrade
    assert decode(BinanceListenKey, call(venue, "POST", "/fapi/v1/listenKey")).listenKey


def test_python_binance_walks_the_futures_surface(venue):
    from binance.client import Client

    client = Client(KEY, SECRET, ping=False)
    client.FUTURES_URL = venue.url.rstrip("/") + "/fapi"
    try:
        mark = priced(venue, bars=3)
        assert client.futures_ping() == {} and client.futures_time()["serverTime"] > 0
        assert client.futures_exchange_info()["symbols"][0]["symbol"] == SYM
        assert [len(k) for k in client.futures_klines(symbol=SYM, interval="1m", limit=3)] == [12, 12, 12]
        assert Decimal(client.futures_mark_price(symbol=SYM)["markPrice"]) == mark
        assert Decimal(client.futures_orderbook_ticker(symbol=SYM)["askPrice"]) == mark + contract.TICK
        assert client.futures_change_leverage(symbol=SYM, leverage=5)["leverage"] == 5
        placed = client.futures_create_order(symbol=SYM, side="BUY", type="MARKET", quantity="0.020")  # a form body, signed
        assert placed["status"] == "NEW"
        assert client.futures_get_order(symbol=SYM, orderId=placed["orderId"])["status"] == "FILLED"
        rested = client.futures_create_order(symbol=SYM, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.010",
                                             price=str(mark + 100))
        assert [o["orderId"] for o in client.futures_get_open_orders(symbol=SYM)] == [rested["orderId"]]
        assert client.futures_cancel_order(symbol=SYM, orderId=rested["orderId"])["status"] == "CANCELED"
        assert [o["status"] for o in client.futures_get_all_orders(symbol=SYM)] == ["FILLED", "CANCELED"]
        position = client.futures_position_information(symbol=SYM)[0]
        assert (position["positionAmt"], position["leverage"]) == ("0.020", "5")
        assert Decimal(position["unRealizedProfit"]) == Decimal("0.020") * (mark - (mark + contract.TICK))
        assert client.futures_account_balance()[0]["asset"] == "USDT"
        assert len(client.futures_account_trades(symbol=SYM)) == 1
        income = client.futures_income_history(symbol=SYM)  # the opening fill's commission; nothing realized, no funding yet
        assert [(r["incomeType"], r["asset"]) for r in income] == [("COMMISSION", "USDT")] and Decimal(income[0]["income"]) < 0
        assert client.futures_income_history(symbol=SYM, incomeType="FUNDING_FEE") == []
        key = client.futures_stream_get_listen_key()
        assert client.futures_stream_keepalive(key) == {"listenKey": key}
        assert client.futures_stream_close(key) == {}
    finally:
        client.session.close()


def test_market_streams_carry_mark_price_agg_trades_book_ticker_and_depth_with_pu(venue):
    from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesMarkPriceMsg

    streams = "/".join(f"{SYM.lower()}@{s}" for s in ("markPrice@1s", "aggTrade", "bookTicker", "depth@100ms"))
    with connect(venue.futures_ws_url + f"/stream?streams={streams}") as ws:
        venue.exchange.start_replay()
        got: dict[str, list[dict[str, Any]]] = {}
        while sum(len(x) for x in got.values()) < 40:
            msg = json.loads(ws.recv(timeout=5))
            got.setdefault(msg["stream"].split("@", 1)[1], []).append(msg)
    mark = msgspec.json.decode(json.dumps(got["markPrice@1s"][0]).encode(), type=BinanceFuturesMarkPriceMsg)
    assert mark.data.e == "markPriceUpdate" and Decimal(mark.data.p) % contract.TICK == 0
    depth = [m["data"] for m in got["depth@100ms"]]
    assert all(later["pu"] == earlier["u"] for earlier, later in zip(depth[:-1], depth[1:], strict=True))  # Binance's futures continuity rule
    assert {m["data"]["e"] for m in got["aggTrade"]} == {"aggTrade"} and {m["data"]["e"] for m in got["bookTicker"]} == {"bookTicker"}


def test_user_stream_order_and_account_updates_funding_and_listen_key_expiry(venue):
    mark = priced(venue)
    key = call(venue, "POST", "/fapi/v1/listenKey")[1]["listenKey"]
    ws, got = user_stream(venue, f"/ws?listenKey={key}")  # NautilusTrader 1.231's URL form
    try:
        assert order(venue, side="BUY", type="MARKET", quantity="0.010")[0] == 200
        updates = events(got, "ORDER_TRADE_UPDATE", 2)
        assert [(u["o"]["x"], u["o"]["X"]) for u in updates] == [("NEW", "NEW"), ("TRADE", "FILLED")]
        assert updates[1]["o"]["ps"] == "BOTH" and Decimal(updates[1]["o"]["L"]) == mark + contract.TICK and updates[1]["o"]["N"] == "USDT"
        account = events(got, "ACCOUNT_UPDATE", 1)[0]["a"]
        assert account["m"] == "ORDER" and account["P"][0]["pa"] == "0.010" and Decimal(account["P"][0]["ep"]) == mark + contract.TICK
        fee = venue.futures.fund()
        assert fee == (Decimal("0.010") * mark * contract.FUNDING_RATE).quantize(contract.DP)
        funding = events(got, "ACCOUNT_UPDATE", 2)[1]["a"]
        assert (funding["m"], Decimal(funding["B"][0]["bc"]), funding["P"]) == ("FUNDING_FEE", -fee, [])
        assert venue.futures_hub is not None and venue.futures_hub.expire_listen_keys() == [key]
        assert events(got, "listenKeyExpired", 1)[0]["listenKey"] == key
        assert call(venue, "PUT", "/fapi/v1/listenKey", {"listenKey": key})[1]["code"] == -1125
    finally:
        ws.close()


def test_a_sell_through_zero_flips_the_position_and_realizes_the_long(venue):
    mark = priced(venue)
    order(venue, side="BUY", type="MARKET", quantity="0.010")
    order(venue, side="BUY", type="MARKET", quantity="0.010")
    assert order(venue, side="SELL", type="MARKET", quantity="0.030")[0] == 200
    risk = call(venue, "GET", "/fapi/v3/positionRisk", {"symbol": SYM}, signed=True)[1][0]
    assert (risk["positionAmt"], Decimal(risk["entryPrice"])) == ("-0.010", mark - contract.TICK)
    last = call(venue, "GET", "/fapi/v1/userTrades", {"symbol": SYM}, signed=True)[1][-1]
    assert Decimal(last["realizedPnl"]) == Decimal("0.020") * ((mark - contract.TICK) - (mark + contract.TICK))
    assert order(venue, side="BUY", type="MARKET", quantity="0.010", reduceOnly="true")[0] == 200
    assert call(venue, "GET", "/fapi/v3/positionRisk", signed=True)[1] == []  # flat, nothing open: V3 lists nothing


@pytest.mark.parametrize("params, code, msg", [
    ({"side": "BUY", "type": "MARKET", "quantity": "0.010", "positionSide": "LONG"}, -4061,
     "Order's position side does not match user's setting."),
    ({"side": "BUY", "type": "STOP_MARKET", "quantity": "0.010", "stopPrice": "50000"}, -4120,
     "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."),
    ({"side": "BUY", "type": "MARKET", "quantity": "0.001"}, -4164,
     "Order's notional must be no smaller than 100 (unless you choose reduce only)."),
    ({"side": "SELL", "type": "MARKET", "quantity": "0.010", "reduceOnly": "true"}, -2022, "ReduceOnly Order is rejected."),
    ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010", "price": "40000.05"}, -4014,
     "Price not increased by tick size."),
    ({"side": "BUY", "type": "MARKET", "quantity": "0.0101"}, -1111, "Precision is over the maximum defined for this asset."),
    ({"side": "BUY", "type": "MARKET", "quantity": "500"}, -4005, "Quantity greater than max quantity."),
    ({"side": "BUY", "type": "MARKET", "quantity": "100.000"}, -2019, "Margin is insufficient."),
    ({"symbol": "DOGEUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}, -1121, "Invalid symbol."),
])
def test_orders_binance_refuses_get_its_code_and_change_nothing(venue, params, code, msg):
    priced(venue)
    status, body = order(venue, **params)
    assert (status, body) == (400, {"code": code, "msg": msg})
    assert venue.futures.orders == [] and venue.futures.amt == 0


def test_unsigned_unknown_key_hedge_mode_and_oversized_requests_are_refused(venue):
    assert call(venue, "GET", "/fapi/v2/account", key=None) == (401, {"code": -2014, "msg": "API-key format invalid."})
    assert call(venue, "GET", "/fapi/v2/account", signed=True, key="other")[1]["code"] == -2015
    assert call(venue, "GET", "/fapi/v2/account")[1]["code"] == -1102  # the key, but no signature
    assert call(venue, "GET", "/fapi/v2/account", signed=True, secret="wrong")[1]["code"] == -1022
    assert call(venue, "GET", "/fapi/v1/depth", {"symbol": "BTCUSD_PERP"})[1] == {"code": -1121, "msg": "Invalid symbol."}
    assert call(venue, "POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"}, signed=True)[1] == \
        {"code": -4059, "msg": "No need to change position side."}
    status, body = call(venue, "POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"}, signed=True)
    assert status == 400 and body["code"] == -1000 and "hedge mode" in body["msg"]
    assert call(venue, "GET", "/fapi/v1/positionSide/dual", signed=True)[1] == {"dualSidePosition": False}
    conn = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=5)
    try:
        conn.request("POST", "/fapi/v1/order", body=b"a" * 20000, headers={"X-MBX-APIKEY": KEY,
                                                                          "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        assert resp.status == 413 and json.loads(resp.read())["code"] == -1101
    finally:
        conn.close()
    assert venue.futures.orders == []


def test_spot_and_futures_share_the_port_but_not_the_account(venue):
    priced(venue)
    assert order(venue, side="BUY", type="MARKET", quantity="0.010")[0] == 200
    spot = call(venue, "GET", "/api/v3/account", signed=True)[1]
    assert {b["asset"]: b["free"] for b in spot["balances"]}["USDT"] == "100000.00000000"  # Spot's wallet untouched
    assert call(venue, "GET", "/api/v3/myTrades", {"symbol": SYM}, signed=True)[1] == []


def test_the_user_stream_expiry_fault_ends_the_futures_user_stream_before_its_scheduled_event(venue):
    priced(venue)
    key = call(venue, "POST", "/fapi/v1/listenKey")[1]["listenKey"]
    ws, got = user_stream(venue, f"/stream?streams={key}")  # NautilusTrader 1.221's URL form
    try:
        venue.set_faults({"user_stream_expiry": faults.parse_faults(["user_stream_expiry=2"])["user_stream_expiry"]})
        assert order(venue, side="BUY", type="MARKET", quantity="0.010")[0] == 200  # NEW (event 1), then the stream ends
        assert events(got, "listenKeyExpired", 1)[0]["listenKey"] == key
        assert [e["o"]["x"] for e in got if e.get("e") == "ORDER_TRADE_UPDATE"] == ["NEW"]
        assert call(venue, "PUT", "/fapi/v1/listenKey", {"listenKey": key})[1]["code"] == -1125
        assert venue.futures.amt == Decimal("0.010")  # the fill happened; only its report was lost with the stream
        assert venue.faults.user_streams_ended[-1]["listen_keys"] == 1
    finally:
        ws.close()


def test_income_history_refuses_an_unknown_income_type_with_binances_code(venue):
    status, body = call(venue, "GET", "/fapi/v1/income", {"incomeType": "LOTTERY"}, signed=True)
    assert (status, body) == (400, {"code": -1130, "msg": "Data sent for parameter 'incomeType' is not valid."})


def admin(v: BinanceVenue, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """The lab's admin endpoint PATH with a JSON BODY: (status, answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(v.url.rstrip("/").rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_the_admin_endpoints_show_the_account_move_it_back_in_time_and_fill_its_resting_orders(venue):
    mark = priced(venue)
    assert order(venue, side="BUY", type="MARKET", quantity="0.010")[0] == 200
    assert order(venue, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010", price=str(mark - 100))[0] == 200
    status, shown = admin(venue, "GET", "/admin/futures")
    assert status == 200 and shown["position"]["positionAmt"] == "0.010" and len(shown["orders"]) == 2 and len(shown["trades"]) == 1
    before = {t["id"]: t["time"] for t in shown["trades"]}
    status, moved = admin(venue, "POST", "/admin/futures/age", {"hours": 48})
    assert status == 200 and moved == {"moved": 4, "hours": 48}  # two orders, one trade and its commission
    after = call(venue, "GET", "/fapi/v1/userTrades", {"symbol": SYM}, signed=True)[1]
    assert [t["time"] for t in after] == [before[t["id"]] - 48 * 3_600_000 for t in after]
    for bad in ({"hours": 0}, {"hours": "48"}, {"hours": True}, {"hours": 9000}, {"days": 2}, [48]):
        status, body = admin(venue, "POST", "/admin/futures/age", bad)
        assert status == 400 and "expected {\"hours\": H}" in body["msg"] and "\n" not in body["msg"]
    assert admin(venue, "GET", "/admin/futures/age")[0] == 405
    status, filled = admin(venue, "POST", "/admin/fill", {"account": "usdt_futures"})
    assert status == 200 and len(filled["filled"]) == 1 and venue.futures.amt == Decimal("0.020")
    assert admin(venue, "POST", "/admin/fill", {"account": "coin_futures"})[0] == 400
