"""What the lab trades: the instruments it knows (their ids, symbols and currencies) and the bar intervals it runs,
each named once.

Everything that spells an instrument or a bar type reads it here: the engine, the venue, the datasets, the drills.
"""

from __future__ import annotations

from typing import Any

VENUE = "BINANCE"
BASE, QUOTE = "BTC", "USDT"
SYMBOL = BASE + QUOTE  # the synthetic datasets' instrument, and the venue's replayed symbol by default
INSTRUMENT_ID = f"{SYMBOL}.{VENUE}"
INTERVAL = "1m"  # the synthetic datasets' bars

# Binance's kline intervals (their names in data.binance.vision and /api/v3/klines) -> (seconds, the NautilusTrader
# BarSpecification step and aggregation). The one table: a dataset's interval becomes its bar type through it, the
# quality checks measure gaps with its seconds, the venue serves klines by its names. Binance's 1M (a calendar month)
# has no fixed length: not here.
INTERVALS: dict[str, tuple[int, int, str]] = {
    "1s": (1, 1, "SECOND"), "1m": (60, 1, "MINUTE"), "3m": (180, 3, "MINUTE"), "5m": (300, 5, "MINUTE"),
    "15m": (900, 15, "MINUTE"), "30m": (1800, 30, "MINUTE"), "1h": (3600, 1, "HOUR"), "2h": (7200, 2, "HOUR"),
    "4h": (14400, 4, "HOUR"), "6h": (21600, 6, "HOUR"), "8h": (28800, 8, "HOUR"), "12h": (43200, 12, "HOUR"),
    "1d": (86400, 1, "DAY"), "3d": (259200, 3, "DAY"), "1w": (604800, 1, "WEEK"),
}
_BY_SECONDS = {seconds: name for name, (seconds, _, _) in INTERVALS.items()}
_BY_SPEC = {f"{step}-{aggregation}": name for name, (_, step, aggregation) in INTERVALS.items()}


def seconds(interval: str) -> int:
    """The length of a Binance interval (1m -> 60)."""
    return INTERVALS[interval][0]


def interval_of_seconds(length: int) -> str | None:
    """The Binance interval LENGTH seconds long, None when the lab runs no such interval."""
    return _BY_SECONDS.get(length)


def bar_type(instrument_id: str, interval: str = INTERVAL) -> str:
    """The NautilusTrader bar type of an instrument's bars of a Binance interval (BTCUSDT.BINANCE, 1h ->
    BTCUSDT.BINANCE-1-HOUR-LAST-EXTERNAL): Binance's klines are bars it made, priced by their last trade."""
    _, step, aggregation = INTERVALS[interval]
    return f"{instrument_id}-{step}-{aggregation}-LAST-EXTERNAL"


def parse_bar_type(text: str) -> tuple[str, str] | None:
    """(instrument id, interval) of a bar type the lab runs (bar_type's form), None for any other."""
    head, sep, tail = text.rpartition("-LAST-EXTERNAL")
    if not sep or tail:
        return None
    parts = head.rsplit("-", 2)
    interval = _BY_SPEC.get("-".join(parts[1:])) if len(parts) == 3 else None
    return (parts[0], interval) if interval else None


BAR_TYPE = bar_type(INSTRUMENT_ID)


# The other symbols the venue lists (no dataset replays them: a static book around REFERENCE_PRICE, docs/node.md).
# Each one's full definition (NautilusTrader CurrencyPair.to_dict) is fixtures/instruments/<symbol>-binance-spot.json;
# a test checks that these fields agree with it. Binance's ETHUSDT filters: tick 0.01, step 0.0001, min notional 5.
LISTED = {
    "ETHUSDT": {"base": "ETH", "quote": QUOTE, "price_increment": "0.01", "size_increment": "0.0001", "min_price": "0.01",
                "max_price": "1000000.00", "min_quantity": "0.0001", "max_quantity": "9000.0000", "min_notional": "5.00",
                "max_notional": "9000000.00", "reference_price": "2300.00"},
}
# Every symbol the lab's venue lists, what a live node can trade: symbol -> (base, quote). A backtest or a paper run trades
# any Binance spot pair of an imported dataset (its instrument file, datasets/instruments.py).
SYMBOLS = {SYMBOL: (BASE, QUOTE), **{symbol: (d["base"], d["quote"]) for symbol, d in LISTED.items()}}


# Binance's markets a node trades, by NautilusTrader's BinanceAccountType (lower case, the spec's engine.node.account_type),
# and the instrument id suffix each gives a symbol: a USD-M perpetual is NautilusTrader's BTCUSDT-PERP.BINANCE.
SPOT, USDT_FUTURES = "spot", "usdt_futures"
ACCOUNT_TYPES = {SPOT: "", USDT_FUTURES: "-PERP"}


def account_type(spec_data: dict[str, Any]) -> str:
    """The market a normalized spec trades: engine.node.account_type, Spot when absent (backtests and paper runs are Spot)."""
    return ((spec_data.get("engine") or {}).get("node") or {}).get("account_type", SPOT)


def instrument_id(spec_data: dict[str, Any]) -> str:
    """The instrument id a normalized spec trades: its instrument on its venue, the perpetual of it on USD-M Futures."""
    return f"{spec_data['instrument']}{ACCOUNT_TYPES[account_type(spec_data)]}.{spec_data['venue']}"
