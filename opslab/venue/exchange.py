"""The venue's one account on one replayed symbol: replay, matching, balances, persisted state.

Replay: the dataset's symbol (BTCUSDT for the synthetic datasets; an imported one's instrument) and
interval (1m; an imported one's). Each bar becomes four price points (open, then the nearer extreme,
the other extreme, close), spread evenly over the interval / speed. Every point is a trade print, a
one-tick-wide book around it (depth diffs with consecutive update ids, a bookTicker) and a matching
pass; the close also emits the bar as a closed kline of the interval. Timestamps are wall-clock (a
live node runs in real time); prices and volumes are the dataset's. Every other listed symbol is a
static book at its reference price.

Matching (deterministic, no randomness): a market order fills in full at the touch (ask for a buy,
bid for a sell) as taker; a limit order that crosses the touch does the same; otherwise it rests and
fills in full at its own price as maker at the first price point that reaches it. Fees: the
tradeFee rate, always charged in the quote asset (Binance charges the received asset; simpler here,
and stated in docs/node.md). Balances are checked and locked as Binance does for a spot account.

A fill whose report the fill_lost fault withholds (faults.py) is a trade like any other here: balances,
the order's status and myTrades all show it; only its executionReport never reaches the user data stream.
Under partial_fills a marketable order the book fills in full is split instead: its first part at once, the
others each PARTIAL_GAP_MS later (a thread per split order), each part one trade and one TRADE report,
the order PARTIALLY_FILLED in between (REST shows it so). Under duplicate_reports a fill's TRADE report
is published twice, the same message both times; the trade is recorded once.

State (orders, trades, balances, listen keys, replay cursor) is written atomically to
artifacts/venue/<run_id>/state.json after every change, so the venue survives its own restart.

On demand (the venue without a spec, for the lab drills): nothing is persisted and nothing runs on
a schedule; the whole dataset is history (klines), and each REST depth snapshot moves the book one
price point along the dataset, so lastUpdateId advances once per snapshot (by N+1 under
sequence_gap, not at all under stale_book), as the drills' depth tracker expects.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, Callable

from opslab import clock, digests, fs, market
from opslab.contracts import SCHEMA_VERSION
from opslab.errors import InputError

SYMBOL, BASE, QUOTE = market.SYMBOL, market.BASE, market.QUOTE  # what the venue lists (market.py names it once)
TICK = Decimal("0.01")
STEP = Decimal("0.000001")
QUOTE_DP = Decimal("0.00000001")
FEE = Decimal("0.001")
BOOK_LEVELS = 5
MAX_ORDERS_KEPT = 10_000  # closed orders beyond this are forgotten, oldest first (bounded state)
MAX_TRADES_KEPT = 10_000
MAX_OPEN_ORDERS = 200
BAR_MS = 60_000  # the lab's synthetic bars (1m); a replay of an imported dataset steps by its own interval (Exchange.bar_ms)
BTC_REFERENCE = Decimal("42000.00")  # BTCUSDT's static price while a dataset of another symbol is replayed (the lab dataset's start)
CURSOR_SAVE_S = 1.0  # the replay cursor alone is saved at most once a second (orders, fills, balances: at once)

MAX_PRINTS_KEPT = 1_000  # market trade prints per symbol for /api/v3/trades and aggTrades (memory only, since the start)
AVG_PRICE_MINS = 5
# Binance's decimal parameters: https://developers.binance.com/docs/binance-spot-api-docs/errors (-1100, -1111)
DECIMAL_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
ORDER_TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER")
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
TIFS = ("GTC", "IOC", "FOK")
OPEN = ("NEW", "PARTIALLY_FILLED")

Publish = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Listing:
    """One symbol the venue lists: its assets and filters; STATIC is the reference price of a symbol no dataset replays."""

    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_price: Decimal
    max_price: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    static: Decimal | None = None

    def px(self, value: Decimal) -> str:
        return format(value.quantize(self.tick), "f")

    def qty(self, value: Decimal) -> str:
        return format(value.quantize(self.step), "f")

    def filters(self) -> list[dict[str, Any]]:
        """exchangeInfo's filters (https://developers.binance.com/docs/binance-spot-api-docs/filters)."""
        return [{"filterType": "PRICE_FILTER", "minPrice": self.px(self.min_price), "maxPrice": self.px(self.max_price), "tickSize": format(self.tick, "f")},
                {"filterType": "LOT_SIZE", "minQty": self.qty(self.min_qty), "maxQty": self.qty(self.max_qty), "stepSize": format(self.step, "f")},
                {"filterType": "NOTIONAL", "minNotional": px(self.min_notional), "applyMinToMarket": True,
                 "maxNotional": px(self.max_notional), "applyMaxToMarket": False, "avgPriceMins": AVG_PRICE_MINS}]


def listings(replayed: str = SYMBOL) -> dict[str, Listing]:
    """Every symbol the venue lists, BTCUSDT first (its filters as the venue always served them), then market.LISTED: the
    REPLAYED one priced by the dataset's replay, every other one a static book at its reference price."""
    out = {SYMBOL: Listing(SYMBOL, BASE, QUOTE, TICK, STEP, TICK, Decimal("1000000.00"), STEP, Decimal(9000), Decimal("1.00"), Decimal("9000000.00"),
                           None if replayed == SYMBOL else BTC_REFERENCE)}
    for symbol, d in market.LISTED.items():
        out[symbol] = Listing(symbol, d["base"], d["quote"], Decimal(d["price_increment"]), Decimal(d["size_increment"]), Decimal(d["min_price"]),
                              Decimal(d["max_price"]), Decimal(d["min_quantity"]), Decimal(d["max_quantity"]), Decimal(d["min_notional"]),
                              Decimal(d["max_notional"]), None if symbol == replayed else Decimal(d["reference_price"]))
    return out


LISTINGS = listings()  # the names and filters every venue lists (which one is replayed: Exchange.listings)


def decimal_param(params: dict[str, Any], name: str, required: bool = True) -> Decimal | None:
    """A strict decimal parameter as Binance reads it: digits and one dot only (no sign, exponent, NaN or Infinity)."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise VenueError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return None
    if not isinstance(raw, str) or not DECIMAL_RE.match(raw):
        raise VenueError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{DECIMAL_RE.pattern}'.")
    if "." in raw and len(raw.split(".")[1].rstrip("0")) > 8:
        raise VenueError(400, -1111, f"Parameter '{name}' has too much precision.")
    return Decimal(raw)


class VenueError(Exception):
    """A Binance error answer: HTTP status, Binance code, message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def px(value: Decimal) -> str:
    return format(value.quantize(TICK), "f")


