"""The venue's own record of the account, read over its signed REST API (GET account, openOrders,
myTrades), as a state snapshot: the expected side when `tc reconcile` checks a node run.

The position is the net base quantity of the account's trades (a spot venue keeps no positions;
the node nets its fills the same way), open orders are the venue's working orders, balances are
free + locked per asset. stdlib http.client + hmac: three GETs do not justify another dependency.
"""

from __future__ import annotations

import http.client
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from opslab import urls
from opslab.venue import auth
from opslab.venue.exchange import SYMBOL

INSTRUMENT = f"{SYMBOL}.BINANCE"
MAX_ANSWER = 8 * 1024 * 1024
MAX_PAGES = 100


class RecordError(Exception):
    """The venue did not answer a record query."""


def _norm(value: str | Decimal) -> str:
    d = Decimal(value).normalize()
    return format(d, "f") if d else "0"


def _get(base: str, path: str, key: str, secret: str, params: dict[str, Any], timeout_s: float) -> Any:
    target = urls.parse(base)
    query = urlencode({**params, "timestamp": int(time.time() * 1000), "recvWindow": 5000})
    query += "&signature=" + auth.sign(secret, query)
    conn = http.client.HTTPConnection(target.address, target.port, timeout=timeout_s)
    try:
        conn.request("GET", f"{path}?{query}", headers={"X-MBX-APIKEY": key, "Host": target.host})
        resp = conn.getresponse()
        body = resp.read(MAX_ANSWER + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise RecordError(f"{path}: {exc}") from None
    finally:
        conn.close()
    if resp.status != 200 or len(body) > MAX_ANSWER:
        raise RecordError(f"{path}: HTTP {resp.status} {body[:200]!r}")
    return json.loads(body)


def fetch(base: str, key: str, secret: str, run_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The account as the venue records it, in the state_snapshot format (source: venue)."""
    account = _get(base, "/api/v3/account", key, secret, {}, timeout_s)
    open_orders = _get(base, "/api/v3/openOrders", key, secret, {"symbol": SYMBOL}, timeout_s)
    trades = all_trades(base, key, secret, timeout_s)
    net = sum((Decimal(t["qty"]) if t["isBuyer"] else -Decimal(t["qty"]) for t in trades), Decimal(0))
    positions = [{"instrument": INSTRUMENT, "side": "LONG" if net > 0 else "SHORT", "quantity": _norm(abs(net))}] if net else []
    orders = []
    for o in open_orders:
        entry = {"client_order_id": o["clientOrderId"], "instrument": INSTRUMENT, "side": o["side"],
                 "quantity": _norm(Decimal(o["origQty"]) - Decimal(o["executedQty"]))}
        if o["type"] != "MARKET":
            entry["price"] = _norm(o["price"])
        orders.append(entry)
    balances = {b["asset"]: _norm(Decimal(b["free"]) + Decimal(b["locked"])) for b in account["balances"]}
    return {"schema_version": 1, "run_id": run_id, "source": "venue", "as_of": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "positions": positions, "open_orders": orders, "balances": balances,
            }


def _paged(base: str, path: str, id_param: str, id_field: str, key: str, secret: str, timeout_s: float) -> list[dict[str, Any]]:
    """Every row of a Binance list endpoint, 1,000 at a time by ascending id (bounded by MAX_PAGES)."""
    rows: list[dict[str, Any]] = []
    next_id = 0
    for _ in range(MAX_PAGES):
        page = _get(base, path, key, secret, {"symbol": SYMBOL, id_param: next_id, "limit": 1000}, timeout_s)
        rows += page
        if len(page) < 1000:
            return rows
        next_id = page[-1][id_field] + 1
    raise RecordError(f"{path}: more than {MAX_PAGES * 1000} rows")


def all_trades(base: str, key: str, secret: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    return _paged(base, "/api/v3/myTrades", "fromId", "id", key, secret, timeout_s)


def counts(base: str, key: str, secret: str, timeout_s: float = 5.0) -> dict[str, int]:
    """How many orders and trades the venue holds for the account (for the run's summary)."""
    orders = _paged(base, "/api/v3/allOrders", "orderId", "orderId", key, secret, timeout_s)
    trades = all_trades(base, key, secret, timeout_s)
    return {"venue_orders": len(orders), "venue_trades": len(trades),
            "venue_orders_canceled": sum(1 for o in orders if o["status"] == "CANCELED")}
