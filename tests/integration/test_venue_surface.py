"""Issue 25 item 4: the rest of the Binance Spot surface a strategy uses, over real HTTP on 127.0.0.1, signed as
tests/integration/test_binance_venue.py signs: two symbols, exchange filters and strict parameters (each refusal with
Binance's code and message and no state change), every order type's lifecycle, a partial fill, the public statistics."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from websockets.sync.client import connect

from opslab import market
from opslab.venue.exchange import LISTINGS
from opslab import spec
from opslab.datasets import store
from opslab.venue.server import BinanceVenue
from integration.test_binance_venue import call, wait_for  # tests/ is on the path (pyproject)
from venue_spec import KEY, SECRET, spec_text

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SYM = market.SYMBOL
OTHER = next(iter(market.LISTED))


@pytest.fixture
def venue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The node venue of test_binance_venue with a deeper account (10 BTC, 1,000,000 USDT): enough to walk the book's levels."""
    monkeypatch.setenv("TC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("TC_TEST_BINANCE_KEY", KEY)
    monkeypatch.setenv("TC_TEST_BINANCE_SECRET", SECRET)
    path = tmp_path / "node.yaml"
    path.write_text(spec_text().replace("engine: {kind: node, ", 'engine: {kind: node, starting_balances: {USDT: "1000000", BTC: "10"}, '))
    loaded = spec.load(path)
    store.prepare(store.DatasetParams.from_spec(loaded.data))
    v = BinanceVenue(loaded, speed=6000, binance_api="2025").start()  # 2025: a test reads the listenKey stream
    yield v
    v.stop()


def order(v: Any, **params: Any) -> tuple[int, Any]:
    return call(v, "POST", "/api/v3/order", {"symbol": SYM, **params}, signed=True)


def started(v: Any) -> Decimal:
    """The last replayed price, with the replay then stopped: the book holds still while the test trades against it."""
    v.exchange.start_replay()
    last = wait_for(lambda: v.exchange.last_price, what="a replayed price")
    v.exchange.stop()
    return v.exchange.last_price or last


def state_of(v: Any) -> tuple[Any, ...]:
    s = v.exchange.snapshot()
    return s["balances"], s["orders"], s["trades"], s["next_order_id"]


def test_the_second_symbols_fixture_agrees_with_the_listing_and_builds_in_nautilus():
    from nautilus_trader.model.instruments import CurrencyPair

    doc = json.loads((ROOT / "fixtures" / "instruments" / f"{OTHER.lower()}-binance-spot.json").read_text())
    pair = CurrencyPair.from_dict(doc)
    listing = LISTINGS[OTHER]
    assert (doc["raw_symbol"], doc["base_currency"], doc["quote_currency"]) == (OTHER, listing.base, listing.quote)
    assert (Decimal(doc["price_increment"]), Decimal(doc["size_increment"])) == (listing.tick, listing.step)
    assert (Decimal(doc["min_quantity"]), Decimal(doc["max_quantity"])) == (listing.min_qty, listing.max_qty)
    assert (Decimal(doc["min_price"]), Decimal(doc["max_price"])) == (listing.min_price, listing.max_price)
    assert Decimal(doc["min_notional"].split()[0]) == listing.min_notional and str(pair.id) == f"{OTHER}.{market.VENUE}"


def test_exchange_info_lists_two_symbols_and_decodes_with_the_adapters_struct(venue):
    from nautilus_trader.adapters.binance.spot.schemas.market import BinanceSpotExchangeInfo

    status, info = call(venue, "GET", "/api/v3/exchangeInfo")
    assert status == 200 and [s["symbol"] for s in info["symbols"]] == [SYM, OTHER]
    decoded = msgspec.json.decode(json.dumps(info).encode(), type=BinanceSpotExchangeInfo)
    eth = {f.filterType.value: f for f in decoded.symbols[1].filters}
    assert (eth["PRICE_FILTER"].tickSize, eth["LOT_SIZE"].stepSize, eth["NOTIONAL"].minNotional) == ("0.01", "0.0001", "5.00")
    assert [s["symbol"] for s in call(venue, "GET", "/api/v3/exchangeInfo", {"symbols": json.dumps([OTHER])})[1]["symbols"]] == [OTHER]
    assert call(venue, "GET", "/api/v3/exchangeInfo", {"symbol": "XRPUSDT"})[1]["code"] == -1121
    assert call(venue, "GET", "/api/v3/exchangeInfo", {"symbols": "BTCUSDT"})[1]["code"] == -1100
    assert "STOP_LOSS_LIMIT" in info["symbols"][0]["orderTypes"]


def test_the_second_symbol_has_a_static_book_and_trades_there(venue):
    book = call(venue, "GET", "/api/v3/depth", {"symbol": OTHER, "limit": 5})[1]
    ref = Decimal(market.LISTED[OTHER]["reference_price"])
    assert book["asks"][0] == [str(ref + Decimal("0.01")), "1.0000"] and book["bids"][4] == [str(ref - Decimal("0.05")), "5.0000"]
    assert call(venue, "GET", "/api/v3/depth", {"symbol": OTHER, "limit": 5})[1] == book  # deterministic
    assert call(venue, "GET", "/api/v3/klines", {"symbol": OTHER, "interval": "1m"})[1] == []
    status, placed = call(venue, "POST", "/api/v3/order", {"symbol": OTHER, "side": "BUY", "type": "MARKET", "quantity": "0.5000"}, signed=True)
    assert status == 200 and placed["status"] == "FILLED" and placed["fills"][0]["price"] == str(ref + Decimal("0.01"))
    assert placed["origQty"] == "0.5000" and placed["symbol"] == OTHER
    balances = {b["asset"]: b["free"] for b in call(venue, "GET", "/api/v3/account", signed=True)[1]["balances"]}
    assert balances["ETH"] == "0.50000000"
    trades = call(venue, "GET", "/api/v3/trades", {"symbol": OTHER})[1]
    assert [(t["price"], t["qty"]) for t in trades] == [(str(ref + Decimal("0.01")), "0.5000")]
    assert [t["symbol"] for t in call(venue, "GET", "/api/v3/myTrades", {"symbol": OTHER}, signed=True)[1]] == [OTHER]
    assert call(venue, "GET", "/api/v3/myTrades", {"symbol": SYM}, signed=True)[1] == []
    assert call(venue, "GET", "/api/v3/order", {"symbol": SYM, "orderId": placed["orderId"]}, signed=True)[1]["code"] == -2013


@pytest.mark.parametrize("params, code, msg", [
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000", "price": "100.001"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000", "price": "2000000.00"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000", "price": "0.00"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"type": "MARKET", "quantity": "0.0000001"}, -1013, "Filter failure: LOT_SIZE"),
    ({"type": "MARKET", "quantity": "9001"}, -1013, "Filter failure: LOT_SIZE"),
    ({"type": "MARKET", "quantity": "0"}, -1013, "Filter failure: LOT_SIZE"),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.000010", "price": "100.00"}, -1013, "Filter failure: NOTIONAL"),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "50.000000", "price": "100000.00"}, -2010,
     "Account has insufficient balance for requested action."),
    ({"side": "SELL", "type": "MARKET", "quantity": "20.000000"}, -2010, "Account has insufficient balance for requested action."),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000", "price": "NaN"}, -1100,
     "Illegal characters found in parameter 'price'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"type": "MARKET", "quantity": "Infinity"}, -1100,
     "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"type": "MARKET", "quantity": "1e30"}, -1100,
     "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"type": "MARKET", "quantity": "-1"}, -1100,
     "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"type": "MARKET", "quantity": "1" * 25}, -1100,
     "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000", "price": "99999999999999999999"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"type": "MARKET", "quantity": "0.0100000001"}, -1111, "Parameter 'quantity' has too much precision."),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010000"}, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
    ({"type": "LIMIT", "quantity": "0.010000", "price": "100.00"}, -1102,
     "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
    ({"type": "STOP_LOSS", "quantity": "0.010000"}, -1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."),
    ({"type": "LIMIT", "timeInForce": "GTD", "quantity": "0.010000", "price": "100.00"}, -1115, "Invalid timeInForce."),
    ({"type": "LIMIT_MAKER", "timeInForce": "GTC", "quantity": "0.010000", "price": "100.00"}, -1106,
     "Parameter 'timeInForce' sent when not required."),
    ({"type": "TRAILING", "quantity": "0.010000"}, -1116, "Invalid orderType."),
    ({"side": "HOLD", "type": "MARKET", "quantity": "0.010000"}, -1117, "Invalid side."),
])
def test_refusals_have_binances_code_and_message_and_change_nothing(venue, params, code, msg):
    started(venue)
    before = state_of(venue)
    for path in ("/api/v3/order", "/api/v3/order/test"):
        status, body = call(venue, "POST", path, {"symbol": SYM, "side": "BUY", **params}, signed=True)
        assert (status, body) == (400, {"code": code, "msg": msg}), path
    assert state_of(venue) == before