def qty(value: Decimal) -> str:
    return format(value.quantize(STEP), "f")


def amount(value: Decimal) -> str:
    return format(value.quantize(QUOTE_DP), "f")


def now_ms() -> int:
    return int(time.time() * 1000)


USER_STREAM = "@user"  # publish() target for user data; the hub delivers it to every listen-key subscriber


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _in_window(ts: int, start_ms: int | None, end_ms: int | None) -> bool:
    return (start_ms is None or ts >= start_ms) and (end_ms is None or ts <= end_ms)


def load_bars(path: Path, limit: int) -> list[tuple[str, ...]]:
    """(ts_close, open, high, low, close, volume) rows of a dataset's bars.csv, at most LIMIT."""
    rows: list[tuple[str, ...]] = []
    with io.TextIOWrapper(fs.open_read(path), newline="", encoding="ascii") as fh:  # no link followed under the root
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            if len(rows) >= limit:
                break
            rows.append(tuple(row[:6]))
    return rows


def _triggered(type_: str, side: str, stop: Decimal, price: Decimal) -> bool:
    """Whether the trade PRICE reaches a stop (STOP_LOSS*: a buy at or above, a sell at or below) or a take-profit
    (TAKE_PROFIT*: the other way round): https://developers.binance.com/docs/binance-spot-api-docs/rest-api/trading-endpoints"""
    rising = (type_.startswith("STOP_LOSS")) == (side == "BUY")
    return price >= stop if rising else price <= stop


def price_points(bar: tuple[str, ...]) -> list[Decimal]:
    """The four prints of a bar: open, nearer extreme, farther extreme, close."""
    o, h, low, c = (Decimal(v) for v in bar[1:5])
    return [o, low, h, c] if c >= o else [o, h, low, c]


