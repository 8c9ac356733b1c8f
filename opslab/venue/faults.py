"""The venue's fault switch: the faults, their parsing, and what they do to one request.

Read by the CLI parser for `--fault` help (so this module imports nothing heavy), applied by the
venue's REST and WebSocket surfaces (server.py, rest.py, streams.py) and counted in stats.py.

Faults, switchable at start (`--fault`) and at runtime (GET/POST/DELETE /admin/faults, loopback):
  latency=MS          answer after MS milliseconds
  error_5xx           answer 503
  rate_limit=W[/S]    a request-weight budget of W per S seconds (default 60); beyond it 429 + Retry-After;
                      a client that sends again before that Retry-After passed commits a violation, and
                      at BAN_AFTER violations every request is answered 418 (IP banned) for
                      min(2 x S, BAN_MAX_S) seconds, then normal limiting resumes (as Binance does)
  drop[=K]            close connections without answering (all of them, or only the next K)
  frozen_time         server time stops advancing
  stale_book          the book (depth lastUpdateId and its time) stops advancing
  sequence_gap=N      depth update ids jump by N+1 instead of 1 (N updates are never seen)
  silent_market       market streams are not published; sockets stay open and pinged,
                      the user data stream and REST keep working, the replay keeps its schedule
  fill_lost=N[/SEED]  the Nth fill from now (with SEED: one of the next N, chosen by random.Random(SEED)) is
                      executed and kept in the venue's record (myTrades, order status FILLED) but its
                      executionReport is never sent on the user data stream (listenKey stream and
                      WebSocket API subscription alike); the schedule is in the fault's value, every fill
                      it withheld in VenueState.fills_lost (GET /admin/faults, stats.json)
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opslab.errors import InputError

SYNTAX = {"latency": "latency=MS", "error_5xx": "error_5xx", "rate_limit": "rate_limit=WEIGHT[/SECONDS]", "drop": "drop[=K]",
          "frozen_time": "frozen_time", "stale_book": "stale_book", "sequence_gap": "sequence_gap[=N]", "silent_market": "silent_market",
          "fill_lost": "fill_lost=N[/SEED]"}
FAULT_NAMES = tuple(SYNTAX)  # the registry: the CLI's --fault help, the metrics labels and the stats schema follow it
BAN_AFTER = 3  # violations (requests before a 429's Retry-After passed) that earn a 418 ban
BAN_MAX_S = 300
FILL_LOST_MAX_N = 10_000  # fill_lost=N: N at most this
FILLS_LOST_KEPT = 100  # withheld fills remembered (VenueState.fills_lost), the oldest forgotten first


def parse_faults(specs: list[str]) -> dict[str, Any]:
    """`--fault` strings -> the fault mapping; InputError on anything unknown or malformed."""
    faults: dict[str, Any] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in FAULT_NAMES:
            raise InputError(f"--fault {spec!r}: unknown fault; known: {', '.join(FAULT_NAMES)}")
        faults.update(_fault_value(name, value, f"--fault {spec!r}"))
    return faults


def usage() -> str:
    """Every fault as `--fault` takes it, comma-separated (the CLI help)."""
    return ", ".join(SYNTAX.values())


def _fault_value(name: str, value: str, where: str) -> dict[str, Any]:
    try:
        if name == "latency":
            ms = int(value.removesuffix("ms"))
            if not 0 <= ms <= 60_000:
                raise ValueError
            return {"latency_ms": ms}
        if name == "rate_limit":
            weight, _, window = value.partition("/")
            w, s = int(weight), int(window or 60)
            if w < 1 or not 1 <= s <= 3600:
                raise ValueError
            return {"rate_limit": {"weight": w, "window_s": s}}
        if name == "drop" and value:
            k = int(value)
            if k < 1:
                raise ValueError
            return {"drop": k}
        if name == "sequence_gap":
            n = int(value or 10)
            if n < 1:
                raise ValueError
            return {"sequence_gap": n}
        if name == "fill_lost":
            return {"fill_lost": fill_schedule(value)}
        if value:
            raise ValueError
        return {name: True}
    except ValueError:
        raise InputError(f"{where}: bad value for {name} (latency=MS, rate_limit=WEIGHT[/SECONDS], sequence_gap=N, drop=K, "
                         "fill_lost=N[/SEED]; others take no value)") from None


def fill_schedule(value: str) -> dict[str, Any]:
    """fill_lost's value N[/SEED] -> {"n", "seed", "schedule"}: the ordinals (1 = the next fill after the fault is switched on)
    whose execution reports are withheld; N alone: [N]; with SEED: one of 1..N drawn by random.Random(SEED). ValueError if malformed."""
    n_text, slash, seed_text = value.partition("/")
    n = int(n_text)
    seed = int(seed_text) if slash else None
    if not 1 <= n <= FILL_LOST_MAX_N or (seed is not None and not 0 <= seed < 2**63):
        raise ValueError
    return {"n": n, "seed": seed, "schedule": [n] if seed is None else [random.Random(seed).randint(1, n)]}


def faults_from_json(doc: Any) -> dict[str, Any]:
    """Admin endpoint body {"faults": ["drop", "latency=200"]} -> fault mapping."""
    if not isinstance(doc, dict) or not isinstance(doc.get("faults"), list) or not all(isinstance(f, str) for f in doc["faults"]):
        raise InputError('expected {"faults": ["name[=value]", ...]}')
    return parse_faults(doc["faults"])


@dataclass
class VenueState:
    """Everything the handlers share, behind one lock."""

    faults: dict[str, Any] = field(default_factory=dict)
    sequence: int = 1000
    frozen_ms: int | None = None
    book_ms: int | None = None
    window_start: float = 0.0
    used_weight: int = 0
    retry_until: float = 0.0  # monotonic end of the last 429's Retry-After
    violations: int = 0
    banned_until: float = 0.0  # monotonic; 0 when not banned
    stats: dict[str, int] = field(default_factory=lambda: {"requests": 0, "served": 0, "throttled": 0, "dropped": 0, "errors": 0, "banned": 0})
    fills_counted: int = 0  # fills since fill_lost was last switched on
    fills_withheld: int = 0  # execution reports fill_lost withheld, since the venue started
    fills_lost: list[dict[str, Any]] = field(default_factory=list)  # every fill whose report fill_lost withheld (kept across switches)
    lock: threading.Lock = field(default_factory=threading.Lock)


def apply(state: VenueState, faults: dict[str, Any]) -> None:
    """Replace the active faults (under state.lock, or before anyone else sees STATE): frozen instants, a fresh rate window."""
    now_ms = int(time.time() * 1000)
    state.faults = dict(faults)
    state.frozen_ms = now_ms if faults.get("frozen_time") else None
    state.book_ms = now_ms if faults.get("stale_book") else None
    state.window_start, state.used_weight = time.monotonic(), 0
    state.retry_until, state.violations, state.banned_until = 0.0, 0, 0.0
    state.fills_counted = 0


def lose_fill(v: VenueState, fill: dict[str, Any]) -> bool:
    """Count one fill (FILL: its trade_id, order_id, client_order_id, symbol) under the fill_lost fault; True when its
    execution report is to be withheld, recorded then in v.fills_lost with the fault's seed. Called by the exchange for every fill."""
    with v.lock:
        lost = v.faults.get("fill_lost")
        if not lost:
            return False
        v.fills_counted += 1
        if v.fills_counted not in lost["schedule"]:
            return False
        v.fills_withheld += 1
        v.fills_lost.append({"fill": v.fills_counted, "seed": lost["seed"], "n": lost["n"], **fill,
                             "at_ms": int(time.time() * 1000)})
        del v.fills_lost[:-FILLS_LOST_KEPT]
        return True


