"""The one client of the venue, loopback only: the lab drills' detections and the node run's venue record.

VenueClient.get: public GET with bounded exponential backoff on dropped/refused connections and
5xx, honours 429 Retry-After, and keeps a record (requests, failures, throttles, outage window).
VenueClient.signed_get: one SIGNED GET (API key header, timestamp, recvWindow, HMAC-SHA256), no
retry; on it, the venue's own record of the account (account_snapshot, all_trades, account_counts)
as a state snapshot: the expected side when `tc reconcile` checks a node run. The position is the
net base quantity of the account's trades (a spot venue keeps no positions; the node nets its fills
the same way), open orders are the venue's working orders, balances are free + locked per asset.
DepthTracker: polls order-book snapshots and checks their lastUpdateId sequence: a jump is a
missing update (resync from a fresh snapshot), no progress for N polls is a stale book.

stdlib http.client + hmac: a handful of GETs do not justify another dependency.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from opslab import urls
from opslab.contracts import SCHEMA_VERSION
from opslab.market import VENUE
from opslab.venue import auth, futures_contract
from opslab.venue.exchange import SYMBOL

FUTURES_INSTRUMENT = futures_contract.INSTRUMENT_ID
MAX_ANSWER = 8 * 1024 * 1024
MAX_PAGES = 100
RECORD_TIMEOUT_S = 5.0


class VenueDown(Exception):
    """The venue did not answer within the retry bound."""


class RecordError(Exception):
    """The venue did not answer a signed (record) query."""


def _open_rows(open_orders: list[dict[str, Any]], instrument: str) -> list[dict[str, str]]:
    """The venue's open orders (Spot's or USD-M's answer, the same fields) as state-snapshot rows: what is left of each."""
    rows = []
    for o in open_orders:
        entry = {"client_order_id": o["clientOrderId"], "instrument": instrument, "side": o["side"],
                 "quantity": _norm(Decimal(o["origQty"]) - Decimal(o["executedQty"]))}
        if o["type"] != "MARKET":
            entry["price"] = _norm(o["price"])
        rows.append(entry)
    return rows


def _snapshot(run_id: str, positions: list[dict[str, str]], orders: list[dict[str, str]], balances: dict[str, str]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "run_id": run_id, "source": "venue", "as_of": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "positions": positions, "open_orders": orders, "balances": balances}


def _norm(value: str | Decimal) -> str:
    d = Decimal(value).normalize()
    return format(d, "f") if d else "0"


@dataclass
class ClientRecord:
    """What the client saw: counts in logical units, waits in seconds."""

    requests: int = 0
    failures: int = 0
    throttled: int = 0
    retry_after_waits: list[float] = field(default_factory=list)
    backoff_waits: list[float] = field(default_factory=list)
    outage_started_request: int | None = None
    outage_ended_request: int | None = None
    reconnected: bool = False


