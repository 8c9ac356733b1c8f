"""The futures account's position math (one-way mode) and what a fill does to the account, in memory: entry price on
add, realized PnL on reduce, a flip through zero, unrealized PnL from the mark, funding, and refusals that change nothing."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from opslab.venue import futures, futures_contract as contract
from opslab.venue.exchange import USER_STREAM, VenueError


def test_adding_to_a_long_averages_the_entry_price_by_quantity():
    amt, entry, realized = contract.apply_fill(D("0.010"), D("40000"), D("0.030"), D("44000"))
    assert (amt, entry, realized) == (D("0.040"), D("43000"), 0)


def test_opening_from_flat_takes_the_fill_price():
    assert contract.apply_fill(D(0), D(0), D("-0.5"), D("100")) == (D("-0.5"), D("100"), 0)


def test_reducing_a_long_realizes_the_closed_part_and_keeps_the_entry():
    assert contract.apply_fill(D("0.040"), D("43000"), D("-0.010"), D("45000")) == (D("0.030"), D("43000"), D("20.000"))


def test_reducing_a_short_at_a_higher_price_realizes_a_loss():
    assert contract.apply_fill(D("-2"), D("100"), D("1"), D("110")) == (D("-1"), D("100"), D("-10"))


def test_closing_in_full_leaves_no_entry():
    assert contract.apply_fill(D("1"), D("100"), D("-1"), D("90")) == (D(0), D(0), D("-10"))


def test_a_fill_through_zero_realizes_the_old_side_and_opens_the_rest_at_the_fill_price():
    amt, entry, realized = contract.apply_fill(D("0.020"), D("42000"), D("-0.050"), D("41000"))
    assert (amt, entry, realized) == (D("-0.030"), D("41000"), D("-20.000"))


@pytest.mark.parametrize("amt, entry, mark, expected", [(D("0.5"), D("100"), D("110"), D("5.0")), (D("-0.5"), D("100"), D("110"), D("-5.0")),
                                                        (D("-0.5"), D("100"), D("90"), D("5.0")), (D(0), D(0), D("90"), D(0))])
def test_unrealized_pnl_follows_the_mark_in_the_positions_direction(amt, entry, mark, expected):
    assert contract.unrealized(amt, entry, mark) == expected


@pytest.fixture
def account() -> tuple[futures.FuturesAccount, list[tuple[str, dict[str, Any]]]]:
    """An account with 10,000 USDT, the market printed once at 42,000.04 (the perpetual's 42,000.00), events recorded."""
    sent: list[tuple[str, dict[str, Any]]] = []
    acc = futures.FuturesAccount(D(10000), lambda stream, data: sent.append((stream, data)), lambda: None, 60.0)
    acc.on_spot("btcusdt@trade", {"p": "42000.04", "q": "0.5", "m": False, "T": 1})
    return acc, sent


def test_a_spot_print_becomes_the_perpetuals_mark_book_and_streams(account):
    acc, sent = account
    assert acc.mark == D("42000.00") and acc.book[1][0] == ["42000.10", "1.000"] and acc.book[0][0] == ["41999.90", "1.000"]
    assert {s for s, _ in sent} >= {"btcusdt@aggTrade", "btcusdt@markPrice", "btcusdt@bookTicker", "btcusdt@depth@100ms"}


def test_a_market_buy_fills_at_the_touch_charges_the_taker_fee_and_opens_a_long(account):
    acc, sent = account
    answer = acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"})
    assert answer["status"] == "NEW" and acc.amt == D("0.010") and acc.entry == D("42000.10")
    assert acc.wallet == D(10000) - D("42000.10") * D("0.010") * contract.TAKER_FEE
    row = acc.position()
    assert (row["positionAmt"], row["entryPrice"], row["unRealizedProfit"]) == ("0.010", "42000.1", "-0.00100000")
    user = [d for s, d in sent if s == USER_STREAM]
    assert [d["e"] for d in user] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]
    assert user[1]["o"]["x"] == "TRADE" and user[2]["a"]["m"] == "ORDER" and user[2]["a"]["P"][0]["pa"] == "0.010"


