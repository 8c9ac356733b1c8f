"""The ops_smoke_demo strategy: a deterministic smoke test of order plumbing, not a trading idea.

On the first bar it rests one far-away limit buy (an open order to reconcile and to cancel on a
halt). Every ORDER_EVERY bars it buys TRADE_SIZE at market and sells it back HOLD bars later;
the entry in the last window is kept, so the run ends with one open position.
Imported only from opslab.engine (it imports NautilusTrader).
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class SmokeConfig(StrategyConfig, frozen=True):
    """Parameters of the smoke strategy (the scenario registry's config; the lab fills instrument_id,
    bar_type and total_bars)."""

    instrument_id: InstrumentId
    bar_type: BarType
    order_every_bars: int
    hold_bars: int
    trade_size: str
    total_bars: int
    resting_limit_fraction: str = "0.5"


class SmokeStrategy(Strategy):
    """Market round trips on a fixed bar cadence plus one resting limit order."""

    def __init__(self, config: SmokeConfig) -> None:
        super().__init__(config)
        self.bars_seen = 0
        self.instrument = None
        self.qty = None

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.qty = self.instrument.make_qty(Decimal(self.config.trade_size))
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        i = self.bars_seen
        self.bars_seen += 1
        cfg, qty = self.config, self.qty
        if i == 0:
            price = self.instrument.make_price(bar.close.as_decimal() * Decimal(cfg.resting_limit_fraction))
            self.submit_order(self.order_factory.limit(cfg.instrument_id, OrderSide.BUY, qty, price))
        phase = i % cfg.order_every_bars
        last_window = i - phase + cfg.order_every_bars >= cfg.total_bars
        if phase == 0:
            self.submit_order(self.order_factory.market(cfg.instrument_id, OrderSide.BUY, qty))
        elif phase == cfg.hold_bars and not last_window:
            self.submit_order(self.order_factory.market(cfg.instrument_id, OrderSide.SELL, qty))

    def on_stop(self) -> None:
        self.unsubscribe_bars(self.config.bar_type)
