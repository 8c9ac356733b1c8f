"""A real NautilusTrader TradingNode with the real Binance USD-M Futures data and execution clients against the venue on
127.0.0.1, run as its own process by test_venue_futures.py (the engine's logging and loop are once per process).

Usage: python futures_node_script.py HTTP_URL FUTURES_WS_URL OUT.json TIMEOUT_S [observe] (credentials in
BINANCE_API_KEY/SECRET). The strategy subscribes to quotes and 1-minute bars of BTCUSDT-PERP.BINANCE, buys 0.010 at
market on its first quote, and the node stops once the position is open (or at TIMEOUT_S); with `observe` it sends
nothing and stops after its first bar (a restart: what reconciliation brought back). OUT.json says what the node saw.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from decimal import Decimal
from typing import Any

from nautilus_trader.adapters.binance import (BinanceAccountType, BinanceDataClientConfig, BinanceExecClientConfig,
                                              BinanceLiveDataClientFactory, BinanceLiveExecClientFactory)
from nautilus_trader.config import InstrumentProviderConfig, LiveExecEngineConfig, LoggingConfig, StrategyConfig, TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import Bar, BarType, QuoteTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, TraderId
from nautilus_trader.trading.strategy import Strategy

INSTRUMENT = "BTCUSDT-PERP.BINANCE"


class BuyOnce(Strategy):
    def __init__(self, trade: bool) -> None:
        super().__init__(StrategyConfig(strategy_id="FUT-001"))
        self.trade = trade
        self.instrument_id = InstrumentId.from_str(INSTRUMENT)
        self.quotes = self.bars = 0
        self.sent = False
        self.fills: list[dict[str, Any]] = []

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.instrument_id)
        self.subscribe_bars(BarType.from_str(f"{INSTRUMENT}-1-MINUTE-LAST-EXTERNAL"))

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.quotes += 1
        if self.trade and not self.sent and self.cache.instrument(self.instrument_id) is not None:
            self.sent = True
            instrument = self.cache.instrument(self.instrument_id)
            self.submit_order(self.order_factory.market(self.instrument_id, OrderSide.BUY, instrument.make_qty(Decimal("0.010"))))

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fills.append({"qty": str(event.last_qty), "px": str(event.last_px), "trade_id": str(event.trade_id),
                           "venue_order_id": str(event.venue_order_id)})


async def main(http_url: str, ws_url: str, out: str, timeout_s: float, trade: bool) -> None:
    common: dict[str, Any] = {"api_key": os.environ["BINANCE_API_KEY"], "api_secret": os.environ["BINANCE_API_SECRET"],
                              "account_type": BinanceAccountType.USDT_FUTURES, "base_url_http": http_url, "base_url_ws": ws_url,
                              "instrument_provider": InstrumentProviderConfig(load_ids=frozenset({INSTRUMENT}))}
    exec_extra = {"base_url_ws_stream": ws_url} if "base_url_ws_stream" in BinanceExecClientConfig.__struct_fields__ else {}
    config = TradingNodeConfig(trader_id=TraderId("TESTER-001"), logging=LoggingConfig(log_level="ERROR"),
                               exec_engine=LiveExecEngineConfig(reconciliation=True),
                               data_clients={"BINANCE": BinanceDataClientConfig(**common)},
                               exec_clients={"BINANCE": BinanceExecClientConfig(**common, **exec_extra, max_retries=1)},
                               timeout_connection=20.0, timeout_reconciliation=10.0, timeout_portfolio=5.0,
                               timeout_disconnection=3.0, timeout_post_stop=1.0)
    node = TradingNode(config=config, loop=asyncio.get_running_loop())
    node.add_data_client_factory("BINANCE", BinanceLiveDataClientFactory)
    node.add_exec_client_factory("BINANCE", BinanceLiveExecClientFactory)
    strategy = BuyOnce(trade)
    node.trader.add_strategy(strategy)
    node.build()
    run = asyncio.get_running_loop().create_task(node.run_async())
    instrument_id = InstrumentId.from_str(INSTRUMENT)
    end = time.monotonic() + timeout_s
    def done() -> bool:
        return bool(node.cache.positions_open(instrument_id=instrument_id)) if trade else strategy.bars > 0

    while time.monotonic() < end and not done():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the ACCOUNT_UPDATE after the fill
    kernel = node.kernel
    positions = node.cache.positions_open(instrument_id=instrument_id)
    account = node.cache.account_for_venue(instrument_id.venue)
    result = {"data_connected": kernel.data_engine.check_connected(), "exec_connected": kernel.exec_engine.check_connected(),
              "instrument": str(node.cache.instrument(instrument_id).id) if node.cache.instrument(instrument_id) else None,
              "instrument_type": type(node.cache.instrument(instrument_id)).__name__, "quotes": strategy.quotes, "bars": strategy.bars,
              "fills": strategy.fills, "orders": [str(o.status) for o in node.cache.orders()],
              "positions": [{"side": p.side.name, "quantity": str(p.quantity), "avg_px_open": p.avg_px_open} for p in positions],
              "account_type": str(account.type) if account else None,
              "balances": {str(c): str(m) for c, m in account.balances_total().items()} if account else {}}
    with open(out, "w") as fh:
        json.dump(result, fh)
    kernel.trader.stop()
    await node.stop_async()
    try:
        await asyncio.wait_for(asyncio.shield(run), timeout=3)
    except (asyncio.TimeoutError, Exception):
        run.cancel()
    node.dispose()


if __name__ == "__main__":
    # the node's stop leaves the loop stopped with its own tasks pending: run main on a loop of our own and close it as is
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:] != ["observe"]))
    except RuntimeError as exc:
        if "Event loop stopped" not in str(exc):
            raise
