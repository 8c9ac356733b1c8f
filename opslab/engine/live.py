"""A real NautilusTrader TradingNode with the real Binance Spot or USD-M Futures data and execution clients, and the
ops actor that watches it from inside. Imported only by runs/node.py when a node runs.

The node's own event loop runs in this thread. A supervisor coroutine starts the node
(run_async), watches it come up (clients connected -> reconciled -> trader running), then waits for
the first stop request: the spec's duration, the bar bound (the actor), SIGINT/SIGTERM, or a fatal
condition (startup timeout, clients disconnected for longer than the connect timeout). It then
stops the node (stop_async) and the caller reads the cache and disposes the node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from nautilus_trader.adapters.binance import (
    BINANCE,
    BinanceAccountType,
    BinanceDataClientConfig,
    BinanceExecClientConfig,
    BinanceLiveDataClientFactory,
    BinanceLiveExecClientFactory,
)
from nautilus_trader.config import (
    CacheConfig,
    DatabaseConfig,
    InstrumentProviderConfig,
    LiveExecEngineConfig,
    LoggingConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.trading.strategy import Strategy
from nautilus_trader.model.book import OrderBook  # noqa: F401 - keeps the book types loaded before the loop starts
from nautilus_trader.model.data import Bar, BarType, OrderBookDeltas, QuoteTick, TradeTick
from nautilus_trader.model.enums import BookType, OrderSide, OrderStatus, OrderType, TradingState, trading_state_to_str
from nautilus_trader.model.identifiers import InstrumentId, TraderId, Venue

from opslab import market
from opslab.engine import auto_halt, session, strategies, versions
from opslab.engine.ops_actor import OpsActor, OpsActorConfig

LOG_FILE_MAX_BYTES = 2_000_000
LOG_FILE_BACKUPS = 2
KILL_SWITCH_POLL_S = 0.25  # the fallback: `tc killswitch engage` wakes a registered node at once (opslab/nodes.py)
WAKE_DRAIN_S = 3.0  # on a wake: how long submit requests already past the RiskEngine may take to be answered by the venue
DRAIN_S = 3.0  # at stop: how long orders in flight may take to be answered
REJECT_CODE = re.compile(r"""["']code["']\s*:\s*(-\d{1,5})""")  # the Binance error code in an OrderRejected reason
ENTRY_PRICE_DP = Decimal("0.00000001")  # a position's entry price as the node records it (the venue's precision)
DB_TIMEOUT_S = 5  # the cache database's connect and response timeouts (NautilusTrader's default: 20 s)
MAX_REJECT_CODES = 20  # distinct codes counted in the heartbeat (bounded: the exporter makes a series of each)
MAX_EXTERNAL_ORIGINS = 10  # strategy ids of orders the node did not place, counted in the heartbeat (a series each)
MAX_FILL_TRADES = 100_000  # trade ids remembered to count each fill into the net position once
# What the Binance execution client sends the engine from the user data stream; REST answers make Submitted, Rejected,
# CancelRejected and ModifyRejected (orders go over REST on every release, the stream answers them)
USER_STREAM_EVENTS = frozenset({"OrderAccepted", "OrderFilled", "OrderCanceled", "OrderExpired", "OrderTriggered", "OrderUpdated"})
MAX_AUTO_CHANGES = 200  # stale and fresh changes kept in the run's lifecycle record
WAITING_ON_STREAM = (OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_UPDATE)


@dataclass
class Hooks:
    """What the actor and the supervisor call back into (the run folder lives behind these)."""

    heartbeat: Callable[[dict[str, Any]], None]
    event: Callable[[str, dict[str, Any]], None]  # lifecycle transition: state, data
    gate: Callable[[], "str | None"]  # the kill switch: None = released
    registration: Any = None  # opslab.nodes.Registration: the wake from `tc killswitch engage` (None: poll only)
    auto_record: Callable[[str, str], None] | None = None  # (auto_reduce | auto_release, reason) into the kill switch's history
    started_ns: int = 0
    state: str = "starting"
    reconciliation: str = "pending"
    stop_reason: str | None = None
    stop_event: asyncio.Event | None = None
    halts: int = 0
    auto_halts: int = 0  # times the node moved itself to REDUCING (engine.node.auto_halt)
    auto_changes: list[dict[str, Any]] = field(default_factory=list)  # each stream's stale and fresh changes
    auto_unrecorded: list[str] = field(default_factory=list)  # changes the kill switch's history could not take, and why
    cancelled: list[str] = field(default_factory=list)
    first_fill_s: float | None = None
    loaded: dict[str, int] | None = None  # what NautilusTrader loaded from its cache database at build (None: no database)
    reconciled: dict[str, int] | None = None  # the same once its startup reconciliation ran
    timings: dict[str, float | None] = field(default_factory=lambda: {"connected": None, "running": None, "first_fill": None, "stopped": None})

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.stop_event is not None:
            self.stop_event.set()

    def to(self, state: str, data: dict[str, Any]) -> None:
        """Enter STATE (halted, running, ...) and record it through the event hook."""
        self.state = state
        self.event(state, data)

    def elapsed(self) -> float:
        return round((time.time_ns() - self.started_ns) / 1e9, 3)


class NodeOpsActorConfig(OpsActorConfig, frozen=True):
    """The ops actor's parameters inside a node: what it watches besides bars, and how often it beats."""

    instrument_id: InstrumentId
    heartbeat_seconds: float
    bars_bound: int | None = None
    auto_halt: dict[str, float] | None = None  # engine.node.auto_halt: the bound (seconds) by field; None: off


class NodeOpsActor(OpsActor):
    """The lab's ops actor (engine/ops_actor.py: it counts bars) inside a node, plus heartbeats, the kill
    switch and the bar bound."""

    def __init__(self, config: NodeOpsActorConfig) -> None:
        super().__init__(config)
        self.hooks: Hooks | None = None
        self.node: TradingNode | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.strategy: Strategy | None = None
        self.last_data_ns: int | None = None  # any market update, the book's included (seconds_since_market_data)
        self.last_market_ns: int | None = None  # trades, quotes and bars (auto_halt's market_data)
        self.last_book_ns: int | None = None
        self.last_user_event_ns: int | None = None  # the last event the execution client sent from the user data stream
        self.halted = False
        self.watch = auto_halt.StreamWatch.from_spec(config.auto_halt)
        self._recorder = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="opslab-auto-halt") if self.watch else None
        self.book_sequence: int | None = None
        self.book_gaps = 0
        self.book_missed = 0
        self.fill_events = 0  # OrderFilled events on the strategies' order event topics (what a strategy's on_order_filled sees)
        self.fill_reports: int | None = None  # OrderFilled events the execution clients sent the engine (None: not counted)
        self.rejected: dict[str, int] = {}  # OrderRejected events of the instrument by the venue's error code in the reason
        self.net = Decimal(0)  # the instrument's net position as the fills moved it (signed), from the start's positions
        self.position_flips = 0  # fills that took the net position through zero (long to short or back) in one go
        self._fill_trades: dict[str, None] = {}  # the trade ids counted into the net (ordered: the oldest are forgotten first)

    def on_start(self) -> None:
        # every strategy's order events, as the engine publishes them (duplicates included: what the strategies see)
        self.msgbus.subscribe(topic="events.order.*", handler=self._order_event)
        self._count_fill_reports()
        # startup reconciliation has run (the trader starts after it): what the node holds now is where the fills start from
        self.net = _net(self.cache.positions_open(instrument_id=self.config.instrument_id))
        self.subscribe_trade_ticks(self.config.instrument_id)
        self.subscribe_quote_ticks(self.config.instrument_id)
        self.subscribe_order_book_deltas(self.config.instrument_id, book_type=BookType.L2_MBP)
        super().on_start()  # the bars
        self.clock.set_timer("opslab-heartbeat", timedelta(seconds=self.config.heartbeat_seconds), callback=self._beat)
        self.clock.set_timer("opslab-killswitch", timedelta(seconds=KILL_SWITCH_POLL_S), callback=self._kill_switch)
        # Actors start before strategies (Trader._start): the switch is checked, and a wake that came during
        # start-up applied, before the strategy can submit anything.
        registration = self.hooks.registration if self.hooks else None
        self._kill_switch(None, woken=registration.attach(self.wake) if registration is not None else None)

    def on_stop(self) -> None:  # the node's own stop unsubscribes everything; only the lab's timers go here
        for name in ("opslab-heartbeat", "opslab-killswitch"):
            if name in self.clock.timer_names:
                self.clock.cancel_timer(name)

    def _count_fill_reports(self) -> None:
        """Count the OrderFilled events the execution clients send the engine (its "ExecEngine.process" endpoint on the
        message bus: every report the venue sent, before the engine decides what to apply), by standing in front of it."""
        engine = self.node.kernel.exec_engine if self.node is not None else None
        if engine is None or self.fill_reports is not None:
            return
        try:
            self.msgbus.deregister("ExecEngine.process", engine.process)
        except (KeyError, ValueError):  # another NautilusTrader wiring: not counted (the heartbeat leaves the field out)
            return
        self.fill_reports = 0

        def process(event: Any) -> None:
            kind = type(event).__name__
            if kind == "OrderFilled" and event.instrument_id == self.config.instrument_id:
                self.fill_reports += 1
            if kind in USER_STREAM_EVENTS:
                self.last_user_event_ns = self.clock.timestamp_ns()
            engine.process(event)

        self.msgbus.register("ExecEngine.process", process)

    def _order_event(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "OrderFilled" and event.instrument_id == self.config.instrument_id:
            self.fill_events += 1
            self._move_net(event)
        elif kind == "OrderRejected" and event.instrument_id == self.config.instrument_id:
            # the Binance client puts the venue's answer in the reason: {'code': -1021, 'msg': ...}
            found = REJECT_CODE.search(str(event.reason))
            code = found.group(1) if found else "none"
            if code in self.rejected or len(self.rejected) < MAX_REJECT_CODES:
                self.rejected[code] = self.rejected.get(code, 0) + 1

    def _move_net(self, fill: Any) -> None:
        """The net position after FILL (each trade id once: a duplicated report moves nothing); a flip when it crossed zero."""
        trade = str(fill.trade_id)
        if trade in self._fill_trades:
            return
        self._fill_trades[trade] = None
        if len(self._fill_trades) > MAX_FILL_TRADES:
            del self._fill_trades[next(iter(self._fill_trades))]
        qty = fill.last_qty.as_decimal()
        after = self.net + (qty if fill.order_side == OrderSide.BUY else -qty)
        if self.net * after < 0:
            self.position_flips += 1
        self.net = after

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.last_data_ns = self.last_market_ns = self.clock.timestamp_ns()

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.last_data_ns = self.last_market_ns = self.clock.timestamp_ns()

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        """Counts missed depth updates. NautilusTrader's Binance client keeps only each message's last
        update id (`u`) as the sequence and does not check it against the previous one (1.221.0); the
        check here is exact where every diff carries one update id, as the lab's venue sends them."""
        self.last_data_ns = self.last_book_ns = self.clock.timestamp_ns()
        sequence = deltas.sequence
        if not deltas.is_snapshot and self.book_sequence is not None and sequence > self.book_sequence + 1:
            self.book_gaps += 1
            self.book_missed += sequence - self.book_sequence - 1
        self.book_sequence = sequence if self.book_sequence is None or deltas.is_snapshot else max(sequence, self.book_sequence)

    def on_bar(self, bar: Bar) -> None:
        self.last_data_ns = self.last_market_ns = self.clock.timestamp_ns()
        super().on_bar(bar)  # counted here, not by the strategy: a user's strategy need not count anything
        bound = self.config.bars_bound
        if bound is not None and self.bars_seen >= bound and self.hooks:
            self.hooks.request_stop("bars")

    def wake(self, reason: str) -> dict[str, Any]:
        """A wake from `tc killswitch engage` (the registration's thread): halt on the node's loop, then wait
        until no order is in flight; the answer the caller gets."""
        assert self.loop is not None and self.hooks is not None
        future = asyncio.run_coroutine_threadsafe(self._halt_now(reason), self.loop)
        until = time.monotonic() + WAKE_DRAIN_S + 1.0
        while time.monotonic() < until:
            try:
                return future.result(timeout=0.05)
            except concurrent.futures.TimeoutError:
                if self.hooks.registration is not None and self.hooks.registration.finished:  # the loop ended: it trades no more
                    future.cancel()
                    return {"ok": True, "phase": "stopped", "trading_state": "STOPPED", "orders_in_flight": 0}
        future.cancel()
        return {"ok": False, "error": f"the node's event loop did not halt it within {WAKE_DRAIN_S + 1.0:g} s"}

    async def _halt_now(self, reason: str) -> dict[str, Any]:
        assert self.node is not None
        started = time.monotonic()
        self._kill_switch(None, woken=f"engaged (woken by tc killswitch engage): {reason}")
        unanswered, queued = _in_flight(self.node)
        waited_for = unanswered
        while (unanswered or queued) and time.monotonic() - started < WAKE_DRAIN_S:
            await asyncio.sleep(0.002)
            unanswered, queued = _in_flight(self.node)
        state = trading_state_to_str(self.node.kernel.risk_engine.trading_state)
        answer: dict[str, Any] = {"ok": not (unanswered or queued) and state == "HALTED", "phase": "trading", "trading_state": state,
                                  "orders_in_flight": unanswered, "waited_for": waited_for,
                                  "drain_ms": round((time.monotonic() - started) * 1000, 3)}
        if not answer["ok"]:
            answer["error"] = f"trading state {state}, {unanswered} submit request(s) unanswered and {queued} queued after {WAKE_DRAIN_S:g} s"
        return answer

    def _kill_switch(self, _event: Any, woken: str | None = None) -> None:
        """The poll (every KILL_SWITCH_POLL_S) and the wake (WOKEN: its reason; it halts without reading the file)."""
        assert self.hooks is not None and self.node is not None and self.strategy is not None
        reason = woken or self.hooks.gate()
        risk = self.node.kernel.risk_engine
        if reason and not self.halted:
            self.halted = True
            open_ids = [o.client_order_id.value for o in self.cache.orders_open(instrument_id=self.config.instrument_id)]
            risk.set_trading_state(TradingState.HALTED)
            if open_ids:
                self.strategy.cancel_all_orders(self.config.instrument_id)
            self.hooks.halts += 1
            self.hooks.cancelled.extend(open_ids)
            self.hooks.to("halted", {"reason": reason[:200], "cancelled_orders": open_ids})
        elif not reason and self.halted:
            self.halted = False
            if self.watch is not None and self.watch.stale:  # a stream is still stale: back to REDUCING, not ACTIVE
                risk.set_trading_state(TradingState.REDUCING)
                self.hooks.to("reducing", {"reason": f"kill switch released while {', '.join(sorted(self.watch.stale))} stale"})
            else:
                risk.set_trading_state(TradingState.ACTIVE)
                self.hooks.to("running", {"resumed": True})
        if self.watch is not None:
            self._auto_halt()

    def stream_ages(self) -> dict[str, float | None]:
        """Seconds since each stream was last heard (auto_halt.py says what the user stream's age counts)."""
        now = self.clock.timestamp_ns()
        waiting = [o.ts_last for o in self.cache.orders(instrument_id=self.config.instrument_id) if o.status in WAITING_ON_STREAM]
        user = auto_halt.user_stream_age(now, waiting, self.last_user_event_ns) if self.fill_reports is not None else None
        return {"market_data": _age(now, self.last_market_ns), "book": _age(now, self.last_book_ns), "user_stream": user}

    def _auto_halt(self) -> None:
        """engine.node.auto_halt: REDUCING while a stream is stale, ACTIVE again once every one is fresh (a kill switch's
        HALTED stays above both); each change goes to the kill switch's history, off the loop and in order."""
        assert self.watch is not None and self.hooks is not None and self.node is not None
        was_stale = bool(self.watch.stale)
        changes = self.watch.step(self.clock.timestamp_ns(), self.stream_ages(), self.last_user_event_ns)
        if not changes:
            return
        for change in changes:
            if len(self.hooks.auto_changes) < MAX_AUTO_CHANGES:  # bounded: a flapping stream; the kill switch's history keeps all
                self.hooks.auto_changes.append({"stream": change.stream, "stale": change.stale, "at": _iso_ms(self.clock.timestamp_ns()),
                                                "seconds": self.hooks.elapsed(), "age_seconds": change.age_s,
                                                "bound_seconds": change.bound_s})
            if self.hooks.auto_record is not None and self._recorder is not None:
                self._recorder.submit(self._record, "auto_reduce" if change.stale else "auto_release", change.reason)
        if self.halted:
            return
        risk = self.node.kernel.risk_engine
        if self.watch.stale and not was_stale:
            risk.set_trading_state(TradingState.REDUCING)
            self.hooks.auto_halts += 1
            first = next(c for c in changes if c.stale)
            self.hooks.to("reducing", {"reason": first.reason, "streams": sorted(self.watch.stale)})
        elif was_stale and not self.watch.stale:
            risk.set_trading_state(TradingState.ACTIVE)
            self.hooks.to("running", {"resumed": True, "reason": changes[-1].reason})

    def _record(self, action: str, reason: str) -> None:
        assert self.hooks is not None and self.hooks.auto_record is not None
        try:
            self.hooks.auto_record(action, reason)
        except Exception as exc:  # the run records it (lifecycle auto_halt.unrecorded); the node keeps protecting itself
            self.hooks.auto_unrecorded.append(f"{action}: {type(exc).__name__}: {exc}"[:300])

    def flush_auto_records(self) -> None:
        """Wait until every soft-halt change is in the kill switch's history (the node stopping)."""
        if self._recorder is not None:
            self._recorder.shutdown(wait=True)

    def snapshot(self) -> dict[str, Any]:
        """The heartbeat fields (without the chain fields the writer adds)."""
        assert self.hooks is not None and self.node is not None and self.strategy is not None
        kernel = self.node.kernel
        now = self.clock.timestamp_ns()
        net = _net(self.cache.positions_open(instrument_id=self.config.instrument_id))
        own = set(self.node.trader.strategy_ids()) if self.node is not None else set()
        external: dict[str, int] = {}  # orders no strategy of this node placed, by the strategy id NautilusTrader gave them
        for order in self.cache.orders(instrument_id=self.config.instrument_id):
            if order.strategy_id not in own and (order.strategy_id.value in external or len(external) < MAX_EXTERNAL_ORIGINS):
                external[order.strategy_id.value] = external.get(order.strategy_id.value, 0) + 1
        account = self.cache.account_for_venue(Venue(BINANCE))
        balances = {m.currency.code: session._dec(m.as_decimal()) for m in account.balances_total().values()} if account else {}
        since = _age(now, self.last_data_ns)
        unacked = [o for o in self.cache.orders(instrument_id=self.config.instrument_id) if o.status == OrderStatus.SUBMITTED]
        return {
            "state": self.hooks.state,
            "trading_state": trading_state_to_str(kernel.risk_engine.trading_state),
            "clients_connected": {"data": bool(kernel.data_engine.check_connected()), "exec": bool(kernel.exec_engine.check_connected())},
            "last_market_data_at": _iso_ms(self.last_data_ns) if self.last_data_ns else None,
            "seconds_since_market_data": since,
            "book_sequence_gaps": self.book_gaps,
            "book_updates_missed": self.book_missed,
            "bars_seen": self.bars_seen,
            "open_orders": len(self.cache.orders_open(instrument_id=self.config.instrument_id)),
            "fills": len({trade for o in self.cache.orders(instrument_id=self.config.instrument_id) for trade in o.trade_ids}),
            "fill_events": self.fill_events,
            **({"fill_reports": self.fill_reports} if self.fill_reports is not None else {}),
            "orders_partially_filled": sum(o.status == OrderStatus.PARTIALLY_FILLED
                                           for o in self.cache.orders_open(instrument_id=self.config.instrument_id)),
            # SUBMITTED: sent to the venue, neither accepted nor rejected nor filled yet (an ambiguous submit stays here)
            "orders_unacknowledged": len(unacked),
            "oldest_unacknowledged_order_seconds": round(max(0.0, (now - min(o.ts_last for o in unacked)) / 1e9), 3) if unacked else 0.0,
            "orders_rejected": dict(sorted(self.rejected.items())),
            "position": {"side": "LONG" if net > 0 else "SHORT" if net < 0 else "FLAT", "quantity": session._dec(abs(net))},
            "position_flips": self.position_flips,
            "external_orders": dict(sorted(external.items())),
            "balances": balances,
            "reconciliation": self.hooks.reconciliation,
            "kill_switch_engaged": self.halted,
            "stream_ages_seconds": self.stream_ages(),
            **({"streams_stale": sorted(self.watch.stale)} if self.watch is not None else {}),
            "uptime_seconds": max(0.0, self.hooks.elapsed()),
        }

    def _beat(self, _event: Any) -> None:
        assert self.hooks is not None
        self.hooks.heartbeat(self.snapshot())


def _net(positions: list[Any]) -> Decimal:
    """The signed net quantity of open POSITIONS (after a restart or a reconciliation one instrument may be held in several:
    a strategy's, and EXTERNAL for what the node did not place)."""
    return sum((p.signed_decimal_qty() for p in positions), Decimal(0))


def _age(now_ns: int, then_ns: int | None) -> float | None:
    """Seconds from THEN_NS to NOW_NS (the actor's clock), never negative; None when it never happened."""
    return round(max(0.0, (now_ns - then_ns) / 1e9), 3) if then_ns else None


def _iso_ms(ns: int) -> str:
    secs, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rem // 1_000_000:03d}Z"


@dataclass
class Settings:
    """What the node needs from the spec and the environment."""

    spec: dict[str, Any]
    run_spec: Any  # the opslab.spec.RunSpec: engine/strategies.py resolves the strategy from it
    run_id: str
    log_dir: Path
    api_key: str
    api_secret: str
    http_url: str
    ws_url: str
    duration_s: int
    bars: int | None
    heartbeat_s: float
    connect_timeout_s: int
    open_check_s: float | None = None  # engine.node.open_check_seconds: NautilusTrader's continuous reconciliation (None: off)
    open_check_delay_s: float | None = None  # engine.node.open_check_delay_seconds: its start-up delay (None: NautilusTrader's 10 s)
    cache_db: dict[str, Any] | None = None  # engine.node.cache_database plus where its Redis listens (host, port); None: in memory
    auto_halt: dict[str, float] | None = None  # engine.node.auto_halt (None: off)
    account_type: str = market.SPOT  # engine.node.account_type: spot or usdt_futures (market.ACCOUNT_TYPES)
    instrument_id: str = market.INSTRUMENT_ID  # what the node trades (market.instrument_id of the spec)
    interval: str = market.INTERVAL  # the dataset's bars, which the venue replays: the bar type the node subscribes to


def _cache(db: dict[str, Any] | None) -> CacheConfig | None:
    """NautilusTrader's own cache database: its Redis at host:port. Keys keep the trader prefix and leave out the
    instance id (a new one every start), so a restarted node finds what the last one wrote."""
    if db is None:
        return None
    extra = {"buffer_interval_ms": db["buffer_interval_ms"]} if db.get("buffer_interval_ms") else {}
    # 1.221 has one `timeout`; 1.231 splits it into connection_timeout and response_timeout
    fields = DatabaseConfig.__struct_fields__
    timeouts = {k: DB_TIMEOUT_S for k in ("timeout", "connection_timeout", "response_timeout") if k in fields}
    return CacheConfig(database=DatabaseConfig(type="redis", host=db["host"], port=db["port"], **timeouts),
                       encoding="msgpack", flush_on_start=bool(db["flush_on_start"]), use_trader_prefix=True, use_instance_id=False,
                       **extra)


ACCOUNT_TYPES = {market.SPOT: BinanceAccountType.SPOT, market.USDT_FUTURES: BinanceAccountType.USDT_FUTURES}


def _config(s: Settings) -> TradingNodeConfig:
    provider = InstrumentProviderConfig(load_ids=frozenset({s.instrument_id}))
    common = {"api_key": s.api_key, "api_secret": s.api_secret, "account_type": ACCOUNT_TYPES[s.account_type],
              "base_url_http": s.http_url, "instrument_provider": provider}
    # The data client reads market streams at the venue's WebSocket URL on every release (Spot's, or the futures
    # streams' for USD-M). Spot's exec client moved its user data stream to the WebSocket API in 1.223; USD-M's
    # reads a listenKey stream on the futures stream host on every release (engine/versions.py).
    exec_ws = versions.futures_exec_ws(s.ws_url) if s.account_type == market.USDT_FUTURES else {"base_url_ws": versions.exec_ws_url(s.ws_url)}
    return TradingNodeConfig(
        trader_id=TraderId(session.TRADER_ID),
        cache=_cache(s.cache_db),
        logging=LoggingConfig(log_level="OFF", log_level_file="INFO", log_directory=str(s.log_dir), log_file_name="node",
                              log_file_max_size=LOG_FILE_MAX_BYTES, log_file_max_backup_count=LOG_FILE_BACKUPS, log_colors=False,
                              # the execution client logs the API key at INFO when it authenticates: keep it out of the file
                              log_component_levels={"ExecClient-BINANCE": "WARNING"}),
        # open_check_seconds switches on the continuous check of open orders against the venue's order status; not open-only,
        # or an order the venue filled (no longer open there) could not be resolved (LiveExecutionEngine._check_orders_consistency)
        exec_engine=LiveExecEngineConfig(reconciliation=True, reconciliation_lookback_mins=1440,
                                         **({"open_check_interval_secs": s.open_check_s, "open_check_open_only": False} if s.open_check_s else {}),
                                         **({"reconciliation_startup_delay_secs": float(s.open_check_delay_s)}
                                            if s.open_check_s and s.open_check_delay_s is not None else {})),
        data_clients={BINANCE: BinanceDataClientConfig(**common, base_url_ws=s.ws_url)},
        exec_clients={BINANCE: BinanceExecClientConfig(**common, **exec_ws, max_retries=2, retry_delay_initial_ms=100, retry_delay_max_ms=500)},
        timeout_connection=float(s.connect_timeout_s),
        timeout_reconciliation=float(s.connect_timeout_s),
        timeout_portfolio=5.0,
        timeout_disconnection=5.0,
        timeout_post_stop=1.0,
    )


def run(s: Settings, hooks: Hooks) -> dict[str, Any]:
    """Run the node to its first stop request; the node's state as plain data (orders, fills, ...)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    hooks.started_ns = time.time_ns()
    with session.rotation_notes_dropped():  # the node logs to files; 1.231's rotation notes stay off stderr
        return _run(s, hooks, loop)


def _run(s: Settings, hooks: Hooks, loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    node = TradingNode(config=_config(s), loop=loop)
    node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
    node.add_exec_client_factory(BINANCE, BinanceLiveExecClientFactory)
    instrument_id = InstrumentId.from_str(s.instrument_id)
    bar_type = BarType.from_str(market.bar_type(s.instrument_id, s.interval))
    strategy = strategies.create(s.run_spec, s.bars or 10**9, str(bar_type))  # the spec's strategy, built-in or the user's
    actor = NodeOpsActor(NodeOpsActorConfig(component_id="OPS-001", instrument_id=instrument_id, bar_type=bar_type, total_bars=s.bars or 0,
                                            heartbeat_seconds=s.heartbeat_s, bars_bound=s.bars, auto_halt=s.auto_halt))
    actor.hooks, actor.node, actor.strategy, actor.loop = hooks, node, strategy, loop
    if s.cache_db is not None:  # the kernel loaded the database into its cache as it was made (unless flush_on_start on 1.231)
        hooks.loaded = _held(node)
    node.trader.add_strategy(strategy)
    node.trader.add_actor(actor)
    node.build()
    try:
        loop.run_until_complete(_supervise(node, actor, s, hooks, loop))
        state = _read(node, strategy, actor, instrument_id, s.run_id, hooks, s.account_type)
    finally:
        actor.flush_auto_records()
        node.dispose()
        if not loop.is_closed():
            loop.close()
    return state


async def _supervise(node: TradingNode, actor: NodeOpsActor, s: Settings, hooks: Hooks, loop: asyncio.AbstractEventLoop) -> None:
    hooks.stop_event = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, hooks.request_stop, f"signal {sig.name}")
        except (ValueError, RuntimeError):  # not the main thread: no signal handling
            pass
    kernel = node.kernel
    run_task = loop.create_task(node.run_async())
    deadline = time.monotonic() + 2 * s.connect_timeout_s + 5
    started = time.monotonic()
    while not kernel.trader.is_running:
        if hooks.stop_event.is_set():
            break
        if time.monotonic() > deadline or run_task.done():
            hooks.reconciliation = "failed" if hooks.timings["connected"] is not None else hooks.reconciliation
            hooks.request_stop(f"fatal: node not running after {time.monotonic() - started:.0f} s (clients connected: "
                               f"data={kernel.data_engine.check_connected()}, exec={kernel.exec_engine.check_connected()}); see node/node*.log")
            break
        if hooks.timings["connected"] is None and kernel.data_engine.check_connected() and kernel.exec_engine.check_connected():
            hooks.timings["connected"] = hooks.elapsed()
            hooks.to("connected", {"seconds": hooks.timings["connected"]})
        await asyncio.sleep(0.02)
    if kernel.trader.is_running and not hooks.stop_event.is_set():
        if hooks.timings["connected"] is None:
            hooks.timings["connected"] = hooks.elapsed()
            hooks.to("connected", {"seconds": hooks.timings["connected"]})
        hooks.reconciliation = "reconciled"
        if s.cache_db is not None:
            hooks.reconciled = _held(node)
        hooks.to("reconciled", {"open_orders_at_venue": len(node.cache.orders_open()),
                                **({"loaded_from_cache_db": hooks.loaded, "after_reconciliation": hooks.reconciled} if s.cache_db else {})})
        hooks.timings["running"] = hooks.elapsed()
        hooks.to("running", {"seconds": hooks.timings["running"]})
        if actor.halted:  # engaged (or woken) while it started: it came up HALTED and says so
            hooks.to("halted", {"reason": "kill switch engaged while the node started", "cancelled_orders": []})
        actor._beat(None)
        await _watch(node, s, hooks)
    hooks.to("stopping", {"reason": hooks.stop_reason})
    if kernel.trader.is_running:
        # Strategies first (no new orders), then let orders already sent reach their venue answer over
        # the user data stream, so the node's record and the venue's agree when the node stops.
        kernel.trader.stop()
        await _drain(node)
    actor._beat(None)
    await node.stop_async()
    try:  # the engines' queues end once they are stopped; cancel only what is still running after that
        await asyncio.wait_for(asyncio.shield(run_task), timeout=3)
    except asyncio.TimeoutError:
        run_task.cancel()
    except Exception:
        pass
    if hooks.registration is not None:
        hooks.registration.detach()  # strategies stopped, orders drained: a wake from now on is answered `stopped`
    hooks.timings["stopped"] = hooks.elapsed()


def _held(node: TradingNode) -> dict[str, int]:
    """What the node's cache holds: orders, open orders, positions, open positions, accounts."""
    cache = node.cache
    return {"orders": len(cache.orders()), "orders_open": len(cache.orders_open()), "positions": len(cache.positions()),
            "positions_open": len(cache.positions_open()), "accounts": len(cache.accounts())}


def _in_flight(node: TradingNode) -> tuple[int, int]:
    """(submit requests past the RiskEngine that the venue has not answered yet, submit commands still queued for
    the ExecEngine). A request is the execution client's `_submit_order*` task: running means its HTTP call may
    still reach the venue; done means the venue answered (or it failed). Submits still queued in the RiskEngine
    are denied in HALTED, never sent. A client that does not expose its tasks is judged by the cache instead
    (orders INITIALIZED or SUBMITTED: slower, since the venue's answer then comes over the user data stream)."""
    kernel = node.kernel
    queued = kernel.exec_engine.cmd_qsize()
    requests = 0
    for client in kernel.exec_engine._clients.values():  # cdef readonly: the registered execution clients
        tasks = getattr(client, "_tasks", None)
        if tasks is None:
            return sum(1 for o in node.cache.orders() if o.status in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED)), queued
        requests += sum(1 for t in list(tasks) if not t.done() and getattr(t.get_coro(), "__name__", "").startswith("_submit_order"))
    return requests, queued


