"""The venue's REST surface: the Binance Spot endpoints NautilusTrader 1.221.0's clients call.

Parameters are read from the query string and, for POST/PUT/DELETE, also from an
`application/x-www-form-urlencoded` body; a parameter sent in both is taken from the query string
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-api-information,
"General Information on Endpoints"; the Nautilus client sends everything in the query). Requests are
bounded: a target longer than MAX_TARGET bytes gets 414, a body longer than MAX_BODY 413, both with
a Binance-shaped error. Every public request passes the shared fault switch first (faults.admit);
ROUTES is the one table of paths, security types and request weights (Binance's documented weight of
each endpoint, a function of the parameters where the doc says so).

Every answer carries `X-MBX-USED-WEIGHT-1M` and `X-MBX-USED-WEIGHT`: the weight used in the current
wall-clock minute, counted by UsedWeight whether or not the rate_limit fault is on ("IP Limits" in
the same doc). The cancel answers (DELETE /api/v3/order, /api/v3/openOrders) have Binance's field
set: `origClientOrderId` (the order's id), `clientOrderId` (the cancel's: newClientOrderId or one
the venue makes), `transactTime`.

Admin endpoints (loopback, no key): GET/POST/DELETE /admin/faults (the fault switch), POST
/admin/fill, GET /admin/state; for USD-M Futures GET /admin/futures and POST /admin/futures/age.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Protocol
from urllib.parse import parse_qsl, urlsplit

from opslab import fs, httpserver
from opslab.venue import faults as fault_switch
from opslab.venue import auth, profiles
from opslab.venue.exchange import LISTINGS, ORDER_TYPES, Exchange, VenueError
from opslab.venue.stats import VenueStats

MAX_TARGET = 8192
MAX_BODY = 16384
NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"


class Venue(Protocol):
    """What the handlers use of the venue (server.BinanceVenue), by duck type: server.py imports this module."""

    faults: fault_switch.VenueState
    exchange: Exchange
    counters: VenueStats
    api_key: str | None
    api_secret: str | None
    profile: profiles.Profile

    def server_time_ms(self) -> int: ...

    def count_request(self) -> None: ...

    def set_faults(self, faults: dict[str, Any]) -> None: ...

    def fill_open_orders(self) -> list[int]: ...

    def user_streams_active(self) -> int: ...


@dataclass(frozen=True)
class Route:
    security: str
    weight: int | Callable[[dict[str, str]], int]  # the documented request weight, or how it follows from the parameters
    answer: Callable[[Venue, dict[str, str]], Any]

    def weigh(self, params: dict[str, str]) -> int:
        return self.weight(params) if callable(self.weight) else self.weight


class UsedWeight:
    """The request weight used in the current wall-clock minute (Binance's REQUEST_WEIGHT 1 MINUTE window)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.minute, self.used = 0, 0

    def add(self, weight: int) -> int:
        with self.lock:
            minute = int(time.time() // 60)
            if minute != self.minute:
                self.minute, self.used = minute, 0
            self.used += weight
            return self.used

    def headers(self) -> dict[str, str]:
        used = str(self.add(0))
        return {"X-MBX-USED-WEIGHT-1M": used, "X-MBX-USED-WEIGHT": used}


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(params.get(name) or default)))
    except ValueError:
        raise VenueError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def _symbol(params: dict[str, str], required: bool = True) -> str | None:
    symbol = params.get("symbol")
    if symbol is None and not required:
        return None
    if symbol is None:
        raise VenueError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    if symbol not in LISTINGS:
        raise VenueError(400, -1121, "Invalid symbol.")
    return symbol


def _ids(params: dict[str, str]) -> tuple[int | None, str | None]:
    _symbol(params)
    order_id = params.get("orderId")
    client_id = params.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise VenueError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    try:
        return (int(order_id) if order_id is not None else None), client_id
    except ValueError:
        raise VenueError(400, -1100, "Illegal characters found in parameter 'orderId'.") from None