class Exchange:
    """All venue state behind one lock; publish(stream, data) is called under it, in order."""

    def __init__(self, run_id: str, dataset_id: str, bars: list[tuple[str, ...]], balances: dict[str, str], speed: float,
                 state_path: Path | None, publish: Publish, faults: Callable[[], dict[str, Any]], reset: bool = False,
                 on_demand: bool = False, lose_fill: Callable[[dict[str, Any]], bool] = lambda fill: False,
                 split_order: Callable[[dict[str, Any]], list[int] | None] = lambda order: None,
                 duplicate_report: Callable[[dict[str, Any]], bool] = lambda fill: False,
                 reorder_report: Callable[[dict[str, Any]], bool] = lambda order: False, symbol: str = SYMBOL,
                 interval: str = market.INTERVAL) -> None:
        """LOSE_FILL(fill) is asked for every fill (trade_id, order_id, client_order_id, symbol): True withholds its
        executionReport from the user data stream (the fill_lost fault); the trade stays in the record.
        SPLIT_ORDER(order) is asked for every order the book fills in full on arrival: percentages to fill it in parts
        (partial_fills), or None. DUPLICATE_REPORT(fill) for every fill whose report is sent: True sends it twice.
        SYMBOL and INTERVAL: what BARS are (a listed symbol, a Binance interval): its trades, book and klines are replayed."""
        self.symbol, self.interval, self.bar_ms = symbol, interval, market.seconds(interval) * 1000
        self.listings = listings(symbol)
        self.listing = self.listings[symbol]
        self.bars, self.speed, self.state_path, self.publish, self.faults = bars, speed, state_path, publish, faults
        self.lose_fill, self.split_order, self.duplicate_report = lose_fill, split_order, duplicate_report
        self.reorder_report = reorder_report
        self.partial_gap_s = 2.0  # partial_fills: the pause between parts (server.py sets the fault's)
        self.on_demand = on_demand
        self.lock = threading.RLock()
        self.last_price: Decimal | None = None
        self.book: tuple[list[list[str]], list[list[str]]] = ([], [])
        self.book_ms: int | None = None
        self._steps = 0
        self._kline_open = 0  # the open time of the last kline streamed
        self.messages = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_at = 0.0
        self.replay_error: str | None = None
        self.prints: dict[str, deque[dict[str, Any]]] = {s: deque(maxlen=MAX_PRINTS_KEPT) for s in self.listings}
        self._static_trade_ids = {s: 1 for s in self.listings}
        if state_path is not None and fs.exists(state_path) and not reset:
            self.state = self._load(run_id, dataset_id)
        else:
            self.state = {
                "schema_version": SCHEMA_VERSION, "run_id": run_id, "venue": market.VENUE, "symbol": symbol, "dataset_id": dataset_id,
                "replay": {"cursor": 0, "bars_total": len(bars), "speed": speed, "started_at": None},
                "next_order_id": 1, "next_trade_id": 1, "next_market_trade_id": 1, "update_id": 1000,
                "balances": {ccy: {"free": amount(Decimal(v)), "locked": amount(Decimal(0))} for ccy, v in sorted(balances.items())},
                "orders": [], "trades": [], "listen_keys": [], "updated_at": clock.now_iso(),
            }
            self.save()
        self.state["replay"]["bars_total"] = len(bars)
        self.state["replay"]["speed"] = speed
        if on_demand:
            self.state["replay"]["cursor"] = len(bars)  # all history: a subscription starts no schedule
            self._move_book(price_points(bars[0])[0], now_ms(), 0)  # a book from the start, stale_book or not
            self._steps = 1

    def _load(self, run_id: str, dataset_id: str) -> dict[str, Any]:
        from opslab.contracts import errors_for

        try:
            doc = fs.read_json(self.state_path)
        except (OSError, InputError) as exc:
            raise InputError(f"{self.state_path}: unreadable venue state ({exc}); inspect it or start with --reset") from None
        problems = errors_for("venue_state", doc, str(self.state_path)) + digests.stamp_problems(doc, str(self.state_path))
        if problems:
            raise InputError(problems[0] + "; inspect it or start with --reset")
        if doc["dataset_id"] != dataset_id:
            raise InputError(f"{self.state_path}: /dataset_id: the saved venue replays {doc['dataset_id']}, the spec names {dataset_id}; "
                             "start with --reset to discard the saved venue")
        return doc

    def save(self) -> None:
        self._saved_at = time.monotonic()
        self.state["updated_at"] = clock.now_iso()
        if self.state_path is None:  # on demand: nothing outlives the process
            return
        fs.write_json(self.state_path, digests.stamp(self.state))  # built by this class field by field; verify checks the schema

    # --- replay -----------------------------------------------------------------------------
    @property
    def replay_started(self) -> bool:
        return self._thread is not None

    def start_replay(self) -> None:
        """Start replaying from the saved cursor (idempotent)."""
        with self.lock:
            if self._thread is not None:
                return
            if self.state["replay"]["started_at"] is None:
                self.state["replay"]["started_at"] = clock.now_iso()
            self._thread = threading.Thread(target=self._replay, name="venue-replay", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self.lock:
            self.save()

    def _replay(self) -> None:
        try:
            self._replay_bars()
        except Exception as exc:  # a dead replay must not look like a quiet market: say so once, keep serving
            self.replay_error = f"{type(exc).__name__}: {exc}"
            print(f"venue: replay stopped: {self.replay_error}", file=sys.stderr, flush=True)

    def _replay_bars(self) -> None:
        due = time.monotonic()  # absolute schedule: processing time does not slow the replay down
        while not self._stop.is_set():
            with self.lock:
                cursor = self.state["replay"]["cursor"]
                if cursor >= len(self.bars):
                    self.save()
                    return
                bar = self.bars[cursor]
            for point in price_points(bar):
                pause = self.bar_ms / 1000.0 / self.speed / 4  # read every time: the speed may be changed while it runs
                due = max(due + pause, time.monotonic() - 1.0)  # after a stall, catch up at most one second
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                with self.lock:
                    self._print(point, bar)
            with self.lock:
                self._kline(bar)
                self.state["replay"]["cursor"] = cursor + 1
                if time.monotonic() - self._saved_at >= CURSOR_SAVE_S:
                    self.save()

    def _emit(self, stream: str, data: dict[str, Any]) -> None:
        self.messages += 1
        self.publish(stream, data)

    def _print(self, price: Decimal, bar: tuple[str, ...]) -> None:
        faults = self.faults()
        ts = now_ms()
        trade_id = self.state["next_market_trade_id"]
        self.state["next_market_trade_id"] += 1
        listing, symbol = self.listing, self.symbol
        size = max(listing.step, (Decimal(bar[5]) / 4).quantize(listing.step, ROUND_DOWN))
        self.last_price = price
        self.prints[symbol].append({"id": trade_id, "price": listing.px(price), "qty": listing.qty(size), "quoteQty": amount(price * size),
                                    "time": ts, "isBuyerMaker": trade_id % 2 == 0, "isBestMatch": True})
        self._emit(f"{symbol.lower()}@trade", {"e": "trade", "E": ts, "s": symbol, "t": trade_id, "p": listing.px(price), "q": listing.qty(size),
                                               "T": ts, "m": trade_id % 2 == 0, "M": True})
        if not faults.get("stale_book"):
            self._move_book(price, ts, int(faults.get("sequence_gap", 0)))
        self._match(price)

    def _move_book(self, price: Decimal, ts: int, gap: int) -> None:
        listing, symbol, zero = self.listing, self.symbol, self.listing.qty(Decimal(0))
        bids = [[listing.px(price - listing.tick * (i + 1)), listing.qty(Decimal(1) + i)] for i in range(BOOK_LEVELS)]
        asks = [[listing.px(price + listing.tick * (i + 1)), listing.qty(Decimal(1) + i)] for i in range(BOOK_LEVELS)]
        old_bids, old_asks = self.book
        gone_b = [[p, zero] for p, _ in old_bids if p not in {b[0] for b in bids}]
        gone_a = [[p, zero] for p, _ in old_asks if p not in {a[0] for a in asks}]
        first = self.state["update_id"] + 1 + gap
        self.state["update_id"] = first
        self.book, self.book_ms = (bids, asks), ts
        self._emit(f"{symbol.lower()}@depth@100ms", {"e": "depthUpdate", "E": ts, "s": symbol, "U": first, "u": first,
                                                    "b": gone_b + bids, "a": gone_a + asks})
        self._emit(f"{symbol.lower()}@depth", {"e": "depthUpdate", "E": ts, "s": symbol, "U": first, "u": first,
                                              "b": gone_b + bids, "a": gone_a + asks})
        self._emit(f"{symbol.lower()}@bookTicker", {"u": first, "s": symbol, "b": bids[0][0], "B": bids[0][1],
                                                   "a": asks[0][0], "A": asks[0][1]})

    def _kline(self, bar: tuple[str, ...]) -> None:
        # Binance's kline: open time on the interval's boundary, close time = open + the interval - 1 ms
        # (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams, Kline/Candlestick Streams).
        # Every bar is still one closed kline, one interval after the last: the interval that just ended, or
        # the next one when the replay runs faster than one bar an interval (a compressed market).
        ts, length, symbol, listing = now_ms(), self.bar_ms, self.symbol, self.listing
        open_ms = max(ts // length * length - length, self._kline_open + length)
        self._kline_open = open_ms
        trade_id = self.state["next_market_trade_id"] - 1
        volume = Decimal(bar[5])
        self._emit(f"{symbol.lower()}@kline_{self.interval}", {"e": "kline", "E": ts, "s": symbol, "k": {
            "t": open_ms, "T": open_ms + length - 1, "s": symbol, "i": self.interval, "f": trade_id - 3, "L": trade_id,
            "o": bar[1], "c": bar[4], "h": bar[2], "l": bar[3], "v": listing.qty(volume), "n": 4, "x": True,
            "q": amount(volume * Decimal(bar[4])), "V": listing.qty(volume / 2), "Q": amount(volume / 2 * Decimal(bar[4])), "B": "0"}})

    def _record_print(self, listing: Listing, price: Decimal, q: Decimal, ts: int, buyer_maker: bool) -> None:
        trade_id = self._static_trade_ids[listing.symbol]
        self._static_trade_ids[listing.symbol] += 1
        self.prints[listing.symbol].append({"id": trade_id, "price": listing.px(price), "qty": listing.qty(q), "quoteQty": amount(price * q),
                                            "time": ts, "isBuyerMaker": buyer_maker, "isBestMatch": True})

    def _static_book(self, listing: Listing) -> tuple[list[list[str]], list[list[str]]]:
        """A symbol no dataset replays: five levels a side one tick apart around its reference price, level i holding i+1 units."""
        assert listing.static is not None
        return ([[listing.px(listing.static - listing.tick * (i + 1)), listing.qty(Decimal(1) + i)] for i in range(BOOK_LEVELS)],
                [[listing.px(listing.static + listing.tick * (i + 1)), listing.qty(Decimal(1) + i)] for i in range(BOOK_LEVELS)])

    def book_of(self, symbol: str) -> tuple[list[list[str]], list[list[str]]]:
        listing = self.listings[symbol]
        return self._static_book(listing) if listing.static is not None else self.book

    def depth(self, limit: int, symbol: str | None = None) -> dict[str, Any]:
        """The book snapshot of SYMBOL (the replayed one by default; E: when the book last moved); on demand, the book
        first moves one price point."""
        symbol = symbol or self.symbol
        if self.listings[symbol].static is not None:
            bids, asks = self._static_book(self.listings[symbol])
            return {"lastUpdateId": 1, "bids": bids[:limit], "asks": asks[:limit]}
        with self.lock:
            if self.on_demand:
                i, self._steps = self._steps, self._steps + 1
                bar = self.bars[i // 4 % len(self.bars)]
                self._print(price_points(bar)[i % 4], bar)
            bids, asks = self.book
            book = {"lastUpdateId": self.state["update_id"], "bids": bids[:limit], "asks": asks[:limit]}
            if self.book_ms is not None:
                book["E"] = self.book_ms
            return book

    def klines(self, limit: int, symbol: str | None = None) -> list[list[Any]]:
        """The replayed bars so far (the most recent LIMIT), stamped one interval apart ending now (a static symbol has none)."""
        if self.listings[symbol or self.symbol].static is not None:
            return []
        done = self.bars[max(0, self.state["replay"]["cursor"] - limit):self.state["replay"]["cursor"]]
        length = self.bar_ms
        end = now_ms() // length * length
        out = []
        for i, bar in enumerate(done):
            open_ms = end - (len(done) - i) * length
            out.append([open_ms, bar[1], bar[2], bar[3], bar[4], bar[5], open_ms + length - 1,
                        amount(Decimal(bar[5]) * Decimal(bar[4])), 4, self.listing.qty(Decimal(bar[5]) / 2), "0", "0"])
        return out

    # --- market statistics: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints ---
    def _window(self, minutes: int) -> list[tuple[str, ...]]:
        """The replayed bars of the last MINUTES (at least the last bar once one is replayed)."""
        cursor = self.state["replay"]["cursor"]
        return self.bars[max(0, cursor - max(1, minutes * 60_000 // self.bar_ms)):cursor]

    def ticker_24hr(self, symbol: str) -> dict[str, Any]:
        """GET /api/v3/ticker/24hr (FULL): the replayed symbol over its last 1,440 replayed bars (the klines' last 24 h);
        a static symbol at its reference price, its volume the account's own fills there."""
        listing = self.listings[symbol]
        with self.lock:
            last = self._last(listing) or Decimal(0)
            bids, asks = self.book_of(symbol)
            prints = list(self.prints[symbol])
            now = now_ms()
            if listing.static is None:
                bars = self._window(1440)
                open_ = Decimal(bars[0][1]) if bars else last
                high = max((Decimal(b[2]) for b in bars), default=last)
                low = min((Decimal(b[3]) for b in bars), default=last)
                volume = sum((Decimal(b[5]) for b in bars), Decimal(0))
                quote_volume = sum((Decimal(b[5]) * Decimal(b[4]) for b in bars), Decimal(0))
                count = 4 * len(bars)
            else:
                open_ = high = low = last
                volume = sum((Decimal(t["qty"]) for t in prints), Decimal(0))
                quote_volume = sum((Decimal(t["quoteQty"]) for t in prints), Decimal(0))
                count = len(prints)
            change = last - open_
            return {"symbol": symbol, "priceChange": listing.px(change),
                    "priceChangePercent": format((change / open_ * 100).quantize(Decimal("0.001")) if open_ else Decimal("0.000"), "f"),
                    "weightedAvgPrice": listing.px(quote_volume / volume if volume else last), "prevClosePrice": listing.px(open_),
                    "lastPrice": listing.px(last), "lastQty": prints[-1]["qty"] if prints else listing.qty(Decimal(0)),
                    "bidPrice": bids[0][0] if bids else listing.px(Decimal(0)), "bidQty": bids[0][1] if bids else listing.qty(Decimal(0)),
                    "askPrice": asks[0][0] if asks else listing.px(Decimal(0)), "askQty": asks[0][1] if asks else listing.qty(Decimal(0)),
                    "openPrice": listing.px(open_), "highPrice": listing.px(high), "lowPrice": listing.px(low),
                    "volume": amount(volume), "quoteVolume": amount(quote_volume), "openTime": now - 86_400_000, "closeTime": now,
                    "firstId": prints[0]["id"] if prints else -1, "lastId": prints[-1]["id"] if prints else -1, "count": count}

    def ticker_price(self, symbol: str) -> dict[str, Any]:
        with self.lock:
            return {"symbol": symbol, "price": self.listings[symbol].px(self._last(self.listings[symbol]) or Decimal(0))}

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        listing = self.listings[symbol]
        with self.lock:
            bids, asks = self.book_of(symbol)
            zero_px, zero_qty = listing.px(Decimal(0)), listing.qty(Decimal(0))
            return {"symbol": symbol, "bidPrice": bids[0][0] if bids else zero_px, "bidQty": bids[0][1] if bids else zero_qty,
                    "askPrice": asks[0][0] if asks else zero_px, "askQty": asks[0][1] if asks else zero_qty}

    def avg_price(self, symbol: str) -> dict[str, Any]:
        """GET /api/v3/avgPrice: the volume-weighted close of the last AVG_PRICE_MINS replayed bars (a static symbol: its reference)."""
        listing = self.listings[symbol]
        with self.lock:
            bars = self._window(AVG_PRICE_MINS) if listing.static is None else []
            volume = sum((Decimal(b[5]) for b in bars), Decimal(0))
            price = (sum((Decimal(b[5]) * Decimal(b[4]) for b in bars), Decimal(0)) / volume if volume else self._last(listing) or Decimal(0))
            prints = self.prints[symbol]
            return {"mins": AVG_PRICE_MINS, "price": format(price.quantize(QUOTE_DP), "f"), "closeTime": prints[-1]["time"] if prints else now_ms()}

    def market_trades(self, symbol: str, limit: int) -> list[dict[str, Any]]:
        """GET /api/v3/trades: the most recent LIMIT market prints, oldest first (kept in memory, the last 1,000 per symbol)."""
        with self.lock:
            return [dict(t) for t in list(self.prints[symbol])[-limit:]]

    def agg_trades(self, symbol: str, limit: int, from_id: int | None = None, start_ms: int | None = None,
                   end_ms: int | None = None) -> list[dict[str, Any]]:
        """GET /api/v3/aggTrades: every print is its own aggregate (one price, one taker); fromId ascending, else the most recent LIMIT."""
        with self.lock:
            rows = [t for t in self.prints[symbol] if _in_window(t["time"], start_ms, end_ms) and (from_id is None or t["id"] >= from_id)]
            rows = rows[:limit] if from_id is not None or start_ms is not None else rows[-limit:]
            return [{"a": t["id"], "p": t["price"], "q": t["qty"], "f": t["id"], "l": t["id"], "T": t["time"], "m": t["isBuyerMaker"], "M": True}
                    for t in rows]

    # --- listen keys --------------------------------------------------------------------------
    def new_listen_key(self) -> str:
        with self.lock:
            key = secrets.token_hex(30)
            self.state["listen_keys"] = (self.state["listen_keys"] + [_digest(key)])[-16:]
            self.save()
            return key

    def has_listen_key(self, key: str) -> bool:
        with self.lock:
            return _digest(key) in self.state["listen_keys"]

    def expire_listen_keys(self) -> int:
        """Expire every listen key (the user_stream_expiry fault): keepalives answer -1125 from now; how many there were."""
        with self.lock:
            n = len(self.state["listen_keys"])
            self.state["listen_keys"] = []
            self.save()
            return n

    def close_listen_key(self, key: str) -> None:
        with self.lock:
            if _digest(key) not in self.state["listen_keys"]:
                raise VenueError(400, -1125, "This listenKey does not exist.")
            self.state["listen_keys"].remove(_digest(key))
            self.save()

    # --- account --------------------------------------------------------------------------------
    def _bal(self, ccy: str) -> dict[str, str]:
        return self.state["balances"].setdefault(ccy, {"free": amount(Decimal(0)), "locked": amount(Decimal(0))})

    def _move(self, ccy: str, free: Decimal = Decimal(0), locked: Decimal = Decimal(0)) -> None:
        bal = self._bal(ccy)
        bal["free"] = amount(Decimal(bal["free"]) + free)
        bal["locked"] = amount(Decimal(bal["locked"]) + locked)

    def account(self) -> dict[str, Any]:
        with self.lock:
            return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                    "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
                    "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms(), "accountType": "SPOT",
                    "balances": [{"asset": c, "free": b["free"], "locked": b["locked"]} for c, b in sorted(self.state["balances"].items())],
                    "permissions": ["SPOT"], "uid": 1}

    def _account_update(self) -> None:
        ts = now_ms()
        self._user({"e": "outboundAccountPosition", "E": ts, "u": ts,
                    "B": [{"a": c, "f": b["free"], "l": b["locked"]} for c, b in sorted(self.state["balances"].items())]})

    def _user(self, data: dict[str, Any]) -> None:
        self._emit(USER_STREAM, data)

    # --- orders ----------------------------------------------------------------------------------
    def _find(self, order_id: int | None, client_id: str | None, symbol: str | None = None) -> dict[str, Any] | None:
        for order in reversed(self.state["orders"]):
            if symbol is not None and order["symbol"] != symbol:
                continue
            if (order_id is not None and order["orderId"] == order_id) or (order_id is None and order["clientOrderId"] == client_id):
                return order
        return None

    def order(self, order_id: int | None, client_id: str | None, symbol: str | None = None) -> dict[str, Any]:
        with self.lock:
            found = self._find(order_id, client_id, symbol or self.symbol)
            if found is None:
                raise VenueError(400, -2013, "Order does not exist.")
            return dict(found)

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Open orders of SYMBOL, or of every symbol (None)."""
        with self.lock:
            return [dict(o) for o in self.state["orders"] if o["status"] in OPEN and symbol in (None, o["symbol"])]

    def all_orders(self, limit: int, from_order_id: int | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, symbol: str | None = None) -> list[dict[str, Any]]:
        """Binance's allOrders: orderId >= FROM_ORDER_ID ascending, else the most recent LIMIT; time filters."""
        symbol = symbol or self.symbol
        with self.lock:
            rows = [o for o in self.state["orders"] if o["symbol"] == symbol and _in_window(o["time"], start_ms, end_ms)
                    and (from_order_id is None or o["orderId"] >= from_order_id)]
            return [dict(o) for o in (rows[:limit] if from_order_id is not None else rows[-limit:])]

    def my_trades(self, limit: int, from_id: int | None = None, order_id: int | None = None, start_ms: int | None = None,
                  end_ms: int | None = None, symbol: str | None = None) -> list[dict[str, Any]]:
        """Binance's myTrades: id >= FROM_ID ascending, else the most recent LIMIT; order and time filters."""
        symbol = symbol or self.symbol
        with self.lock:
            rows = [t for t in self.state["trades"] if t["symbol"] == symbol and _in_window(t["time"], start_ms, end_ms)
                    and (from_id is None or t["id"] >= from_id) and (order_id is None or t["orderId"] == order_id)]
            return [dict(t) for t in (rows[:limit] if from_id is not None else rows[-limit:])]

    def place(self, side: str, type_: str, quantity: str, price: str | None, tif: str | None, client_id: str | None,
              symbol: str | None = None, stop_price: str | None = None, resp_type: str | None = None, test: bool = False) -> dict[str, Any]:
        """POST /api/v3/order (and /order/test with TEST: validated the same, nothing placed, {}): accept (NEW), then fill,
        rest or wait for its trigger; the FULL response (RESULT or ACK when newOrderRespType asks).

        Parameters, filters and errors follow https://developers.binance.com/docs/binance-spot-api-docs/rest-api/trading-endpoints
        (mandatory parameters per type), .../filters (PRICE_FILTER, LOT_SIZE, NOTIONAL: -1013 "Filter failure: NAME") and
        .../errors (-1100, -1102, -1106, -1111, -1115, -1116, -1117, -2010)."""
        params = {"quantity": quantity, "price": price, "stopPrice": stop_price}
        symbol = symbol or self.symbol
        listing = self.listings.get(symbol)
        if listing is None:
            raise VenueError(400, -1121, "Invalid symbol.")
        if side not in ("BUY", "SELL"):
            raise VenueError(400, -1117, "Invalid side.")
        if type_ not in ORDER_TYPES:
            raise VenueError(400, -1116, "Invalid orderType.")
        if resp_type not in (None, "ACK", "RESULT", "FULL"):
            raise VenueError(400, -1177, "Invalid newOrderRespType.")
        limit_like = type_ in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER")
        needs_tif = type_ in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        if tif is not None and tif not in TIFS:
            raise VenueError(400, -1115, "Invalid timeInForce.")
        if needs_tif and tif is None:
            raise VenueError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        if not needs_tif and tif is not None and type_ != "MARKET":
            raise VenueError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        q = decimal_param(params, "quantity")
        p = decimal_param(params, "price", required=limit_like)
        stop = decimal_param(params, "stopPrice", required=type_ in STOP_TYPES)
        if not limit_like and p is not None:
            raise VenueError(400, -1106, "Parameter 'price' sent when not required.")
        if type_ not in STOP_TYPES and stop is not None:
            raise VenueError(400, -1106, "Parameter 'stopPrice' sent when not required.")
        assert q is not None
        for value in (p, stop):  # https://developers.binance.com/docs/binance-spot-api-docs/filters#price_filter
            if value is not None and (value < listing.min_price or value > listing.max_price or value % listing.tick != 0):
                raise VenueError(400, -1013, "Filter failure: PRICE_FILTER")
        if q < listing.min_qty or q > listing.max_qty or q % listing.step != 0:  # .../filters#lot_size
            raise VenueError(400, -1013, "Filter failure: LOT_SIZE")
        with self.lock:
            last = self._last(listing)
            ref = p if p is not None else (stop if stop is not None else last)
            if ref is not None and not listing.min_notional <= q * ref <= (listing.max_notional if limit_like else q * ref):
                raise VenueError(400, -1013, "Filter failure: NOTIONAL")  # .../filters#notional (MARKET: at the last price)
            if client_id and self._find(None, client_id) and self._find(None, client_id)["status"] in OPEN:
                raise VenueError(400, -2010, "Duplicate order sent.")
            if len(self.open_orders()) >= MAX_OPEN_ORDERS:
                raise VenueError(400, -1015, "Too many new orders.")
            if last is None and type_ == "MARKET":
                raise VenueError(400, -2010, "Market is closed.")
            if type_ in STOP_TYPES:
                if last is not None and _triggered(type_, side, stop, last):
                    raise VenueError(400, -2010, "Stop price would trigger immediately.")
                plan: list[tuple[Decimal, Decimal]] = []
                rest = q
                need_quote = self._lock_amount(side, q, p if p is not None else stop)
            else:
                plan = self._plan(listing, side, q, p if type_ != "MARKET" else None)
                if type_ == "LIMIT_MAKER" and plan:  # .../trading-endpoints: LIMIT_MAKER is rejected when it would take
                    raise VenueError(400, -2010, "Order would immediately match and take.")
                rest = q - sum((f[1] for f in plan), Decimal(0))
                need_quote = ((sum((f[0] * f[1] for f in plan), Decimal(0)) + (rest * p if p is not None else Decimal(0))) * (1 + FEE)).quantize(QUOTE_DP)
            if side == "BUY" and Decimal(self._bal(listing.quote)["free"]) < need_quote:
                raise VenueError(400, -2010, "Account has insufficient balance for requested action.")
            if side == "SELL" and Decimal(self._bal(listing.base)["free"]) < q:
                raise VenueError(400, -2010, "Account has insufficient balance for requested action.")
            if test:
                return {}
            ts = now_ms()
            stop_type = type_ in STOP_TYPES
            order = {"symbol": symbol, "orderId": self.state["next_order_id"], "orderListId": -1,
                     "clientOrderId": client_id or f"venue-{self.state['next_order_id']}",
                     "price": listing.px(p) if p is not None else listing.px(Decimal(0)), "origQty": listing.qty(q),
                     "executedQty": listing.qty(Decimal(0)), "cummulativeQuoteQty": amount(Decimal(0)), "status": "NEW",
                     "timeInForce": tif or "GTC", "type": type_, "side": side,
                     "stopPrice": listing.px(stop) if stop is not None else listing.px(Decimal(0)), "icebergQty": listing.qty(Decimal(0)),
                     "time": ts, "updateTime": ts, "isWorking": not stop_type, "workingTime": -1 if stop_type else ts,
                     "origQuoteOrderQty": amount(Decimal(0)), "selfTradePreventionMode": "NONE"}
            self.state["next_order_id"] += 1
            self.state["orders"].append(order)
            held = bool(plan) and not stop_type and self.reorder_report({"order_id": order["orderId"], "client_order_id": order["clientOrderId"],
                                                                          "symbol": symbol})
            acknowledged = self._report(order, "NEW", emit=not held)
            if stop_type:  # waits for the replayed trade price to reach stopPrice, its funds held
                self._hold(order, listing)
                self._account_update()
                fills: list[dict[str, Any]] = []
            else:
                fills = self._execute(order, listing, plan)
            if held:  # reorder_reports: the acknowledgement after the fills it acknowledges
                self._user(acknowledged)
            self._trim()
            self.save()
            if resp_type == "ACK":
                return {"symbol": symbol, "orderId": order["orderId"], "orderListId": -1, "clientOrderId": order["clientOrderId"], "transactTime": ts}
            return {**order, "transactTime": ts, **({} if resp_type == "RESULT" else {"fills": fills})}

    def _last(self, listing: Listing) -> Decimal | None:
        return listing.static if listing.static is not None else self.last_price

    def _plan(self, listing: Listing, side: str, q: Decimal, limit: Decimal | None) -> list[tuple[Decimal, Decimal]]:
        """(price, quantity) taken from the book's levels on the other side, best first, up to LIMIT (None: any price).

        The book is five levels a side one tick apart around the last print, level i holding i+1 units: an order larger
        than the touch fills in parts, level by level (deterministic)."""
        last = self._last(listing)
        if last is None:
            return []
        plan, left = [], q
        for i in range(BOOK_LEVELS):
            level_px = last + listing.tick * (i + 1) if side == "BUY" else last - listing.tick * (i + 1)
            if left <= 0 or (limit is not None and ((side == "BUY" and level_px > limit) or (side == "SELL" and level_px < limit))):
                break
            take = min(left, Decimal(1) + i)
            plan.append((level_px, take))
            left -= take
        return plan

    def _execute(self, order: dict[str, Any], listing: Listing, plan: list[tuple[Decimal, Decimal]]) -> list[dict[str, Any]]:
        """Take PLAN as taker, then rest the remainder (GTC limits), or expire it (MARKET without depth, IOC, FOK)."""
        tif, q = order["timeInForce"], Decimal(order["origQty"])
        limit_like = order["type"] != "MARKET" and order["type"] not in ("STOP_LOSS", "TAKE_PROFIT")
        if tif == "FOK" and sum((f[1] for f in plan), Decimal(0)) < q:
            plan = []  # fill or kill: all at once or nothing
        parts = self._parts(order, listing, plan) if plan and sum((f[1] for f in plan), Decimal(0)) == q else None
        if parts:  # partial_fills: the first part now, the others on their own thread
            fills = [self._fill(order, parts[0][0], maker=False, quantity=parts[0][1])]
            threading.Thread(target=self._fill_parts, args=(order["symbol"], order["orderId"], parts[1:]), name="venue-partial-fills",
                             daemon=True).start()
            return fills
        fills = [self._fill(order, price, maker=False, quantity=take) for price, take in plan]
        if Decimal(order["executedQty"]) >= q:
            return fills
        if not limit_like or tif in ("IOC", "FOK"):  # nothing (more) to take now: Binance expires it
            order["status"], order["isWorking"], order["updateTime"] = "EXPIRED", False, now_ms()
            self._report(order, "EXPIRED")
        else:
            self._hold(order, listing)
            self._account_update()
        return fills

    def _parts(self, order: dict[str, Any], listing: Listing, plan: list[tuple[Decimal, Decimal]]) -> list[tuple[Decimal, Decimal]] | None:
        """(price, quantity) of each part when partial_fills splits ORDER (PLAN fills it in full), else None: the percentages of
        its quantity (rounded down to the step, the last part the rest), each at the plan's level its first unit falls in."""
        q = Decimal(order["origQty"])
        split = self.split_order({"order_id": order["orderId"], "client_order_id": order["clientOrderId"], "symbol": order["symbol"],
                                  "quantity": order["origQty"]})
        if not split:
            return None
        qtys = [(q * p / 100).quantize(listing.step, rounding=ROUND_DOWN) for p in split[:-1]]
        qtys.append(q - sum(qtys, Decimal(0)))
        parts, done = [], Decimal(0)
        for part in qtys:
            if part <= 0:
                continue
            reached, level_px = Decimal(0), plan[-1][0]
            for price, take in plan:
                reached += take
                if done < reached:
                    level_px = price
                    break
            parts.append((level_px, part))
            done += part
        return parts if len(parts) > 1 else None

    def _fill_parts(self, symbol: str, order_id: int, parts: list[tuple[Decimal, Decimal]]) -> None:
        """The later parts of a split order, each partial_gap_s after the last; stops when the order is no longer open."""
        for price, part in parts:
            if self._stop.wait(self.partial_gap_s):
                return
            with self.lock:
                order = self._find(order_id, None, symbol)
                if order is None or order["status"] not in OPEN:
                    return
                self._fill(order, price, maker=False, quantity=min(part, Decimal(order["origQty"]) - Decimal(order["executedQty"])))
                self.save()

    @staticmethod
    def _lock_amount(side: str, rest: Decimal, price: Decimal | None) -> Decimal:
        return (rest * (price or Decimal(0)) * (1 + FEE)).quantize(QUOTE_DP) if side == "BUY" else rest

    def _order_lock(self, order: dict[str, Any]) -> Decimal:
        """What an open order holds: a buy its rest at its price (a stop market buy: at its stop price) plus the fee; a sell its rest."""
        rest = Decimal(order["origQty"]) - Decimal(order["executedQty"])
        price = Decimal(order["price"]) if Decimal(order["price"]) > 0 else Decimal(order["stopPrice"])
        return self._lock_amount(order["side"], rest, price)

    def _hold(self, order: dict[str, Any], listing: Listing, release: bool = False) -> None:
        amount_ = self._order_lock(order) * (-1 if release else 1)
        ccy = listing.quote if order["side"] == "BUY" else listing.base
        self._move(ccy, free=-amount_, locked=amount_)

    def _fill(self, order: dict[str, Any], price: Decimal, maker: bool, quantity: Decimal | None = None) -> dict[str, Any]:
        listing = self.listings[order["symbol"]]
        base_ccy, quote_ccy = listing.base, listing.quote
        q = Decimal(order["origQty"]) - Decimal(order["executedQty"]) if quantity is None else quantity
        quote = (q * price).quantize(QUOTE_DP)
        fee = (quote * FEE).quantize(QUOTE_DP)
        if maker:  # release what the resting order held
            self._hold(order, listing, release=True)
        if order["side"] == "BUY":
            self._move(quote_ccy, free=-(quote + fee))
            self._move(base_ccy, free=q)
        else:
            self._move(base_ccy, free=-q)
            self._move(quote_ccy, free=quote - fee)
        ts = now_ms()
        trade_id = self.state["next_trade_id"]
        self.state["next_trade_id"] += 1
        order["executedQty"] = listing.qty(Decimal(order["executedQty"]) + q)
        order["cummulativeQuoteQty"] = amount(Decimal(order["cummulativeQuoteQty"]) + quote)
        done = Decimal(order["executedQty"]) >= Decimal(order["origQty"])
        order["status"], order["updateTime"] = ("FILLED" if done else "PARTIALLY_FILLED"), ts
        if done:
            order["isWorking"] = False
        elif maker:  # a resting order filled in part keeps resting: hold what is left
            self._hold(order, listing)
        trade = {"symbol": order["symbol"], "id": trade_id, "orderId": order["orderId"], "orderListId": -1, "price": listing.px(price),
                 "qty": listing.qty(q), "quoteQty": amount(quote), "commission": amount(fee), "commissionAsset": quote_ccy, "time": ts,
                 "isBuyer": order["side"] == "BUY", "isMaker": maker, "isBestMatch": True}
        self.state["trades"].append(trade)
        if listing.static is not None:  # no dataset prints this symbol: the account's own fills are its market trades
            self._record_print(listing, price, q, ts, buyer_maker=(order["side"] == "BUY") == maker)
        info = {"trade_id": trade_id, "order_id": order["orderId"], "client_order_id": order["clientOrderId"], "symbol": order["symbol"]}
        report = None
        if not self.lose_fill(info):
            report = self._report(order, "TRADE", last_qty=q, last_px=price, trade_id=trade_id, maker=maker, fee=fee, quote=quote)
        self._account_update()
        if report is not None and self.duplicate_report(info):
            self._user(report)  # the same report again, after the account update (duplicate_reports)
        return {"price": listing.px(price), "qty": listing.qty(q), "commission": amount(fee), "commissionAsset": quote_ccy, "tradeId": trade_id}

    def _match(self, price: Decimal) -> None:
        self._trigger_stops(price)
        self._fill_resting(lambda side, limit: (side == "BUY" and price <= limit) or (side == "SELL" and price >= limit), self.symbol)

    def _trigger_stops(self, price: Decimal) -> None:
        """Stop and take-profit orders of the replayed symbol whose stopPrice the trade price reached start working:
        the MARKET kinds take the book, the LIMIT kinds take what crosses and rest the remainder."""
        listing = self.listing
        for order in list(self.state["orders"]):
            if order["symbol"] != self.symbol or order["type"] not in STOP_TYPES or order["status"] not in OPEN or order["isWorking"]:
                continue
            if not _triggered(order["type"], order["side"], Decimal(order["stopPrice"]), price):
                continue
            self._hold(order, listing, release=True)
            order["isWorking"], order["workingTime"] = True, now_ms()
            limit = Decimal(order["price"]) if order["type"].endswith("_LIMIT") else None
            plan = self._plan(listing, order["side"], Decimal(order["origQty"]), limit)
            if order["side"] == "BUY":
                cost = (sum((f[0] * f[1] for f in plan), Decimal(0)) * (1 + FEE)).quantize(QUOTE_DP)
                if Decimal(self._bal(listing.quote)["free"]) < cost:  # the market moved past what it held
                    order["status"], order["isWorking"], order["updateTime"] = "EXPIRED", False, now_ms()
                    self._report(order, "EXPIRED")
                    self._account_update()
                    continue
            self._execute(order, listing, plan)
            self.save()

    def fill_open(self) -> list[int]:
        """Fill every resting order at its own price as maker, as if the market traded through it; their ids."""
        with self.lock:
            return self._fill_resting(lambda side, limit: True, None)

    def cancel_targets(self, order_id: int | None, client_id: str | None, symbol: str, every: bool) -> list[dict[str, Any]]:
        """The resting orders a cancel would cancel (EVERY: DELETE openOrders, all of SYMBOL's), as {orderId, clientOrderId}."""
        with self.lock:
            if every:
                found = [o for o in self.state["orders"] if o["status"] in OPEN and o["symbol"] == symbol]
            else:
                one = self._find(order_id, client_id, symbol) if order_id is not None or client_id is not None else None
                found = [one] if one is not None and one["status"] in OPEN else []
            return [{"orderId": o["orderId"], "clientOrderId": o["clientOrderId"]} for o in found]

    def fill_orders(self, order_ids: list[int]) -> list[int]:
        """Fill the resting orders ORDER_IDS at their own price as maker (the cancel_fill_race fault); the ids filled."""
        with self.lock:
            return self._fill_resting(lambda side, limit: True, None, set(order_ids))

    def _fill_resting(self, reached: Callable[[str, Decimal], bool], symbol: str | None, only: set[int] | None = None) -> list[int]:
        filled = []
        for order in self.state["orders"]:
            if order["status"] not in OPEN or not order["isWorking"] or Decimal(order["price"]) <= 0:
                continue
            if only is not None and order["orderId"] not in only:
                continue
            if symbol is not None and order["symbol"] != symbol:
                continue
            limit = Decimal(order["price"])
            if reached(order["side"], limit):
                self._fill(order, limit, maker=True)
                self.save()
                filled.append(order["orderId"])
        return filled

    def cancel(self, order_id: int | None, client_id: str | None, symbol: str | None = None) -> dict[str, Any]:
        with self.lock:
            order = self._find(order_id, client_id, symbol or self.symbol)
            if order is None or order["status"] not in OPEN:
                raise VenueError(400, -2011, "Unknown order sent.")
            self._cancel(order)
            self.save()
            return dict(order)

    def cancel_all(self, symbol: str | None = None) -> list[dict[str, Any]]:
        symbol = symbol or self.symbol
        with self.lock:
            open_ = [o for o in self.state["orders"] if o["status"] in OPEN and o["symbol"] == symbol]
            if not open_:
                raise VenueError(400, -2011, "Unknown order sent.")
            for order in open_:
                self._cancel(order)
            self.save()
            return [dict(o) for o in open_]

    def _cancel(self, order: dict[str, Any]) -> None:
        self._hold(order, self.listings[order["symbol"]], release=True)
        order["status"], order["updateTime"], order["isWorking"] = "CANCELED", now_ms(), False
        self._report(order, "CANCELED")
        self._account_update()

    def _report(self, order: dict[str, Any], exec_type: str, last_qty: Decimal = Decimal(0), last_px: Decimal = Decimal(0),
                trade_id: int = -1, maker: bool = False, fee: Decimal | None = None, quote: Decimal = Decimal(0), emit: bool = True) -> dict[str, Any]:
        ts = now_ms()
        listing = self.listings[order["symbol"]]
        data = {"e": "executionReport", "E": ts, "s": order["symbol"], "c": order["clientOrderId"], "S": order["side"], "o": order["type"],
                "f": order["timeInForce"], "q": order["origQty"], "p": order["price"], "P": order["stopPrice"], "F": listing.qty(Decimal(0)),
                "g": -1, "C": order["clientOrderId"] if exec_type == "CANCELED" else "", "x": exec_type, "X": order["status"], "r": "NONE",
                "i": order["orderId"], "l": listing.qty(last_qty), "z": order["executedQty"], "L": listing.px(last_px), "T": ts, "t": trade_id,
                "I": 0, "w": order["status"] == "NEW" and order["isWorking"], "m": maker, "M": False, "O": order["time"],
                "Z": order["cummulativeQuoteQty"], "Y": amount(quote), "Q": amount(Decimal(0)), "W": order["workingTime"], "V": "NONE"}
        # Binance sends n and N on every report ("0" and null before a fill); NautilusTrader 2.0 requires n
        data["n"], data["N"] = amount(fee if fee is not None else Decimal(0)), listing.quote if fee is not None else None
        if emit:  # not emitted: the caller sends it later (reorder_reports)
            self._user(data)
        return data

    def _trim(self) -> None:
        orders = self.state["orders"]
        while len(orders) > MAX_ORDERS_KEPT:
            idx = next((i for i, o in enumerate(orders) if o["status"] not in ("NEW", "PARTIALLY_FILLED")), None)
            if idx is None:
                break
            orders.pop(idx)
        del self.state["trades"][:-MAX_TRADES_KEPT]

    def snapshot(self) -> dict[str, Any]:
        """A copy of the saved state (for /admin/state and tests)."""
        with self.lock:
            import copy

            return copy.deepcopy(self.state)
