"""The venue's one account on one symbol: replay, matching, balances, persisted state.

Replay: each dataset bar becomes four price points (open, then the nearer extreme, the other
extreme, close), spread evenly over 60 s / speed. Every point is a trade print, a one-tick-wide
book around it (depth diffs with consecutive update ids, a bookTicker) and a matching pass; the
close also emits the bar as a closed 1-minute kline. Timestamps are wall-clock (a live node runs in
real time); prices and volumes are the dataset's.

Matching (deterministic, no randomness): a market order fills in full at the touch (ask for a buy,
bid for a sell) as taker; a limit order that crosses the touch does the same; otherwise it rests and
fills in full at its own price as maker at the first price point that reaches it. Fees: the
tradeFee rate, always charged in the quote asset (Binance charges the received asset; simpler here,
and stated in docs/node.md). Balances are checked and locked as Binance does for a spot account.

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
import secrets
import sys
import threading
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, Callable

from opslab import clock, fs, market
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
BAR_MS = 60_000
CURSOR_SAVE_S = 1.0  # the replay cursor alone is saved at most once a second (orders, fills, balances: at once)

Publish = Callable[[str, dict[str, Any]], None]


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


def price_points(bar: tuple[str, ...]) -> list[Decimal]:
    """The four prints of a bar: open, nearer extreme, farther extreme, close."""
    o, h, low, c = (Decimal(v) for v in bar[1:5])
    return [o, low, h, c] if c >= o else [o, h, low, c]


class Exchange:
    """All venue state behind one lock; publish(stream, data) is called under it, in order."""

    def __init__(self, run_id: str, dataset_id: str, bars: list[tuple[str, ...]], balances: dict[str, str], speed: float,
                 state_path: Path | None, publish: Publish, faults: Callable[[], dict[str, Any]], reset: bool = False,
                 on_demand: bool = False) -> None:
        self.bars, self.speed, self.state_path, self.publish, self.faults = bars, speed, state_path, publish, faults
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
        if state_path is not None and fs.exists(state_path) and not reset:
            self.state = self._load(run_id, dataset_id)
        else:
            self.state = {
                "schema_version": SCHEMA_VERSION, "run_id": run_id, "venue": market.VENUE, "symbol": SYMBOL, "dataset_id": dataset_id,
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
        problems = errors_for("venue_state", doc, str(self.state_path))
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
        fs.write_json(self.state_path, self.state)  # built by this class field by field; verify checks the schema

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
                pause = BAR_MS / 1000.0 / self.speed / 4  # read every time: the speed may be changed while it runs
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
        size = max(STEP, (Decimal(bar[5]) / 4).quantize(STEP, ROUND_DOWN))
        self.last_price = price
        self._emit(f"{SYMBOL.lower()}@trade", {"e": "trade", "E": ts, "s": SYMBOL, "t": trade_id, "p": px(price), "q": qty(size),
                                               "T": ts, "m": trade_id % 2 == 0, "M": True})
        if not faults.get("stale_book"):
            self._move_book(price, ts, int(faults.get("sequence_gap", 0)))
        self._match(price)

    def _move_book(self, price: Decimal, ts: int, gap: int) -> None:
        bids = [[px(price - TICK * (i + 1)), qty(Decimal(1) + i)] for i in range(BOOK_LEVELS)]
        asks = [[px(price + TICK * (i + 1)), qty(Decimal(1) + i)] for i in range(BOOK_LEVELS)]
        old_bids, old_asks = self.book
        gone_b = [[p, "0.000000"] for p, _ in old_bids if p not in {b[0] for b in bids}]
        gone_a = [[p, "0.000000"] for p, _ in old_asks if p not in {a[0] for a in asks}]
        first = self.state["update_id"] + 1 + gap
        self.state["update_id"] = first
        self.book, self.book_ms = (bids, asks), ts
        self._emit(f"{SYMBOL.lower()}@depth@100ms", {"e": "depthUpdate", "E": ts, "s": SYMBOL, "U": first, "u": first,
                                                    "b": gone_b + bids, "a": gone_a + asks})
        self._emit(f"{SYMBOL.lower()}@depth", {"e": "depthUpdate", "E": ts, "s": SYMBOL, "U": first, "u": first,
                                              "b": gone_b + bids, "a": gone_a + asks})
        self._emit(f"{SYMBOL.lower()}@bookTicker", {"u": first, "s": SYMBOL, "b": bids[0][0], "B": bids[0][1],
                                                   "a": asks[0][0], "A": asks[0][1]})

    def _kline(self, bar: tuple[str, ...]) -> None:
        # Binance's kline: open time on the minute, close time = open + 59999 ms
        # (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams, Kline/Candlestick Streams).
        # Every bar is still one closed kline, one minute after the last: the minute that just ended, or
        # the next minute when the replay runs faster than one bar a minute (a compressed market).
        ts = now_ms()
        open_ms = max(ts // BAR_MS * BAR_MS - BAR_MS, self._kline_open + BAR_MS)
        self._kline_open = open_ms
        trade_id = self.state["next_market_trade_id"] - 1
        volume = Decimal(bar[5])
        self._emit(f"{SYMBOL.lower()}@kline_1m", {"e": "kline", "E": ts, "s": SYMBOL, "k": {
            "t": open_ms, "T": open_ms + BAR_MS - 1, "s": SYMBOL, "i": "1m", "f": trade_id - 3, "L": trade_id,
            "o": bar[1], "c": bar[4], "h": bar[2], "l": bar[3], "v": qty(volume), "n": 4, "x": True,
            "q": amount(volume * Decimal(bar[4])), "V": qty(volume / 2), "Q": amount(volume / 2 * Decimal(bar[4])), "B": "0"}})

    def depth(self, limit: int) -> dict[str, Any]:
        """The book snapshot (E: when the book last moved); on demand, the book first moves one price point."""
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

    def klines(self, limit: int) -> list[list[Any]]:
        """The replayed bars so far (the most recent LIMIT), stamped one minute apart ending now."""
        done = self.bars[max(0, self.state["replay"]["cursor"] - limit):self.state["replay"]["cursor"]]
        end = now_ms() // BAR_MS * BAR_MS
        out = []
        for i, bar in enumerate(done):
            open_ms = end - (len(done) - i) * BAR_MS
            out.append([open_ms, bar[1], bar[2], bar[3], bar[4], bar[5], open_ms + BAR_MS - 1,
                        amount(Decimal(bar[5]) * Decimal(bar[4])), 4, qty(Decimal(bar[5]) / 2), "0", "0"])
        return out

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
    def _find(self, order_id: int | None, client_id: str | None) -> dict[str, Any] | None:
        for order in reversed(self.state["orders"]):
            if (order_id is not None and order["orderId"] == order_id) or (order_id is None and order["clientOrderId"] == client_id):
                return order
        return None

    def order(self, order_id: int | None, client_id: str | None) -> dict[str, Any]:
        with self.lock:
            found = self._find(order_id, client_id)
            if found is None:
                raise VenueError(400, -2013, "Order does not exist.")
            return dict(found)

    def open_orders(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(o) for o in self.state["orders"] if o["status"] in ("NEW", "PARTIALLY_FILLED")]

    def all_orders(self, limit: int, from_order_id: int | None = None, start_ms: int | None = None,
                   end_ms: int | None = None) -> list[dict[str, Any]]:
        """Binance's allOrders: orderId >= FROM_ORDER_ID ascending, else the most recent LIMIT; time filters."""
        with self.lock:
            rows = [o for o in self.state["orders"] if _in_window(o["time"], start_ms, end_ms)
                    and (from_order_id is None or o["orderId"] >= from_order_id)]
            return [dict(o) for o in (rows[:limit] if from_order_id is not None else rows[-limit:])]

    def my_trades(self, limit: int, from_id: int | None = None, order_id: int | None = None, start_ms: int | None = None,
                  end_ms: int | None = None) -> list[dict[str, Any]]:
        """Binance's myTrades: id >= FROM_ID ascending, else the most recent LIMIT; order and time filters."""
        with self.lock:
            rows = [t for t in self.state["trades"] if _in_window(t["time"], start_ms, end_ms)
                    and (from_id is None or t["id"] >= from_id) and (order_id is None or t["orderId"] == order_id)]
            return [dict(t) for t in (rows[:limit] if from_id is not None else rows[-limit:])]

    def place(self, side: str, type_: str, quantity: str, price: str | None, tif: str | None, client_id: str | None) -> dict[str, Any]:
        """POST /api/v3/order: accept (NEW), then fill or rest; the FULL response."""
        try:
            q = Decimal(quantity)
            p = Decimal(price) if price is not None else None
        except ArithmeticError:
            raise VenueError(400, -1100, "Illegal characters found in parameter 'quantity' or 'price'.") from None
        if side not in ("BUY", "SELL"):
            raise VenueError(400, -1116, "Invalid side.")
        if type_ not in ("MARKET", "LIMIT"):
            raise VenueError(400, -1116, "Invalid orderType.")  # the lab venue matches MARKET and LIMIT only
        if q <= 0 or q != q.quantize(STEP) or q > Decimal(9000):
            raise VenueError(400, -1013, "Filter failure: LOT_SIZE")
        if type_ == "LIMIT" and (p is None or p <= 0 or p != p.quantize(TICK)):
            raise VenueError(400, -1013, "Filter failure: PRICE_FILTER")
        with self.lock:
            if client_id and self._find(None, client_id) and self._find(None, client_id)["status"] in ("NEW", "PARTIALLY_FILLED"):
                raise VenueError(400, -2010, "Duplicate order sent.")
            if len(self.open_orders()) >= MAX_OPEN_ORDERS:
                raise VenueError(400, -1015, "Too many new orders.")
            if self.last_price is None and (type_ == "MARKET"):
                raise VenueError(400, -2010, "Market is closed.")
            ask = self.last_price + TICK if self.last_price is not None else None
            bid = self.last_price - TICK if self.last_price is not None else None
            touch = ask if side == "BUY" else bid
            crosses = touch is not None and (type_ == "MARKET" or (side == "BUY" and p >= ask) or (side == "SELL" and p <= bid))
            fill_px = touch if crosses else p
            need_quote = (q * fill_px * (1 + FEE)).quantize(QUOTE_DP) if side == "BUY" else Decimal(0)
            if side == "BUY" and Decimal(self._bal(QUOTE)["free"]) < need_quote:
                raise VenueError(400, -2010, "Account has insufficient balance for requested action.")
            if side == "SELL" and Decimal(self._bal(BASE)["free"]) < q:
                raise VenueError(400, -2010, "Account has insufficient balance for requested action.")
            ts = now_ms()
            order = {"symbol": SYMBOL, "orderId": self.state["next_order_id"], "orderListId": -1,
                     "clientOrderId": client_id or f"venue-{self.state['next_order_id']}",
                     "price": px(p) if p is not None else "0.00", "origQty": qty(q), "executedQty": qty(Decimal(0)),
                     "cummulativeQuoteQty": amount(Decimal(0)), "status": "NEW", "timeInForce": tif or "GTC", "type": type_, "side": side,
                     "stopPrice": "0.00", "icebergQty": qty(Decimal(0)), "time": ts, "updateTime": ts, "isWorking": True,
                     "workingTime": ts, "origQuoteOrderQty": amount(Decimal(0)), "selfTradePreventionMode": "NONE"}
            self.state["next_order_id"] += 1
            self.state["orders"].append(order)
            self._report(order, "NEW")
            fills = []
            if crosses:
                fills.append(self._fill(order, fill_px, maker=False))
            elif tif in ("IOC", "FOK"):  # nothing to take now: Binance expires it
                order["status"], order["isWorking"] = "EXPIRED", False
                self._report(order, "EXPIRED")
            else:
                if side == "BUY":
                    self._move(QUOTE, free=-need_quote, locked=need_quote)
                else:
                    self._move(BASE, free=-q, locked=q)
                self._account_update()
            self._trim()
            self.save()
            return {**order, "transactTime": ts, "fills": fills}

    def _fill(self, order: dict[str, Any], price: Decimal, maker: bool) -> dict[str, Any]:
        q = Decimal(order["origQty"]) - Decimal(order["executedQty"])
        quote = (q * price).quantize(QUOTE_DP)
        fee = (quote * FEE).quantize(QUOTE_DP)
        if order["side"] == "BUY":
            if maker:  # release what the resting order locked
                locked = (Decimal(order["origQty"]) * Decimal(order["price"]) * (1 + FEE)).quantize(QUOTE_DP)
                self._move(QUOTE, free=locked, locked=-locked)
            self._move(QUOTE, free=-(quote + fee))
            self._move(BASE, free=q)
        else:
            if maker:
                self._move(BASE, locked=-q, free=q)
            self._move(BASE, free=-q)
            self._move(QUOTE, free=quote - fee)
        ts = now_ms()
        trade_id = self.state["next_trade_id"]
        self.state["next_trade_id"] += 1
        order["executedQty"] = qty(Decimal(order["executedQty"]) + q)
        order["cummulativeQuoteQty"] = amount(Decimal(order["cummulativeQuoteQty"]) + quote)
        order["status"], order["updateTime"], order["isWorking"] = "FILLED", ts, False
        trade = {"symbol": SYMBOL, "id": trade_id, "orderId": order["orderId"], "orderListId": -1, "price": px(price), "qty": qty(q),
                 "quoteQty": amount(quote), "commission": amount(fee), "commissionAsset": QUOTE, "time": ts,
                 "isBuyer": order["side"] == "BUY", "isMaker": maker, "isBestMatch": True}
        self.state["trades"].append(trade)
        self._report(order, "TRADE", last_qty=q, last_px=price, trade_id=trade_id, maker=maker, fee=fee, quote=quote)
        self._account_update()
        return {"price": px(price), "qty": qty(q), "commission": amount(fee), "commissionAsset": QUOTE, "tradeId": trade_id}

    def _match(self, price: Decimal) -> None:
        self._fill_resting(lambda side, limit: (side == "BUY" and price <= limit) or (side == "SELL" and price >= limit))

    def fill_open(self) -> list[int]:
        """Fill every resting order at its own price as maker, as if the market traded through it; their ids."""
        with self.lock:
            return self._fill_resting(lambda side, limit: True)

    def _fill_resting(self, reached: Callable[[str, Decimal], bool]) -> list[int]:
        filled = []
        for order in self.state["orders"]:
            if order["status"] != "NEW" or order["type"] != "LIMIT":
                continue
            limit = Decimal(order["price"])
            if reached(order["side"], limit):
                self._fill(order, limit, maker=True)
                self.save()
                filled.append(order["orderId"])
        return filled

    def cancel(self, order_id: int | None, client_id: str | None) -> dict[str, Any]:
        with self.lock:
            order = self._find(order_id, client_id)
            if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
                raise VenueError(400, -2011, "Unknown order sent.")
            self._cancel(order)
            self.save()
            return dict(order)

    def cancel_all(self) -> list[dict[str, Any]]:
        with self.lock:
            open_ = [o for o in self.state["orders"] if o["status"] in ("NEW", "PARTIALLY_FILLED")]
            if not open_:
                raise VenueError(400, -2011, "Unknown order sent.")
            for order in open_:
                self._cancel(order)
            self.save()
            return [dict(o) for o in open_]

    def _cancel(self, order: dict[str, Any]) -> None:
        rest = Decimal(order["origQty"]) - Decimal(order["executedQty"])
        if order["side"] == "BUY":
            locked = (rest * Decimal(order["price"]) * (1 + FEE)).quantize(QUOTE_DP)
            self._move(QUOTE, free=locked, locked=-locked)
        else:
            self._move(BASE, free=rest, locked=-rest)
        order["status"], order["updateTime"], order["isWorking"] = "CANCELED", now_ms(), False
        self._report(order, "CANCELED")
        self._account_update()

    def _report(self, order: dict[str, Any], exec_type: str, last_qty: Decimal = Decimal(0), last_px: Decimal = Decimal(0),
                trade_id: int = -1, maker: bool = False, fee: Decimal | None = None, quote: Decimal = Decimal(0)) -> None:
        ts = now_ms()
        data = {"e": "executionReport", "E": ts, "s": SYMBOL, "c": order["clientOrderId"], "S": order["side"], "o": order["type"],
                "f": order["timeInForce"], "q": order["origQty"], "p": order["price"], "P": "0.00", "F": qty(Decimal(0)), "g": -1,
                "C": order["clientOrderId"] if exec_type == "CANCELED" else "", "x": exec_type, "X": order["status"], "r": "NONE",
                "i": order["orderId"], "l": qty(last_qty), "z": order["executedQty"], "L": px(last_px), "T": ts, "t": trade_id,
                "I": 0, "w": order["status"] == "NEW", "m": maker, "M": False, "O": order["time"],
                "Z": order["cummulativeQuoteQty"], "Y": amount(quote), "Q": amount(Decimal(0)), "W": order["workingTime"], "V": "NONE"}
        if fee is not None:
            data["n"], data["N"] = amount(fee), QUOTE
        self._user(data)

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