def exchange_info(venue: Venue, params: dict[str, str]) -> Any:
    listed = _symbols(params) or list(LISTINGS)
    with venue.faults.lock:
        limit = venue.faults.faults.get("rate_limit")
        orders = venue.faults.faults.get("order_rate_limit")
    weight = ({"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": limit["window_s"], "limit": limit["weight"]} if limit
              else {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000})  # the rate_limit fault's budget
    return {"timezone": "UTC", "serverTime": venue.server_time_ms(),
            "rateLimits": [weight,
                           {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": orders["limit"] if orders else 100},
                           {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}],
            "exchangeFilters": [],
            "symbols": [{"symbol": s.symbol, "status": "TRADING", "baseAsset": s.base, "baseAssetPrecision": 8, "quoteAsset": s.quote,
                         "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                         "orderTypes": list(ORDER_TYPES), "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
                         "quoteOrderQtyMarketAllowed": False, "allowTrailingStop": False, "cancelReplaceAllowed": False,
                         "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                         "filters": s.filters(),
                         "permissions": ["SPOT"], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
                         "allowedSelfTradePreventionModes": ["NONE"]} for s in (LISTINGS[name] for name in listed)]}


def _symbols(params: dict[str, str]) -> list[str] | None:
    """`symbol`, or `symbols` as Binance takes it (a JSON array: ["BTCUSDT","ETHUSDT"]), checked; None when neither is sent."""
    if "symbol" in params:
        return [_symbol(params) or ""]
    if "symbols" not in params:
        return None
    try:
        names = json.loads(params["symbols"])
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise VenueError(400, -1100, "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,)?){1,100}]$'.")
    if any(n not in LISTINGS for n in names):
        raise VenueError(400, -1121, "Invalid symbol.")
    return list(dict.fromkeys(names))


def _each(answer: Callable[[Venue, str], Any]) -> Callable[[Venue, dict[str, str]], Any]:
    """A market statistic for `symbol` (one object), `symbols` or every symbol (a list), as Binance's tickers answer."""
    def handler(venue: Venue, p: dict[str, str]) -> Any:
        names = _symbols(p)
        rows = [answer(venue, name) for name in (names or list(LISTINGS))]
        return rows[0] if "symbol" in p else rows
    return handler


def _trades(venue: Venue, p: dict[str, str]) -> Any:
    return venue.exchange.market_trades(_symbol(p) or "", _int(p, "limit", 500, 1, 1000))


def _agg_trades(venue: Venue, p: dict[str, str]) -> Any:
    return venue.exchange.agg_trades(_symbol(p) or "", _int(p, "limit", 500, 1, 1000), _opt_int(p, "fromId"), _opt_int(p, "startTime"),
                                     _opt_int(p, "endTime"))


def _place(venue: Venue, p: dict[str, str], test: bool = False) -> Any:
    symbol = _symbol(p) or ""
    for name in ("side", "type", "quantity"):
        if not p.get(name):
            raise VenueError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return venue.exchange.place(p["side"], p["type"], p["quantity"], p.get("price"), p.get("timeInForce"), p.get("newClientOrderId"),
                                symbol=symbol, stop_price=p.get("stopPrice"), resp_type=p.get("newOrderRespType"), test=test)


def _listen_key(p: dict[str, str]) -> str:
    key = p.get("listenKey")
    if not key:
        raise VenueError(400, -1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
    return key


def _keepalive(venue: Venue, p: dict[str, str]) -> Any:
    if not venue.exchange.has_listen_key(_listen_key(p)):
        raise VenueError(400, -1125, "This listenKey does not exist.")
    return {}


def _opt_int(params: dict[str, str], name: str) -> int | None:
    return _int(params, name, 0, -(2**63), 2**63 - 1) if params.get(name) else None


def _all_orders(venue: Venue, p: dict[str, str]) -> Any:
    _symbol(p)
    return venue.exchange.all_orders(_int(p, "limit", 500, 1, 1000), _opt_int(p, "orderId"), _opt_int(p, "startTime"), _opt_int(p, "endTime"),
                                     symbol=p["symbol"])


def _my_trades(venue: Venue, p: dict[str, str]) -> Any:
    _symbol(p)
    if (p.get("fromId") or p.get("orderId")) and (p.get("startTime") or p.get("endTime")):
        raise VenueError(400, -1128, "Combination of optional parameters invalid.")
    return venue.exchange.my_trades(_int(p, "limit", 500, 1, 1000), _opt_int(p, "fromId"), _opt_int(p, "orderId"),
                                    _opt_int(p, "startTime"), _opt_int(p, "endTime"), symbol=p["symbol"])


def _open_orders(venue: Venue, p: dict[str, str]) -> Any:
    return venue.exchange.open_orders(_symbol(p, required=False))


CANCEL_FIELDS = ("symbol", "origClientOrderId", "orderId", "orderListId", "clientOrderId", "transactTime", "price", "origQty",
                 "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
                 "selfTradePreventionMode")  # Binance's cancel answer, in its order ("Cancel order (TRADE)" in rest-api.md)
CANCEL_RESTRICTIONS = {"ONLY_NEW": "NEW", "ONLY_PARTIALLY_FILLED": "PARTIALLY_FILLED"}
_ID_CHARS = string.ascii_letters + string.digits


def _cancel_id(p: dict[str, str]) -> str:
    """The cancel's own clientOrderId: newClientOrderId, or 22 random characters as Binance makes them."""
    return p.get("newClientOrderId") or "".join(secrets.choice(_ID_CHARS) for _ in range(22))


def cancel_answer(order: dict[str, Any], cancel_id: str) -> dict[str, Any]:
    """A cancelled ORDER as DELETE /api/v3/order answers it; stopPrice and icebergQty only when set (conditional fields)."""
    answer = {**order, "origClientOrderId": order["clientOrderId"], "clientOrderId": cancel_id, "transactTime": order["updateTime"]}
    out = {name: answer[name] for name in CANCEL_FIELDS if name in answer}
    for name in ("stopPrice", "icebergQty", "trailingDelta", "trailingTime"):
        if name in order and Decimal(str(order[name])) != 0:
            out[name] = order[name]
    return out


def _cancel(venue: Venue, p: dict[str, str]) -> Any:
    order_id, client_id = _ids(p)
    restriction = p.get("cancelRestrictions")
    if restriction is not None and restriction not in CANCEL_RESTRICTIONS:
        raise VenueError(400, -1145, "Invalid cancelRestrictions")
    if order_id is not None and client_id is not None or restriction:
        found = venue.exchange.order(order_id, client_id, p["symbol"])  # orderId first, then origClientOrderId checked against it
        if client_id is not None and found["clientOrderId"] != client_id:
            raise VenueError(400, -2011, "Unknown order sent.")
        if restriction and found["status"] != CANCEL_RESTRICTIONS[restriction]:
            raise VenueError(400, -2011, "Order was not canceled due to cancel restrictions.")
    return cancel_answer(venue.exchange.cancel(order_id, client_id, p["symbol"]), _cancel_id(p))


def _cancel_all(venue: Venue, p: dict[str, str]) -> Any:
    cancel_id = _cancel_id(p)
    return [cancel_answer(order, cancel_id) for order in venue.exchange.cancel_all(_symbol(p) or "")]


def _depth(venue: Venue, p: dict[str, str]) -> Any:
    symbol = _symbol(p) or ""
    book = venue.exchange.depth(_int(p, "limit", 100, 1, 5000), symbol)
    venue.counters.add("depth_snapshots")
    return book


def _klines(venue: Venue, p: dict[str, str]) -> Any:
    _symbol(p)
    if p.get("interval") != venue.exchange.interval:  # the replay's bars are of one interval: no other is answered
        raise VenueError(400, -1120, "Invalid interval.")
    return venue.exchange.klines(_int(p, "limit", 500, 1, 1000), p["symbol"])


def _depth_weight(p: dict[str, str]) -> int:
    try:
        limit = int(p.get("limit") or 100)
    except ValueError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


# Weights: https://developers.binance.com/docs/binance-spot-api-docs/rest-api (each endpoint's "Weight").
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/v3/ping"): Route(NONE, 1, lambda v, p: {}),
    ("GET", "/api/v3/time"): Route(NONE, 1, lambda v, p: {"serverTime": v.server_time_ms()}),
    ("GET", "/api/v3/exchangeInfo"): Route(NONE, 20, exchange_info),
    ("GET", "/api/v3/depth"): Route(NONE, _depth_weight, _depth),
    ("GET", "/api/v3/klines"): Route(NONE, 2, _klines),
    ("GET", "/sapi/v1/asset/tradeFee"): Route(SIGNED, 1, lambda v, p: [{"symbol": s, "makerCommission": "0.001", "takerCommission": "0.001"}
                                                                        for s in _symbols(p) or LISTINGS]),
    ("GET", "/api/v3/account"): Route(SIGNED, 20, lambda v, p: v.exchange.account()),
    ("POST", "/api/v3/order"): Route(SIGNED, 1, _place),
    ("GET", "/api/v3/order"): Route(SIGNED, 4, lambda v, p: v.exchange.order(*_ids(p), p["symbol"])),
    ("DELETE", "/api/v3/order"): Route(SIGNED, 1, _cancel),
    ("GET", "/api/v3/openOrders"): Route(SIGNED, lambda p: 6 if p.get("symbol") else 80, _open_orders),
    ("DELETE", "/api/v3/openOrders"): Route(SIGNED, 1, _cancel_all),
    ("GET", "/api/v3/allOrders"): Route(SIGNED, 20, _all_orders),
    ("GET", "/api/v3/myTrades"): Route(SIGNED, lambda p: 5 if p.get("orderId") else 20, _my_trades),
    ("POST", "/api/v3/userDataStream"): Route(USER_STREAM, 2, lambda v, p: {"listenKey": v.exchange.new_listen_key()}),
    ("PUT", "/api/v3/userDataStream"): Route(USER_STREAM, 2, _keepalive),
    ("DELETE", "/api/v3/userDataStream"): Route(USER_STREAM, 2, lambda v, p: v.exchange.close_listen_key(_listen_key(p)) or {}),
    # issue 25: the rest of the surface a strategy uses; weights are Binance's for one symbol (market-data-endpoints, trading-endpoints)
    ("POST", "/api/v3/order/test"): Route(SIGNED, 1, lambda v, p: _place(v, p, test=True)),
    ("GET", "/api/v3/ticker/24hr"): Route(NONE, 2, _each(lambda v, s: v.exchange.ticker_24hr(s))),
    ("GET", "/api/v3/ticker/price"): Route(NONE, 2, _each(lambda v, s: v.exchange.ticker_price(s))),
    ("GET", "/api/v3/ticker/bookTicker"): Route(NONE, 2, _each(lambda v, s: v.exchange.book_ticker(s))),
    ("GET", "/api/v3/avgPrice"): Route(NONE, 2, lambda v, p: v.exchange.avg_price(_symbol(p) or "")),
    ("GET", "/api/v3/trades"): Route(NONE, 25, _trades),
    ("GET", "/api/v3/aggTrades"): Route(NONE, 4, _agg_trades),
}


def _timing(request: str, params: dict[str, str], now_ms: int) -> dict[str, Any]:
    """What a -1021 compared: the request's timestamp and recvWindow against the venue's clock (clock_skew included)."""
    try:
        ts: int | None = int(params.get("timestamp") or "")
    except ValueError:
        ts = None
    return {"surface": "rest", "request": request, "timestamp": ts, "venue_time_ms": now_ms,
            "recv_window_ms": params.get("recvWindow") or None, "client_lead_ms": None if ts is None else ts - now_ms}


def sbe_only(accept: str | None) -> bool:
    """True when ACCEPT asks for application/sbe and for nothing JSON can answer (application/json, */*, application/*):
    Binance answers 406 there when SBE is not enabled, and JSON when JSON is accepted too
    (https://developers.binance.com/docs/binance-spot-api-docs/faqs/sbe_faq)."""
    kinds = {part.split(";")[0].strip().lower() for part in (accept or "").split(",")}
    return "application/sbe" in kinds and not kinds & {"application/json", "*/*", "application/*"}


class Handler(BaseHTTPRequestHandler):
    """One class for every method; the venue object is set on a subclass by the server."""

    venue: Venue
    routes: dict[tuple[str, str], Route] = ROUTES  # the server adds /fapi's (futures_rest.ROUTES): the path separates them
    used_weight: UsedWeight
    server_version = "opslab-binance-venue/1"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: without this a keep-alive client waits ~40 ms (delayed ACK)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.used_weight = UsedWeight()  # one counter per venue (the server makes one subclass per venue)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, detail: dict[str, Any] | None = None) -> None:
        """Answer with Binance's content type and the used-weight headers (every answer carries them); a refusal with a
        Binance error code is counted by its code (DETAIL: what a -1021 compared)."""
        if status >= 400 and isinstance(body, dict) and not self.path.startswith("/admin/"):
            fault_switch.count_reject(self.venue.faults, body.get("code"), detail)
        out = {k: v for k, v in (headers or {}).items() if not k.upper().startswith("X-MBX-USED-WEIGHT")}
        httpserver.send_json(self, status, body, {**out, **self.used_weight.headers()}, "application/json;charset=UTF-8")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _body(self) -> str | None:
        """The body, or None when its announced length is malformed or above MAX_BODY, or it is chunked (then it is not read)."""
        if self.headers.get("Transfer-Encoding"):
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return None
        return self.rfile.read(length).decode("utf-8", "replace") if length else ""

    def _dispatch(self, method: str) -> None:
        if len(self.path) > MAX_TARGET:
            self.close_connection = True
            return self._send(414, {"code": -1101, "msg": f"Request target longer than {MAX_TARGET} bytes."})
        body = self._body()
        if body is None:
            self.close_connection = True
            return self._send(413, {"code": -1101, "msg": f"Request body of {self.headers.get('Content-Length', '')[:32] or 'unannounced length'} "
                                                          f"bytes; at most {MAX_BODY}, with Content-Length."})
        split = urlsplit(self.path)
        if split.path == "/admin/faults":
            return self._admin_faults(method, body)
        if split.path == "/admin/fill":
            return self._admin_fill(method, body)
        if split.path == "/admin/state" and method == "GET":
            return self._send(200, self.venue.exchange.snapshot())
        if split.path == "/admin/futures" and method == "GET":
            return self._send(200, self.venue.futures.snapshot())
        if split.path == "/admin/futures/age":
            return self._admin_age(method, body)
        if sbe_only(self.headers.get("Accept")):  # Binance without SBE enabled: 406 (SBE FAQ); the venue speaks JSON only
            return self._send(406, {"code": -1000, "msg": "SBE is not enabled on this venue; accept application/json."})
        gone = profiles.retired(self.venue.profile, split.path)
        if gone:  # the profile's Binance no longer serves it (listenKey under 2026)
            return self._send(*gone)
        route = self.routes.get((method, split.path))
        if route is None:
            with self.venue.faults.lock:
                self.venue.faults.stats["requests"] += 1
            known = any(path == split.path for _, path in self.routes)
            if known:
                return self._send(405, {"code": -1000, "msg": f"Method {method} is not supported for {split.path}."})
            return self._send(404, {"code": -1100, "msg": f"unknown endpoint {split.path}"})
        form = self._form(method, body)
        params = dict(parse_qsl(form, keep_blank_values=True))
        params.update(parse_qsl(split.query, keep_blank_values=True))  # a parameter in both: the query string's is used
        weight = route.weigh(params)
        verdict = fault_switch.admit(self.venue.faults, weight)
        if verdict.action == "drop":
            self.close_connection = True
            return
        self.used_weight.add(weight)
        if verdict.status != 200:
            return self._send(verdict.status, verdict.body, verdict.headers)
        self.venue.count_request()
        now = fault_switch.clock_ms(self.venue.faults)  # the venue's own clock (clock_skew): signed requests are timed by it
        try:
            if route.security != NONE:
                auth.check_key(self.headers.get("X-MBX-APIKEY"), self.venue.api_key)
            if route.security == SIGNED:
                auth.check_signed(split.query, form, self.venue.api_secret or "", now_ms=now)  # None: check_key refused already
            params.pop("signature", None)
            headers = verdict.headers
            if (method, split.path) == ("POST", "/api/v3/order"):  # Binance's order count (order_rate_limit), then reject_orders
                placing = {"client_order_id": params.get("newClientOrderId"), "symbol": params.get("symbol"), "side": params.get("side"),
                           "type": params.get("type")}
                counted, refused = fault_switch.count_order(self.venue.faults, placing)
                headers = {**headers, **counted}
                refused = refused or fault_switch.reject_order(self.venue.faults, placing)
                if refused is not None:
                    return self._send(*refused, headers)
            if method == "DELETE" and split.path in ("/api/v3/order", "/api/v3/openOrders"):
                self._race_cancel(split.path, params)
            answer = route.answer(self.venue, params)
        except VenueError as exc:
            detail = _timing(f"{method} {split.path}", params, now) if exc.code == -1021 else None
            return self._send(exc.status, {"code": exc.code, "msg": exc.msg}, verdict.headers, detail)
        if (method, split.path) == ("POST", "/api/v3/order") and isinstance(answer, dict) and "orderId" in answer:
            lost = fault_switch.lose_ack(self.venue.faults, {"order_id": answer["orderId"], "client_order_id": answer["clientOrderId"],
                                                             "symbol": answer["symbol"], "type": answer.get("type"),
                                                             "status": answer.get("status")})
            if lost is not None:
                return self._lose_answer(lost, answer, headers)
        self._send(200, answer, headers)

    def _race_cancel(self, path: str, params: dict[str, str]) -> None:
        """cancel_fill_race: when this cancel of resting orders is the scheduled one, a fill beats it (the orders fill at their
        price first; the cancel then finds nothing open: -2011)."""
        every = path == "/api/v3/openOrders"
        try:
            order_id, client_id = (None, None) if every else _ids(params)
        except VenueError:
            return  # the cancel itself answers the malformed id
        targets = self.venue.exchange.cancel_targets(order_id, client_id, params.get("symbol") or "", every)
        if not targets:
            return
        race = fault_switch.race_cancel(self.venue.faults, {"request": f"DELETE {path}", "order_ids": [t["orderId"] for t in targets],
                                                            "client_order_ids": [t["clientOrderId"] for t in targets]})
        if race is not None:
            self.venue.exchange.fill_orders(race["order_ids"])

    def _lose_answer(self, lost: dict[str, Any], answer: Any, headers: dict[str, str]) -> None:
        """ack_lost: the order is placed; its answer is dropped (the connection closed), Binance's status unknown, or late."""
        if lost["mode"] == "drop":
            self.close_connection = True
            return
        if lost["mode"] == "unknown":
            return self._send(*fault_switch.STATUS_UNKNOWN, headers)
        time.sleep(lost["delay_ms"] / 1000)
        try:
            self._send(200, answer, headers)
        except OSError:  # the client gave up waiting: nobody is listening any more
            self.close_connection = True

    def _form(self, method: str, body: str) -> str:
        """The form body that carries parameters: POST/PUT/DELETE with application/x-www-form-urlencoded (or no
        content type, as curl -d and most clients send it); GET parameters come from the query string only."""
        if method == "GET" or not body:
            return ""
        kind = (self.headers.get("Content-Type") or "application/x-www-form-urlencoded").split(";")[0].strip().lower()
        return body if kind == "application/x-www-form-urlencoded" else ""  # exact: it is part of the signature payload

    def _admin_faults(self, method: str, body: str) -> None:
        state = self.venue.faults
        if method == "GET":
            with state.lock:
                return self._send(200, {"faults": state.faults, "stats": dict(state.stats), "messages": self.venue.exchange.messages,
                                        "sequence": self.venue.exchange.state["update_id"], "fills_counted": state.fills_counted,
                                        "fills_lost": list(state.fills_lost),
                                        "partial_fills": list(state.partial_fills), "reports_duplicated": list(state.reports_duplicated),
                                        "reports_reordered": list(state.reports_reordered),
                                        "acks_lost": list(state.acks_lost), "clock_offset_ms": state.offset_ms,
                                        "rejects": {str(code): n for code, n in sorted(state.rejects.items())},
                                        "timestamps_rejected": list(state.timestamps_rejected),
                                        "orders_refused": list(state.orders_refused),
                                        "orders_rejected": list(state.orders_rejected),
                                        "user_streams_ended": [dict(r) for r in state.user_streams_ended],
                                        "user_streams_active": self.venue.user_streams_active(),
                                        "cancels_raced": list(state.cancels_raced)})
        if method == "DELETE":
            faults: dict[str, Any] = {}
        elif method == "POST":
            try:
                faults = fault_switch.faults_from_json(fs.parse_json((body or "null").encode(), "body"))
            except fault_switch.InputError as exc:
                return self._send(400, {"code": -1, "msg": httpserver.bounded(str(exc))})
        else:
            return self._send(405, {"code": -1000, "msg": f"Method {method} is not supported for /admin/faults."})
        self.venue.set_faults(faults)
        self._send(200, {"faults": faults})

    def _admin_fill(self, method: str, body: str) -> None:
        if method != "POST":
            return self._send(405, {"code": -1000, "msg": f"Method {method} is not supported for /admin/fill."})
        expected = 'expected an empty body, {} (every open Spot order is filled) or {"account": "usdt_futures"} (every open futures order)'
        try:
            doc = fs.parse_json((body or "{}").encode(), "body")
        except fault_switch.InputError as exc:
            return self._send(400, {"code": -1, "msg": httpserver.bounded(f"{exc}; {expected}")})
        if doc == {"account": "usdt_futures"}:
            return self._send(200, {"filled": self.venue.futures.fill_open()})
        if doc != {}:
            return self._send(400, {"code": -1, "msg": expected})
        self._send(200, {"filled": self.venue.fill_open_orders()})

    def _admin_age(self, method: str, body: str) -> None:
        if method != "POST":
            return self._send(405, {"code": -1000, "msg": f"Method {method} is not supported for /admin/futures/age."})
        expected = 'expected {"hours": H}, 0 < H <= 8760: the futures account\'s records move H hours back'
        try:
            doc = fs.parse_json((body or "null").encode(), "body")
        except fault_switch.InputError as exc:
            return self._send(400, {"code": -1, "msg": httpserver.bounded(f"{exc}; {expected}")})
        hours = doc.get("hours") if isinstance(doc, dict) and set(doc) == {"hours"} else None
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 8760:
            return self._send(400, {"code": -1, "msg": expected})
        self._send(200, {"moved": self.venue.futures.age(float(hours)), "hours": hours})
