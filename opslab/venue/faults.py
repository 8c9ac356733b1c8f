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
  half_open           every WebSocket connection open when it is switched on goes half-open: it is never closed,
                      but nothing is sent on it again (market data, user data, WebSocket API answers, the venue's
                      pings) and nothing the client sends on it is answered (commands, requests, its pings get
                      no pong), as when the peer vanished without a FIN; new connections and REST are served as
                      ever. Switched on at runtime (at start there is no connection to leave)
  fill_lost=N[/SEED]  the Nth fill from now (with SEED: one of the next N, chosen by random.Random(SEED)) is
                      executed and kept in the venue's record (myTrades, order status FILLED) but its
                      executionReport is never sent on the user data stream (listenKey stream and
                      WebSocket API subscription alike); the schedule is in the fault's value, every fill
                      it withheld in VenueState.fills_lost (GET /admin/faults, stats.json)
  partial_fills=P1/P2/...[@SEED]
                      a marketable order (one the book fills in full now) fills in parts, P1 % of its quantity,
                      then P2 % ... (2 to 10 whole percentages summing to 100), each part its own trade and
                      its own executionReport (TRADE, PARTIALLY_FILLED ... FILLED), PARTIAL_GAP_MS apart; REST
                      order queries show the cumulative state in between. Every marketable order from now, or
                      with SEED the ordinals among the next PARTIAL_SPAN that random.Random(SEED) chose (the
                      schedule, in the fault's value); every split in VenueState.partial_fills
  duplicate_reports=N[/SEED]
                      the executionReport of the Nth fill from now (with SEED: one of the next N, as fill_lost)
                      is sent twice, byte for byte, on the user data stream (both profiles); the trade is
                      one trade in the venue's record; every duplicated fill in VenueState.reports_duplicated
  reorder_reports=N[/SEED]
                      the Nth marketable order placed from now (one the book fills now, in full or in part; with SEED:
                      one of the next N, as fill_lost) has its executionReports out of order on the user data stream
                      (both profiles): its fills' TRADE reports first, then the NEW report that acknowledges it (a fill
                      before its acknowledgement). The order and its trades are as ever in the venue's record; every
                      reordered order in VenueState.reports_reordered
  ack_lost=N[/SEED][@MODE][:TYPE]
                      the Nth order placement (POST /api/v3/order; with TYPE: of that order type, e.g. LIMIT) the
                      venue accepts from now (with SEED: one of the next N, as fill_lost) is placed, reported
                      on the user data stream and rests or fills, but its HTTP answer is lost: MODE drop (the default) closes the connection without an answer,
                      unknown answers Binance's status-unknown 503 (-1007, "execution status unknown"), and a
                      number of milliseconds holds the answer that long before sending it (past a client's
                      timeout); every lost answer in VenueState.acks_lost
  clock_skew=MS[/SEED]
                      the venue's own clock runs MS milliseconds ahead of the host's (negative: behind; with
                      SEED, random.Random(SEED) draws the offset between MS/2 and MS): serverTime (REST
                      /api/v3/time, exchangeInfo, the WebSocket API) and the timing check of every signed request
                      (REST and WebSocket API) use it, so a client signing with the host clock is refused with
                      -1021 once the offset exceeds its recvWindow; the host clock is never touched. Every -1021
                      in VenueState.timestamps_rejected; every refusal by Binance error code in VenueState.rejects
  order_rate_limit=N[/SEED]
                      Binance's runtime order-rate limit: at most N new orders (POST /api/v3/order) per TEN_SECONDS
                      interval of the venue's clock (intervals start every 10 s, as Binance counts them; with SEED the
                      limit is one of 1..N drawn by random.Random(SEED)); an order beyond it is refused with HTTP 429
                      and -1015 "Too many new orders; current limit is N orders per TEN_SECONDS." and is not placed.
                      Every order answer carries X-MBX-ORDER-COUNT-10S and -1D (the counts), with or without the
                      fault, and exchangeInfo's ORDERS rate limit says N while it is on. Both profiles place orders over
                      REST (the venue's WebSocket API serves no order methods, so its rateLimits never list ORDERS); every
                      refused order in VenueState.orders_refused
  reject_orders=PCT[/SEED][@CODE]
                      each new order placement (POST /api/v3/order) from now is refused with probability PCT % (1-100),
                      drawn in order by random.Random(SEED) (SEED 0 when left out: the schedule is always seeded), with
                      Binance's error CODE and its message (REJECT_REASONS; default -2010, insufficient balance), HTTP 400;
                      a refused order is not placed. Every refusal in VenueState.orders_rejected (with the draw's ordinal)
  user_stream_expiry=N[/SEED][@silent]
                      the user data stream ends just before the Nth user-data event from now (with SEED: one of the
                      next N, as fill_lost): every WebSocket API subscription gets Binance's eventStreamTerminated and
                      is ended (the session stays logged on, a client may subscribe again), every listen key gets
                      listenKeyExpired on its streams and expires (keepalive answers -1125, a client may make a new
                      one); that event and the later ones reach no ended subscription or key. @silent: the same
                      without telling (no eventStreamTerminated, no listenKeyExpired: a silent user stream). Market
                      data and REST go on; fills keep happening at the venue. Every end in VenueState.user_streams_ended
  cancel_fill_race=N[/SEED]
                      the Nth cancel request from now that targets a resting order (DELETE /api/v3/order, or DELETE
                      /api/v3/openOrders for all of them; with SEED: one of the next N, as fill_lost) loses the race to a
                      fill: the venue fills the targeted order(s) at their price first (trade, executionReport TRADE
                      FILLED on the user data stream), then takes the cancel, which finds nothing open and is answered
                      Binance's -2011 "Unknown order sent."; every race in VenueState.cancels_raced
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opslab.errors import InputError

SYNTAX = {"latency": "latency=MS", "error_5xx": "error_5xx", "rate_limit": "rate_limit=WEIGHT[/SECONDS]", "drop": "drop[=K]",
          "frozen_time": "frozen_time", "stale_book": "stale_book", "sequence_gap": "sequence_gap[=N]", "silent_market": "silent_market",
          "half_open": "half_open",
          "fill_lost": "fill_lost=N[/SEED]", "partial_fills": "partial_fills=P1/P2/...[@SEED]",
          "duplicate_reports": "duplicate_reports=N[/SEED]", "reorder_reports": "reorder_reports=N[/SEED]",
          "ack_lost": "ack_lost=N[/SEED][@drop|@unknown|@MS][:TYPE]",
          "clock_skew": "clock_skew=MS[/SEED]", "order_rate_limit": "order_rate_limit=N[/SEED]",
          "reject_orders": "reject_orders=PCT[/SEED][@CODE]",
          "user_stream_expiry": "user_stream_expiry=N[/SEED][@silent]", "cancel_fill_race": "cancel_fill_race=N[/SEED]"}
FAULT_NAMES = tuple(SYNTAX)  # the registry: the CLI's --fault help, the metrics labels and the stats schema follow it
BAN_AFTER = 3  # violations (requests before a 429's Retry-After passed) that earn a 418 ban
BAN_MAX_S = 300
FILL_LOST_MAX_N = 10_000  # fill_lost=N: N at most this
FILLS_LOST_KEPT = 100  # withheld fills remembered (VenueState.fills_lost), the oldest forgotten first
PARTIAL_GAP_MS = 2000  # partial_fills: the pause between two executions of one order
PARTIAL_SPAN = 8  # partial_fills=...@SEED: the seed chooses among the next PARTIAL_SPAN marketable orders
PARTIAL_MAX_PARTS = 10
RECORDS_KEPT = 100  # splits, duplicated reports, lost acks and refused timestamps remembered, the oldest forgotten first
ACK_MODES = ("drop", "unknown")  # ack_lost@MODE; a number is a delay in milliseconds
ACK_DELAY_MAX_MS = 600_000
CLOCK_SKEW_MAX_MS = 3_600_000
ORDER_WINDOW_MS = 10_000  # order_rate_limit: Binance's TEN_SECONDS order interval
ORDER_LIMIT_MAX = 100_000
DAY_MS = 86_400_000
# Binance's status-unknown answer (https://developers.binance.com/docs/binance-spot-api-docs/errors: -1007 TIMEOUT; and
# .../rest-api/general-api-information: a 503 whose execution status is UNKNOWN and could have been a success)
STATUS_UNKNOWN = (503, {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown."})
# Binance error codes the venue answers with that the exporter always shows (0 until seen), so an alert on their increase
# sees the first one; other codes are shown once seen
# reject_orders's codes: Binance's answers to an order it refuses on its merits (https://developers.binance.com/docs/
# binance-spot-api-docs/errors: -2010 NEW_ORDER_REJECTED with its messages, -1013 a filter failure)
REJECT_REASONS = {-2010: "Account has insufficient balance for requested action.", -1013: "Filter failure: NOTIONAL"}
REJECT_CODES = (-1003, -1007, -1013, -1015, -1021, -1022, -2010, -2011, -2015)


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
        if name in ("fill_lost", "duplicate_reports", "reorder_reports", "cancel_fill_race"):
            return {name: fill_schedule(value)}
        if name == "partial_fills":
            return {name: partial_schedule(value)}
        if name == "ack_lost":
            return {name: ack_schedule(value)}
        if name == "clock_skew":
            return {name: skew_schedule(value)}
        if name == "order_rate_limit":
            return {name: order_limit_schedule(value)}
        if name == "reject_orders":
            return {name: reject_schedule(value)}
        if name == "user_stream_expiry":
            return {name: expiry_schedule(value)}
        if value:
            raise ValueError
        return {name: True}
    except ValueError:
        raise InputError(f"{where}: bad value for {name} (latency=MS, rate_limit=WEIGHT[/SECONDS], sequence_gap=N, drop=K, "
                         "fill_lost=N[/SEED], partial_fills=P1/P2/...[@SEED] (2-10 whole percentages summing to 100), "
                         "duplicate_reports=N[/SEED], reorder_reports=N[/SEED], ack_lost=N[/SEED][@drop|@unknown|@MS][:TYPE], clock_skew=MS[/SEED] (MS not 0), "
                         "order_rate_limit=N[/SEED] (N at least 1), reject_orders=PCT[/SEED][@CODE] (PCT 1-100, CODE one of "
                         f"{', '.join(str(c) for c in REJECT_REASONS)}), user_stream_expiry=N[/SEED][@silent], cancel_fill_race=N[/SEED]; "
                         "others take no value)") from None


def fill_schedule(value: str) -> dict[str, Any]:
    """fill_lost's (and duplicate_reports') value N[/SEED] -> {"n", "seed", "schedule"}: the ordinals (1 = the next fill after the fault is switched on)
    whose execution reports are withheld; N alone: [N]; with SEED: one of 1..N drawn by random.Random(SEED). ValueError if malformed."""
    n_text, slash, seed_text = value.partition("/")
    n = int(n_text)
    seed = int(seed_text) if slash else None
    if not 1 <= n <= FILL_LOST_MAX_N or (seed is not None and not 0 <= seed < 2**63):
        raise ValueError
    return {"n": n, "seed": seed, "schedule": [n] if seed is None else [random.Random(seed).randint(1, n)]}


def partial_schedule(value: str) -> dict[str, Any]:
    """partial_fills's value P1/P2/...[@SEED] -> {"split", "seed", "schedule", "gap_ms"}: the percentages; the ordinals of the
    marketable orders to split (1 = the next after the fault is switched on; None: every one), with SEED those among
    1..PARTIAL_SPAN that random.Random(SEED) draws (each with probability 1/2, at least one). ValueError if malformed."""
    split_text, at, seed_text = value.partition("@")
    split = [int(p) for p in split_text.split("/")]
    seed = int(seed_text) if at else None
    if not 2 <= len(split) <= PARTIAL_MAX_PARTS or min(split) < 1 or sum(split) != 100 or (seed is not None and not 0 <= seed < 2**63):
        raise ValueError
    schedule = None
    if seed is not None:
        rng = random.Random(seed)
        schedule = [i for i in range(1, PARTIAL_SPAN + 1) if rng.random() < 0.5] or [rng.randint(1, PARTIAL_SPAN)]
    return {"split": split, "seed": seed, "schedule": schedule, "gap_ms": PARTIAL_GAP_MS}


def ack_schedule(value: str) -> dict[str, Any]:
    """ack_lost's value N[/SEED][@MODE][:TYPE] -> {"n", "seed", "schedule", "mode", "delay_ms", "order_type"}: the ordinals of
    the accepted order placements (of ORDER_TYPE only, when given) whose answer is lost (as fill_schedule) and how (drop,
    unknown, or delay with DELAY_MS). ValueError if malformed."""
    value, colon, order_type = value.partition(":")
    if colon and not re.fullmatch(r"[A-Z][A-Z_]{0,31}", order_type):
        raise ValueError
    schedule_text, at, mode = value.partition("@")
    out = fill_schedule(schedule_text)
    mode = mode if at else "drop"
    delay_ms = None
    if mode not in ACK_MODES:
        delay_ms = int(mode.removesuffix("ms"))
        if not 1 <= delay_ms <= ACK_DELAY_MAX_MS:
            raise ValueError
        mode = "delay"
    return {**out, "mode": mode, "delay_ms": delay_ms, "order_type": order_type or None}


def skew_schedule(value: str) -> dict[str, Any]:
    """clock_skew's value MS[/SEED] -> {"ms", "seed", "offset_ms"}: the venue clock's offset from the host's, MS, or with SEED
    one between MS/2 and MS drawn by random.Random(SEED). ValueError if malformed."""
    ms_text, slash, seed_text = value.partition("/")
    ms = int(ms_text.removesuffix("ms"))
    seed = int(seed_text) if slash else None
    if ms == 0 or abs(ms) > CLOCK_SKEW_MAX_MS or (seed is not None and not 0 <= seed < 2**63):
        raise ValueError
    offset = ms if seed is None else random.Random(seed).randint(min(ms // 2, ms), max(ms // 2, ms))
    return {"ms": ms, "seed": seed, "offset_ms": offset}


def order_limit_schedule(value: str) -> dict[str, Any]:
    """order_rate_limit's value N[/SEED] -> {"n", "seed", "limit", "window_s"}: the new orders allowed per TEN_SECONDS interval,
    N, or with SEED one of 1..N drawn by random.Random(SEED). ValueError if malformed."""
    n_text, slash, seed_text = value.partition("/")
    n = int(n_text)
    seed = int(seed_text) if slash else None
    if not 1 <= n <= ORDER_LIMIT_MAX or (seed is not None and not 0 <= seed < 2**63):
        raise ValueError
    limit = n if seed is None else random.Random(seed).randint(1, n)
    return {"n": n, "seed": seed, "limit": limit, "window_s": ORDER_WINDOW_MS // 1000}


def reject_schedule(value: str) -> dict[str, Any]:
    """reject_orders's value PCT[/SEED][@CODE] -> {"pct", "seed", "code", "msg"}. ValueError if malformed."""
    value, at, code_text = value.partition("@")
    pct_text, slash, seed_text = value.partition("/")
    pct = int(pct_text.removesuffix("%"))
    seed = int(seed_text) if slash else 0
    code = int(code_text) if at else -2010
    if not 1 <= pct <= 100 or not 0 <= seed < 2**63 or code not in REJECT_REASONS:
        raise ValueError
    return {"pct": pct, "seed": seed, "code": code, "msg": REJECT_REASONS[code]}


def expiry_schedule(value: str) -> dict[str, Any]:
    """user_stream_expiry's value N[/SEED][@silent] -> {"n", "seed", "schedule", "silent"}: the ordinal of the user-data event
    (1 = the next after the fault is switched on) before which the user data stream ends (as fill_schedule), and whether it
    ends without telling. ValueError if malformed."""
    schedule_text, at, mode = value.partition("@")
    if at and mode != "silent":
        raise ValueError
    return {**fill_schedule(schedule_text), "silent": bool(at)}


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
    orders_counted: int = 0  # marketable orders since partial_fills was last switched on
    partial_fills: list[dict[str, Any]] = field(default_factory=list)  # every order partial_fills split (kept across switches)
    dup_counted: int = 0  # fills since duplicate_reports was last switched on
    reports_duplicated: list[dict[str, Any]] = field(default_factory=list)  # every fill whose report was sent twice (the last 100)
    fills_duplicated: int = 0  # execution reports duplicate_reports sent twice, since the venue started
    reorder_counted: int = 0  # marketable orders since reorder_reports was last switched on
    reports_reordered: list[dict[str, Any]] = field(default_factory=list)  # every order whose reports came out of order (the last 100)
    acks_counted: int = 0  # accepted order placements since ack_lost was last switched on
    acks_lost: list[dict[str, Any]] = field(default_factory=list)  # every placement whose answer ack_lost lost (the last 100)
    offset_ms: int = 0  # the venue clock's offset from the host's (clock_skew), 0 without it
    rejects: dict[int, int] = field(default_factory=dict)  # refusals by Binance error code (REST and WebSocket API), since the venue started
    timestamps_rejected: list[dict[str, Any]] = field(default_factory=list)  # every -1021 (the last 100)
    order_window: int = -1  # the TEN_SECONDS interval (venue clock ms // ORDER_WINDOW_MS) order_count counts
    order_count: int = 0  # new orders placed in that interval (X-MBX-ORDER-COUNT-10S)
    order_day: int = -1  # the venue clock's UTC day order_day_count counts
    order_day_count: int = 0  # new orders placed that day (X-MBX-ORDER-COUNT-1D)
    orders_refused: list[dict[str, Any]] = field(default_factory=list)  # every order order_rate_limit refused with -1015 (the last 100)
    reject_draws: random.Random | None = None  # reject_orders: its seeded draws, from the switch on
    rejects_counted: int = 0  # order placements since reject_orders was last switched on
    orders_rejected: list[dict[str, Any]] = field(default_factory=list)  # every order reject_orders refused (the last 100)
    user_events_counted: int = 0  # user-data events since user_stream_expiry was last switched on
    user_streams_ended: list[dict[str, Any]] = field(default_factory=list)  # every end user_stream_expiry made (the last 100)
    user_streams_ended_total: int = 0  # subscriptions and listen keys it ended, since the venue started
    cancels_counted: int = 0  # cancel requests of resting orders since cancel_fill_race was last switched on
    cancels_raced: list[dict[str, Any]] = field(default_factory=list)  # every cancel cancel_fill_race had a fill beat (the last 100)
    lock: threading.Lock = field(default_factory=threading.Lock)


def apply(state: VenueState, faults: dict[str, Any]) -> None:
    """Replace the active faults (under state.lock, or before anyone else sees STATE): frozen instants, a fresh rate window."""
    now_ms = int(time.time() * 1000)
    state.faults = dict(faults)
    state.offset_ms = faults["clock_skew"]["offset_ms"] if faults.get("clock_skew") else 0
    state.frozen_ms = now_ms + state.offset_ms if faults.get("frozen_time") else None  # frozen at the venue's own clock
    state.book_ms = now_ms if faults.get("stale_book") else None
    state.window_start, state.used_weight = time.monotonic(), 0
    state.retry_until, state.violations, state.banned_until = 0.0, 0, 0.0
    state.fills_counted = state.orders_counted = state.dup_counted = state.acks_counted = state.user_events_counted = 0
    state.cancels_counted = state.reorder_counted = state.rejects_counted = 0
    state.reject_draws = random.Random(faults["reject_orders"]["seed"]) if faults.get("reject_orders") else None


def clock_ms(v: VenueState) -> int:
    """The venue's own clock (Unix milliseconds): the host's plus clock_skew's offset. Signed requests are timed by it."""
    return int(time.time() * 1000) + v.offset_ms


def server_time_ms(v: VenueState) -> int:
    """serverTime as the venue reports it: its own clock, or the instant frozen_time froze it."""
    frozen = v.frozen_ms
    return frozen if frozen is not None else clock_ms(v)


def _scheduled(v: VenueState, fault: str, counter: str) -> tuple[dict[str, Any], int] | None:
    """Under v.lock: count one event under FAULT in v's attribute COUNTER (zeroed when the fault is switched on); (the fault's
    settings, the count) when the count is in the fault's seeded schedule, else None (also when FAULT is off)."""
    settings = v.faults.get(fault)
    if not settings:
        return None
    count = getattr(v, counter) + 1
    setattr(v, counter, count)
    return (settings, count) if count in settings["schedule"] else None


def lose_ack(v: VenueState, order: dict[str, Any]) -> dict[str, Any] | None:
    """Count one accepted order placement (ORDER: order_id, client_order_id, symbol, type, status) under ack_lost; the record
    (mode, delay_ms, ...) when its HTTP answer is to be lost, kept then in v.acks_lost with the fault's seed, else None."""
    with v.lock:
        lost = v.faults.get("ack_lost")
        if lost and lost["order_type"] is not None and order.get("type") != lost["order_type"]:
            return None
        if (hit := _scheduled(v, "ack_lost", "acks_counted")) is None:
            return None
        lost, count = hit
        record = {"order": count, "seed": lost["seed"], "n": lost["n"], "mode": lost["mode"], "delay_ms": lost["delay_ms"],
                  **order, "at_ms": int(time.time() * 1000)}
        v.acks_lost.append(record)
        del v.acks_lost[:-RECORDS_KEPT]
        return dict(record)


def count_order(v: VenueState, order: dict[str, Any]) -> tuple[dict[str, str], tuple[int, dict[str, Any]] | None]:
    """Count one new ORDER (client_order_id, symbol, side, type) in the venue clock's TEN_SECONDS interval and UTC day: the
    headers its answer carries (X-MBX-ORDER-COUNT-10S, X-MBX-ORDER-COUNT-1D) and, when order_rate_limit refuses it, Binance's
    answer (429, -1015), the refusal then kept in v.orders_refused with the fault's seed and limit. A refused order is not
    counted (Binance counts the orders it takes)."""
    with v.lock:
        now = clock_ms(v)
        window = now // ORDER_WINDOW_MS
        if window != v.order_window:
            v.order_window, v.order_count = window, 0
        if now // DAY_MS != v.order_day:
            v.order_day, v.order_day_count = now // DAY_MS, 0
        limit = v.faults.get("order_rate_limit")
        if limit and v.order_count >= limit["limit"]:
            v.orders_refused.append({"seed": limit["seed"], "n": limit["n"], "limit": limit["limit"], "count": v.order_count,
                                     "window_start_ms": window * ORDER_WINDOW_MS, **order, "at_ms": int(time.time() * 1000)})
            del v.orders_refused[:-RECORDS_KEPT]
            body = {"code": -1015, "msg": f"Too many new orders; current limit is {limit['limit']} orders per TEN_SECONDS."}
            return {"X-MBX-ORDER-COUNT-10S": str(v.order_count), "X-MBX-ORDER-COUNT-1D": str(v.order_day_count)}, (429, body)
        v.order_count += 1
        v.order_day_count += 1
        return {"X-MBX-ORDER-COUNT-10S": str(v.order_count), "X-MBX-ORDER-COUNT-1D": str(v.order_day_count)}, None


def reject_order(v: VenueState, order: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """Draw for one new ORDER (client_order_id, symbol, side, type) under reject_orders: Binance's refusal (400, code and
    message) when the draw falls within PCT %, recorded then in v.orders_rejected with the draw's ordinal; else None."""
    with v.lock:
        settings = v.faults.get("reject_orders")
        if not settings or v.reject_draws is None:
            return None
        v.rejects_counted += 1
        if v.reject_draws.random() * 100 >= settings["pct"]:
            return None
        v.orders_rejected.append({"order": v.rejects_counted, "seed": settings["seed"], "pct": settings["pct"], "code": settings["code"],
                                  **order, "at_ms": int(time.time() * 1000)})
        del v.orders_rejected[:-RECORDS_KEPT]
        return 400, {"code": settings["code"], "msg": settings["msg"]}


def end_user_stream(v: VenueState, event: dict[str, Any]) -> dict[str, Any] | None:
    """Count one user-data EVENT under user_stream_expiry; the record {"event", "seed", "n", "silent", "event_type", ...} when the
    user data stream is to end before it (ended() completes it and keeps it in v.user_streams_ended), else None."""
    with v.lock:
        if (hit := _scheduled(v, "user_stream_expiry", "user_events_counted")) is None:
            return None
        expiry, count = hit
        return {"event": count, "seed": expiry["seed"], "n": expiry["n"], "silent": expiry["silent"],
                "event_type": event.get("e") if isinstance(event.get("e"), str) else None, "subscriptions": 0, "listen_keys": 0,
                "at_ms": int(time.time() * 1000)}


def ended(v: VenueState, record: dict[str, Any], subscriptions: int, listen_keys: int) -> None:
    """Record one end of the user data stream (RECORD, from end_user_stream) with what it ended: WebSocket API subscriptions,
    listen keys."""
    with v.lock:
        v.user_streams_ended.append({**record, "subscriptions": subscriptions, "listen_keys": listen_keys})
        del v.user_streams_ended[:-RECORDS_KEPT]
        v.user_streams_ended_total += subscriptions + listen_keys


def race_cancel(v: VenueState, cancel: dict[str, Any]) -> dict[str, Any] | None:
    """Count one cancel request of resting orders (CANCEL: request, order_ids, client_order_ids) under cancel_fill_race; the record
    when a fill is to beat it (kept then in v.cancels_raced with the fault's seed), else None. Called by the REST surface."""
    with v.lock:
        if (hit := _scheduled(v, "cancel_fill_race", "cancels_counted")) is None:
            return None
        race, count = hit
        record = {"cancel": count, "seed": race["seed"], "n": race["n"], **cancel, "at_ms": int(time.time() * 1000)}
        v.cancels_raced.append(record)
        del v.cancels_raced[:-RECORDS_KEPT]
        return dict(record)


def count_reject(v: VenueState, code: Any, detail: dict[str, Any] | None = None) -> None:
    """Count one refusal by its Binance error CODE; a -1021 is recorded with DETAIL (what was refused, the times compared)."""
    if not isinstance(code, int) or isinstance(code, bool) or not -99_999 <= code < 0:
        return
    with v.lock:
        v.rejects[code] = v.rejects.get(code, 0) + 1
        if code == -1021 and detail is not None:
            v.timestamps_rejected.append({**detail, "offset_ms": v.offset_ms, "at_ms": int(time.time() * 1000)})
            del v.timestamps_rejected[:-RECORDS_KEPT]


def lose_fill(v: VenueState, fill: dict[str, Any]) -> bool:
    """Count one fill (FILL: its trade_id, order_id, client_order_id, symbol) under the fill_lost fault; True when its
    execution report is to be withheld, recorded then in v.fills_lost with the fault's seed. Called by the exchange for every fill."""
    with v.lock:
        if (hit := _scheduled(v, "fill_lost", "fills_counted")) is None:
            return False
        lost, count = hit
        v.fills_withheld += 1
        v.fills_lost.append({"fill": count, "seed": lost["seed"], "n": lost["n"], **fill,
                             "at_ms": int(time.time() * 1000)})
        del v.fills_lost[:-FILLS_LOST_KEPT]
        return True


def split_order(v: VenueState, order: dict[str, Any]) -> list[int] | None:
    """Count one marketable ORDER (order_id, client_order_id, symbol, quantity) under partial_fills; its split in percentages
    when it is to fill in parts (recorded then in v.partial_fills with the fault's seed), else None. Called by the exchange."""
    with v.lock:
        partial = v.faults.get("partial_fills")
        if not partial:
            return None
        v.orders_counted += 1
        if partial["schedule"] is not None and v.orders_counted not in partial["schedule"]:
            return None
        v.partial_fills.append({"order": v.orders_counted, "seed": partial["seed"], "split": list(partial["split"]),
                                "schedule": partial["schedule"], "gap_ms": partial["gap_ms"], **order, "at_ms": int(time.time() * 1000)})
        del v.partial_fills[:-RECORDS_KEPT]
        return list(partial["split"])


def duplicate_report(v: VenueState, fill: dict[str, Any]) -> bool:
    """Count one fill (as lose_fill) under duplicate_reports; True when its executionReport is to be sent twice (recorded then
    in v.reports_duplicated with the fault's seed). Called by the exchange for every fill whose report is sent."""
    with v.lock:
        if (hit := _scheduled(v, "duplicate_reports", "dup_counted")) is None:
            return False
        dup, count = hit
        v.fills_duplicated += 1
        v.reports_duplicated.append({"fill": count, "seed": dup["seed"], "n": dup["n"], **fill, "at_ms": int(time.time() * 1000)})
        del v.reports_duplicated[:-RECORDS_KEPT]
        return True


def reorder_report(v: VenueState, order: dict[str, Any]) -> bool:
    """Count one marketable ORDER (order_id, client_order_id, symbol) under reorder_reports; True when its NEW report is to be sent
    after its fills' reports (recorded then in v.reports_reordered with the fault's seed). Called by the exchange as it places one."""
    with v.lock:
        if (hit := _scheduled(v, "reorder_reports", "reorder_counted")) is None:
            return False
        reorder, count = hit
        v.reports_reordered.append({"order": count, "seed": reorder["seed"], "n": reorder["n"], **order, "at_ms": int(time.time() * 1000)})
        del v.reports_reordered[:-RECORDS_KEPT]
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
