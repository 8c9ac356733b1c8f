"""Binance USD-M Futures beside Spot: one perpetual (BTCUSDT, NautilusTrader's BTCUSDT-PERP.BINANCE), one USDT wallet.

Priced from the Spot replay (exchange.py): every Spot trade print becomes the perpetual's last and mark price (rounded to
its tick), a one-tick-wide book around it, an aggTrade, a markPriceUpdate and a matching pass; every closed Spot kline is
the perpetual's kline. Nothing of Spot changes: the futures account only reads what the replay publishes.

One-way position mode (Binance's positionSide BOTH, NautilusTrader's NETTING); a LONG/SHORT positionSide is refused with
Binance's -4061 and hedge mode is not served (POST positionSide/dual answers Binance's own codes, see set_dual_side).
Cross margin: wallet balance = deposit + realized PnL - commissions - funding; unrealized PnL = amount x (mark - entry);
initial margin = |amount| x mark / leverage. Funding at an accelerated interval: every FUNDING_EVERY_BARS replayed bars
(8 h of dataset minutes; tc venue serve --funding-every-bars), wallet -= amount x mark x FUNDING_RATE, pushed as ACCOUNT_UPDATE with reason FUNDING_FEE.

Matching is Spot's rule (deterministic): MARKET takes the touch, a marketable LIMIT takes it, else it rests and fills at
its own price as maker at the first print that reaches it. Conditional order types on /fapi/v1/order get -4120 (Binance
moved them to the Algo Service on 2025-12-09); the algo endpoints answer with no algo orders.

Shapes and codes: https://developers.binance.com/docs/derivatives/usds-margined-futures (New Order, Query Order,
Position Information V3, Account Information V2/V3, Futures Account Balance V2/V3, User Data Streams: ORDER_TRADE_UPDATE,
ACCOUNT_UPDATE, listenKeyExpired; error codes), checked against NautilusTrader 1.221.0's and 1.231.0's msgspec structs.
State is in memory only (the venue's state.json schema is Spot's; a restarted venue starts the futures account afresh).
"""

from __future__ import annotations

import secrets
import threading
import time
from decimal import Decimal
from typing import Any, Callable

from opslab.venue.exchange import BAR_MS, BOOK_LEVELS, USER_STREAM, VenueError, now_ms
from opslab.venue.futures_contract import (CONDITIONAL, DEFAULT_LEVERAGE, DP, FUNDING_EVERY_BARS, FUNDING_RATE, MAKER_FEE,
                                           MARKET_MAX_QTY, MAX_LEVERAGE, MAX_NOTIONAL_VALUE, MAX_PRICE, MAX_QTY, MIN_NOTIONAL, MIN_PRICE,
                                           MIN_QTY, ORDER_TYPES, QUOTE, STEP, SYMBOL, TAKER_FEE, TICK, TIFS, amount, apply_fill,
                                           decimal_param, num, px, qty, to_tick, unrealized)

MAX_OPEN_ORDERS = 200
MAX_ORDERS_KEPT = MAX_TRADES_KEPT = MAX_INCOME_KEPT = 10_000
LISTEN_KEY_VALID_S = 3600.0  # "valid for 60 minutes after creation", extended by a keepalive (USD-M user data streams)
OPEN = ("NEW", "PARTIALLY_FILLED")
Publish = Callable[[str, dict[str, Any]], None]



