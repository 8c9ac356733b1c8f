"""The perpetual the venue lists for USD-M Futures (BTCUSDT, NautilusTrader's BTCUSDT-PERP.BINANCE), its numbers as Binance
writes them, and the one-way position math: pure functions, no state (futures.py holds the account).

Listing values are Binance's BTCUSDT perpetual's (exchangeInfo: tick 0.10, step 0.001, MIN_NOTIONAL 100; fee tier 0).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from opslab.venue.exchange import DECIMAL_RE, VenueError

SYMBOL, BASE, QUOTE = "BTCUSDT", "BTC", "USDT"
INSTRUMENT_ID = "BTCUSDT-PERP.BINANCE"
TICK, STEP = Decimal("0.10"), Decimal("0.001")
MIN_PRICE, MAX_PRICE = Decimal("556.80"), Decimal("4529764")
MIN_QTY, MAX_QTY, MARKET_MAX_QTY = Decimal("0.001"), Decimal("1000"), Decimal("120")
MIN_NOTIONAL = Decimal(100)
MAKER_FEE, TAKER_FEE = Decimal("0.0002"), Decimal("0.0005")  # fee tier 0 (NautilusTrader's own table agrees)
FUNDING_RATE = Decimal("0.0001")
FUNDING_EVERY_BARS = 480  # Binance funds every 8 hours: 480 one-minute bars (tc venue serve --funding-every-bars)
MAX_FUNDING_EVERY_BARS = 100_000
DEFAULT_LEVERAGE, MAX_LEVERAGE = 20, 125
MAX_NOTIONAL_VALUE = "1000000000"  # the venue's one risk bracket (Binance's brackets depend on the account)
DP = Decimal("0.00000001")
ORDER_TYPES = ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
CONDITIONAL = ORDER_TYPES[2:]
TIFS = ("GTC", "IOC", "FOK", "GTX")
MARKET_STREAMS = {f"{SYMBOL.lower()}@{s}" for s in ("aggTrade", "trade", "markPrice", "markPrice@1s", "kline_1m", "bookTicker",
                                                       "depth", "depth@100ms", "depth@250ms", "depth@500ms")}


def to_tick(value: Decimal) -> Decimal:
    """VALUE rounded to a multiple of TICK, written with TICK's two decimals (Binance's "0.10")."""
    return (value / TICK).quantize(Decimal(1), ROUND_HALF_EVEN) * TICK


def px(value: Decimal) -> str:
    return format(to_tick(value), "f")


def qty(value: Decimal) -> str:
    return format(value.quantize(STEP), "f")


def amount(value: Decimal) -> str:
    return format(value.quantize(DP), "f")


def apply_fill(amt: Decimal, entry: Decimal, signed_qty: Decimal, price: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """One-way position math: (amount, entry price, realized PnL) after a fill of SIGNED_QTY (buy > 0) at PRICE.

    Adding (or opening) averages the entry price by quantity; reducing realizes (price - entry) x closed quantity in the
    position's direction and keeps the entry; a fill through zero closes the whole position and opens the rest at PRICE."""
    if amt == 0 or (amt > 0) == (signed_qty > 0):
        new = amt + signed_qty
        return new, (abs(amt) * entry + abs(signed_qty) * price) / abs(new), Decimal(0)
    closed = min(abs(signed_qty), abs(amt))
    realized = closed * (price - entry) * (1 if amt > 0 else -1)
    new = amt + signed_qty
    if new == 0:
        return new, Decimal(0), realized
    return new, (entry if (new > 0) == (amt > 0) else price), realized


def unrealized(amt: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    """Unrealized PnL of AMT at ENTRY marked at MARK (a short gains when the mark falls)."""
    return amt * (mark - entry)


def num(value: Decimal) -> str:
    """An unrounded decimal as Binance prints entry prices ("0.385"): no exponent, no trailing zeros beyond one."""
    text = format(value.quantize(DP).normalize(), "f")
    return text if "." in text else text + ".0"


def decimal_param(params: dict[str, str], name: str, required: bool = True) -> Decimal | None:
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise VenueError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return None
    if not DECIMAL_RE.match(raw or ""):
        raise VenueError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{DECIMAL_RE.pattern}'.")
    return Decimal(raw or "0")