class VenueClient:
    """GET JSON from the venue (or any loopback venue): public with bounded retries, signed with the account's key."""

    def __init__(self, base_url: str, timeout_s: float = 2.0, max_retries: int = 6, backoff_base_s: float = 0.05,
                 backoff_max_s: float = 0.8, max_retry_after_s: float = 10.0, retry: bool = True,
                 api_key: str = "", api_secret: str = "", symbol: str = SYMBOL) -> None:
        """SYMBOL: the Spot symbol the account's record is read for (the run's instrument; USD-M is always BTCUSDT's perpetual)."""
        self.target = urls.parse(base_url)
        self.symbol = symbol
        self.api_key, self.api_secret = api_key, api_secret
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_base_s, self.backoff_max_s, self.max_retry_after_s = backoff_base_s, backoff_max_s, max_retry_after_s
        self.retry = retry
        self.record = ClientRecord()

    def _once(self, path: str) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection(self.target.address, self.target.port, timeout=self.timeout_s)
        try:
            conn.request("GET", path, headers={"Host": self.target.host, "Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(body) if body else None
        finally:
            conn.close()
            self.record.requests += 1

    def get(self, path: str) -> Any:
        """The JSON answer for PATH; VenueDown after max_retries failed attempts."""
        failures_in_row = 0
        while True:
            try:
                status, headers, body = self._once(path)
            except (OSError, http.client.HTTPException):
                status, headers, body = None, {}, None
            if status == 200:
                if self.record.outage_started_request is not None and self.record.outage_ended_request is None:
                    self.record.outage_ended_request = self.record.requests
                    self.record.reconnected = True
                return body
            if status == 429:
                self.record.throttled += 1
                wait = min(float(headers.get("retry-after", "1")), self.max_retry_after_s)
                self.record.retry_after_waits.append(wait)
                if not self.retry:
                    raise VenueDown(f"{path}: throttled (429), retry disabled")
                time.sleep(wait)
                continue
            self.record.failures += 1
            if self.record.outage_started_request is None or self.record.outage_ended_request is not None:
                self.record.outage_started_request, self.record.outage_ended_request = self.record.requests, None
            failures_in_row += 1
            if not self.retry or failures_in_row > self.max_retries:
                raise VenueDown(f"{path}: no answer after {failures_in_row} attempt(s)")
            wait = min(self.backoff_max_s, self.backoff_base_s * (2 ** (failures_in_row - 1)))
            self.record.backoff_waits.append(wait)
            time.sleep(wait)

    def signed_get(self, path: str, params: dict[str, Any]) -> Any:
        """The JSON answer of one SIGNED GET; RecordError on no answer, a non-200 or more than MAX_ANSWER bytes."""
        return self.signed("GET", path, params)

    def signed(self, method: str, path: str, params: dict[str, Any]) -> Any:
        """The JSON answer of one SIGNED request (the parameters in the query string, as Binance takes them for any method);
        RecordError on no answer, a non-200 or more than MAX_ANSWER bytes."""
        query = urlencode({**params, "timestamp": int(time.time() * 1000), "recvWindow": 5000})
        query += "&signature=" + auth.sign(self.api_secret, query)
        conn = http.client.HTTPConnection(self.target.address, self.target.port, timeout=self.timeout_s)
        try:
            conn.request(method, f"{path}?{query}", headers={"X-MBX-APIKEY": self.api_key, "Host": self.target.host})
            resp = conn.getresponse()
            body = resp.read(MAX_ANSWER + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise RecordError(f"{path}: {exc}") from None
        finally:
            conn.close()
        if resp.status != 200 or len(body) > MAX_ANSWER:
            raise RecordError(f"{path}: HTTP {resp.status} {body[:200]!r}")
        return json.loads(body)

    def account_snapshot(self, run_id: str) -> dict[str, Any]:
        """The account as the venue records it, in the state_snapshot format (source: venue)."""
        account = self.signed_get("/api/v3/account", {})
        open_orders = self.signed_get("/api/v3/openOrders", {"symbol": self.symbol})
        trades = self.all_trades()
        net = sum((Decimal(t["qty"]) if t["isBuyer"] else -Decimal(t["qty"]) for t in trades), Decimal(0))
        instrument = f"{self.symbol}.{VENUE}"
        positions = [{"instrument": instrument, "side": "LONG" if net > 0 else "SHORT", "quantity": _norm(abs(net))}] if net else []
        balances = {b["asset"]: _norm(Decimal(b["free"]) + Decimal(b["locked"])) for b in account["balances"]}
        return _snapshot(run_id, positions, _open_rows(open_orders, instrument), balances)

    def futures_account_snapshot(self, run_id: str) -> dict[str, Any]:
        """The USD-M account as the venue records it (source: venue): its one-way position with its entry price (Position
        Information V2), its open orders, and the wallet balance per asset, which is what NautilusTrader's margin account
        holds as each balance's total (Account Information V2, walletBalance)."""
        risk = self.signed_get("/fapi/v2/positionRisk", {"symbol": SYMBOL})
        open_orders = self.signed_get("/fapi/v1/openOrders", {"symbol": SYMBOL})
        account = self.signed_get("/fapi/v2/account", {})
        positions = []
        for p in risk:
            amount = Decimal(p["positionAmt"])
            if amount:
                positions.append({"instrument": FUTURES_INSTRUMENT, "side": "LONG" if amount > 0 else "SHORT", "quantity": _norm(abs(amount)),
                                  "entry_price": _norm(Decimal(p["entryPrice"]))})
        balances = {a["asset"]: _norm(Decimal(a["walletBalance"])) for a in account["assets"]}
        return _snapshot(run_id, positions, _open_rows(open_orders, FUTURES_INSTRUMENT), balances)

    def futures_account_counts(self) -> dict[str, int]:
        """How many USD-M orders and trades the venue holds for the account, and its funding payments (Get Income History,
        FUNDING_FEE; its newest 1,000) for the run's summary."""
        orders = self._paged("/fapi/v1/allOrders", "orderId", "orderId", SYMBOL)
        trades = self._paged("/fapi/v1/userTrades", "fromId", "id", SYMBOL)
        funding = self.signed_get("/fapi/v1/income", {"symbol": SYMBOL, "incomeType": "FUNDING_FEE", "limit": 1000})
        return {"venue_orders": len(orders), "venue_trades": len(trades),
                "venue_orders_canceled": sum(1 for o in orders if o["status"] == "CANCELED"), "venue_funding_payments": len(funding)}

    def _paged(self, path: str, id_param: str, id_field: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """Every row of a Binance list endpoint for SYMBOL (the client's by default), 1,000 at a time by ascending id
        (bounded by MAX_PAGES)."""
        rows: list[dict[str, Any]] = []
        next_id = 0
        for _ in range(MAX_PAGES):
            page = self.signed_get(path, {"symbol": symbol or self.symbol, id_param: next_id, "limit": 1000})
            rows += page
            if len(page) < 1000:
                return rows
            next_id = page[-1][id_field] + 1
        raise RecordError(f"{path}: more than {MAX_PAGES * 1000} rows")

    def all_trades(self) -> list[dict[str, Any]]:
        return self._paged("/api/v3/myTrades", "fromId", "id")

    def account_counts(self) -> dict[str, int]:
        """How many orders and trades the venue holds for the account (for the run's summary)."""
        orders = self._paged("/api/v3/allOrders", "orderId", "orderId")
        trades = self.all_trades()
        return {"venue_orders": len(orders), "venue_trades": len(trades),
                "venue_orders_canceled": sum(1 for o in orders if o["status"] == "CANCELED")}


@dataclass
class DepthEvent:
    """One poll's verdict."""

    poll: int
    sequence: int
    verdict: str  # base, ok, gap, stale, resynced, unchanged
    missing: int = 0


class DepthTracker:
    """Checks order-book snapshots for sequence gaps and staleness."""

    PATH = "/api/v3/depth?symbol=BTCUSDT&limit=5"

    def __init__(self, client: VenueClient, stale_after_polls: int = 3, detect: bool = True) -> None:
        self.client, self.stale_after_polls, self.detect = client, stale_after_polls, detect
        self.last: int | None = None
        self.unchanged = 0
        self.polls = 0
        self.events: list[DepthEvent] = []

    def poll(self) -> DepthEvent:
        """Fetch one snapshot and judge its sequence against the last one."""
        self.polls += 1
        seq = int(self.client.get(self.PATH)["lastUpdateId"])
        if self.last is None:
            event = DepthEvent(self.polls, seq, "base")
        elif seq == self.last + 1 or not self.detect:
            event = DepthEvent(self.polls, seq, "ok")
            self.unchanged = 0
        elif seq == self.last:
            self.unchanged += 1
            event = DepthEvent(self.polls, seq, "stale" if self.unchanged >= self.stale_after_polls else "unchanged")
        else:
            event = DepthEvent(self.polls, seq, "gap", missing=max(0, seq - self.last - 1))
            self.events.append(event)
            seq = int(self.client.get(self.PATH)["lastUpdateId"])  # resync: a fresh snapshot is the new base
            self.unchanged = 0
            event = DepthEvent(self.polls, seq, "resynced", missing=event.missing)
        self.last = seq
        self.events.append(event)
        return event