def active_faults(faults: dict[str, Any]) -> list[str]:
    """The names (as in FAULT_NAMES) of the faults in effect, sorted."""
    return sorted({"latency" if key == "latency_ms" else key for key, value in faults.items() if value})


def ban_seconds(window_s: int) -> int:
    """How long a ban lasts under a rate_limit window of WINDOW_S seconds."""
    return min(2 * window_s, BAN_MAX_S)


@dataclass
class Verdict:
    """What the fault switch says about one request: serve (status 200), answer an error, or drop."""

    action: str  # serve | error | drop
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)


def admit(v: VenueState, weight: int) -> Verdict:
    """Apply the active faults to one request of WEIGHT (counts it in v.stats); sleeps for latency.

    Shared by the venue's REST and WebSocket surfaces.
    """
    with v.lock:
        v.stats["requests"] += 1
        faults = dict(v.faults)
        if faults.get("drop"):
            v.stats["dropped"] += 1
            if faults["drop"] is not True:  # drop=K: only the next K requests
                v.faults["drop"] = faults["drop"] - 1 or False
            return Verdict("drop", faults=faults)
    if faults.get("latency_ms"):
        time.sleep(faults["latency_ms"] / 1000.0)
    with v.lock:
        limit = faults.get("rate_limit")
        headers: dict[str, str] = {}
        if limit:
            verdict = _limit(v, limit, weight, faults)
            if verdict.status != 200:
                return verdict
            headers = verdict.headers
        if faults.get("error_5xx"):
            v.stats["errors"] += 1
            return Verdict("error", 503, {"code": -1001, "msg": "Internal error; please try again."}, faults=faults)
        v.stats["served"] += 1
        return Verdict("serve", 200, None, headers, faults)


def _limit(v: VenueState, limit: dict[str, int], weight: int, faults: dict[str, Any]) -> Verdict:
    """The rate_limit fault for one request, under v.lock: serve (200, with the used weight), 429, or 418 while banned."""
    now = time.monotonic()
    if v.banned_until and now >= v.banned_until:  # the ban is over: a fresh window, a clean record
        v.banned_until, v.violations, v.retry_until = 0.0, 0, 0.0
        v.window_start, v.used_weight = now, 0
    if not v.banned_until:
        if now - v.window_start >= limit["window_s"]:
            v.window_start, v.used_weight = now, 0
        if v.used_weight + weight <= limit["weight"]:
            v.used_weight += weight
            return Verdict("serve", 200, None, {"X-MBX-USED-WEIGHT-1M": str(v.used_weight)}, faults)
        if now < v.retry_until:
            v.violations += 1
        if v.violations < BAN_AFTER:
            v.stats["throttled"] += 1
            retry = max(1, math.ceil(limit["window_s"] - (now - v.window_start)))
            v.retry_until = now + retry
            return Verdict("error", 429, {"code": -1003, "msg": "Too many requests; honour Retry-After."},
                           {"Retry-After": str(retry), "X-MBX-USED-WEIGHT-1M": str(v.used_weight)}, faults)
        v.banned_until = now + ban_seconds(limit["window_s"])
    v.stats["banned"] += 1
    remaining = v.banned_until - now
    until_ms = int((time.time() + remaining) * 1000)
    return Verdict("error", 418, {"code": -1003, "msg": f"Way too many requests; IP banned until {until_ms}."},
                   {"Retry-After": str(max(1, math.ceil(remaining)))}, faults)
