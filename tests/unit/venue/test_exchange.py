"""The venue's order parameters are Binance's strict enums and decimals: anything else is refused with
Binance's error code and changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from opslab.venue import exchange


@pytest.fixture
def venue():
    """An in-memory exchange (nothing persisted) with no bars replayed yet."""
    return exchange.Exchange("t", "d", [], {"USDT": "1000"}, 1.0, None, lambda *a: None, dict)


@pytest.mark.parametrize("tif", ["XYZ", "gtc", "", "GTX", "GTC "])
def test_an_unknown_time_in_force_is_refused_with_1115(venue, tif):
    before = repr(venue.state)
    with pytest.raises(exchange.VenueError) as err:
        venue.place("BUY", "LIMIT", "0.001", "42000.00", tif, None)
    assert (err.value.status, err.value.code, err.value.msg) == (400, -1115, "Invalid timeInForce.")
    assert repr(venue.state) == before


def test_a_known_time_in_force_passes_the_enum_check(venue):
    for tif in exchange.TIFS:  # refused later for another reason (a LOT_SIZE), never as an invalid timeInForce
        with pytest.raises(exchange.VenueError) as err:
            venue.place("BUY", "LIMIT", "0.00000001", "42000.00", tif, None)
        assert err.value.code == -1013


@pytest.mark.parametrize("quantity, code", [("NaN", -1100), ("Infinity", -1100), ("-1", -1100), ("1e30", -1100),
                                             ("1000000000000000000000000000000", -1100), ("99999999999999999999", -1013), ("0.000000001", -1111)])
def test_non_finite_or_huge_quantities_are_refused(venue, quantity, code):
    before = repr(venue.state)
    with pytest.raises(exchange.VenueError) as err:
        venue.place("BUY", "LIMIT", quantity, "42000.00", "GTC", None)
    assert err.value.code == code and repr(venue.state) == before


def _replayed(symbol: str, interval: str, n: int) -> tuple[exchange.Exchange, list[tuple[str, dict]]]:
    """An in-memory exchange replaying N bars of SYMBOL at INTERVAL, every bar already streamed (publish recorded)."""
    sent: list[tuple[str, dict]] = []
    bars = [(f"t{i}", "2300.00", "2301.00", "2299.00", "2300.50", "8.0") for i in range(n)]
    venue = exchange.Exchange("t", "d", bars, {"USDT": "100000", "ETH": "1"}, 1.0, None, lambda s, d: sent.append((s, d)), dict,
                              symbol=symbol, interval=interval)
    with venue.lock:
        for bar in bars:
            for point in exchange.price_points(bar):
                venue._print(point, bar)
            venue._kline(bar)
            venue.state["replay"]["cursor"] += 1
    return venue, sent


def test_a_replay_of_another_symbol_and_interval_streams_it_and_lists_the_lab_symbol_static():
    venue, sent = _replayed("ETHUSDT", "15m", 100)
    streams = {s for s, _ in sent}
    assert streams == {"ethusdt@trade", "ethusdt@depth@100ms", "ethusdt@depth", "ethusdt@bookTicker", "ethusdt@kline_15m"}
    klines = [d["k"] for s, d in sent if s == "ethusdt@kline_15m"]
    assert all(k["i"] == "15m" and k["T"] - k["t"] == 899_999 and k["t"] % 900_000 == 0 for k in klines)
    opens = [k["t"] for k in klines]
    assert [opens[i + 1] - opens[i] for i in range(len(opens) - 1)] == [900_000] * 99
    rows = venue.klines(3)
    assert [r[0] - rows[0][0] for r in rows] == [0, 900_000, 1_800_000] and rows[0][6] - rows[0][0] == 899_999
    assert venue.depth(1)["bids"][0] == ["2300.49", "1.0000"], "the replayed book at ETHUSDT's tick and step"
    assert venue.depth(1, "BTCUSDT")["bids"][0] == ["41999.99", "1.000000"], "BTCUSDT: a static book"
    assert venue.klines(3, "BTCUSDT") == []
    ticker = venue.ticker_24hr("ETHUSDT")  # 24 hours of 15-minute bars: the last 96 of the 100
    assert Decimal(ticker["volume"]) == 96 * Decimal("8.0") and ticker["count"] == 4 * 96
    assert venue.avg_price("ETHUSDT")["price"] == "2300.50000000", "5 minutes of 15-minute bars: the last bar"
    venue.place("BUY", "MARKET", "0.0500", None, None, "c1")  # the replayed symbol is the default, at its last print
    assert [t["price"] for t in venue.my_trades(10)] == ["2300.51"] and venue.my_trades(10, symbol="BTCUSDT") == []


def test_the_lab_replay_is_unchanged_btcusdt_one_minute():
    venue, sent = _replayed("BTCUSDT", "1m", 3)
    assert {s for s, _ in sent} == {"btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@depth", "btcusdt@bookTicker", "btcusdt@kline_1m"}
    assert [d["k"]["T"] - d["k"]["t"] for s, d in sent if s == "btcusdt@kline_1m"] == [59_999] * 3
    assert venue.depth(1)["bids"][0] == ["2300.49", "1.000000"] and venue.depth(1, "ETHUSDT")["bids"][0] == ["2299.99", "1.0000"]