def test_order_test_validates_and_places_nothing(venue):
    started(venue)
    before = state_of(venue)
    assert call(venue, "POST", "/api/v3/order/test", {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.010000"}, signed=True) == (200, {})
    assert state_of(venue) == before
    assert call(venue, "POST", "/api/v3/order/test", {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.01"}, key=None)[0] == 401


def test_limit_maker_rests_or_is_rejected_when_it_would_take(venue):
    last = started(venue)
    before = state_of(venue)
    status, body = order(venue, side="BUY", type="LIMIT_MAKER", quantity="0.010000", price=str(last + 100))
    assert (status, body) == (400, {"code": -2010, "msg": "Order would immediately match and take."}) and state_of(venue) == before
    status, body = order(venue, side="BUY", type="LIMIT_MAKER", quantity="0.010000", price=str(last - 1000))
    assert status == 200 and body["status"] == "NEW" and body["fills"] == [] and body["type"] == "LIMIT_MAKER"
    assert call(venue, "DELETE", "/api/v3/order", {"symbol": SYM, "orderId": body["orderId"]}, signed=True)[1]["status"] == "CANCELED"
    assert venue.exchange.snapshot()["balances"]["USDT"]["locked"] == "0.00000000"


def test_time_in_force_ioc_and_fok_against_the_books_depth(venue):
    last = started(venue)
    ask1, ask2 = last + Decimal("0.01"), last + Decimal("0.02")
    ioc = order(venue, side="BUY", type="LIMIT", timeInForce="IOC", quantity="2.000000", price=str(ask1))[1]
    fok = order(venue, side="BUY", type="LIMIT", timeInForce="FOK", quantity="2.000000", price=str(ask1))[1]
    fok_ok = order(venue, side="BUY", type="LIMIT", timeInForce="FOK", quantity="2.000000", price=str(ask2))[1]
    locked = venue.exchange.snapshot()["balances"]["USDT"]["locked"]
    assert (ioc["status"], ioc["executedQty"], [f["qty"] for f in ioc["fills"]]) == ("EXPIRED", "1.000000", ["1.000000"])
    assert (fok["status"], fok["executedQty"], fok["fills"]) == ("EXPIRED", "0.000000", [])
    assert (fok_ok["status"], [(f["price"], f["qty"]) for f in fok_ok["fills"]]) == ("FILLED", [(str(ask1), "1.000000"), (str(ask2), "1.000000")])
    assert locked == "0.00000000"


def test_a_market_order_larger_than_the_touch_fills_in_parts_reported_on_the_user_stream(venue):
    listen_key = call(venue, "POST", "/api/v3/userDataStream")[1]["listenKey"]
    last = started(venue)
    with connect(venue.ws_url + f"/stream?streams={listen_key}") as user:
        status, placed = order(venue, side="BUY", type="MARKET", quantity="2.500000", newClientOrderId="O-part")
        reports = []
        while len(reports) < 3:
            data = json.loads(user.recv(timeout=3))["data"]
            if data["e"] == "executionReport":
                reports.append(data)
    assert status == 200 and placed["status"] == "FILLED" and placed["executedQty"] == "2.500000"
    assert [(f["price"], f["qty"]) for f in placed["fills"]] == [(str(last + Decimal("0.01")), "1.000000"), (str(last + Decimal("0.02")), "1.500000")]
    assert [(r["x"], r["X"], r["l"], r["z"]) for r in reports] == [
        ("NEW", "NEW", "0.000000", "0.000000"), ("TRADE", "PARTIALLY_FILLED", "1.000000", "1.000000"),
        ("TRADE", "FILLED", "1.500000", "2.500000")]
    from nautilus_trader.adapters.binance.spot.schemas.user import BinanceSpotOrderUpdateWrapper

    for r in reports:
        msgspec.json.decode(json.dumps({"stream": listen_key, "data": r}).encode(), type=BinanceSpotOrderUpdateWrapper)
    assert Decimal(placed["cummulativeQuoteQty"]) == (last + Decimal("0.01")) + (last + Decimal("0.02")) * Decimal("1.5")


def test_a_resting_limit_partly_taken_rests_its_remainder_and_fills_it_as_maker(venue):
    last = started(venue)
    body = order(venue, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1.500000", price=str(last + Decimal("0.01")))[1]
    usdt = venue.exchange.snapshot()["balances"]["USDT"]
    assert (body["status"], body["executedQty"]) == ("PARTIALLY_FILLED", "1.000000")
    rest_lock = (Decimal("0.5") * (last + Decimal("0.01")) * Decimal("1.001")).quantize(Decimal("0.00000001"))
    assert Decimal(usdt["locked"]) == rest_lock
    assert [o["orderId"] for o in call(venue, "GET", "/api/v3/openOrders", {"symbol": SYM}, signed=True)[1]] == [body["orderId"]]
    wait_for(lambda: call(venue, "GET", "/api/v3/order", {"symbol": SYM, "orderId": body["orderId"]}, signed=True)[1]["status"] == "FILLED"
             or venue.fill_open_orders(), what="the remainder filled")
    final = call(venue, "GET", "/api/v3/order", {"symbol": SYM, "orderId": body["orderId"]}, signed=True)[1]
    assert (final["status"], final["executedQty"]) == ("FILLED", "1.500000")
    assert venue.exchange.snapshot()["balances"]["USDT"]["locked"] == "0.00000000"


@pytest.mark.parametrize("type_, side, offset, limit", [
    ("STOP_LOSS", "SELL", -1, None), ("STOP_LOSS_LIMIT", "SELL", -1, -2), ("TAKE_PROFIT", "SELL", +1, None),
    ("TAKE_PROFIT_LIMIT", "SELL", +1, +1), ("STOP_LOSS", "BUY", +1, None), ("TAKE_PROFIT_LIMIT", "BUY", -1, -1),
])
def test_stop_and_take_profit_orders_wait_for_the_trade_price_then_execute(venue, type_, side, offset, limit):
    """Placed away from the last print, they hold their funds and are not working; a replayed print that reaches
    stopPrice starts them (the MARKET kinds take the book, the LIMIT kinds take or rest at their price)."""
    ex = venue.exchange
    last = started(venue)
    stop = last + offset * Decimal("0.02")
    params = {"side": side, "type": type_, "quantity": "0.010000", "stopPrice": str(stop)}
    if limit is not None:
        params |= {"price": str(last + limit * Decimal("0.02")), "timeInForce": "GTC"}
    now = order(venue, **{**params, "stopPrice": str(last - offset * Decimal("0.02"))})
    assert now == (400, {"code": -2010, "msg": "Stop price would trigger immediately."})
    status, body = order(venue, **params)
    assert status == 200 and (body["status"], body["isWorking"], body["stopPrice"]) == ("NEW", False, str(stop))
    held = ex.snapshot()["balances"]["BTC" if side == "SELL" else "USDT"]["locked"]
    assert Decimal(held) > 0
    ex._match(stop)  # the next print at the stop price, as the replay gives it
    got = ex.order(body["orderId"], None, SYM)
    assert got["isWorking"] or got["status"] == "FILLED"
    assert got["status"] in ("FILLED", "NEW")
    if got["status"] == "NEW":  # a limit kind resting at its price: cancel releases what it holds
        call(venue, "DELETE", "/api/v3/order", {"symbol": SYM, "orderId": body["orderId"]}, signed=True)
    assert ex.snapshot()["balances"]["BTC"]["locked"] == "0.00000000" and ex.snapshot()["balances"]["USDT"]["locked"] == "0.00000000"


def test_public_statistics_have_binances_shapes_per_symbol_and_for_several(venue):
    venue.exchange.start_replay()  # eight prints, then the replay stopped (started() stops it at the first: too early here)
    wait_for(lambda: len(venue.exchange.prints[SYM]) >= 8, what="some prints")
    venue.exchange.stop()
    t24 = call(venue, "GET", "/api/v3/ticker/24hr", {"symbol": SYM})[1]
    assert set(t24) == {"symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice", "lastPrice", "lastQty", "bidPrice",
                        "bidQty", "askPrice", "askQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume", "openTime", "closeTime",
                        "firstId", "lastId", "count"}
    assert Decimal(t24["lowPrice"]) <= Decimal(t24["lastPrice"]) <= Decimal(t24["highPrice"])
    both = call(venue, "GET", "/api/v3/ticker/24hr", {"symbols": json.dumps([SYM, OTHER])})[1]
    assert [t["symbol"] for t in both] == [SYM, OTHER]
    assert [t["symbol"] for t in call(venue, "GET", "/api/v3/ticker/price")[1]] == [SYM, OTHER]
    price = call(venue, "GET", "/api/v3/ticker/price", {"symbol": OTHER})[1]
    assert price == {"symbol": OTHER, "price": market.LISTED[OTHER]["reference_price"]}
    book = call(venue, "GET", "/api/v3/ticker/bookTicker", {"symbol": SYM})[1]
    assert set(book) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"} and Decimal(book["bidPrice"]) < Decimal(book["askPrice"])
    avg = call(venue, "GET", "/api/v3/avgPrice", {"symbol": SYM})[1]
    assert set(avg) == {"mins", "price", "closeTime"} and avg["mins"] == 5 and Decimal(avg["price"]) > 0
    trades = call(venue, "GET", "/api/v3/trades", {"symbol": SYM, "limit": 3})[1]
    assert len(trades) == 3 and set(trades[0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}
    assert [t["id"] for t in trades] == list(range(trades[0]["id"], trades[0]["id"] + 3))
    agg = call(venue, "GET", "/api/v3/aggTrades", {"symbol": SYM, "fromId": trades[0]["id"], "limit": 2})[1]
    assert [(a["a"], a["p"], a["q"], a["f"], a["l"]) for a in agg] == [(t["id"], t["price"], t["qty"], t["id"], t["id"]) for t in trades[:2]]
    from nautilus_trader.adapters.binance.common.schemas.market import BinanceAggTrade, BinanceTicker24hr, BinanceTrade

    msgspec.json.decode(json.dumps(t24).encode(), type=BinanceTicker24hr)
    msgspec.json.decode(json.dumps(trades).encode(), type=list[BinanceTrade])
    msgspec.json.decode(json.dumps(agg).encode(), type=list[BinanceAggTrade])
    for path in ("/api/v3/ticker/24hr", "/api/v3/ticker/price", "/api/v3/ticker/bookTicker", "/api/v3/avgPrice", "/api/v3/trades", "/api/v3/aggTrades"):
        assert call(venue, "GET", path, {"symbol": "XRPUSDT"})[1] == {"code": -1121, "msg": "Invalid symbol."}
    assert call(venue, "GET", "/api/v3/avgPrice")[1]["code"] == -1102