class FuturesAccount:
    """The perpetual's market (derived from Spot's prints), the USDT wallet, one position, orders and trades, behind one lock.

    PUBLISH(stream, data) sends to the futures WebSocket hub (market streams by name, user data as USER_STREAM); it is
    called under the lock, in order, and never waits. START_REPLAY starts Spot's replay (the futures streams follow it)."""

    def __init__(self, deposit: Decimal, publish: Publish, start_replay: Callable[[], None], speed: float,
                 funding_every_bars: int = FUNDING_EVERY_BARS) -> None:
        self.publish, self._start_replay, self.speed = publish, start_replay, speed
        self.funding_every_bars = funding_every_bars
        self.lock = threading.RLock()
        self.wallet = deposit
        self.amt = self.entry = Decimal(0)
        self.leverage, self.margin_type = DEFAULT_LEVERAGE, "CROSSED"
        self.position_time = 0
        self.mark: Decimal | None = None
        self.book: tuple[list[list[str]], list[list[str]]] = ([], [])
        self.update_id, self.prev_update_id = 1000, 1000
        self.next_order_id, self.next_trade_id, self.next_agg_id = 1, 1, 1
        self.orders: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.income: list[dict[str, Any]] = []  # Get Income History's rows: REALIZED_PNL, COMMISSION, FUNDING_FEE (the newest MAX_INCOME_KEPT)
        self.next_tran_id = 1
        self.listen_keys: dict[str, float] = {}  # key -> the monotonic time it lapses without a keepalive
        self.listen_key_valid_s = LISTEN_KEY_VALID_S
        self.monotonic: Callable[[], float] = time.monotonic  # the listen keys' clock (a test moves it)
        self.on_lapse: Callable[[], object] = self.expire_listen_keys  # server.py: the hub's, which also tells the streams
        self.bars_seen = 0
        self.next_funding_ms = now_ms() + self._funding_period_ms()

    # --- the duck type streams.Hub needs of an exchange ----------------------------------------
    def start_replay(self) -> None:
        self._start_replay()

    def new_listen_key(self) -> str:
        """POST /fapi/v1/listenKey: the account's key still valid (its validity extended), else a new one (Binance's rule)."""
        with self.lock:
            self._lapse()
            key = next(iter(self.listen_keys), None) or secrets.token_hex(32)
            self.listen_keys = {key: self.monotonic() + self.listen_key_valid_s}
            return key

    def has_listen_key(self, key: str) -> bool:
        with self.lock:
            self._lapse()
            return key in self.listen_keys

    def keepalive(self, key: str | None) -> dict[str, Any]:
        """PUT /fapi/v1/listenKey: another LISTEN_KEY_VALID_S for the account's key (the parameter is optional at Binance)."""
        with self.lock:
            self._lapse()
            if not self.listen_keys or (key and key not in self.listen_keys):
                raise VenueError(400, -1125, "This listenKey does not exist.")
            current = next(iter(self.listen_keys))
            self.listen_keys[current] = self.monotonic() + self.listen_key_valid_s
            return {"listenKey": current}

    def close_listen_key(self) -> dict[str, Any]:
        with self.lock:
            self.listen_keys.clear()
            return {}

    def expire_listen_keys(self) -> list[str]:
        """Expire every listen key now: a keepalive answers -1125 from now; the keys."""
        with self.lock:
            gone, self.listen_keys = list(self.listen_keys), {}
            return gone

    def _lapse(self) -> None:
        """A key not kept alive within LISTEN_KEY_VALID_S ends: its streams get listenKeyExpired (ON_LAPSE, the hub's)."""
        if self.listen_keys and min(self.listen_keys.values()) <= self.monotonic():
            self.on_lapse()

    # --- the market, from Spot's prints -------------------------------------------------------------
    def on_spot(self, stream: str, data: dict[str, Any]) -> None:
        """What Spot's replay published (called under Spot's lock, in order): the perpetual's events from its trades and klines."""
        if stream == f"{SYMBOL.lower()}@trade":
            self._print(Decimal(data["p"]), Decimal(data["q"]), bool(data["m"]), int(data["T"]))
        elif stream == f"{SYMBOL.lower()}@kline_1m":
            self._kline(data)

    def _print(self, spot_price: Decimal, size: Decimal, buyer_maker: bool, ts: int) -> None:
        with self.lock:
            self._lapse()
            price = to_tick(spot_price)
            self.mark = price
            agg = self.next_agg_id
            self.next_agg_id += 1
            q = max(STEP, size.quantize(STEP))
            self.publish(f"{SYMBOL.lower()}@aggTrade", {"e": "aggTrade", "E": ts, "s": SYMBOL, "a": agg, "p": px(price), "q": qty(q),
                                                        "f": agg, "l": agg, "T": ts, "m": buyer_maker})
            self.publish(f"{SYMBOL.lower()}@trade", {"e": "trade", "E": ts, "T": ts, "s": SYMBOL, "t": agg, "p": px(price), "q": qty(q),
                                                     "X": "MARKET", "m": buyer_maker})
            mark = {"e": "markPriceUpdate", "E": ts, "s": SYMBOL, "p": px(price), "i": px(price), "P": px(price),
                    "r": format(FUNDING_RATE, "f"), "T": self.next_funding_ms}
            self.publish(f"{SYMBOL.lower()}@markPrice", mark)
            self.publish(f"{SYMBOL.lower()}@markPrice@1s", mark)
            self._move_book(price, ts)
            self._match(price)

    def _move_book(self, price: Decimal, ts: int) -> None:
        bids = [[px(price - TICK * (i + 1)), qty(Decimal(1 + i))] for i in range(BOOK_LEVELS)]
        asks = [[px(price + TICK * (i + 1)), qty(Decimal(1 + i))] for i in range(BOOK_LEVELS)]
        old_bids, old_asks = self.book
        gone_b = [[p, qty(Decimal(0))] for p, _ in old_bids if p not in {b[0] for b in bids}]
        gone_a = [[p, qty(Decimal(0))] for p, _ in old_asks if p not in {a[0] for a in asks}]
        self.prev_update_id, self.update_id = self.update_id, self.update_id + 1
        self.book = (bids, asks)
        diff = {"e": "depthUpdate", "E": ts, "T": ts, "s": SYMBOL, "U": self.update_id, "u": self.update_id, "pu": self.prev_update_id,
                "b": gone_b + bids, "a": gone_a + asks}
        for name in ("depth", "depth@100ms", "depth@250ms", "depth@500ms"):
            self.publish(f"{SYMBOL.lower()}@{name}", diff)
        self.publish(f"{SYMBOL.lower()}@bookTicker", {"e": "bookTicker", "u": self.update_id, "s": SYMBOL, "b": bids[0][0], "B": bids[0][1],
                                                      "a": asks[0][0], "A": asks[0][1], "T": ts, "E": ts})

    def _kline(self, spot: dict[str, Any]) -> None:
        k = dict(spot["k"])
        for name in ("o", "h", "l", "c"):
            k[name] = px(Decimal(k[name]))
        k["v"], k["V"] = qty(Decimal(k["v"])), qty(Decimal(k["V"]))
        with self.lock:
            self.publish(f"{SYMBOL.lower()}@kline_1m", {"e": "kline", "E": spot["E"], "s": SYMBOL, "k": k})
            self.bars_seen += 1
            if self.bars_seen % self.funding_every_bars == 0:
                self.fund()

    def _funding_period_ms(self) -> int:
        return int(self.funding_every_bars * BAR_MS / self.speed)

    def fund(self) -> Decimal:
        """Funding now: the position pays amount x mark x FUNDING_RATE (a short receives it); ACCOUNT_UPDATE FUNDING_FEE. The fee."""
        with self.lock:
            self.next_funding_ms = now_ms() + self._funding_period_ms()
            if self.amt == 0 or self.mark is None:
                return Decimal(0)
            fee = (self.amt * self.mark * FUNDING_RATE).quantize(DP)
            self.wallet -= fee
            self._income("FUNDING_FEE", -fee, "", now_ms())
            self._account_update("FUNDING_FEE", -fee, with_position=False)
            return fee

    # --- market data answers -----------------------------------------------------------------------
    def depth(self, limit: int) -> dict[str, Any]:
        with self.lock:
            bids, asks = self.book
            ts = now_ms()
            return {"lastUpdateId": self.update_id, "E": ts, "T": ts, "bids": bids[:limit], "asks": asks[:limit]}

    def book_ticker(self) -> dict[str, Any]:
        with self.lock:
            bids, asks = self.book
            zero_px, zero_q = px(Decimal(0)), qty(Decimal(0))
            return {"symbol": SYMBOL, "bidPrice": bids[0][0] if bids else zero_px, "bidQty": bids[0][1] if bids else zero_q,
                    "askPrice": asks[0][0] if asks else zero_px, "askQty": asks[0][1] if asks else zero_q, "time": now_ms()}

    def premium_index(self) -> dict[str, Any]:
        with self.lock:
            mark = px(self.mark or Decimal(0))
            return {"symbol": SYMBOL, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
                    "lastFundingRate": format(FUNDING_RATE, "f"), "interestRate": "0.00010000", "nextFundingTime": self.next_funding_ms,
                    "time": now_ms()}

    def ticker_price(self) -> dict[str, Any]:
        with self.lock:
            return {"symbol": SYMBOL, "price": px(self.mark or Decimal(0)), "time": now_ms()}

    # --- account -----------------------------------------------------------------------------------
    def _unrealized(self) -> Decimal:
        return unrealized(self.amt, self.entry, self.mark) if self.mark is not None else Decimal(0)

    def _position_margin(self) -> Decimal:
        return abs(self.amt) * (self.mark or self.entry) / self.leverage

    def _order_margin(self) -> Decimal:
        return sum(((Decimal(o["origQty"]) - Decimal(o["executedQty"])) * Decimal(o["price"]) / self.leverage
                    for o in self.orders if o["status"] in OPEN), Decimal(0))

    def _available(self) -> Decimal:
        return self.wallet + self._unrealized() - self._position_margin() - self._order_margin()

    def position(self) -> dict[str, Any]:
        """GET /fapi/v3/positionRisk's row for the perpetual (one-way mode: positionSide BOTH)."""
        with self.lock:
            mark = self.mark or Decimal(0)
            notional = self.amt * mark
            fee_in = abs(self.amt) * self.entry * TAKER_FEE * 2
            break_even = self.entry + fee_in / self.amt if self.amt else Decimal(0)
            return {"symbol": SYMBOL, "positionSide": "BOTH", "positionAmt": qty(self.amt), "entryPrice": num(self.entry),
                    "breakEvenPrice": num(break_even), "markPrice": amount(mark), "unRealizedProfit": amount(self._unrealized()),
                    "liquidationPrice": "0", "isolatedMargin": "0", "notional": amount(notional), "marginAsset": QUOTE,
                    "isolatedWallet": "0", "initialMargin": amount(self._position_margin() + self._order_margin()),
                    "maintMargin": amount(abs(notional) * Decimal("0.004")), "positionInitialMargin": amount(self._position_margin()),
                    "openOrderInitialMargin": amount(self._order_margin()), "adl": 0, "bidNotional": "0", "askNotional": "0",
                    "updateTime": self.position_time, "leverage": str(self.leverage), "marginType": self.margin_type.lower(),
                    "isAutoAddMargin": "false", "maxNotionalValue": MAX_NOTIONAL_VALUE}

    def positions(self, symbol: str | None) -> list[dict[str, Any]]:
        """positionRisk: V3 lists symbols with a position or open orders; asked for the symbol by name it answers its row."""
        with self.lock:
            active = self.amt != 0 or any(o["status"] in OPEN for o in self.orders)
            return [self.position()] if active or symbol == SYMBOL else []

    def balance(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"accountAlias": "SgsR", "asset": QUOTE, "balance": amount(self.wallet), "crossWalletBalance": amount(self.wallet),
                     "crossUnPnl": amount(self._unrealized()), "availableBalance": amount(self._available()),
                     "maxWithdrawAmount": amount(max(Decimal(0), min(self.wallet, self._available()))), "marginAvailable": True,
                     "updateTime": now_ms()}]

    def account(self) -> dict[str, Any]:
        """GET /fapi/v2/account (and v3, the same totals): the USDT asset and the perpetual's position."""
        with self.lock:
            up, pos_m, ord_m, avail = self._unrealized(), self._position_margin(), self._order_margin(), self._available()
            maint = abs(self.amt) * (self.mark or Decimal(0)) * Decimal("0.004")
            withdraw = max(Decimal(0), min(self.wallet, avail))
            asset = {"asset": QUOTE, "walletBalance": amount(self.wallet), "unrealizedProfit": amount(up),
                     "marginBalance": amount(self.wallet + up), "maintMargin": amount(maint), "initialMargin": amount(pos_m + ord_m),
                     "positionInitialMargin": amount(pos_m), "openOrderInitialMargin": amount(ord_m), "crossWalletBalance": amount(self.wallet),
                     "crossUnPnl": amount(up), "availableBalance": amount(avail), "maxWithdrawAmount": amount(withdraw),
                     "marginAvailable": True, "updateTime": now_ms()}
            row = self.position()
            return {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
                    "multiAssetsMargin": False, "tradeGroupId": -1,
                    "totalInitialMargin": amount(pos_m + ord_m), "totalMaintMargin": amount(maint), "totalWalletBalance": amount(self.wallet),
                    "totalUnrealizedProfit": amount(up), "totalMarginBalance": amount(self.wallet + up),
                    "totalPositionInitialMargin": amount(pos_m), "totalOpenOrderInitialMargin": amount(ord_m),
                    "totalCrossWalletBalance": amount(self.wallet), "totalCrossUnPnl": amount(up), "availableBalance": amount(avail),
                    "maxWithdrawAmount": amount(withdraw), "assets": [asset],
                    "positions": [{"symbol": SYMBOL, "initialMargin": row["initialMargin"], "maintMargin": row["maintMargin"],
                                   "unrealizedProfit": row["unRealizedProfit"], "positionInitialMargin": row["positionInitialMargin"],
                                   "openOrderInitialMargin": row["openOrderInitialMargin"], "leverage": row["leverage"], "isolated": False,
                                   "entryPrice": row["entryPrice"], "breakEvenPrice": row["breakEvenPrice"],
                                   "maxNotional": MAX_NOTIONAL_VALUE, "positionSide": "BOTH", "positionAmt": row["positionAmt"],
                                   "notional": row["notional"], "isolatedWallet": "0", "updateTime": self.position_time,
                                   "bidNotional": "0", "askNotional": "0"}]}

    def symbol_config(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"symbol": SYMBOL, "marginType": self.margin_type, "isAutoAddMargin": False, "leverage": self.leverage,
                     "maxNotionalValue": MAX_NOTIONAL_VALUE}]

    def set_leverage(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            raise VenueError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LEVERAGE:
            raise VenueError(400, -4028, f"Leverage {raw[:16]} is not valid")
        with self.lock:
            self.leverage = int(raw)
            return {"leverage": self.leverage, "maxNotionalValue": MAX_NOTIONAL_VALUE, "symbol": SYMBOL}

    def set_margin_type(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            raise VenueError(400, -1102, "Mandatory parameter 'marginType' was not sent, was empty/null, or malformed.")
        if raw not in ("ISOLATED", "CROSSED"):
            raise VenueError(400, -4044, "The margin type is invalid.")
        with self.lock:
            if raw == self.margin_type:
                raise VenueError(400, -4046, "No need to change margin type.")
            if self.amt != 0:
                raise VenueError(400, -4048, "Margin type cannot be changed if there exists position.")
            if any(o["status"] in OPEN for o in self.orders):
                raise VenueError(400, -4047, "Margin type cannot be changed if there exists open orders.")
            self.margin_type = raw
            return {"code": 200, "msg": "success"}

    def set_dual_side(self, raw: str | None) -> dict[str, Any]:
        """POST positionSide/dual: one-way stays (-4059 for "false", as Binance answers a change to the mode in force); hedge
        mode is not served: -4068/-4067 where Binance itself refuses the change (a position, open orders), else -1000 saying
        so (Binance would switch: the one answer here that is the venue's, not Binance's)."""
        if raw not in ("true", "false"):
            raise VenueError(400, -1102, "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, or malformed.")
        with self.lock:
            if raw == "false":
                raise VenueError(400, -4059, "No need to change position side.")
            if self.amt != 0:
                raise VenueError(400, -4068, "Position side cannot be changed if there exists position.")
            if any(o["status"] in OPEN for o in self.orders):
                raise VenueError(400, -4067, "Position side cannot be changed if there exists open orders.")
        raise VenueError(400, -1000, "An unknown error occurred while processing the request.[hedge mode is not served by this venue]")

    # --- orders ------------------------------------------------------------------------------------
    def place(self, p: dict[str, str]) -> dict[str, Any]:
        """POST /fapi/v1/order: checked, accepted (NEW: the answer), then filled, rested or expired; events on the user stream."""
        side, type_, tif = p.get("side"), p.get("type"), p.get("timeInForce")
        for name in ("side", "type"):
            if not p.get(name):
                raise VenueError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        if side not in ("BUY", "SELL"):
            raise VenueError(400, -1117, "Invalid side.")
        if type_ not in ORDER_TYPES:
            raise VenueError(400, -1116, "Invalid orderType.")
        if p.get("positionSide") not in (None, "BOTH"):
            raise VenueError(400, -4061, "Order's position side does not match user's setting.")
        if type_ in CONDITIONAL:
            raise VenueError(400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        if tif is not None and tif not in TIFS:
            raise VenueError(400, -1115, "Invalid timeInForce.")
        if type_ == "LIMIT" and tif is None:
            raise VenueError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        reduce_only = p.get("reduceOnly", "false").lower()  # Binance reads the boolean case-insensitively (clients send "True")
        if reduce_only not in ("true", "false"):
            raise VenueError(400, -1130, "Data sent for parameter 'reduceOnly' is not valid.")
        q = decimal_param(p, "quantity")
        price = decimal_param(p, "price", required=type_ == "LIMIT")
        assert q is not None
        if type_ == "MARKET" and price is not None:
            raise VenueError(400, -1106, "Parameter 'price' sent when not required.")
        if q <= 0:
            raise VenueError(400, -4003, "Quantity less than or equal to zero.")
        if q % STEP:
            raise VenueError(400, -1111, "Precision is over the maximum defined for this asset.")
        if q < MIN_QTY:
            raise VenueError(400, -4004, "Quantity less than min quantity.")
        if q > (MARKET_MAX_QTY if type_ == "MARKET" else MAX_QTY):
            raise VenueError(400, -4005, "Quantity greater than max quantity.")
        if price is not None:
            if price % TICK:
                raise VenueError(400, -4014, "Price not increased by tick size.")
            if price < MIN_PRICE:
                raise VenueError(400, -4013, "Price less than min price.")
            if price > MAX_PRICE:
                raise VenueError(400, -4016, f"Limit price can't be higher than {MAX_PRICE}.")
        with self.lock:
            if self.mark is None:
                raise VenueError(400, -2010, "Market is closed.")
            signed_q = q if side == "BUY" else -q
            reducing = self.amt != 0 and (self.amt > 0) != (signed_q > 0)
            if reduce_only == "true" and (not reducing or q > abs(self.amt)):
                raise VenueError(400, -2022, "ReduceOnly Order is rejected.")
            ref = price if price is not None else self.mark
            if q * ref < MIN_NOTIONAL and reduce_only != "true":
                raise VenueError(400, -4164, f"Order's notional must be no smaller than {MIN_NOTIONAL} (unless you choose reduce only).")
            client_id = p.get("newClientOrderId") or f"venue-f-{self.next_order_id}"
            if any(o["clientOrderId"] == client_id and o["status"] in OPEN for o in self.orders):
                raise VenueError(400, -4116, "ClientOrderId is duplicated.")
            if sum(o["status"] in OPEN for o in self.orders) >= MAX_OPEN_ORDERS:
                raise VenueError(400, -2025, "Reach max open order limit.")
            opening = q if not reducing else max(Decimal(0), q - abs(self.amt))
            if opening * ref / self.leverage > self._available() and reduce_only != "true":
                raise VenueError(400, -2019, "Margin is insufficient.")
            plan = self._plan(side, q, price if type_ == "LIMIT" else None)
            if tif == "FOK" and sum((take for _, take in plan), Decimal(0)) < q:
                plan = []  # fill or kill: all at once or nothing (then EXPIRED)
            if tif == "GTX" and plan:
                raise VenueError(400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")
            ts = now_ms()
            order = {"orderId": self.next_order_id, "symbol": SYMBOL, "status": "NEW", "clientOrderId": client_id,
                     "price": px(price or Decimal(0)), "avgPrice": "0.00", "origQty": qty(q), "executedQty": qty(Decimal(0)),
                     "cumQty": qty(Decimal(0)), "cumQuote": amount(Decimal(0)), "timeInForce": tif or "GTC", "type": type_,
                     "reduceOnly": reduce_only == "true", "closePosition": False, "side": side, "positionSide": "BOTH",
                     "stopPrice": "0.00", "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": type_,
                     "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": ts, "updateTime": ts}
            self.next_order_id += 1
            self.orders.append(order)
            accepted = {k: v for k, v in order.items() if k != "time"}
            self._order_update(order, "NEW")
            for level_px, take in plan:
                self._fill(order, level_px, take, maker=False)
            if order["status"] in OPEN and (type_ == "MARKET" or order["timeInForce"] in ("IOC", "FOK")):
                order["status"], order["updateTime"] = "EXPIRED", now_ms()
                self._order_update(order, "EXPIRED")
            self._trim()
            return accepted

    def _plan(self, side: str, q: Decimal, limit: Decimal | None) -> list[tuple[Decimal, Decimal]]:
        """(price, quantity) from the book's levels on the other side, best first, up to LIMIT (None: any price), as Spot's."""
        assert self.mark is not None
        plan, left = [], q
        for i in range(BOOK_LEVELS):
            level = self.mark + TICK * (i + 1) if side == "BUY" else self.mark - TICK * (i + 1)
            if left <= 0 or (limit is not None and ((side == "BUY" and level > limit) or (side == "SELL" and level < limit))):
                break
            take = min(left, Decimal(1 + i))
            plan.append((level, take))
            left -= take
        if left > 0 and limit is None:  # a market order larger than the book's five levels takes the rest at the last level
            plan.append((plan[-1][0], left))
        return plan

    def _match(self, price: Decimal) -> None:
        for order in self.orders:
            if order["status"] in OPEN and order["type"] == "LIMIT":
                limit = Decimal(order["price"])
                if (order["side"] == "BUY" and price <= limit) or (order["side"] == "SELL" and price >= limit):
                    self._fill(order, limit, Decimal(order["origQty"]) - Decimal(order["executedQty"]), maker=True)

    def snapshot(self) -> dict[str, Any]:
        """The account as the lab's admin endpoint shows it (GET /admin/futures): the position, the wallet, the orders and trades."""
        with self.lock:
            return {"position": self.position(), "wallet": amount(self.wallet), "orders": [dict(o) for o in self.orders],
                    "trades": [dict(t) for t in self.trades], "funding_payments": sum(r["incomeType"] == "FUNDING_FEE" for r in self.income)}

    def age(self, hours: float) -> int:
        """Move everything the account recorded HOURS back in time (POST /admin/futures/age): a position opened, and orders
        and trades made, that long ago, which a lab cannot wait for (a node's reconciliation looks back a day). The rows moved."""
        shift = int(hours * 3_600_000)
        with self.lock:
            for order in self.orders:
                order["time"] -= shift
                order["updateTime"] -= shift
            for row in self.trades + self.income:
                row["time"] -= shift
            if self.position_time:
                self.position_time -= shift
            return len(self.orders) + len(self.trades) + len(self.income)

    def fill_open(self) -> list[int]:
        """Fill every resting order at its own price as maker (as Spot's admin fill does)."""
        with self.lock:
            ids = [o["orderId"] for o in self.orders if o["status"] in OPEN]
            for order in [o for o in self.orders if o["status"] in OPEN]:
                self._fill(order, Decimal(order["price"]), Decimal(order["origQty"]) - Decimal(order["executedQty"]), maker=True)
            return ids

    def _fill(self, order: dict[str, Any], price: Decimal, q: Decimal, maker: bool) -> None:
        signed_q = q if order["side"] == "BUY" else -q
        if order["reduceOnly"]:  # never through zero
            q = min(q, abs(self.amt))
            signed_q = q if order["side"] == "BUY" else -q
        self.amt, self.entry, realized = apply_fill(self.amt, self.entry, signed_q, price)
        fee = (q * price * (MAKER_FEE if maker else TAKER_FEE)).quantize(DP)
        self.wallet += realized - fee
        ts = now_ms()
        self.position_time = ts
        done_before = Decimal(order["executedQty"])
        executed = done_before + q
        cum_quote = Decimal(order["cumQuote"]) + q * price
        order.update({"executedQty": qty(executed), "cumQty": qty(executed), "cumQuote": amount(cum_quote),
                      "avgPrice": num(cum_quote / executed), "updateTime": ts,
                      "status": "FILLED" if executed >= Decimal(order["origQty"]) else "PARTIALLY_FILLED"})
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        self.trades.append({"buyer": order["side"] == "BUY", "commission": amount(fee), "commissionAsset": QUOTE, "id": trade_id,
                            "maker": maker, "orderId": order["orderId"], "price": px(price), "qty": qty(q), "quoteQty": amount(q * price),
                            "realizedPnl": amount(realized), "side": order["side"], "positionSide": "BOTH", "symbol": SYMBOL, "time": ts})
        if realized:
            self._income("REALIZED_PNL", realized, str(trade_id), ts)
        self._income("COMMISSION", -fee, str(trade_id), ts)
        self._order_update(order, "TRADE", last_qty=q, last_px=price, trade_id=trade_id, maker=maker, fee=fee, realized=realized)
        self._account_update("ORDER", realized - fee, with_position=True)

    def _order_update(self, order: dict[str, Any], exec_type: str, last_qty: Decimal = Decimal(0), last_px: Decimal = Decimal(0),
                      trade_id: int = 0, maker: bool = False, fee: Decimal | None = None, realized: Decimal = Decimal(0)) -> None:
        """ORDER_TRADE_UPDATE (https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Order-Update)."""
        ts = now_ms()
        o = {"s": SYMBOL, "c": order["clientOrderId"], "S": order["side"], "o": order["type"], "f": order["timeInForce"],
             "q": order["origQty"], "p": order["price"], "ap": order["avgPrice"], "sp": order["stopPrice"], "x": exec_type,
             "X": order["status"], "i": order["orderId"], "l": qty(last_qty), "z": order["executedQty"], "L": px(last_px),
             "T": ts, "t": trade_id, "b": "0", "a": "0", "m": maker, "R": order["reduceOnly"], "wt": order["workingType"],
             "ot": order["origType"], "ps": "BOTH", "cp": False, "rp": amount(realized), "pP": False, "si": 0, "ss": 0,
             "V": order["selfTradePreventionMode"], "pm": "NONE", "gtd": 0}
        if fee is not None:  # "will not push if no commission"
            o["N"], o["n"] = QUOTE, amount(fee)
        self.publish(USER_STREAM, {"e": "ORDER_TRADE_UPDATE", "E": ts, "T": ts, "o": o})

    def _account_update(self, reason: str, change: Decimal, with_position: bool) -> None:
        """ACCOUNT_UPDATE with its reason m (ORDER, FUNDING_FEE, ...): the USDT wallet, and the position when it changed."""
        ts = now_ms()
        positions = [{"s": SYMBOL, "pa": qty(self.amt), "ep": num(self.entry), "bep": num(self.entry), "cr": "0",
                      "up": amount(self._unrealized()), "mt": "cross" if self.margin_type == "CROSSED" else "isolated", "iw": "0",
                      "ps": "BOTH"}] if with_position else []
        self.publish(USER_STREAM, {"e": "ACCOUNT_UPDATE", "E": ts, "T": ts, "a": {
            "m": reason, "B": [{"a": QUOTE, "wb": amount(self.wallet), "cw": amount(self.wallet), "bc": amount(change)}], "P": positions}})

    def _income(self, kind: str, value: Decimal, trade_id: str, ts: int) -> None:
        self.income.append({"symbol": SYMBOL, "incomeType": kind, "income": amount(value), "asset": QUOTE, "info": kind, "time": ts,
                            "tranId": self.next_tran_id, "tradeId": trade_id})
        self.next_tran_id += 1
        del self.income[:-MAX_INCOME_KEPT]

    def income_history(self, kind: str | None, start_ms: int | None, end_ms: int | None, page: int, limit: int) -> list[dict[str, Any]]:
        """Get Income History: the rows of KIND (all without one) in the time range, oldest first, LIMIT a PAGE."""
        with self.lock:
            rows = [r for r in self.income if (kind is None or r["incomeType"] == kind)
                    and (start_ms is None or r["time"] >= start_ms) and (end_ms is None or r["time"] <= end_ms)]
            return [dict(r) for r in rows[(page - 1) * limit:page * limit]]

    def _find(self, order_id: int | None, client_id: str | None) -> dict[str, Any] | None:
        for order in reversed(self.orders):
            if (order_id is not None and order["orderId"] == order_id) or (order_id is None and order["clientOrderId"] == client_id):
                return order
        return None

    def order(self, order_id: int | None, client_id: str | None) -> dict[str, Any]:
        with self.lock:
            found = self._find(order_id, client_id)
            if found is None:
                raise VenueError(400, -2013, "Order does not exist.")
            return dict(found)

    def cancel(self, order_id: int | None, client_id: str | None) -> dict[str, Any]:
        with self.lock:
            found = self._find(order_id, client_id)
            if found is None or found["status"] not in OPEN:
                raise VenueError(400, -2011, "Unknown order sent.")
            found["status"], found["updateTime"] = "CANCELED", now_ms()
            self._order_update(found, "CANCELED")
            return {k: v for k, v in found.items() if k != "time"}

    def cancel_all(self) -> dict[str, Any]:
        with self.lock:
            for order in [o for o in self.orders if o["status"] in OPEN]:
                order["status"], order["updateTime"] = "CANCELED", now_ms()
                self._order_update(order, "CANCELED")
            return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_orders(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(o) for o in self.orders if o["status"] in OPEN]

    def all_orders(self, limit: int, from_id: int | None, start_ms: int | None, end_ms: int | None) -> list[dict[str, Any]]:
        with self.lock:
            rows = [o for o in self.orders if (from_id is None or o["orderId"] >= from_id)
                    and (start_ms is None or o["time"] >= start_ms) and (end_ms is None or o["time"] <= end_ms)]
            return [dict(o) for o in (rows[:limit] if from_id is not None else rows[-limit:])]

    def user_trades(self, limit: int, from_id: int | None, order_id: int | None, start_ms: int | None,
                    end_ms: int | None) -> list[dict[str, Any]]:
        with self.lock:
            rows = [t for t in self.trades if (from_id is None or t["id"] >= from_id) and (order_id is None or t["orderId"] == order_id)
                    and (start_ms is None or t["time"] >= start_ms) and (end_ms is None or t["time"] <= end_ms)]
            return [dict(t) for t in (rows[:limit] if from_id is not None else rows[-limit:])]

    def _trim(self) -> None:
        while len(self.orders) > MAX_ORDERS_KEPT:
            idx = next((i for i, o in enumerate(self.orders) if o["status"] not in OPEN), None)
            if idx is None:
                break
            self.orders.pop(idx)
        del self.trades[:-MAX_TRADES_KEPT]
