"""The /fapi REST surface (Binance USD-M Futures) NautilusTrader 1.221.0's and 1.231.0's USD-M clients call, one route table.

Served beside Spot on the same port, always (the path separates the two; no spec field says futures): rest.Handler
dispatches to ROUTES here as to its own, so the bounds (target, body), the fault switch, the used-weight headers and the
signing rules (auth.py: SIGNED for Binance's TRADE and USER_DATA, USER_STREAM for the listenKey) are Spot's. Weights are
Binance's (https://developers.binance.com/docs/derivatives/usds-margined-futures, each endpoint's "Request Weight").
The answers come from server.BinanceVenue.futures (futures.FuturesAccount).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from opslab.venue.exchange import VenueError
from opslab.venue.futures_contract import (BASE, MAKER_FEE, MARKET_MAX_QTY, MAX_PRICE, MAX_QTY, MIN_NOTIONAL, MIN_PRICE, MIN_QTY, ORDER_TYPES,
                                  QUOTE, STEP, SYMBOL, TAKER_FEE, TICK, TIFS, px, qty)
from opslab.venue.rest import NONE, SIGNED, USER_STREAM, Route, _int, _opt_int

Answer = Callable[[Any, dict[str, str]], Any]


def _symbol(p: dict[str, str], required: bool = True) -> str | None:
    symbol = p.get("symbol")
    if symbol is None:
        if required:
            raise VenueError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return None
    if symbol != SYMBOL:
        raise VenueError(400, -1121, "Invalid symbol.")
    return symbol


def _ids(p: dict[str, str]) -> tuple[int | None, str | None]:
    _symbol(p)
    order_id, client_id = p.get("orderId"), p.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise VenueError(400, -1102, "Either orderId or origClientOrderId must be sent.")
    try:
        return (int(order_id) if order_id is not None else None), client_id
    except ValueError:
        raise VenueError(400, -1100, "Illegal characters found in parameter 'orderId'.") from None


def exchange_info(v: Any, p: dict[str, str]) -> dict[str, Any]:
    """GET /fapi/v1/exchangeInfo: the perpetual with Binance's USD-M field set and filters."""
    return {"timezone": "UTC", "serverTime": v.server_time_ms(), "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                           {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                           {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],
            "exchangeFilters": [], "assets": [{"asset": QUOTE, "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [{"symbol": SYMBOL, "pair": SYMBOL, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                         "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                         "baseAsset": BASE, "quoteAsset": QUOTE, "marginAsset": QUOTE, "pricePrecision": 2, "quantityPrecision": 3,
                         "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
                         "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                         "maxMoveOrderLimit": 10000,
                         "filters": [{"filterType": "PRICE_FILTER", "minPrice": format(MIN_PRICE, "f"), "maxPrice": format(MAX_PRICE, "f"),
                                      "tickSize": format(TICK, "f")},
                                     {"filterType": "LOT_SIZE", "minQty": format(MIN_QTY, "f"), "maxQty": format(MAX_QTY, "f"),
                                      "stepSize": format(STEP, "f")},
                                     {"filterType": "MARKET_LOT_SIZE", "minQty": format(MIN_QTY, "f"), "maxQty": format(MARKET_MAX_QTY, "f"),
                                      "stepSize": format(STEP, "f")},
                                     {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                                     {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                                     {"filterType": "MIN_NOTIONAL", "notional": format(MIN_NOTIONAL, "f")},
                                     {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                                      "multiplierDecimal": "4"}],
                         "orderTypes": list(ORDER_TYPES), "timeInForce": list(TIFS) + ["GTD"]}]}


def _klines(v: Any, p: dict[str, str]) -> Any:
    _symbol(p)
    if p.get("interval") != "1m":
        raise VenueError(400, -1120, "Invalid interval.")
    # the replayed bars, as Spot's klines are built (the futures price is Spot's at the perpetual's tick)
    rows = v.exchange.klines(_int(p, "limit", 500, 1, 1500), SYMBOL)
    return [[r[0], px(Decimal(r[1])), px(Decimal(r[2])), px(Decimal(r[3])), px(Decimal(r[4])), qty(Decimal(r[5])), r[6], r[7], r[8],
             qty(Decimal(r[9])), r[10], r[11]] for r in rows]


def _depth_weight(p: dict[str, str]) -> int:
    try:
        limit = int(p.get("limit") or 500)
    except ValueError:
        return 5
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _order_query(v: Any, p: dict[str, str]) -> Any:
    return v.futures.order(*_ids(p))


def _cancel(v: Any, p: dict[str, str]) -> Any:
    return v.futures.cancel(*_ids(p))


def _place(v: Any, p: dict[str, str]) -> Any:
    _symbol(p)
    return v.futures.place(p)


def _all_orders(v: Any, p: dict[str, str]) -> Any:
    _symbol(p)
    return v.futures.all_orders(_int(p, "limit", 500, 1, 1000), _opt_int(p, "orderId"), _opt_int(p, "startTime"), _opt_int(p, "endTime"))


def _user_trades(v: Any, p: dict[str, str]) -> Any:
    _symbol(p)
    if p.get("fromId") and (p.get("startTime") or p.get("endTime")):
        raise VenueError(400, -1128, "Combination of optional parameters invalid.")
    return v.futures.user_trades(_int(p, "limit", 500, 1, 1000), _opt_int(p, "fromId"), _opt_int(p, "orderId"), _opt_int(p, "startTime"),
                                 _opt_int(p, "endTime"))


INCOME_TYPES = ("REALIZED_PNL", "COMMISSION", "FUNDING_FEE")  # the kinds the venue records (Binance has more, e.g. TRANSFER)


def _income(v: Any, p: dict[str, str]) -> Any:
    """Get Income History (GET /fapi/v1/income): limit 1 to 1,000 (default 100), page from 1."""
    _symbol(p, required=False)
    kind = p.get("incomeType") or None
    if kind is not None and kind not in INCOME_TYPES + ("TRANSFER", "WELCOME_BONUS", "INSURANCE_CLEAR", "DELIVERED_SETTELMENT"):
        raise VenueError(400, -1130, "Data sent for parameter 'incomeType' is not valid.")
    return v.futures.income_history(kind, _opt_int(p, "startTime"), _opt_int(p, "endTime"), _int(p, "page", 1, 1, 10_000),
                                    _int(p, "limit", 100, 1, 1000))


def _one_or_all(answer: Answer) -> Answer:
    """Tickers: the symbol's object, or a list of every symbol's without one."""
    def handler(v: Any, p: dict[str, str]) -> Any:
        row = answer(v, p)
        return row if _symbol(p, required=False) else [row]
    return handler


def _algo_order(v: Any, p: dict[str, str]) -> Any:
    raise VenueError(400, -2013, "Order does not exist.")  # conditional (algo) orders are not served: there are none


def _commission(v: Any, p: dict[str, str]) -> Any:
    _symbol(p)
    return {"symbol": SYMBOL, "makerCommissionRate": format(MAKER_FEE, "f"), "takerCommissionRate": format(TAKER_FEE, "f")}


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(NONE, 1, lambda v, p: {}),
    ("GET", "/fapi/v1/time"): Route(NONE, 1, lambda v, p: {"serverTime": v.server_time_ms()}),
    ("GET", "/fapi/v1/exchangeInfo"): Route(NONE, 1, exchange_info),
    ("GET", "/fapi/v1/depth"): Route(NONE, _depth_weight, lambda v, p: (_symbol(p), v.futures.depth(_int(p, "limit", 500, 5, 1000)))[1]),
    ("GET", "/fapi/v1/klines"): Route(NONE, 5, _klines),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(NONE, lambda p: 2 if p.get("symbol") else 5, _one_or_all(lambda v, p: v.futures.book_ticker())),
    ("GET", "/fapi/v1/ticker/price"): Route(NONE, lambda p: 1 if p.get("symbol") else 2, _one_or_all(lambda v, p: v.futures.ticker_price())),
    ("GET", "/fapi/v2/ticker/price"): Route(NONE, lambda p: 1 if p.get("symbol") else 2, _one_or_all(lambda v, p: v.futures.ticker_price())),
    ("GET", "/fapi/v1/premiumIndex"): Route(NONE, lambda p: 1 if p.get("symbol") else 10, _one_or_all(lambda v, p: v.futures.premium_index())),
    ("GET", "/fapi/v1/commissionRate"): Route(SIGNED, 20, _commission),
    ("GET", "/fapi/v2/account"): Route(SIGNED, 5, lambda v, p: v.futures.account()),
    ("GET", "/fapi/v3/account"): Route(SIGNED, 5, lambda v, p: v.futures.account()),
    ("GET", "/fapi/v2/balance"): Route(SIGNED, 5, lambda v, p: v.futures.balance()),
    ("GET", "/fapi/v3/balance"): Route(SIGNED, 5, lambda v, p: v.futures.balance()),
    ("GET", "/fapi/v2/positionRisk"): Route(SIGNED, 5, lambda v, p: v.futures.positions(_symbol(p, required=False))),
    ("GET", "/fapi/v3/positionRisk"): Route(SIGNED, 5, lambda v, p: v.futures.positions(_symbol(p, required=False))),
    ("GET", "/fapi/v1/symbolConfig"): Route(SIGNED, 5, lambda v, p: (_symbol(p, required=False), v.futures.symbol_config())[1]),
    ("POST", "/fapi/v1/leverage"): Route(SIGNED, 1, lambda v, p: (_symbol(p), v.futures.set_leverage(p.get("leverage")))[1]),
    ("POST", "/fapi/v1/marginType"): Route(SIGNED, 1, lambda v, p: (_symbol(p), v.futures.set_margin_type(p.get("marginType")))[1]),
    ("GET", "/fapi/v1/positionSide/dual"): Route(SIGNED, 30, lambda v, p: {"dualSidePosition": False}),
    ("POST", "/fapi/v1/positionSide/dual"): Route(SIGNED, 1, lambda v, p: v.futures.set_dual_side(p.get("dualSidePosition"))),
    ("POST", "/fapi/v1/order"): Route(SIGNED, 1, _place),
    ("GET", "/fapi/v1/order"): Route(SIGNED, 1, _order_query),
    ("DELETE", "/fapi/v1/order"): Route(SIGNED, 1, _cancel),
    ("DELETE", "/fapi/v1/allOpenOrders"): Route(SIGNED, 1, lambda v, p: (_symbol(p), v.futures.cancel_all())[1]),
    ("GET", "/fapi/v1/openOrders"): Route(SIGNED, lambda p: 1 if p.get("symbol") else 40,
                                          lambda v, p: (_symbol(p, required=False), v.futures.open_orders())[1]),
    ("GET", "/fapi/v1/allOrders"): Route(SIGNED, 5, _all_orders),
    ("GET", "/fapi/v1/userTrades"): Route(SIGNED, 5, _user_trades),
    ("GET", "/fapi/v1/income"): Route(SIGNED, 30, _income),
    ("POST", "/fapi/v1/listenKey"): Route(USER_STREAM, 1, lambda v, p: {"listenKey": v.futures.new_listen_key()}),
    ("PUT", "/fapi/v1/listenKey"): Route(USER_STREAM, 1, lambda v, p: v.futures.keepalive(p.get("listenKey"))),
    ("DELETE", "/fapi/v1/listenKey"): Route(USER_STREAM, 1, lambda v, p: v.futures.close_listen_key()),
    # NautilusTrader 1.231's reconciliation asks the Algo Service too; conditional orders are not served, so there are none
    ("GET", "/fapi/v1/openAlgoOrders"): Route(SIGNED, 1, lambda v, p: (_symbol(p, required=False), [])[1]),
    ("GET", "/fapi/v1/allAlgoOrders"): Route(SIGNED, 5, lambda v, p: (_symbol(p), [])[1]),
    ("GET", "/fapi/v1/algoOrder"): Route(SIGNED, 1, _algo_order),
}