def test_a_resting_limit_fills_as_maker_when_a_print_reaches_it(account):
    acc, _ = account
    acc.place({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010", "price": "42010.00"})
    assert acc.amt == 0 and acc.open_orders()[0]["status"] == "NEW"
    acc.on_spot("btcusdt@trade", {"p": "42010.02", "q": "0.5", "m": False, "T": 2})
    assert acc.amt == D("-0.010") and acc.entry == D("42010.00") and acc.trades[-1]["maker"] is True
    assert acc.wallet == D(10000) - D("42010.00") * D("0.010") * contract.MAKER_FEE


def test_funding_charges_a_long_and_pays_a_short(account):
    acc, sent = account
    acc.place({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.010"})
    before = acc.wallet
    fee = acc.fund()
    assert fee == D("-0.010") * D("42000.00") * contract.FUNDING_RATE and acc.wallet == before - fee > before
    assert sent[-1][1]["a"]["m"] == "FUNDING_FEE" and sent[-1][1]["a"]["P"] == []


@pytest.mark.parametrize("params, code", [
    ({"side": "BUY", "type": "MARKET", "quantity": "0.010", "positionSide": "SHORT"}, -4061),
    ({"side": "SELL", "type": "MARKET", "quantity": "0.010", "reduceOnly": "true"}, -2022),
    ({"side": "BUY", "type": "LIMIT", "quantity": "0.010", "price": "42000.00"}, -1102),
    ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.010", "price": "42100.00"}, -5022),
    ({"side": "BUY", "type": "MARKET", "quantity": "5.000"}, -2019),
    ({"side": "HOLD", "type": "MARKET", "quantity": "0.010"}, -1117),
])
def test_refused_orders_change_nothing(account, params, code):
    acc, sent = account
    before = (len(sent), acc.wallet, acc.amt, list(acc.orders))
    with pytest.raises(VenueError) as err:
        acc.place({"symbol": "BTCUSDT", **params})
    assert err.value.code == code and (len(sent), acc.wallet, acc.amt, list(acc.orders)) == before


def test_hedge_mode_is_refused_with_binances_codes(account):
    acc, _ = account
    with pytest.raises(VenueError) as err:
        acc.set_dual_side("false")
    assert err.value.code == -4059
    acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"})
    with pytest.raises(VenueError) as err:
        acc.set_dual_side("true")
    assert (err.value.code, err.value.msg) == (-4068, "Position side cannot be changed if there exists position.")


def test_funding_comes_every_funding_interval_of_replayed_bars(account):
    acc, sent = account
    acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"})
    kline = {"E": 1, "k": {"t": 0, "T": 59_999, "s": "BTCUSDT", "i": "1m", "o": "42000.01", "h": "42000.04", "l": "41999.99",
                           "c": "42000.02", "v": "1.000000", "V": "0.500000", "x": True}}
    for _ in range(contract.FUNDING_EVERY_BARS - 1):
        acc.on_spot("btcusdt@kline_1m", kline)
    def funding() -> list[dict[str, Any]]:
        return [d for _, d in sent if d.get("e") == "ACCOUNT_UPDATE" and d["a"]["m"] == "FUNDING_FEE"]

    assert funding() == []
    acc.on_spot("btcusdt@kline_1m", kline)
    assert [d["a"]["B"][0]["bc"] for d in funding()] == ["-0.04200000"]  # a long pays 0.010 x 42,000 x 0.01 %
    assert [d["k"]["o"] for s, d in sent if s == "btcusdt@kline_1m"][:1] == ["42000.00"]  # the perpetual's kline at its tick


def test_a_listen_key_lapses_without_a_keepalive_and_a_new_one_replaces_it(account):
    acc, _ = account
    lapsed: list[int] = []
    acc.on_lapse = lambda: lapsed.append(len(acc.expire_listen_keys()))
    key = acc.new_listen_key()
    assert acc.new_listen_key() == key and acc.keepalive(key) == {"listenKey": key}  # the account's one key, extended
    later = acc.monotonic() + futures.LISTEN_KEY_VALID_S + 1
    acc.monotonic = lambda: later
    acc.on_spot("btcusdt@trade", {"p": "42000.04", "q": "0.5", "m": False, "T": 2})  # the replay notices it
    assert lapsed == [1] and not acc.has_listen_key(key)
    with pytest.raises(VenueError) as err:
        acc.keepalive(key)
    assert err.value.code == -1125 and acc.new_listen_key() != key


def test_fill_or_kill_takes_all_or_nothing_and_ioc_expires_its_rest(account):
    acc, sent = account
    acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "FOK", "quantity": "1.500", "price": "42000.10"})
    assert acc.amt == 0 and acc.orders[-1]["status"] == "EXPIRED"  # only 1.000 at 42,000.10 or better
    acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "quantity": "1.500", "price": "42000.10"})
    assert acc.amt == D("1.000") and (acc.orders[-1]["status"], acc.orders[-1]["executedQty"]) == ("EXPIRED", "1.000")
    with pytest.raises(VenueError) as err:
        acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010", "price": "41000.00",
                   "newClientOrderId": "same"})
        acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010", "price": "41000.00",
                   "newClientOrderId": "same"})
    assert err.value.code == -4116


def test_the_funding_interval_is_the_venues_setting_and_each_payment_is_in_the_income_history():
    sent: list[tuple[str, dict[str, Any]]] = []
    acc = futures.FuturesAccount(D(10000), lambda stream, data: sent.append((stream, data)), lambda: None, 60.0, funding_every_bars=3)
    acc.on_spot("btcusdt@trade", {"p": "42000.04", "q": "0.5", "m": False, "T": 1})
    acc.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"})
    acc.place({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.020"})  # through zero: realizes the long
    kline = {"E": 1, "k": {"t": 0, "T": 59_999, "s": "BTCUSDT", "i": "1m", "o": "42000.01", "h": "42000.04", "l": "41999.99",
                           "c": "42000.02", "v": "1.000000", "V": "0.500000", "x": True}}
    for _ in range(7):
        acc.on_spot("btcusdt@kline_1m", kline)
    funded = acc.income_history("FUNDING_FEE", None, None, 1, 100)
    assert [r["income"] for r in funded] == ["0.04200000", "0.04200000"]  # bars 3 and 6; a short of 0.010 receives 0.01 %
    kinds = [r["incomeType"] for r in acc.income_history(None, None, None, 1, 100)]
    assert kinds == ["COMMISSION", "REALIZED_PNL", "COMMISSION", "FUNDING_FEE", "FUNDING_FEE"]
    every = acc.income_history(None, None, None, 1, 100)
    assert sum(D(r["income"]) for r in every) == acc.wallet - D(10000), "the income history adds up to the wallet's change"
    assert [r["tranId"] for r in acc.income_history(None, None, None, 2, 2)] == [every[2]["tranId"], every[3]["tranId"]]