def _busy(node: TradingNode) -> bool:
    """Orders still waiting for their venue answer, or events not yet applied by the engines."""
    kernel = node.kernel
    market_open = any(o.order_type == OrderType.MARKET for o in node.cache.orders_open())
    queued = kernel.exec_engine.cmd_qsize() + kernel.exec_engine.evt_qsize() + kernel.risk_engine.cmd_qsize() + kernel.risk_engine.evt_qsize()
    return bool(node.cache.orders_inflight()) or market_open or queued > 0


async def _drain(node: TradingNode) -> None:
    """Wait (at most DRAIN_S) until nothing is in flight twice in a row, 0.1 s apart: a market order's
    NEW, TRADE and account update arrive as one burst, and an event still queued at stop is lost."""
    until = time.monotonic() + DRAIN_S
    quiet = 0
    while quiet < 2 and time.monotonic() < until:
        quiet = 0 if _busy(node) else quiet + 1
        await asyncio.sleep(0.1 if quiet else 0.02)


async def _watch(node: TradingNode, s: Settings, hooks: Hooks) -> None:
    """Wait for a stop request; the duration bound and a lasting disconnect are stop requests too."""
    assert hooks.stop_event is not None
    end = time.monotonic() + s.duration_s - hooks.elapsed()
    down_since: float | None = None
    while not hooks.stop_event.is_set():
        now = time.monotonic()
        if now >= end:
            hooks.request_stop("duration")
            break
        connected = node.kernel.data_engine.check_connected() and node.kernel.exec_engine.check_connected()
        down_since = None if connected else (down_since or now)
        if down_since is not None and now - down_since > s.connect_timeout_s:
            hooks.request_stop(f"fatal: clients disconnected for more than {s.connect_timeout_s} s")
            break
        if hooks.first_fill_s is None and any(o.filled_qty.as_decimal() > 0 for o in node.cache.orders()):
            hooks.first_fill_s = hooks.timings["first_fill"] = hooks.elapsed()
        try:
            await asyncio.wait_for(hooks.stop_event.wait(), timeout=0.05)
        except asyncio.TimeoutError:
            pass


