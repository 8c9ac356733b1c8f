"""Bare-NautilusTrader baseline: the same engine, bars and order cadence as `tc run backtest`, no opslab.

Usage: python baseline_backtest.py BARS_CSV
"""

from __future__ import annotations

import sys
from decimal import Decimal

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, TraderId, Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy


class Config(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType


class Cadence(Strategy):
    """One resting limit buy, then buy every 60 bars and sell 15 bars later: the order cadence of ops_smoke_demo."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.n = 0

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar) -> None:
        qty = self.instrument.make_qty(Decimal("0.01"))
        if self.n == 0:  # one resting far-away limit order, as ops_smoke_demo has
            price = self.instrument.make_price(bar.close.as_decimal() / 2)
            self.submit_order(self.order_factory.limit(self.config.instrument_id, OrderSide.BUY, qty, price))
        if self.n % 60 == 0:
            self.submit_order(self.order_factory.market(self.config.instrument_id, OrderSide.BUY, qty))
        elif self.n % 60 == 15:
            self.submit_order(self.order_factory.market(self.config.instrument_id, OrderSide.SELL, qty))
        self.n += 1


def main(path: str) -> None:
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BASE-001"), logging=LoggingConfig(bypass_logging=True)))
    venue = Venue("BINANCE")
    engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
                     starting_balances=[Money(100_000, USDT), Money(1, BTC)], fill_model=FillModel(random_seed=42))
    instrument = TestInstrumentProvider.btcusdt_binance()
    engine.add_instrument(instrument)
    bar_type = BarType.from_str("BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL")
    frame = pd.read_csv(path, index_col="ts_close")
    frame.index = pd.to_datetime(frame.index, utc=True)
    engine.add_data(BarDataWrangler(bar_type, instrument).process(frame[["open", "high", "low", "close", "volume"]]))
    engine.add_strategy(Cadence(Config(instrument_id=instrument.id, bar_type=bar_type)))
    engine.run()
    print(len(engine.cache.orders()), "orders")
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