def _read(node: TradingNode, strategy: Strategy, actor: NodeOpsActor, instrument_id: InstrumentId, run_id: str, hooks: Hooks,
          account_type: str = market.SPOT) -> dict[str, Any]:
    instrument = node.cache.instrument(instrument_id)
    if instrument is None or node.cache.account_for_venue(Venue(BINANCE)) is None:
        raise RuntimeError(f"{hooks.stop_reason or 'stopped'}; the node never loaded the instrument or the account (see node/node*.log)")
    view = SimpleNamespace(engine=node, strategy=strategy, ops=actor, venue=Venue(BINANCE), instrument=instrument)
    state = session.read_state(view, "node", run_id)  # type: ignore[arg-type]
    # After a restart, reconciliation may hold the instrument in more than one open position (per
    # strategy, or EXTERNAL for orders the node did not place): the account's exposure is their net.
    state["final_state"]["positions"] = _net_positions(node, instrument_id, with_entry=account_type == market.USDT_FUTURES)
    reports = {}
    for name, make in (("orders", node.trader.generate_orders_report), ("fills", node.trader.generate_fills_report),
                       ("positions", node.trader.generate_positions_report)):
        try:
            frame = make()
            reports[name] = frame.to_csv().encode() if len(frame) else b""
        except Exception:
            reports[name] = b""
    state["nautilus_reports"] = reports
    state["first_fill_seconds"] = _first_fill(node, hooks)
    return state


def _net_positions(node: TradingNode, instrument_id: InstrumentId, with_entry: bool = False) -> list[dict[str, str]]:
    """The instrument's net open position; WITH_ENTRY (a perpetual, whose venue keeps an entry price): its entry price, the
    average open price of the open positions on the net's side weighted by their quantity."""
    held = node.cache.positions_open(instrument_id=instrument_id)
    net = _net(held)
    if not net:
        return []
    row = {"instrument": instrument_id.value, "side": "LONG" if net > 0 else "SHORT", "quantity": session._dec(abs(net))}
    if with_entry:
        same = [p for p in held if (p.signed_decimal_qty() > 0) == (net > 0)]
        size = sum((p.quantity.as_decimal() for p in same), Decimal(0))
        entry = sum((p.quantity.as_decimal() * Decimal(str(p.avg_px_open)) for p in same), Decimal(0)) / size
        row["entry_price"] = session._dec(entry.quantize(ENTRY_PRICE_DP))
    return [row]


def _first_fill(node: TradingNode, hooks: Hooks) -> float | None:
    fills = [e.ts_init for o in node.cache.orders() for e in o.events if type(e).__name__ == "OrderFilled"]
    if not fills:
        return None
    return round((min(fills) - hooks.started_ns) / 1e9, 3)

